//! Broker-wide state: configuration, metadata, storage and the topics loaded here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use magnetar_metadata::{list_all, Expect, MetadataStore};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::BrokerConfig;
use crate::dispatch::SubType;
use crate::error::{BrokerError, Result};
use crate::names::TopicName;
use crate::storage::InitialPosition;
use crate::storage::TopicStorage;
use crate::topic::Topic;

/// Stored at `/partitioned-topics/{t}/{ns}/{topic}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionedMetadata {
    /// Number of partitions.
    pub partitions: u32,
}

/// The broker's shared state.
pub struct Broker {
    /// Configuration.
    pub config: BrokerConfig,
    /// Metadata service.
    pub metadata: Arc<dyn MetadataStore>,
    /// Topic storage.
    pub storage: Arc<dyn TopicStorage>,
    /// `pulsar://host:port` clients connect to.
    pub broker_url: String,
    /// `http://host:port` of the admin API.
    pub http_url: String,
    /// Cancelled when the broker shuts down.
    pub shutdown: CancellationToken,
    topics: Mutex<HashMap<TopicName, Arc<OnceCell<Arc<Topic>>>>>,
    next_key: AtomicU64,
    /// Cluster mode (bundle ownership); unset in standalone, where this broker serves all.
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// Producer names reserved but not handed out yet: (last handed out, last reserved).
    name_block: Mutex<(u64, u64)>,
    /// In-memory windows of the `non-persistent://` topics loaded here.
    volatile: Arc<crate::storage::volatile::VolatileStorage>,
}

/// Producer names reserved from the metadata counter at a time.
const PRODUCER_NAME_BLOCK: u64 = 1000;

/// Metadata key marking that a (non-partitioned) topic exists.
pub fn topic_key(t: &TopicName) -> String {
    format!(
        "/topics/{}/{}/{}/{}",
        t.tenant,
        t.namespace,
        t.domain(),
        t.local
    )
}

impl Broker {
    /// Broker state; `broker_url`/`http_url` are what LOOKUP and admin advertise.
    pub fn new(
        config: BrokerConfig,
        metadata: Arc<dyn MetadataStore>,
        storage: Arc<dyn TopicStorage>,
        broker_url: String,
        http_url: String,
        shutdown: CancellationToken,
    ) -> Broker {
        Broker {
            config,
            metadata,
            storage,
            broker_url,
            http_url,
            shutdown,
            topics: Mutex::new(HashMap::new()),
            next_key: AtomicU64::new(1),
            cluster: std::sync::OnceLock::new(),
            name_block: Mutex::new((0, 0)),
            volatile: crate::storage::volatile::VolatileStorage::new(Default::default()),
        }
    }

    /// A broker-unique id for producers and consumers.
    pub fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// A generated producer name `{cluster}-{n}`, unique across restarts.
    pub async fn producer_name(&self) -> String {
        let n = {
            let mut block = self.name_block.lock();
            (block.0 < block.1).then(|| {
                block.0 += 1;
                block.0
            })
        };
        let n = match n {
            Some(n) => n,
            // Names come from blocks reserved in the metadata service: one write per
            // PRODUCER_NAME_BLOCK producers instead of one per producer.
            None => match self
                .metadata
                .increment("/counters/producer-name", PRODUCER_NAME_BLOCK)
                .await
            {
                Ok(end) => {
                    let start = end.saturating_sub(PRODUCER_NAME_BLOCK) + 1;
                    let mut block = self.name_block.lock();
                    *block = (start, end);
                    start
                }
                Err(e) => {
                    // Never reuse a name another producer may hold (deduplication keys
                    // on it): fall back to a random one.
                    warn!(error = %e, "producer name counter unavailable");
                    return format!(
                        "{}-r{:016x}",
                        self.config.cluster_name,
                        rand::random::<u64>()
                    );
                }
            },
        };
        format!("{}-{}", self.config.cluster_name, n)
    }

    /// The topic if it is loaded here.
    pub fn loaded_topic(&self, name: &TopicName) -> Option<Arc<Topic>> {
        self.topics.lock().get(name)?.get().cloned()
    }

    /// All loaded topics.
    pub fn loaded_topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .lock()
            .values()
            .filter_map(|c| c.get().cloned())
            .collect()
    }

    /// True if the (non-partitioned) topic exists.
    pub async fn topic_exists(&self, name: &TopicName) -> Result<bool> {
        if self.loaded_topic(name).is_some() {
            return Ok(true);
        }
        Ok(self.metadata.get(&topic_key(name)).await?.is_some())
    }

    /// Loads a topic, creating it when allowed (`create` and auto-creation enabled).
    pub async fn get_topic(&self, name: &TopicName, create: bool) -> Result<Arc<Topic>> {
        if self.shutdown.is_cancelled() {
            return Err(BrokerError::ServiceNotReady("broker shutting down".into()));
        }
        if let Some(cluster) = self.cluster.get() {
            cluster.check_owned(name).await?;
        }
        let cell = {
            let mut topics = self.topics.lock();
            let stale = topics
                .get(name)
                .and_then(|c| c.get())
                .filter(|t| !t.log.is_healthy())
                .cloned();
            if let Some(old) = stale {
                // The log failed or lost ownership: close the old instance (clients
                // reconnect) and open the topic afresh.
                warn!(topic = %name, "topic log unhealthy; reopening");
                topics.remove(name);
                tokio::spawn(async move {
                    let _ = old.close().await;
                });
            }
            topics.entry(name.clone()).or_default().clone()
        };
        let res = cell
            .get_or_try_init(|| async {
                // Non-persistent topics live only in memory: no metadata record, always
                // creatable, as in Pulsar.
                let exists = !name.persistent || self.topic_exists(name).await?;
                if !exists {
                    // A partition of a partitioned topic exists once the partitioned topic
                    // does (as in Pulsar), whatever the auto-creation policy says.
                    let index = name.partition_index();
                    let declared =
                        index >= 0 && self.partitions(&name.base()).await? > index as u32;
                    if !(declared || create && self.config.allow_auto_topic_creation) {
                        return Err(BrokerError::TopicNotFound(name.to_string()));
                    }
                    if self.partitions(&name.base()).await? > 0 && name.partition_index() < 0 {
                        return Err(BrokerError::InvalidRequest(format!(
                            "{name} is a partitioned topic; use its partitions"
                        )));
                    }
                    let key = topic_key(name);
                    match self
                        .metadata
                        .put(&key, Bytes::from_static(b"{}"), Expect::Absent, None)
                        .await
                    {
                        Ok(_) => info!(topic = %name, "topic created"),
                        Err(e) if e.is_bad_version() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                let log = if name.persistent {
                    self.storage.open(&name.ledger_name()).await?
                } else {
                    self.volatile.open(&name.ledger_name()).await?
                };
                let topic = Arc::new(Topic::new(
                    name.clone(),
                    log.clone(),
                    self.config.deduplication_enabled,
                    self.config.dispatch_max_read_entries,
                ));
                if log
                    .properties()
                    .contains_key(crate::storage::TERMINATED_PROPERTY)
                {
                    topic.terminate(); // terminated before a restart or move
                }
                crate::lifecycle::on_topic_loaded(self, &topic).await?;
                // Durable subscriptions exist before any consumer comes back (stats,
                // admin); the first consumer sets their type.
                for sub in log.cursor_names() {
                    if crate::replication::is_replicator_cursor(&sub) {
                        continue; // owned by the topic's replicator, not a subscription
                    }
                    topic
                        .subscribe(&sub, SubType::Exclusive, true, InitialPosition::Latest)
                        .await?;
                }
                metrics::gauge!("magnetar_broker_topics_count").increment(1.0);
                debug!(topic = %name, "topic loaded");
                Ok(topic)
            })
            .await
            .cloned();
        if res.is_err() {
            let mut topics = self.topics.lock();
            if topics.get(name).is_some_and(|c| c.get().is_none()) {
                topics.remove(name);
            }
        }
        res
    }

    /// Partition count of a topic (0 = not partitioned).
    pub async fn partitions(&self, name: &TopicName) -> Result<u32> {
        let base = name.base();
        if name.partition_index() >= 0 {
            return Ok(0);
        }
        match self.metadata.get(&base.partitioned_key()).await? {
            Some(v) => Ok(serde_json::from_slice::<PartitionedMetadata>(&v.value)?.partitions),
            None => Ok(0),
        }
    }

    /// Creates a partitioned topic (create-only). Returns false if it already existed.
    pub async fn create_partitioned(&self, name: &TopicName, partitions: u32) -> Result<bool> {
        let body = serde_json::to_vec(&PartitionedMetadata { partitions })?;
        match self
            .metadata
            .put(
                &name.partitioned_key(),
                Bytes::from(body),
                Expect::Absent,
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_bad_version() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Persistent topics of a namespace (partitions listed individually).
    pub async fn list_topics(&self, tenant: &str, ns: &str) -> Result<Vec<String>> {
        let prefix = format!("/topics/{tenant}/{ns}/persistent/");
        let mut out: Vec<String> = list_all(self.metadata.as_ref(), &prefix)
            .await?
            .into_iter()
            .map(|(k, _)| format!("persistent://{tenant}/{ns}/{}", &k[prefix.len()..]))
            .collect();
        // Every partition of a partitioned topic is listed, used or not (as Pulsar does).
        let pprefix = format!("/partitioned-topics/{tenant}/{ns}/");
        for (k, v) in list_all(self.metadata.as_ref(), &pprefix).await? {
            let Ok(m) = serde_json::from_slice::<PartitionedMetadata>(&v.value) else {
                continue;
            };
            let base = &k[pprefix.len()..];
            for i in 0..m.partitions {
                out.push(format!(
                    "persistent://{tenant}/{ns}/{base}{}{i}",
                    crate::names::PARTITION_SUFFIX
                ));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Partitioned topics of a namespace.
    pub async fn list_partitioned(&self, tenant: &str, ns: &str) -> Result<Vec<String>> {
        let prefix = format!("/partitioned-topics/{tenant}/{ns}/");
        Ok(list_all(self.metadata.as_ref(), &prefix)
            .await?
            .into_iter()
            .map(|(k, _)| format!("persistent://{tenant}/{ns}/{}", &k[prefix.len()..]))
            .collect())
    }

    /// Deletes a topic: its log, subscriptions and existence marker. Refused while clients
    /// are connected unless `force`.
    pub async fn delete_topic(&self, name: &TopicName, force: bool) -> Result<()> {
        let topic = self.get_topic(name, false).await?;
        let busy = !topic.producers().is_empty()
            || topic
                .subscriptions()
                .iter()
                .any(|s| s.counters.consumers.load(Ordering::Relaxed) > 0);
        if busy && !force {
            return Err(BrokerError::ProducerBusy(format!(
                "topic {name} has active producers or consumers"
            )));
        }
        self.topics.lock().remove(name);
        topic.close().await?;
        topic.log.delete().await?;
        self.metadata.delete(&topic_key(name), Expect::Any).await?;
        info!(topic = %name, "topic deleted");
        Ok(())
    }

    /// Closes every loaded topic.
    pub async fn close_all(&self) {
        let topics = self.loaded_topics();
        for t in topics {
            if let Err(e) = t.close().await {
                warn!(topic = %t.name, error = %e, "closing topic failed");
            }
        }
        self.topics.lock().clear();
    }

    /// Closes and forgets the loaded topics whose name matches `pred` (bundle unload).
    /// Returns how many were closed.
    pub async fn close_topics(&self, pred: impl Fn(&TopicName) -> bool) -> usize {
        let doomed: Vec<Arc<Topic>> = {
            let mut topics = self.topics.lock();
            let names: Vec<TopicName> = topics.keys().filter(|n| pred(n)).cloned().collect();
            names
                .iter()
                .filter_map(|n| topics.remove(n).and_then(|c| c.get().cloned()))
                .collect()
        };
        // Concurrently: every client hears about the close at once, even if one log's close
        // waits on storage.
        futures::future::join_all(doomed.iter().map(|t| async move {
            if let Err(e) = t.close().await {
                warn!(topic = %t.name, error = %e, "closing topic failed");
            }
        }))
        .await;
        doomed.len()
    }
}
