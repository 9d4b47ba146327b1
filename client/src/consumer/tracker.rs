//! Pure bookkeeping for consumers: which batch entries are fully acknowledged, which
//! messages are due for redelivery after a negative ack, and which exceeded the ack
//! timeout. No I/O; the partition task feeds these and acts on what they return.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::message::MessageId;

/// `(ledger, entry)` of a message.
pub(crate) type EntryKey = (u64, u64);

pub(crate) fn entry_key(id: &MessageId) -> EntryKey {
    (id.ledger_id, id.entry_id)
}

/// Tracks acknowledgements inside batch entries: an entry is acked on the broker only
/// once every message delivered from it was acked by the application.
#[derive(Debug, Default)]
pub(crate) struct BatchAcks {
    remaining: HashMap<EntryKey, HashSet<i32>>,
}

impl BatchAcks {
    /// Records that message `index` of the entry was handed to the application.
    pub(crate) fn delivered(&mut self, id: &MessageId) {
        if id.is_batch() {
            self.remaining
                .entry(entry_key(id))
                .or_default()
                .insert(id.batch_index);
        }
    }

    /// Acks one message. Non-batch ids (and batches whose every delivered message is
    /// now acked) complete the entry; otherwise the answer carries the entry's ack set.
    pub(crate) fn ack(&mut self, id: &MessageId) -> BatchAck {
        if !id.is_batch() {
            return BatchAck::Entry;
        }
        let key = entry_key(id);
        match self.remaining.get_mut(&key) {
            None => BatchAck::Entry,
            Some(set) => {
                set.remove(&id.batch_index);
                if set.is_empty() {
                    self.remaining.remove(&key);
                    BatchAck::Entry
                } else {
                    BatchAck::Partial(ack_set(set, id.batch_size))
                }
            }
        }
    }

    /// Forgets entries at or before `id` (after a cumulative ack).
    pub(crate) fn ack_up_to(&mut self, id: &MessageId) {
        let k = entry_key(id);
        self.remaining.retain(|e, _| *e > k);
    }

    /// Forgets one entry (it was acked as a whole).
    pub(crate) fn forget(&mut self, key: EntryKey) {
        self.remaining.remove(&key);
    }

    /// Forgets everything (after seek or reconnect).
    pub(crate) fn clear(&mut self) {
        self.remaining.clear();
    }
}

/// What acking one message means for its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BatchAck {
    /// The whole entry is acknowledged.
    Entry,
    /// Some messages of the batch are still unacknowledged: Pulsar's ack set, a
    /// little-endian bitset of 64-bit words with a bit set for every index still pending.
    Partial(Vec<i64>),
}

/// Pulsar's ack set for `pending` indexes of a batch of `size` messages.
fn ack_set(pending: &HashSet<i32>, size: i32) -> Vec<i64> {
    let top = pending
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(size - 1)
        .max(0) as usize;
    let mut words = vec![0u64; top / 64 + 1];
    for i in pending.iter().filter(|i| **i >= 0) {
        let i = *i as usize;
        words[i / 64] |= 1 << (i % 64);
    }
    words.into_iter().map(|w| w as i64).collect()
}

/// Messages scheduled for redelivery: negative acks (after a delay) and ack timeouts.
#[derive(Debug, Default)]
pub(crate) struct Redelivery {
    due: BTreeMap<Instant, Vec<EntryKey>>,
    unacked: HashMap<EntryKey, Instant>,
}

impl Redelivery {
    /// Schedules the entry of `id` for redelivery at `now + delay`.
    pub(crate) fn nack(&mut self, id: &MessageId, now: Instant, delay: Duration) {
        self.unacked.remove(&entry_key(id));
        self.due.entry(now + delay).or_default().push(entry_key(id));
    }

    /// Starts the ack-timeout clock for a delivered message.
    pub(crate) fn delivered(&mut self, id: &MessageId, now: Instant, timeout: Option<Duration>) {
        if let Some(t) = timeout {
            self.unacked.entry(entry_key(id)).or_insert(now + t);
        }
    }

    /// Stops the ack-timeout clock (the entry was acked).
    pub(crate) fn acked(&mut self, key: EntryKey) {
        self.unacked.remove(&key);
    }

    /// Stops clocks of entries at or before `id`.
    pub(crate) fn acked_up_to(&mut self, id: &MessageId) {
        let k = entry_key(id);
        self.unacked.retain(|e, _| *e > k);
    }

    /// Entries due for redelivery at `now`, deduplicated and sorted.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<EntryKey> {
        let mut out: Vec<EntryKey> = Vec::new();
        let later = self.due.split_off(&(now + Duration::from_nanos(1)));
        for (_, v) in std::mem::replace(&mut self.due, later) {
            out.extend(v);
        }
        let expired: Vec<EntryKey> = self
            .unacked
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in &expired {
            self.unacked.remove(k);
        }
        out.extend(expired);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.due.clear();
        self.unacked.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid(entry: u64, i: i32) -> MessageId {
        MessageId {
            ledger_id: 1,
            entry_id: entry,
            partition: -1,
            batch_index: i,
            batch_size: 3,
        }
    }

    #[test]
    fn batch_entry_acked_only_when_all_messages_acked() {
        let mut b = BatchAcks::default();
        for i in 0..3 {
            b.delivered(&bid(5, i));
        }
        assert_eq!(b.ack(&bid(5, 0)), BatchAck::Partial(vec![0b110]));
        assert_eq!(b.ack(&bid(5, 2)), BatchAck::Partial(vec![0b010]));
        assert_eq!(b.ack(&bid(5, 1)), BatchAck::Entry);
        assert_eq!(b.ack(&MessageId::new(1, 6, -1)), BatchAck::Entry);
    }

    #[test]
    fn ack_set_spans_every_word_of_a_large_batch() {
        let pending: HashSet<i32> = [0, 64, 129].into_iter().collect();
        assert_eq!(ack_set(&pending, 130), vec![1, 1, 2]);
        assert_eq!(ack_set(&HashSet::from([3]), 200).len(), 4);
    }

    #[test]
    fn nack_becomes_due_after_delay() {
        let mut r = Redelivery::default();
        let t0 = Instant::now();
        r.nack(&bid(1, 0), t0, Duration::from_secs(1));
        r.nack(&bid(1, 1), t0, Duration::from_secs(1));
        assert!(r.take_due(t0).is_empty());
        assert_eq!(r.take_due(t0 + Duration::from_secs(1)), vec![(1, 1)]);
        assert!(r.take_due(t0 + Duration::from_secs(2)).is_empty());
    }

    #[test]
    fn ack_timeout_expires_unacked_only() {
        let mut r = Redelivery::default();
        let t0 = Instant::now();
        let to = Some(Duration::from_secs(5));
        r.delivered(&MessageId::new(1, 1, -1), t0, to);
        r.delivered(&MessageId::new(1, 2, -1), t0, to);
        r.delivered(&MessageId::new(1, 3, -1), t0, to);
        r.acked((1, 1));
        r.acked_up_to(&MessageId::new(1, 2, -1));
        assert_eq!(r.take_due(t0 + Duration::from_secs(6)), vec![(1, 3)]);
    }
}
