//! Resolution of the policies in force for one topic: topic override > namespace > broker
//! default, with a cache invalidated by a metadata watch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use magnetar_metadata::MetadataStore;
use tokio_util::sync::CancellationToken;

use super::{
    namespace_policies, non_partitioned, topic_policies, AutoTopicCreation, BacklogQuota,
    DelayedDeliveryPolicies, DispatchRate, Policies, PublishRate, RetentionPolicies, TopicPolicies,
};
use crate::config::BrokerConfig;
use crate::error::Result;
use crate::names::TopicName;

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
    use crate::policies::{namespace_key, update_namespace_policies, update_topic_policies};
    use bytes::Bytes;
    use magnetar_metadata::Expect;

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
