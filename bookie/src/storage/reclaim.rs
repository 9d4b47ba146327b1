//! Reclaiming disk space after ledgers are deleted.
//!
//! A ledger delete is a range tombstone over the ledger's keys, which frees nothing by
//! itself: the entries stay in the WAL, in memtables, in SST files and (for values of at
//! least 4 KiB) in blob files until RocksDB rewrites them. So after every committed delete
//! a dedicated thread (never the group-commit writer, never an async worker) flushes both
//! column families (a flush drops keys under the tombstone and lets the old WAL go) and
//! compacts the deleted key range to the bottom level, which drops the keys and counts
//! their blobs as garbage; a blob file that is all garbage is deleted, and blob GC
//! relocates the live rest of old, mostly-garbage blob files. Deletes that arrive close
//! together (retention trims several ledgers at once) share one round.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocksdb::{BottommostLevelCompaction, CompactOptions, DB};

use super::{entry_key, Inner, CF_ENTRIES, CF_LEDGERS};

/// How long a round waits for more deletes before starting.
const COALESCE: Duration = Duration::from_millis(200);

/// Starts the reclaim thread; it ends once the returned sender is dropped.
pub(super) fn spawn(inner: Arc<Inner>) -> std::io::Result<Sender<u64>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("bookie-reclaim-{}", inner.bookie))
        .spawn(move || reclaim_loop(&inner, &rx))?;
    Ok(tx)
}

fn reclaim_loop(inner: &Inner, rx: &Receiver<u64>) {
    while let Ok(first) = rx.recv() {
        let mut ledgers = vec![first];
        let until = Instant::now() + COALESCE;
        loop {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(l) => ledgers.push(l),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        // Hold the database only for the round, so closing is never kept waiting long.
        let Ok(db) = inner.db() else { return };
        let started = Instant::now();
        let before = dir_size(&inner.dir);
        if let Err(e) = reclaim(&db, &ledgers) {
            tracing::warn!(bookie = %inner.bookie, error = %e, "reclaiming space of deleted ledgers failed");
        }
        drop(db);
        let after = dir_size(&inner.dir);
        inner.record_disk_used(after);
        tracing::info!(
            bookie = %inner.bookie,
            ledgers = ledgers.len(),
            before_bytes = before,
            after_bytes = after,
            ms = started.elapsed().as_millis() as u64,
            "reclaimed space of deleted ledgers"
        );
    }
}

fn reclaim(db: &DB, ledgers: &[u64]) -> Result<(), rocksdb::Error> {
    let entries = db.cf_handle(CF_ENTRIES).expect("created on open");
    let meta = db.cf_handle(CF_LEDGERS).expect("created on open");
    db.flush_cf(&entries)?;
    db.flush_cf(&meta)?;
    // For this compaction only, every blob file its keys point into is eligible for GC:
    // the live blobs of files shared with deleted ledgers are moved out, so those files
    // become all garbage and are deleted. (Normally only the oldest half is, which keeps
    // routine compactions from rewriting values.)
    db.set_options_cf(&entries, &[("blob_garbage_collection_age_cutoff", "1.0")])?;
    let res = compact_ranges(db, ledgers);
    db.set_options_cf(
        &entries,
        &[(
            "blob_garbage_collection_age_cutoff",
            &super::BLOB_GC_AGE_CUTOFF.to_string(),
        )],
    )?;
    res
}

fn compact_ranges(db: &DB, ledgers: &[u64]) -> Result<(), rocksdb::Error> {
    let entries = db.cf_handle(CF_ENTRIES).expect("created on open");
    let mut opts = CompactOptions::default();
    opts.set_exclusive_manual_compaction(false);
    opts.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
    let mut ids = ledgers.to_vec();
    ids.sort_unstable();
    ids.dedup();
    // Adjacent ledger ids are compacted as one range.
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j].saturating_add(1) {
            j += 1;
        }
        let start = entry_key(ids[i], 0);
        let end = entry_key(ids[j].saturating_add(1), 0);
        db.compact_range_cf_opt(&entries, Some(start), Some(end), &opts);
        i = j + 1;
    }
    Ok(())
}

/// Bytes of the files under `dir` (RocksDB keeps a flat directory; one level deep is
/// followed for safety). Unreadable entries count as 0.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: u32) -> u64 {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return 0;
        };
        rd.flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_file() => m.len(),
                Ok(m) if m.is_dir() && depth > 0 => walk(&e.path(), depth - 1),
                _ => 0,
            })
            .sum()
    }
    walk(dir, 1)
}
