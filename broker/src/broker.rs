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
use crate::error::{BrokerError, Result};
use crate::names::TopicName;
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
}

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
        }
    }

    /// A broker-unique id for producers and consumers.
    pub fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// A generated producer name `{cluster}-{n}`, unique across restarts.
    pub async fn producer_name(&self) -> String {
        let n = match self.metadata.increment("/counters/producer-name", 1).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "producer name counter unavailable");
                1_000_000 + self.next_key()
            }
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
        if !name.persistent {
            return Err(BrokerError::InvalidRequest(
                "non-persistent topics are not supported".into(),
            ));
        }
        let cell = self.topics.lock().entry(name.clone()).or_default().clone();
        let res = cell
            .get_or_try_init(|| async {
                let exists = self.topic_exists(name).await?;
                if !exists {
                    if !(create && self.config.allow_auto_topic_creation) {
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
                let log = self.storage.open(&name.ledger_name()).await?;
                debug!(topic = %name, "topic loaded");
                Ok(Arc::new(Topic::new(
                    name.clone(),
                    log,
                    self.config.deduplication_enabled,
                    self.config.dispatch_max_read_entries,
                )))
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
        out.sort();
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
}
