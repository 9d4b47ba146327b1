//! Open-with-recovery: mark the ledger in recovery, fence it on enough bookies that its old
//! writer can no longer reach Qa, recover entries from the highest LAC forward, rewrite them
//! to Qa bookies, and close by CAS. Racing recoverers converge on whichever close wins.

use std::sync::Arc;

use futures::future::join_all;
use magnetar_metadata::Version;

use super::meta::{self, LedgerMetadata, LedgerStatus};
use super::pool::BookiePool;
use super::reader::ReadCtx;
use super::writer::WriterCore;
use crate::error::LedgerError;

type Result<T> = std::result::Result<T, LedgerError>;

const MAX_ATTEMPTS: usize = 20;

/// Ends the recovery writer's streams however recovery ends.
struct AbandonOnDrop(Arc<WriterCore>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

/// Outcome of looking for one entry during recovery.
enum Probe {
    Found(bytes::Bytes),
    /// Enough replicas lack it that it cannot have been acknowledged.
    Absent,
}

/// Recovers and closes ledger `id`; returns its final metadata.
pub(crate) async fn recover(
    pool: &Arc<BookiePool>,
    reads: &ReadCtx,
    id: u64,
) -> Result<LedgerMetadata> {
    let md = pool.metadata().clone();
    let (m, version) = mark_in_recovery(pool, id).await?;
    if m.state == LedgerStatus::Closed {
        return Ok(m);
    }
    let cfg = m.config;
    let last_frag = m.ensembles.last().expect("ledger has a fragment").clone();
    let fenced = join_all(last_frag.bookies.iter().map(|b| pool.fence(b, id))).await;
    let mut ok = vec![false; cfg.ensemble];
    let mut max_lac: Option<u64> = None;
    for (i, r) in fenced.iter().enumerate() {
        match r {
            Ok(lac) => {
                ok[i] = true;
                max_lac = max_lac.max(*lac);
            }
            Err(e) => {
                tracing::warn!(ledger = id, bookie = %last_frag.bookies[i], error = %e, "fence failed")
            }
        }
    }
    // Every write set needs Qw - Qa + 1 fenced bookies so the old writer can't reach Qa.
    let need = cfg.write_quorum - cfg.ack_quorum + 1;
    for start in 0..cfg.ensemble {
        let n = (0..cfg.write_quorum)
            .filter(|i| ok[(start + i) % cfg.ensemble])
            .count();
        if n < need {
            return Err(LedgerError::NotEnoughBookies {
                needed: need,
                available: n,
            });
        }
    }
    // Entries before the last fragment were all acknowledged (a fragment starts at LAC+1), so
    // recovery never needs to rewrite into an older fragment.
    let start = max_lac.map_or(0, |l| l + 1).max(last_frag.first_entry);
    tracing::info!(ledger = id, ?max_lac, "ledger fenced; recovering entries");
    let writer = WriterCore::new(pool.clone(), id, m.clone(), version, start, true);
    let _guard = AbandonOnDrop(writer.clone());
    let mut adds = Vec::new();
    let mut e = start;
    loop {
        let (cur, _) = writer.metadata();
        match probe(pool, reads, &cur, e).await? {
            Probe::Found(data) => adds.push(writer.add(data)),
            Probe::Absent => break,
        }
        e += 1;
    }
    for r in join_all(adds).await {
        r?;
    }
    writer.drain().await?;
    let last_entry = e.checked_sub(1);
    let (mut cur, mut v) = writer.metadata();
    writer.seal();
    for _ in 0..MAX_ATTEMPTS {
        if cur.state == LedgerStatus::Closed {
            return Ok(cur);
        }
        let mut next = cur.clone();
        next.state = LedgerStatus::Closed;
        next.last_entry = last_entry;
        if meta::cas(md.as_ref(), id, &next, v).await?.is_some() {
            tracing::info!(
                ledger = id,
                ?last_entry,
                recovered = e - start,
                "ledger recovered and closed"
            );
            metrics::counter!("magnetar_bookie_client_recoveries_total").increment(1);
            return Ok(next);
        }
        (cur, v) = meta::load(md.as_ref(), id).await?;
    }
    Err(LedgerError::Storage(format!(
        "could not close ledger {id} after recovery"
    )))
}

/// CAS the state to InRecovery (rewriting it even if already so, which makes any concurrent
/// ensemble change by the old writer fail).
async fn mark_in_recovery(pool: &BookiePool, id: u64) -> Result<(LedgerMetadata, Version)> {
    let md = pool.metadata();
    for _ in 0..MAX_ATTEMPTS {
        let (m, v) = meta::load(md.as_ref(), id).await?;
        if m.state == LedgerStatus::Closed {
            return Ok((m, v));
        }
        let mut next = m;
        next.state = LedgerStatus::InRecovery;
        if let Some(nv) = meta::cas(md.as_ref(), id, &next, v).await? {
            return Ok((next, nv));
        }
    }
    Err(LedgerError::Storage(format!(
        "could not start recovery of ledger {id}"
    )))
}

/// Looks for `entry` on every bookie of its write set.
async fn probe(
    pool: &BookiePool,
    reads: &ReadCtx,
    m: &LedgerMetadata,
    entry: u64,
) -> Result<Probe> {
    let ws = m.write_set(entry);
    let results = join_all(ws.iter().map(|b| pool.read_entry(b, reads.ledger, entry))).await;
    let mut absent = 0;
    let mut last_err = None;
    for (b, r) in ws.iter().zip(results) {
        match r {
            Ok(d) => return Ok(Probe::Found(d)),
            Err(LedgerError::NoSuchEntry { .. } | LedgerError::NoSuchLedger(_)) => absent += 1,
            Err(e) => {
                if matches!(e, LedgerError::Corrupt { .. }) {
                    reads
                        .corrupt
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tracing::warn!(ledger = reads.ledger, entry, bookie = %b, error = %e, "recovery read failed");
                last_err = Some(e);
            }
        }
    }
    if absent > m.config.write_quorum - m.config.ack_quorum {
        Ok(Probe::Absent)
    } else {
        Err(last_err.unwrap_or(LedgerError::NoSuchEntry {
            ledger: reads.ledger,
            entry,
        }))
    }
}
