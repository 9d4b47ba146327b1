//! A bookie's local entry storage on RocksDB.
//!
//! Layout: column family `entries` keyed by `(ledger_id, entry_id)` big-endian, value = entry
//! bytes followed by their CRC32C (big-endian u32); column family `ledgers` keyed by ledger id,
//! value = fenced flag + LAC. Every mutation goes through one dedicated writer thread that
//! drains its queue into a single `WriteBatch` written with `sync = true` (group commit), then
//! completes every waiter of that batch. Reads run on the blocking pool, never on async workers.
//! Deleting a ledger also gives its disk space back: see [`reclaim`] (flush + compaction of
//! the deleted key range on a thread of its own). The bytes the data directory takes are
//! reported as the gauge `magnetar_bookie_disk_used_bytes{bookie}`.

mod range;
mod reclaim;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::RwLock;
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::LedgerError;
pub use range::StridedRange;

type Result<T> = std::result::Result<T, LedgerError>;

const CF_ENTRIES: &str = "entries";
const CF_LEDGERS: &str = "ledgers";
/// Fraction of the oldest blob files whose live values compaction relocates (blob GC).
const BLOB_GC_AGE_CUTOFF: f64 = 0.5;
/// Most operations folded into one group-commit batch.
const MAX_BATCH_OPS: usize = 8192;
/// Most payload bytes folded into one group-commit batch.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

/// Per-ledger state a bookie keeps: whether it is fenced, and its highest LAC seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerState {
    /// Adds (other than recovery adds) are rejected.
    pub fenced: bool,
    /// Highest last-add-confirmed piggybacked on an add.
    pub lac: Option<u64>,
}

impl LedgerState {
    fn encode(&self) -> [u8; 9] {
        let mut out = [0u8; 9];
        out[0] = u8::from(self.fenced);
        out[1..].copy_from_slice(&self.lac.map_or(0, |l| l + 1).to_be_bytes());
        out
    }

    fn decode(v: &[u8]) -> Option<LedgerState> {
        if v.len() != 9 {
            return None;
        }
        let mut lac = [0u8; 8];
        lac.copy_from_slice(&v[1..]);
        let lac = u64::from_be_bytes(lac);
        Some(LedgerState {
            fenced: v[0] != 0,
            lac: lac.checked_sub(1),
        })
    }
}

fn entry_key(ledger: u64, entry: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&ledger.to_be_bytes());
    k[8..].copy_from_slice(&entry.to_be_bytes());
    k
}

fn split_key(k: &[u8]) -> Option<(u64, u64)> {
    if k.len() != 16 {
        return None;
    }
    let mut l = [0u8; 8];
    let mut e = [0u8; 8];
    l.copy_from_slice(&k[..8]);
    e.copy_from_slice(&k[8..]);
    Some((u64::from_be_bytes(l), u64::from_be_bytes(e)))
}

/// Splits a stored value into data and CRC, verifying the CRC.
fn verify(bookie: &str, ledger: u64, entry: u64, value: &[u8]) -> Result<(Bytes, u32)> {
    let corrupt = || LedgerError::Corrupt {
        ledger,
        entry,
        bookie: bookie.to_string(),
    };
    if value.len() < 4 {
        return Err(corrupt());
    }
    let (data, crc) = value.split_at(value.len() - 4);
    let mut c = [0u8; 4];
    c.copy_from_slice(crc);
    let crc = u32::from_be_bytes(c);
    if crc32c::crc32c(data) != crc {
        metrics::counter!("magnetar_bookie_corrupt_entries_total").increment(1);
        tracing::error!(
            ledger,
            entry,
            bookie,
            "stored entry failed its CRC32C check"
        );
        return Err(corrupt());
    }
    Ok((Bytes::copy_from_slice(data), crc))
}

impl Inner {
    fn db(&self) -> Result<Arc<DB>> {
        self.db.read().clone().ok_or(LedgerError::Shutdown)
    }

    fn record_disk_used(&self, bytes: u64) {
        self.disk_used.store(bytes, Ordering::Relaxed);
        metrics::gauge!("magnetar_bookie_disk_used_bytes", "bookie" => self.bookie.clone())
            .set(bytes as f64);
    }
}

fn storage_err(e: rocksdb::Error) -> LedgerError {
    LedgerError::Storage(e.into_string())
}

/// One add handed to the writer thread.
pub struct AddOp {
    /// Ledger id.
    pub ledger: u64,
    /// Entry id.
    pub entry: u64,
    /// Entry bytes.
    pub data: Bytes,
    /// CRC32C the writer computed over `data`.
    pub crc: u32,
    /// Piggybacked LAC.
    pub lac: Option<u64>,
    /// Recovery write: allowed on fenced ledgers and read-only bookies.
    pub recovery: bool,
}

enum Op {
    Add(AddOp, oneshot::Sender<Result<()>>),
    Fence(u64, oneshot::Sender<Result<Option<u64>>>),
    Delete(u64, oneshot::Sender<Result<()>>),
    Corrupt(u64, u64, oneshot::Sender<Result<()>>),
    /// Stop the writer thread after the ops queued before it.
    Close(oneshot::Sender<Result<()>>),
}

/// Test and operations hooks shared between the storage and whoever drives it.
#[derive(Debug, Default)]
pub struct Faults {
    /// When set, every write batch fails as if the disk were full (ENOSPC).
    pub fail_writes: AtomicBool,
}

/// Handle to a bookie's RocksDB storage; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
    tx: mpsc::Sender<Op>,
}

struct Inner {
    /// `None` once closed; taken out (and dropped, releasing RocksDB's lock) by `close`.
    db: RwLock<Option<Arc<DB>>>,
    bookie: String,
    ledgers: RwLock<HashMap<u64, LedgerState>>,
    read_only: AtomicBool,
    faults: Arc<Faults>,
    /// Bumped after every committed batch; LAC long-pollers wait on it.
    changes: watch::Sender<u64>,
    batches: AtomicU64,
    /// The data directory.
    dir: PathBuf,
    /// Bytes of the data directory at the last measurement.
    disk_used: AtomicU64,
}

impl Storage {
    /// Opens (or creates) the store under `dir` and starts its writer thread. The thread
    /// exits once every `Storage` clone is dropped, after flushing the WAL.
    pub fn open(dir: &Path, bookie: &str) -> Result<Storage> {
        std::fs::create_dir_all(dir)
            .map_err(|e| LedgerError::Storage(format!("create {}: {e}", dir.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let mut entries = Options::default();
        // Entries are written once and read about once: keep values >= 4 KiB in blob files so
        // compaction rewrites only keys and small values (see docs/adr/0002-bookie-storage.md).
        entries.set_enable_blob_files(true);
        entries.set_min_blob_size(4096);
        entries.set_blob_file_size(256 * 1024 * 1024);
        entries.set_enable_blob_gc(true);
        // Blob files that are mostly garbage (deleted ledgers) are rewritten by compaction so
        // their space comes back even while a live ledger still shares them.
        entries.set_blob_gc_age_cutoff(BLOB_GC_AGE_CUTOFF);
        entries.set_blob_gc_force_threshold(0.5);
        entries.set_write_buffer_size(64 * 1024 * 1024);
        entries.set_max_write_buffer_number(4);
        entries.set_target_file_size_base(64 * 1024 * 1024);
        entries.set_level_compaction_dynamic_level_bytes(true);
        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_ENTRIES, entries),
            ColumnFamilyDescriptor::new(CF_LEDGERS, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(storage_err)?;
        let db = Arc::new(db);
        let mut ledgers = HashMap::new();
        {
            let cf = db.cf_handle(CF_LEDGERS).expect("created on open");
            for item in db.iterator_cf(&cf, rocksdb::IteratorMode::Start) {
                let (k, v) = item.map_err(storage_err)?;
                if k.len() == 8 {
                    let mut id = [0u8; 8];
                    id.copy_from_slice(&k);
                    if let Some(st) = LedgerState::decode(&v) {
                        ledgers.insert(u64::from_be_bytes(id), st);
                    }
                }
            }
        }
        let (changes, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            db: RwLock::new(Some(db)),
            bookie: bookie.to_string(),
            ledgers: RwLock::new(ledgers),
            read_only: AtomicBool::new(false),
            faults: Arc::new(Faults::default()),
            changes,
            batches: AtomicU64::new(0),
            dir: dir.to_path_buf(),
            disk_used: AtomicU64::new(0),
        });
        inner.record_disk_used(reclaim::dir_size(dir));
        let reclaim_tx = reclaim::spawn(inner.clone())
            .map_err(|e| LedgerError::Storage(format!("spawn reclaim thread: {e}")))?;
        let (tx, rx) = mpsc::channel(65_536);
        let thread_inner = inner.clone();
        std::thread::Builder::new()
            .name(format!("bookie-writer-{bookie}"))
            .spawn(move || writer_loop(thread_inner, rx, reclaim_tx))
            .map_err(|e| LedgerError::Storage(format!("spawn writer thread: {e}")))?;
        Ok(Storage { inner, tx })
    }

    /// Fault-injection hooks.
    pub fn faults(&self) -> Arc<Faults> {
        self.inner.faults.clone()
    }

    /// Marks the store read-only (or writable again); non-recovery adds are then rejected.
    pub fn set_read_only(&self, ro: bool) {
        let was = self.inner.read_only.swap(ro, Ordering::SeqCst);
        if was != ro {
            tracing::warn!(bookie = %self.inner.bookie, read_only = ro, "bookie storage mode changed");
        }
    }

    /// Whether the store is read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only.load(Ordering::SeqCst)
    }

    /// Bytes the data directory takes on disk (measured now; also updates the gauge).
    /// Blocking: call from a blocking thread.
    pub fn measure_disk_used(&self) -> u64 {
        let bytes = reclaim::dir_size(&self.inner.dir);
        self.inner.record_disk_used(bytes);
        bytes
    }

    /// Bytes the data directory took at the last measurement.
    pub fn disk_used_bytes(&self) -> u64 {
        self.inner.disk_used.load(Ordering::Relaxed)
    }

    /// Group-commit batches written so far.
    pub fn batches(&self) -> u64 {
        self.inner.batches.load(Ordering::Relaxed)
    }

    async fn submit<T>(&self, op: Op, rx: oneshot::Receiver<Result<T>>) -> Result<T> {
        self.tx.send(op).await.map_err(|_| LedgerError::Shutdown)?;
        rx.await.map_err(|_| LedgerError::Shutdown)?
    }

    /// Stores an entry durably (returns after the batch holding it is synced).
    pub async fn add(&self, op: AddOp) -> Result<()> {
        self.enqueue_add(op).await?.await
    }

    /// Queues an add (waiting only for queue space) and returns a future that resolves once
    /// it is synced, so a caller can pipeline many adds while keeping their order.
    pub async fn enqueue_add(
        &self,
        op: AddOp,
    ) -> Result<impl std::future::Future<Output = Result<()>> + Send + 'static> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Op::Add(op, tx))
            .await
            .map_err(|_| LedgerError::Shutdown)?;
        Ok(async move { rx.await.map_err(|_| LedgerError::Shutdown)? })
    }

    /// Fences a ledger (creating its state if unknown) and returns its LAC.
    pub async fn fence(&self, ledger: u64) -> Result<Option<u64>> {
        let (tx, rx) = oneshot::channel();
        self.submit(Op::Fence(ledger, tx), rx).await
    }

    /// Deletes a ledger's entries and state.
    pub async fn delete(&self, ledger: u64) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.submit(Op::Delete(ledger, tx), rx).await
    }

    /// Test hook: flips one byte of a stored entry without fixing its CRC.
    pub async fn corrupt_entry(&self, ledger: u64, entry: u64) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.submit(Op::Corrupt(ledger, entry, tx), rx).await
    }

    /// A ledger's state, if the bookie knows the ledger.
    pub fn ledger_state(&self, ledger: u64) -> Option<LedgerState> {
        self.inner.ledgers.read().get(&ledger).copied()
    }

    /// Every ledger this bookie holds, in id order.
    pub fn list_ledgers(&self) -> Vec<(u64, LedgerState)> {
        let mut v: Vec<_> = self
            .inner
            .ledgers
            .read()
            .iter()
            .map(|(k, s)| (*k, *s))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// The id of the bookie this store belongs to.
    pub fn bookie_id(&self) -> &str {
        &self.inner.bookie
    }

    /// Subscribes to commit notifications (for LAC long-polls).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Reads one entry, verifying its CRC.
    pub async fn read(&self, ledger: u64, entry: u64) -> Result<(Bytes, u32)> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let db = inner.db()?;
            let cf = db.cf_handle(CF_ENTRIES).expect("created on open");
            let value = db
                .get_pinned_cf(&cf, entry_key(ledger, entry))
                .map_err(storage_err)?;
            let res = match value {
                Some(v) => verify(&inner.bookie, ledger, entry, &v),
                None if inner.ledgers.read().contains_key(&ledger) => {
                    Err(LedgerError::NoSuchEntry { ledger, entry })
                }
                None => Err(LedgerError::NoSuchLedger(ledger)),
            };
            res
        })
        .await
        .map_err(|_| LedgerError::Shutdown)?
    }

    /// Reads the entries held in `first..=last` (possibly sparse), up to `max_bytes` of data
    /// (at least one entry). Fails on the first corrupt entry.
    pub async fn read_range(
        &self,
        ledger: u64,
        first: u64,
        last: u64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Bytes, u32)>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            if !inner.ledgers.read().contains_key(&ledger) {
                return Err(LedgerError::NoSuchLedger(ledger));
            }
            let db = inner.db()?;
            let cf = db.cf_handle(CF_ENTRIES).expect("created on open");
            let mut ro = rocksdb::ReadOptions::default();
            ro.set_iterate_upper_bound(entry_key(ledger, last.saturating_add(1)).to_vec());
            let start = entry_key(ledger, first);
            let mode = rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward);
            let mut out = Vec::new();
            let mut bytes = 0usize;
            for item in db.iterator_cf_opt(&cf, ro, mode) {
                let (k, v) = item.map_err(storage_err)?;
                let Some((l, e)) = split_key(&k) else { break };
                if l != ledger || e > last {
                    break;
                }
                let (data, crc) = verify(&inner.bookie, ledger, e, &v)?;
                bytes += data.len();
                out.push((e, data, crc));
                if bytes >= max_bytes {
                    break;
                }
            }
            Ok(out)
        })
        .await
        .map_err(|_| LedgerError::Shutdown)?
    }

    /// Stops the writer thread (after the ops queued before this call), flushes and closes
    /// RocksDB, releasing its lock so the directory can be opened again. Later calls fail
    /// with `Shutdown`.
    pub async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let Some(db) = inner.db.write().take() else {
                return Ok(());
            };
            // Reads in flight hold clones for a moment; wait (bounded) for them to finish.
            let deadline = Instant::now() + std::time::Duration::from_secs(10);
            while Arc::strong_count(&db) > 1 && Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let res = db.flush_wal(true).map_err(storage_err);
            drop(db);
            res
        })
        .await
        .map_err(|_| LedgerError::Shutdown)?
    }

    /// Flushes memtables and the WAL (used at shutdown).
    pub async fn sync(&self) -> Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let db = inner.db()?;
            db.flush_wal(true).map_err(storage_err)?;
            db.flush().map_err(storage_err)
        })
        .await
        .map_err(|_| LedgerError::Shutdown)?
    }
}

enum Done {
    Add(oneshot::Sender<Result<()>>, Result<()>),
    Fence(oneshot::Sender<Result<Option<u64>>>, Result<Option<u64>>),
    Unit(oneshot::Sender<Result<()>>, Result<()>),
}

/// The group-commit loop: one synced `WriteBatch` per drain of the queue.
fn writer_loop(
    inner: Arc<Inner>,
    mut rx: mpsc::Receiver<Op>,
    reclaim: std::sync::mpsc::Sender<u64>,
) {
    let Ok(db) = inner.db() else { return };
    let entries_cf = db.cf_handle(CF_ENTRIES).expect("created on open");
    let ledgers_cf = db.cf_handle(CF_LEDGERS).expect("created on open");
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    let mut closing: Option<oneshot::Sender<Result<()>>> = None;
    while let Some(first) = rx.blocking_recv() {
        let mut close_seen = matches!(first, Op::Close(_));
        let mut ops = vec![first];
        let mut bytes = 0usize;
        while !close_seen && ops.len() < MAX_BATCH_OPS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(op) => {
                    if let Op::Add(a, _) = &op {
                        bytes += a.data.len();
                    }
                    close_seen = matches!(op, Op::Close(_));
                    ops.push(op);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let mut batch = WriteBatch::default();
        let mut staged: HashMap<u64, Option<LedgerState>> = HashMap::new();
        let mut deleted: Vec<u64> = Vec::new();
        let mut done = Vec::with_capacity(ops.len());
        let read_only = inner.read_only.load(Ordering::SeqCst);
        let n_ops = ops.len();
        for op in ops {
            let current = |staged: &HashMap<u64, Option<LedgerState>>, l: u64| match staged.get(&l)
            {
                Some(s) => *s,
                None => inner.ledgers.read().get(&l).copied(),
            };
            match op {
                Op::Add(a, tx) => {
                    let st = current(&staged, a.ledger);
                    let res = if crc32c::crc32c(&a.data) != a.crc {
                        Err(LedgerError::InvalidArgument(format!(
                            "CRC32C mismatch on add of entry {} of ledger {}",
                            a.entry, a.ledger
                        )))
                    } else if !a.recovery && st.is_some_and(|s| s.fenced) {
                        Err(LedgerError::Fenced(a.ledger))
                    } else if !a.recovery && read_only {
                        Err(LedgerError::ReadOnly(inner.bookie.clone()))
                    } else {
                        let mut value = BytesMut::with_capacity(a.data.len() + 4);
                        value.put_slice(&a.data);
                        value.put_u32(a.crc);
                        batch.put_cf(&entries_cf, entry_key(a.ledger, a.entry), &value);
                        let mut s = st.unwrap_or_default();
                        let new_lac = s.lac.max(a.lac);
                        if st.is_none() || new_lac != s.lac {
                            s.lac = new_lac;
                            batch.put_cf(&ledgers_cf, a.ledger.to_be_bytes(), s.encode());
                            staged.insert(a.ledger, Some(s));
                        }
                        Ok(())
                    };
                    done.push(Done::Add(tx, res));
                }
                Op::Fence(l, tx) => {
                    let mut s = current(&staged, l).unwrap_or_default();
                    s.fenced = true;
                    batch.put_cf(&ledgers_cf, l.to_be_bytes(), s.encode());
                    staged.insert(l, Some(s));
                    done.push(Done::Fence(tx, Ok(s.lac)));
                }
                Op::Delete(l, tx) => {
                    batch.delete_range_cf(
                        &entries_cf,
                        entry_key(l, 0),
                        entry_key(l.saturating_add(1), 0),
                    );
                    batch.delete_cf(&ledgers_cf, l.to_be_bytes());
                    staged.insert(l, None);
                    deleted.push(l);
                    done.push(Done::Unit(tx, Ok(())));
                }
                Op::Close(tx) => {
                    closing = Some(tx);
                }
                Op::Corrupt(l, e, tx) => {
                    let res = match db.get_cf(&entries_cf, entry_key(l, e)) {
                        Ok(Some(mut v)) if !v.is_empty() => {
                            v[0] ^= 0xff;
                            batch.put_cf(&entries_cf, entry_key(l, e), v);
                            Ok(())
                        }
                        Ok(_) => Err(LedgerError::NoSuchEntry {
                            ledger: l,
                            entry: e,
                        }),
                        Err(e) => Err(storage_err(e)),
                    };
                    done.push(Done::Unit(tx, res));
                }
            }
        }
        let write = if inner.faults.fail_writes.load(Ordering::SeqCst) {
            Err(LedgerError::Storage(format!(
                "bookie {}: write failed: No space left on device (injected)",
                inner.bookie
            )))
        } else if batch.is_empty() {
            Ok(())
        } else {
            db.write_opt(batch, &wo).map_err(|e| {
                let msg = e.into_string();
                if msg.contains("No space left") {
                    inner.read_only.store(true, Ordering::SeqCst);
                    tracing::error!(bookie = %inner.bookie, error = %msg, "disk full; bookie is now read-only");
                }
                LedgerError::Storage(format!("bookie {}: write failed: {msg}", inner.bookie))
            })
        };
        match &write {
            Ok(()) => {
                let mut ledgers = inner.ledgers.write();
                for (l, s) in staged {
                    match s {
                        Some(s) => ledgers.insert(l, s),
                        None => ledgers.remove(&l),
                    };
                }
                for l in deleted {
                    // The reclaim thread lives as long as this sender.
                    let _ = reclaim.send(l);
                }
            }
            Err(e) => {
                metrics::counter!("magnetar_bookie_write_errors_total").increment(1);
                tracing::error!(bookie = %inner.bookie, error = %e, ops = n_ops, "group commit failed");
            }
        }
        inner.batches.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!("magnetar_bookie_group_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("magnetar_bookie_group_commit_ops").record(n_ops as f64);
        inner.changes.send_modify(|v| *v += 1);
        let fail = |e: &LedgerError| LedgerError::Storage(e.to_string());
        for d in done {
            match d {
                Done::Add(tx, r) => {
                    let _ = tx.send(write.as_ref().map_err(fail).and(r));
                }
                Done::Fence(tx, r) => {
                    let _ = tx.send(write.as_ref().map_err(fail).and(r));
                }
                Done::Unit(tx, r) => {
                    let _ = tx.send(write.as_ref().map_err(fail).and(r));
                }
            }
        }
        if closing.is_some() {
            break;
        }
    }
    // Ops still queued after a close (or after every sender is gone) fail with Shutdown
    // when their senders are dropped with the receiver.
    rx.close();
    if let Err(e) = db.flush_wal(true) {
        tracing::warn!(error = %e, "final WAL flush failed");
    }
    drop(db);
    if let Some(tx) = closing {
        let _ = tx.send(Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_state_round_trips() {
        for s in [
            LedgerState::default(),
            LedgerState {
                fenced: true,
                lac: Some(0),
            },
            LedgerState {
                fenced: false,
                lac: Some(u64::MAX - 1),
            },
        ] {
            assert_eq!(LedgerState::decode(&s.encode()), Some(s));
        }
    }

    #[test]
    fn keys_sort_by_ledger_then_entry() {
        assert!(entry_key(1, u64::MAX) < entry_key(2, 0));
        assert!(entry_key(1, 255) < entry_key(1, 256));
        assert_eq!(split_key(&entry_key(7, 9)), Some((7, 9)));
    }
}
