//! Geo-replication (issue #9): every topic of a namespace whose `replication_clusters` name
//! other clusters gets one replicator per remote cluster on the broker that owns it.
//!
//! - [`decide`]: pure decisions (what to replicate, sequence ids, cursor and producer
//!   names, splitting a stored entry).
//! - [`replicator`]: the task that reads the durable cursor `pulsar.repl.{remote}` and
//!   republishes through `magnetar_client` to the remote's `brokerServiceUrl`
//!   (from `/clusters/{remote}`).
//! - [`TopicReplication`]: the replicators of one topic (held by [`Topic`]) and their stats.
//! - [`start`]: a broker-wide loop reconciling the replicators of loaded topics with the
//!   namespace policies and sampling rates, and one loading the topics of replicated
//!   namespaces this broker serves (`load`), so replication resumes without clients.
//!
//! Invariants: a message carrying `replicated_from` is never replicated again (no loops);
//! the cursor is acknowledged only after the remote's receipt, so a restart or outage
//! resends rather than loses; resends carry the same producer name and sequence id, and
//! replicated namespaces deduplicate, so the remote stores each message once.

pub mod decide;
mod load;
pub mod replicator;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

pub use decide::{is_replicator_cursor, should_replicate};
pub use replicator::ReplicatorStats;

use magnetar_metadata::MetadataStore;

use crate::broker::Broker;
use crate::error::Result;
use crate::policies::namespace_policies;
use crate::topic::Topic;

/// How often loaded topics are reconciled with the replication policies.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);

struct Running {
    stats: Arc<ReplicatorStats>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    last_sample: (Instant, u64),
}

/// The replicators of one topic.
#[derive(Default)]
pub struct TopicReplication {
    closed: CancellationToken,
    running: Mutex<HashMap<String, Running>>,
}

impl TopicReplication {
    /// Stops every replicator (the topic is closing); none start afterwards.
    pub fn stop(&self) {
        self.closed.cancel();
        for (_, r) in self.running.lock().drain() {
            r.stop.cancel();
        }
    }

    /// Remote clusters replicated to.
    pub fn remotes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.running.lock().keys().cloned().collect();
        v.sort();
        v
    }

    /// Counters of the replicator to `remote`.
    pub fn stats_of(&self, remote: &str) -> Option<Arc<ReplicatorStats>> {
        self.running.lock().get(remote).map(|r| r.stats.clone())
    }

    /// Pulsar's `replication` section of topic stats:
    /// `{remote: {replicationBacklog, msgRateOut, msgOutCounter, connected, ...}}`.
    pub fn stats_json(&self) -> serde_json::Value {
        let running = self.running.lock();
        let mut out = serde_json::Map::new();
        for (remote, r) in running.iter() {
            let s = &r.stats;
            let rate = f64::from_bits(s.rate_bits.load(Ordering::Relaxed));
            out.insert(
                remote.clone(),
                serde_json::json!({
                    "replicationBacklog": s.backlog.load(Ordering::Relaxed),
                    "msgRateOut": rate,
                    "msgOutCounter": s.msg_out.load(Ordering::Relaxed),
                    "bytesOutCounter": s.bytes_out.load(Ordering::Relaxed),
                    "connected": s.connected.load(Ordering::Relaxed),
                    "replicationDelayInSeconds": s.delay_secs.load(Ordering::Relaxed),
                }),
            );
        }
        serde_json::Value::Object(out)
    }

    fn sample_rates(&self) {
        let now = Instant::now();
        for r in self.running.lock().values_mut() {
            let total = r.stats.msg_out.load(Ordering::Relaxed);
            let (at, before) = r.last_sample;
            let secs = now.duration_since(at).as_secs_f64();
            if secs >= 1.0 {
                let rate = total.saturating_sub(before) as f64 / secs;
                r.stats.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
                r.last_sample = (now, total);
            }
        }
    }

    /// Starts replicators for `wanted` remotes and stops the others.
    fn reconcile(&self, broker: &Broker, topic: &Arc<Topic>, wanted: &BTreeSet<String>) {
        if self.closed.is_cancelled() {
            return;
        }
        let mut running = self.running.lock();
        running.retain(|remote, r| {
            let keep = wanted.contains(remote);
            if !keep {
                info!(topic = %topic.name, %remote, "replication to cluster removed");
                r.stop.cancel();
                // The cursor goes too, so it no longer holds back retention (as in Pulsar).
                let (topic, cursor, task) =
                    (topic.clone(), decide::cursor_name(remote), r.task.take());
                tokio::spawn(async move {
                    if let Some(t) = task {
                        let _ = t.await;
                    }
                    if let Err(e) = topic.log.delete_cursor(&cursor).await {
                        debug!(topic = %topic.name, error = %e, "replicator cursor not deleted");
                    }
                });
            }
            keep
        });
        for remote in wanted {
            if running.contains_key(remote) {
                continue;
            }
            // The backlog stays 0 until the replicator's cursor is open and reports it: a
            // replicator restarted during a remote outage must not show the whole topic as
            // backlog in between.
            let stats = Arc::new(ReplicatorStats::default());
            let stop = self.closed.child_token();
            let ctx = replicator::ReplicatorCtx {
                topic: topic.clone(),
                local: broker.config.cluster_name.clone(),
                remote: remote.clone(),
                metadata: broker.metadata.clone(),
                stats: stats.clone(),
                stop: stop.clone(),
            };
            let task = tokio::spawn(replicator::run(ctx));
            running.insert(
                remote.clone(),
                Running {
                    stats,
                    stop,
                    task: Some(task),
                    last_sample: (Instant::now(), 0),
                },
            );
        }
    }
}

/// The remote clusters topics of `tenant/ns` are replicated to: the namespace's
/// `replication_clusters` without the local cluster (only if the local cluster is one of
/// them), limited to the tenant's `allowedClusters` when it lists any.
pub async fn remotes_of(broker: &Broker, tenant: &str, ns: &str) -> Result<BTreeSet<String>> {
    let md = broker.metadata.as_ref();
    let Some(p) = namespace_policies(md, tenant, ns).await? else {
        return Ok(BTreeSet::new());
    };
    let mut remotes = remotes_from(&p.replication_clusters, &broker.config.cluster_name);
    if remotes.is_empty() {
        return Ok(remotes);
    }
    let allowed = allowed_clusters(md, tenant).await?;
    remotes.retain(|r| {
        let ok = is_allowed(&allowed, r);
        if !ok {
            debug!(tenant, %r, "replication cluster not allowed for the tenant");
        }
        ok
    });
    Ok(remotes)
}

/// The tenant's `allowedClusters` (empty when the tenant lists none or does not exist).
pub async fn allowed_clusters(md: &dyn MetadataStore, tenant: &str) -> Result<Vec<String>> {
    let Some(v) = md.get(&format!("/tenants/{tenant}")).await? else {
        return Ok(Vec::new());
    };
    let info: serde_json::Value = serde_json::from_slice(&v.value).unwrap_or_default();
    Ok(info["allowedClusters"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}

/// Whether a tenant whose `allowedClusters` are `allowed` may use `cluster` (any cluster
/// when the list is empty).
pub fn is_allowed(allowed: &[String], cluster: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|c| c == cluster)
}

/// Why `clusters` cannot be the replication clusters of a namespace of `tenant`: the first
/// one the tenant's `allowedClusters` exclude (Pulsar answers 403 Forbidden), or `None`.
pub async fn refuse_replication_clusters(
    md: &dyn MetadataStore,
    tenant: &str,
    clusters: &[String],
) -> Result<Option<String>> {
    let allowed = allowed_clusters(md, tenant).await?;
    Ok(clusters.iter().find(|c| !is_allowed(&allowed, c)).map(|c| {
        format!("Cluster [{c}] is not in the list of allowed clusters list for tenant [{tenant}]")
    }))
}

/// Remote clusters from a replication list (empty unless `local` is in it).
pub fn remotes_from(clusters: &[String], local: &str) -> BTreeSet<String> {
    if !clusters.iter().any(|c| c == local) {
        return BTreeSet::new();
    }
    clusters
        .iter()
        .filter(|c| c.as_str() != local)
        .cloned()
        .collect()
}

/// Adds one partition's `replication` stats into a partitioned topic's `total`: counters
/// and rates summed, `connected` only if every partition is, the largest delay.
pub fn merge_partition_stats(total: &mut serde_json::Value, partition: &serde_json::Value) {
    let Some(remotes) = partition["replication"].as_object() else {
        return;
    };
    if !total["replication"].is_object() {
        total["replication"] = serde_json::json!({});
    }
    for (remote, r) in remotes {
        let acc = &mut total["replication"][remote];
        if acc.is_null() {
            *acc = r.clone();
            continue;
        }
        for k in ["replicationBacklog", "msgOutCounter", "bytesOutCounter"] {
            let v = acc[k].as_u64().unwrap_or(0) + r[k].as_u64().unwrap_or(0);
            acc[k] = v.into();
        }
        let rate =
            acc["msgRateOut"].as_f64().unwrap_or(0.0) + r["msgRateOut"].as_f64().unwrap_or(0.0);
        acc["msgRateOut"] = rate.into();
        let connected = acc["connected"].as_bool().unwrap_or(false)
            && r["connected"].as_bool().unwrap_or(false);
        acc["connected"] = connected.into();
        let k = "replicationDelayInSeconds";
        let delay = acc[k].as_u64().unwrap_or(0).max(r[k].as_u64().unwrap_or(0));
        acc[k] = delay.into();
    }
}

/// True when a namespace replicated to `clusters` must deduplicate: with more than one
/// cluster, remote replicators resend after failures and rely on deduplication.
pub fn forces_dedup(clusters: &[String]) -> bool {
    clusters.len() > 1
}

/// Starts the broker-wide replication loop.
pub fn start(broker: Arc<Broker>, tracker: &TaskTracker) {
    tracker.spawn(load::run(broker.clone()));
    tracker.spawn(run(broker));
}

async fn run(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = broker.shutdown.cancelled() => break,
        }
        // Policies are read once per namespace per round.
        let mut by_ns: HashMap<(String, String), Option<BTreeSet<String>>> = HashMap::new();
        for topic in broker.loaded_topics() {
            let base = topic.name.base();
            let key = (base.tenant.clone(), base.namespace.clone());
            if !by_ns.contains_key(&key) {
                let r = match remotes_of(&broker, &key.0, &key.1).await {
                    Ok(r) => Some(r),
                    Err(e) => {
                        debug!(topic = %topic.name, error = %e, "replication policies unavailable");
                        None
                    }
                };
                by_ns.insert(key.clone(), r);
            }
            if let Some(wanted) = &by_ns[&key] {
                topic.replication.reconcile(&broker, &topic, wanted);
            }
            topic.replication.sample_rates();
        }
    }
    for topic in broker.loaded_topics() {
        topic.replication.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_exclude_local_and_need_local_listed() {
        let cs = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let r: Vec<String> = remotes_from(&cs, "a").into_iter().collect();
        assert_eq!(r, vec!["b", "c"]);
        assert!(remotes_from(&cs, "z").is_empty());
        assert!(remotes_from(&["a".to_string()], "a").is_empty());
    }

    #[test]
    fn tenant_allowed_clusters_limit_replication() {
        let allowed = vec!["a".to_string(), "b".to_string()];
        assert!(is_allowed(&allowed, "b"));
        assert!(!is_allowed(&allowed, "c"));
        assert!(
            is_allowed(&[], "c"),
            "a tenant listing no cluster allows any"
        );
    }

    #[test]
    fn stats_per_remote_show_backlog_rate_and_connection() {
        let r = TopicReplication::default();
        let stats = Arc::new(ReplicatorStats::default());
        stats.backlog.store(7, Ordering::Relaxed);
        stats.msg_out.store(100, Ordering::Relaxed);
        stats.connected.store(true, Ordering::Relaxed);
        let two_secs_ago = Instant::now()
            .checked_sub(Duration::from_secs(2))
            .expect("monotonic clock past 2 s");
        r.running.lock().insert(
            "b".into(),
            Running {
                stats: stats.clone(),
                stop: CancellationToken::new(),
                task: None,
                last_sample: (two_secs_ago, 0),
            },
        );
        r.sample_rates();
        let j = r.stats_json();
        let b = &j["b"];
        assert_eq!(b["replicationBacklog"], 7);
        assert_eq!(b["msgOutCounter"], 100);
        assert_eq!(b["connected"], true);
        let rate = b["msgRateOut"].as_f64().expect("rate");
        assert!((40.0..=50.0).contains(&rate), "rate {rate}");
        assert_eq!(r.remotes(), vec!["b".to_string()]);
        r.stop();
        assert!(r.remotes().is_empty());
        assert!(
            stats.connected.load(Ordering::Relaxed),
            "stop leaves counters alone"
        );
    }

    #[test]
    fn partition_stats_merge_sums_and_ands() {
        let p = |backlog: u64, connected: bool| {
            serde_json::json!({"replication": {"b": {"replicationBacklog": backlog,
                "msgOutCounter": 2, "bytesOutCounter": 10, "msgRateOut": 1.5,
                "connected": connected, "replicationDelayInSeconds": backlog}}})
        };
        let mut total = serde_json::json!({});
        merge_partition_stats(&mut total, &p(3, true));
        merge_partition_stats(&mut total, &p(4, false));
        merge_partition_stats(&mut total, &serde_json::json!({}));
        let b = &total["replication"]["b"];
        assert_eq!(b["replicationBacklog"], 7);
        assert_eq!(b["msgOutCounter"], 4);
        assert_eq!(b["msgRateOut"], 3.0);
        assert_eq!(b["connected"], false);
        assert_eq!(b["replicationDelayInSeconds"], 4);
    }
}
