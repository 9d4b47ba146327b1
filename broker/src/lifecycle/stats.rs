//! Lifecycle fields for the admin stats endpoint, in Pulsar's names.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Map, Value};

use crate::subscription::SubscriptionHandle;
use crate::topic::Topic;

/// Subscription-level fields: `msgDelayed` (delayed entries held), `totalMsgExpired`.
/// Merge them into each subscription's stats object.
pub fn subscription_fields(sub: &SubscriptionHandle) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "msgDelayed".into(),
        sub.counters.delayed.load(Relaxed).into(),
    );
    m.insert(
        "totalMsgExpired".into(),
        sub.counters.expired.load(Relaxed).into(),
    );
    m
}

/// Estimated bytes of the largest durable subscription backlog (its entries times the
/// average stored entry size), measured now rather than at the last quota check.
pub fn backlog_bytes(topic: &Topic) -> u64 {
    let entries = topic
        .subscriptions()
        .iter()
        .filter(|s| s.durable)
        .filter_map(|s| s.cursor.backlog())
        .max()
        .unwrap_or(0);
    bytes_of_entries(topic, entries)
}

/// Estimated bytes of `entries` entries of `topic` (its average stored entry size).
pub fn bytes_of_entries(topic: &Topic, entries: u64) -> u64 {
    entries.saturating_mul(topic.log.size_bytes() / topic.log.entries().max(1))
}

/// Topic-level fields: `deduplicationStatus`, `backlogSize`, `storageSize`,
/// `oldestBacklogMessageAgeSeconds`, `msgExpired`, `msgEvicted`, `msgDuplicates`.
/// Merge them into the topic stats object.
pub fn topic_fields(topic: &Topic) -> Map<String, Value> {
    let c = &topic.lifecycle.counters;
    let v = json!({
        "deduplicationStatus": topic.lifecycle.dedup_status(),
        "backlogSize": backlog_bytes(topic),
        "storageSize": topic.log.size_bytes(),
        "oldestBacklogMessageAgeSeconds": c.backlog_age_secs.load(Relaxed),
        "msgExpired": c.msg_expired.load(Relaxed),
        "msgEvicted": c.msg_evicted.load(Relaxed),
        "msgDuplicates": c.duplicates.load(Relaxed),
        "backlogQuotaBlocked": topic.lifecycle.producer_block().is_some(),
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
