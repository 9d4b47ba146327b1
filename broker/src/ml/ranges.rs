//! Range arithmetic for individually acknowledged positions: disjoint, non-adjacent
//! inclusive ranges of entry ids per ledger, so a long run of acks costs one range.

use std::collections::BTreeMap;

use magnetar_bookie::{EntryId, LedgerId};
use serde::{Deserialize, Serialize};

use super::Position;

/// A set of `u64` kept as disjoint, non-adjacent inclusive ranges `start -> end`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: BTreeMap<u64, u64>,
    len: u64,
}

impl RangeSet {
    /// Adds `start..=end` (no-op if `start > end`).
    pub fn insert(&mut self, start: u64, end: u64) {
        if start > end {
            return;
        }
        let (mut s, mut e) = (start, end);
        // Merge with a range that starts before and touches or overlaps.
        if let Some((&ps, &pe)) = self.ranges.range(..=s).next_back() {
            if pe.saturating_add(1) >= s {
                if pe >= e {
                    return;
                }
                s = ps;
                e = e.max(pe);
                self.remove_exact(ps);
            }
        }
        // Absorb every range starting inside or right after the new one.
        while let Some((&ns, &ne)) = self.ranges.range(s..).next() {
            if ns > e.saturating_add(1) {
                break;
            }
            e = e.max(ne);
            self.remove_exact(ns);
        }
        self.ranges.insert(s, e);
        self.len += e - s + 1;
    }

    fn remove_exact(&mut self, start: u64) {
        if let Some(end) = self.ranges.remove(&start) {
            self.len -= end - start + 1;
        }
    }

    /// Whether `x` is in the set.
    pub fn contains(&self, x: u64) -> bool {
        self.range_containing(x).is_some()
    }

    /// The range holding `x`, if any.
    pub fn range_containing(&self, x: u64) -> Option<(u64, u64)> {
        self.ranges
            .range(..=x)
            .next_back()
            .filter(|(_, &e)| e >= x)
            .map(|(&s, &e)| (s, e))
    }

    /// Removes every value `<= x`.
    pub fn remove_through(&mut self, x: u64) {
        let below: Vec<u64> = self.ranges.range(..=x).map(|(&s, _)| s).collect();
        for s in below {
            let e = self.ranges[&s];
            self.remove_exact(s);
            if e > x {
                self.ranges.insert(x + 1, e);
                self.len += e - x;
            }
        }
    }

    /// Number of values in the set.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of ranges.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// The ranges in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }
}

/// One persisted range of acknowledged entries: `ledger:start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRange {
    /// Ledger id.
    pub ledger: u64,
    /// First acknowledged entry.
    pub start: u64,
    /// Last acknowledged entry (inclusive).
    pub end: u64,
}

/// Individually acknowledged positions, per ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckSet {
    ledgers: BTreeMap<LedgerId, RangeSet>,
}

impl AckSet {
    /// Adds one position.
    pub fn insert(&mut self, p: Position) {
        self.ledgers
            .entry(p.ledger)
            .or_default()
            .insert(p.entry.0, p.entry.0);
    }

    /// Whether `p` is acknowledged.
    pub fn contains(&self, p: Position) -> bool {
        self.ledgers
            .get(&p.ledger)
            .is_some_and(|r| r.contains(p.entry.0))
    }

    /// The last position of the acknowledged run that holds `p`, if `p` is acknowledged.
    pub fn run_end(&self, p: Position) -> Option<Position> {
        let (_, end) = self.ledgers.get(&p.ledger)?.range_containing(p.entry.0)?;
        Some(Position {
            ledger: p.ledger,
            entry: EntryId(end),
        })
    }

    /// Removes every position `<= p`.
    pub fn remove_through(&mut self, p: Position) {
        self.ledgers = self.ledgers.split_off(&p.ledger);
        if let Some(r) = self.ledgers.get_mut(&p.ledger) {
            r.remove_through(p.entry.0);
            if r.is_empty() {
                self.ledgers.remove(&p.ledger);
            }
        }
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.ledgers.clear();
    }

    /// Number of acknowledged positions.
    pub fn len(&self) -> u64 {
        self.ledgers.values().map(RangeSet::len).sum()
    }

    /// Whether nothing is acknowledged.
    pub fn is_empty(&self) -> bool {
        self.ledgers.is_empty()
    }

    /// Number of acknowledged positions in `ledger` within `first..=last`.
    pub fn count_in(&self, ledger: LedgerId, first: u64, last: u64) -> u64 {
        let Some(r) = self.ledgers.get(&ledger) else {
            return 0;
        };
        r.iter()
            .map(|(s, e)| {
                let (s, e) = (s.max(first), e.min(last));
                if s > e {
                    0
                } else {
                    e - s + 1
                }
            })
            .sum()
    }

    /// The ranges in ascending order, at most `max` of them (the lowest are kept: dropping
    /// the highest only causes redelivery, never loss).
    pub fn to_ranges(&self, max: usize) -> Vec<AckRange> {
        self.ledgers
            .iter()
            .flat_map(|(l, r)| {
                r.iter().map(move |(start, end)| AckRange {
                    ledger: l.0,
                    start,
                    end,
                })
            })
            .take(max)
            .collect()
    }

    /// Rebuilds a set from persisted ranges.
    pub fn from_ranges(ranges: &[AckRange]) -> AckSet {
        let mut set = AckSet::default();
        for r in ranges {
            set.ledgers
                .entry(LedgerId(r.ledger))
                .or_default()
                .insert(r.start, r.end);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn check_invariants(r: &RangeSet) {
        let mut prev: Option<u64> = None;
        let mut len = 0;
        for (s, e) in r.iter() {
            assert!(s <= e);
            if let Some(p) = prev {
                assert!(s > p + 1, "ranges must be disjoint and non-adjacent");
            }
            prev = Some(e);
            len += e - s + 1;
        }
        assert_eq!(len, r.len());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        RemoveThrough(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..200, 0u64..8).prop_map(|(s, n)| Op::Insert(s, s + n)),
            1 => (0u64..200).prop_map(Op::RemoveThrough),
        ]
    }

    proptest! {
        #[test]
        fn range_set_matches_a_plain_set(ops in proptest::collection::vec(op(), 0..60)) {
            let mut r = RangeSet::default();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(s, e) => { r.insert(s, e); model.extend(s..=e); }
                    Op::RemoveThrough(x) => { r.remove_through(x); model.retain(|&v| v > x); }
                }
                check_invariants(&r);
                prop_assert_eq!(r.len(), model.len() as u64);
                for x in 0..215 {
                    prop_assert_eq!(r.contains(x), model.contains(&x));
                }
            }
        }

        #[test]
        fn ack_set_round_trips_and_counts(acks in proptest::collection::vec((1u64..4, 0u64..50), 0..80),
                                          cut in (1u64..4, 0u64..50)) {
            let mut set = AckSet::default();
            let mut model = BTreeSet::new();
            for (l, e) in acks {
                set.insert(Position::new(l, e));
                model.insert(Position::new(l, e));
            }
            prop_assert_eq!(AckSet::from_ranges(&set.to_ranges(usize::MAX)), set.clone());
            for l in 1..4 {
                let n = model.iter().filter(|p| p.ledger.0 == l && (10..=30).contains(&p.entry.0)).count();
                prop_assert_eq!(set.count_in(LedgerId(l), 10, 30), n as u64);
            }
            let cut = Position::new(cut.0, cut.1);
            set.remove_through(cut);
            model.retain(|p| *p > cut);
            prop_assert_eq!(set.len(), model.len() as u64);
            for p in &model {
                prop_assert!(set.contains(*p));
                let end = set.run_end(*p).expect("acked position has a run");
                prop_assert!(end >= *p && model.contains(&end));
                prop_assert!(!model.contains(&end.next_in_ledger()));
            }
        }
    }

    #[test]
    fn truncated_ranges_keep_the_lowest() {
        let mut set = AckSet::default();
        for e in [1, 3, 5, 7] {
            set.insert(Position::new(1, e));
        }
        let kept = AckSet::from_ranges(&set.to_ranges(2));
        assert!(kept.contains(Position::new(1, 1)) && kept.contains(Position::new(1, 3)));
        assert!(!kept.contains(Position::new(1, 5)));
    }
}
