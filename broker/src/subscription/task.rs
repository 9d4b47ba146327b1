//! The subscription task: a loop over requests, read completions and new-entry
//! notifications, feeding the pure [`Dispatcher`] and carrying out its decisions.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use magnetar_client::wire::{commands, proto, Outbound};
use tokio::sync::{mpsc, watch};
use tracing::debug;

use super::delayed::{sleep_until_due, DelayedEntries};
use super::read::find_by_time;
use super::{
    AckItem, ConnEvent, ConsumerSink, ConsumerStatsSnapshot, SeekTarget, SubCounters, SubEvent,
    SubStatsSnapshot,
};
use crate::dispatch::acks::AckState;
use crate::dispatch::{ConsumerKey, Delivery, Dispatcher, Notice, SubType};
use crate::error::{BrokerError, Result};
use crate::position::Position;
use crate::storage::{SubCursor, TopicLog};

/// A read's outcome; for replays, the positions asked for (missing ones are forgotten).
pub(super) type ReadResult = (Option<Vec<Position>>, Result<Vec<(Position, Bytes)>>);

pub(crate) struct SubTask {
    pub(super) name: String,
    pub(super) partition: i32,
    pub(super) log: Arc<dyn TopicLog>,
    pub(super) cursor: Arc<dyn SubCursor>,
    pub(super) counters: Arc<SubCounters>,
    pub(super) max_read: usize,
    pub(super) dispatcher: Dispatcher,
    pub(super) acks: AckState,
    pub(super) sinks: HashMap<ConsumerKey, ConsumerSink>,
    pub(super) read_pos: Position,
    pub(super) reading: Option<BoxFuture<'static, ReadResult>>,
    /// Bumped on seek so a read started before it is ignored.
    pub(super) epoch: u64,
    pub(super) read_epoch: u64,
    pub(super) terminated: bool,
    pub(super) end_notified: bool,
    /// Delayed entries (Shared, Key_Shared) and bytes held for waiting entries.
    pub(super) delayed: DelayedEntries,
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
            delayed: DelayedEntries::new(crate::lifecycle::delayed_index_budget()),
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
                _ = sleep_until_due(self.delayed.index.next_wakeup()),
                    if !self.delayed.index.is_empty() => {
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

    pub(super) fn has_entries(&self) -> bool {
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
            self.delayed.forget_up_to(upto);
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

    pub(super) fn deliver(&self, d: Delivery, bytes: Bytes) {
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
