//! Positions of entries in a managed ledger.

use std::fmt;

use magnetar_bookie::{EntryId, LedgerId};
use serde::{Deserialize, Serialize};

/// An entry's place in a managed ledger: (ledger id, entry id), ordered by ledger then
/// entry. Pulsar message ids map to it directly. A position need not exist yet: a read
/// position may point just past the last entry, and `(ledger, n)` past the end of a closed
/// ledger means "the first entry of the next ledger".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Ledger id.
    pub ledger: LedgerId,
    /// Entry id within the ledger.
    pub entry: EntryId,
}

impl Position {
    /// Builds a position from raw ids.
    pub const fn new(ledger: u64, entry: u64) -> Position {
        Position {
            ledger: LedgerId(ledger),
            entry: EntryId(entry),
        }
    }

    /// The next position in the same ledger.
    pub const fn next_in_ledger(self) -> Position {
        Position::new(self.ledger.0, self.entry.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ledger.0, self.entry.0)
    }
}

impl From<Position> for crate::position::Position {
    fn from(p: Position) -> Self {
        crate::position::Position::new(p.ledger.0, p.entry.0)
    }
}

impl From<crate::position::Position> for Position {
    fn from(p: crate::position::Position) -> Self {
        Position::new(p.ledger, p.entry)
    }
}
