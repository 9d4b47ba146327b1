//! Namespace and topic policies in Pulsar's JSON shapes, and the resolver that turns them
//! into the [`EffectivePolicies`] of one topic (topic override > namespace > broker default).
//!
//! Storage: a namespace's [`Policies`] are one JSON document at `/namespaces/{t}/{ns}`,
//! changed only by compare-and-set ([`update_namespace_policies`]); fields this module
//! does not know (bundles, ...) are kept as they are. Per-topic overrides ([`TopicPolicies`])
//! live at `/topic-policies/{t}/{ns}/{topic}` (partitions share their base topic's).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use magnetar_metadata::{Expect, MetadataStore};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};
use crate::names::TopicName;

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

fn non_partitioned() -> String {
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

/// Broker-wide defaults that policies override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDefaults {
    /// Deduplication.
    pub deduplication: bool,
    /// Auto topic creation.
    pub allow_auto_topic_creation: bool,
}

impl From<&BrokerConfig> for PolicyDefaults {
    fn from(c: &BrokerConfig) -> Self {
        PolicyDefaults {
            deduplication: c.deduplication_enabled,
            allow_auto_topic_creation: c.allow_auto_topic_creation,
        }
    }
}

/// The policies in force for one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectivePolicies {
    /// Retention (`0/0` = keep nothing consumed).
    pub retention: RetentionPolicies,
    /// Message TTL (`None` = messages never expire).
    pub message_ttl: Option<Duration>,
    /// Backlog quotas by type.
    pub backlog_quotas: BTreeMap<String, BacklogQuota>,
    /// Deduplication.
    pub deduplication: bool,
    /// Delayed delivery.
    pub delayed_delivery: DelayedDeliveryPolicies,
    /// Max producers (`None` = unlimited).
    pub max_producers: Option<u32>,
    /// Max consumers (`None` = unlimited).
    pub max_consumers: Option<u32>,
    /// Auto topic creation.
    pub auto_topic_creation: AutoTopicCreation,
    /// Replication clusters of the namespace.
    pub replication_clusters: Vec<String>,
    /// Publish rate limit for this cluster.
    pub publish_rate: Option<PublishRate>,
    /// Dispatch rate limit for this cluster.
    pub dispatch_rate: Option<DispatchRate>,
}

fn positive(v: Option<i32>) -> Option<u32> {
    v.filter(|n| *n > 0).map(|n| n as u32)
}

impl EffectivePolicies {
    /// Resolves topic override > namespace > broker default.
    pub fn resolve(
        defaults: &PolicyDefaults,
        cluster: &str,
        ns: &Policies,
        topic: &TopicPolicies,
    ) -> EffectivePolicies {
        let mut quotas = ns.backlog_quota_map.clone();
        quotas.extend(topic.backlog_quota_map.clone());
        let ttl = topic.message_ttl_in_seconds.or(ns.message_ttl_in_seconds);
        EffectivePolicies {
            retention: topic
                .retention_policies
                .or(ns.retention_policies)
                .unwrap_or_default(),
            message_ttl: positive(ttl).map(|s| Duration::from_secs(u64::from(s))),
            backlog_quotas: quotas,
            deduplication: topic
                .deduplication_enabled
                .or(ns.deduplication_enabled)
                .unwrap_or(defaults.deduplication),
            delayed_delivery: topic
                .delayed_delivery
                .or(ns.delayed_delivery_policies)
                .unwrap_or_default(),
            max_producers: positive(topic.max_producers.or(ns.max_producers_per_topic)),
            max_consumers: positive(topic.max_consumers.or(ns.max_consumers_per_topic)),
            auto_topic_creation: ns.auto_topic_creation_override.clone().unwrap_or(
                AutoTopicCreation {
                    allow_auto_topic_creation: defaults.allow_auto_topic_creation,
                    topic_type: non_partitioned(),
                    default_num_partitions: None,
                },
            ),
            replication_clusters: ns.replication_clusters.clone(),
            publish_rate: ns.publish_max_message_rate.get(cluster).copied(),
            dispatch_rate: ns.topic_dispatch_rate.get(cluster).copied(),
        }
    }
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

/// Resolves a topic's policies from the metadata service (no cache).
pub async fn effective_policies(
    metadata: &dyn MetadataStore,
    defaults: &PolicyDefaults,
    cluster: &str,
    topic: &TopicName,
) -> Result<EffectivePolicies> {
    let ns = namespace_policies(metadata, &topic.tenant, &topic.namespace)
        .await?
        .unwrap_or_default();
    let tp = topic_policies(metadata, topic).await?;
    Ok(EffectivePolicies::resolve(defaults, cluster, &ns, &tp))
}

/// Cached policy resolution for the broker's features. Entries expire after a few
/// seconds and are dropped at once when a namespace or topic policy changes (a watch on
/// the metadata service, see [`PolicyResolver::spawn_invalidator`]).
pub struct PolicyResolver {
    metadata: Arc<dyn MetadataStore>,
    defaults: PolicyDefaults,
    cluster: String,
    cache: moka::future::Cache<TopicName, Arc<EffectivePolicies>>,
}

impl PolicyResolver {
    /// A resolver with the broker's defaults.
    pub fn new(metadata: Arc<dyn MetadataStore>, config: &BrokerConfig) -> Arc<PolicyResolver> {
        Arc::new(PolicyResolver {
            metadata,
            defaults: PolicyDefaults::from(config),
            cluster: config.cluster_name.clone(),
            cache: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(5))
                .build(),
        })
    }

    /// The policies in force for `topic` (partitions resolve through their base topic).
    pub async fn get(&self, topic: &TopicName) -> Result<Arc<EffectivePolicies>> {
        let base = topic.base();
        if let Some(p) = self.cache.get(&base).await {
            return Ok(p);
        }
        let p = Arc::new(
            effective_policies(self.metadata.as_ref(), &self.defaults, &self.cluster, &base)
                .await?,
        );
        self.cache.insert(base, p.clone()).await;
        Ok(p)
    }

    /// Forgets every cached resolution.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Watches `/namespaces/` and `/topic-policies/` and invalidates the cache on every
    /// change, until `shutdown`. The watches are open when this returns, so any change
    /// committed afterwards is seen. Without it, changes show within the cache TTL.
    pub async fn spawn_invalidator(self: &Arc<Self>, shutdown: CancellationToken) -> Result<()> {
        let rev = self.metadata.revision().await?;
        let ns = self.metadata.watch("/namespaces/", rev).await?;
        let tp = self.metadata.watch("/topic-policies/", rev).await?;
        // Anything cached before the watches opened may be stale.
        self.invalidate_all();
        let me = self.clone();
        tokio::spawn(async move {
            let mut both = futures::stream::select(ns, tp);
            loop {
                tokio::select! {
                    ev = both.next() => match ev {
                        Some(Ok(_)) => me.invalidate_all(),
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "policy watch failed; relying on cache expiry");
                            break;
                        }
                        None => break,
                    },
                    _ = shutdown.cancelled() => break,
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_override_beats_namespace_beats_default() {
        let defaults = PolicyDefaults {
            deduplication: false,
            allow_auto_topic_creation: true,
        };
        let ns = Policies {
            message_ttl_in_seconds: Some(60),
            deduplication_enabled: Some(true),
            max_producers_per_topic: Some(3),
            ..Policies::default()
        };
        let tp = TopicPolicies {
            message_ttl_in_seconds: Some(5),
            ..TopicPolicies::default()
        };
        let e = EffectivePolicies::resolve(&defaults, "c", &ns, &tp);
        assert_eq!(e.message_ttl, Some(Duration::from_secs(5)));
        assert!(e.deduplication);
        assert_eq!(e.max_producers, Some(3));
        assert!(e.auto_topic_creation.allow_auto_topic_creation);
        let none = EffectivePolicies::resolve(
            &defaults,
            "c",
            &Policies::default(),
            &TopicPolicies::default(),
        );
        assert_eq!(none.message_ttl, None);
        assert!(!none.deduplication);
    }

    #[test]
    fn policies_keep_unknown_fields_and_use_pulsar_names() {
        let json = r#"{"replication_clusters":["a"],"bundles":{"numBundles":4},
            "retention_policies":{"retentionTimeInMinutes":10,"retentionSizeInMB":20}}"#;
        let p: Policies = serde_json::from_str(json).expect("parse");
        assert_eq!(
            p.retention_policies.map(|r| r.retention_size_in_mb),
            Some(20)
        );
        let back = serde_json::to_value(&p).expect("serialize");
        assert_eq!(back["bundles"]["numBundles"], 4);
        assert_eq!(back["retention_policies"]["retentionTimeInMinutes"], 10);
    }

    #[tokio::test]
    async fn resolver_sees_namespace_and_topic_changes_through_the_watch() {
        let store = magnetar_metadata::MemStore::new();
        let metadata: Arc<dyn MetadataStore> = store;
        let config = BrokerConfig::default();
        metadata
            .put(
                &namespace_key("public", "default"),
                Bytes::from_static(br#"{"replication_clusters":["standalone"]}"#),
                Expect::Absent,
                None,
            )
            .await
            .expect("create namespace");
        let resolver = PolicyResolver::new(metadata.clone(), &config);
        let shutdown = CancellationToken::new();
        resolver
            .spawn_invalidator(shutdown.clone())
            .await
            .expect("watch");
        let topic = TopicName::parse("persistent://public/default/x-partition-1").expect("name");
        assert_eq!(resolver.get(&topic).await.expect("get").message_ttl, None);

        update_namespace_policies(metadata.as_ref(), "public", "default", |p| {
            p.message_ttl_in_seconds = Some(30);
        })
        .await
        .expect("update")
        .expect("namespace exists");
        update_topic_policies(metadata.as_ref(), &topic.base(), |p| {
            p.max_consumers = Some(2);
        })
        .await
        .expect("topic update");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
        loop {
            let p = resolver.get(&topic).await.expect("get");
            if p.message_ttl == Some(Duration::from_secs(30)) && p.max_consumers == Some(2) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "change never seen: {p:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let missing = update_namespace_policies(metadata.as_ref(), "public", "nope", |_| {})
            .await
            .expect("no error");
        assert!(missing.is_none());
        shutdown.cancel();
    }
}
