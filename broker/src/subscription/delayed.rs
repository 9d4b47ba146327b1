//! Delayed delivery inside a subscription task: the bounded index of delayed entries
//! ([`DelayedTracker`]) plus the bytes of entries waiting in memory (delayed ones, and ones
//! no consumer had permits for), so that releasing or redelivering them costs no read.
//! Held bytes are bounded; an entry whose bytes are not held is simply read again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tracing::debug;

use super::task::SubTask;
use crate::dispatch::SubType;
use crate::lifecycle::delayed::DelayedTracker;
use crate::position::Position;

/// Most entry bytes one subscription holds in memory for delayed or waiting entries.
const HELD_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Delayed entries of a subscription and the bytes held for waiting entries.
#[derive(Debug)]
pub(crate) struct DelayedEntries {
    pub(super) index: DelayedTracker,
    held: HashMap<Position, Bytes>,
    held_bytes: usize,
    /// The last read of new entries was (almost) all delayed: read in bigger steps.
    pub(super) scanning: bool,
}

impl DelayedEntries {
    pub(super) fn new(budget: usize) -> DelayedEntries {
        DelayedEntries {
            index: DelayedTracker::new(budget),
            held: HashMap::new(),
            held_bytes: 0,
            scanning: false,
        }
    }

    /// Indexes a delayed entry and holds its bytes while there is room.
    pub(super) fn insert(&mut self, pos: Position, at: u64, slot: Option<u32>, bytes: &Bytes) {
        let (kept, evicted) = self.index.insert_evicting(pos, at, slot);
        if let Some(e) = evicted {
            self.forget(e);
        }
        if kept {
            self.hold(pos, bytes.clone());
        }
    }

    /// Holds an entry's bytes while there is room.
    pub(super) fn hold(&mut self, pos: Position, bytes: Bytes) {
        if self.held.contains_key(&pos) || self.held_bytes + bytes.len() > HELD_BYTES_MAX {
            return;
        }
        self.held_bytes += bytes.len();
        self.held.insert(pos, bytes);
    }

    /// True while more bytes can be held.
    pub(super) fn has_room(&self) -> bool {
        self.held_bytes < HELD_BYTES_MAX
    }

    /// The held bytes of an entry.
    pub(super) fn held(&self, pos: Position) -> Option<Bytes> {
        self.held.get(&pos).cloned()
    }

    /// Drops the held bytes of an entry (delivered, acknowledged or gone).
    pub(super) fn forget(&mut self, pos: Position) {
        if let Some(b) = self.held.remove(&pos) {
            self.held_bytes -= b.len();
        }
    }

    /// Drops the held bytes of every entry up to `upto` (a cumulative ack, e.g. expiry).
    pub(super) fn forget_up_to(&mut self, upto: Position) {
        let before = self.held.len();
        self.held.retain(|p, _| *p > upto);
        if self.held.len() != before {
            self.held_bytes = self.held.values().map(Bytes::len).sum();
        }
    }

    /// Forgets everything (seek).
    pub(super) fn clear(&mut self) {
        self.index.clear();
        self.held.clear();
        self.held_bytes = 0;
        self.scanning = false;
    }
}

impl SubTask {
    /// Delayed delivery applies to Shared and Key_Shared subscriptions, as in Pulsar.
    pub(super) fn delays_allowed(&self) -> bool {
        matches!(
            self.dispatcher.sub_type(),
            SubType::Shared | SubType::KeyShared
        ) && !self.counters.delayed_delivery_off.load(Ordering::Relaxed)
    }

    pub(super) fn count_delayed(&self) {
        self.counters
            .delayed
            .store(self.delayed.index.len() as u64, Ordering::Relaxed);
    }

    /// Moves delayed entries that are due to the redelivery queue and dispatches those
    /// whose bytes are held at once; rescans the backlog when entries were dropped from
    /// the bounded index.
    pub(super) fn release_due(&mut self) {
        let now = now_ms();
        let mut ready = Vec::new();
        let mut asked = Vec::new();
        for (pos, slot) in self.delayed.index.release_due(now) {
            if self.acks.is_acked(pos) {
                self.delayed.forget(pos);
                continue;
            }
            self.dispatcher.add_replay(pos, slot);
            if let Some(b) = self.delayed.held(pos) {
                asked.push(pos);
                ready.push((pos, b));
            }
        }
        if !ready.is_empty() {
            let epoch = self.epoch;
            self.on_read((Some(asked), Ok(ready)), epoch);
        }
        if self.delayed.index.take_rescan(now) {
            self.rescan_from_mark_delete();
        }
        self.count_delayed();
    }

    /// Reads the unacknowledged entries again from the mark-delete position, so delayed
    /// entries dropped from the bounded index are indexed again. Entries pending on a
    /// consumer or acknowledged are skipped by dispatch, so nothing is delivered twice.
    fn rescan_from_mark_delete(&mut self) {
        let from = self
            .acks
            .mark_delete()
            .map_or_else(|| self.log.first_position(), |m| self.log.next_position(m));
        if from < self.read_pos {
            self.epoch += 1;
            self.reading = None;
            self.read_pos = from;
            self.dispatcher.retry_replay();
            debug!(sub = %self.name, %from, "rescanning backlog for delayed entries");
        }
    }
}

/// Milliseconds since the Unix epoch (delivery times are wall-clock times).
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sleeps until wall-clock time `at_ms` (at most a minute at a time; the loop re-checks).
pub(super) async fn sleep_until_due(at_ms: Option<u64>) {
    let wait = at_ms.map_or(60_000, |at| at.saturating_sub(now_ms()).min(60_000));
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(e: u64) -> Position {
        Position::new(1, e)
    }

    #[test]
    fn held_bytes_follow_the_index_and_stay_bounded() {
        let mut d = DelayedEntries::new(2);
        let b = Bytes::from_static(b"0123456789");
        d.insert(p(0), 300, None, &b);
        d.insert(p(1), 200, None, &b);
        assert_eq!(d.held(p(0)), Some(b.clone()));
        // Over the index budget: the latest (p0 at 300) is evicted, and its bytes with it.
        d.insert(p(2), 100, None, &b);
        assert_eq!(d.held(p(0)), None);
        assert_eq!(d.held_bytes, 20);
        d.forget(p(2));
        assert_eq!(d.held_bytes, 10);
        d.hold(p(5), b.clone());
        d.hold(p(6), b.clone());
        d.forget_up_to(p(5));
        assert_eq!((d.held(p(1)), d.held(p(5))), (None, None));
        assert_eq!(d.held_bytes, 10);
        d.hold(p(7), Bytes::from(vec![0u8; HELD_BYTES_MAX]));
        assert_eq!(d.held(p(7)), None, "over the byte bound: not held");
        d.clear();
        assert_eq!(d.held_bytes, 0);
        assert!(d.index.is_empty());
    }
}
