//! Message expiry (TTL and `expireMessages`): acknowledging, for one subscription, every
//! message published before a cutoff. The cursor only moves forward (a cumulative ack up
//! to the last expired entry); consumers stay connected.

use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::position::Position;
use crate::subscription::{entry_metadata, AckItem, SubscriptionHandle};
use crate::topic::Topic;

/// Entries read per step of an expiry scan.
const SCAN_BATCH: usize = 200;
/// Most entries one expiry scan looks at (the next check continues).
const SCAN_LIMIT: usize = 200_000;

/// Progress of an expiry scan over entries in log order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExpiryScan {
    /// Last entry found published before the cutoff.
    pub last_expired: Option<Position>,
    /// Entries found expired.
    pub expired: u64,
    /// A young entry was found: the scan is over.
    pub done: bool,
}

impl ExpiryScan {
    /// Feeds entries `(position, publish_time_ms)` in log order; stops at the first entry
    /// published at or after `cutoff_ms` (publish times grow along the log).
    pub fn feed(&mut self, entries: impl IntoIterator<Item = (Position, u64)>, cutoff_ms: u64) {
        for (pos, published) in entries {
            if self.done {
                return;
            }
            if published >= cutoff_ms {
                self.done = true;
                return;
            }
            self.last_expired = Some(pos);
            self.expired += 1;
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// First unacknowledged position of a subscription.
pub(crate) fn first_unacked(topic: &Topic, sub: &SubscriptionHandle) -> Position {
    match sub.cursor.mark_delete() {
        Some(m) => topic.log.next_position(m),
        None => topic.log.first_position(),
    }
}

/// Scans a subscription's backlog from its mark-delete position; returns how far entries
/// published before `cutoff_ms` reach.
pub(crate) async fn scan_expired(
    topic: &Topic,
    sub: &SubscriptionHandle,
    cutoff_ms: u64,
) -> Result<ExpiryScan> {
    let mut scan = ExpiryScan::default();
    let mut from = first_unacked(topic, sub);
    let mut seen = 0usize;
    while !scan.done && seen < SCAN_LIMIT {
        if topic.log.last_confirmed().is_none_or(|l| from > l) {
            break;
        }
        let batch = topic.log.read(from, SCAN_BATCH).await?;
        let Some((last, _)) = batch.last() else {
            break;
        };
        let last = *last;
        seen += batch.len();
        scan.feed(
            batch
                .iter()
                .map(|(p, data)| (*p, entry_metadata(data).publish_time)),
            cutoff_ms,
        );
        from = topic.log.next_position(last);
    }
    Ok(scan)
}

/// Expires (acknowledges) the messages of `sub` published more than `seconds` ago.
/// Returns the number of entries expired. Used by the TTL checker and by the admin
/// `expireMessages` endpoint; unlike a seek it keeps consumers connected.
pub async fn expire_messages(topic: &Topic, sub: &SubscriptionHandle, seconds: u64) -> Result<u64> {
    let cutoff = now_ms().saturating_sub(seconds.saturating_mul(1000));
    let scan = scan_expired(topic, sub, cutoff).await?;
    let Some(upto) = scan.last_expired else {
        return Ok(0);
    };
    ack_up_to(sub, upto);
    // A round trip through the subscription's queue: once it answers, the ack above is
    // applied (admin callers read the backlog right after).
    let _ = sub.stats().await;
    topic
        .lifecycle
        .counters
        .msg_expired
        .fetch_add(scan.expired, Ordering::Relaxed);
    sub.counters
        .expired
        .fetch_add(scan.expired, Ordering::Relaxed);
    metrics::counter!("magnetar_broker_expired_messages_total").increment(scan.expired);
    tracing::debug!(topic = %topic.name, sub = %sub.name, %upto, n = scan.expired, "messages expired");
    Ok(scan.expired)
}

/// Acknowledges everything up to `upto` on behalf of the broker (not a consumer).
pub(crate) fn ack_up_to(sub: &SubscriptionHandle, upto: Position) {
    sub.ack(
        0,
        vec![AckItem {
            pos: upto,
            ack_set: None,
        }],
        true,
        None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_stops_at_first_young_entry() {
        let p = |e| Position::new(1, e);
        let mut s = ExpiryScan::default();
        s.feed([(p(0), 10), (p(1), 20)], 50);
        assert_eq!(s.last_expired, Some(p(1)));
        assert!(!s.done);
        s.feed([(p(2), 49), (p(3), 50), (p(4), 10)], 50);
        assert_eq!(s.last_expired, Some(p(2)));
        assert_eq!(s.expired, 3);
        assert!(s.done);
    }

    #[test]
    fn nothing_expires_when_first_entry_is_young() {
        let mut s = ExpiryScan::default();
        s.feed([(Position::new(1, 0), 100)], 50);
        assert_eq!(s.last_expired, None);
        assert!(s.done);
    }
}
