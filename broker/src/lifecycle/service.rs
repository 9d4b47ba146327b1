//! The lifecycle's IO edge: a broker-wide loop that, for every loaded topic, re-resolves
//! policies and carries out what the pure state machines decide (deduplication snapshots,
//! retention, TTL expiry, backlog quotas), plus the hooks the topic and producer paths call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use magnetar_client::wire::proto::MessageMetadata;
use magnetar_metadata::list_all;
use prost::Message as _;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::dedup::{entry_highest_sequence, DedupSnapshot, DedupState, SNAPSHOT_PROPERTY};
use super::quota::{self, Backlog, QuotaKind};
use super::ttl::{ack_up_to, expire_messages, first_unacked, now_ms};
use crate::broker::Broker;
use crate::error::Result;
use crate::ml::RetentionPolicy;
use crate::names::TopicName;
use crate::policies::{
    namespace_policies, topic_policies, topic_policies_key, BacklogQuotaPolicy, EffectivePolicies,
    Policies, PolicyDefaults, TopicPolicies,
};
use crate::position::Position;
use crate::subscription::{entry_metadata, SubscriptionHandle};
use crate::topic::Topic;

/// Entries read per step when replaying the log tail or walking a backlog.
const READ_BATCH: usize = 500;
/// Most entries replayed to rebuild deduplication state on open.
const REPLAY_LIMIT: usize = 1_000_000;

/// Starts the lifecycle loop of a broker.
pub fn start(broker: Arc<Broker>, tracker: &TaskTracker) {
    super::set_delayed_index_budget(broker.config.lifecycle.delayed_index_max_entries);
    tracker.spawn(run(broker));
}

async fn run(broker: Arc<Broker>) {
    let every = Duration::from_millis(broker.config.lifecycle.check_interval_ms.max(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = broker.shutdown.cancelled() => break,
        }
        // Policies are read once per namespace per round.
        let mut cache = PolicyCache::default();
        for topic in broker.loaded_topics() {
            if let Err(e) = check_topic(&broker, &topic, &mut cache).await {
                debug!(topic = %topic.name, error = %e, "lifecycle check failed");
            }
        }
    }
}

/// Namespace policies and topic overrides read during one round of checks.
#[derive(Default)]
struct PolicyCache {
    namespaces: HashMap<(String, String), (Policies, HashMap<String, TopicPolicies>)>,
}

impl PolicyCache {
    async fn get(
        &mut self,
        broker: &Broker,
        name: &TopicName,
    ) -> Result<(EffectivePolicies, bool)> {
        let base = name.base();
        let key = (base.tenant.clone(), base.namespace.clone());
        if !self.namespaces.contains_key(&key) {
            let md = broker.metadata.as_ref();
            let ns = namespace_policies(md, &base.tenant, &base.namespace)
                .await?
                .unwrap_or_default();
            let prefix = format!("/topic-policies/{}/{}/", base.tenant, base.namespace);
            let mut overrides = HashMap::new();
            for (k, v) in list_all(md, &prefix).await? {
                if let Ok(tp) = serde_json::from_slice::<TopicPolicies>(&v.value) {
                    overrides.insert(k, tp);
                }
            }
            self.namespaces.insert(key.clone(), (ns, overrides));
        }
        let (ns, overrides) = &self.namespaces[&key];
        let tp = overrides
            .get(&topic_policies_key(&base))
            .cloned()
            .unwrap_or_default();
        Ok(resolve(broker, ns, &tp))
    }
}

fn resolve(broker: &Broker, ns: &Policies, tp: &TopicPolicies) -> (EffectivePolicies, bool) {
    let explicit = tp.retention_policies.or(ns.retention_policies).is_some();
    let defaults = PolicyDefaults::from(&broker.config);
    let mut eff = EffectivePolicies::resolve(&defaults, &broker.config.cluster_name, ns, tp);
    // Geo-replicated topics always deduplicate: replicators resend after failures.
    eff.deduplication |= crate::replication::forces_dedup(&eff.replication_clusters);
    (eff, explicit)
}

/// A topic's effective policies, and whether a retention policy was set explicitly
/// (without one, consumed data is kept: trimming starts only once retention is set).
pub async fn policies_of(broker: &Broker, name: &TopicName) -> Result<(EffectivePolicies, bool)> {
    let base = name.base();
    let ns = namespace_policies(broker.metadata.as_ref(), &base.tenant, &base.namespace)
        .await?
        .unwrap_or_default();
    let tp = topic_policies(broker.metadata.as_ref(), &base).await?;
    Ok(resolve(broker, &ns, &tp))
}

fn retention_of(p: &EffectivePolicies, explicit: bool) -> Option<RetentionPolicy> {
    explicit.then_some(RetentionPolicy {
        time_minutes: p.retention.retention_time_in_minutes,
        size_mb: p.retention.retention_size_in_mb,
    })
}

/// Called once when a topic is loaded, before producers can use it: resolves policies and
/// rebuilds deduplication state (snapshot plus replay of the log tail).
pub async fn on_topic_loaded(broker: &Broker, topic: &Arc<Topic>) -> Result<()> {
    match policies_of(broker, &topic.name).await {
        Ok((pol, explicit)) => {
            topic.lifecycle.set_dedup_enabled(pol.deduplication);
            topic.log.set_retention(retention_of(&pol, explicit));
            let subs = topic.subscriptions();
            topic
                .lifecycle
                .set_delayed_delivery(pol.delayed_delivery.active, &subs);
        }
        Err(e) => {
            warn!(topic = %topic.name, error = %e, "policies unavailable; using broker defaults")
        }
    }
    if topic.lifecycle.dedup_enabled() {
        recover_dedup(topic).await?;
    }
    Ok(())
}

/// Called when a topic closes: writes a last deduplication snapshot (best effort).
pub async fn on_topic_closing(topic: &Topic) {
    if topic.lifecycle.dedup_enabled() {
        snapshot_dedup(topic).await;
    }
}

fn decode_metadata(raw: &[u8]) -> Option<MessageMetadata> {
    if raw.len() < 10 {
        return None;
    }
    let size = u32::from_be_bytes([raw[6], raw[7], raw[8], raw[9]]) as usize;
    if raw.len() - 10 < size {
        return None;
    }
    MessageMetadata::decode(&raw[10..10 + size]).ok()
}

/// Rebuilds deduplication state: the stored snapshot, then every entry after it.
pub async fn recover_dedup(topic: &Topic) -> Result<()> {
    let snap: DedupSnapshot = topic
        .log
        .properties()
        .get(SNAPSHOT_PROPERTY)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let mut from = match snap.position {
        Some((l, e)) => topic.log.next_position(Position::new(l, e)),
        None => topic.log.first_position(),
    };
    let mut state = DedupState::from_snapshot(snap);
    let mut replayed = 0usize;
    while replayed < REPLAY_LIMIT {
        if topic.log.last_confirmed().is_none_or(|l| from > l) {
            break;
        }
        let batch = topic.log.read(from, READ_BATCH).await?;
        let Some((last, _)) = batch.last() else {
            break;
        };
        let last = *last;
        replayed += batch.len();
        for (pos, data) in &batch {
            if let Some(md) = decode_metadata(data) {
                // Only a message's last chunk counts for deduplication (as when publishing).
                if matches!((md.chunk_id, md.num_chunks_from_msg), (Some(id), Some(n)) if id + 1 < n)
                {
                    continue;
                }
                let highest = entry_highest_sequence(
                    md.sequence_id,
                    md.highest_sequence_id,
                    md.num_messages_in_batch,
                );
                state.observe(&md.producer_name, highest, *pos);
            }
        }
        from = topic.log.next_position(last);
    }
    info!(topic = %topic.name, replayed, producers = state.producers(), "deduplication state recovered");
    *topic.lifecycle.dedup.lock() = state;
    Ok(())
}

async fn snapshot_dedup(topic: &Topic) {
    let Some(snap) = topic.lifecycle.dedup.lock().take_snapshot() else {
        return;
    };
    let json = match serde_json::to_string(&snap) {
        Ok(j) => j,
        Err(e) => {
            warn!(error = %e, "cannot encode deduplication snapshot");
            return;
        }
    };
    if let Err(e) = topic.log.set_property(SNAPSHOT_PROPERTY, &json).await {
        debug!(topic = %topic.name, error = %e, "deduplication snapshot not written");
        topic.lifecycle.dedup.lock().snapshot_failed();
    }
}

async fn check_topic(broker: &Broker, topic: &Arc<Topic>, cache: &mut PolicyCache) -> Result<()> {
    let (pol, explicit) = cache.get(broker, &topic.name).await?;
    let lc = &topic.lifecycle;
    if pol.deduplication && !lc.dedup_enabled() {
        recover_dedup(topic).await?;
        lc.set_dedup_enabled(true);
    } else if !pol.deduplication && lc.dedup_enabled() {
        lc.set_dedup_enabled(false);
    }
    if lc.dedup_enabled() {
        snapshot_dedup(topic).await;
    }
    topic.log.set_retention(retention_of(&pol, explicit));
    if !explicit {
        default_retention_trim(broker, topic).await;
    }
    lc.set_delayed_delivery(pol.delayed_delivery.active, &topic.subscriptions());
    if let Some(ttl) = pol.message_ttl {
        let every = Duration::from_secs(broker.config.lifecycle.message_expiry_check_interval_secs);
        let due = {
            let mut last = lc.last_ttl_check.lock();
            let due = last.is_none_or(|t| t.elapsed() >= every);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            for sub in topic.subscriptions().iter().filter(|s| s.durable) {
                expire_messages(topic, sub, ttl.as_secs()).await?;
            }
        }
    }
    check_quota(topic, &pol).await
}

/// Without a retention policy, consumed ledgers are deleted as in Pulsar's default (0 minutes,
/// 0 MB), but lazily: once every `retention_check_interval_secs`, so data just consumed stays
/// readable for a while (Pulsar, too, trims only on its retention check or a rollover).
async fn default_retention_trim(broker: &Broker, topic: &Arc<Topic>) {
    let every = Duration::from_secs(broker.config.lifecycle.retention_check_interval_secs);
    {
        let mut last = topic.lifecycle.last_default_trim.lock();
        if last.elapsed() < every {
            return;
        }
        *last = Instant::now();
    }
    let nothing_kept = crate::ml::RetentionPolicy {
        time_minutes: 0,
        size_mb: 0,
    };
    if let Err(e) = topic.log.trim(nothing_kept).await {
        warn!(topic = %topic.name, error = %e, "deleting consumed ledgers failed");
    }
}

/// Measures the backlog of the slowest durable subscription.
async fn measure(
    topic: &Topic,
    need_age: bool,
) -> Result<(Backlog, Option<Arc<SubscriptionHandle>>)> {
    let mut slowest: Option<(u64, Arc<SubscriptionHandle>)> = None;
    for s in topic.subscriptions().into_iter().filter(|s| s.durable) {
        let b = s.cursor.backlog().unwrap_or(0);
        if slowest.as_ref().is_none_or(|(x, _)| b > *x) {
            slowest = Some((b, s));
        }
    }
    let Some((entries, sub)) = slowest else {
        return Ok((Backlog::default(), None));
    };
    let mut backlog = Backlog {
        entries,
        bytes: super::stats::bytes_of_entries(topic, entries),
        age_secs: None,
    };
    if need_age && entries > 0 {
        let first = first_unacked(topic, &sub);
        if let Some((_, data)) = topic.log.read(first, 1).await?.first() {
            let published = entry_metadata(data).publish_time;
            backlog.age_secs = Some(now_ms().saturating_sub(published) / 1000);
        }
    }
    Ok((backlog, Some(sub)))
}

/// Checks the backlog quotas of a topic and applies their policies.
pub async fn check_quota(topic: &Topic, pol: &EffectivePolicies) -> Result<()> {
    let lc = &topic.lifecycle;
    // Backlog size is cheap (cursor counters; stats measure it live); age costs a read, so
    // stats show the age from the last check.
    let (backlog, slowest) = measure(topic, quota::needs_age(&pol.backlog_quotas)).await?;
    use std::sync::atomic::Ordering::Relaxed;
    lc.counters
        .backlog_age_secs
        .store(backlog.age_secs.unwrap_or(0), Relaxed);
    if pol.backlog_quotas.is_empty() {
        lc.set_producer_block(None);
        return Ok(());
    }
    let exceeded = quota::evaluate(&pol.backlog_quotas, &backlog);
    if lc.set_producer_block(quota::producer_block(&exceeded)) {
        info!(topic = %topic.name, ?backlog, "backlog quota exceeded; blocking producers");
        topic.disconnect_producers();
    }
    let Some(sub) = slowest else {
        return Ok(());
    };
    for e in exceeded
        .iter()
        .filter(|e| e.policy == BacklogQuotaPolicy::ConsumerBacklogEviction)
    {
        match e.kind {
            QuotaKind::Age => {
                let n = expire_messages(topic, &sub, e.limit).await?;
                lc.counters.msg_evicted.fetch_add(n, Relaxed);
            }
            QuotaKind::Size => {
                let avg = backlog.bytes / backlog.entries.max(1);
                let n = quota::entries_to_evict(backlog.entries, avg, e.limit);
                if let Some(upto) = nth_unacked(topic, &sub, n).await? {
                    ack_up_to(&sub, upto);
                    lc.counters.msg_evicted.fetch_add(n, Relaxed);
                    info!(topic = %topic.name, sub = %sub.name, n, %upto, "backlog evicted");
                }
            }
        }
    }
    Ok(())
}

/// Position of the `n`-th entry after the mark-delete position (`None` for `n == 0`).
async fn nth_unacked(topic: &Topic, sub: &SubscriptionHandle, n: u64) -> Result<Option<Position>> {
    let mut from = first_unacked(topic, sub);
    let mut left = n;
    let mut hit = None;
    while left > 0 {
        if topic.log.last_confirmed().is_none_or(|l| from > l) {
            break;
        }
        let batch = topic.log.read(from, READ_BATCH.min(left as usize)).await?;
        let Some((last, _)) = batch.last() else {
            break;
        };
        left = left.saturating_sub(batch.len() as u64);
        hit = Some(*last);
        from = topic.log.next_position(*last);
    }
    Ok(hit)
}

/// Outcome of checking a new producer against the topic's backlog quota once.
#[derive(Debug)]
pub enum ProducerAdmission {
    /// Create it.
    Admitted,
    /// `producer_request_hold` is in force: wait with [`admit_producer`] (bounded), off
    /// the connection's task.
    Hold,
    /// Refuse it with this error.
    Refused(crate::error::BrokerError),
}

/// Checks a new producer against the topic's backlog quota without waiting.
pub async fn check_producer_admission(broker: &Broker, topic: &Topic) -> ProducerAdmission {
    // A failed check must not refuse producers: the last decision stands.
    if let Ok((pol, _)) = policies_of(broker, &topic.name).await {
        if let Err(e) = check_quota(topic, &pol).await {
            debug!(topic = %topic.name, error = %e, "backlog quota check failed");
        }
    }
    match topic.lifecycle.producer_block() {
        None => ProducerAdmission::Admitted,
        Some(BacklogQuotaPolicy::ProducerRequestHold) => ProducerAdmission::Hold,
        Some(p) => ProducerAdmission::Refused(topic.lifecycle.quota_error(p)),
    }
}

/// Admits a new producer under the topic's backlog quota: refused at once under
/// `producer_exception`; under `producer_request_hold` it waits (bounded) for the backlog to
/// drop, then is refused.
pub async fn admit_producer(broker: &Broker, topic: &Topic) -> Result<()> {
    let deadline = Instant::now()
        + Duration::from_millis(broker.config.lifecycle.backlog_quota_hold_timeout_ms);
    for _ in 0..10_000 {
        // A failed check must not refuse producers: the last decision stands.
        if let Ok((pol, _)) = policies_of(broker, &topic.name).await {
            if let Err(e) = check_quota(topic, &pol).await {
                debug!(topic = %topic.name, error = %e, "backlog quota check failed");
            }
        }
        match topic.lifecycle.producer_block() {
            None => return Ok(()),
            Some(BacklogQuotaPolicy::ProducerRequestHold) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Some(p) => return Err(topic.lifecycle.quota_error(p)),
        }
    }
    Err(topic
        .lifecycle
        .quota_error(BacklogQuotaPolicy::ProducerRequestHold))
}
