//! Message lifecycle (issue #8): deduplication, delayed delivery, message TTL, retention and
//! backlog quotas.
//!
//! The decisions are pure state machines, unit-tested without a runtime:
//! [`dedup::DedupState`] (highest sequence id per producer, pushed vs persisted, snapshots),
//! [`delayed::DelayedTracker`] (bounded `(deliver_at, position)` index of a subscription),
//! [`ttl::ExpiryScan`] (how far a backlog is expired) and [`quota`] (which backlog quota is
//! exceeded and what to do). [`service`] is the IO edge: a broker-wide loop over loaded
//! topics and the hooks the topic, producer and subscription paths call. Per-topic state
//! lives in [`state::TopicLifecycle`].
//!
//! Invariants: a duplicate SEND is acknowledged but never stored; deduplication state is
//! rebuilt on open from a snapshot stored with the managed ledger plus the log tail after
//! it, so it survives restarts and owner changes. A delayed entry is never dispatched
//! before its `deliver_at_time`; the delayed index is rebuilt from the unacknowledged
//! entries, so a restart neither loses nor releases early. Expiry and eviction only move
//! cursors forward; retention trimming never deletes unacknowledged data.

pub mod config;
pub mod dedup;
pub mod delayed;
pub mod quota;
pub mod service;
pub mod state;
pub mod stats;
pub mod ttl;

use std::sync::atomic::{AtomicUsize, Ordering};

pub use config::{apply_env_overrides, LifecycleConfig};
pub use service::{
    admit_producer, check_producer_admission, on_topic_closing, on_topic_loaded, start,
    ProducerAdmission,
};
pub use state::{Admit, TopicLifecycle};
pub use ttl::expire_messages;

static DELAYED_INDEX_BUDGET: AtomicUsize = AtomicUsize::new(100_000);

/// Sets the per-subscription delayed index budget (broker start).
pub fn set_delayed_index_budget(n: usize) {
    DELAYED_INDEX_BUDGET.store(n.max(1), Ordering::Relaxed);
}

/// The per-subscription delayed index budget.
pub fn delayed_index_budget() -> usize {
    DELAYED_INDEX_BUDGET.load(Ordering::Relaxed)
}
