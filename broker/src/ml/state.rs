//! The in-memory state of a managed ledger and the pure position arithmetic over its
//! ledger list.

use std::collections::BTreeMap;
use std::sync::Arc;

use magnetar_bookie::{EntryId, LedgerId, LedgerWriter};
use magnetar_metadata::Version;

use super::meta::LedgerInfo;
use super::Position;

/// Lifecycle of a managed ledger instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MlStatus {
    /// Accepting adds.
    Open,
    /// `close()` was called; queued adds finish, new ones are refused.
    Closing,
    /// Closed cleanly.
    Closed,
    /// Another owner took over; this instance must stop serving the topic.
    Fenced,
    /// A ledger write failed; this instance accepts no more adds (reopen to recover).
    Errored(String),
}

/// Mutable state of a managed ledger, behind one lock so the ledger list and the last
/// confirmed position are always seen together.
pub(crate) struct State {
    /// Every ledger, oldest first; the last one is the one being written (if any).
    pub ledgers: BTreeMap<LedgerId, LedgerInfo>,
    pub properties: BTreeMap<String, String>,
    /// Version of the ledger list this instance last wrote.
    pub version: Option<Version>,
    /// Writer of the current ledger.
    pub writer: Option<Arc<dyn LedgerWriter>>,
    /// Last confirmed entry.
    pub lac: Option<Position>,
    pub status: MlStatus,
}

impl State {
    /// Entries of a ledger (0 if unknown).
    fn entries(&self, l: LedgerId) -> u64 {
        self.ledgers.get(&l).map_or(0, |i| i.entries)
    }

    /// Position of the first entry, or where the first entry will be written.
    pub fn first_position(&self) -> Position {
        let id = self
            .ledgers
            .values()
            .find(|i| i.entries > 0)
            .or_else(|| self.ledgers.values().next_back())
            .map_or(LedgerId(0), |i| i.id);
        Position {
            ledger: id,
            entry: EntryId(0),
        }
    }

    /// The position following `p`: the next entry of its ledger, else the first entry of the
    /// next non-empty ledger, else where the next entry will be written.
    pub fn next_position(&self, p: Position) -> Position {
        if p.entry.0 + 1 < self.entries(p.ledger) {
            return p.next_in_ledger();
        }
        let mut later = self.ledgers.range(LedgerId(p.ledger.0 + 1)..);
        if let Some((id, _)) = later.clone().find(|(_, i)| i.entries > 0) {
            return Position {
                ledger: *id,
                entry: EntryId(0),
            };
        }
        match later.next_back() {
            Some((id, _)) => Position {
                ledger: *id,
                entry: EntryId(0),
            },
            None => p.next_in_ledger(),
        }
    }

    /// The entry just before `p`, if there is one in this managed ledger.
    pub fn prev_position(&self, p: Position) -> Option<Position> {
        if p.entry.0 > 0 {
            return Some(Position {
                ledger: p.ledger,
                entry: EntryId(p.entry.0 - 1),
            });
        }
        self.ledgers
            .range(..p.ledger)
            .rev()
            .find(|(_, i)| i.entries > 0)
            .map(|(id, i)| Position {
                ledger: *id,
                entry: EntryId(i.entries - 1),
            })
    }

    /// Number of existing entries after `after` (all of them for `None`).
    pub fn entries_after(&self, after: Option<Position>) -> u64 {
        let Some(a) = after else {
            return self.ledgers.values().map(|i| i.entries).sum();
        };
        self.ledgers
            .range(a.ledger..)
            .map(|(id, i)| {
                if *id == a.ledger {
                    i.entries.saturating_sub(a.entry.0 + 1)
                } else {
                    i.entries
                }
            })
            .sum()
    }

    /// Ranges `(ledger, first, last)` of at most `max` existing entries from `from` on,
    /// skipping past the end of a ledger into the next one.
    pub fn read_plan(&self, from: Position, max: usize) -> Vec<(LedgerId, u64, u64)> {
        let mut plan = Vec::new();
        let mut remaining = max as u64;
        for (id, info) in self.ledgers.range(from.ledger..) {
            if remaining == 0 {
                break;
            }
            let first = if *id == from.ledger { from.entry.0 } else { 0 };
            if first >= info.entries {
                continue;
            }
            let last = (info.entries - 1).min(first + remaining - 1);
            plan.push((*id, first, last));
            remaining -= last - first + 1;
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ledgers: &[(u64, u64)]) -> State {
        State {
            ledgers: ledgers
                .iter()
                .map(|&(id, entries)| {
                    (
                        LedgerId(id),
                        LedgerInfo {
                            id: LedgerId(id),
                            entries,
                            size: 0,
                            created_ms: 0,
                        },
                    )
                })
                .collect(),
            properties: BTreeMap::new(),
            version: None,
            writer: None,
            lac: None,
            status: MlStatus::Open,
        }
    }

    #[test]
    fn positions_skip_empty_and_missing_ledgers() {
        let s = state(&[(3, 2), (5, 0), (7, 3), (9, 0)]);
        assert_eq!(s.first_position(), Position::new(3, 0));
        assert_eq!(s.next_position(Position::new(3, 0)), Position::new(3, 1));
        assert_eq!(s.next_position(Position::new(3, 1)), Position::new(7, 0));
        assert_eq!(s.next_position(Position::new(7, 2)), Position::new(9, 0));
        assert_eq!(s.next_position(Position::new(9, 0)), Position::new(9, 1));
        assert_eq!(
            s.prev_position(Position::new(7, 0)),
            Some(Position::new(3, 1))
        );
        assert_eq!(s.prev_position(Position::new(3, 0)), None);
        assert_eq!(s.entries_after(None), 5);
        assert_eq!(s.entries_after(Some(Position::new(3, 0))), 4);
        assert_eq!(s.entries_after(Some(Position::new(7, 2))), 0);
        assert_eq!(
            s.read_plan(Position::new(3, 1), 3),
            vec![(LedgerId(3), 1, 1), (LedgerId(7), 0, 1)]
        );
        assert_eq!(
            s.read_plan(Position::new(4, 0), 10),
            vec![(LedgerId(7), 0, 2)]
        );
        assert!(s.read_plan(Position::new(7, 3), 10).is_empty());
    }
}
