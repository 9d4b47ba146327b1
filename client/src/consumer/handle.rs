//! [`Consumer`]: the application's handle. It pulls from the queue all partition
//! consumers feed, drops messages made stale by a seek or reconnect, and routes acks and
//! other commands to the partition consumer of the message's topic.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;

use super::partition::{ConsumerCmd, SeekTarget};
use super::retry::RetryProducers;
use super::topics::{Shared, Slot};
use crate::error::{Error, Result};
use crate::message::{Message, MessageId};

/// Receives messages from a subscription on one or more topics.
#[derive(Debug)]
pub struct Consumer {
    pub(super) shared: Arc<Shared>,
    /// Topics named at subscribe time (the retry-letter topic included).
    named: Vec<String>,
    pub(super) retry_topic: Option<String>,
    rx: Mutex<mpsc::UnboundedReceiver<(u64, Message)>>,
    /// A message taken out of the queue that did not fit the previous batch; delivered
    /// first. Its own lock, so a seek can drop it while a receive waits on the queue.
    stash: parking_lot::Mutex<Option<Message>>,
    discovery: Option<CancellationToken>,
    pub(super) retry: RetryProducers,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(t) = &self.discovery {
            t.cancel();
        }
    }
}

impl Consumer {
    pub(super) fn new(
        shared: Arc<Shared>,
        named: Vec<String>,
        retry_topic: Option<String>,
        rx: mpsc::UnboundedReceiver<(u64, Message)>,
        discovery: Option<CancellationToken>,
    ) -> Self {
        Consumer {
            shared,
            named,
            retry_topic,
            rx: Mutex::new(rx),
            stash: parking_lot::Mutex::new(None),
            discovery,
            retry: Default::default(),
        }
    }

    /// Full name of the first topic named at subscribe time (empty for a consumer given
    /// only a pattern; see [`Consumer::topics`]).
    pub fn topic(&self) -> &str {
        self.named.first().map(String::as_str).unwrap_or("")
    }

    /// Every topic subscribed so far (partitioned topics by their base name, pattern
    /// matches included), sorted.
    pub fn topics(&self) -> Vec<String> {
        self.shared.topics()
    }

    /// Subscription name.
    pub fn subscription(&self) -> &str {
        &self.shared.opts.subscription
    }

    fn slot(&self, msg_topic: Option<&str>, id: &MessageId) -> Result<Slot> {
        if let Some(s) = msg_topic.and_then(|t| self.shared.slot_of_topic(t)) {
            return Ok(s);
        }
        if self.named.len() <= 1 && self.discovery.is_none() {
            // One topic: slots are in partition order.
            if let Some(s) = self
                .shared
                .slot_at(usize::try_from(id.partition).unwrap_or(0))
            {
                return Ok(s);
            }
        }
        Err(Error::InvalidArgument {
            what: "message id (ack a Message on a multi-topic consumer)",
            value: id.to_string(),
        })
    }

    fn cmd(&self, msg_topic: Option<&str>, id: &MessageId, c: ConsumerCmd) -> Result<()> {
        self.slot(msg_topic, id)?
            .tx
            .send(c)
            .map_err(|_| Error::Closed("consumer"))
    }

    /// The next current message from the queue (messages of an older epoch are dropped).
    async fn next(&self, rx: &mut mpsc::UnboundedReceiver<(u64, Message)>) -> Result<Message> {
        if let Some(m) = self.stash.lock().take() {
            return Ok(m);
        }
        let shared = &self.shared;
        loop {
            let (epoch, m) = rx.recv().await.ok_or(Error::Closed("consumer"))?;
            let Some(slot) = shared.slot_of_topic(&m.topic) else {
                continue;
            };
            if epoch < slot.epoch.load(Ordering::Acquire) {
                // Queued before a seek or reconnect; the broker sends it again.
                continue;
            }
            let _ = slot.tx.send(ConsumerCmd::Consumed);
            return Ok(m);
        }
    }

    /// Waits for the next message.
    pub async fn receive(&self) -> Result<Message> {
        let mut rx = self.rx.lock().await;
        self.next(&mut rx).await
    }

    /// Waits up to `timeout` for the next message.
    pub async fn receive_timeout(&self, timeout: Duration) -> Result<Option<Message>> {
        match tokio::time::timeout(timeout, self.receive()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Receives up to the [`BatchReceivePolicy`](super::BatchReceivePolicy) limits:
    /// returns as soon as the message or byte limit is reached, or when its timeout fires
    /// with whatever arrived (possibly nothing). Fails only if the consumer closed with
    /// nothing received.
    pub async fn batch_receive(&self) -> Result<Vec<Message>> {
        let policy = self.shared.opts.batch_receive;
        let deadline = tokio::time::Instant::now() + policy.timeout;
        let mut rx = self.rx.lock().await;
        let mut out: Vec<Message> = Vec::new();
        let mut bytes = 0usize;
        while out.len() < policy.max_messages && bytes < policy.max_bytes {
            let m = match tokio::time::timeout_at(deadline, self.next(&mut rx)).await {
                Err(_) => break,
                Ok(Err(e)) if out.is_empty() => return Err(e),
                Ok(Err(_)) => break,
                Ok(Ok(m)) => m,
            };
            if !out.is_empty() && bytes + m.payload.len() > policy.max_bytes {
                *self.stash.lock() = Some(m);
                break;
            }
            bytes += m.payload.len();
            out.push(m);
        }
        Ok(out)
    }

    /// The messages as a stream (ends when the consumer closes).
    pub fn stream(&self) -> impl Stream<Item = Result<Message>> + '_ {
        futures::stream::unfold(self, |c| async move {
            match c.receive().await {
                Ok(m) => Some((Ok(m), c)),
                Err(Error::Closed(_)) => None,
                Err(e) => Some((Err(e), c)),
            }
        })
    }

    /// Acknowledges one message (on the topic it came from).
    pub fn ack(&self, msg: &Message) -> Result<()> {
        self.cmd(Some(&msg.topic), &msg.id, ConsumerCmd::Ack(msg.id))
    }

    /// Acknowledges one message by id. The id alone names no topic: on a consumer of
    /// several topics use [`Consumer::ack`].
    pub fn ack_id(&self, id: &MessageId) -> Result<()> {
        self.cmd(None, id, ConsumerCmd::Ack(*id))
    }

    /// Acknowledges every message of `msg`'s topic (partition) up to and including `msg`
    /// (not for Shared/Key_Shared).
    pub fn ack_cumulative(&self, msg: &Message) -> Result<()> {
        self.cmd(
            Some(&msg.topic),
            &msg.id,
            ConsumerCmd::AckCumulative(msg.id),
        )
    }

    /// Asks for redelivery of `msg` after the negative-ack delay.
    pub fn nack(&self, msg: &Message) -> Result<()> {
        self.cmd(Some(&msg.topic), &msg.id, ConsumerCmd::Nack(msg.id))
    }

    /// Asks the broker to redeliver every unacknowledged message now.
    pub fn redeliver_unacknowledged(&self) -> Result<()> {
        for s in self.shared.all() {
            s.tx.send(ConsumerCmd::RedeliverAll)
                .map_err(|_| Error::Closed("consumer"))?;
        }
        Ok(())
    }

    async fn each<T>(
        &self,
        mk: impl Fn(oneshot::Sender<Result<T>>) -> ConsumerCmd,
    ) -> Result<Vec<T>> {
        let mut waits = Vec::new();
        for s in self.shared.all() {
            let (tx, rx) = oneshot::channel();
            s.tx.send(mk(tx)).map_err(|_| Error::Closed("consumer"))?;
            waits.push(rx);
        }
        let mut out = Vec::new();
        for w in waits {
            out.push(w.await.map_err(|_| Error::Closed("consumer"))??);
        }
        Ok(out)
    }

    /// Moves the subscription to `id` (every partition of every topic); messages queued
    /// before the seek are dropped.
    pub async fn seek(&self, id: MessageId) -> Result<()> {
        self.each(|tx| ConsumerCmd::Seek(SeekTarget::Id(id), tx))
            .await?;
        self.stash.lock().take();
        Ok(())
    }

    /// Moves the subscription to the first message published at or after `publish_time_ms`.
    pub async fn seek_time(&self, publish_time_ms: u64) -> Result<()> {
        self.each(|tx| ConsumerCmd::Seek(SeekTarget::Time(publish_time_ms), tx))
            .await?;
        self.stash.lock().take();
        Ok(())
    }

    /// Last message id of each partition (one entry per non-partitioned topic).
    pub async fn last_message_ids(&self) -> Result<Vec<MessageId>> {
        self.each(ConsumerCmd::LastMessageId).await
    }

    async fn finish(self, unsubscribe: bool) -> Result<()> {
        if let Some(t) = &self.discovery {
            t.cancel();
        }
        self.shared.shut();
        let producers: Vec<_> = self.retry.0.lock().await.drain().map(|(_, p)| p).collect();
        for p in producers {
            let _ = p.close().await;
        }
        if unsubscribe {
            self.each(ConsumerCmd::Unsubscribe).await.map(|_| ())
        } else {
            self.each(ConsumerCmd::Close).await.map(|_| ())
        }
    }

    /// Deletes the subscription (on every topic) and closes the consumer.
    pub async fn unsubscribe(self) -> Result<()> {
        self.finish(true).await
    }

    /// Closes the consumer (the subscription stays).
    pub async fn close(self) -> Result<()> {
        self.finish(false).await
    }
}
