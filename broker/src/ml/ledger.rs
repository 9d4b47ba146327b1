//! The managed ledger: opening (recovering the previous owner's ledger), adds, reads and
//! lifecycle. The write path lives in `writer.rs`, cursors in `cursor.rs`, trimming in
//! `trim.rs`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use magnetar_bookie::{EntryId, LedgerId, LedgerReader, Ledgers};
use magnetar_metadata::{Expect, MetadataStore};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::cache::EntryCache;
use super::cursor::ManagedCursor;
use super::error::{MlError, Result};
use super::meta::{self, LedgerInfo, MlConfig, MlMeta, RetentionPolicy};
use super::shared::Core;
use super::state::{MlStatus, State};
use super::writer::{self, Req};
use super::Position;

/// A topic's log: an ordered list of ledgers, the last one open for appends, plus cursors.
pub struct ManagedLedger {
    pub(crate) core: Arc<Core>,
    add_tx: mpsc::UnboundedSender<Req>,
    pub(crate) cursors: Mutex<BTreeMap<String, Arc<ManagedCursor>>>,
    pub(crate) cursor_lock: tokio::sync::Mutex<()>,
}

impl ManagedLedger {
    /// Opens (or creates) the managed ledger `name`: recovers and fences the previous
    /// owner's last ledger, drops empty ledgers, creates a new ledger for writes and loads
    /// the durable cursors, taking them over from any previous owner.
    pub async fn open(
        name: &str,
        ledgers: Arc<dyn Ledgers>,
        meta: Arc<dyn MetadataStore>,
        cfg: MlConfig,
    ) -> Result<Arc<ManagedLedger>> {
        let cache = EntryCache::new(cfg.cache_size_bytes);
        Self::open_with_cache(name, ledgers, meta, cfg, cache).await
    }

    /// Like [`ManagedLedger::open`], with an entry cache shared by many managed ledgers
    /// (`cfg.cache_size_bytes` is then unused).
    pub async fn open_with_cache(
        name: &str,
        ledgers: Arc<dyn Ledgers>,
        meta: Arc<dyn MetadataStore>,
        cfg: MlConfig,
        cache: Arc<EntryCache>,
    ) -> Result<Arc<ManagedLedger>> {
        let key = meta::ml_key(name);
        let (stored, version) = match meta::get_decoded::<MlMeta>(meta.as_ref(), &key).await? {
            Some((m, v)) => (m, Some(v)),
            None => (MlMeta::default(), None),
        };
        let mut list = stored.ledgers;
        if let Some(last) = list.last_mut() {
            let reader = ledgers.open(last.id, true).await?;
            let entries = reader.last_entry().map_or(0, |e| e.0 + 1);
            if entries != last.entries {
                last.size = estimate_size(reader.as_ref(), entries).await?;
                last.entries = entries;
            }
            tracing::info!(ml = name, ledger = %last.id, entries, "recovered last ledger");
        }
        let empty: Vec<LedgerId> = list
            .iter()
            .filter(|l| l.entries == 0)
            .map(|l| l.id)
            .collect();
        list.retain(|l| l.entries > 0);
        let writer = ledgers.create(cfg.ledger).await?;
        list.push(LedgerInfo {
            id: writer.id(),
            entries: 0,
            size: 0,
            created_ms: meta::now_ms(),
        });
        let new_meta = MlMeta {
            ledgers: list,
            properties: stored.properties,
        };
        let version = match meta
            .put(
                &key,
                meta::encode(&new_meta),
                meta::expect_of(version),
                None,
            )
            .await
        {
            Ok(v) => v,
            Err(e) => {
                if let Err(de) = ledgers.delete(writer.id()).await {
                    tracing::warn!(ml = name, error = %de, "could not delete unused ledger");
                }
                return Err(if e.is_bad_version() {
                    MlError::Fenced(name.to_string())
                } else {
                    e.into()
                });
            }
        };
        for id in empty {
            if let Err(e) = ledgers.delete(id).await {
                tracing::warn!(ml = name, ledger = %id, error = %e, "could not delete empty ledger");
            }
        }
        let lac = new_meta
            .ledgers
            .iter()
            .rev()
            .find(|l| l.entries > 0)
            .map(|l| Position::new(l.id.0, l.entries - 1));
        let state = State {
            ledgers: new_meta.ledgers.iter().map(|l| (l.id, *l)).collect(),
            properties: new_meta.properties,
            version: Some(version),
            writer: Some(writer),
            lac,
            status: MlStatus::Open,
        };
        let cfg_auto_trim = cfg.auto_trim;
        let core = Arc::new(Core {
            name: name.to_string(),
            ledgers,
            meta,
            cache,
            cfg,
            state: Mutex::new(state),
            lac_tx: watch::channel(lac).0,
            terminated: CancellationToken::new(),
            meta_lock: tokio::sync::Mutex::new(()),
            trim_lock: tokio::sync::Mutex::new(()),
            readers: Mutex::new(HashMap::new()),
            auto_trim: Mutex::new(cfg_auto_trim),
        });
        let cursors = ManagedCursor::load_all(&core).await?;
        let (add_tx, add_rx) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(core.clone(), add_rx));
        let ml = Arc::new(ManagedLedger {
            core,
            add_tx,
            cursors: Mutex::new(cursors),
            cursor_lock: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(flush_loop(Arc::downgrade(&ml)));
        Ok(ml)
    }

    /// This managed ledger's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Appends an entry. Its place in the log is fixed when this is called, so adds from
    /// one caller keep their order; many adds may be in flight. Resolves once the entry is
    /// durable (or with the error that stopped it).
    pub fn add(&self, data: Bytes) -> impl Future<Output = Result<Position>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let early = {
            let st = self.core.state.lock();
            if st.status != MlStatus::Open {
                Some(self.core.status_error(&st.status))
            } else {
                // Sent under the state lock so no add is queued after a Close request.
                self.add_tx
                    .send(Req::Add { data, tx })
                    .err()
                    .map(|_| MlError::Closed(self.core.name.clone()))
            }
        };
        let name = self.core.name.clone();
        async move {
            if let Some(e) = early {
                return Err(e);
            }
            rx.await.unwrap_or(Err(MlError::Closed(name)))
        }
    }

    /// Reads up to `max_entries` entries from `from` on, crossing ledger boundaries, never
    /// past the last confirmed entry. `from` may be past the end of a ledger or name a
    /// trimmed ledger: reading continues at the next existing entry.
    pub async fn read(&self, from: Position, max_entries: usize) -> Result<Vec<(Position, Bytes)>> {
        self.core.read(from, max_entries).await
    }

    /// Last confirmed entry.
    pub fn last_confirmed(&self) -> Option<Position> {
        self.core.state.lock().lac
    }

    /// A watch of the last confirmed entry, for tailing readers.
    pub fn lac_watch(&self) -> watch::Receiver<Option<Position>> {
        self.core.lac_tx.subscribe()
    }

    /// Waits until an entry at or after `pos` exists. Fails once the instance is closed,
    /// fenced or errored and no such entry exists.
    pub async fn wait_for_entry(&self, pos: Position) -> Result<()> {
        let mut rx = self.core.lac_tx.subscribe();
        tokio::select! {
            r = rx.wait_for(|lac| lac.is_some_and(|l| l >= pos)) => match r {
                Ok(_) => Ok(()),
                Err(_) => Err(MlError::Closed(self.core.name.clone())),
            },
            _ = self.core.terminated.cancelled() => {
                if self.last_confirmed().is_some_and(|l| l >= pos) {
                    Ok(())
                } else {
                    Err(self.core.status_error(&self.status()))
                }
            }
        }
    }

    /// Number of entries stored (not trimmed).
    pub fn entries_count(&self) -> u64 {
        self.core.state.lock().entries_after(None)
    }

    /// Payload bytes stored (not trimmed).
    pub fn total_size(&self) -> u64 {
        self.core
            .state
            .lock()
            .ledgers
            .values()
            .map(|l| l.size)
            .sum()
    }

    /// Position of the first stored entry (or where the first entry will be written).
    pub fn first_position(&self) -> Position {
        self.core.state.lock().first_position()
    }

    /// The position after `p` (possibly not written yet).
    pub fn next_position(&self, p: Position) -> Position {
        self.core.state.lock().next_position(p)
    }

    /// The entry before `p`, if any is stored.
    pub fn prev_position(&self, p: Position) -> Option<Position> {
        self.core.state.lock().prev_position(p)
    }

    /// The ledger list.
    pub fn ledgers_info(&self) -> Vec<LedgerInfo> {
        self.core.state.lock().ledgers.values().copied().collect()
    }

    /// Current lifecycle status.
    pub fn status(&self) -> MlStatus {
        self.core.state.lock().status.clone()
    }

    /// Cancelled once this instance is closed, fenced or errored: the broker watches it to
    /// close the topic.
    pub fn terminated(&self) -> CancellationToken {
        self.core.terminated.clone()
    }

    /// Sets (or with `None` stops) automatic trimming under a retention policy, e.g. when
    /// the namespace policy changes.
    pub fn set_auto_trim(&self, policy: Option<RetentionPolicy>) {
        *self.core.auto_trim.lock() = policy;
    }

    /// Stored properties.
    pub fn properties(&self) -> BTreeMap<String, String> {
        self.core.state.lock().properties.clone()
    }

    /// Sets a property (persisted by compare-and-set with the ledger list).
    pub async fn set_property(&self, key: &str, value: &str) -> Result<()> {
        meta::update_ledgers(&self.core, |_, p| {
            p.insert(key.to_string(), value.to_string());
        })
        .await
    }

    /// Finishes queued adds, closes the current ledger, persists the ledger list and every
    /// cursor. Later adds fail with [`MlError::Closed`]. An errored instance still persists
    /// its cursors; a fenced one writes nothing.
    pub async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let sent = {
            let mut st = self.core.state.lock();
            match st.status {
                MlStatus::Open => {
                    st.status = MlStatus::Closing;
                    self.add_tx.send(Req::Close { tx }).is_ok()
                }
                MlStatus::Errored(_) => false,
                MlStatus::Closed | MlStatus::Closing => return Ok(()),
                MlStatus::Fenced => return Err(self.core.status_error(&st.status)),
            }
        };
        let closed = if sent {
            rx.await.unwrap_or(Ok(()))
        } else {
            Ok(())
        };
        let cursors: Vec<_> = self.cursors.lock().values().cloned().collect();
        let mut flushed = Ok(());
        for c in cursors {
            if let Err(e) = c.persist().await {
                flushed = Err(e);
            }
        }
        self.core.terminate(MlStatus::Closed);
        closed.and(flushed)
    }

    /// Deletes the managed ledger: its cursors, its metadata, then every ledger.
    pub async fn delete(&self) -> Result<()> {
        match self.close().await {
            Ok(()) => {}
            Err(e) if e.is_fenced() => return Err(e),
            Err(e) => {
                tracing::warn!(ml = %self.core.name, error = %e, "close before delete failed")
            }
        }
        let cursors: Vec<String> = self.cursors.lock().keys().cloned().collect();
        for c in cursors {
            self.delete_cursor(&c).await?;
        }
        let _serial = self.core.meta_lock.lock().await;
        let (version, ids) = {
            let st = self.core.state.lock();
            (st.version, st.ledgers.keys().copied().collect::<Vec<_>>())
        };
        let expect = version.map_or(Expect::Any, Expect::Version);
        match self
            .core
            .meta
            .delete(&meta::ml_key(&self.core.name), expect)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_bad_version() => return Err(self.core.fence()),
            Err(e) => return Err(e.into()),
        }
        for id in &ids {
            if let Err(e) = self.core.ledgers.delete(*id).await {
                tracing::warn!(ml = %self.core.name, ledger = %id, error = %e, "could not delete ledger");
            }
        }
        self.core.forget_readers(&ids);
        self.core.state.lock().ledgers.clear();
        self.core.cache.clear();
        Ok(())
    }
}

/// How often a managed ledger with automatic trimming looks for ledgers to delete.
const AUTO_TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Persists dirty cursors every `cursor_persist_interval`, and trims under the automatic
/// retention policy, until the managed ledger is dropped or terminated.
async fn flush_loop(ml: Weak<ManagedLedger>) {
    let Some(interval) = ml.upgrade().map(|m| m.core.cfg.cursor_persist_interval) else {
        return;
    };
    let mut tick = tokio::time::interval(interval.max(std::time::Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_trim = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let Some(ml) = ml.upgrade() else { return };
        if ml.core.terminated.is_cancelled() {
            return;
        }
        let cursors: Vec<_> = ml.cursors.lock().values().cloned().collect();
        for c in cursors {
            if let Err(e) = c.persist().await {
                tracing::warn!(cursor = %c.name(), error = %e, "cursor persist failed");
            }
        }
        let policy = *ml.core.auto_trim.lock();
        if let Some(policy) = policy {
            if last_trim.elapsed() >= AUTO_TRIM_INTERVAL.min(interval) {
                last_trim = tokio::time::Instant::now();
                if let Err(e) = ml.trim(policy).await {
                    tracing::warn!(ml = %ml.name(), error = %e, "automatic trim failed");
                }
            }
        }
    }
}

/// Payload bytes of a recovered ledger: summed exactly for small ledgers, extrapolated from
/// the last entries for large ones.
async fn estimate_size(reader: &dyn LedgerReader, entries: u64) -> Result<u64> {
    const EXACT: u64 = 10_000;
    const SAMPLE: u64 = 1_000;
    if entries == 0 {
        return Ok(0);
    }
    let first = if entries <= EXACT {
        0
    } else {
        entries - SAMPLE
    };
    let mut sum = 0u64;
    let mut e = first;
    while e < entries {
        let last = (e + SAMPLE - 1).min(entries - 1);
        sum += reader
            .read(EntryId(e), EntryId(last))
            .await?
            .iter()
            .map(|b| b.len() as u64)
            .sum::<u64>();
        e = last + 1;
    }
    Ok(sum * entries / (entries - first))
}
