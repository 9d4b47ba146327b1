//! Errors of the metadata service and its clients.

/// An error from a metadata operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// A precondition (create-only or expected version) did not hold.
    #[error("version conflict on {key}: expected {expected}, found {actual}")]
    BadVersion {
        key: String,
        expected: String,
        actual: String,
    },
    /// The session does not exist or has expired.
    #[error("session {0} expired or unknown")]
    SessionExpired(u64),
    /// The request is malformed or over a limit.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No leader could be reached before the deadline.
    #[error("metadata service unavailable: {0}")]
    Unavailable(String),
    /// A write may or may not have been applied (the connection broke after sending it).
    #[error("outcome of write unknown: {0}")]
    OutcomeUnknown(String),
    /// Local storage failed.
    #[error("metadata storage error: {0}")]
    Storage(String),
    /// The node is shutting down.
    #[error("metadata service shutting down")]
    Shutdown,
}

impl MetadataError {
    /// True for a failed create-only/CAS precondition.
    pub fn is_bad_version(&self) -> bool {
        matches!(self, MetadataError::BadVersion { .. })
    }
}
