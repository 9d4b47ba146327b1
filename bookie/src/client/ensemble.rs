//! Ensemble changes and the add watchdog of a ledger writer (see [`super::writer`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use magnetar_metadata::Version;

use super::meta::{self, Fragment, LedgerMetadata, LedgerStatus};
use super::writer::{Failure, WriterCore};
use crate::error::LedgerError;

/// An add not acknowledged by Qa bookies yet is resent elsewhere after this long.
const ADD_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts at recording one ensemble change before giving up.
pub(super) const MAX_CAS_ATTEMPTS: usize = 20;

/// Replaces failed bookies of the last fragment, records the change by CAS, resends.
pub(super) async fn change_ensemble(core: Arc<WriterCore>) {
    loop {
        let (failed, first, mut m, mut version, mut exclude) = {
            let mut st = core.state.lock();
            if st.failure.is_some() {
                return;
            }
            if st.failed_bookies.is_empty() {
                st.changing = false;
                for i in 0..st.pending.len() {
                    core.send_pending(&mut st, i);
                }
                core.complete(&mut st);
                return;
            }
            let failed = std::mem::take(&mut st.failed_bookies);
            st.replaced.extend(failed.iter().cloned());
            let first = st.pending.front().map_or(st.next_entry, |p| p.entry);
            (
                failed,
                first,
                st.meta.clone(),
                st.version,
                st.replaced.clone(),
            )
        };
        let started = Instant::now();
        let mut attempt = 0;
        let outcome: std::result::Result<(LedgerMetadata, Version), Failure> = loop {
            attempt += 1;
            let candidates = match core.pool.writable().await {
                Ok(c) => c,
                Err(e) => break Err(Failure::Other(e.to_string())),
            };
            let mut ensemble = m
                .ensembles
                .last()
                .expect("ledger has a fragment")
                .bookies
                .clone();
            exclude.extend(ensemble.iter().cloned());
            let mut free: Vec<String> = candidates
                .into_iter()
                .map(|(id, _)| id)
                .filter(|id| !exclude.contains(id))
                .collect();
            let needed = failed.iter().filter(|f| ensemble.contains(f)).count();
            if free.len() < needed {
                break Err(Failure::NotEnoughBookies {
                    needed: core.cfg.ensemble,
                    available: core.cfg.ensemble - needed + free.len(),
                });
            }
            rand::seq::SliceRandom::shuffle(free.as_mut_slice(), &mut rand::thread_rng());
            for slot in ensemble.iter_mut() {
                if failed.contains(slot) {
                    *slot = free.pop().expect("counted above");
                }
            }
            let mut next = m.clone();
            match next.ensembles.last_mut() {
                Some(last) if last.first_entry == first => last.bookies = ensemble,
                _ => next.ensembles.push(Fragment {
                    first_entry: first,
                    bookies: ensemble,
                }),
            }
            match meta::cas(core.pool.metadata().as_ref(), core.id, &next, version).await {
                Ok(Some(v)) => break Ok((next, v)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(ledger = core.id, error = %e, "ensemble change CAS failed")
                }
            }
            if attempt >= MAX_CAS_ATTEMPTS {
                break Err(Failure::Other(
                    "could not record the ensemble change".into(),
                ));
            }
            match meta::load(core.pool.metadata().as_ref(), core.id).await {
                Ok((fresh, v)) => {
                    let allowed = if core.recovery {
                        LedgerStatus::InRecovery
                    } else {
                        LedgerStatus::Open
                    };
                    if fresh.state != allowed {
                        break Err(Failure::Fenced);
                    }
                    m = fresh;
                    version = v;
                }
                Err(e) => tracing::warn!(ledger = core.id, error = %e, "reloading metadata failed"),
            }
            tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
        };
        let mut st = core.state.lock();
        match outcome {
            Ok((next, v)) => {
                metrics::counter!("magnetar_bookie_client_ensemble_changes_total").increment(1);
                tracing::info!(
                    ledger = core.id,
                    first_entry = first,
                    ensemble = ?next.ensembles.last().map(|f| &f.bookies),
                    took_ms = started.elapsed().as_millis() as u64,
                    "ensemble changed"
                );
                st.meta = next;
                st.version = v;
                let now = Instant::now();
                for p in st.pending.iter_mut() {
                    p.acks.retain(|b| !failed.contains(b));
                    p.sent.retain(|b| !failed.contains(b));
                    // The new bookies get a full timeout from the resend.
                    p.since = now;
                }
            }
            Err(f) => {
                core.fail(&mut st, f);
                return;
            }
        }
    }
}

/// Treats bookies that leave the oldest pending add unacknowledged for too long as failed.
pub(super) async fn watchdog(core: std::sync::Weak<WriterCore>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(core) = core.upgrade() else { return };
        let slow: Vec<String> = {
            let st = core.state.lock();
            if st.failure.is_some() {
                return;
            }
            match st.pending.front() {
                Some(p) if !st.changing && p.since.elapsed() > ADD_TIMEOUT => st
                    .meta
                    .write_set(p.entry)
                    .into_iter()
                    .filter(|b| !p.acks.contains(b))
                    .collect(),
                _ => Vec::new(),
            }
        };
        for b in slow {
            core.on_bookie_failure(
                &b,
                LedgerError::Bookie {
                    bookie: b.clone(),
                    message: "add timed out".into(),
                },
            );
        }
    }
}
