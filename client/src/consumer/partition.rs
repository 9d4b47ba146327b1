//! The task behind one (partition) consumer: subscribes, grants permits (FLOW), unpacks
//! MESSAGE payloads into application messages, sends acks, redelivers negatively acked
//! and timed-out messages, routes poison messages to the dead-letter topic, and
//! re-subscribes after the broker closes the consumer or the connection drops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use magnetar_proto::pulsar::{
    command_ack::AckType, CommandMessage, CommandSubscribe, KeySharedMeta, KeySharedMode, KeyValue,
};
use tokio::sync::{mpsc, oneshot};

use super::tracker::{entry_key, BatchAck, BatchAcks, EntryKey, Redelivery};
use super::{ConsumerOptions, SubType};
use crate::client::{Backoff, PulsarClient};
use crate::connection::{Connection, ConsumerEvent};
use crate::error::{Error, Result};
use crate::message::{Message, MessageId, ProducerMessage};
use crate::producer::Producer;
use crate::wire::commands::{self, IntoCommand};
use crate::wire::{unpack, Payload};

/// Where a seek moves the subscription.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SeekTarget {
    Id(MessageId),
    Time(u64),
}

/// Requests from the [`super::Consumer`] handle.
pub(crate) enum ConsumerCmd {
    Consumed,
    Ack(MessageId),
    AckCumulative(MessageId),
    Nack(MessageId),
    RedeliverAll,
    Seek(SeekTarget, oneshot::Sender<Result<()>>),
    LastMessageId(oneshot::Sender<Result<MessageId>>),
    Unsubscribe(oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<Result<()>>),
}

pub(crate) struct PartitionConsumer {
    client: PulsarClient,
    topic: String,
    partition: i32,
    consumer_id: u64,
    opts: Arc<ConsumerOptions>,
    conn: Option<Connection>,
    events: mpsc::UnboundedReceiver<ConsumerEvent>,
    out: mpsc::UnboundedSender<(u64, Message)>,
    /// Generation of delivered messages; the handle drops queued messages of older
    /// generations (after a seek, or a durable consumer's reconnect, the broker
    /// redelivers them in order).
    epoch: Arc<AtomicU64>,
    consumed: u32,
    batches: BatchAcks,
    redelivery: Redelivery,
    dlq: Option<Producer>,
    /// Delivered messages that reached the redelivery limit: if they come due for
    /// redelivery (nack or ack timeout), they go to the dead-letter topic instead.
    dlq_candidates: HashMap<EntryKey, Vec<Message>>,
    /// Readers: deliver only messages after this id (moves with each delivery).
    skip_until: Option<MessageId>,
    needs_reconnect: bool,
}

impl PartitionConsumer {
    pub(crate) async fn start(
        client: PulsarClient,
        topic: String,
        partition: i32,
        opts: Arc<ConsumerOptions>,
        out: mpsc::UnboundedSender<(u64, Message)>,
        epoch: Arc<AtomicU64>,
        cmds: mpsc::UnboundedReceiver<ConsumerCmd>,
    ) -> Result<()> {
        let (_, events) = mpsc::unbounded_channel();
        let skip_until = opts
            .start_message_id
            .filter(|id| *id != MessageId::EARLIEST && *id != MessageId::LATEST && !opts.durable);
        let mut c = PartitionConsumer {
            consumer_id: client.next_handle_id(),
            client,
            topic,
            partition,
            opts,
            conn: None,
            events,
            out,
            epoch,
            consumed: 0,
            batches: BatchAcks::default(),
            redelivery: Redelivery::default(),
            dlq: None,
            dlq_candidates: HashMap::new(),
            skip_until,
            needs_reconnect: false,
        };
        c.connect_once().await?;
        tokio::spawn(c.run(cmds));
        Ok(())
    }

    async fn connect_once(&mut self) -> Result<()> {
        let conn = self.client.lookup(&self.topic).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        conn.register_consumer(self.consumer_id, tx);
        let o = &self.opts;
        let start = if o.durable {
            None
        } else {
            Some(
                self.skip_until
                    .or(o.start_message_id)
                    .unwrap_or(MessageId::LATEST),
            )
        };
        let sub = CommandSubscribe {
            topic: self.topic.clone(),
            subscription: o.subscription.clone(),
            sub_type: o.sub_type as i32,
            consumer_id: self.consumer_id,
            request_id: 0,
            consumer_name: o.consumer_name.clone(),
            priority_level: o.priority_level,
            durable: Some(o.durable),
            start_message_id: start.map(|s| {
                let mut p = s.to_proto();
                p.partition = None;
                p
            }),
            metadata: o
                .properties
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            read_compacted: Some(o.read_compacted),
            initial_position: Some(o.initial_position as i32),
            replicate_subscription_state: o.replicate_subscription_state.then_some(true),
            force_topic_creation: Some(true),
            key_shared_meta: (o.sub_type == SubType::KeyShared).then(|| KeySharedMeta {
                key_shared_mode: KeySharedMode::AutoSplit as i32,
                hash_ranges: vec![],
                allow_out_of_order_delivery: Some(false),
            }),
            ..Default::default()
        };
        let resp = conn
            .request(
                move |id| {
                    let mut s = sub;
                    s.request_id = id;
                    s.into_command()
                },
                self.client.operation_timeout(),
            )
            .await;
        if let Err(e) = resp {
            conn.unregister_consumer(self.consumer_id);
            return Err(e);
        }
        conn.send(commands::flow(
            self.consumer_id,
            self.opts.receiver_queue_size,
        ))?;
        self.consumed = 0;
        self.conn = Some(conn);
        self.events = rx;
        self.needs_reconnect = false;
        tracing::debug!(topic = %self.topic, sub = %self.opts.subscription, "consumer subscribed");
        Ok(())
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<ConsumerCmd>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            if self.needs_reconnect {
                if let Err(e) = self.reconnect().await {
                    tracing::warn!(topic = %self.topic, error = %e, "consumer failed permanently");
                    return;
                }
            }
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None => { let _ = self.close().await; return; }
                    Some(ConsumerCmd::Close(tx)) => {
                        let r = self.close().await;
                        let _ = tx.send(r);
                        return;
                    }
                    Some(ConsumerCmd::Unsubscribe(tx)) => {
                        let cid = self.consumer_id;
                        let r = self.request(|id| commands::unsubscribe(cid, id)).await.map(|_| ());
                        let ok = r.is_ok();
                        let _ = tx.send(r);
                        if ok {
                            if let Some(c) = self.conn.take() {
                                c.unregister_consumer(self.consumer_id);
                            }
                            return;
                        }
                    }
                    Some(c) => self.on_cmd(c).await,
                },
                ev = self.events.recv() => match ev {
                    Some(ConsumerEvent::Message(b)) => {
                        let (m, p) = *b;
                        self.on_message(m, p).await
                    }
                    Some(ConsumerEvent::ActiveChange(a)) => {
                        tracing::debug!(topic = %self.topic, active = a, "active consumer change");
                    }
                    Some(ConsumerEvent::EndOfTopic) => {
                        tracing::info!(topic = %self.topic, "reached end of topic");
                    }
                    Some(ConsumerEvent::Closed) | None => self.needs_reconnect = true,
                },
                _ = tick.tick() => self.redeliver_due().await,
            }
        }
    }

    async fn reconnect(&mut self) -> Result<()> {
        if let Some(c) = self.conn.take() {
            c.unregister_consumer(self.consumer_id);
        }
        // The broker redelivers everything unacknowledged; start the bookkeeping afresh.
        self.batches.clear();
        self.redelivery.clear();
        self.dlq_candidates.clear();
        if self.opts.durable {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
        let mut backoff = Backoff::new();
        loop {
            match self.connect_once().await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retriable() => {
                    let d = backoff.next_delay();
                    tracing::info!(topic = %self.topic, error = %e, delay = ?d, "consumer reconnecting");
                    tokio::time::sleep(d).await;
                    if self.out.is_closed() {
                        return Err(Error::Closed("consumer"));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn request(
        &self,
        make: impl FnOnce(u64) -> magnetar_proto::pulsar::BaseCommand,
    ) -> Result<magnetar_proto::pulsar::BaseCommand> {
        let conn = self.conn.as_ref().ok_or(Error::Disconnected {
            addr: String::new(),
        })?;
        conn.request(make, self.client.operation_timeout()).await
    }

    fn send(&mut self, cmd: magnetar_proto::pulsar::BaseCommand) {
        match &self.conn {
            Some(c) => {
                if c.send(cmd).is_err() {
                    self.needs_reconnect = true;
                }
            }
            None => self.needs_reconnect = true,
        }
    }

    fn consumed(&mut self, n: u32) {
        self.consumed += n;
        let threshold = (self.opts.receiver_queue_size / 2).max(1);
        if self.consumed >= threshold {
            let n = std::mem::take(&mut self.consumed);
            self.send(commands::flow(self.consumer_id, n));
        }
    }

    fn ack_entries(&mut self, keys: Vec<EntryKey>) {
        if keys.is_empty() {
            return;
        }
        let ids = keys
            .into_iter()
            .map(|(l, e)| MessageId::new(l, e, self.partition).entry_proto())
            .collect();
        self.send(commands::ack(self.consumer_id, AckType::Individual, ids));
    }

    async fn on_cmd(&mut self, cmd: ConsumerCmd) {
        match cmd {
            ConsumerCmd::Consumed => self.consumed(1),
            ConsumerCmd::Ack(id) => match self.batches.ack(&id) {
                BatchAck::Entry => {
                    self.redelivery.acked(entry_key(&id));
                    self.dlq_candidates.remove(&entry_key(&id));
                    self.ack_entries(vec![entry_key(&id)]);
                }
                BatchAck::Partial(ack_set) if self.opts.batch_index_ack => {
                    // Batch-index ack: the broker keeps the still-pending indexes and
                    // redelivers only those.
                    let mut p =
                        MessageId::new(id.ledger_id, id.entry_id, self.partition).entry_proto();
                    p.ack_set = ack_set;
                    p.batch_size = Some(id.batch_size);
                    self.send(commands::ack(
                        self.consumer_id,
                        AckType::Individual,
                        vec![p],
                    ));
                }
                BatchAck::Partial(_) => {}
            },
            ConsumerCmd::AckCumulative(id) => {
                // A cumulative ack inside a batch covers only the entries before it,
                // unless it is the batch's last message.
                let target = if id.is_batch() && id.batch_index + 1 < id.batch_size {
                    if id.entry_id == 0 {
                        None
                    } else {
                        Some(MessageId::new(
                            id.ledger_id,
                            id.entry_id - 1,
                            self.partition,
                        ))
                    }
                } else {
                    Some(MessageId::new(id.ledger_id, id.entry_id, self.partition))
                };
                if let Some(t) = target {
                    self.batches.ack_up_to(&t);
                    let k = entry_key(&t);
                    self.dlq_candidates.retain(|e, _| *e > k);
                    self.redelivery.acked_up_to(&t);
                    self.send(commands::ack(
                        self.consumer_id,
                        AckType::Cumulative,
                        vec![t.entry_proto()],
                    ));
                }
            }
            ConsumerCmd::Nack(id) => {
                self.redelivery
                    .nack(&id, Instant::now(), self.opts.negative_ack_delay);
            }
            ConsumerCmd::RedeliverAll => {
                self.dlq_candidates.clear();
                self.batches.clear();
                self.redelivery.clear();
                self.send(commands::redeliver_unacknowledged(
                    self.consumer_id,
                    vec![],
                    None,
                ));
            }
            ConsumerCmd::Seek(target, tx) => {
                let cid = self.consumer_id;
                let r = match target {
                    SeekTarget::Id(id) => {
                        let mut p = id.to_proto();
                        p.partition = None;
                        self.request(|rid| commands::seek_to_id(cid, rid, p)).await
                    }
                    SeekTarget::Time(t) => {
                        self.request(|rid| commands::seek_to_time(cid, rid, t))
                            .await
                    }
                };
                if r.is_ok() {
                    self.epoch.fetch_add(1, Ordering::AcqRel);
                    self.dlq_candidates.clear();
                    self.batches.clear();
                    self.redelivery.clear();
                    if let SeekTarget::Id(id) = target {
                        if !self.opts.durable {
                            self.skip_until = Some(id).filter(|i| *i != MessageId::EARLIEST);
                        }
                    }
                }
                let _ = tx.send(r.map(|_| ()));
            }
            ConsumerCmd::LastMessageId(tx) => {
                let cid = self.consumer_id;
                let r = self
                    .request(|rid| commands::get_last_message_id(cid, rid))
                    .await
                    .and_then(|resp| {
                        resp.get_last_message_id_response
                            .map(|r| {
                                let mut id = MessageId::from_proto(&r.last_message_id);
                                id.partition = self.partition;
                                id
                            })
                            .ok_or(Error::UnexpectedResponse {
                                expected: "GET_LAST_MESSAGE_ID_RESPONSE",
                                got: format!("{:?}", resp.r#type),
                            })
                    });
                let _ = tx.send(r);
            }
            ConsumerCmd::Unsubscribe(_) | ConsumerCmd::Close(_) => {}
        }
    }

    async fn redeliver_due(&mut self) {
        let mut due = self.redelivery.take_due(Instant::now());
        if due.is_empty() {
            return;
        }
        if !self.dlq_candidates.is_empty() {
            let mut rest = Vec::with_capacity(due.len());
            for key in due {
                match self.dlq_candidates.remove(&key) {
                    Some(msgs) => {
                        let mut ok = true;
                        for m in msgs {
                            if let Err(e) = self.send_to_dead_letter(&m).await {
                                tracing::warn!(error = %e, id = %m.id, "dead-letter publish failed; redelivering");
                                ok = false;
                                break;
                            }
                        }
                        if ok {
                            self.batches.forget(key);
                            self.ack_entries(vec![key]);
                        } else {
                            rest.push(key);
                        }
                    }
                    None => rest.push(key),
                }
            }
            due = rest;
            if due.is_empty() {
                return;
            }
        }
        let ids = due
            .into_iter()
            .map(|(l, e)| MessageId::new(l, e, self.partition).entry_proto())
            .collect();
        self.send(commands::redeliver_unacknowledged(
            self.consumer_id,
            ids,
            None,
        ));
    }

    async fn on_message(&mut self, cmd: CommandMessage, payload: Payload) {
        let mut base = MessageId::from_proto(&cmd.message_id);
        base.partition = self.partition;
        let redelivery_count = cmd.redelivery_count.unwrap_or(0);
        let msgs = match unpack(&payload.metadata, &payload.body, self.opts.max_message_size) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(topic = %self.topic, id = %base, error = %e, "discarding undecodable message");
                self.ack_entries(vec![entry_key(&base)]);
                self.consumed(payload.metadata.num_messages_in_batch.unwrap_or(1).max(1) as u32);
                return;
            }
        };
        let n = msgs.len() as i32;
        let batched = crate::wire::batch::is_batch(&payload.metadata);
        let dead = self
            .opts
            .dead_letter
            .as_ref()
            .is_some_and(|d| redelivery_count >= d.max_redeliver_count);
        let now = Instant::now();
        for (i, (single, body)) in msgs.into_iter().enumerate() {
            let mut id = base;
            if batched {
                id.batch_index = i as i32;
                id.batch_size = n;
            }
            let acked_already = !cmd.ack_set.is_empty() && batched && !bit_set(&cmd.ack_set, i);
            let compacted = single
                .as_ref()
                .is_some_and(|s| s.compacted_out.unwrap_or(false));
            let before_start = self.skip_until.is_some_and(|s| id <= s);
            if acked_already || compacted || before_start {
                self.consumed(1);
                continue;
            }
            let msg = Message::build(
                &self.topic,
                id,
                &payload.metadata,
                single.as_ref(),
                body,
                redelivery_count,
            );
            if dead {
                self.dlq_candidates
                    .entry(entry_key(&id))
                    .or_default()
                    .push(msg.clone());
            }
            self.batches.delivered(&id);
            self.redelivery.delivered(&id, now, self.opts.ack_timeout);
            if !self.opts.durable {
                self.skip_until = Some(id);
            }
            if self
                .out
                .send((self.epoch.load(Ordering::Acquire), msg))
                .is_err()
            {
                return;
            }
        }
    }

    async fn send_to_dead_letter(&mut self, msg: &Message) -> Result<()> {
        let Some(policy) = self.opts.dead_letter.clone() else {
            return Ok(());
        };
        if self.dlq.is_none() {
            let topic = policy
                .dead_letter_topic
                .clone()
                .unwrap_or_else(|| format!("{}-{}-DLQ", self.topic, self.opts.subscription));
            self.dlq = Some(self.client.producer().topic(topic).create().await?);
        }
        let Some(dlq) = &self.dlq else {
            return Ok(());
        };
        let mut pm = ProducerMessage::new(msg.payload.clone());
        pm.key = msg.key.clone();
        pm.properties = msg.properties.clone();
        pm.properties.insert("REAL_TOPIC".into(), msg.topic.clone());
        pm.properties
            .insert("ORIGIN_MESSAGE_ID".into(), msg.id.to_string());
        dlq.send(pm).await?.await.map(|_| ())
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(dlq) = self.dlq.take() {
            let _ = dlq.close().await;
        }
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        conn.unregister_consumer(self.consumer_id);
        let cid = self.consumer_id;
        conn.request(
            |id| commands::close_consumer(cid, id),
            self.client.operation_timeout(),
        )
        .await
        .map(|_| ())
    }
}

/// Bit `i` of a Pulsar ack set (little-endian 64-bit words; set = still to deliver).
fn bit_set(words: &[i64], i: usize) -> bool {
    words
        .get(i / 64)
        .is_some_and(|w| (*w as u64) >> (i % 64) & 1 == 1)
}

#[cfg(test)]
mod tests {
    use super::bit_set;

    #[test]
    fn ack_set_bits() {
        let w = vec![0b101i64];
        assert!(bit_set(&w, 0));
        assert!(!bit_set(&w, 1));
        assert!(bit_set(&w, 2));
        assert!(!bit_set(&w, 64));
    }
}
