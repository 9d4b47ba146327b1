//! The write path: one task per managed ledger takes adds in call order, pipelines them to
//! the current ledger, completes them in entry order, and rolls over to a new ledger when
//! the current one is full or old (waiting for in-flight adds first, keeping queued adds in
//! order).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use magnetar_bookie::{EntryId, LedgerError, LedgerId};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::error::{MlError, Result};
use super::meta::{self, LedgerInfo};
use super::shared::Core;
use super::state::MlStatus;
use super::Position;

/// A request to the writer task.
pub(crate) enum Req {
    Add {
        data: Bytes,
        tx: oneshot::Sender<Result<Position>>,
    },
    Close {
        tx: oneshot::Sender<Result<()>>,
    },
}

type Done = (
    std::result::Result<EntryId, LedgerError>,
    LedgerId,
    Bytes,
    oneshot::Sender<Result<Position>>,
);

struct Writer {
    core: Arc<Core>,
    pending: VecDeque<Req>,
    inflight: FuturesOrdered<BoxFuture<'static, Done>>,
    /// Entries and bytes issued to the current ledger, and when it was created.
    issued: (u64, u64, Instant),
    roll_requested: bool,
    /// A close request was handled: no add can follow it.
    closed: bool,
}

/// Runs until every sender is gone and all work is finished.
pub(crate) async fn run(core: Arc<Core>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Req>) {
    let max_age = core.cfg.max_ledger_age;
    let check = if max_age.is_zero() {
        Duration::from_secs(1)
    } else {
        max_age.clamp(Duration::from_millis(10), Duration::from_secs(1))
    };
    let mut tick = tokio::time::interval(check);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut w = Writer {
        core,
        pending: VecDeque::new(),
        inflight: FuturesOrdered::new(),
        issued: (0, 0, Instant::now()),
        roll_requested: false,
        closed: false,
    };
    let mut rx_open = true;
    loop {
        tokio::select! {
            Some(done) = w.inflight.next(), if !w.inflight.is_empty() => w.complete(done),
            req = rx.recv(), if rx_open => match req {
                Some(r) => w.pending.push_back(r),
                None => rx_open = false,
            },
            _ = tick.tick() => w.check_age(),
        }
        w.pump().await;
        if (!rx_open || w.closed) && w.pending.is_empty() && w.inflight.is_empty() {
            return;
        }
    }
}

impl Writer {
    fn check_age(&mut self) {
        let has_writer = self.core.state.lock().writer.is_some();
        let max_age = self.core.cfg.max_ledger_age;
        if has_writer
            && self.issued.0 > 0
            && !max_age.is_zero()
            && self.issued.2.elapsed() >= max_age
        {
            self.roll_requested = true;
        }
    }

    /// Whether the current ledger must be closed before the next add. Limits of 0 are
    /// disabled; an empty ledger is never rolled over.
    fn should_roll(&self) -> bool {
        let cfg = &self.core.cfg;
        let (entries, bytes, created) = self.issued;
        if entries == 0 {
            return false;
        }
        let age = created.elapsed();
        let full = (cfg.max_entries_per_ledger > 0 && entries >= cfg.max_entries_per_ledger)
            || (cfg.max_ledger_size_bytes > 0 && bytes >= cfg.max_ledger_size_bytes);
        let aged = !cfg.max_ledger_age.is_zero() && age >= cfg.max_ledger_age;
        (full && age >= cfg.min_ledger_rollover_time) || aged
    }

    /// Issues queued requests until one has to wait for in-flight adds.
    async fn pump(&mut self) {
        loop {
            let (status, writer) = {
                let st = self.core.state.lock();
                (st.status.clone(), st.writer.clone())
            };
            if !matches!(status, MlStatus::Open | MlStatus::Closing) {
                for req in self.pending.drain(..) {
                    fail(req, self.core.status_error(&status));
                }
                return;
            }
            let Some(front) = self.pending.front() else {
                // Roll a full or old ledger as soon as it is idle, so it can be trimmed.
                let wanted = self.roll_requested || self.should_roll();
                if wanted && self.inflight.is_empty() && writer.is_some() && !self.closed {
                    self.roll_requested = false;
                    if let Err(e) = self.roll().await {
                        self.errored(&e);
                    }
                    continue;
                }
                return;
            };
            if matches!(front, Req::Close { .. }) {
                if !self.inflight.is_empty() {
                    return;
                }
                let Some(Req::Close { tx }) = self.pending.pop_front() else {
                    unreachable!("front was a close request");
                };
                let _ = tx.send(self.close_current().await);
                self.closed = true;
                continue;
            }
            let writer = match writer {
                Some(w) if !self.should_roll() => w,
                _ => {
                    if !self.inflight.is_empty() {
                        return;
                    }
                    if let Err(e) = self.roll().await {
                        self.errored(&e);
                    }
                    continue;
                }
            };
            let Some(Req::Add { data, tx }) = self.pending.pop_front() else {
                unreachable!("front was an add request");
            };
            self.issued.0 += 1;
            self.issued.1 += data.len() as u64;
            let id = writer.id();
            let fut = writer.add(data.clone());
            self.inflight
                .push_back(async move { (fut.await, id, data, tx) }.boxed());
        }
    }

    /// Handles one acknowledged (or failed) add, in entry order.
    fn complete(&mut self, (res, ledger, data, tx): Done) {
        match res {
            Ok(entry) => {
                let p = Position { ledger, entry };
                let len = data.len() as u64;
                self.core.cache.insert(p, data);
                {
                    let mut st = self.core.state.lock();
                    if let Some(info) = st.ledgers.get_mut(&ledger) {
                        info.entries = info.entries.max(entry.0 + 1);
                        info.size += len;
                    }
                    st.lac = Some(p);
                    self.core.lac_tx.send_replace(Some(p));
                }
                metrics::counter!("magnetar_broker_ml_add_entries_total").increment(1);
                metrics::counter!("magnetar_broker_ml_add_bytes_total").increment(len);
                let _ = tx.send(Ok(p));
            }
            Err(LedgerError::Fenced(_)) => {
                tracing::warn!(ml = %self.core.name, %ledger, "ledger fenced: another owner took over");
                let _ = tx.send(Err(self.core.fence()));
            }
            Err(e) => {
                let status = self.core.state.lock().status.clone();
                if matches!(status, MlStatus::Open | MlStatus::Closing) {
                    tracing::error!(ml = %self.core.name, %ledger, error = %e, "add failed");
                    self.core.terminate(MlStatus::Errored(e.to_string()));
                }
                let _ = tx.send(Err(MlError::Ledger(e)));
            }
        }
    }

    fn errored(&mut self, e: &MlError) {
        if e.is_fenced() {
            self.core.fence();
        } else {
            tracing::error!(ml = %self.core.name, error = %e, "ledger rollover failed");
            self.core.terminate(MlStatus::Errored(e.to_string()));
        }
    }

    /// Closes the current ledger (no adds in flight) so its entry count is final.
    async fn close_writer(&mut self) -> Result<()> {
        // The writer stays readable in the state until its ledger is closed.
        let writer = self.core.state.lock().writer.clone();
        let Some(w) = writer else { return Ok(()) };
        let closed = w.close().await;
        self.core.state.lock().writer = None;
        match closed {
            Ok(last) => {
                let confirmed = self
                    .core
                    .state
                    .lock()
                    .ledgers
                    .get(&w.id())
                    .map_or(0, |i| i.entries);
                if last.map_or(0, |e| e.0 + 1) != confirmed {
                    tracing::warn!(ml = %self.core.name, ledger = %w.id(), ?last, confirmed,
                        "closed ledger's last entry differs from confirmed adds");
                }
                Ok(())
            }
            Err(LedgerError::Fenced(_)) => Err(self.core.fence()),
            Err(e) => Err(e.into()),
        }
    }

    /// Closes the current ledger, creates the next and adds it to the list by CAS.
    async fn roll(&mut self) -> Result<()> {
        self.close_writer().await?;
        let new = self.core.ledgers.create(self.core.cfg.ledger).await?;
        let info = LedgerInfo {
            id: new.id(),
            entries: 0,
            size: 0,
            created_ms: meta::now_ms(),
        };
        if let Err(e) = meta::update_ledgers(&self.core, |l, _| {
            l.insert(info.id, info);
        })
        .await
        {
            if let Err(de) = self.core.ledgers.delete(info.id).await {
                tracing::warn!(ml = %self.core.name, error = %de, "could not delete unused ledger");
            }
            return Err(e);
        }
        tracing::debug!(ml = %self.core.name, ledger = %info.id, "rolled over to a new ledger");
        metrics::counter!("magnetar_broker_ml_rollovers_total").increment(1);
        self.core.state.lock().writer = Some(new);
        self.issued = (0, 0, Instant::now());
        Ok(())
    }

    async fn close_current(&mut self) -> Result<()> {
        self.close_writer().await?;
        // Record the final entry count of the last ledger.
        meta::update_ledgers(&self.core, |_, _| {}).await
    }
}

fn fail(req: Req, e: MlError) {
    match req {
        Req::Add { tx, .. } => {
            let _ = tx.send(Err(e));
        }
        Req::Close { tx } => {
            let _ = tx.send(Err(e));
        }
    }
}
