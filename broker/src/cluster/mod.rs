//! Cluster mode: several brokers share the topics of a cluster by owning namespace bundles.
//!
//! - A broker keeps one metadata session ([`SessionKeeper`]) and registers
//!   `/brokers/{host:port}` under it (ephemeral) with a [`LoadReport`] refreshed every
//!   `load_report_interval_ms`.
//! - It owns a bundle through the ephemeral key `/ownership/{tenant}/{ns}/{range}`
//!   ([`OwnerInfo`]), written create-only under its session ([`ownership`]).
//! - LOOKUP answers with the owner, or assigns the least-loaded live broker
//!   ([`placement`]: owned bundles plus the reported topics, connections and msg rate).
//! - Losing the session stops serving at once: owned bundles are forgotten and every
//!   loaded topic is closed (clients get CLOSE_PRODUCER/CLOSE_CONSUMER and look up again);
//!   a new session is then opened. Opening a topic fences the previous owner's ledger, so
//!   a zombie owner cannot append.
//!
//! Standalone leaves cluster mode off: the single broker then serves every topic.

pub mod admin;
pub mod bundles;
pub mod ownership;
pub mod placement;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use magnetar_metadata::{Expect, MetadataStore, SessionId, SessionKeeper};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::error::Result;
use bundles::{BundleRange, NamespaceBundles};

/// Cluster-mode settings (`[cluster]` in the broker's config).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case")]
pub struct ClusterConfig {
    /// Own bundles through metadata sessions (off: this broker serves every topic).
    pub enabled: bool,
    /// TTL of the broker's metadata session: how long a dead broker keeps its bundles.
    pub session_ttl_ms: u64,
    /// Bundles a namespace starts with.
    pub default_bundles: usize,
    /// How often the load report under `/brokers/...` is refreshed.
    pub load_report_interval_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            session_ttl_ms: 10_000,
            default_bundles: 4,
            load_report_interval_ms: 5_000,
        }
    }
}

/// Value of `/brokers/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadReport {
    /// Cluster of the broker.
    pub cluster: String,
    /// `pulsar://host:port`.
    pub broker_service_url: String,
    /// `http://host:port`.
    pub web_service_url: String,
    /// Loaded topics.
    pub topics: usize,
    /// Bundles owned.
    pub bundles: usize,
    /// Open client connections.
    pub connections: usize,
    /// Messages per second published (over the last interval).
    pub msg_rate_in: f64,
    /// Milliseconds since the Unix epoch when reported.
    pub timestamp: u64,
}

/// Value of `/ownership/{t}/{ns}/{range}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerInfo {
    /// Broker id (`host:port`, the key under `/brokers/`).
    pub broker_id: String,
    /// `pulsar://host:port`.
    pub broker_service_url: String,
    /// `http://host:port`.
    pub web_service_url: String,
}

/// Cluster-mode state of one broker.
pub struct Cluster {
    config: ClusterConfig,
    cluster_name: String,
    metadata: Arc<dyn MetadataStore>,
    me: OwnerInfo,
    session: Mutex<Option<Arc<SessionKeeper>>>,
    owned: Mutex<HashSet<(String, BundleRange)>>,
    bundles: Mutex<HashMap<String, NamespaceBundles>>,
}

/// `/brokers/{id}`.
pub fn broker_key(id: &str) -> String {
    format!("/brokers/{id}")
}

/// `/ownership/{t}/{ns}/{range}` (`ns_path` is `t/ns`).
pub fn ownership_key(ns_path: &str, range: BundleRange) -> String {
    format!("/ownership/{ns_path}/{range}")
}

impl Cluster {
    /// This broker as an owner.
    pub fn me(&self) -> &OwnerInfo {
        &self.me
    }

    /// The cluster name.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    fn session_id(&self) -> Option<SessionId> {
        self.session.lock().as_ref().map(|k| k.id())
    }

    /// Bundles owned here, as `(t/ns, range)`.
    pub fn owned_bundles(&self) -> Vec<(String, BundleRange)> {
        let mut v: Vec<_> = self.owned.lock().iter().cloned().collect();
        v.sort();
        v
    }

    fn report(&self, broker: &Broker, connections: usize, msg_rate_in: f64) -> LoadReport {
        LoadReport {
            cluster: self.cluster_name.clone(),
            broker_service_url: self.me.broker_service_url.clone(),
            web_service_url: self.me.web_service_url.clone(),
            topics: broker.loaded_topics().len(),
            bundles: self.owned.lock().len(),
            connections,
            msg_rate_in,
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    async fn publish_report(&self, session: SessionId, report: &LoadReport) -> Result<()> {
        let body = Bytes::from(serde_json::to_vec(report)?);
        self.metadata
            .put(
                &broker_key(&self.me.broker_id),
                body,
                Expect::Any,
                Some(session),
            )
            .await?;
        Ok(())
    }

    /// Called once the session is gone: stop serving every bundle at once.
    async fn on_session_lost(&self, broker: &Broker) {
        let old = self.session.lock().take();
        let lost = std::mem::take(&mut *self.owned.lock());
        warn!(
            bundles = lost.len(),
            "metadata session lost; closing every topic"
        );
        metrics::counter!("magnetar_broker_session_losses_total").increment(1);
        let closing = broker.close_topics(|_| true);
        if tokio::time::timeout(Duration::from_secs(10), closing)
            .await
            .is_err()
        {
            warn!("closing topics after session loss timed out");
        }
        // Keep-alives may have failed while the metadata service still holds the session
        // (a metadata leader change longer than the TTL, say): close it, so its ownership
        // keys go now instead of at its expiry and the bundles can be taken again at once.
        // Nothing here acts on them any more (topics are closed; ledgers are fenced anyway).
        if let Some(old) = old {
            tokio::spawn(async move {
                let id = old.id().0;
                match tokio::time::timeout(Duration::from_secs(10), old.close()).await {
                    Ok(Ok(())) => info!(session = id, "closed the lost metadata session"),
                    Ok(Err(e)) => {
                        warn!(session = id, error = %e, "closing the lost session failed")
                    }
                    Err(_) => warn!(session = id, "closing the lost session timed out"),
                }
            });
        }
    }

    /// Releases ownership on graceful shutdown (after topics are closed): deletes the
    /// ownership keys and the registration, and closes the session.
    pub async fn release(&self) {
        let keeper = self.session.lock().take();
        let owned = std::mem::take(&mut *self.owned.lock());
        let Some(keeper) = keeper else { return };
        for (ns, range) in &owned {
            let _ = self
                .metadata
                .delete(&ownership_key(ns, *range), Expect::Any)
                .await;
        }
        let _ = self
            .metadata
            .delete(&broker_key(&self.me.broker_id), Expect::Any)
            .await;
        if let Err(e) = keeper.close().await {
            warn!(error = %e, "closing the metadata session failed");
        }
        info!(bundles = owned.len(), "released bundle ownership");
    }
}

/// Starts cluster mode for `broker` if enabled: opens the session, registers the broker
/// and keeps both alive until the broker shuts down. `connections` counts live client
/// connections (for the load report).
pub async fn start(broker: Arc<Broker>, connections: TaskTracker) -> Result<Option<Arc<Cluster>>> {
    let config = broker.config.cluster.clone();
    if !config.enabled {
        return Ok(None);
    }
    let broker_id = broker
        .broker_url
        .trim_start_matches("pulsar://")
        .to_string();
    let cluster = Arc::new(Cluster {
        cluster_name: broker.config.cluster_name.clone(),
        metadata: broker.metadata.clone(),
        me: OwnerInfo {
            broker_id,
            broker_service_url: broker.broker_url.clone(),
            web_service_url: broker.http_url.clone(),
        },
        config,
        session: Mutex::new(None),
        owned: Mutex::new(HashSet::new()),
        bundles: Mutex::new(HashMap::new()),
    });
    let _ = broker.cluster.set(cluster.clone());
    let keeper = open_session(&cluster, &broker, &connections).await?;
    tokio::spawn(session_loop(cluster.clone(), broker, connections, keeper));
    Ok(Some(cluster))
}

async fn open_session(
    cluster: &Cluster,
    broker: &Broker,
    connections: &TaskTracker,
) -> Result<Arc<SessionKeeper>> {
    let ttl = Duration::from_millis(cluster.config.session_ttl_ms.max(100));
    let keeper = SessionKeeper::start(cluster.metadata.clone(), ttl).await?;
    let report = cluster.report(broker, connections.len(), 0.0);
    cluster.publish_report(keeper.id(), &report).await?;
    *cluster.session.lock() = Some(keeper.clone());
    info!(broker = %cluster.me.broker_id, session = keeper.id().0, "broker registered");
    Ok(keeper)
}

async fn session_loop(
    cluster: Arc<Cluster>,
    broker: Arc<Broker>,
    connections: TaskTracker,
    mut keeper: Arc<SessionKeeper>,
) {
    let interval = Duration::from_millis(cluster.config.load_report_interval_ms.max(100));
    let shutdown = broker.shutdown.clone();
    let mut last_in = total_msg_in(&broker);
    let mut last_at = tokio::time::Instant::now();
    loop {
        let lost = keeper.lost();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = lost.cancelled() => {
                cluster.on_session_lost(&broker).await;
                // Open a new session (bounded retries per round; loop until shutdown).
                loop {
                    if shutdown.is_cancelled() {
                        return;
                    }
                    match open_session(&cluster, &broker, &connections).await {
                        Ok(k) => { keeper = k; break; }
                        Err(e) => {
                            warn!(error = %e, "cannot open a new metadata session");
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            }
                        }
                    }
                }
            }
            _ = tokio::time::sleep(interval) => {
                let now_in = total_msg_in(&broker);
                let secs = last_at.elapsed().as_secs_f64().max(0.001);
                let rate = now_in.saturating_sub(last_in) as f64 / secs;
                (last_in, last_at) = (now_in, tokio::time::Instant::now());
                let report = cluster.report(&broker, connections.len(), rate);
                metrics::gauge!("magnetar_broker_bundles_owned_count").set(report.bundles as f64);
                // A report may hang while the metadata service elects a leader: a session
                // loss meanwhile must still close the topics at once.
                tokio::select! {
                    r = cluster.publish_report(keeper.id(), &report) => {
                        if let Err(e) = r {
                            warn!(error = %e, "load report failed");
                        }
                    }
                    _ = lost.cancelled() => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    }
}

fn total_msg_in(broker: &Broker) -> u64 {
    broker
        .loaded_topics()
        .iter()
        .map(|t| t.counters.msg_in.load(std::sync::atomic::Ordering::Relaxed))
        .sum()
}

/// The LOOKUP_RESPONSE for `name`: Connect when served here, Redirect (authoritative) to
/// the owner or assignee otherwise.
pub async fn lookup_command(
    cluster: &Cluster,
    request_id: u64,
    name: &crate::names::TopicName,
    authoritative: bool,
) -> magnetar_client::wire::proto::BaseCommand {
    use magnetar_client::wire::commands;
    use magnetar_client::wire::proto::ServerError;
    match cluster.lookup(name, authoritative).await {
        Ok(ownership::LookupAnswer::Here) => {
            commands::lookup_connect(request_id, &cluster.me.broker_service_url, true, false)
        }
        Ok(ownership::LookupAnswer::Elsewhere(o)) => {
            commands::lookup_redirect(request_id, &o.broker_service_url, true)
        }
        Err(e) => {
            let code =
                ServerError::try_from(e.server_error() as i32).unwrap_or(ServerError::UnknownError);
            commands::lookup_error(request_id, code, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests;
