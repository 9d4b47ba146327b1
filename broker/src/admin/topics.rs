//! Topic endpoints: stats, partitioned topics, topic lists, HTTP lookup.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::{AdminError, AdminResult};
use crate::broker::Broker;
use crate::names::TopicName;

type S = State<Arc<Broker>>;

pub(super) fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/admin/v2/persistent/:t/:ns", get(list))
        .route(
            "/admin/v2/persistent/:t/:ns/partitioned",
            get(list_partitioned),
        )
        .route("/admin/v2/persistent/:t/:ns/:topic/stats", get(stats))
        .route(
            "/admin/v2/persistent/:t/:ns/:topic/partitions",
            get(get_partitions).put(put_partitions),
        )
        .route("/lookup/v2/topic/persistent/:t/:ns/:topic", get(lookup))
}

fn topic_name(t: &str, ns: &str, topic: &str) -> AdminResult<TopicName> {
    Ok(TopicName::parse(&format!("persistent://{t}/{ns}/{topic}"))?)
}

async fn list(
    State(b): S,
    Path((t, ns)): Path<(String, String)>,
) -> AdminResult<Json<Vec<String>>> {
    Ok(Json(b.list_topics(&t, &ns).await?))
}

async fn list_partitioned(
    State(b): S,
    Path((t, ns)): Path<(String, String)>,
) -> AdminResult<Json<Vec<String>>> {
    Ok(Json(b.list_partitioned(&t, &ns).await?))
}

pub(super) async fn stats(
    State(b): S,
    Path((t, ns, topic)): Path<(String, String, String)>,
) -> AdminResult<Json<Value>> {
    let name = topic_name(&t, &ns, &topic)?;
    let topic = b.get_topic(&name, false).await?;
    let mut subs = Map::new();
    let now = std::time::Instant::now();
    let (mut total_out, mut total_bytes_out) = (0u64, 0u64);
    for s in topic.subscriptions() {
        let msg_out = s.counters.msg_out.load(Ordering::Relaxed);
        let bytes_out = s.counters.bytes_out.load(Ordering::Relaxed);
        total_out += msg_out;
        total_bytes_out += bytes_out;
        let sr = super::rates::rates(
            &format!("{}|{name}|{}", b.http_url, s.name),
            now,
            super::rates::Counters {
                msg_out,
                bytes_out,
                ..Default::default()
            },
        );
        let snap = s.stats().await;
        let consumers: Vec<Value> = snap
            .as_ref()
            .map(|x| {
                x.consumers
                    .iter()
                    .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
                    .collect()
            })
            .unwrap_or_default();
        let unacked: usize = snap
            .as_ref()
            .map(|x| x.consumers.iter().map(|c| c.unacked_messages).sum())
            .unwrap_or(0);
        subs.insert(
            s.name.clone(),
            json!({
                "msgBacklog": snap.as_ref().map_or(0, |x| x.backlog),
                "consumers": consumers,
                "type": s.sub_type.name(),
                "msgRateOut": sr.msg_out,
                "msgThroughputOut": sr.bytes_out,
                "msgOutCounter": msg_out,
                "bytesOutCounter": bytes_out,
                "unackedMessages": unacked,
                "isDurable": s.durable,
            }),
        );
        if let Some(Value::Object(entry)) = subs.get_mut(&s.name) {
            entry.extend(crate::lifecycle::stats::subscription_fields(&s));
        }
    }
    let publishers: Vec<Value> = topic
        .producers()
        .iter()
        .map(|p| json!({"producerName": p.name, "producerId": p.producer_id}))
        .collect();
    let msg_in = topic.counters.msg_in.load(Ordering::Relaxed);
    let bytes_in = topic.counters.bytes_in.load(Ordering::Relaxed);
    let r = super::rates::rates(
        &format!("{}|{name}", b.http_url),
        now,
        super::rates::Counters {
            msg_in,
            bytes_in,
            msg_out: total_out,
            bytes_out: total_bytes_out,
        },
    );
    let dedup = crate::policies::effective_policies(
        b.metadata.as_ref(),
        &crate::policies::PolicyDefaults::from(&b.config),
        &b.config.cluster_name,
        &name,
    )
    .await
    .map_or(b.config.deduplication_enabled, |p| p.deduplication);
    let mut out = json!({
        "msgRateIn": r.msg_in,
        "msgThroughputIn": r.bytes_in,
        "msgRateOut": r.msg_out,
        "msgThroughputOut": r.bytes_out,
        "msgInCounter": msg_in,
        "bytesInCounter": bytes_in,
        "averageMsgSize": if msg_in > 0 { bytes_in as f64 / msg_in as f64 } else { 0.0 },
        "publishers": publishers,
        "subscriptions": subs,
        "replication": topic.replication.stats_json(),
    });
    if let Value::Object(fields) = &mut out {
        // Lifecycle fields (storage and backlog size, backlog age, expired and duplicate
        // counts); the dedup status stays the policy's, which applies at once.
        fields.extend(crate::lifecycle::stats::topic_fields(&topic));
        fields.insert(
            "deduplicationStatus".into(),
            (if dedup { "Enabled" } else { "Disabled" }).into(),
        );
    }
    Ok(Json(out))
}

async fn get_partitions(
    State(b): S,
    Path((t, ns, topic)): Path<(String, String, String)>,
) -> AdminResult<Json<Value>> {
    let name = topic_name(&t, &ns, &topic)?;
    Ok(Json(json!({ "partitions": b.partitions(&name).await? })))
}

async fn put_partitions(
    State(b): S,
    Path((t, ns, topic)): Path<(String, String, String)>,
    body: String,
) -> AdminResult<StatusCode> {
    let name = super::topic_ops::checked_topic(&b, &t, &ns, &topic).await?;
    let n: u32 = body.trim().parse().map_err(|_| {
        AdminError::new(
            StatusCode::BAD_REQUEST,
            "body must be the number of partitions",
        )
    })?;
    if n == 0 || n > super::openapi::MAX_PARTITIONS {
        return Err(AdminError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "Number of partitions should be between 1 and {}",
                super::openapi::MAX_PARTITIONS
            ),
        ));
    }
    if name.partition_index() >= 0 {
        return Err(AdminError::new(
            StatusCode::PRECONDITION_FAILED,
            "Partitioned topic name should not contain '-partition-'",
        ));
    }
    if b.topic_exists(&name).await? {
        return Err(AdminError::new(
            StatusCode::CONFLICT,
            "This topic already exists as a non-partitioned topic",
        ));
    }
    if b.create_partitioned(&name, n).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AdminError::new(
            StatusCode::CONFLICT,
            "Partitioned topic already exists",
        ))
    }
}

async fn lookup(
    State(b): S,
    Path((t, ns, topic)): Path<(String, String, String)>,
) -> AdminResult<Json<Value>> {
    let name = topic_name(&t, &ns, &topic)?;
    let (broker_url, http_url) = match b.cluster.get() {
        Some(c) => c.owner_urls(&name).await?,
        None => (b.broker_url.clone(), b.http_url.clone()),
    };
    Ok(Json(json!({
        "brokerUrl": broker_url,
        "httpUrl": http_url,
        "nativeUrl": broker_url,
        "brokerUrlTls": "",
        "httpUrlTls": "",
    })))
}
