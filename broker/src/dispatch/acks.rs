//! Acknowledgement state of a subscription beyond the durable cursor: individually
//! acknowledged entries and partially acknowledged batches (batch index acks).
//!
//! Pulsar's `ack_set` is a bitset of the batch indexes still *unacknowledged*; an ack
//! with an ack_set clears bits, and the entry counts as acknowledged when no bit is left.

use std::collections::{BTreeSet, HashMap};

use crate::position::Position;

/// Acknowledgements seen by a subscription.
#[derive(Debug, Default)]
pub struct AckState {
    mark_delete: Option<Position>,
    acked: BTreeSet<Position>,
    partial: HashMap<Position, Vec<i64>>,
}

impl AckState {
    /// State starting after a durable mark-delete position.
    pub fn new(mark_delete: Option<Position>) -> AckState {
        AckState {
            mark_delete,
            ..AckState::default()
        }
    }

    /// True if the whole entry is acknowledged.
    pub fn is_acked(&self, pos: Position) -> bool {
        self.mark_delete.is_some_and(|m| pos <= m) || self.acked.contains(&pos)
    }

    /// The unacknowledged-index bitset of a partially acknowledged batch.
    pub fn ack_set(&self, pos: Position) -> Option<&[i64]> {
        self.partial.get(&pos).map(Vec::as_slice)
    }

    /// Records an individual ack. With `ack_set` (bits = indexes still unacked) only those
    /// indexes stay pending. Returns true when the entry became fully acknowledged.
    pub fn ack(&mut self, pos: Position, ack_set: Option<&[i64]>) -> bool {
        if self.is_acked(pos) {
            return false;
        }
        if let Some(set) = ack_set.filter(|s| !s.is_empty()) {
            let merged: Vec<i64> = match self.partial.get(&pos) {
                Some(old) => old
                    .iter()
                    .zip(set.iter().chain(std::iter::repeat(&0)))
                    .map(|(a, b)| a & b)
                    .collect(),
                None => set.to_vec(),
            };
            if merged.iter().any(|w| *w != 0) {
                self.partial.insert(pos, merged);
                return false;
            }
        }
        self.partial.remove(&pos);
        self.acked.insert(pos);
        true
    }

    /// Records a cumulative ack up to and including `pos`.
    pub fn ack_cumulative(&mut self, pos: Position) {
        self.set_mark_delete(pos);
    }

    /// Moves the mark-delete position forward, pruning what it covers.
    pub fn set_mark_delete(&mut self, pos: Position) {
        if self.mark_delete.is_some_and(|m| m >= pos) {
            return;
        }
        self.mark_delete = Some(pos);
        self.acked = self.acked.split_off(&pos.next());
        self.partial.retain(|p, _| *p > pos);
    }

    /// Current mark-delete position.
    pub fn mark_delete(&self) -> Option<Position> {
        self.mark_delete
    }

    /// Forgets everything and starts after `mark_delete` (seek).
    pub fn reset(&mut self, mark_delete: Option<Position>) {
        *self = AckState::new(mark_delete);
    }

    /// Individually acknowledged entries past the mark-delete position.
    pub fn individually_acked(&self) -> usize {
        self.acked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_index_acks_complete_the_entry_when_all_bits_clear() {
        let mut s = AckState::new(None);
        let p = Position::new(1, 5);
        // 3 messages; ack index 0 -> bits 1,2 remain.
        assert!(!s.ack(p, Some(&[0b110])));
        assert_eq!(s.ack_set(p), Some(&[0b110i64][..]));
        // ack index 2 -> bit 1 remains.
        assert!(!s.ack(p, Some(&[0b011])));
        assert_eq!(s.ack_set(p), Some(&[0b010i64][..]));
        assert!(s.ack(p, Some(&[0b101])));
        assert!(s.is_acked(p));
        assert_eq!(s.ack_set(p), None);
    }

    #[test]
    fn cumulative_ack_prunes_individual_acks() {
        let mut s = AckState::new(None);
        assert!(s.ack(Position::new(1, 3), None));
        assert!(s.ack(Position::new(1, 9), None));
        s.ack_cumulative(Position::new(1, 5));
        assert!(s.is_acked(Position::new(1, 4)));
        assert!(s.is_acked(Position::new(1, 9)));
        assert!(!s.is_acked(Position::new(1, 6)));
        assert_eq!(s.individually_acked(), 1);
    }
}
