//! The broker's seam to message storage: a topic's log and its subscription cursors.
//! The managed ledger implements it for real topics ([`managed`]); [`mem`] keeps
//! everything in memory for tests.

pub mod managed;
pub mod mem;
pub mod volatile;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::error::Result;
use crate::position::Position;

/// Log property set once a topic is terminated (value: its last entry, `ledger:entry`).
pub const TERMINATED_PROPERTY: &str = "magnetar.terminated";

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// After the last entry.
    Latest,
    /// At the first entry.
    Earliest,
    /// At this entry.
    At(Position),
}

/// Opens topic logs by managed-ledger name.
#[async_trait::async_trait]
pub trait TopicStorage: Send + Sync + 'static {
    /// Opens (creating if needed) the log of `name` (`tenant/ns/persistent/topic`).
    async fn open(&self, name: &str) -> Result<Arc<dyn TopicLog>>;
}

/// One topic's append-only log.
#[async_trait::async_trait]
pub trait TopicLog: Send + Sync + 'static {
    /// Appends an entry; positions are assigned in call order.
    fn append(&self, data: Bytes) -> BoxFuture<'static, Result<Position>>;

    /// Reads up to `max` entries starting at `from` (inclusive).
    async fn read(&self, from: Position, max: usize) -> Result<Vec<(Position, Bytes)>>;

    /// Last confirmed entry.
    fn last_confirmed(&self) -> Option<Position>;

    /// Changes of the last confirmed entry, to wait for new entries.
    fn watch_lac(&self) -> watch::Receiver<Option<Position>>;

    /// Position of the first entry (or where it will be written).
    fn first_position(&self) -> Position;

    /// Position following `p`.
    fn next_position(&self, p: Position) -> Position;

    /// Ledger currently written (for "last message id" of an empty topic).
    fn current_ledger(&self) -> u64;

    /// Number of stored entries.
    fn entries(&self) -> u64;

    /// Stored bytes.
    fn size_bytes(&self) -> u64;

    /// Names of the durable cursors stored for this log.
    fn cursor_names(&self) -> Vec<String>;

    /// Opens or creates a durable cursor.
    async fn open_cursor(&self, name: &str, initial: InitialPosition)
        -> Result<Arc<dyn SubCursor>>;

    /// Deletes a durable cursor.
    async fn delete_cursor(&self, name: &str) -> Result<()>;

    /// Small properties persisted with the log (lifecycle snapshots).
    fn properties(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::new()
    }

    /// Sets a property, persisted with the log's metadata.
    async fn set_property(&self, _key: &str, _value: &str) -> Result<()> {
        Ok(())
    }

    /// Trims consumed data automatically under `policy` (`None`: keep everything).
    fn set_retention(&self, _policy: Option<crate::ml::RetentionPolicy>) {}

    /// Deletes now the ledgers that every durable cursor has passed and `policy` no longer
    /// needs.
    async fn trim(&self, _policy: crate::ml::RetentionPolicy) -> Result<()> {
        Ok(())
    }

    /// False once the log failed or lost ownership; the topic must then be reopened.
    fn is_healthy(&self) -> bool {
        true
    }

    /// Deletes the log with its ledgers and cursors (after `close`).
    async fn delete(&self) -> Result<()>;

    /// Flushes cursors and closes the log.
    async fn close(&self) -> Result<()>;
}

/// A subscription's durable (or, for readers, in-memory) acknowledgement state.
#[async_trait::async_trait]
pub trait SubCursor: Send + Sync + 'static {
    /// Everything at or before this is acknowledged (`None`: nothing yet).
    fn mark_delete(&self) -> Option<Position>;

    /// True if `p` was acknowledged individually or by mark-delete.
    fn is_acked(&self, p: Position) -> bool;

    /// Where reading should resume.
    fn read_position(&self) -> Position;

    /// Acknowledges entries individually.
    async fn ack(&self, positions: &[Position]) -> Result<()>;

    /// Acknowledges everything up to and including `p`.
    async fn ack_cumulative(&self, p: Position) -> Result<()>;

    /// Resets so that the next read starts at `p`; acks at or after `p` are forgotten.
    async fn seek(&self, p: Position) -> Result<()>;

    /// Unacknowledged entries, if the cursor keeps count.
    fn backlog(&self) -> Option<u64>;

    /// Persists pending state.
    async fn flush(&self) -> Result<()>;
}
