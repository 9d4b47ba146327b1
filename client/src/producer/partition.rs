//! The task behind one (partition) producer: assigns sequence ids, batches, keeps the
//! queue of sends awaiting receipts, and reconnects (look up, PRODUCER again, resend
//! everything pending in order) when the broker closes it or the connection drops.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use magnetar_proto::pulsar::{
    CommandProducer, CommandSendError, CommandSendReceipt, KeyValue, MessageMetadata, ServerError,
};
use tokio::sync::{mpsc, oneshot};

use super::batch::{single_metadata, Ack, BatchContainer};
use super::ProducerOptions;
use crate::client::{Backoff, PulsarClient};
use crate::connection::{Connection, ProducerEvent};
use crate::error::{Error, Result};
use crate::message::{MessageId, ProducerMessage};
use crate::wire::commands::{self, IntoCommand};
use crate::wire::{encode_payload, pack, Outbound, DEFAULT_MAX_MESSAGE_SIZE};

/// Requests from the [`super::Producer`] handle.
pub(crate) enum ProducerCmd {
    Send(Box<ProducerMessage>, Ack),
    /// An already-encoded message: its metadata (sequence id set by the caller) and body.
    SendRaw(Box<(MessageMetadata, Bytes)>, Ack),
    Flush(oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<Result<()>>),
}

struct OpSend {
    sequence_id: u64,
    highest_sequence_id: u64,
    num_messages: i32,
    raw: Bytes,
    acks: Vec<Ack>,
    batch: bool,
    created: Instant,
}

pub(crate) struct PartitionProducer {
    client: PulsarClient,
    topic: String,
    partition: i32,
    producer_id: u64,
    opts: Arc<ProducerOptions>,
    name: Option<String>,
    conn: Option<Connection>,
    events: mpsc::UnboundedReceiver<ProducerEvent>,
    epoch: u64,
    topic_epoch: Option<u64>,
    pending: VecDeque<OpSend>,
    batch: BatchContainer,
    batch_deadline: Option<tokio::time::Instant>,
    next_seq: u64,
    seq_known: bool,
    flushes: Vec<(u64, oneshot::Sender<Result<()>>)>,
    needs_reconnect: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl PartitionProducer {
    /// Connects and registers the producer, then runs it on a task. Returns the command
    /// channel and the producer name the broker confirmed.
    pub(crate) async fn start(
        client: PulsarClient,
        topic: String,
        partition: i32,
        opts: Arc<ProducerOptions>,
    ) -> Result<(mpsc::Sender<ProducerCmd>, String)> {
        let (_, events) = mpsc::unbounded_channel();
        let mut p = PartitionProducer {
            producer_id: client.next_handle_id(),
            client,
            topic,
            partition,
            name: opts.name.clone(),
            opts,
            conn: None,
            events,
            epoch: 0,
            topic_epoch: None,
            pending: VecDeque::new(),
            batch: BatchContainer::default(),
            batch_deadline: None,
            next_seq: 0,
            seq_known: false,
            flushes: Vec::new(),
            needs_reconnect: false,
        };
        p.connect_once().await?;
        let name = p.name.clone().unwrap_or_default();
        let (tx, rx) = mpsc::channel(p.opts.max_pending.max(1));
        tokio::spawn(p.run(rx));
        Ok((tx, name))
    }

    async fn connect_once(&mut self) -> Result<()> {
        let conn = self.client.lookup(&self.topic).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        conn.register_producer(self.producer_id, tx);
        let cmd = CommandProducer {
            topic: self.topic.clone(),
            producer_id: self.producer_id,
            request_id: 0,
            producer_name: self.name.clone(),
            user_provided_producer_name: Some(self.opts.name.is_some()),
            epoch: Some(self.epoch),
            producer_access_mode: Some(self.opts.access_mode as i32),
            topic_epoch: self.topic_epoch,
            initial_subscription_name: self.opts.initial_subscription.clone(),
            metadata: self
                .opts
                .properties
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            ..Default::default()
        };
        let resp = conn
            .request(
                move |id| {
                    let mut c = cmd;
                    c.request_id = id;
                    c.into_command()
                },
                self.client.operation_timeout(),
            )
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                conn.unregister_producer(self.producer_id);
                return Err(e);
            }
        };
        let s = resp
            .producer_success
            .ok_or_else(|| Error::UnexpectedResponse {
                expected: "PRODUCER_SUCCESS",
                got: format!("{:?}", resp.r#type),
            })?;
        self.name = Some(s.producer_name);
        if s.topic_epoch.is_some() {
            self.topic_epoch = s.topic_epoch;
        }
        let last = s.last_sequence_id.unwrap_or(-1);
        if !self.seq_known {
            self.seq_known = true;
            if last >= 0 {
                self.next_seq = last as u64 + 1;
            }
        }
        self.epoch += 1;
        self.conn = Some(conn);
        self.events = rx;
        self.needs_reconnect = false;
        tracing::debug!(topic = %self.topic, name = ?self.name, last, "producer ready");
        Ok(())
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<ProducerCmd>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            if self.needs_reconnect {
                if let Err(e) = self.reconnect(&mut cmds).await {
                    self.fail_all(&e);
                    self.drain_failing(&mut cmds, &e).await;
                    return;
                }
            }
            let can_accept = self.pending.len() < self.opts.max_pending;
            let deadline = self.batch_deadline;
            tokio::select! {
                cmd = cmds.recv(), if can_accept => match cmd {
                    None => { self.shutdown().await; return; }
                    Some(ProducerCmd::Send(msg, ack)) => self.on_send(*msg, ack),
                    Some(ProducerCmd::SendRaw(raw, ack)) => self.on_send_raw(*raw, ack),
                    Some(ProducerCmd::Flush(tx)) => self.on_flush(tx),
                    Some(ProducerCmd::Close(tx)) => {
                        self.shutdown().await;
                        let _ = tx.send(Ok(()));
                        return;
                    }
                },
                ev = self.events.recv() => match ev {
                    Some(ProducerEvent::Receipt(r)) => self.on_receipt(r),
                    Some(ProducerEvent::SendError(e)) => self.on_send_error(e),
                    Some(ProducerEvent::Closed) | None => self.needs_reconnect = true,
                },
                _ = sleep_until(deadline), if deadline.is_some() => self.flush_batch(),
                _ = tick.tick() => self.expire_sends(),
            }
        }
    }

    async fn reconnect(&mut self, cmds: &mut mpsc::Receiver<ProducerCmd>) -> Result<()> {
        if let Some(c) = self.conn.take() {
            c.unregister_producer(self.producer_id);
        }
        let mut backoff = Backoff::new();
        loop {
            match self.connect_once().await {
                Ok(()) => {
                    for op in &self.pending {
                        let conn = self
                            .conn
                            .as_ref()
                            .expect("connect_once sets the connection");
                        let _ = conn.send(send_frame(self.producer_id, op));
                    }
                    return Ok(());
                }
                Err(e) if e.is_retriable() => {
                    let delay = backoff.next_delay();
                    tracing::info!(topic = %self.topic, error = %e, ?delay, "producer reconnecting");
                    // Keep honouring close requests and send timeouts while we wait.
                    let sleep = tokio::time::sleep(delay);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            cmd = cmds.recv(), if self.pending.len() < self.opts.max_pending => match cmd {
                                None => return Err(Error::Closed("producer")),
                                Some(ProducerCmd::Send(m, a)) => self.on_send(*m, a),
                                Some(ProducerCmd::SendRaw(r, a)) => self.on_send_raw(*r, a),
                                Some(ProducerCmd::Flush(tx)) => self.on_flush(tx),
                                Some(ProducerCmd::Close(tx)) => {
                                    let _ = tx.send(Ok(()));
                                    return Err(Error::Closed("producer"));
                                }
                            },
                        }
                    }
                    self.expire_sends();
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn on_send(&mut self, msg: ProducerMessage, ack: Ack) {
        let seq = msg.sequence_id.unwrap_or(self.next_seq);
        self.next_seq = self.next_seq.max(seq + 1);
        match self.opts.batching {
            Some(policy) if msg.deliver_at.is_none() => {
                if self.batch.would_overflow(&policy, &msg) {
                    self.flush_batch();
                }
                if self.batch.is_empty() {
                    self.batch_deadline = Some(tokio::time::Instant::now() + policy.max_delay);
                }
                self.batch.add(&msg, seq, ack);
                if self.batch.len() >= policy.max_messages || self.batch.bytes() >= policy.max_bytes
                {
                    self.flush_batch();
                }
            }
            _ => {
                self.flush_batch();
                let mut md = single_metadata(self.name(), seq, now_ms(), &msg);
                match pack(&mut md, self.opts.compression, &msg.payload) {
                    Ok(body) => self.enqueue(md, body, seq, seq, 1, vec![ack], false),
                    Err(e) => {
                        let _ = ack.send(Err(e));
                    }
                }
            }
        }
    }

    /// Sends a stored message unchanged except for the producer name: never batched with
    /// others; its `highest_sequence_id` is dropped so the sequence id alone identifies it.
    fn on_send_raw(&mut self, (mut md, body): (MessageMetadata, Bytes), ack: Ack) {
        self.flush_batch();
        let seq = md.sequence_id;
        self.next_seq = self.next_seq.max(seq + 1);
        md.producer_name = self.name().to_owned();
        md.highest_sequence_id = None;
        let batch = md.num_messages_in_batch.is_some();
        let n = md.num_messages_in_batch.unwrap_or(1).max(1);
        self.enqueue(md, body, seq, seq, n, vec![ack], batch);
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    fn flush_batch(&mut self) {
        self.batch_deadline = None;
        let Some(b) = self.batch.take() else { return };
        let n = b.acks.len() as i32;
        let mut md = MessageMetadata {
            producer_name: self.name().to_owned(),
            sequence_id: b.sequence_id,
            publish_time: now_ms(),
            num_messages_in_batch: Some(n),
            highest_sequence_id: Some(b.highest_sequence_id),
            ..Default::default()
        };
        match pack(&mut md, self.opts.compression, &b.body) {
            Ok(body) => self.enqueue(
                md,
                body,
                b.sequence_id,
                b.highest_sequence_id,
                n,
                b.acks,
                true,
            ),
            Err(e) => {
                for a in b.acks {
                    let _ = a.send(Err(Error::Closed("batch (compression failed)")));
                }
                tracing::warn!(error = %e, "dropping batch that failed to compress");
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &mut self,
        md: MessageMetadata,
        body: Bytes,
        sequence_id: u64,
        highest_sequence_id: u64,
        num_messages: i32,
        acks: Vec<Ack>,
        batch: bool,
    ) {
        let raw = encode_payload(&md, &body);
        let max = self
            .conn
            .as_ref()
            .map_or(DEFAULT_MAX_MESSAGE_SIZE, |c| c.max_message_size());
        if raw.len() > max {
            for a in acks {
                let _ = a.send(Err(Error::FrameTooLarge {
                    size: raw.len(),
                    max,
                }));
            }
            return;
        }
        let op = OpSend {
            sequence_id,
            highest_sequence_id,
            num_messages,
            raw,
            acks,
            batch,
            created: Instant::now(),
        };
        if let Some(conn) = &self.conn {
            if conn.send(send_frame(self.producer_id, &op)).is_err() {
                self.needs_reconnect = true;
            }
        }
        self.pending.push_back(op);
    }

    fn on_receipt(&mut self, r: CommandSendReceipt) {
        let Some(front) = self.pending.front() else {
            return;
        };
        if r.sequence_id < front.sequence_id {
            tracing::debug!(seq = r.sequence_id, "receipt for a send already completed");
            return;
        }
        if r.sequence_id > front.sequence_id {
            // A receipt was lost; resend everything on a fresh connection.
            tracing::warn!(
                expected = front.sequence_id,
                got = r.sequence_id,
                "out of order receipt"
            );
            if let Some(c) = &self.conn {
                c.close();
            }
            self.needs_reconnect = true;
            return;
        }
        let op = self.pending.pop_front().expect("front exists");
        let id = r.message_id.unwrap_or_default();
        let n = op.acks.len() as i32;
        for (i, ack) in op.acks.into_iter().enumerate() {
            let mut mid = MessageId::new(id.ledger_id, id.entry_id, self.partition);
            if op.batch {
                mid.batch_index = i as i32;
                mid.batch_size = n;
            }
            let _ = ack.send(Ok(mid));
        }
        let done = op.sequence_id;
        let flushes = std::mem::take(&mut self.flushes);
        for (bound, tx) in flushes {
            if bound <= done {
                let _ = tx.send(Ok(()));
            } else {
                self.flushes.push((bound, tx));
            }
        }
    }

    fn on_send_error(&mut self, e: CommandSendError) {
        let code = ServerError::try_from(e.error).unwrap_or(ServerError::UnknownError);
        match code {
            ServerError::TopicTerminatedError
            | ServerError::ProducerFenced
            | ServerError::NotAllowedError
            | ServerError::ProducerBlockedQuotaExceededException => {
                self.fail_all(&Error::Server {
                    code,
                    message: e.message,
                });
            }
            _ => {
                tracing::warn!(?code, message = %e.message, "send error, resending on a new connection");
                if let Some(c) = &self.conn {
                    c.unregister_producer(self.producer_id);
                }
                self.needs_reconnect = true;
            }
        }
    }

    fn on_flush(&mut self, tx: oneshot::Sender<Result<()>>) {
        self.flush_batch();
        match self.pending.back() {
            None => {
                let _ = tx.send(Ok(()));
            }
            Some(op) => self.flushes.push((op.sequence_id, tx)),
        }
    }

    fn expire_sends(&mut self) {
        let timeout = self.opts.send_timeout;
        if timeout.is_zero() {
            return;
        }
        while self
            .pending
            .front()
            .is_some_and(|op| op.created.elapsed() > timeout)
        {
            let op = self.pending.pop_front().expect("front exists");
            for a in op.acks {
                let _ = a.send(Err(Error::Timeout {
                    what: "send",
                    after: timeout,
                }));
            }
        }
    }

    fn fail_all(&mut self, e: &Error) {
        let msg = e.to_string();
        let mk = || match e {
            Error::Server { code, .. } => Error::Server {
                code: *code,
                message: msg.clone(),
            },
            _ => Error::Closed("producer"),
        };
        for op in self.pending.drain(..) {
            for a in op.acks {
                let _ = a.send(Err(mk()));
            }
        }
        if let Some(b) = self.batch.take() {
            for a in b.acks {
                let _ = a.send(Err(mk()));
            }
        }
        for (_, f) in self.flushes.drain(..) {
            let _ = f.send(Err(mk()));
        }
    }

    async fn drain_failing(&mut self, cmds: &mut mpsc::Receiver<ProducerCmd>, e: &Error) {
        tracing::warn!(topic = %self.topic, error = %e, "producer failed permanently");
        while let Some(cmd) = cmds.recv().await {
            match cmd {
                ProducerCmd::Send(_, a) | ProducerCmd::SendRaw(_, a) => {
                    let _ = a.send(Err(Error::Closed("producer")));
                }
                ProducerCmd::Flush(tx) | ProducerCmd::Close(tx) => {
                    let _ = tx.send(Err(Error::Closed("producer")));
                }
            }
        }
    }

    /// Flushes, waits (bounded by the send timeout) for pending receipts, then closes.
    async fn shutdown(&mut self) {
        self.flush_batch();
        let deadline = Instant::now()
            + if self.opts.send_timeout.is_zero() {
                Duration::from_secs(30)
            } else {
                self.opts.send_timeout
            };
        while !self.pending.is_empty() && !self.needs_reconnect && Instant::now() < deadline {
            match tokio::time::timeout_at(deadline.into(), self.events.recv()).await {
                Ok(Some(ProducerEvent::Receipt(r))) => self.on_receipt(r),
                Ok(Some(ProducerEvent::SendError(e))) => self.on_send_error(e),
                _ => break,
            }
        }
        self.fail_all(&Error::Closed("producer"));
        if let Some(c) = self.conn.take() {
            c.unregister_producer(self.producer_id);
            let pid = self.producer_id;
            let _ = c
                .request(
                    |id| commands::close_producer(pid, id),
                    self.client.operation_timeout(),
                )
                .await;
        }
    }
}

fn send_frame(producer_id: u64, op: &OpSend) -> Outbound {
    let mut cmd = commands::send(producer_id, op.sequence_id, op.num_messages);
    if let Some(s) = cmd.send.as_mut() {
        if op.batch {
            s.highest_sequence_id = Some(op.highest_sequence_id);
        }
    }
    Outbound::with_raw(cmd, op.raw.clone())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
