//! The subscription task: a loop over requests, read completions and new-entry
//! notifications, feeding the pure [`Dispatcher`] and carrying out its decisions.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use magnetar_client::wire::{commands, proto, Outbound};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::{
    entry_metadata, AckItem, ConnEvent, ConsumerSink, ConsumerStatsSnapshot, SeekTarget,
    SubCounters, SubEvent, SubStatsSnapshot,
};
use crate::dispatch::acks::AckState;
use crate::dispatch::{ConsumerKey, Delivery, Dispatcher, EntryInfo, Notice, ReadPlan, SubType};
use crate::error::{BrokerError, Result};
use crate::position::Position;
use crate::storage::{SubCursor, TopicLog};

/// A read's outcome; for replays, the positions asked for (missing ones are forgotten).
type ReadResult = (Option<Vec<Position>>, Result<Vec<(Position, Bytes)>>);

pub(crate) struct SubTask {
    name: String,
    partition: i32,
    log: Arc<dyn TopicLog>,
    cursor: Arc<dyn SubCursor>,
    counters: Arc<SubCounters>,
    max_read: usize,
    dispatcher: Dispatcher,
    acks: AckState,
    sinks: HashMap<ConsumerKey, ConsumerSink>,
    read_pos: Position,
    reading: Option<BoxFuture<'static, ReadResult>>,
    /// Bumped on seek so a read started before it is ignored.
    epoch: u64,
    read_epoch: u64,
    terminated: bool,
    end_notified: bool,
    /// Delayed entries (Shared, Key_Shared): due time (ms), position, key slot.
    delayed: crate::lifecycle::delayed::DelayedTracker,
}

impl SubTask {
    pub(crate) fn new(
        name: String,
        sub_type: SubType,
        partition: i32,
        log: Arc<dyn TopicLog>,
        cursor: Arc<dyn SubCursor>,
        counters: Arc<SubCounters>,
        max_read: usize,
    ) -> SubTask {
        let read_pos = cursor.read_position();
        let acks = AckState::new(cursor.mark_delete());
        SubTask {
            name,
            partition,
            log,
            cursor,
            counters,
            max_read,
            dispatcher: Dispatcher::new(sub_type, partition),
            acks,
            sinks: HashMap::new(),
            read_pos,
            reading: None,
            epoch: 0,
            read_epoch: 0,
            terminated: false,
            end_notified: false,
            delayed: crate::lifecycle::delayed::DelayedTracker::new(
                crate::lifecycle::delayed_index_budget(),
            ),
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<SubEvent>) {
        let mut lac: watch::Receiver<Option<Position>> = self.log.watch_lac();
        loop {
            self.maybe_read();
            let caught_up = self.reading.is_none() && !self.has_entries();
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { break };
                    if self.handle(ev).await {
                        break;
                    }
                }
                res = async { self.reading.as_mut().expect("guarded").await },
                    if self.reading.is_some() => {
                    self.reading = None;
                    let epoch = self.read_epoch;
                    self.on_read(res, epoch);
                }
                _ = sleep_until_due(self.delayed.next_wakeup()),
                    if !self.delayed.is_empty() => {
                    self.release_due();
                }
                changed = lac.changed(), if caught_up => {
                    if changed.is_err() {
                        // Log closed; wait for requests only.
                        lac = watch::channel(None).1;
                    }
                }
            }
        }
        let _ = self.cursor.flush().await;
        debug!(sub = %self.name, "subscription task ended");
    }

    fn has_entries(&self) -> bool {
        self.log
            .last_confirmed()
            .is_some_and(|l| l >= self.read_pos)
    }

    /// Handles one request; returns true when the task should end.
    async fn handle(&mut self, ev: SubEvent) -> bool {
        match ev {
            SubEvent::AddConsumer { info, sink, reply } => {
                let key = info.key;
                match self.dispatcher.add_consumer(info) {
                    Ok(notices) => {
                        self.sinks.insert(key, sink);
                        self.counters
                            .consumers
                            .store(self.sinks.len(), Ordering::Relaxed);
                        self.notify(notices);
                        let _ = reply.send(Ok(()));
                        self.end_notified = false;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(BrokerError::ConsumerBusy(format!(
                            "subscription {}: {e:?}",
                            self.name
                        ))));
                    }
                }
            }
            SubEvent::RemoveConsumer { key, done } => {
                self.sinks.remove(&key);
                self.counters
                    .consumers
                    .store(self.sinks.len(), Ordering::Relaxed);
                let notices = self.dispatcher.remove_consumer(key);
                self.notify(notices);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            SubEvent::Flow { key, permits } => {
                self.dispatcher.flow(key, permits);
                if self.terminated {
                    self.end_notified = false;
                }
            }
            SubEvent::Ack {
                key,
                items,
                cumulative,
                request_id,
            } => {
                let res = self.ack(items, cumulative).await;
                if let (Some(rid), Some(sink)) = (request_id, self.sinks.get(&key)) {
                    if sink.protocol_version >= 17 {
                        let err = res.err().map(|e| (server_error(&e), e.to_string()));
                        let cmd = commands::ack_response(sink.consumer_id, Some(rid), err);
                        let _ = sink
                            .out
                            .send(ConnEvent::Frame(Box::new(Outbound::Command(cmd))));
                    }
                }
            }
            SubEvent::Redeliver { key, positions } => {
                self.dispatcher.redeliver(key, positions.as_deref());
            }
            SubEvent::Seek { target, reply } => {
                let res = self.seek(target).await;
                let _ = reply.send(res);
            }
            SubEvent::Unsubscribe { key, reply } => {
                let others = self.sinks.keys().any(|k| Some(*k) != key);
                if others {
                    let _ = reply.send(Err(BrokerError::ConsumerBusy(format!(
                        "subscription {} has other connected consumers",
                        self.name
                    ))));
                    return false;
                }
                let _ = reply.send(Ok(()));
                return true;
            }
            SubEvent::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            SubEvent::TopicTerminated => {
                self.terminated = true;
            }
            SubEvent::Close { reply } => {
                for (_, sink) in self.sinks.drain() {
                    let _ = sink.out.send(ConnEvent::ConsumerClosed(sink.consumer_id));
                }
                let _ = self.cursor.flush().await;
                let _ = reply.send(());
                return true;
            }
        }
        false
    }

    fn stats(&self) -> SubStatsSnapshot {
        let consumers = self
            .dispatcher
            .consumers()
            .map(|c| ConsumerStatsSnapshot {
                consumer_name: c.name.clone(),
                available_permits: self.dispatcher.permits(c.key).unwrap_or(0),
                unacked_messages: self.dispatcher.pending_of(c.key),
            })
            .collect();
        SubStatsSnapshot {
            backlog: self.backlog(),
            consumers,
            replay: self.dispatcher.replay_len(),
        }
    }

    fn backlog(&self) -> u64 {
        if let Some(b) = self.cursor.backlog() {
            return b;
        }
        // Storage without backlog accounting: count entries after the read start that are
        // not acknowledged, in the common single-ledger case.
        match (self.log.last_confirmed(), self.acks.mark_delete()) {
            (Some(last), Some(md)) if last.ledger == md.ledger => last
                .entry
                .saturating_sub(md.entry)
                .saturating_sub(self.acks.individually_acked() as u64),
            (Some(last), None) if last.ledger == self.log.first_position().ledger => {
                (last.entry + 1).saturating_sub(self.acks.individually_acked() as u64)
            }
            _ => 0,
        }
    }

    fn notify(&self, notices: Vec<Notice>) {
        for n in notices {
            let Notice::ActiveChange { consumer, active } = n;
            if let Some(sink) = self.sinks.get(&consumer) {
                let cmd = commands::active_consumer_change(sink.consumer_id, active);
                let _ = sink
                    .out
                    .send(ConnEvent::Frame(Box::new(Outbound::Command(cmd))));
            }
        }
    }

    async fn ack(&mut self, items: Vec<AckItem>, cumulative: bool) -> Result<()> {
        if cumulative {
            let Some(last) = items.last() else {
                return Ok(());
            };
            let partial = last
                .ack_set
                .as_ref()
                .is_some_and(|s| s.iter().any(|w| *w != 0));
            let upto = if partial {
                self.acks.ack(last.pos, last.ack_set.as_deref());
                if last.pos.entry == 0 {
                    return Ok(());
                }
                Position::new(last.pos.ledger, last.pos.entry - 1)
            } else {
                last.pos
            };
            self.acks.ack_cumulative(upto);
            self.dispatcher.acked_up_to(upto);
            return self.cursor.ack_cumulative(upto).await;
        }
        let mut done = Vec::with_capacity(items.len());
        for item in items {
            if self.acks.ack(item.pos, item.ack_set.as_deref()) {
                self.dispatcher.acked(item.pos);
                done.push(item.pos);
            }
        }
        if done.is_empty() {
            return Ok(());
        }
        self.cursor.ack(&done).await?;
        if let Some(md) = self.cursor.mark_delete() {
            self.acks.set_mark_delete(md);
        }
        Ok(())
    }

    async fn seek(&mut self, target: SeekTarget) -> Result<()> {
        let pos = match target {
            SeekTarget::Position(p) => p,
            SeekTarget::PublishTime(t) => find_by_time(self.log.clone(), t).await?,
        };
        self.cursor.seek(pos).await?;
        self.epoch += 1;
        self.reading = None;
        self.read_pos = pos;
        self.acks.reset(self.cursor.mark_delete());
        self.delayed.clear();
        self.count_delayed();
        self.dispatcher.reset();
        // As Pulsar does: consumers are disconnected and reconnect with fresh permits.
        let keys: Vec<ConsumerKey> = self.sinks.keys().copied().collect();
        for key in keys {
            self.dispatcher.remove_consumer(key);
            if let Some(sink) = self.sinks.remove(&key) {
                let _ = sink.out.send(ConnEvent::ConsumerClosed(sink.consumer_id));
            }
        }
        self.dispatcher.reset();
        self.counters.consumers.store(0, Ordering::Relaxed);
        debug!(sub = %self.name, %pos, "subscription reset");
        Ok(())
    }

    fn maybe_read(&mut self) {
        if self.reading.is_some() || self.sinks.is_empty() {
            return;
        }
        match self.dispatcher.next_read(self.max_read) {
            ReadPlan::Idle => {}
            ReadPlan::Replay(positions) => {
                let log = self.log.clone();
                self.read_epoch = self.epoch;
                self.reading = Some(
                    async move {
                        let mut out = Vec::with_capacity(positions.len());
                        for &p in &positions {
                            match log.read(p, 1).await {
                                Ok(mut v) => {
                                    if let Some(e) = v.pop().filter(|(q, _)| *q == p) {
                                        out.push(e);
                                    }
                                }
                                Err(e) => return (Some(positions), Err(e)),
                            }
                        }
                        (Some(positions), Ok(out))
                    }
                    .boxed(),
                );
            }
            ReadPlan::New(n) => {
                if !self.has_entries() {
                    self.maybe_end_of_topic();
                    return;
                }
                let log = self.log.clone();
                let from = self.read_pos;
                self.read_epoch = self.epoch;
                self.reading = Some(async move { (None, log.read(from, n).await) }.boxed());
            }
        }
    }

    fn maybe_end_of_topic(&mut self) {
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

    fn on_read(&mut self, (asked, res): ReadResult, epoch: u64) {
        if epoch != self.epoch {
            return;
        }
        let replay = asked.is_some();
        if let (Some(asked), Ok(got)) = (&asked, &res) {
            // Entries that no longer exist (trimmed, deleted) cannot be redelivered.
            for p in asked {
                if !got.iter().any(|(q, _)| q == p) {
                    self.dispatcher.acked(*p);
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
        let mut data: HashMap<Position, Bytes> = HashMap::with_capacity(entries.len());
        let mut infos = Vec::with_capacity(entries.len());
        for (pos, bytes) in entries {
            if self.acks.is_acked(pos) || self.cursor.is_acked(pos) {
                self.dispatcher.acked(pos);
                continue;
            }
            let meta = entry_metadata(&bytes);
            if let Some(at) = meta.deliver_at.filter(|_| self.delays_allowed()) {
                if at > now_ms() {
                    self.dispatcher.forget_replay(pos);
                    self.delayed.insert(pos, at, meta.slot);
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
        self.count_delayed();
        let deliveries = self.dispatcher.dispatch(&infos);
        for d in deliveries {
            if let Some(bytes) = data.get(&d.pos) {
                self.deliver(d, bytes.clone());
            }
        }
    }

    /// Delayed delivery applies to Shared and Key_Shared subscriptions, as in Pulsar.
    fn delays_allowed(&self) -> bool {
        matches!(
            self.dispatcher.sub_type(),
            SubType::Shared | SubType::KeyShared
        ) && !self.counters.delayed_delivery_off.load(Ordering::Relaxed)
    }

    fn count_delayed(&self) {
        self.counters
            .delayed
            .store(self.delayed.len() as u64, Ordering::Relaxed);
    }

    /// Moves delayed entries that are due to the redelivery queue; rescans the backlog
    /// when entries were dropped from the bounded index.
    fn release_due(&mut self) {
        let now = now_ms();
        for (pos, slot) in self.delayed.release_due(now) {
            if !self.acks.is_acked(pos) {
                self.dispatcher.add_replay(pos, slot);
            }
        }
        if self.delayed.take_rescan(now) {
            self.rescan_from_mark_delete();
        }
        self.count_delayed();
    }

    /// Reads the unacknowledged entries again from the mark-delete position, so delayed
    /// entries dropped from the bounded index are indexed again. Entries pending on a
    /// consumer or acknowledged are skipped by dispatch, so nothing is delivered twice.
    fn rescan_from_mark_delete(&mut self) {
        let from = self
            .acks
            .mark_delete()
            .map_or_else(|| self.log.first_position(), |m| self.log.next_position(m));
        if from < self.read_pos {
            self.epoch += 1;
            self.reading = None;
            self.read_pos = from;
            self.dispatcher.retry_replay();
            debug!(sub = %self.name, %from, "rescanning backlog for delayed entries");
        }
    }

    /// Holds off the next read for a moment (after a failed or empty read).
    fn pause(&mut self) {
        self.read_epoch = self.epoch;
        self.reading = Some(
            async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                (Some(Vec::new()), Ok(Vec::new()))
            }
            .boxed(),
        );
    }

    fn deliver(&self, d: Delivery, bytes: Bytes) {
        let Some(sink) = self.sinks.get(&d.consumer) else {
            return;
        };
        let id = proto::MessageIdData {
            ledger_id: d.pos.ledger,
            entry_id: d.pos.entry,
            partition: (self.partition >= 0).then_some(self.partition),
            ..Default::default()
        };
        let ack_set = self
            .acks
            .ack_set(d.pos)
            .map(<[i64]>::to_vec)
            .unwrap_or_default();
        let cmd = commands::message(sink.consumer_id, id, d.redelivery_count, ack_set, None);
        self.counters.msg_out.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("magnetar_broker_messages_out_total").increment(1);
        metrics::counter!("magnetar_broker_bytes_out_total").increment(bytes.len() as u64);
        self.counters
            .bytes_out
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let _ = sink
            .out
            .send(ConnEvent::Frame(Box::new(Outbound::with_raw(cmd, bytes))));
    }
}

fn server_error(e: &BrokerError) -> proto::ServerError {
    proto::ServerError::try_from(e.server_error() as i32)
        .unwrap_or(proto::ServerError::UnknownError)
}

/// First entry published at or after `time_ms` (or the end of the log).
async fn find_by_time(log: Arc<dyn TopicLog>, time_ms: u64) -> Result<Position> {
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

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sleeps until wall-clock time `at_ms` (at most a minute at a time; the loop re-checks).
async fn sleep_until_due(at_ms: Option<u64>) {
    let wait = at_ms.map_or(60_000, |at| at.saturating_sub(now_ms()).min(60_000));
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}
