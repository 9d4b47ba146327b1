//! Producer deduplication as a pure state machine: the highest sequence id per producer
//! name, split (as Pulsar does) into *pushed* (accepted for storage, decides duplicates)
//! and *persisted* (confirmed by the log, the only thing snapshotted).
//!
//! Durability: a [`DedupSnapshot`] is stored with the managed ledger (a property) and names
//! the last log position it covers; on open the log tail after it is replayed through
//! [`DedupState::observe`], so the state survives restarts and owner changes. A snapshot's
//! position is the last position reached while no store was outstanding, so every entry at
//! or before it is reflected; its sequences may be newer (replaying them is harmless: max).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::position::Position;

/// Managed-ledger property holding the JSON [`DedupSnapshot`].
pub const SNAPSHOT_PROPERTY: &str = "magnetar.dedup.snapshot";

/// Persisted form of the deduplication state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupSnapshot {
    /// Every entry at or before this (ledger, entry) is reflected in `sequences`.
    pub position: Option<(u64, u64)>,
    /// Highest persisted sequence id per producer name.
    pub sequences: HashMap<String, i64>,
}

/// What to do with a SEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupDecision {
    /// Store it.
    Accept,
    /// Acknowledge without storing: the sequence id is not above the highest persisted.
    Duplicate,
    /// The sequence id was accepted but its store has not completed: the answer depends on
    /// that store's outcome (see [`DedupState::in_flight_status`]).
    InFlight,
}

/// Outcome of an earlier accepted store, for a SEND that repeated its sequence id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFlightStatus {
    /// Stored: the repeat is a duplicate.
    Persisted,
    /// The store failed: the repeat must be sent again.
    Failed,
    /// Still in flight.
    Pending,
}

/// Deduplication state of one topic.
#[derive(Debug, Default)]
pub struct DedupState {
    pushed: HashMap<String, i64>,
    persisted: HashMap<String, i64>,
    last_position: Option<Position>,
    /// Every entry at or before this is reflected in `persisted`.
    safe_position: Option<Position>,
    outstanding: u64,
    dirty: bool,
}

impl DedupState {
    /// State restored from a snapshot (the log tail after it still has to be observed).
    pub fn from_snapshot(s: DedupSnapshot) -> DedupState {
        DedupState {
            pushed: s.sequences.clone(),
            persisted: s.sequences,
            last_position: s.position.map(|(l, e)| Position::new(l, e)),
            safe_position: s.position.map(|(l, e)| Position::new(l, e)),
            outstanding: 0,
            dirty: false,
        }
    }

    /// Decides on a SEND of `producer` carrying `sequence_id..=highest`; an accepted send
    /// is outstanding until [`DedupState::stored`] or [`DedupState::failed`].
    pub fn check(&mut self, producer: &str, sequence_id: u64, highest: u64) -> DedupDecision {
        let last = self.pushed.get(producer).copied().unwrap_or(-1);
        if (sequence_id as i64) <= last {
            if (sequence_id as i64) <= self.last_sequence(producer) {
                return DedupDecision::Duplicate;
            }
            return DedupDecision::InFlight;
        }
        self.pushed
            .insert(producer.to_string(), highest.max(sequence_id) as i64);
        self.outstanding += 1;
        DedupDecision::Accept
    }

    /// An accepted send was stored at `pos`.
    pub fn stored(&mut self, producer: &str, highest: u64, pos: Position) {
        self.outstanding = self.outstanding.saturating_sub(1);
        self.observe(producer, highest as i64, pos);
    }

    fn settle(&mut self) {
        if self.outstanding == 0 {
            self.safe_position = self.last_position;
        }
    }

    /// An accepted send failed: the producer may send the same sequence id again.
    pub fn failed(&mut self, producer: &str) {
        self.outstanding = self.outstanding.saturating_sub(1);
        match self.persisted.get(producer) {
            Some(p) => self.pushed.insert(producer.to_string(), *p),
            None => self.pushed.remove(producer),
        };
        self.settle();
    }

    /// Records an entry found in the log (recovery) or just stored.
    pub fn observe(&mut self, producer: &str, highest: i64, pos: Position) {
        for map in [&mut self.persisted, &mut self.pushed] {
            let v = map.entry(producer.to_string()).or_insert(-1);
            *v = (*v).max(highest);
        }
        self.last_position = self.last_position.max(Some(pos));
        self.dirty = true;
        self.settle();
    }

    /// What became of the earlier store of `sequence_id` that made a repeat
    /// [`DedupDecision::InFlight`].
    pub fn in_flight_status(&self, producer: &str, sequence_id: u64) -> InFlightStatus {
        let seq = sequence_id as i64;
        if seq <= self.last_sequence(producer) {
            InFlightStatus::Persisted
        } else if seq > self.pushed.get(producer).copied().unwrap_or(-1) {
            InFlightStatus::Failed
        } else {
            InFlightStatus::Pending
        }
    }

    /// Highest persisted sequence id of `producer` (-1 if none): PRODUCER_SUCCESS's
    /// `last_sequence_id`.
    pub fn last_sequence(&self, producer: &str) -> i64 {
        self.persisted.get(producer).copied().unwrap_or(-1)
    }

    /// A snapshot to persist, if anything changed since the last one.
    pub fn take_snapshot(&mut self) -> Option<DedupSnapshot> {
        if !self.dirty {
            return None;
        }
        // Stay dirty until a snapshot covers everything seen.
        self.dirty = self.safe_position != self.last_position;
        Some(DedupSnapshot {
            position: self.safe_position.map(|p| (p.ledger, p.entry)),
            sequences: self.persisted.clone(),
        })
    }

    /// A snapshot write failed: try again later.
    pub fn snapshot_failed(&mut self) {
        self.dirty = true;
    }

    /// Number of producers tracked.
    pub fn producers(&self) -> usize {
        self.persisted.len()
    }
}

/// Highest sequence id carried by a stored entry, from its metadata: the metadata's
/// `highest_sequence_id` when set, else the last id of a batch of `num_messages`. Clients
/// give the messages of a batch strictly increasing ids, so `sequence_id + n - 1` never
/// overestimates (an underestimate only weakens deduplication of a resent partial batch).
pub fn entry_highest_sequence(
    sequence_id: u64,
    highest_sequence_id: Option<u64>,
    num_messages: Option<i32>,
) -> i64 {
    let batch_last = sequence_id + num_messages.map_or(0, |n| n.max(1) as u64 - 1);
    highest_sequence_id
        .filter(|h| *h >= sequence_id)
        .unwrap_or(batch_last)
        .max(sequence_id) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(e: u64) -> Position {
        Position::new(1, e)
    }

    #[test]
    fn duplicates_are_sequence_ids_not_above_the_highest_pushed() {
        let mut d = DedupState::default();
        assert_eq!(d.check("a", 0, 0), DedupDecision::Accept);
        d.stored("a", 0, p(0));
        assert_eq!(d.check("a", 0, 0), DedupDecision::Duplicate);
        assert_eq!(d.check("b", 0, 0), DedupDecision::Accept);
        // A batch 1..=5 moves the highest to 5.
        assert_eq!(d.check("a", 1, 5), DedupDecision::Accept);
        assert_eq!(d.check("a", 4, 4), DedupDecision::InFlight);
        d.stored("a", 5, p(1));
        assert_eq!(d.check("a", 4, 4), DedupDecision::Duplicate);
        assert_eq!(d.check("a", 6, 6), DedupDecision::Accept);
    }

    #[test]
    fn repeat_of_an_in_flight_send_waits_for_its_outcome() {
        let mut d = DedupState::default();
        d.check("a", 0, 0);
        assert_eq!(d.check("a", 0, 0), DedupDecision::InFlight);
        assert_eq!(d.in_flight_status("a", 0), InFlightStatus::Pending);
        d.stored("a", 0, p(0));
        assert_eq!(d.in_flight_status("a", 0), InFlightStatus::Persisted);
        d.check("a", 1, 1);
        d.failed("a");
        assert_eq!(d.in_flight_status("a", 1), InFlightStatus::Failed);
    }

    #[test]
    fn failed_store_allows_resend_and_last_sequence_is_persisted_only() {
        let mut d = DedupState::default();
        d.check("a", 0, 0);
        d.stored("a", 0, p(0));
        d.check("a", 1, 1);
        assert_eq!(d.last_sequence("a"), 0);
        d.failed("a");
        assert_eq!(d.check("a", 1, 1), DedupDecision::Accept);
        d.stored("a", 1, p(1));
        assert_eq!(d.last_sequence("a"), 1);
    }

    #[test]
    fn snapshot_position_only_covers_settled_stores_and_round_trips() {
        let mut d = DedupState::default();
        d.check("a", 0, 0);
        d.stored("a", 0, p(0));
        d.check("a", 1, 1);
        d.check("a", 2, 2);
        d.stored("a", 1, p(1));
        let early = d.take_snapshot().expect("dirty");
        assert_eq!(
            early.position,
            Some((1, 0)),
            "only p(0) settled with nothing in flight"
        );
        assert_eq!(early.sequences["a"], 1, "newer sequences may be included");
        d.stored("a", 2, p(2));
        let s = d.take_snapshot().expect("quiescent and dirty");
        assert_eq!(s.position, Some((1, 2)));
        assert!(d.take_snapshot().is_none(), "nothing changed since");
        let json = serde_json::to_string(&s).expect("encode");
        let back: DedupSnapshot = serde_json::from_str(&json).expect("decode");
        let mut r = DedupState::from_snapshot(back);
        assert_eq!(r.last_sequence("a"), 2);
        assert_eq!(r.check("a", 2, 2), DedupDecision::Duplicate);
        // Replaying the tail after the snapshot is idempotent (max semantics).
        r.observe("a", 1, p(1));
        r.observe("b", 7, p(2));
        assert_eq!(r.last_sequence("b"), 7);
        assert_eq!(r.check("b", 7, 7), DedupDecision::Duplicate);
    }

    #[test]
    fn entry_highest_prefers_valid_metadata_highest() {
        assert_eq!(entry_highest_sequence(3, None, None), 3);
        assert_eq!(entry_highest_sequence(3, Some(0), None), 3);
        assert_eq!(entry_highest_sequence(3, Some(9), Some(2)), 9);
        assert_eq!(entry_highest_sequence(3, None, Some(5)), 7);
        assert_eq!(entry_highest_sequence(3, Some(0), Some(1)), 3);
    }
}
