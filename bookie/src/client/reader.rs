//! Reads that fail over between the replicas of each entry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::meta::LedgerMetadata;
use super::pool::BookiePool;
use crate::api::{EntryId, LedgerId};
use crate::error::LedgerError;

type Result<T> = std::result::Result<T, LedgerError>;

/// Per-entry failover reads one run of a range read keeps in flight.
pub(crate) const READ_CONCURRENCY: usize = 64;

/// What reads need: bookie connections and the corruption counter.
#[derive(Clone)]
pub(crate) struct ReadCtx {
    pub(crate) pool: Arc<BookiePool>,
    pub(crate) ledger: u64,
    pub(crate) corrupt: Arc<AtomicU64>,
}

impl ReadCtx {
    /// Reads `first..=last` in order: one entry with per-entry failover, a longer range with
    /// parallel strided range reads (see [`super::batch`]).
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
        if first == last {
            return Ok(vec![self.read_entry(m, first).await?]);
        }
        self.read_batched(m, first, last).await
    }

    /// Counts and logs a corrupt replica (`entry` unknown when a whole range read failed).
    pub(crate) fn report_corrupt(&self, bookie: &str, entry: Option<u64>) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("magnetar_bookie_client_corrupt_reads_total").increment(1);
        tracing::error!(
            ledger = self.ledger,
            entry,
            bookie,
            "corrupt replica; trying another"
        );
    }

    /// Reads one entry from the first replica that returns a good copy. A second round runs
    /// if a replica was unreachable: its channel was dropped and its address is re-resolved
    /// (a restarted bookie may listen elsewhere).
    pub(crate) async fn read_entry(&self, m: &LedgerMetadata, entry: u64) -> Result<Bytes> {
        self.read_entry_skipping(m, entry, None).await
    }

    /// [`Self::read_entry`], not asking `skip`, a replica already found to hold it corrupt
    /// (and already reported).
    pub(crate) async fn read_entry_skipping(
        &self,
        m: &LedgerMetadata,
        entry: u64,
        skip: Option<&str>,
    ) -> Result<Bytes> {
        match self.read_entry_once(m, entry, skip).await {
            Err(LedgerError::Bookie { .. }) => self.read_entry_once(m, entry, skip).await,
            other => other,
        }
    }

    async fn read_entry_once(
        &self,
        m: &LedgerMetadata,
        entry: u64,
        skip: Option<&str>,
    ) -> Result<Bytes> {
        let mut last_err = skip.map(|b| LedgerError::Corrupt {
            ledger: self.ledger,
            entry,
            bookie: b.to_string(),
        });
        for b in m.write_set(entry) {
            if skip == Some(b.as_str()) {
                continue;
            }
            match self.pool.read_entry(&b, self.ledger, entry).await {
                Ok(d) => return Ok(d),
                Err(e @ LedgerError::Corrupt { .. }) => {
                    self.report_corrupt(&b, Some(entry));
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
