//! Per-topic lifecycle state held by [`crate::topic::Topic`]: deduplication, the producer
//! block of an exceeded backlog quota, and counters for stats.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;

use super::dedup::{DedupDecision, DedupState, InFlightStatus};
use crate::error::{BrokerError, Result};
use crate::policies::BacklogQuotaPolicy;
use crate::position::Position;
use crate::subscription::SubscriptionHandle;

/// Counters other components (admin stats, metrics) read.
#[derive(Debug, Default)]
pub struct LifecycleCounters {
    /// Messages expired by TTL or `expireMessages` (entries).
    pub msg_expired: AtomicU64,
    /// Entries dropped by `consumer_backlog_eviction`.
    pub msg_evicted: AtomicU64,
    /// SENDs acknowledged as duplicates without being stored.
    pub duplicates: AtomicU64,
    /// Age of the oldest unacknowledged message at the last quota check (seconds).
    pub backlog_age_secs: AtomicU64,
}

/// What to do with a SEND.
pub enum Admit {
    /// Store it; `tracked` when deduplication must learn its outcome.
    Store { tracked: bool },
    /// Acknowledge it without storing.
    Duplicate,
    /// It repeats a sequence id whose store is in flight: answer after that store
    /// ([`TopicLifecycle::await_in_flight`]).
    InFlight,
    /// Refuse it.
    Refuse(BrokerError),
}

/// Lifecycle state of one topic.
#[derive(Debug)]
pub struct TopicLifecycle {
    topic: String,
    dedup_enabled: AtomicBool,
    delayed_off: AtomicBool,
    /// Deduplication state (meaningful while enabled).
    pub dedup: Mutex<DedupState>,
    block: Mutex<Option<BacklogQuotaPolicy>>,
    /// Counters.
    pub counters: LifecycleCounters,
    pub(crate) last_ttl_check: Mutex<Option<std::time::Instant>>,
    /// Last default-retention trim (deleting consumed ledgers when no policy is set).
    pub(crate) last_default_trim: Mutex<std::time::Instant>,
    /// Woken whenever a tracked store completes.
    settled: tokio::sync::Notify,
}

impl TopicLifecycle {
    /// State of topic `topic`; deduplication starts as `dedup` until policies are resolved.
    pub fn new(topic: String, dedup: bool) -> TopicLifecycle {
        TopicLifecycle {
            topic,
            dedup_enabled: AtomicBool::new(dedup),
            delayed_off: AtomicBool::new(false),
            dedup: Mutex::new(DedupState::default()),
            block: Mutex::new(None),
            counters: LifecycleCounters::default(),
            last_ttl_check: Mutex::new(None),
            last_default_trim: Mutex::new(std::time::Instant::now()),
            settled: tokio::sync::Notify::new(),
        }
    }

    /// True while deduplication is enabled.
    pub fn dedup_enabled(&self) -> bool {
        self.dedup_enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn set_dedup_enabled(&self, on: bool) {
        self.dedup_enabled.store(on, Ordering::Relaxed);
    }

    /// Follows the delayed delivery policy (`active = false` delivers delayed messages at
    /// once); applied to subscriptions now and as they are created.
    pub(crate) fn set_delayed_delivery(&self, active: bool, subs: &[Arc<SubscriptionHandle>]) {
        self.delayed_off.store(!active, Ordering::Relaxed);
        for s in subs {
            self.configure_subscription(s);
        }
    }

    /// Applies topic-level lifecycle settings to a new subscription (before it has
    /// consumers, so before it reads).
    pub fn configure_subscription(&self, sub: &SubscriptionHandle) {
        sub.counters
            .delayed_delivery_off
            .store(self.delayed_off.load(Ordering::Relaxed), Ordering::Relaxed);
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
            DedupDecision::InFlight => Admit::InFlight,
        }
    }

    /// Answers a SEND that repeated the sequence id of a store still in flight: once that
    /// store is persisted, a duplicate receipt (`-1:-1`); if it failed, an error so the
    /// client sends again.
    pub fn await_in_flight(
        self: &Arc<Self>,
        producer: &str,
        sequence_id: u64,
    ) -> BoxFuture<'static, Result<Position>> {
        let me = self.clone();
        let producer = producer.to_string();
        async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let settled = me.settled.notified();
                tokio::pin!(settled);
                settled.as_mut().enable();
                let status = me.dedup.lock().in_flight_status(&producer, sequence_id);
                match status {
                    InFlightStatus::Persisted => {
                        me.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                        return Ok(Position::new(u64::MAX, u64::MAX));
                    }
                    InFlightStatus::Failed => break,
                    InFlightStatus::Pending => {
                        if tokio::time::timeout_at(deadline, settled).await.is_err() {
                            break;
                        }
                    }
                }
            }
            Err(BrokerError::ServiceNotReady(format!(
                "earlier send of sequence id {sequence_id} by {producer} did not complete"
            )))
        }
        .boxed()
    }

    /// Wraps the store of an admitted, tracked SEND so deduplication learns its outcome,
    /// even if the sender goes away first (the store then finishes on its own task).
    pub fn track_store(
        self: &Arc<Self>,
        producer: &str,
        highest: u64,
        store: BoxFuture<'static, Result<Position>>,
    ) -> BoxFuture<'static, Result<Position>> {
        Box::pin(TrackedStore {
            store: Some(store),
            lifecycle: self.clone(),
            producer: producer.to_string(),
            highest,
        })
    }

    fn record(&self, producer: &str, highest: u64, res: &Result<Position>) {
        {
            let mut d = self.dedup.lock();
            match res {
                Ok(pos) => d.stored(producer, highest, *pos),
                Err(_) => d.failed(producer),
            }
        }
        self.settled.notify_waiters();
    }
}

/// A store whose outcome deduplication must learn (see [`TopicLifecycle::track_store`]).
struct TrackedStore {
    store: Option<BoxFuture<'static, Result<Position>>>,
    lifecycle: Arc<TopicLifecycle>,
    producer: String,
    highest: u64,
}

impl Future for TrackedStore {
    type Output = Result<Position>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(store) = self.store.as_mut() else {
            return Poll::Ready(Err(BrokerError::ServiceNotReady(
                "store polled after completion".to_string(),
            )));
        };
        let res = std::task::ready!(store.as_mut().poll(cx));
        self.store = None;
        self.lifecycle.record(&self.producer, self.highest, &res);
        Poll::Ready(res)
    }
}

impl Drop for TrackedStore {
    fn drop(&mut self) {
        // Dropped before completion (connection gone): the entry may still be stored, so
        // its outcome is awaited elsewhere; without a runtime (shutdown) it is replayed
        // from the log on the next open instead.
        let Some(store) = self.store.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let lc = self.lifecycle.clone();
            let producer = std::mem::take(&mut self.producer);
            let highest = self.highest;
            rt.spawn(async move {
                let res = store.await;
                lc.record(&producer, highest, &res);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn store_outcome_is_recorded_even_if_the_sender_drops_the_receipt() {
        let lc = Arc::new(TopicLifecycle::new("t".into(), true));
        assert!(matches!(
            lc.admit("p", 0, 0),
            Admit::Store { tracked: true }
        ));
        let done = lc.track_store("p", 0, async { Ok(Position::new(1, 0)) }.boxed());
        assert_eq!(done.await.expect("stored"), Position::new(1, 0));
        assert_eq!(lc.last_sequence("p"), 0);

        assert!(matches!(
            lc.admit("p", 1, 1),
            Admit::Store { tracked: true }
        ));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let slow = async move {
            let _ = rx.await;
            Ok(Position::new(1, 1))
        }
        .boxed();
        drop(lc.track_store("p", 1, slow));
        // A repeat while the store is in flight waits for its outcome.
        assert!(matches!(lc.admit("p", 1, 1), Admit::InFlight));
        let repeat = lc.await_in_flight("p", 1);
        let _ = tx.send(());
        assert_eq!(
            repeat.await.expect("dup"),
            Position::new(u64::MAX, u64::MAX)
        );
        assert_eq!(lc.last_sequence("p"), 1);
    }

    #[test]
    fn producer_exception_block_refuses_sends() {
        let lc = TopicLifecycle::new("t".into(), false);
        assert!(lc.set_producer_block(Some(BacklogQuotaPolicy::ProducerException)));
        assert!(matches!(lc.admit("p", 0, 0), Admit::Refuse(_)));
        assert!(!lc.set_producer_block(Some(BacklogQuotaPolicy::ProducerException)));
        lc.set_producer_block(None);
        assert!(matches!(
            lc.admit("p", 0, 0),
            Admit::Store { tracked: false }
        ));
    }
}
