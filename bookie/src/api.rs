//! The ledger API the broker programs against. The quorum client over real bookies and the
//! in-memory implementation both provide it.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::error::LedgerError;

/// Result alias for ledger operations.
pub type Result<T> = std::result::Result<T, LedgerError>;

/// A ledger's id, allocated from the metadata counter `/counters/ledger-id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LedgerId(pub u64);

/// An entry's position within its ledger, from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntryId(pub u64);

impl std::fmt::Display for LedgerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Replication settings of a ledger: ensemble size E, write quorum Qw, ack quorum Qa.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerConfig {
    /// Bookies the entries are striped over (E).
    pub ensemble: usize,
    /// Copies written of each entry (Qw).
    pub write_quorum: usize,
    /// Synced copies needed before an add is acknowledged (Qa).
    pub ack_quorum: usize,
}

impl LedgerConfig {
    /// E=Qw=Qa=1, the standalone default.
    pub const SINGLE: LedgerConfig = LedgerConfig {
        ensemble: 1,
        write_quorum: 1,
        ack_quorum: 1,
    };
}

/// Creates, opens and deletes ledgers.
#[async_trait::async_trait]
pub trait Ledgers: Send + Sync + 'static {
    /// Creates a new ledger open for appends by the returned writer (the single writer).
    async fn create(&self, config: LedgerConfig) -> Result<Arc<dyn LedgerWriter>>;

    /// Opens a ledger for reading. With `recover`, first fences it on enough bookies that
    /// its old writer can no longer reach Qa, recovers entries past the LAC and closes it,
    /// so the returned `last_entry` is final.
    async fn open(&self, id: LedgerId, recover: bool) -> Result<Arc<dyn LedgerReader>>;

    /// Deletes a ledger's entries from every bookie and its metadata.
    async fn delete(&self, id: LedgerId) -> Result<()>;
}

/// The single writer of an open ledger.
#[async_trait::async_trait]
pub trait LedgerWriter: Send + Sync {
    /// This ledger's id.
    fn id(&self) -> LedgerId;

    /// Appends an entry. The entry's id is fixed when this is called (calls are ordered),
    /// and the future resolves once Qa bookies have synced it and every earlier entry is
    /// acknowledged. After a failure, every later add fails too.
    fn add(&self, data: Bytes) -> BoxFuture<'static, Result<EntryId>>;

    /// Highest entry id acknowledged so far.
    fn last_add_confirmed(&self) -> Option<EntryId>;

    /// Reads acknowledged entries `first..=last`.
    async fn read(&self, first: EntryId, last: EntryId) -> Result<Vec<Bytes>>;

    /// Waits for outstanding adds, then closes the ledger at its LAC (recorded in metadata).
    async fn close(&self) -> Result<Option<EntryId>>;
}

/// A reader of a ledger.
#[async_trait::async_trait]
pub trait LedgerReader: Send + Sync {
    /// This ledger's id.
    fn id(&self) -> LedgerId;

    /// Last entry that may be read (`None` for an empty ledger).
    fn last_entry(&self) -> Option<EntryId>;

    /// Reads entries `first..=last`, failing over between replicas.
    async fn read(&self, first: EntryId, last: EntryId) -> Result<Vec<Bytes>>;
}
