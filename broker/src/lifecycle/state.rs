//! Per-topic lifecycle state held by [`crate::topic::Topic`]: deduplication, the producer
//! block of an exceeded backlog quota, and counters for stats.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;

use super::dedup::{DedupDecision, DedupState};
use crate::error::{BrokerError, Result};
use crate::policies::BacklogQuotaPolicy;
use crate::position::Position;

/// Counters other components (admin stats, metrics) read.
#[derive(Debug, Default)]
pub struct LifecycleCounters {
    /// Messages expired by TTL or `expireMessages` (entries).
    pub msg_expired: AtomicU64,
    /// Entries dropped by `consumer_backlog_eviction`.
    pub msg_evicted: AtomicU64,
    /// SENDs acknowledged as duplicates without being stored.
    pub duplicates: AtomicU64,
    /// Backlog of the slowest subscription at the last quota check (bytes).
    pub backlog_bytes: AtomicU64,
    /// Age of the oldest unacknowledged message at the last quota check (seconds).
    pub backlog_age_secs: AtomicU64,
}

/// What to do with a SEND.
pub enum Admit {
    /// Store it; `tracked` when deduplication must learn its outcome.
    Store { tracked: bool },
    /// Acknowledge it without storing.
    Duplicate,
    /// Refuse it.
    Refuse(BrokerError),
}

/// Lifecycle state of one topic.
#[derive(Debug)]
pub struct TopicLifecycle {
    topic: String,
    dedup_enabled: AtomicBool,
    /// Deduplication state (meaningful while enabled).
    pub dedup: Mutex<DedupState>,
    block: Mutex<Option<BacklogQuotaPolicy>>,
    /// Counters.
    pub counters: LifecycleCounters,
    pub(crate) last_ttl_check: Mutex<Option<std::time::Instant>>,
}

impl TopicLifecycle {
    /// State of topic `topic`; deduplication starts as `dedup` until policies are resolved.
    pub fn new(topic: String, dedup: bool) -> TopicLifecycle {
        TopicLifecycle {
            topic,
            dedup_enabled: AtomicBool::new(dedup),
            dedup: Mutex::new(DedupState::default()),
            block: Mutex::new(None),
            counters: LifecycleCounters::default(),
            last_ttl_check: Mutex::new(None),
        }
    }

    /// True while deduplication is enabled.
    pub fn dedup_enabled(&self) -> bool {
        self.dedup_enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn set_dedup_enabled(&self, on: bool) {
        self.dedup_enabled.store(on, Ordering::Relaxed);
    }

    /// Pulsar's `deduplicationStatus` for stats.
    pub fn dedup_status(&self) -> &'static str {
        if self.dedup_enabled() {
            "Enabled"
        } else {
            "Disabled"
        }
    }

    /// PRODUCER_SUCCESS's `last_sequence_id` for `producer`.
    pub fn last_sequence(&self, producer: &str) -> i64 {
        if self.dedup_enabled() {
            self.dedup.lock().last_sequence(producer)
        } else {
            -1
        }
    }

    /// The producer-blocking quota policy currently in force.
    pub fn producer_block(&self) -> Option<BacklogQuotaPolicy> {
        *self.block.lock()
    }

    /// Sets the producer block; returns true when producers just became blocked.
    pub(crate) fn set_producer_block(&self, b: Option<BacklogQuotaPolicy>) -> bool {
        let mut cur = self.block.lock();
        let newly = cur.is_none() && b.is_some();
        *cur = b;
        newly
    }

    /// The error a blocked producer gets.
    pub fn quota_error(&self, policy: BacklogQuotaPolicy) -> BrokerError {
        BrokerError::BacklogQuotaExceeded {
            topic: self.topic.clone(),
            hold: policy == BacklogQuotaPolicy::ProducerRequestHold,
        }
    }

    /// Decides on a SEND before it is stored.
    pub fn admit(&self, producer: &str, sequence_id: u64, highest: u64) -> Admit {
        if self.producer_block() == Some(BacklogQuotaPolicy::ProducerException) {
            return Admit::Refuse(self.quota_error(BacklogQuotaPolicy::ProducerException));
        }
        if !self.dedup_enabled() {
            return Admit::Store { tracked: false };
        }
        match self.dedup.lock().check(producer, sequence_id, highest) {
            DedupDecision::Accept => Admit::Store { tracked: true },
            DedupDecision::Duplicate => {
                self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("magnetar_broker_duplicate_messages_total").increment(1);
                Admit::Duplicate
            }
        }
    }

    /// Wraps the store of an admitted, tracked SEND so deduplication learns its outcome even
    /// if the sender goes away (the store runs to completion on its own task).
    pub fn track_store(
        self: &Arc<Self>,
        producer: &str,
        highest: u64,
        store: BoxFuture<'static, Result<Position>>,
    ) -> BoxFuture<'static, Result<Position>> {
        let me = self.clone();
        let producer = producer.to_string();
        let handle = tokio::spawn(async move {
            let res = store.await;
            let mut d = me.dedup.lock();
            match &res {
                Ok(pos) => d.stored(&producer, highest, *pos),
                Err(_) => d.failed(&producer),
            }
            res
        });
        let topic = self.topic.clone();
        async move {
            handle
                .await
                .unwrap_or_else(|_| Err(BrokerError::ServiceNotReady(format!("{topic} closing"))))
        }
        .boxed()
    }
}
