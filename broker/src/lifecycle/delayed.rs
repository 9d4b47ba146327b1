//! Delayed delivery index of one Shared/Key_Shared subscription, as a pure state machine.
//!
//! Only `(deliver_at, position, key slot)` is kept per delayed entry, at most `budget` of
//! them (the slot keeps Key_Shared ordering when the entry is released). When
//! the index is full the entries due last are dropped from memory and the earliest dropped
//! time is remembered; once that time comes (or the index drains below half the budget) the
//! subscription rescans its unacknowledged entries from the mark-delete position and the
//! index is rebuilt. The same rescan rebuilds the index after a restart, so nothing is lost
//! and nothing is released before its time: an entry is released only by
//! [`DelayedTracker::release_due`] at or after its `deliver_at`.

use std::collections::BTreeSet;

use crate::position::Position;

/// The delayed entries of one subscription.
#[derive(Debug)]
pub struct DelayedTracker {
    index: BTreeSet<(u64, Position, Option<u32>)>,
    budget: usize,
    /// Earliest `deliver_at` of an entry dropped for lack of room.
    overflow_at: Option<u64>,
}

impl DelayedTracker {
    /// An empty index holding at most `budget` entries (at least 1).
    pub fn new(budget: usize) -> DelayedTracker {
        DelayedTracker {
            index: BTreeSet::new(),
            budget: budget.max(1),
            overflow_at: None,
        }
    }

    /// Indexes an entry due at `deliver_at` (ms since the epoch). Idempotent. Returns false
    /// when it was dropped for lack of room (it comes back with the next rescan).
    pub fn insert(&mut self, pos: Position, deliver_at: u64, slot: Option<u32>) -> bool {
        self.insert_evicting(pos, deliver_at, slot).0
    }

    /// As [`DelayedTracker::insert`], also naming the entry evicted to make room (so the
    /// caller can drop what it keeps about it).
    pub fn insert_evicting(
        &mut self,
        pos: Position,
        deliver_at: u64,
        slot: Option<u32>,
    ) -> (bool, Option<Position>) {
        let item = (deliver_at, pos, slot);
        if self.index.contains(&item) {
            return (true, None);
        }
        let mut evicted = None;
        if self.index.len() >= self.budget {
            let last = *self
                .index
                .last()
                .expect("budget >= 1 so the index is not empty");
            if item > last {
                self.note_overflow(deliver_at);
                return (false, None);
            }
            self.index.pop_last();
            self.note_overflow(last.0);
            evicted = Some(last.1);
        }
        self.index.insert(item);
        (true, evicted)
    }

    fn note_overflow(&mut self, at: u64) {
        self.overflow_at = Some(self.overflow_at.map_or(at, |o| o.min(at)));
    }

    /// Removes and returns the entries (position, slot) due at or before `now`, in
    /// position order.
    pub fn release_due(&mut self, now: u64) -> Vec<(Position, Option<u32>)> {
        let later = self
            .index
            .split_off(&(now.saturating_add(1), Position::new(0, 0), None));
        let due = std::mem::replace(&mut self.index, later);
        let mut out: Vec<(Position, Option<u32>)> =
            due.into_iter().map(|(_, p, s)| (p, s)).collect();
        out.sort_unstable();
        out
    }

    /// True (once) when dropped entries must be found again by rescanning the backlog.
    pub fn take_rescan(&mut self, now: u64) -> bool {
        match self.overflow_at {
            Some(at) if at <= now || self.index.len() < self.budget / 2 => {
                self.overflow_at = None;
                true
            }
            _ => false,
        }
    }

    /// When something next needs attention (ms since the epoch).
    pub fn next_wakeup(&self) -> Option<u64> {
        let first = self.index.first().map(|(at, _, _)| *at);
        match (first, self.overflow_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Entries held in memory.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nothing is held and nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty() && self.overflow_at.is_none()
    }

    /// True when entries were dropped and a rescan is pending.
    pub fn has_overflow(&self) -> bool {
        self.overflow_at.is_some()
    }

    /// Forgets everything (seek, clear backlog): the next read rebuilds the index.
    pub fn clear(&mut self) {
        self.index.clear();
        self.overflow_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(e: u64) -> Position {
        Position::new(3, e)
    }

    fn due(t: &mut DelayedTracker, now: u64) -> Vec<Position> {
        t.release_due(now).into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn releases_only_due_entries_in_position_order() {
        let mut t = DelayedTracker::new(10);
        t.insert(p(2), 100, None);
        t.insert(p(1), 300, None);
        t.insert(p(0), 100, None);
        t.insert(p(0), 100, None);
        assert_eq!(t.len(), 3);
        assert_eq!(t.next_wakeup(), Some(100));
        assert!(due(&mut t, 99).is_empty());
        assert_eq!(due(&mut t, 100), vec![p(0), p(2)]);
        assert_eq!(t.next_wakeup(), Some(300));
        assert_eq!(due(&mut t, 1_000), vec![p(1)]);
        assert!(t.is_empty());
    }

    #[test]
    fn over_budget_drops_latest_and_asks_for_rescan_in_time() {
        let mut t = DelayedTracker::new(4);
        for (i, at) in [500u64, 100, 400, 200].iter().enumerate() {
            assert!(t.insert(p(i as u64), *at, None));
        }
        // Full: a later entry is dropped, an earlier one evicts the latest (500).
        assert!(!t.insert(p(10), 900, None));
        assert_eq!(t.insert_evicting(p(11), 50, None), (true, Some(p(0))));
        assert_eq!(t.len(), 4);
        assert!(t.has_overflow());
        assert_eq!(t.next_wakeup(), Some(50));
        assert!(!t.take_rescan(60), "index still above half the budget");
        assert_eq!(due(&mut t, 60), vec![p(11)]);
        assert_eq!(due(&mut t, 250), vec![p(1), p(3)]);
        // One left (< budget/2): rescan now to refill.
        assert!(t.take_rescan(250));
        assert!(!t.take_rescan(250), "rescan is requested once");
    }

    #[test]
    fn overflow_time_wakes_the_subscription() {
        let mut t = DelayedTracker::new(1);
        t.insert(p(0), 1_000, None);
        assert!(!t.insert(p(1), 2_000, None));
        assert_eq!(t.next_wakeup(), Some(1_000));
        assert_eq!(due(&mut t, 1_000), vec![p(0)]);
        assert_eq!(t.next_wakeup(), Some(2_000));
        assert!(t.take_rescan(2_000));
        t.clear();
        assert!(t.is_empty());
    }
}
