//! Namespace and topic policies in Pulsar's JSON shapes, and the resolver that turns them
//! into the [`EffectivePolicies`] of one topic (topic override > namespace > broker default).
//!
//! Storage: a namespace's [`Policies`] are one JSON document at `/namespaces/{t}/{ns}`,
//! changed only by compare-and-set ([`update_namespace_policies`]); fields this module
//! does not know (bundles, ...) are kept as they are. Per-topic overrides ([`TopicPolicies`])
//! live at `/topic-policies/{t}/{ns}/{topic}` (partitions share their base topic's).

mod resolver;

use std::collections::BTreeMap;

use bytes::Bytes;
use magnetar_metadata::{Expect, MetadataStore};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::debug;

use crate::error::{BrokerError, Result};
use crate::names::TopicName;

pub use resolver::{effective_policies, EffectivePolicies, PolicyDefaults, PolicyResolver};

/// `retention_policies`: how long / how much consumed data is kept (-1 = unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicies {
    /// Minutes consumed data is kept.
    pub retention_time_in_minutes: i64,
    /// Megabytes of consumed data kept.
    #[serde(rename = "retentionSizeInMB")]
    pub retention_size_in_mb: i64,
}

/// What happens when a backlog quota is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BacklogQuotaPolicy {
    /// Producers wait until there is room.
    ProducerRequestHold,
    /// Producers get an error.
    ProducerException,
    /// The oldest backlog is dropped.
    ConsumerBacklogEviction,
}

/// One backlog quota (`limitSize` bytes, `limitTime` seconds; -1 = no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BacklogQuota {
    /// Bytes of backlog allowed.
    #[serde(default = "minus_one")]
    pub limit_size: i64,
    /// Seconds of backlog age allowed.
    #[serde(default = "minus_one")]
    pub limit_time: i64,
    /// Action when exceeded.
    pub policy: BacklogQuotaPolicy,
}

fn minus_one() -> i64 {
    -1
}

/// Key of the size-based quota in `backlog_quota_map`.
pub const DESTINATION_STORAGE: &str = "destination_storage";
/// Key of the age-based quota in `backlog_quota_map`.
pub const MESSAGE_AGE: &str = "message_age";

/// `delayed_delivery_policies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelayedDeliveryPolicies {
    /// Delayed delivery enabled.
    pub active: bool,
    /// Tick of the delayed-delivery tracker, ms.
    #[serde(default = "default_tick")]
    pub tick_time: i64,
}

fn default_tick() -> i64 {
    1000
}

impl Default for DelayedDeliveryPolicies {
    fn default() -> Self {
        DelayedDeliveryPolicies {
            active: true,
            tick_time: default_tick(),
        }
    }
}

/// `autoTopicCreationOverride`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoTopicCreation {
    /// Topics are created on first use.
    pub allow_auto_topic_creation: bool,
    /// `non-partitioned` or `partitioned`.
    #[serde(default = "non_partitioned")]
    pub topic_type: String,
    /// Partitions of auto-created partitioned topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_num_partitions: Option<u32>,
}

pub(crate) fn non_partitioned() -> String {
    "non-partitioned".to_string()
}

/// A publish rate limit (`-1` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishRate {
    /// Messages per second.
    #[serde(default = "minus_one")]
    pub publish_throttling_rate_in_msg: i64,
    /// Bytes per second.
    #[serde(default = "minus_one")]
    pub publish_throttling_rate_in_byte: i64,
}

/// A dispatch rate limit (`-1` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchRate {
    /// Messages per period.
    #[serde(default = "minus_one")]
    pub dispatch_throttling_rate_in_msg: i64,
    /// Bytes per period.
    #[serde(default = "minus_one")]
    pub dispatch_throttling_rate_in_byte: i64,
    /// The limit follows the publish rate.
    #[serde(default)]
    pub relative_to_publish_rate: bool,
    /// Period, seconds.
    #[serde(default = "one")]
    pub rate_period_in_second: i64,
}

fn one() -> i64 {
    1
}

/// A namespace's policies, stored at `/namespaces/{t}/{ns}` (Pulsar's `Policies`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policies {
    /// Clusters the namespace is replicated to.
    pub replication_clusters: Vec<String>,
    /// Backlog quotas by type (`destination_storage`, `message_age`).
    pub backlog_quota_map: BTreeMap<String, BacklogQuota>,
    /// Dispatch rate per topic, by cluster.
    #[serde(rename = "topicDispatchRate")]
    pub topic_dispatch_rate: BTreeMap<String, DispatchRate>,
    /// Publish rate per topic, by cluster.
    #[serde(rename = "publishMaxMessageRate")]
    pub publish_max_message_rate: BTreeMap<String, PublishRate>,
    /// Deduplication override.
    #[serde(
        rename = "deduplicationEnabled",
        skip_serializing_if = "Option::is_none"
    )]
    pub deduplication_enabled: Option<bool>,
    /// Auto topic creation override.
    #[serde(
        rename = "autoTopicCreationOverride",
        skip_serializing_if = "Option::is_none"
    )]
    pub auto_topic_creation_override: Option<AutoTopicCreation>,
    /// Message TTL, seconds (0 = none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_ttl_in_seconds: Option<i32>,
    /// Retention of consumed data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_policies: Option<RetentionPolicies>,
    /// Delayed delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delayed_delivery_policies: Option<DelayedDeliveryPolicies>,
    /// Max producers per topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_producers_per_topic: Option<i32>,
    /// Max consumers per topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_consumers_per_topic: Option<i32>,
    /// Being deleted.
    pub deleted: bool,
    /// Fields other components store here (bundles, ...), kept unchanged.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Per-topic overrides (Pulsar's `TopicPolicies`), at `/topic-policies/{t}/{ns}/{topic}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicPolicies {
    /// Retention override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_policies: Option<RetentionPolicies>,
    /// TTL override, seconds.
    #[serde(
        rename = "messageTTLInSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_ttl_in_seconds: Option<i32>,
    /// Backlog quota overrides.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub backlog_quota_map: BTreeMap<String, BacklogQuota>,
    /// Deduplication override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deduplication_enabled: Option<bool>,
    /// Max producers override.
    #[serde(
        rename = "maxProducerPerTopic",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_producers: Option<i32>,
    /// Max consumers override.
    #[serde(
        rename = "maxConsumerPerTopic",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_consumers: Option<i32>,
    /// Delayed delivery override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delayed_delivery: Option<DelayedDeliveryPolicies>,
}

/// Metadata key of a namespace's policies.
pub fn namespace_key(tenant: &str, ns: &str) -> String {
    format!("/namespaces/{tenant}/{ns}")
}

/// Metadata key of a topic's policy overrides (partitions use their base topic's).
pub fn topic_policies_key(topic: &TopicName) -> String {
    let base = topic.base();
    format!(
        "/topic-policies/{}/{}/{}/{}",
        base.tenant,
        base.namespace,
        base.domain(),
        base.local
    )
}

/// A namespace's policies (`None` if the namespace does not exist).
pub async fn namespace_policies(
    metadata: &dyn MetadataStore,
    tenant: &str,
    ns: &str,
) -> Result<Option<Policies>> {
    match metadata.get(&namespace_key(tenant, ns)).await? {
        Some(v) if v.value.is_empty() => Ok(Some(Policies::default())),
        Some(v) => Ok(Some(serde_json::from_slice(&v.value)?)),
        None => Ok(None),
    }
}

/// A topic's overrides (empty if none were set).
pub async fn topic_policies(
    metadata: &dyn MetadataStore,
    topic: &TopicName,
) -> Result<TopicPolicies> {
    match metadata.get(&topic_policies_key(topic)).await? {
        Some(v) => Ok(serde_json::from_slice(&v.value)?),
        None => Ok(TopicPolicies::default()),
    }
}

const CAS_ATTEMPTS: usize = 32;

/// Applies `change` to a JSON document by compare-and-set, retrying on conflicts.
/// `create` allows writing the document when the key is absent.
async fn update_doc<T, F>(
    metadata: &dyn MetadataStore,
    key: &str,
    create: bool,
    change: F,
) -> Result<Option<T>>
where
    T: Serialize + serde::de::DeserializeOwned + Default,
    F: Fn(&mut T),
{
    for _ in 0..CAS_ATTEMPTS {
        let (mut doc, expect) = match metadata.get(key).await? {
            Some(v) if v.value.is_empty() => (T::default(), Expect::Version(v.version)),
            Some(v) => (
                serde_json::from_slice(&v.value)?,
                Expect::Version(v.version),
            ),
            None if create => (T::default(), Expect::Absent),
            None => return Ok(None),
        };
        change(&mut doc);
        let body = Bytes::from(serde_json::to_vec(&doc)?);
        match metadata.put(key, body, expect, None).await {
            Ok(_) => return Ok(Some(doc)),
            Err(e) if e.is_bad_version() => debug!(key, "policy CAS conflict, retrying"),
            Err(e) => return Err(e.into()),
        }
    }
    Err(BrokerError::ServiceNotReady(format!(
        "too many concurrent updates of {key}"
    )))
}

/// Changes a namespace's policies by compare-and-set. `None` if the namespace is missing.
pub async fn update_namespace_policies<F>(
    metadata: &dyn MetadataStore,
    tenant: &str,
    ns: &str,
    change: F,
) -> Result<Option<Policies>>
where
    F: Fn(&mut Policies),
{
    update_doc(metadata, &namespace_key(tenant, ns), false, change).await
}

/// Changes a topic's overrides by compare-and-set (created on first use).
pub async fn update_topic_policies<F>(
    metadata: &dyn MetadataStore,
    topic: &TopicName,
    change: F,
) -> Result<TopicPolicies>
where
    F: Fn(&mut TopicPolicies),
{
    Ok(
        update_doc(metadata, &topic_policies_key(topic), true, change)
            .await?
            .unwrap_or_default(),
    )
}
