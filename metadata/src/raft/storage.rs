//! RocksDB-backed Raft storage (openraft storage-v2): the log store and the state machine.
//!
//! One RocksDB with two column families: `log` (entry index, big-endian -> bincode entry) and
//! `meta` (vote, last purged log id, committed log id, current snapshot). Votes, appends,
//! truncations and snapshots are written with `sync = true` before they are acknowledged.
//! The state machine lives in memory ([`SharedState`]); its durable form is the last
//! snapshot plus the log: on start it loads the snapshot and openraft re-applies the
//! committed entries after it. Every RocksDB call runs on the blocking pool.

// openraft's trait methods fix the error type (`StorageError`, large); helpers return it too.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, LogState, OptionalSend, RaftLogReader,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
    Vote,
};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};

use super::sm::{SharedState, SmData};
use super::types::{CommandResult, NodeId, TypeConfig};
use crate::error::MetadataError;

const CF_LOG: &str = "log";
const CF_META: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_PURGED: &[u8] = b"purged";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_SNAPSHOT: &[u8] = b"snapshot";

type SErr = StorageError<NodeId>;

/// Opens (or creates) the Raft RocksDB under `path`.
pub fn open_db(path: &Path) -> Result<Arc<DB>, MetadataError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let cfs = [CF_LOG, CF_META]
        .into_iter()
        .map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
    DB::open_cf_descriptors(&opts, path, cfs)
        .map(Arc::new)
        .map_err(|e| MetadataError::Storage(format!("open {}: {e}", path.display())))
}

fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

fn io_err(e: impl ToString) -> AnyError {
    AnyError::error(e.to_string())
}

/// Runs blocking RocksDB work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SErr> + Send + 'static,
) -> Result<T, SErr> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageIOError::write(io_err(e)))?
}

fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, SErr> {
    db.cf_handle(name)
        .ok_or_else(|| StorageIOError::read(io_err(format!("missing column family {name}"))).into())
}

fn get_meta<T: for<'de> Deserialize<'de>>(db: &DB, key: &[u8]) -> Result<Option<T>, SErr> {
    let raw = db
        .get_cf(cf(db, CF_META)?, key)
        .map_err(|e| StorageIOError::read(io_err(e)))?;
    match raw {
        None => Ok(None),
        Some(b) => bincode::deserialize(&b)
            .map(Some)
            .map_err(|e| StorageIOError::read(io_err(e)).into()),
    }
}

fn put_meta<T: Serialize>(db: &DB, key: &[u8], value: &T) -> Result<(), SErr> {
    let b = bincode::serialize(value).map_err(|e| StorageIOError::write(io_err(e)))?;
    db.put_cf_opt(cf(db, CF_META)?, key, b, &synced())
        .map_err(|e| StorageIOError::write(io_err(e)).into())
}

/// The Raft log (and vote) in RocksDB.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

impl LogStore {
    /// A log store over an opened database.
    pub fn new(db: Arc<DB>) -> Self {
        LogStore { db }
    }
}

fn read_range(db: &DB, start: u64, end: u64) -> Result<Vec<Entry<TypeConfig>>, SErr> {
    let mut out = Vec::new();
    if start >= end {
        return Ok(out);
    }
    let mode = rocksdb::IteratorMode::From(&start.to_be_bytes(), rocksdb::Direction::Forward);
    for item in db.iterator_cf(cf(db, CF_LOG)?, mode) {
        let (k, v) = item.map_err(|e| StorageIOError::read_logs(io_err(e)))?;
        let idx = u64::from_be_bytes(
            <[u8; 8]>::try_from(k.as_ref()).map_err(|e| StorageIOError::read_logs(io_err(e)))?,
        );
        if idx >= end {
            break;
        }
        let entry: Entry<TypeConfig> =
            bincode::deserialize(&v).map_err(|e| StorageIOError::read_logs(io_err(e)))?;
        out.push(entry);
    }
    Ok(out)
}

fn last_entry_id(db: &DB) -> Result<Option<LogId<NodeId>>, SErr> {
    let mut it = db.iterator_cf(cf(db, CF_LOG)?, rocksdb::IteratorMode::End);
    match it.next() {
        None => Ok(None),
        Some(item) => {
            let (_, v) = item.map_err(|e| StorageIOError::read_logs(io_err(e)))?;
            let entry: Entry<TypeConfig> =
                bincode::deserialize(&v).map_err(|e| StorageIOError::read_logs(io_err(e)))?;
            Ok(Some(entry.log_id))
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => x.saturating_add(1),
            Bound::Excluded(x) => *x,
            Bound::Unbounded => u64::MAX,
        };
        let db = self.db.clone();
        blocking(move || read_range(&db, start, end)).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let db = self.db.clone();
        blocking(move || {
            let purged = get_meta::<Option<LogId<NodeId>>>(&db, KEY_PURGED)?.flatten();
            let last = last_entry_id(&db)?.or(purged);
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        let db = self.db.clone();
        let vote = *vote;
        blocking(move || put_meta(&db, KEY_VOTE, &vote)).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        let db = self.db.clone();
        blocking(move || get_meta(&db, KEY_VOTE)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        let db = self.db.clone();
        blocking(move || {
            let b = bincode::serialize(&committed).map_err(|e| StorageIOError::write(io_err(e)))?;
            // Not synced: losing it only delays re-applying committed entries after a crash.
            db.put_cf(cf(&db, CF_META)?, KEY_COMMITTED, b)
                .map_err(|e| StorageIOError::write(io_err(e)).into())
        })
        .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        let db = self.db.clone();
        blocking(move || Ok(get_meta::<Option<LogId<NodeId>>>(&db, KEY_COMMITTED)?.flatten())).await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for e in entries {
            let b =
                bincode::serialize(&e).map_err(|err| StorageIOError::write_logs(io_err(err)))?;
            encoded.push((e.log_id.index, b));
        }
        let db = self.db.clone();
        let n = encoded.len();
        let res = blocking(move || {
            let mut batch = WriteBatch::default();
            let log = cf(&db, CF_LOG)?;
            for (idx, b) in encoded {
                batch.put_cf(log, idx.to_be_bytes(), b);
            }
            db.write_opt(batch, &synced())
                .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
        })
        .await;
        metrics::counter!("magnetar_metadata_log_appended_entries_total").increment(n as u64);
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        let db = self.db.clone();
        blocking(move || {
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(
                cf(&db, CF_LOG)?,
                log_id.index.to_be_bytes(),
                u64::MAX.to_be_bytes(),
            );
            batch.delete_cf(cf(&db, CF_LOG)?, u64::MAX.to_be_bytes());
            db.write_opt(batch, &synced())
                .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        let db = self.db.clone();
        blocking(move || {
            let mut batch = WriteBatch::default();
            let b =
                bincode::serialize(&Some(log_id)).map_err(|e| StorageIOError::write(io_err(e)))?;
            // The purged id is a plain Option<LogId> in `meta`.
            batch.put_cf(cf(&db, CF_META)?, KEY_PURGED, b);
            let end = log_id.index.saturating_add(1);
            batch.delete_range_cf(cf(&db, CF_LOG)?, 0u64.to_be_bytes(), end.to_be_bytes());
            db.write_opt(batch, &synced())
                .map_err(|e| StorageIOError::write_logs(io_err(e)).into())
        })
        .await
    }
}

/// A persisted snapshot.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

/// The state machine: in memory, snapshots in RocksDB.
#[derive(Clone)]
pub struct StateMachineStore {
    db: Arc<DB>,
    state: Arc<SharedState>,
}

impl StateMachineStore {
    /// Loads the last snapshot (if any) into `state`.
    pub async fn open(db: Arc<DB>, state: Arc<SharedState>) -> Result<Self, SErr> {
        let d = db.clone();
        let snap: Option<StoredSnapshot> = blocking(move || get_meta(&d, KEY_SNAPSHOT)).await?;
        let data = match snap {
            Some(s) => SmData::decode(&s.data)
                .map_err(|e| StorageIOError::read_snapshot(None, io_err(e)))?,
            None => SmData::default(),
        };
        state.replace(data);
        Ok(StateMachineStore { db, state })
    }

    /// The shared in-memory state.
    pub fn state(&self) -> Arc<SharedState> {
        self.state.clone()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let data = self.state.read(|d| d.clone());
        let db = self.db.clone();
        blocking(move || {
            let bytes = data
                .encode()
                .map_err(|e| StorageIOError::write_snapshot(None, io_err(e)))?;
            let index = data.last_applied.map(|l| l.index).unwrap_or(0);
            let snapshot_id = format!("{index}-{:08x}", rand::random::<u32>());
            let meta = SnapshotMeta {
                last_log_id: data.last_applied,
                last_membership: data.membership.clone(),
                snapshot_id,
            };
            let stored = StoredSnapshot {
                meta: meta.clone(),
                data: bytes,
            };
            put_meta(&db, KEY_SNAPSHOT, &stored)?;
            Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(stored.data)),
            })
        })
        .await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), SErr> {
        Ok(self.state.read(|d| (d.last_applied, d.membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let batch = entries
            .into_iter()
            .map(|e| match e.payload {
                EntryPayload::Blank => (e.log_id, None, None),
                EntryPayload::Normal(cmd) => (e.log_id, Some(cmd), None),
                EntryPayload::Membership(m) => (
                    e.log_id,
                    None,
                    Some(StoredMembership::new(Some(e.log_id), m)),
                ),
            })
            .collect::<Vec<_>>();
        let n = batch.len();
        let out = self.state.apply_batch(batch);
        metrics::counter!("magnetar_metadata_applied_entries_total").increment(n as u64);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let bytes = snapshot.into_inner();
        let mut data = SmData::decode(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), io_err(e)))?;
        data.last_applied = meta.last_log_id;
        data.membership = meta.last_membership.clone();
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        };
        let db = self.db.clone();
        blocking(move || put_meta(&db, KEY_SNAPSHOT, &stored)).await?;
        self.state.replace(data);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let db = self.db.clone();
        let snap: Option<StoredSnapshot> = blocking(move || get_meta(&db, KEY_SNAPSHOT)).await?;
        Ok(snap.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
