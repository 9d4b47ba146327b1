//! The single writer of a ledger: pipelined quorum adds over one persistent stream per
//! bookie, in-order acknowledgement, and ensemble changes when a bookie fails.
//!
//! Entry `e` goes to the Qw bookies from ensemble index `e % E` of the last fragment. It is
//! acknowledged once Qa of them have synced it and every earlier entry is acknowledged. When a
//! bookie of the current ensemble fails, completions pause, a replacement is chosen, a new
//! fragment starting at LAC+1 is recorded by CAS, and every unacknowledged entry is resent to
//! the bookies of its new write set that have not acknowledged it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use magnetar_metadata::Version;
use magnetar_proto::bookie as pb;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, Notify};

use super::meta::{self, LedgerMetadata, LedgerStatus};
use super::pool::BookiePool;
use crate::api::{EntryId, LedgerConfig, LedgerId};
use crate::error::LedgerError;
use crate::wire::{lac_to_wire, MAX_ENTRY_BYTES};

type Result<T> = std::result::Result<T, LedgerError>;

use super::ensemble::MAX_CAS_ATTEMPTS;

/// Why a writer stopped; every later add fails with the matching error.
#[derive(Debug, Clone)]
pub(super) enum Failure {
    Fenced,
    Closed,
    NotEnoughBookies { needed: usize, available: usize },
    Other(String),
}

impl Failure {
    fn error(&self, ledger: u64) -> LedgerError {
        match self {
            Failure::Fenced => LedgerError::Fenced(ledger),
            Failure::Closed => LedgerError::Closed(ledger),
            Failure::NotEnoughBookies { needed, available } => LedgerError::NotEnoughBookies {
                needed: *needed,
                available: *available,
            },
            Failure::Other(m) => LedgerError::Storage(m.clone()),
        }
    }
}

pub(super) struct Pending {
    pub(super) entry: u64,
    pub(super) data: Bytes,
    pub(super) crc: u32,
    pub(super) acks: Vec<String>,
    pub(super) sent: Vec<String>,
    pub(super) since: Instant,
    pub(super) tx: Option<oneshot::Sender<Result<EntryId>>>,
}

pub(super) struct State {
    pub(super) meta: LedgerMetadata,
    pub(super) version: Version,
    pub(super) next_entry: u64,
    pub(super) pending: VecDeque<Pending>,
    pub(super) failure: Option<Failure>,
    pub(super) changing: bool,
    pub(super) failed_bookies: Vec<String>,
    /// Every bookie ever replaced; never chosen again by this writer.
    pub(super) replaced: Vec<String>,
    pub(super) streams: HashMap<String, (u64, mpsc::UnboundedSender<pb::AddRequest>)>,
    pub(super) stream_gen: u64,
}

/// Shared core of a writer; the response tasks and the ensemble-change task hold it too.
pub(crate) struct WriterCore {
    pub(super) id: u64,
    pub(super) cfg: LedgerConfig,
    pub(super) pool: Arc<BookiePool>,
    /// Recovery writer: adds bypass fencing; metadata must stay `InRecovery`.
    pub(super) recovery: bool,
    pub(super) state: Mutex<State>,
    lac: AtomicI64,
    drained: Notify,
}

impl WriterCore {
    pub(crate) fn new(
        pool: Arc<BookiePool>,
        id: u64,
        meta: LedgerMetadata,
        version: Version,
        next_entry: u64,
        recovery: bool,
    ) -> Arc<Self> {
        let core = Arc::new(WriterCore {
            id,
            cfg: meta.config,
            pool,
            recovery,
            lac: AtomicI64::new(next_entry as i64 - 1),
            state: Mutex::new(State {
                meta,
                version,
                next_entry,
                pending: VecDeque::new(),
                failure: None,
                changing: false,
                failed_bookies: Vec::new(),
                replaced: Vec::new(),
                streams: HashMap::new(),
                stream_gen: 0,
            }),
            drained: Notify::new(),
        });
        tokio::spawn(super::ensemble::watchdog(Arc::downgrade(&core)));
        core
    }

    pub(crate) fn ledger(&self) -> u64 {
        self.id
    }

    pub(crate) fn lac(&self) -> Option<u64> {
        u64::try_from(self.lac.load(Ordering::SeqCst)).ok()
    }

    /// Current metadata and its version.
    pub(crate) fn metadata(&self) -> (LedgerMetadata, Version) {
        let st = self.state.lock();
        (st.meta.clone(), st.version)
    }

    /// Queues an add; the id is fixed now.
    pub(crate) fn add(self: &Arc<Self>, data: Bytes) -> BoxFuture<'static, Result<EntryId>> {
        if data.len() > MAX_ENTRY_BYTES {
            let e = LedgerError::TooLarge {
                size: data.len(),
                limit: MAX_ENTRY_BYTES,
            };
            return futures::future::ready(Err(e)).boxed();
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.state.lock();
            if let Some(f) = &st.failure {
                return futures::future::ready(Err(f.error(self.id))).boxed();
            }
            let entry = st.next_entry;
            st.next_entry += 1;
            st.pending.push_back(Pending {
                entry,
                crc: crc32c::crc32c(&data),
                data,
                acks: Vec::new(),
                sent: Vec::new(),
                since: Instant::now(),
                tx: Some(tx),
            });
            if !st.changing {
                let idx = st.pending.len() - 1;
                self.send_pending(&mut st, idx);
            }
        }
        let id = self.id;
        async move { rx.await.map_err(|_| LedgerError::Closed(id))? }.boxed()
    }

    /// Sends pending entry `idx` to every bookie of its write set it was not sent to yet.
    pub(super) fn send_pending(self: &Arc<Self>, st: &mut State, idx: usize) {
        let ws = st.meta.write_set(st.pending[idx].entry);
        let lac = lac_to_wire(self.lac());
        for b in ws {
            if st.pending[idx].sent.contains(&b) {
                continue;
            }
            let p = &st.pending[idx];
            let req = pb::AddRequest {
                ledger_id: self.id,
                entry_id: p.entry,
                data: p.data.clone(),
                crc32c: p.crc,
                lac,
                recovery: self.recovery,
            };
            let tx = self.stream(st, &b);
            if tx.send(req).is_ok() {
                st.pending[idx].sent.push(b);
            }
        }
    }

    fn stream(
        self: &Arc<Self>,
        st: &mut State,
        bookie: &str,
    ) -> mpsc::UnboundedSender<pb::AddRequest> {
        if let Some((_, tx)) = st.streams.get(bookie) {
            if !tx.is_closed() {
                return tx.clone();
            }
        }
        st.stream_gen += 1;
        let gen = st.stream_gen;
        let (tx, rx) = mpsc::unbounded_channel();
        st.streams.insert(bookie.to_string(), (gen, tx.clone()));
        tokio::spawn(run_stream(self.clone(), bookie.to_string(), gen, rx));
        tx
    }

    fn on_ack(self: &Arc<Self>, bookie: &str, entry: u64) {
        let mut st = self.state.lock();
        let Some(front) = st.pending.front().map(|p| p.entry) else {
            return;
        };
        if entry < front {
            return;
        }
        let idx = (entry - front) as usize;
        if idx >= st.pending.len() {
            return;
        }
        if !st.meta.in_write_set(entry, bookie) {
            return; // a replaced bookie's late ack does not count
        }
        let p = &mut st.pending[idx];
        if !p.acks.iter().any(|b| b == bookie) {
            p.acks.push(bookie.to_string());
        }
        self.complete(&mut st);
    }

    /// Acknowledges entries from the head while they have Qa acks.
    pub(super) fn complete(&self, st: &mut State) {
        if st.changing {
            return;
        }
        while st
            .pending
            .front()
            .is_some_and(|p| p.acks.len() >= self.cfg.ack_quorum)
        {
            let mut p = st.pending.pop_front().expect("checked non-empty");
            self.lac.store(p.entry as i64, Ordering::SeqCst);
            if let Some(tx) = p.tx.take() {
                let _ = tx.send(Ok(EntryId(p.entry)));
            }
        }
        if st.pending.is_empty() {
            self.drained.notify_waiters();
        }
    }

    pub(super) fn fail(&self, st: &mut State, f: Failure) {
        if st.failure.is_none() {
            if matches!(f, Failure::Closed) {
                tracing::debug!(ledger = self.id, "ledger writer abandoned");
            } else {
                tracing::warn!(ledger = self.id, failure = ?f, "ledger writer failed");
            }
            st.failure = Some(f.clone());
        }
        for mut p in st.pending.drain(..) {
            if let Some(tx) = p.tx.take() {
                let _ = tx.send(Err(f.error(self.id)));
            }
        }
        st.streams.clear();
        self.drained.notify_waiters();
    }

    /// A bookie failed (stream broke, timed out or answered with an error).
    pub(super) fn on_bookie_failure(self: &Arc<Self>, bookie: &str, err: LedgerError) {
        let mut st = self.state.lock();
        if st.failure.is_some() {
            return;
        }
        if matches!(err, LedgerError::Fenced(_)) {
            self.fail(&mut st, Failure::Fenced);
            return;
        }
        let in_ensemble = st
            .meta
            .ensembles
            .last()
            .is_some_and(|f| f.bookies.iter().any(|b| b == bookie));
        if !in_ensemble {
            return;
        }
        tracing::warn!(ledger = self.id, bookie, error = %err, "bookie failed; changing ensemble");
        self.pool.invalidate(bookie);
        st.streams.remove(bookie);
        if !st.failed_bookies.iter().any(|b| b == bookie) {
            st.failed_bookies.push(bookie.to_string());
        }
        if !st.changing {
            st.changing = true;
            tokio::spawn(super::ensemble::change_ensemble(self.clone()));
        }
    }

    /// Waits until no add is outstanding; fails if the writer failed.
    pub(crate) async fn drain(&self) -> Result<()> {
        loop {
            let notified = self.drained.notified();
            {
                let st = self.state.lock();
                if let Some(f) = &st.failure {
                    return Err(f.error(self.id));
                }
                if st.pending.is_empty() {
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    /// Marks the writer closed: later adds fail with `Closed`.
    pub(crate) fn seal(&self) {
        let mut st = self.state.lock();
        if st.failure.is_none() {
            st.failure = Some(Failure::Closed);
        }
        st.streams.clear();
    }

    /// Abandons the writer: outstanding adds fail, streams close (their tasks then end).
    pub(crate) fn abandon(&self) {
        let mut st = self.state.lock();
        if st.failure.is_none() {
            self.fail(&mut st, Failure::Closed);
        } else {
            st.streams.clear();
        }
    }

    /// Records a metadata version written by someone holding this writer (close).
    pub(crate) fn set_metadata(&self, m: LedgerMetadata, v: Version) {
        let mut st = self.state.lock();
        st.meta = m;
        st.version = v;
    }
}

/// Drives one bookie's add stream: sends queued requests, routes responses.
async fn run_stream(
    core: Arc<WriterCore>,
    bookie: String,
    gen: u64,
    rx: mpsc::UnboundedReceiver<pb::AddRequest>,
) {
    let res: Result<()> = async {
        let mut client = core.pool.client(&bookie).await?;
        let mut responses = client
            .add_entries(crate::wire::batch_adds(rx))
            .await
            .map_err(|s| LedgerError::Bookie {
                bookie: bookie.clone(),
                message: s.to_string(),
            })?
            .into_inner();
        while let Some(batch) = responses.next().await {
            let batch = batch.map_err(|s| LedgerError::Bookie {
                bookie: bookie.clone(),
                message: s.to_string(),
            })?;
            for r in batch.responses {
                if r.status == pb::Status::Ok as i32 {
                    core.on_ack(&bookie, r.entry_id);
                } else {
                    crate::wire::from_status(
                        r.status,
                        r.message,
                        &bookie,
                        r.ledger_id,
                        r.entry_id,
                    )?;
                }
            }
        }
        Err(LedgerError::Bookie {
            bookie: bookie.clone(),
            message: "add stream ended".into(),
        })
    }
    .await;
    if let Err(e) = res {
        let current = core
            .state
            .lock()
            .streams
            .get(&bookie)
            .is_none_or(|(g, _)| *g == gen);
        if current {
            core.on_bookie_failure(&bookie, e);
        }
    }
}

/// Handle of an open ledger's writer.
pub(crate) struct Writer {
    pub(crate) core: Arc<WriterCore>,
    pub(crate) reads: super::reader::ReadCtx,
}

impl Drop for Writer {
    /// The stream tasks hold the core; dropping the handle must end them.
    fn drop(&mut self) {
        self.core.abandon();
    }
}

#[async_trait::async_trait]
impl crate::api::LedgerWriter for Writer {
    fn id(&self) -> LedgerId {
        LedgerId(self.core.ledger())
    }

    fn add(&self, data: Bytes) -> BoxFuture<'static, Result<EntryId>> {
        self.core.add(data)
    }

    fn last_add_confirmed(&self) -> Option<EntryId> {
        self.core.lac().map(EntryId)
    }

    async fn read(&self, first: EntryId, last: EntryId) -> Result<Vec<Bytes>> {
        let lac = self.core.lac();
        if lac.is_none_or(|l| last.0 > l) {
            return Err(LedgerError::NoSuchEntry {
                ledger: self.core.ledger(),
                entry: last.0,
            });
        }
        let (m, _) = self.core.metadata();
        self.reads.read(&m, first.0, last.0).await
    }

    async fn close(&self) -> Result<Option<EntryId>> {
        self.core.drain().await?;
        let lac = self.core.lac();
        let id = self.core.ledger();
        let (mut m, mut v) = self.core.metadata();
        for _ in 0..MAX_CAS_ATTEMPTS {
            if m.state == LedgerStatus::Closed {
                self.core.seal();
                return if m.last_entry == lac {
                    Ok(lac.map(EntryId))
                } else {
                    Err(LedgerError::Fenced(id))
                };
            }
            if m.state != LedgerStatus::Open {
                return Err(LedgerError::Fenced(id));
            }
            let mut next = m.clone();
            next.state = LedgerStatus::Closed;
            next.last_entry = lac;
            if let Some(nv) = meta::cas(self.core.pool.metadata().as_ref(), id, &next, v).await? {
                self.core.set_metadata(next, nv);
                self.core.seal();
                return Ok(lac.map(EntryId));
            }
            (m, v) = meta::load(self.core.pool.metadata().as_ref(), id).await?;
        }
        Err(LedgerError::Storage(format!(
            "could not close ledger {id}: metadata kept changing"
        )))
    }
}
