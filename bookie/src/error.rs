//! Errors of bookies and the ledger client.

use magnetar_metadata::MetadataError;

/// An error from a ledger operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The ledger was fenced by a recovering reader; its writer may not add.
    #[error("ledger {0} is fenced")]
    Fenced(u64),
    /// The ledger is closed.
    #[error("ledger {0} is closed")]
    Closed(u64),
    /// No such ledger.
    #[error("ledger {0} not found")]
    NoSuchLedger(u64),
    /// No such entry (past the end or deleted).
    #[error("entry {entry} of ledger {ledger} not found")]
    NoSuchEntry { ledger: u64, entry: u64 },
    /// Not enough writable bookies for the requested ensemble.
    #[error("not enough writable bookies: need {needed}, have {available}")]
    NotEnoughBookies { needed: usize, available: usize },
    /// A stored entry failed its checksum.
    #[error("entry {entry} of ledger {ledger} is corrupt on {bookie}")]
    Corrupt {
        ledger: u64,
        entry: u64,
        bookie: String,
    },
    /// The entry exceeds the size limit.
    #[error("entry of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The bookie is read-only (disk full or above its usage threshold).
    #[error("bookie {0} is read-only (disk full)")]
    ReadOnly(String),
    /// The request was malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A bookie could not be reached or failed the request.
    #[error("bookie {bookie}: {message}")]
    Bookie { bookie: String, message: String },
    /// Local storage failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// Metadata service error.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Shutting down.
    #[error("shutting down")]
    Shutdown,
}
