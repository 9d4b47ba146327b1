//! The shared core of a managed ledger (state, cache, metadata handles) and the read path
//! over its ledgers.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use magnetar_bookie::{EntryId, LedgerId, LedgerReader, Ledgers};
use magnetar_metadata::MetadataStore;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::cache::EntryCache;
use super::error::{MlError, Result};
use super::meta::{MlConfig, RetentionPolicy};
use super::state::{MlStatus, State};
use super::Position;

/// Shared core of a managed ledger, used by the writer task, cursors and readers.
pub(crate) struct Core {
    pub name: String,
    pub ledgers: Arc<dyn Ledgers>,
    pub meta: Arc<dyn MetadataStore>,
    pub cfg: MlConfig,
    pub state: Mutex<State>,
    pub cache: Arc<EntryCache>,
    pub lac_tx: watch::Sender<Option<Position>>,
    /// Cancelled once the instance is closed, fenced or errored.
    pub terminated: CancellationToken,
    /// Held by trimming from its cursor snapshot to the ledger deletion, and by anything
    /// that may move a cursor backwards (reset, new cursors), so no ledger is deleted that
    /// such a cursor still needs.
    pub trim_lock: tokio::sync::Mutex<()>,
    /// Serializes ledger-list compare-and-sets.
    pub meta_lock: tokio::sync::Mutex<()>,
    pub readers: Mutex<HashMap<LedgerId, Arc<dyn LedgerReader>>>,
    /// Retention policy of automatic trimming (`None`: only explicit `trim` calls).
    pub auto_trim: Mutex<Option<RetentionPolicy>>,
}

impl Core {
    /// Marks this instance fenced and returns the error to report.
    pub fn fence(&self) -> MlError {
        self.terminate(MlStatus::Fenced);
        MlError::Fenced(self.name.clone())
    }

    /// Moves to a terminal status (the first one wins) and wakes every waiter.
    pub fn terminate(&self, status: MlStatus) {
        {
            let mut st = self.state.lock();
            if matches!(st.status, MlStatus::Open | MlStatus::Closing) {
                st.status = status;
            }
        }
        self.terminated.cancel();
    }

    /// The error describing a non-open status.
    pub fn status_error(&self, status: &MlStatus) -> MlError {
        match status {
            MlStatus::Fenced => MlError::Fenced(self.name.clone()),
            MlStatus::Errored(reason) => MlError::Errored {
                name: self.name.clone(),
                reason: reason.clone(),
            },
            MlStatus::Open | MlStatus::Closing | MlStatus::Closed => {
                MlError::Closed(self.name.clone())
            }
        }
    }

    /// See [`ManagedLedger::read`].
    pub async fn read(&self, from: Position, max_entries: usize) -> Result<Vec<(Position, Bytes)>> {
        let plan = self.state.lock().read_plan(from, max_entries);
        let mut out = Vec::new();
        for (id, first, last) in plan {
            let data = match self.read_ledger(id, first, last).await {
                Ok(data) => data,
                // Trimmed while we read: those entries are gone, continue with the rest.
                Err(_) if !self.state.lock().ledgers.contains_key(&id) => continue,
                Err(e) => return Err(e),
            };
            out.extend(
                data.into_iter()
                    .enumerate()
                    .map(|(i, b)| (Position::new(id.0, first + i as u64), b)),
            );
        }
        Ok(out)
    }

    /// Reads `first..=last` of one ledger, from the cache where possible.
    async fn read_ledger(&self, id: LedgerId, first: u64, last: u64) -> Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity((last - first + 1) as usize);
        let mut e = first;
        while e <= last {
            match self.cache.get(&Position::new(id.0, e)) {
                Some(b) => out.push(b),
                None => break,
            }
            e += 1;
        }
        if e > last {
            return Ok(out);
        }
        let writer = self.state.lock().writer.clone().filter(|w| w.id() == id);
        let rest = match writer {
            Some(w) => w.read(EntryId(e), EntryId(last)).await?,
            None => {
                self.reader(id, last)
                    .await?
                    .read(EntryId(e), EntryId(last))
                    .await?
            }
        };
        out.extend(rest);
        Ok(out)
    }

    /// A reader of a ledger that can see `last`.
    async fn reader(&self, id: LedgerId, last: u64) -> Result<Arc<dyn LedgerReader>> {
        let cached = self.readers.lock().get(&id).cloned();
        if let Some(r) = cached.filter(|r| r.last_entry().is_some_and(|l| l.0 >= last)) {
            return Ok(r);
        }
        let r = self.ledgers.open(id, false).await?;
        self.readers.lock().insert(id, r.clone());
        Ok(r)
    }

    /// Forgets cached readers of deleted ledgers.
    pub fn forget_readers(&self, ids: &[LedgerId]) {
        let mut readers = self.readers.lock();
        for id in ids {
            readers.remove(id);
        }
    }
}
