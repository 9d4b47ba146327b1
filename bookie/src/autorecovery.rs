//! Auto-recovery: one worker at a time (holding the ephemeral lock `/locks/auto-recovery`)
//! finds ledger fragments with a copy on a bookie whose registration has been gone longer
//! than a grace period, copies those entries from surviving replicas to a replacement
//! bookie, and records the replacement in the ledger's metadata by CAS, until every entry
//! has Qw copies again.
//!
//! The last fragment of a ledger that is still open is left to its writer (which changes
//! ensemble on failure); everything else (closed ledgers, earlier fragments) is repaired here.
//!
//! The active worker watches `/bookies/`: a registration that disappears triggers a scan at
//! once, and the worker wakes again when that bookie's grace period ends; a slow poll
//! (`scan_interval`) remains as a fallback. Progress is logged after every scan that found
//! work and exported as `magnetar_bookie_autorecovery_*` metrics (entries copied, fragments
//! repaired and remaining, missing bookies, scans, failures).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use magnetar_metadata::{list_all, Expect, MetadataStore, SessionKeeper, WatchEvent, WatchStream};
use magnetar_proto::bookie as pb;
use tokio_util::sync::CancellationToken;

use crate::api::LedgerId;
use crate::client::meta::{self, ledger_id_of, LedgerMetadata, LedgerStatus, LEDGERS_PREFIX};
use crate::client::pool::BookiePool;
use crate::error::LedgerError;
use crate::registration::{list_bookies, BOOKIES_PREFIX};
use crate::wire::{from_status, lac_to_wire};

type Result<T> = std::result::Result<T, LedgerError>;

/// Key of the auto-recovery worker lock.
pub const LOCK_KEY: &str = "/locks/auto-recovery";
/// Entries copied per stream round-trip batch.
const COPY_BATCH: usize = 512;
/// Longest wait before retrying after a failed scan or re-replication.
const RETRY_DELAY: Duration = Duration::from_secs(2);
/// Longest wait while a missing bookie is in the last fragment of an open ledger (its writer
/// may close the ledger at any time, which `/bookies/` events do not show).
const OPEN_LEDGER_RECHECK: Duration = Duration::from_secs(5);

/// Auto-recovery settings.
#[derive(Debug, Clone)]
pub struct AutoRecoveryConfig {
    /// How long a bookie's registration must be gone before its fragments are re-replicated.
    pub grace: Duration,
    /// Fallback poll: longest time between two scans (scans also follow `/bookies/`
    /// changes and the end of grace periods).
    pub scan_interval: Duration,
    /// TTL of the lock session.
    pub session_ttl: Duration,
}

impl Default for AutoRecoveryConfig {
    fn default() -> Self {
        AutoRecoveryConfig {
            grace: Duration::from_secs(30),
            scan_interval: Duration::from_secs(30),
            session_ttl: Duration::from_secs(10),
        }
    }
}

/// Ledgers with a fragment on a bookie that is not registered now.
pub async fn under_replicated(metadata: &Arc<dyn MetadataStore>) -> Result<Vec<LedgerId>> {
    let live: HashSet<String> = list_bookies(metadata.as_ref())
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut out = Vec::new();
    for (key, v) in list_all(metadata.as_ref(), LEDGERS_PREFIX).await? {
        let (Some(id), Ok(m)) = (
            ledger_id_of(&key),
            serde_json::from_slice::<LedgerMetadata>(&v.value),
        ) else {
            continue;
        };
        if m.ensembles
            .iter()
            .any(|f| f.bookies.iter().any(|b| !live.contains(b)))
        {
            out.push(LedgerId(id));
        }
    }
    Ok(out)
}

/// Runs the auto-recovery worker until `shutdown` fires; only the holder of the lock works.
pub async fn run(
    metadata: Arc<dyn MetadataStore>,
    config: AutoRecoveryConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    let pool = BookiePool::new(metadata.clone());
    // A crashed holder's lock lasts one session TTL; try again about that often.
    let lock_retry = config.session_ttl.min(config.scan_interval);
    while !shutdown.is_cancelled() {
        let keeper = match SessionKeeper::start(metadata.clone(), config.session_ttl).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "auto-recovery: cannot open session");
                sleep_or(&shutdown, lock_retry).await;
                continue;
            }
        };
        match metadata
            .put(
                LOCK_KEY,
                "auto-recovery".into(),
                Expect::Absent,
                Some(keeper.id()),
            )
            .await
        {
            Ok(_) => {}
            Err(e) => {
                if !e.is_bad_version() {
                    tracing::warn!(error = %e, "auto-recovery: lock attempt failed");
                }
                let _ = keeper.close().await;
                sleep_or(&shutdown, lock_retry).await;
                continue;
            }
        }
        tracing::info!("auto-recovery: lock acquired; this worker is active");
        metrics::gauge!("magnetar_bookie_autorecovery_active").set(1.0);
        let lost = keeper.lost();
        let mut worker = Worker {
            pool: pool.clone(),
            config: config.clone(),
            missing_since: HashMap::new(),
            pending: 0,
        };
        let mut watch: Option<WatchStream> = None;
        'active: loop {
            if watch.is_none() {
                watch = open_watch(metadata.as_ref()).await;
            }
            let wait = match worker.scan(&lost).await {
                Ok(outcome) => outcome.next_wait(&config),
                Err(e) => {
                    metrics::counter!("magnetar_bookie_autorecovery_failures_total").increment(1);
                    tracing::warn!(error = %e, "auto-recovery scan failed");
                    RETRY_DELAY.min(config.scan_interval)
                }
            };
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        metrics::gauge!("magnetar_bookie_autorecovery_active").set(0.0);
                        let _ = keeper.close().await;
                        return Ok(());
                    }
                    _ = lost.cancelled() => {
                        tracing::warn!("auto-recovery: lock session lost");
                        metrics::gauge!("magnetar_bookie_autorecovery_active").set(0.0);
                        break 'active;
                    }
                    _ = &mut sleep => break,
                    ev = next_event(&mut watch) => match ev {
                        Some(Ok(WatchEvent::Delete { key, .. })) => {
                            tracing::info!(bookie = %key.trim_start_matches(BOOKIES_PREFIX), "auto-recovery: bookie registration gone; scanning");
                            break;
                        }
                        Some(Ok(WatchEvent::Put { .. })) => {
                            // A (re)registered bookie may be a replacement target or the
                            // lost one returning: only worth a scan while work is pending.
                            if worker.pending > 0 {
                                break;
                            }
                        }
                        Some(Ok(WatchEvent::Reset { .. })) => {
                            watch = None;
                            break;
                        }
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "auto-recovery: bookie watch failed; polling");
                            watch = None;
                        }
                        None => watch = None,
                    },
                }
            }
        }
    }
    Ok(())
}

/// A watch on `/bookies/` from the current revision (`None` if the store cannot watch now;
/// the fallback poll covers that).
async fn open_watch(metadata: &dyn MetadataStore) -> Option<WatchStream> {
    let rev = match metadata.revision().await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "auto-recovery: no revision for the bookie watch");
            return None;
        }
    };
    match metadata.watch(BOOKIES_PREFIX, rev).await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::debug!(error = %e, "auto-recovery: cannot watch bookies; polling");
            None
        }
    }
}

/// The next watch event, or never if there is no watch.
async fn next_event(
    watch: &mut Option<WatchStream>,
) -> Option<std::result::Result<WatchEvent, magnetar_metadata::MetadataError>> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// What one scan found.
#[derive(Debug, Default)]
struct ScanOutcome {
    /// Earliest end of a grace period still running.
    grace_ends: Option<Instant>,
    /// A re-replication failed (retry soon).
    failed: bool,
    /// A missing bookie is in the open last fragment of a ledger.
    open_waiting: bool,
}

impl ScanOutcome {
    /// How long to sleep before the next scan (absent watch events).
    fn next_wait(&self, config: &AutoRecoveryConfig) -> Duration {
        let mut wait = config.scan_interval;
        if let Some(t) = self.grace_ends {
            wait =
                wait.min(t.saturating_duration_since(Instant::now()) + Duration::from_millis(50));
        }
        if self.failed {
            wait = wait.min(RETRY_DELAY);
        }
        if self.open_waiting {
            wait = wait.min(OPEN_LEDGER_RECHECK);
        }
        wait
    }
}

async fn sleep_or(shutdown: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

struct Worker {
    pool: Arc<BookiePool>,
    config: AutoRecoveryConfig,
    missing_since: HashMap<String, Instant>,
    /// Fragments with a copy on a missing bookie after the last scan.
    pending: u64,
}

impl Worker {
    async fn scan(&mut self, lost: &CancellationToken) -> Result<ScanOutcome> {
        metrics::counter!("magnetar_bookie_autorecovery_scans_total").increment(1);
        let md = self.pool.metadata().clone();
        let bookies = list_bookies(md.as_ref()).await?;
        let live: HashSet<String> = bookies.iter().map(|(id, _)| id.clone()).collect();
        self.missing_since.retain(|b, _| !live.contains(b));
        let mut out = ScanOutcome::default();
        let (mut pending, mut repaired, mut copied_now) = (0u64, 0u64, 0u64);
        for (key, v) in list_all(md.as_ref(), LEDGERS_PREFIX).await? {
            if lost.is_cancelled() {
                return Ok(out);
            }
            let (Some(id), Ok(m)) = (
                ledger_id_of(&key),
                serde_json::from_slice::<LedgerMetadata>(&v.value),
            ) else {
                continue;
            };
            for (i, f) in m.ensembles.iter().enumerate() {
                for b in &f.bookies {
                    if live.contains(b) {
                        continue;
                    }
                    let since = *self
                        .missing_since
                        .entry(b.clone())
                        .or_insert_with(Instant::now);
                    let last_open = i + 1 == m.ensembles.len() && m.state != LedgerStatus::Closed;
                    pending += 1;
                    if last_open {
                        out.open_waiting = true;
                        continue;
                    }
                    if since.elapsed() < self.config.grace {
                        let end = since + self.config.grace;
                        out.grace_ends = Some(out.grace_ends.map_or(end, |t| t.min(end)));
                        continue;
                    }
                    match self.replicate(id, i, b, &live).await {
                        Ok(n) => {
                            pending -= 1;
                            repaired += 1;
                            copied_now += n;
                            metrics::counter!("magnetar_bookie_autorecovery_fragments_total")
                                .increment(1);
                            tracing::info!(ledger = id, fragment = i, lost_bookie = %b, entries = n, "fragment re-replicated");
                        }
                        Err(e) => {
                            out.failed = true;
                            metrics::counter!("magnetar_bookie_autorecovery_failures_total")
                                .increment(1);
                            tracing::warn!(ledger = id, fragment = i, lost_bookie = %b, error = %e, "re-replication failed; will retry")
                        }
                    }
                }
            }
        }
        metrics::gauge!("magnetar_bookie_autorecovery_underreplicated_fragments")
            .set(pending as f64);
        metrics::gauge!("magnetar_bookie_autorecovery_missing_bookies")
            .set(self.missing_since.len() as f64);
        if pending > 0 || repaired > 0 {
            tracing::info!(
                fragments_repaired = repaired,
                entries_copied = copied_now,
                fragments_remaining = pending,
                missing_bookies = self.missing_since.len(),
                "auto-recovery progress"
            );
        }
        self.pending = pending;
        Ok(out)
    }

    /// Copies the entries of fragment `fi` of ledger `id` that `lost` held to a new bookie,
    /// then swaps it into the fragment by CAS. Returns the entries copied.
    async fn replicate(
        &self,
        id: u64,
        fi: usize,
        lost: &str,
        live: &HashSet<String>,
    ) -> Result<u64> {
        let md = self.pool.metadata().clone();
        let (m, version) = meta::load(md.as_ref(), id).await?;
        let frag = m
            .ensembles
            .get(fi)
            .cloned()
            .ok_or(LedgerError::NoSuchLedger(id))?;
        let Some(pos) = frag.bookies.iter().position(|b| b == lost) else {
            return Ok(0);
        };
        let writable = self.pool.writable().await?;
        let mut candidates: Vec<String> = writable
            .into_iter()
            .map(|(b, _)| b)
            .filter(|b| live.contains(b) && !frag.bookies.contains(b))
            .collect();
        rand::seq::SliceRandom::shuffle(candidates.as_mut_slice(), &mut rand::thread_rng());
        let target = candidates.pop().ok_or(LedgerError::NotEnoughBookies {
            needed: m.config.ensemble,
            available: m.config.ensemble - 1,
        })?;
        let reads = crate::client::reader_ctx(self.pool.clone(), id, Arc::new(AtomicU64::new(0)));
        let mut copied = 0u64;
        if let Some(last) = m.fragment_last(fi) {
            let e_sz = m.config.ensemble as u64;
            let qw = m.config.write_quorum as u64;
            let holds = |e: u64| (pos as u64 + e_sz - e % e_sz) % e_sz < qw;
            let entries: Vec<u64> = (frag.first_entry..=last).filter(|e| holds(*e)).collect();
            let survivors: Vec<String> = frag
                .bookies
                .iter()
                .filter(|b| b.as_str() != lost && live.contains(*b))
                .cloned()
                .collect();
            for chunk in entries.chunks(COPY_BATCH) {
                let bulk = bulk_read(&self.pool, &survivors, id, chunk).await;
                let data: Vec<(u64, bytes::Bytes)> = futures::stream::iter(chunk.iter().copied())
                    .map(|e| {
                        let reads = reads.clone();
                        let m = &m;
                        let found = bulk.get(&e).cloned();
                        async move {
                            match found {
                                Some(d) => Ok((e, d)),
                                // Not in a survivor's range reply: read with failover.
                                None => reads.read_entry(m, e).await.map(|d| (e, d)),
                            }
                        }
                    })
                    .buffered(32)
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .collect::<Result<_>>()?;
                copy_to(&self.pool, &target, id, m.last_entry, data).await?;
                copied += chunk.len() as u64;
                metrics::counter!("magnetar_bookie_autorecovery_entries_copied_total")
                    .increment(chunk.len() as u64);
                tracing::debug!(ledger = id, fragment = fi, to = %target, copied, of = entries.len(), "re-replication progress");
            }
        }
        let mut next = m.clone();
        next.ensembles[fi].bookies[pos] = target.clone();
        if meta::cas(md.as_ref(), id, &next, version).await?.is_none() {
            return Err(LedgerError::Storage(format!(
                "metadata of ledger {id} changed during re-replication"
            )));
        }
        tracing::info!(ledger = id, fragment = fi, from = lost, to = %target, "replica replaced");
        Ok(copied)
    }
}

/// The entries of `wanted` (ascending) that range reads from `survivors` return; entries
/// missing here (bookie down, corrupt, not held) are left to per-entry failover reads.
async fn bulk_read(
    pool: &BookiePool,
    survivors: &[String],
    ledger: u64,
    wanted: &[u64],
) -> HashMap<u64, bytes::Bytes> {
    let (Some(&lo), Some(&hi)) = (wanted.first(), wanted.last()) else {
        return HashMap::new();
    };
    let want: HashSet<u64> = wanted.iter().copied().collect();
    let want = &want;
    let per_bookie = futures::future::join_all(survivors.iter().map(|b| async move {
        let mut out = Vec::new();
        let mut from = lo;
        // Each reply is capped in bytes; continue after its last entry (bounded).
        for _ in 0..=wanted.len() {
            match pool.read_range(b, ledger, from, hi).await {
                Ok(v) => {
                    let Some(last) = v.last().map(|(e, _)| *e) else {
                        break;
                    };
                    out.extend(v.into_iter().filter(|(e, _)| want.contains(e)));
                    if last >= hi {
                        break;
                    }
                    from = last + 1;
                }
                Err(e) => {
                    tracing::debug!(bookie = %b, ledger, error = %e, "range read for re-replication failed");
                    break;
                }
            }
        }
        out
    }))
    .await;
    let mut got = HashMap::with_capacity(wanted.len());
    for (e, d) in per_bookie.into_iter().flatten() {
        got.entry(e).or_insert(d);
    }
    got
}

/// Writes entries to `bookie` as recovery adds over one stream; all must succeed.
async fn copy_to(
    pool: &BookiePool,
    bookie: &str,
    ledger: u64,
    lac: Option<u64>,
    entries: Vec<(u64, bytes::Bytes)>,
) -> Result<()> {
    let n = entries.len();
    let reqs: Vec<pb::AddRequest> = entries
        .into_iter()
        .map(|(e, data)| pb::AddRequest {
            ledger_id: ledger,
            entry_id: e,
            crc32c: crc32c::crc32c(&data),
            data,
            lac: lac_to_wire(lac),
            recovery: true,
        })
        .collect();
    let mut client = pool.client(bookie).await?;
    let bookie_err = |m: String| LedgerError::Bookie {
        bookie: bookie.to_string(),
        message: m,
    };
    let mut resp = client
        .add_entries(futures::stream::iter(
            reqs.chunks(64)
                .map(|c| pb::AddBatch { adds: c.to_vec() })
                .collect::<Vec<_>>(),
        ))
        .await
        .map_err(|s| bookie_err(s.to_string()))?
        .into_inner();
    let mut ok = 0;
    while let Some(batch) = resp.next().await {
        for r in batch.map_err(|s| bookie_err(s.to_string()))?.responses {
            from_status(r.status, r.message, bookie, ledger, r.entry_id)?;
            ok += 1;
        }
    }
    if ok != n {
        return Err(bookie_err(format!("only {ok} of {n} copies acknowledged")));
    }
    Ok(())
}
