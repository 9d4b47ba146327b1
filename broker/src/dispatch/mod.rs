//! Dispatch decisions of one subscription as a pure state machine: which consumer gets
//! which entry, permits, pending (unacknowledged) entries, redelivery and redelivery
//! counts. The subscription task feeds it events and carries out what it returns.
//!
//! Invariants: an entry is pending on at most one consumer; permits are counted in
//! messages (a batch entry costs its message count); in Key_Shared an entry is never
//! given to a consumer while an earlier entry with the same key slot is pending on
//! another consumer or waiting for redelivery, so per-key order holds.

pub mod acks;
pub mod keys;
mod types;

use std::collections::{BTreeMap, HashMap};

use crate::position::Position;
use keys::KeyRing;
pub use types::{
    AddError, ConsumerInfo, ConsumerKey, Delivery, EntryInfo, Notice, ReadPlan, SubType,
};

#[derive(Debug)]
struct Slot {
    info: ConsumerInfo,
    permits: i64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    consumer: ConsumerKey,
    slot: Option<u32>,
}

/// Replay entries beyond which no new entries are read (bounded memory while stuck).
const MAX_REPLAY: usize = 10_000;

/// Dispatch state of one subscription.
#[derive(Debug)]
pub struct Dispatcher {
    sub_type: SubType,
    partition: i32,
    consumers: Vec<Slot>,
    rr: usize,
    active: Option<ConsumerKey>,
    pending: BTreeMap<Position, Pending>,
    replay: BTreeMap<Position, Option<u32>>,
    replay_dirty: bool,
    redeliveries: HashMap<Position, u32>,
    slot_pending: HashMap<u32, (ConsumerKey, usize)>,
    ring: KeyRing,
}

impl Dispatcher {
    /// A dispatcher for a subscription of `sub_type` on partition `partition` (-1 if none).
    pub fn new(sub_type: SubType, partition: i32) -> Dispatcher {
        Dispatcher {
            sub_type,
            partition,
            consumers: Vec::new(),
            rr: 0,
            active: None,
            pending: BTreeMap::new(),
            replay: BTreeMap::new(),
            replay_dirty: false,
            redeliveries: HashMap::new(),
            slot_pending: HashMap::new(),
            ring: KeyRing::default(),
        }
    }

    /// The subscription type.
    pub fn sub_type(&self) -> SubType {
        self.sub_type
    }

    /// Connected consumers, in connect order.
    pub fn consumers(&self) -> impl Iterator<Item = &ConsumerInfo> {
        self.consumers.iter().map(|s| &s.info)
    }

    /// Number of connected consumers.
    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// Permits of a consumer.
    pub fn permits(&self, key: ConsumerKey) -> Option<i64> {
        self.consumers
            .iter()
            .find(|s| s.info.key == key)
            .map(|s| s.permits)
    }

    /// Entries delivered and not yet acknowledged, with their consumer.
    pub fn pending_of(&self, key: ConsumerKey) -> usize {
        self.pending.values().filter(|p| p.consumer == key).count()
    }

    /// The active consumer (Exclusive/Failover).
    pub fn active(&self) -> Option<ConsumerKey> {
        self.active
    }

    /// Entries waiting for redelivery.
    pub fn replay_len(&self) -> usize {
        self.replay.len()
    }

    /// Adds a consumer; returns notices to send.
    pub fn add_consumer(&mut self, info: ConsumerInfo) -> Result<Vec<Notice>, AddError> {
        if self.sub_type == SubType::Exclusive && !self.consumers.is_empty() {
            return Err(AddError::Exclusive);
        }
        if let Some(ranges) = &info.sticky_ranges {
            for other in self.consumers.iter() {
                if let Some(theirs) = &other.info.sticky_ranges {
                    if keys::overlaps(ranges, theirs) {
                        return Err(AddError::RangeConflict);
                    }
                }
            }
        }
        if self.sub_type == SubType::KeyShared && info.sticky_ranges.is_none() {
            self.ring.add(info.key, &info.name);
        }
        let key = info.key;
        self.consumers.push(Slot { info, permits: 0 });
        self.replay_dirty = true;
        let mut notices = self.elect();
        if self.sub_type == SubType::Failover
            && !notices
                .iter()
                .any(|n| matches!(n, Notice::ActiveChange { consumer, .. } if *consumer == key))
        {
            notices.push(Notice::ActiveChange {
                consumer: key,
                active: self.active == Some(key),
            });
        }
        Ok(notices)
    }

    /// Removes a consumer; its pending entries go back for redelivery.
    pub fn remove_consumer(&mut self, key: ConsumerKey) -> Vec<Notice> {
        let Some(idx) = self.consumers.iter().position(|s| s.info.key == key) else {
            return Vec::new();
        };
        self.consumers.remove(idx);
        self.ring.remove(key);
        let mine: Vec<Position> = self
            .pending
            .iter()
            .filter(|(_, p)| p.consumer == key)
            .map(|(pos, _)| *pos)
            .collect();
        // As Pulsar: entries of a leaving consumer are redelivered without counting a
        // redelivery (only explicit redelivery requests count).
        for pos in mine {
            self.requeue(pos, false);
        }
        self.replay_dirty = true;
        self.elect()
    }

    /// Picks the active consumer for Exclusive/Failover; returns change notices.
    fn elect(&mut self) -> Vec<Notice> {
        let new_active = match self.sub_type {
            SubType::Exclusive => self.consumers.first().map(|s| s.info.key),
            SubType::Failover => {
                let mut sorted: Vec<&Slot> = self.consumers.iter().collect();
                sorted.sort_by(|a, b| {
                    (a.info.priority, &a.info.name).cmp(&(b.info.priority, &b.info.name))
                });
                if sorted.is_empty() {
                    None
                } else {
                    let idx = if self.partition >= 0 {
                        self.partition as usize % sorted.len()
                    } else {
                        0
                    };
                    Some(sorted[idx].info.key)
                }
            }
            _ => None,
        };
        if new_active == self.active {
            return Vec::new();
        }
        let old = self.active;
        self.active = new_active;
        if self.sub_type != SubType::Failover {
            return Vec::new();
        }
        // Pulsar rewinds on an active change: what the old active had not acked goes to
        // the new one.
        if let Some(old) = old {
            let theirs: Vec<Position> = self
                .pending
                .iter()
                .filter(|(_, p)| p.consumer == old)
                .map(|(pos, _)| *pos)
                .collect();
            for pos in theirs {
                self.requeue(pos, false);
            }
        }
        self.consumers
            .iter()
            .map(|s| Notice::ActiveChange {
                consumer: s.info.key,
                active: Some(s.info.key) == new_active,
            })
            .collect()
    }

    /// Adds permits (FLOW).
    pub fn flow(&mut self, key: ConsumerKey, permits: u32) {
        if let Some(s) = self.consumers.iter_mut().find(|s| s.info.key == key) {
            s.permits += i64::from(permits);
            self.replay_dirty = true;
        }
    }

    fn requeue(&mut self, pos: Position, count: bool) {
        let slot = match self.pending.remove(&pos) {
            Some(p) => {
                self.release_slot(p);
                p.slot
            }
            None => return,
        };
        if count {
            *self.redeliveries.entry(pos).or_insert(0) += 1;
        }
        self.replay.insert(pos, slot);
    }

    fn release_slot(&mut self, p: Pending) {
        if let Some(slot) = p.slot {
            if let Some(e) = self.slot_pending.get_mut(&slot) {
                e.1 = e.1.saturating_sub(1);
                if e.1 == 0 {
                    self.slot_pending.remove(&slot);
                }
            }
        }
    }

    /// Forgets an acknowledged entry.
    pub fn acked(&mut self, pos: Position) {
        if let Some(p) = self.pending.remove(&pos) {
            self.release_slot(p);
            self.replay_dirty = true;
        }
        if self.replay.remove(&pos).is_some() {
            self.replay_dirty = true;
        }
        self.redeliveries.remove(&pos);
    }

    /// Forgets every entry at or before `pos` (cumulative ack).
    pub fn acked_up_to(&mut self, pos: Position) {
        let done: Vec<Position> = self
            .pending
            .range(..=pos)
            .map(|(p, _)| *p)
            .chain(self.replay.range(..=pos).map(|(p, _)| *p))
            .collect();
        for p in done {
            self.acked(p);
        }
    }

    /// Sends `positions` (or every pending entry) of `key` again, counting a redelivery.
    pub fn redeliver(&mut self, key: ConsumerKey, positions: Option<&[Position]>) {
        let chosen: Vec<Position> = match positions {
            Some(list) => list
                .iter()
                .filter(|p| self.pending.get(p).is_some_and(|x| x.consumer == key))
                .copied()
                .collect(),
            None => self
                .pending
                .iter()
                .filter(|(_, p)| p.consumer == key)
                .map(|(pos, _)| *pos)
                .collect(),
        };
        for pos in chosen {
            self.requeue(pos, true);
        }
        self.replay_dirty = true;
    }

    /// Forgets every pending and replay entry (seek, clear backlog).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.replay.clear();
        self.redeliveries.clear();
        self.slot_pending.clear();
    }

    /// Queues an entry for (re)delivery, e.g. a delayed message that became due.
    pub fn add_replay(&mut self, pos: Position, slot: Option<u32>) {
        if !self.pending.contains_key(&pos) {
            self.replay.insert(pos, slot);
            self.replay_dirty = true;
        }
    }

    /// Drops an entry from the redelivery queue (it is held elsewhere, e.g. delayed).
    pub fn forget_replay(&mut self, pos: Position) {
        self.replay.remove(&pos);
    }

    /// Asks for the replay entries to be read again (after a failed read).
    pub fn retry_replay(&mut self) {
        self.replay_dirty = true;
    }

    /// Redelivery count recorded for an entry.
    pub fn redelivery_count(&self, pos: Position) -> u32 {
        self.redeliveries.get(&pos).copied().unwrap_or(0)
    }

    fn budget(&self) -> i64 {
        match self.sub_type {
            SubType::Exclusive | SubType::Failover => self
                .active
                .and_then(|a| self.permits(a))
                .unwrap_or(0)
                .max(0),
            _ => self.consumers.iter().map(|s| s.permits.max(0)).sum(),
        }
    }

    /// Decides the next read, at most `max` entries.
    pub fn next_read(&mut self, max: usize) -> ReadPlan {
        let budget = self.budget();
        if budget <= 0 {
            return ReadPlan::Idle;
        }
        let n = (budget as usize).min(max).max(1);
        // Exclusive and Failover keep strict order: the replay always goes first.
        let ordered = matches!(self.sub_type, SubType::Exclusive | SubType::Failover);
        if !self.replay.is_empty() && (self.replay_dirty || ordered) {
            self.replay_dirty = false;
            return ReadPlan::Replay(self.replay.keys().take(n).copied().collect());
        }
        if self.replay.len() >= MAX_REPLAY {
            return ReadPlan::Idle;
        }
        ReadPlan::New(n)
    }

    fn pick(&mut self, entry: &EntryInfo, blocked: &[u32]) -> Option<usize> {
        match self.sub_type {
            SubType::Exclusive | SubType::Failover => {
                let active = self.active?;
                let idx = self.consumers.iter().position(|s| s.info.key == active)?;
                (self.consumers[idx].permits > 0).then_some(idx)
            }
            SubType::Shared => self.round_robin(),
            SubType::KeyShared => {
                let Some(slot) = entry.slot else {
                    return self.round_robin();
                };
                if blocked.contains(&slot) {
                    return None;
                }
                let owner = self.owner_of(slot)?;
                if let Some((holder, _)) = self.slot_pending.get(&slot) {
                    if *holder != owner {
                        return None;
                    }
                }
                let idx = self.consumers.iter().position(|s| s.info.key == owner)?;
                (self.consumers[idx].permits > 0).then_some(idx)
            }
        }
    }

    fn owner_of(&self, slot: u32) -> Option<ConsumerKey> {
        for s in &self.consumers {
            if let Some(ranges) = &s.info.sticky_ranges {
                if ranges.iter().any(|(a, b)| *a <= slot && slot <= *b) {
                    return Some(s.info.key);
                }
            }
        }
        self.ring.owner(slot)
    }

    fn round_robin(&mut self) -> Option<usize> {
        let n = self.consumers.len();
        let best = self
            .consumers
            .iter()
            .filter(|s| s.permits > 0)
            .map(|s| s.info.priority)
            .min()?;
        for i in 0..n {
            let idx = (self.rr + i) % n;
            let s = &self.consumers[idx];
            if s.permits > 0 && s.info.priority == best {
                self.rr = (idx + 1) % n;
                return Some(idx);
            }
        }
        None
    }

    /// Assigns entries (new reads or replays, in position order) to consumers. Entries
    /// that cannot go anywhere now are kept for redelivery.
    pub fn dispatch(&mut self, entries: &[EntryInfo]) -> Vec<Delivery> {
        let mut out = Vec::with_capacity(entries.len());
        let mut blocked: Vec<u32> = Vec::new();
        for e in entries {
            if self.pending.contains_key(&e.pos) {
                continue;
            }
            let was_replay = self.replay.contains_key(&e.pos);
            // A new entry must not overtake a waiting replay entry of the same key.
            let overtakes = !was_replay
                && e.slot.is_some_and(|s| {
                    self.sub_type == SubType::KeyShared
                        && self
                            .replay
                            .iter()
                            .any(|(p, sl)| *sl == Some(s) && *p < e.pos)
                });
            let choice = if overtakes {
                None
            } else {
                self.pick(e, &blocked)
            };
            match choice {
                Some(idx) => {
                    self.replay.remove(&e.pos);
                    let slot = &mut self.consumers[idx];
                    slot.permits -= i64::from(e.num_messages.max(1));
                    let consumer = slot.info.key;
                    self.pending.insert(
                        e.pos,
                        Pending {
                            consumer,
                            slot: e.slot,
                        },
                    );
                    if let Some(s) = e.slot {
                        let ent = self.slot_pending.entry(s).or_insert((consumer, 0));
                        ent.0 = consumer;
                        ent.1 += 1;
                    }
                    out.push(Delivery {
                        consumer,
                        pos: e.pos,
                        redelivery_count: self.redelivery_count(e.pos),
                    });
                }
                None => {
                    if let Some(s) = e.slot {
                        if self.sub_type == SubType::KeyShared {
                            blocked.push(s);
                        }
                    }
                    self.replay.insert(e.pos, e.slot);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
