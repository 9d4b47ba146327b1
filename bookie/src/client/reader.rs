//! Reads that fail over between the replicas of each entry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::meta::LedgerMetadata;
use super::pool::BookiePool;
use crate::api::{EntryId, LedgerId};
use crate::error::LedgerError;

type Result<T> = std::result::Result<T, LedgerError>;

/// Entries read concurrently by one range read.
const READ_CONCURRENCY: usize = 64;

/// What reads need: bookie connections and the corruption counter.
#[derive(Clone)]
pub(crate) struct ReadCtx {
    pub(crate) pool: Arc<BookiePool>,
    pub(crate) ledger: u64,
    pub(crate) corrupt: Arc<AtomicU64>,
}

impl ReadCtx {
    /// Reads `first..=last` in order.
    pub(crate) async fn read(
        &self,
        m: &LedgerMetadata,
        first: u64,
        last: u64,
    ) -> Result<Vec<Bytes>> {
        if first > last {
            return Err(LedgerError::InvalidArgument(format!(
                "empty range {first}..={last}"
            )));
        }
        if m.config.ensemble == m.config.write_quorum {
            return self.read_striped_by_range(m, first, last).await;
        }
        futures::stream::iter(first..=last)
            .map(|e| self.read_entry(m, e))
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Every bookie of a fragment holds all its entries: read runs with ReadRange from one
    /// replica and fall back to per-entry failover at the first gap or bad entry.
    async fn read_striped_by_range(
        &self,
        m: &LedgerMetadata,
        first: u64,
        last: u64,
    ) -> Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity((last - first + 1).min(65_536) as usize);
        let mut cur = first;
        while cur <= last {
            let fi = m.fragment_index(cur);
            let frag_last = m.fragment_last(fi).map_or(last, |l| l.min(last));
            let ws = m.write_set(cur);
            let mut got = Vec::new();
            if frag_last > cur {
                if let Ok(run) = self
                    .pool
                    .read_range(&ws[0], self.ledger, cur, frag_last)
                    .await
                {
                    got = run;
                }
            }
            let mut advanced = false;
            for (e, data) in got {
                if e != cur {
                    break;
                }
                out.push(data);
                cur += 1;
                advanced = true;
            }
            if !advanced && cur <= last {
                out.push(self.read_entry(m, cur).await?);
                cur += 1;
            }
        }
        Ok(out)
    }

    /// Reads one entry from the first replica that returns a good copy. A second round runs
    /// if a replica was unreachable: its channel was dropped and its address is re-resolved
    /// (a restarted bookie may listen elsewhere).
    pub(crate) async fn read_entry(&self, m: &LedgerMetadata, entry: u64) -> Result<Bytes> {
        match self.read_entry_once(m, entry).await {
            Err(LedgerError::Bookie { .. }) => self.read_entry_once(m, entry).await,
            other => other,
        }
    }

    async fn read_entry_once(&self, m: &LedgerMetadata, entry: u64) -> Result<Bytes> {
        let mut last_err = None;
        for b in m.write_set(entry) {
            match self.pool.read_entry(&b, self.ledger, entry).await {
                Ok(d) => return Ok(d),
                Err(e @ LedgerError::Corrupt { .. }) => {
                    self.corrupt.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("magnetar_bookie_client_corrupt_reads_total").increment(1);
                    tracing::error!(ledger = self.ledger, entry, bookie = %b, "corrupt replica; trying another");
                    last_err = Some(e);
                }
                Err(e) => {
                    tracing::debug!(ledger = self.ledger, entry, bookie = %b, error = %e, "read failed; trying another replica");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or(LedgerError::NoSuchEntry {
            ledger: self.ledger,
            entry,
        }))
    }
}

/// A reader over a ledger's entries up to a fixed last entry.
pub(crate) struct Reader {
    pub(crate) meta: LedgerMetadata,
    pub(crate) last: Option<u64>,
    pub(crate) reads: ReadCtx,
}

#[async_trait::async_trait]
impl crate::api::LedgerReader for Reader {
    fn id(&self) -> LedgerId {
        LedgerId(self.reads.ledger)
    }

    fn last_entry(&self) -> Option<EntryId> {
        self.last.map(EntryId)
    }

    async fn read(&self, first: EntryId, last: EntryId) -> Result<Vec<Bytes>> {
        if self.last.is_none_or(|l| last.0 > l) {
            return Err(LedgerError::NoSuchEntry {
                ledger: self.reads.ledger,
                entry: last.0,
            });
        }
        self.reads.read(&self.meta, first.0, last.0).await
    }
}
