//! Key_Shared slot ownership: a consistent-hash ring over the 65536 key slots for
//! AUTO_SPLIT consumers, and range arithmetic for STICKY ones.

use std::collections::BTreeMap;

use super::ConsumerKey;

/// Number of key slots (Pulsar's hash range size).
pub const SLOTS: u32 = 65536;

/// Points each consumer gets on the ring; more points, more even split.
const POINTS_PER_CONSUMER: u32 = 100;

/// Consistent-hash ring: a slot belongs to the consumer with the first point at or after it.
#[derive(Debug, Default)]
pub struct KeyRing {
    points: BTreeMap<u32, Vec<ConsumerKey>>,
}

fn fnv1a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl KeyRing {
    /// Adds a consumer's points.
    pub fn add(&mut self, key: ConsumerKey, name: &str) {
        for i in 0..POINTS_PER_CONSUMER {
            let p = fnv1a(format!("{name}{i}").as_bytes()) % SLOTS;
            self.points.entry(p).or_default().push(key);
        }
    }

    /// Removes a consumer's points.
    pub fn remove(&mut self, key: ConsumerKey) {
        self.points.retain(|_, v| {
            v.retain(|k| *k != key);
            !v.is_empty()
        });
    }

    /// The consumer owning `slot`, if any consumer is on the ring.
    pub fn owner(&self, slot: u32) -> Option<ConsumerKey> {
        let (_, keys) = self
            .points
            .range(slot..)
            .next()
            .or_else(|| self.points.iter().next())?;
        // Colliding points go to the earliest-added consumer, the same on every broker.
        keys.first().copied()
    }
}

/// True if two sets of inclusive ranges share a slot.
pub fn overlaps(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    a.iter()
        .any(|(s1, e1)| b.iter().any(|(s2, e2)| s1 <= e2 && s2 <= e1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_assigns_every_slot_and_splits_roughly_evenly() {
        let mut ring = KeyRing::default();
        ring.add(1, "c1");
        ring.add(2, "c2");
        let mut counts = [0u32; 3];
        for slot in 0..SLOTS {
            let k = ring.owner(slot).expect("owner");
            counts[k as usize] += 1;
        }
        assert!(counts[1] > SLOTS / 5 && counts[2] > SLOTS / 5, "{counts:?}");
        ring.remove(1);
        assert!((0..SLOTS).all(|s| ring.owner(s) == Some(2)));
    }

    #[test]
    fn range_overlap() {
        assert!(overlaps(&[(0, 10)], &[(10, 20)]));
        assert!(!overlaps(&[(0, 9)], &[(10, 20)]));
    }
}
