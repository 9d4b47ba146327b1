//! Reading for a subscription task: what to read next (new entries or redeliveries), and
//! what to do with what was read (skip acknowledged entries, index delayed ones, dispatch
//! the rest).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use magnetar_client::wire::{commands, Outbound};
use tracing::warn;

use super::delayed::now_ms;
use super::task::{ReadResult, SubTask};
use super::{entry_metadata, ConnEvent};
use crate::dispatch::{EntryInfo, ReadPlan};
use crate::error::Result;
use crate::position::Position;
use crate::storage::TopicLog;

/// Entries read at once while delayed entries are about (see `maybe_read`).
const DELAYED_SCAN_READ: usize = 1_000;
/// Entries waiting for redelivery beyond which a scan without permits stops.
const SCAN_REPLAY_MAX: usize = 5_000;
/// Redelivery reads of separate runs of entries in flight at once.
const REPLAY_READS_IN_FLIGHT: usize = 8;

impl SubTask {
    pub(super) fn maybe_read(&mut self) {
        if self.reading.is_some() || self.sinks.is_empty() {
            return;
        }
        match self.dispatcher.next_read(self.max_read) {
            ReadPlan::Idle => self.maybe_scan_for_delayed(),
            ReadPlan::Replay(positions) => {
                // Entries whose bytes are held (released delayed entries, entries no
                // consumer had permits for) are not read again.
                let mut got = Vec::with_capacity(positions.len());
                let mut missing = Vec::new();
                for p in &positions {
                    match self.delayed.held(*p) {
                        Some(b) => got.push((*p, b)),
                        None => missing.push(*p),
                    }
                }
                let log = self.log.clone();
                self.read_epoch = self.epoch;
                self.reading = Some(
                    async move {
                        match read_positions(log, &missing).await {
                            Ok(mut more) => {
                                got.append(&mut more);
                                got.sort_unstable_by_key(|(p, _)| *p);
                                (Some(positions), Ok(got))
                            }
                            Err(e) => (Some(positions), Err(e)),
                        }
                    }
                    .boxed(),
                );
            }
            ReadPlan::New(n) => {
                if !self.has_entries() {
                    self.maybe_end_of_topic();
                    return;
                }
                // While delayed entries are about, read in big steps: the index must cover
                // the backlog quickly (after a restart it is rebuilt from it), and what no
                // consumer has permits for is held in memory, not read again.
                let delayed_about = self.delayed.scanning || !self.delayed.index.is_empty();
                let n = if delayed_about && self.delays_allowed() {
                    n.max(DELAYED_SCAN_READ)
                } else {
                    n
                };
                let log = self.log.clone();
                let from = self.read_pos;
                self.read_epoch = self.epoch;
                self.reading = Some(async move { (None, log.read(from, n).await) }.boxed());
            }
        }
    }

    /// Without permits, keeps reading the backlog while delayed entries are about, so
    /// every delayed entry gets indexed (and released on time) even while consumers are
    /// busy with a burst of due ones. What is due is held for redelivery, bounded by the
    /// held bytes and [`SCAN_REPLAY_MAX`].
    fn maybe_scan_for_delayed(&mut self) {
        let delayed_about = self.delayed.scanning || !self.delayed.index.is_empty();
        if !delayed_about
            || !self.delays_allowed()
            || self.dispatcher.replay_len() >= SCAN_REPLAY_MAX
            || !self.delayed.has_room()
            || !self.has_entries()
        {
            return;
        }
        let log = self.log.clone();
        let from = self.read_pos;
        self.read_epoch = self.epoch;
        self.reading = Some(async move { (None, log.read(from, DELAYED_SCAN_READ).await) }.boxed());
    }

    pub(super) fn maybe_end_of_topic(&mut self) {
        if !self.terminated || self.end_notified {
            return;
        }
        self.end_notified = true;
        for sink in self.sinks.values() {
            let cmd = commands::reached_end_of_topic(sink.consumer_id);
            let _ = sink
                .out
                .send(ConnEvent::Frame(Box::new(Outbound::Command(cmd))));
        }
    }

    pub(super) fn on_read(&mut self, (asked, res): ReadResult, epoch: u64) {
        if epoch != self.epoch {
            return;
        }
        let replay = asked.is_some();
        if let (Some(asked), Ok(got)) = (&asked, &res) {
            // Entries that no longer exist (trimmed, deleted) cannot be redelivered.
            for p in asked {
                if !got.iter().any(|(q, _)| q == p) {
                    self.dispatcher.acked(*p);
                    self.delayed.forget(*p);
                }
            }
        }
        let entries = match res {
            Ok(e) if !e.is_empty() || replay => e,
            Ok(_) => {
                // Nothing readable although entries were announced: do not spin.
                self.pause();
                return;
            }
            Err(e) => {
                warn!(sub = %self.name, error = %e, "read failed; retrying shortly");
                if replay {
                    self.dispatcher.retry_replay();
                }
                self.pause();
                return;
            }
        };
        if !replay {
            if let Some((last, _)) = entries.last() {
                self.read_pos = self.log.next_position(*last);
            }
        }
        let read = entries.len();
        let mut delayed = 0usize;
        let mut data: HashMap<Position, Bytes> = HashMap::with_capacity(entries.len());
        let mut infos = Vec::with_capacity(entries.len());
        let now = now_ms();
        for (pos, bytes) in entries {
            if self.acks.is_acked(pos) || self.cursor.is_acked(pos) {
                self.dispatcher.acked(pos);
                self.delayed.forget(pos);
                continue;
            }
            let meta = entry_metadata(&bytes);
            if let Some(at) = meta.deliver_at.filter(|_| self.delays_allowed()) {
                if at > now {
                    self.dispatcher.forget_replay(pos);
                    self.delayed.insert(pos, at, meta.slot, &bytes);
                    delayed += 1;
                    continue;
                }
            }
            infos.push(EntryInfo {
                pos,
                num_messages: meta.num_messages,
                slot: meta.slot,
            });
            data.insert(pos, bytes);
        }
        if !replay {
            // Mostly delayed: keep reading in big steps (see DELAYED_SCAN_READ).
            self.delayed.scanning = read > 0 && delayed * 10 >= read * 9;
        }
        self.count_delayed();
        let deliveries = self.dispatcher.dispatch(&infos);
        for d in deliveries {
            self.delayed.forget(d.pos);
            if let Some(bytes) = data.remove(&d.pos) {
                self.deliver(d, bytes);
            }
        }
        // What no consumer had permits for waits for redelivery: keep its bytes (bounded)
        // so the redelivery need not read it again.
        for (pos, bytes) in data {
            self.delayed.hold(pos, bytes);
        }
    }

    /// Holds off the next read for a moment (after a failed or empty read).
    pub(super) fn pause(&mut self) {
        self.read_epoch = self.epoch;
        self.reading = Some(
            async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                (Some(Vec::new()), Ok(Vec::new()))
            }
            .boxed(),
        );
    }
}

/// Reads the entries at `positions` (sorted): each run of consecutive entries of a ledger
/// with one read, several runs at once. Entries that no longer exist are left out.
async fn read_positions(
    log: Arc<dyn TopicLog>,
    positions: &[Position],
) -> Result<Vec<(Position, Bytes)>> {
    let mut runs: Vec<(Position, usize)> = Vec::new();
    for &p in positions {
        match runs.last_mut() {
            Some((first, len))
                if first.ledger == p.ledger && first.entry + *len as u64 == p.entry =>
            {
                *len += 1
            }
            _ => runs.push((p, 1)),
        }
    }
    let reads = futures::stream::iter(runs.into_iter().map(|(first, len)| {
        let log = log.clone();
        async move { log.read(first, len).await }
    }))
    .buffered(REPLAY_READS_IN_FLIGHT)
    .collect::<Vec<_>>()
    .await;
    let mut out = Vec::with_capacity(positions.len());
    for r in reads {
        out.extend(r?);
    }
    // A run's read may continue past a gap (trimmed ledger): keep only what was asked for.
    out.retain(|(p, _)| positions.binary_search(p).is_ok());
    Ok(out)
}

/// First entry published at or after `time_ms` (or the end of the log).
pub(super) async fn find_by_time(log: Arc<dyn TopicLog>, time_ms: u64) -> Result<Position> {
    let mut pos = log.first_position();
    let end = log.last_confirmed();
    for _ in 0..1_000_000 {
        if end.is_none_or(|e| pos > e) {
            break;
        }
        let batch = log.read(pos, 100).await?;
        let Some((last, _)) = batch.last() else {
            break;
        };
        let last = *last;
        for (p, data) in &batch {
            if entry_metadata(data).publish_time >= time_ms {
                return Ok(*p);
            }
        }
        pos = log.next_position(last);
    }
    Ok(end.map_or(pos, |e| log.next_position(e)))
}
