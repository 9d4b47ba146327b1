//! The set of topics behind one [`super::Consumer`]: one slot (partition consumer task)
//! per topic partition, found by topic name when a message is received or acked, and
//! pattern discovery, which lists the namespace periodically (Pulsar's
//! GET_TOPICS_OF_NAMESPACE) and subscribes to matching topics that appeared since.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::partition::{ConsumerCmd, PartitionConsumer};
use super::ConsumerOptions;
use crate::client::PulsarClient;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::topic::{normalize_topic, partition_name};

/// One partition consumer task.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub tx: mpsc::UnboundedSender<ConsumerCmd>,
    /// Messages queued with an older epoch are dropped on receive (see
    /// [`PartitionConsumer`]).
    pub epoch: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct Slots {
    /// In subscription order: for a single partitioned topic, index = partition.
    list: Vec<Slot>,
    by_topic: HashMap<String, usize>,
    /// Topics (as named by the user or discovered, partitions not expanded) subscribed.
    topics: HashSet<String>,
}

/// What the consumer handle and the discovery task share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub client: PulsarClient,
    pub opts: Arc<ConsumerOptions>,
    slots: RwLock<Slots>,
    /// Held only by pattern consumers, whose queue must stay open while no topic matches;
    /// otherwise the queue closes when every partition consumer has ended.
    out: RwLock<Option<mpsc::UnboundedSender<(u64, Message)>>>,
    /// Serializes subscribing to new topics (builder and discovery task).
    adding: tokio::sync::Mutex<()>,
}

impl Shared {
    pub(crate) fn new(
        client: PulsarClient,
        opts: Arc<ConsumerOptions>,
        out: mpsc::UnboundedSender<(u64, Message)>,
    ) -> Arc<Self> {
        Arc::new(Shared {
            client,
            opts,
            slots: RwLock::new(Slots::default()),
            out: RwLock::new(Some(out)),
            adding: tokio::sync::Mutex::new(()),
        })
    }

    /// Drops the queue sender of a consumer with a fixed topic list, once subscribed.
    pub(crate) fn finish_setup(&self, keep_open: bool) {
        if !keep_open {
            self.out.write().take();
        }
    }

    /// Subscribes to `topic` (a normalized name; every partition of a partitioned
    /// topic). A topic already subscribed is skipped.
    pub(crate) async fn add_topic(&self, topic: &str) -> Result<()> {
        let _guard = self.adding.lock().await;
        if self.slots.read().topics.contains(topic) {
            return Ok(());
        }
        let out = self.out.read().clone().ok_or(Error::Closed("consumer"))?;
        let n = self.client.partitions(topic).await?;
        let names: Vec<(String, i32)> = if n == 0 {
            vec![(topic.to_owned(), -1)]
        } else {
            (0..n)
                .map(|i| (partition_name(topic, i), i as i32))
                .collect()
        };
        // Register each slot before its consumer subscribes: the receive side may see
        // the first messages before `start` returns.
        let first_new = self.slots.read().list.len();
        for (name, idx) in names {
            let epoch = Arc::new(AtomicU64::new(0));
            let (tx, rx) = mpsc::unbounded_channel();
            {
                let mut slots = self.slots.write();
                let i = slots.list.len();
                slots.list.push(Slot {
                    tx,
                    epoch: epoch.clone(),
                });
                slots.by_topic.insert(name.clone(), i);
            }
            let started = PartitionConsumer::start(
                self.client.clone(),
                name,
                idx,
                self.opts.clone(),
                out.clone(),
                epoch,
                rx,
            )
            .await;
            if let Err(e) = started {
                // Do not leave half a partitioned topic subscribed: dropping the command
                // senders closes the partition consumers already started.
                let mut slots = self.slots.write();
                slots.list.truncate(first_new);
                slots.by_topic.retain(|_, i| *i < first_new);
                return Err(e);
            }
        }
        self.slots.write().topics.insert(topic.to_owned());
        Ok(())
    }

    /// The slot serving `topic` (a partition or non-partitioned topic name).
    pub(crate) fn slot_of_topic(&self, topic: &str) -> Option<Slot> {
        let s = self.slots.read();
        s.by_topic.get(topic).map(|i| s.list[*i].clone())
    }

    /// The slot at `index` (clamped), for routing by partition index.
    pub(crate) fn slot_at(&self, index: usize) -> Option<Slot> {
        let s = self.slots.read();
        s.list
            .get(index.min(s.list.len().saturating_sub(1)))
            .cloned()
    }

    /// Every slot.
    pub(crate) fn all(&self) -> Vec<Slot> {
        self.slots.read().list.clone()
    }

    /// Topics subscribed so far (partitioned topics by their base name), sorted.
    pub(crate) fn topics(&self) -> Vec<String> {
        let set: BTreeSet<String> = self.slots.read().topics.iter().cloned().collect();
        set.into_iter().collect()
    }

    /// Stops accepting new topics (the consumer is closing).
    pub(crate) fn shut(&self) {
        self.out.write().take();
    }
}

/// A regex over the full topic names of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct TopicPattern {
    namespace: String,
    regex: regex::Regex,
}

impl TopicPattern {
    /// Parses `persistent://tenant/ns/<regex>` (or `tenant/ns/<regex>`).
    pub(crate) fn parse(pattern: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument {
            what: "topics pattern",
            value: pattern.to_owned(),
        };
        let full = if pattern.contains("://") {
            pattern.to_owned()
        } else {
            format!("persistent://{pattern}")
        };
        let (domain, rest) = full.split_once("://").ok_or_else(bad)?;
        if domain != "persistent" && domain != "non-persistent" {
            return Err(bad());
        }
        let mut parts = rest.splitn(3, '/');
        let (Some(tenant), Some(ns), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let regex = regex::Regex::new(&format!("^(?:{full})$")).map_err(|_| bad())?;
        Ok(TopicPattern {
            namespace: format!("{tenant}/{ns}"),
            regex,
        })
    }

    /// The namespace to list.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Matching topics among `listed` (names as the broker lists them: partitions of a
    /// partitioned topic collapse to its base name), sorted and deduplicated.
    pub(crate) fn matching(&self, listed: &[String]) -> Vec<String> {
        let set: BTreeSet<String> = listed
            .iter()
            .filter_map(|t| normalize_topic(t).ok())
            .map(|t| base_topic(&t).to_owned())
            .filter(|t| self.regex.is_match(t))
            .collect();
        set.into_iter().collect()
    }
}

/// `x-partition-3` -> `x`; other names unchanged.
fn base_topic(topic: &str) -> &str {
    match topic.rsplit_once("-partition-") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => topic,
    }
}

/// Subscribes to the topics matching `pattern` now, then starts the task that re-checks
/// every `pattern_auto_discovery_period`. Cancel the token to stop it.
pub(crate) async fn start_discovery(
    shared: Arc<Shared>,
    pattern: TopicPattern,
) -> Result<CancellationToken> {
    discover(&shared, &pattern).await?;
    let stop = CancellationToken::new();
    let period = shared.opts.pattern_auto_discovery_period;
    let weak = Arc::downgrade(&shared);
    drop(shared);
    let token = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(shared) = weak.upgrade() else { return };
            if let Err(e) = discover(&shared, &pattern).await {
                tracing::warn!(namespace = pattern.namespace(), error = %e, "topic discovery failed; retrying next period");
            }
        }
    });
    Ok(stop)
}

/// Lists the namespace once and subscribes to every new matching topic.
async fn discover(shared: &Shared, pattern: &TopicPattern) -> Result<()> {
    let listed = shared
        .client
        .topics_of_namespace(pattern.namespace())
        .await?;
    let known: HashSet<String> = shared.topics().into_iter().collect();
    for t in pattern.matching(&listed) {
        if known.contains(&t) {
            continue;
        }
        match shared.add_topic(&t).await {
            Ok(()) => tracing::info!(topic = %t, "pattern consumer subscribed to new topic"),
            Err(Error::Closed(_)) => return Ok(()),
            Err(e) => tracing::warn!(topic = %t, error = %e, "cannot subscribe to matching topic"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_matches_full_names_and_collapses_partitions() {
        let p = TopicPattern::parse("persistent://public/default/orders-.*").expect("parse");
        assert_eq!(p.namespace(), "public/default");
        let listed = vec![
            "persistent://public/default/orders-a".to_owned(),
            "persistent://public/default/orders-b-partition-0".to_owned(),
            "persistent://public/default/orders-b-partition-1".to_owned(),
            "persistent://public/default/payments".to_owned(),
            "persistent://public/default/xorders-c".to_owned(),
        ];
        assert_eq!(
            p.matching(&listed),
            vec![
                "persistent://public/default/orders-a",
                "persistent://public/default/orders-b"
            ]
        );
        let short = TopicPattern::parse("public/default/pay.*").expect("parse");
        assert_eq!(
            short.matching(&listed),
            vec!["persistent://public/default/payments"]
        );
        assert!(TopicPattern::parse("public/default").is_err());
        assert!(TopicPattern::parse("public/default/(").is_err());
        assert_eq!(base_topic("a-partition-x"), "a-partition-x");
    }
}
