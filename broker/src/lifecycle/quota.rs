//! Backlog quotas: deciding, from a topic's backlog (bytes and age of its slowest
//! subscription), whether a quota is exceeded and what to do about it.
//!
//! Policies (as Pulsar): `producer_request_hold` and `producer_exception` disconnect the
//! producers and refuse new ones (`ProducerBlockedQuotaExceededError` after a bounded wait,
//! respectively `ProducerBlockedQuotaExceededException` at once; sends of the exception
//! policy fail too); `consumer_backlog_eviction` moves the slowest subscription's cursor
//! forward until the backlog is back under the quota.

use std::collections::BTreeMap;

use crate::policies::{BacklogQuota, BacklogQuotaPolicy, DESTINATION_STORAGE, MESSAGE_AGE};

/// Which limit was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Backlog bytes over `limitSize`.
    Size,
    /// Oldest unacknowledged message older than `limitTime` seconds.
    Age,
}

/// An exceeded quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    /// Which limit.
    pub kind: QuotaKind,
    /// What to do.
    pub policy: BacklogQuotaPolicy,
    /// The limit (bytes or seconds).
    pub limit: u64,
}

/// A topic's backlog as the quota sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Unacknowledged entries of the slowest durable subscription.
    pub entries: u64,
    /// Estimated bytes of that backlog.
    pub bytes: u64,
    /// Age of its oldest unacknowledged entry, seconds (`None`: unknown or no backlog).
    pub age_secs: Option<u64>,
}

/// The quotas `backlog` exceeds (size first).
pub fn evaluate(quotas: &BTreeMap<String, BacklogQuota>, backlog: &Backlog) -> Vec<Exceeded> {
    let mut out = Vec::new();
    if let Some(q) = quotas.get(DESTINATION_STORAGE) {
        if q.limit_size >= 0 && backlog.bytes > q.limit_size as u64 {
            out.push(Exceeded {
                kind: QuotaKind::Size,
                policy: q.policy,
                limit: q.limit_size as u64,
            });
        }
    }
    if let Some(q) = quotas.get(MESSAGE_AGE) {
        if q.limit_time >= 0 && backlog.age_secs.is_some_and(|a| a > q.limit_time as u64) {
            out.push(Exceeded {
                kind: QuotaKind::Age,
                policy: q.policy,
                limit: q.limit_time as u64,
            });
        }
    }
    out
}

/// True if an age quota is configured (the oldest entry then has to be read).
pub fn needs_age(quotas: &BTreeMap<String, BacklogQuota>) -> bool {
    quotas.get(MESSAGE_AGE).is_some_and(|q| q.limit_time >= 0)
}

/// The producer-blocking policy in force, if any (exception wins over hold).
pub fn producer_block(exceeded: &[Exceeded]) -> Option<BacklogQuotaPolicy> {
    let mut block = None;
    for e in exceeded {
        match e.policy {
            BacklogQuotaPolicy::ProducerException => {
                return Some(BacklogQuotaPolicy::ProducerException)
            }
            BacklogQuotaPolicy::ProducerRequestHold => {
                block = Some(BacklogQuotaPolicy::ProducerRequestHold)
            }
            BacklogQuotaPolicy::ConsumerBacklogEviction => {}
        }
    }
    block
}

/// Entries to drop from the head of a backlog of `entries` entries averaging
/// `avg_entry_bytes` so that it ends up at or below 90% of `limit_bytes` (as Pulsar, which
/// evicts a little more than needed so eviction does not run on every check).
pub fn entries_to_evict(entries: u64, avg_entry_bytes: u64, limit_bytes: u64) -> u64 {
    if avg_entry_bytes == 0 {
        return 0;
    }
    let keep = (limit_bytes.saturating_mul(9) / 10) / avg_entry_bytes;
    entries.saturating_sub(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(size: i64, time: i64, policy: BacklogQuotaPolicy) -> BTreeMap<String, BacklogQuota> {
        let q = |limit_size, limit_time| BacklogQuota {
            limit_size,
            limit_time,
            policy,
        };
        let mut m = BTreeMap::new();
        m.insert(DESTINATION_STORAGE.to_string(), q(size, -1));
        m.insert(MESSAGE_AGE.to_string(), q(-1, time));
        m
    }

    #[test]
    fn size_and_age_limits_are_checked_independently() {
        let qs = quotas(1000, 60, BacklogQuotaPolicy::ProducerException);
        let small = Backlog {
            entries: 1,
            bytes: 10,
            age_secs: Some(1),
        };
        assert!(evaluate(&qs, &small).is_empty());
        let big = Backlog {
            bytes: 1001,
            ..small
        };
        assert_eq!(evaluate(&qs, &big)[0].kind, QuotaKind::Size);
        let old = Backlog {
            age_secs: Some(61),
            ..small
        };
        let ex = evaluate(&qs, &old);
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].kind, QuotaKind::Age);
        assert_eq!(
            producer_block(&ex),
            Some(BacklogQuotaPolicy::ProducerException)
        );
        assert!(needs_age(&qs));
        assert!(!needs_age(&quotas(
            1,
            -1,
            BacklogQuotaPolicy::ProducerException
        )));
    }

    #[test]
    fn eviction_blocks_no_producer_and_drops_to_ninety_percent() {
        let qs = quotas(1000, -1, BacklogQuotaPolicy::ConsumerBacklogEviction);
        let ex = evaluate(
            &qs,
            &Backlog {
                entries: 20,
                bytes: 2000,
                age_secs: None,
            },
        );
        assert_eq!(producer_block(&ex), None);
        assert_eq!(entries_to_evict(20, 100, 1000), 11);
        assert_eq!(entries_to_evict(5, 100, 1000), 0);
        assert_eq!(entries_to_evict(5, 0, 1000), 0);
    }
}
