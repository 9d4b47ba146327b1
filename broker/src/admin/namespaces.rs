//! Namespace deletion and namespace policies (`/admin/v2/namespaces/{t}/{ns}/{policy}`):
//! GET returns the value, POST/PUT sets it, DELETE removes it. Every change is a
//! compare-and-set of the namespace's one `Policies` document.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use bytes::Bytes;
use magnetar_metadata::{list_all, Expect};
use serde_json::{json, Value};

use super::common::{
    any_under, bad_request, be, md, not_found, parse_body, precondition, require_namespace,
};
use super::AdminResult;
use crate::broker::Broker;
use crate::policies::{
    namespace_policies, update_namespace_policies, AutoTopicCreation, BacklogQuota,
    DelayedDeliveryPolicies, DispatchRate, Policies, PublishRate, RetentionPolicies,
    DESTINATION_STORAGE, MESSAGE_AGE,
};

type S = State<Arc<Broker>>;
type NsPath = Path<(String, String)>;

/// A namespace policy reachable at its own path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    Retention,
    MessageTtl,
    Deduplication,
    DelayedDelivery,
    AutoTopicCreation,
    MaxProducers,
    MaxConsumers,
    Replication,
    PublishRate,
    DispatchRate,
}

/// Path suffix and field of every namespace policy.
pub(super) const FIELDS: &[(&str, Field)] = &[
    ("retention", Field::Retention),
    ("messageTTL", Field::MessageTtl),
    ("deduplication", Field::Deduplication),
    ("delayedDelivery", Field::DelayedDelivery),
    ("autoTopicCreation", Field::AutoTopicCreation),
    ("maxProducersPerTopic", Field::MaxProducers),
    ("maxConsumersPerTopic", Field::MaxConsumers),
    ("replication", Field::Replication),
    ("publishRate", Field::PublishRate),
    ("dispatchRate", Field::DispatchRate),
];

pub(super) fn routes() -> Router<Arc<Broker>> {
    let mut r = Router::new()
        .route("/admin/v2/namespaces/:t/:ns", delete(delete_namespace))
        .route("/admin/v2/namespaces/:t/:ns/policies", get(policies))
        .route("/admin/v2/namespaces/:t/:ns/topics", get(topics))
        .route(
            "/admin/v2/namespaces/:t/:ns/backlogQuotaMap",
            get(backlog_quota_map),
        )
        .route(
            "/admin/v2/namespaces/:t/:ns/backlogQuota",
            axum::routing::post(set_backlog_quota)
                .put(set_backlog_quota)
                .delete(remove_backlog_quota),
        );
    for (suffix, f) in FIELDS {
        let f = *f;
        r = r.route(
            &format!("/admin/v2/namespaces/:t/:ns/{suffix}"),
            get(move |s: S, p: NsPath| get_field(s, p, f))
                .post(move |s: S, p: NsPath, body: Bytes| set_field(s, p, f, body))
                .put(move |s: S, p: NsPath, body: Bytes| set_field(s, p, f, body))
                .delete(move |s: S, p: NsPath| clear_field(s, p, f)),
        );
    }
    r
}

async fn load(b: &Broker, t: &str, ns: &str) -> AdminResult<Policies> {
    require_namespace(b, t, ns).await?;
    namespace_policies(b.metadata.as_ref(), t, ns)
        .await
        .map_err(be)?
        .ok_or_else(|| not_found("Namespace does not exist"))
}

async fn update<F>(b: &Broker, t: &str, ns: &str, change: F) -> AdminResult<StatusCode>
where
    F: Fn(&mut Policies),
{
    require_namespace(b, t, ns).await?;
    match update_namespace_policies(b.metadata.as_ref(), t, ns, change)
        .await
        .map_err(be)?
    {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(not_found("Namespace does not exist")),
    }
}

async fn topics(State(b): S, Path((t, ns)): NsPath) -> AdminResult<Json<Vec<String>>> {
    require_namespace(&b, &t, &ns).await?;
    let mut all = b.list_topics(&t, &ns).await.map_err(be)?;
    for p in b.list_partitioned(&t, &ns).await.map_err(be)? {
        if !all.contains(&p) {
            all.push(p);
        }
    }
    all.sort();
    Ok(Json(all))
}

async fn policies(State(b): S, Path((t, ns)): NsPath) -> AdminResult<Json<Policies>> {
    Ok(Json(load(&b, &t, &ns).await?))
}

fn read(p: &Policies, f: Field, cluster: &str) -> Value {
    let v = match f {
        Field::Retention => serde_json::to_value(p.retention_policies),
        Field::MessageTtl => serde_json::to_value(p.message_ttl_in_seconds),
        Field::Deduplication => serde_json::to_value(p.deduplication_enabled),
        Field::DelayedDelivery => serde_json::to_value(p.delayed_delivery_policies),
        Field::AutoTopicCreation => serde_json::to_value(&p.auto_topic_creation_override),
        Field::MaxProducers => serde_json::to_value(p.max_producers_per_topic),
        Field::MaxConsumers => serde_json::to_value(p.max_consumers_per_topic),
        Field::Replication => serde_json::to_value(&p.replication_clusters),
        Field::PublishRate => serde_json::to_value(p.publish_max_message_rate.get(cluster)),
        Field::DispatchRate => serde_json::to_value(p.topic_dispatch_rate.get(cluster)),
    };
    v.unwrap_or(Value::Null)
}

async fn get_field(State(b): S, Path((t, ns)): NsPath, f: Field) -> AdminResult<Json<Value>> {
    let p = load(&b, &t, &ns).await?;
    Ok(Json(read(&p, f, &b.config.cluster_name)))
}

fn non_negative(v: i64, what: &str) -> AdminResult<i32> {
    i32::try_from(v)
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| bad_request(format!("{what} must be a non-negative 32-bit integer")))
}

/// A validated new value for a field.
enum NewValue {
    Retention(RetentionPolicies),
    Int(i32),
    Bool(bool),
    Delayed(DelayedDeliveryPolicies),
    Auto(AutoTopicCreation),
    Clusters(Vec<String>),
    Publish(PublishRate),
    Dispatch(DispatchRate),
}

async fn parse_value(b: &Broker, f: Field, body: &Bytes) -> AdminResult<NewValue> {
    Ok(match f {
        Field::Retention => {
            let r: RetentionPolicies = parse_body(body)?;
            if r.retention_time_in_minutes < -1 || r.retention_size_in_mb < -1 {
                return Err(bad_request("retention limits must be >= -1"));
            }
            NewValue::Retention(r)
        }
        Field::MessageTtl => NewValue::Int(non_negative(parse_body::<i64>(body)?, "messageTTL")?),
        Field::MaxProducers | Field::MaxConsumers => {
            NewValue::Int(non_negative(parse_body::<i64>(body)?, "limit")?)
        }
        Field::Deduplication => NewValue::Bool(parse_body(body)?),
        Field::DelayedDelivery => {
            let d: DelayedDeliveryPolicies = parse_body(body)?;
            if d.tick_time <= 0 {
                return Err(bad_request("tickTime must be positive"));
            }
            NewValue::Delayed(d)
        }
        Field::AutoTopicCreation => {
            let a: AutoTopicCreation = parse_body(body)?;
            match a.topic_type.as_str() {
                "non-partitioned" => {}
                "partitioned" if a.default_num_partitions.unwrap_or(0) > 0 => {}
                "partitioned" => {
                    return Err(bad_request(
                        "defaultNumPartitions must be positive for partitioned topics",
                    ))
                }
                other => return Err(bad_request(format!("unknown topicType {other:?}"))),
            }
            NewValue::Auto(a)
        }
        Field::Replication => {
            let cs: Vec<String> = parse_body(body)?;
            for c in &cs {
                super::common::check_name("Cluster", c)?;
                if b.metadata
                    .get(&format!("/clusters/{c}"))
                    .await
                    .map_err(md)?
                    .is_none()
                {
                    return Err(precondition(format!("Cluster {c} does not exist")));
                }
            }
            NewValue::Clusters(cs)
        }
        Field::PublishRate => NewValue::Publish(parse_body(body)?),
        Field::DispatchRate => NewValue::Dispatch(parse_body(body)?),
    })
}

async fn set_field(
    State(b): S,
    Path((t, ns)): NsPath,
    f: Field,
    body: Bytes,
) -> AdminResult<StatusCode> {
    require_namespace(&b, &t, &ns).await?;
    let v = parse_value(&b, f, &body).await?;
    if let NewValue::Clusters(cs) = &v {
        // Only clusters the tenant is allowed on (as Pulsar: 403 Forbidden).
        let md = b.metadata.as_ref();
        if let Some(why) = crate::replication::refuse_replication_clusters(md, &t, cs)
            .await
            .map_err(be)?
        {
            return Err(super::AdminError::new(StatusCode::FORBIDDEN, why));
        }
    }
    let cluster = b.config.cluster_name.clone();
    update(&b, &t, &ns, |p| match &v {
        NewValue::Retention(r) => p.retention_policies = Some(*r),
        NewValue::Int(n) => match f {
            Field::MessageTtl => p.message_ttl_in_seconds = Some(*n),
            Field::MaxProducers => p.max_producers_per_topic = Some(*n),
            _ => p.max_consumers_per_topic = Some(*n),
        },
        NewValue::Bool(x) => p.deduplication_enabled = Some(*x),
        NewValue::Delayed(d) => p.delayed_delivery_policies = Some(*d),
        NewValue::Auto(a) => p.auto_topic_creation_override = Some(a.clone()),
        NewValue::Clusters(cs) => p.replication_clusters = cs.clone(),
        NewValue::Publish(r) => {
            p.publish_max_message_rate.insert(cluster.clone(), *r);
        }
        NewValue::Dispatch(r) => {
            p.topic_dispatch_rate.insert(cluster.clone(), *r);
        }
    })
    .await
}

async fn clear_field(State(b): S, Path((t, ns)): NsPath, f: Field) -> AdminResult<StatusCode> {
    let cluster = b.config.cluster_name.clone();
    update(&b, &t, &ns, |p| match f {
        Field::Retention => p.retention_policies = None,
        Field::MessageTtl => p.message_ttl_in_seconds = None,
        Field::Deduplication => p.deduplication_enabled = None,
        Field::DelayedDelivery => p.delayed_delivery_policies = None,
        Field::AutoTopicCreation => p.auto_topic_creation_override = None,
        Field::MaxProducers => p.max_producers_per_topic = None,
        Field::MaxConsumers => p.max_consumers_per_topic = None,
        Field::Replication => p.replication_clusters.clear(),
        Field::PublishRate => {
            p.publish_max_message_rate.remove(&cluster);
        }
        Field::DispatchRate => {
            p.topic_dispatch_rate.remove(&cluster);
        }
    })
    .await
}

/// `backlogQuotaType` query parameter: `destination_storage` (default) or `message_age`.
pub(super) fn quota_type(q: &HashMap<String, String>) -> AdminResult<&'static str> {
    match q.get("backlogQuotaType").map(String::as_str) {
        None | Some("destination_storage") => Ok(DESTINATION_STORAGE),
        Some("message_age") => Ok(MESSAGE_AGE),
        Some(other) => Err(bad_request(format!("unknown backlogQuotaType {other:?}"))),
    }
}

/// Parses a backlog quota body (accepting Pulsar's deprecated `limit` for `limitSize`).
pub(super) fn parse_quota(body: &Bytes) -> AdminResult<BacklogQuota> {
    let mut v: Value = parse_body(body)?;
    if let Some(obj) = v.as_object_mut() {
        if !obj.contains_key("limitSize") {
            if let Some(l) = obj.get("limit").cloned() {
                obj.insert("limitSize".into(), l);
            }
        }
    }
    let q: BacklogQuota = serde_json::from_value(v)
        .map_err(|e| bad_request(format!("invalid backlog quota: {e}")))?;
    // Pulsar's limitTime is a 32-bit number of seconds; -1 means no limit.
    if q.limit_size < -1 || q.limit_time < -1 || q.limit_time > i64::from(i32::MAX) {
        return Err(bad_request(
            "limitSize must be >= -1 and limitTime between -1 and 2147483647",
        ));
    }
    Ok(q)
}

async fn backlog_quota_map(State(b): S, Path((t, ns)): NsPath) -> AdminResult<Json<Value>> {
    let p = load(&b, &t, &ns).await?;
    Ok(Json(json!(p.backlog_quota_map)))
}

async fn set_backlog_quota(
    State(b): S,
    Path((t, ns)): NsPath,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> AdminResult<StatusCode> {
    let kind = quota_type(&q)?;
    let quota = parse_quota(&body)?;
    update(&b, &t, &ns, |p| {
        p.backlog_quota_map.insert(kind.to_string(), quota);
    })
    .await
}

async fn remove_backlog_quota(
    State(b): S,
    Path((t, ns)): NsPath,
    Query(q): Query<HashMap<String, String>>,
) -> AdminResult<StatusCode> {
    let kind = quota_type(&q)?;
    update(&b, &t, &ns, |p| {
        p.backlog_quota_map.remove(kind);
    })
    .await
}

/// `?force=true`: every topic of the namespace goes first (clients are disconnected).
async fn delete_all_topics(b: &Broker, t: &str, ns: &str) -> AdminResult<()> {
    for topic in b.list_topics(t, ns).await.map_err(be)? {
        let name = crate::names::TopicName::parse(&topic).map_err(be)?;
        super::topic_ops::remove_topic(b, &name, true).await?;
    }
    let prefix = format!("/partitioned-topics/{t}/{ns}/");
    for (k, _) in list_all(b.metadata.as_ref(), &prefix).await.map_err(md)? {
        b.metadata.delete(&k, Expect::Any).await.map_err(md)?;
    }
    Ok(())
}

async fn delete_namespace(
    State(b): S,
    Path((t, ns)): NsPath,
    Query(q): Query<HashMap<String, String>>,
) -> AdminResult<StatusCode> {
    require_namespace(&b, &t, &ns).await?;
    let force = q.get("force").is_some_and(|v| v == "true");
    if any_under(&b, &format!("/topics/{t}/{ns}/")).await?
        || any_under(&b, &format!("/partitioned-topics/{t}/{ns}/")).await?
    {
        if !force {
            return Err(precondition("Cannot delete non empty namespace"));
        }
        delete_all_topics(&b, &t, &ns).await?;
    }
    let policies_prefix = format!("/topic-policies/{t}/{ns}/");
    for (k, _) in list_all(b.metadata.as_ref(), &policies_prefix)
        .await
        .map_err(md)?
    {
        b.metadata.delete(&k, Expect::Any).await.map_err(md)?;
    }
    b.metadata
        .delete(&format!("/namespaces/{t}/{ns}"), Expect::Any)
        .await
        .map_err(md)?;
    Ok(StatusCode::NO_CONTENT)
}
