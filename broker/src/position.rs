//! A message's place in a topic's log: (ledger id, entry id), ordered.

use std::fmt;

/// Position of an entry in a managed ledger. Orders by ledger, then entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Ledger id.
    pub ledger: u64,
    /// Entry id within the ledger.
    pub entry: u64,
}

impl Position {
    /// Builds a position.
    pub const fn new(ledger: u64, entry: u64) -> Position {
        Position { ledger, entry }
    }

    /// The position right after this one in the same ledger.
    pub const fn next(self) -> Position {
        Position {
            ledger: self.ledger,
            entry: self.entry + 1,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ledger, self.entry)
    }
}
