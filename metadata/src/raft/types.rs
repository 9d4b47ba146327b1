//! openraft type configuration and the commands replicated through the log.

use std::io::Cursor;

use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use crate::store::TxnOp;

/// A metadata node id (`u64`, as openraft wants it).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of the metadata service.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft handle of a metadata node.
pub type Raft = openraft::Raft<TypeConfig>;

/// A command proposed to the Raft log (bincode-encoded inside log entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Atomic multi-op write (also used for single put/delete).
    Txn { ops: Vec<TxnOp> },
    /// Add `delta` to the 8-byte big-endian counter at `key`.
    Increment { key: String, delta: u64 },
    /// Open a session; its id is the log index of this command.
    CreateSession { ttl_ms: u64 },
    /// Renew a session.
    KeepAlive { session: u64 },
    /// Close a session and delete its ephemeral keys.
    CloseSession { session: u64 },
    /// Proposed only by the leader when its clock sees the session past its TTL; applies only
    /// if the session was not renewed since (`renewed_at` = log index of its last renewal).
    ExpireSession { session: u64, renewed_at: u64 },
}

/// Why an applied command had no effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyError {
    /// A precondition failed.
    BadVersion {
        key: String,
        expected: String,
        actual: String,
    },
    /// The session does not exist.
    SessionExpired(u64),
    /// Malformed command.
    Invalid(String),
}

/// The result of applying one log entry, returned through `client_write`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Blank or membership entry.
    #[default]
    None,
    /// A transaction committed at `version`; `deleted` if a delete removed a key.
    Txn { version: u64, deleted: bool },
    /// New counter value.
    Counter(u64),
    /// A session id (create) or an acknowledged renewal/close.
    Session(u64),
    /// The command was rejected at apply time.
    Failed(ApplyError),
}

impl From<ApplyError> for crate::MetadataError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::BadVersion {
                key,
                expected,
                actual,
            } => crate::MetadataError::BadVersion {
                key,
                expected,
                actual,
            },
            ApplyError::SessionExpired(id) => crate::MetadataError::SessionExpired(id),
            ApplyError::Invalid(m) => crate::MetadataError::InvalidArgument(m),
        }
    }
}
