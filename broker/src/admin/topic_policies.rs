//! Per-topic policy overrides (`/admin/v2/persistent/{t}/{ns}/{topic}/{policy}`), stored at
//! `/topic-policies/...` and resolved over the namespace's by [`crate::policies`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::common::{bad_request, be, not_found, parse_body};
use super::namespaces::{parse_quota, quota_type};
use super::topic_ops::{checked_topic, TopicPath};
use super::AdminResult;
use crate::broker::Broker;
use crate::names::TopicName;
use crate::policies::{
    topic_policies, update_topic_policies, DelayedDeliveryPolicies, RetentionPolicies,
    TopicPolicies,
};

type S = State<Arc<Broker>>;
type Params = Query<HashMap<String, String>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Retention,
    MessageTtl,
    Deduplication,
    MaxProducers,
    MaxConsumers,
    DelayedDelivery,
}

const FIELDS: &[(&str, Field)] = &[
    ("retention", Field::Retention),
    ("messageTTL", Field::MessageTtl),
    ("deduplicationEnabled", Field::Deduplication),
    ("maxProducers", Field::MaxProducers),
    ("maxConsumers", Field::MaxConsumers),
    ("delayedDelivery", Field::DelayedDelivery),
];

pub(super) fn routes() -> Router<Arc<Broker>> {
    let mut r = Router::new()
        .route(
            "/admin/v2/persistent/:t/:ns/:topic/backlogQuotaMap",
            get(quota_map),
        )
        .route(
            "/admin/v2/persistent/:t/:ns/:topic/backlogQuota",
            axum::routing::post(set_quota)
                .put(set_quota)
                .delete(remove_quota),
        );
    for (suffix, f) in FIELDS {
        let f = *f;
        r = r.route(
            &format!("/admin/v2/persistent/:t/:ns/:topic/{suffix}"),
            get(move |s: S, p: TopicPath| get_field(s, p, f))
                .post(move |s: S, p: TopicPath, q: Params, body: Bytes| set_field(s, p, q, body, f))
                .put(move |s: S, p: TopicPath, q: Params, body: Bytes| set_field(s, p, q, body, f))
                .delete(move |s: S, p: TopicPath| clear_field(s, p, f)),
        );
    }
    r
}

/// The topic (or partitioned topic) must exist to carry overrides.
async fn existing(b: &Broker, t: &str, ns: &str, topic: &str) -> AdminResult<TopicName> {
    let name = checked_topic(b, t, ns, topic).await?;
    let base = name.base();
    if b.partitions(&base).await.map_err(be)? == 0 && !b.topic_exists(&name).await.map_err(be)? {
        return Err(not_found("Topic not found"));
    }
    Ok(base)
}

fn read(p: &TopicPolicies, f: Field) -> Value {
    match f {
        Field::Retention => json!(p.retention_policies),
        Field::MessageTtl => json!(p.message_ttl_in_seconds),
        Field::Deduplication => json!(p.deduplication_enabled),
        Field::MaxProducers => json!(p.max_producers),
        Field::MaxConsumers => json!(p.max_consumers),
        Field::DelayedDelivery => json!(p.delayed_delivery),
    }
}

async fn get_field(
    State(b): S,
    Path((t, ns, topic)): TopicPath,
    f: Field,
) -> AdminResult<Json<Value>> {
    let name = existing(&b, &t, &ns, &topic).await?;
    let p = topic_policies(b.metadata.as_ref(), &name)
        .await
        .map_err(be)?;
    Ok(Json(read(&p, f)))
}

fn int_arg(q: &HashMap<String, String>, key: &str, body: &Bytes) -> AdminResult<i32> {
    let v: i64 = match q.get(key) {
        Some(s) => s
            .parse()
            .map_err(|_| bad_request(format!("{key} must be an integer")))?,
        None => parse_body(body)?,
    };
    i32::try_from(v)
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| bad_request(format!("{key} must be a non-negative 32-bit integer")))
}

enum NewValue {
    Retention(RetentionPolicies),
    Int(i32),
    Bool(bool),
    Delayed(DelayedDeliveryPolicies),
}

async fn set_field(
    State(b): S,
    Path((t, ns, topic)): TopicPath,
    Query(q): Params,
    body: Bytes,
    f: Field,
) -> AdminResult<StatusCode> {
    let name = existing(&b, &t, &ns, &topic).await?;
    let v = match f {
        Field::Retention => {
            let r: RetentionPolicies = parse_body(&body)?;
            if r.retention_time_in_minutes < -1 || r.retention_size_in_mb < -1 {
                return Err(bad_request("retention limits must be >= -1"));
            }
            NewValue::Retention(r)
        }
        Field::MessageTtl => NewValue::Int(int_arg(&q, "messageTTL", &body)?),
        Field::MaxProducers => NewValue::Int(int_arg(&q, "maxProducers", &body)?),
        Field::MaxConsumers => NewValue::Int(int_arg(&q, "maxConsumers", &body)?),
        Field::Deduplication => NewValue::Bool(parse_body(&body)?),
        Field::DelayedDelivery => {
            let d: DelayedDeliveryPolicies = parse_body(&body)?;
            if d.tick_time <= 0 {
                return Err(bad_request("tickTime must be positive"));
            }
            NewValue::Delayed(d)
        }
    };
    update_topic_policies(b.metadata.as_ref(), &name, |p| match &v {
        NewValue::Retention(r) => p.retention_policies = Some(*r),
        NewValue::Int(n) => match f {
            Field::MessageTtl => p.message_ttl_in_seconds = Some(*n),
            Field::MaxProducers => p.max_producers = Some(*n),
            _ => p.max_consumers = Some(*n),
        },
        NewValue::Bool(x) => p.deduplication_enabled = Some(*x),
        NewValue::Delayed(d) => p.delayed_delivery = Some(*d),
    })
    .await
    .map_err(be)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn clear_field(
    State(b): S,
    Path((t, ns, topic)): TopicPath,
    f: Field,
) -> AdminResult<StatusCode> {
    let name = existing(&b, &t, &ns, &topic).await?;
    update_topic_policies(b.metadata.as_ref(), &name, |p| match f {
        Field::Retention => p.retention_policies = None,
        Field::MessageTtl => p.message_ttl_in_seconds = None,
        Field::Deduplication => p.deduplication_enabled = None,
        Field::MaxProducers => p.max_producers = None,
        Field::MaxConsumers => p.max_consumers = None,
        Field::DelayedDelivery => p.delayed_delivery = None,
    })
    .await
    .map_err(be)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn quota_map(State(b): S, Path((t, ns, topic)): TopicPath) -> AdminResult<Json<Value>> {
    let name = existing(&b, &t, &ns, &topic).await?;
    let p = topic_policies(b.metadata.as_ref(), &name)
        .await
        .map_err(be)?;
    Ok(Json(json!(p.backlog_quota_map)))
}

async fn set_quota(
    State(b): S,
    Path((t, ns, topic)): TopicPath,
    Query(q): Params,
    body: Bytes,
) -> AdminResult<StatusCode> {
    let name = existing(&b, &t, &ns, &topic).await?;
    let kind = quota_type(&q)?;
    let quota = parse_quota(&body)?;
    update_topic_policies(b.metadata.as_ref(), &name, |p| {
        p.backlog_quota_map.insert(kind.to_string(), quota);
    })
    .await
    .map_err(be)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_quota(
    State(b): S,
    Path((t, ns, topic)): TopicPath,
    Query(q): Params,
) -> AdminResult<StatusCode> {
    let name = existing(&b, &t, &ns, &topic).await?;
    let kind = quota_type(&q)?;
    update_topic_policies(b.metadata.as_ref(), &name, |p| {
        p.backlog_quota_map.remove(kind);
    })
    .await
    .map_err(be)?;
    Ok(StatusCode::NO_CONTENT)
}
