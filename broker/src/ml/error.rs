//! Errors of the managed ledger layer.

use magnetar_bookie::LedgerError;
use magnetar_metadata::MetadataError;

use super::Position;

/// Result alias for managed ledger operations.
pub type Result<T> = std::result::Result<T, MlError>;

/// An error from a managed ledger or cursor operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MlError {
    /// Another owner took over this managed ledger (its ledger was fenced or a metadata
    /// compare-and-set lost); this instance must stop serving the topic.
    #[error("managed ledger {0} is fenced: another owner took over")]
    Fenced(String),
    /// The managed ledger or cursor is closed.
    #[error("managed ledger {0} is closed")]
    Closed(String),
    /// The managed ledger failed earlier and accepts no more writes.
    #[error("managed ledger {name} failed: {reason}")]
    Errored { name: String, reason: String },
    /// A position does not name an entry of this managed ledger that may be used here.
    #[error("invalid position {position} for {name}: {reason}")]
    InvalidPosition {
        name: String,
        position: Position,
        reason: &'static str,
    },
    /// No cursor of that name.
    #[error("cursor {cursor} of {name} not found")]
    NoSuchCursor { name: String, cursor: String },
    /// Stored metadata did not decode.
    #[error("corrupt metadata at {key}")]
    CorruptMetadata {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// A ledger operation failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A metadata operation failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

impl MlError {
    /// True if this instance lost ownership of the managed ledger.
    pub fn is_fenced(&self) -> bool {
        matches!(
            self,
            MlError::Fenced(_) | MlError::Ledger(LedgerError::Fenced(_))
        )
    }
}
