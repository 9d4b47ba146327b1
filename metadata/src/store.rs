//! The metadata store contract shared by every implementation (in-memory, Raft node,
//! gRPC client). Brokers and bookies only ever see `Arc<dyn MetadataStore>`.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::MetadataError;

/// Result alias for metadata operations.
pub type Result<T> = std::result::Result<T, MetadataError>;

/// A key's version: the Raft log index (or, in memory, the store revision) of its last write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version(pub u64);

/// Identifies a client session; ephemeral keys belong to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub u64);

/// A stored value with its version and, for ephemeral keys, the owning session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value bytes.
    pub value: Bytes,
    /// Version of the last write to this key.
    pub version: Version,
    /// Owning session for ephemeral keys.
    pub owner: Option<SessionId>,
}

/// Precondition for a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// No precondition.
    Any,
    /// The key must not exist (create-only).
    Absent,
    /// The key must exist with exactly this version (compare-and-set).
    Version(Version),
}

impl Expect {
    /// Whether this precondition holds for a key whose current version is `current`
    /// (`None` when the key does not exist).
    pub fn holds(self, current: Option<Version>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current == Some(v),
        }
    }
}

/// One operation of an atomic transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// Put `value` at `key` if `expect` holds; ephemeral if `session` is set.
    Put {
        key: String,
        value: Vec<u8>,
        expect: Expect,
        session: Option<SessionId>,
    },
    /// Delete `key` if `expect` holds.
    Delete { key: String, expect: Expect },
    /// Only check `expect` on `key`.
    Check { key: String, expect: Expect },
}

/// A change seen by a watcher, in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// `key` was written.
    Put {
        key: String,
        value: Bytes,
        version: Version,
    },
    /// `key` was deleted (explicitly or by session expiry) at `version`.
    Delete { key: String, version: Version },
    /// The watcher fell too far behind; it must re-list and watch again from `version`.
    Reset { version: Version },
}

/// A stream of watch events.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// Default largest value accepted by a store (1 MiB).
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Largest key accepted by a store.
pub const MAX_KEY_BYTES: usize = 4096;

/// Checks a key and value against the store limits.
pub fn validate(key: &str, value: Option<&[u8]>) -> Result<()> {
    if key.is_empty() || !key.starts_with('/') {
        return Err(MetadataError::InvalidArgument(format!(
            "key {key:?} must start with '/'"
        )));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(MetadataError::InvalidArgument(format!(
            "key of {} bytes exceeds the limit of {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    if let Some(v) = value {
        if v.len() > MAX_VALUE_BYTES {
            return Err(MetadataError::InvalidArgument(format!(
                "value of {} bytes for {key:?} exceeds the limit of {MAX_VALUE_BYTES}",
                v.len()
            )));
        }
    }
    Ok(())
}

/// A linearizable key-value store with sessions, ephemeral keys, counters and watches.
#[async_trait::async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Reads a key (linearizable).
    async fn get(&self, key: &str) -> Result<Option<Versioned>>;

    /// Writes a key if `expect` holds; `session` makes it ephemeral. Returns the new version.
    /// A failed precondition returns [`MetadataError::BadVersion`].
    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expect: Expect,
        session: Option<SessionId>,
    ) -> Result<Version>;

    /// Deletes a key if `expect` holds. Returns whether a key was deleted.
    async fn delete(&self, key: &str, expect: Expect) -> Result<bool>;

    /// Lists keys starting with `prefix`, in key order, after `start_after`, at most `limit`.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Versioned)>>;

    /// Applies all operations or none. Returns the commit version.
    async fn txn(&self, ops: Vec<TxnOp>) -> Result<Version>;

    /// Atomically adds `delta` to the counter at `key` and returns the new value.
    async fn increment(&self, key: &str, delta: u64) -> Result<u64>;

    /// Opens a session that expires `ttl` after its last keep-alive.
    async fn create_session(&self, ttl: Duration) -> Result<SessionId>;

    /// Renews a session. Fails with [`MetadataError::SessionExpired`] once it has expired.
    async fn keep_alive(&self, session: SessionId) -> Result<()>;

    /// Closes a session, deleting its ephemeral keys.
    async fn close_session(&self, session: SessionId) -> Result<()>;

    /// Streams every change under `prefix` committed after `after` (exclusive), in order.
    async fn watch(&self, prefix: &str, after: Version) -> Result<WatchStream>;

    /// The store's current revision (highest committed version).
    async fn revision(&self) -> Result<Version>;
}

/// Lists every key under `prefix`, paging through the store.
pub async fn list_all(store: &dyn MetadataStore, prefix: &str) -> Result<Vec<(String, Versioned)>> {
    let mut out = Vec::new();
    loop {
        let after = out.last().map(|(k, _): &(String, Versioned)| k.clone());
        let page = store.list(prefix, after.as_deref(), 1000).await?;
        let done = page.len() < 1000;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}
