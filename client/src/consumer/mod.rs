//! Consumers: [`ConsumerBuilder`] subscribes to a topic (every partition of a
//! partitioned topic) and returns a [`Consumer`] that receives [`Message`]s, acks them
//! individually or cumulatively, negatively acks them for delayed redelivery, and can
//! seek or unsubscribe. Dead-letter routing and ack timeouts are client-side, as in
//! Pulsar.

mod partition;
mod tracker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::client::PulsarClient;
use crate::error::{Error, Result};
use crate::message::{Message, MessageId};
use crate::topic::{normalize_topic, partition_name};
use crate::wire::DEFAULT_MAX_MESSAGE_SIZE;
use partition::{ConsumerCmd, PartitionConsumer, SeekTarget};

pub use magnetar_proto::pulsar::command_subscribe::{InitialPosition, SubType};

/// Sends messages redelivered too often to a dead-letter topic instead of the application.
#[derive(Debug, Clone)]
pub struct DeadLetterPolicy {
    /// Deliveries after which a message goes to the dead-letter topic.
    pub max_redeliver_count: u32,
    /// Topic to use; default `{topic}-{subscription}-DLQ`.
    pub dead_letter_topic: Option<String>,
}

/// Consumer settings (see [`ConsumerBuilder`]).
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Subscription name.
    pub subscription: String,
    /// Subscription type.
    pub sub_type: SubType,
    /// Consumer name (broker-generated when `None`).
    pub consumer_name: Option<String>,
    /// Where a new subscription starts.
    pub initial_position: InitialPosition,
    /// Messages the broker may push ahead of `receive` (permits).
    pub receiver_queue_size: u32,
    /// Redeliver messages not acked within this time.
    pub ack_timeout: Option<Duration>,
    /// Delay before a negatively acked message is redelivered.
    pub negative_ack_delay: Duration,
    /// Dead-letter routing.
    pub dead_letter: Option<DeadLetterPolicy>,
    /// Failover priority (lower is preferred).
    pub priority_level: Option<i32>,
    /// Read the compacted view of the topic.
    pub read_compacted: bool,
    /// Replicate the subscription state across clusters.
    pub replicate_subscription_state: bool,
    /// Consumer properties sent to the broker.
    pub properties: HashMap<String, String>,
    /// False for readers: the broker keeps no cursor.
    pub durable: bool,
    /// Start position of a non-durable subscription.
    pub start_message_id: Option<MessageId>,
    /// Largest decompressed batch accepted.
    pub max_message_size: usize,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            subscription: String::new(),
            sub_type: SubType::Exclusive,
            consumer_name: None,
            initial_position: InitialPosition::Latest,
            receiver_queue_size: 1000,
            ack_timeout: None,
            negative_ack_delay: Duration::from_secs(60),
            dead_letter: None,
            priority_level: None,
            read_compacted: false,
            replicate_subscription_state: false,
            properties: HashMap::new(),
            durable: true,
            start_message_id: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE * 4,
        }
    }
}

/// Builds a [`Consumer`].
#[derive(Debug)]
pub struct ConsumerBuilder {
    client: PulsarClient,
    topic: Option<String>,
    opts: ConsumerOptions,
}

impl ConsumerBuilder {
    pub(crate) fn new(client: PulsarClient) -> Self {
        ConsumerBuilder {
            client,
            topic: None,
            opts: ConsumerOptions::default(),
        }
    }

    /// Topic to consume.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Subscription name (required).
    pub fn subscription(mut self, s: impl Into<String>) -> Self {
        self.opts.subscription = s.into();
        self
    }

    /// Subscription type (default Exclusive).
    pub fn sub_type(mut self, t: SubType) -> Self {
        self.opts.sub_type = t;
        self
    }

    /// Consumer name.
    pub fn consumer_name(mut self, n: impl Into<String>) -> Self {
        self.opts.consumer_name = Some(n.into());
        self
    }

    /// Initial position of a new subscription (default Latest).
    pub fn initial_position(mut self, p: InitialPosition) -> Self {
        self.opts.initial_position = p;
        self
    }

    /// Receiver queue size (default 1000).
    pub fn receiver_queue_size(mut self, n: u32) -> Self {
        self.opts.receiver_queue_size = n.max(1);
        self
    }

    /// Ack timeout.
    pub fn ack_timeout(mut self, d: Duration) -> Self {
        self.opts.ack_timeout = Some(d);
        self
    }

    /// Negative ack redelivery delay (default 60 s).
    pub fn negative_ack_delay(mut self, d: Duration) -> Self {
        self.opts.negative_ack_delay = d;
        self
    }

    /// Dead-letter policy.
    pub fn dead_letter(mut self, p: DeadLetterPolicy) -> Self {
        self.opts.dead_letter = Some(p);
        self
    }

    /// Failover priority level.
    pub fn priority_level(mut self, p: i32) -> Self {
        self.opts.priority_level = Some(p);
        self
    }

    /// Replaces all options (the subscription name included).
    pub fn options(mut self, opts: ConsumerOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Subscribes (every partition) and returns once the broker accepted.
    pub async fn subscribe(self) -> Result<Consumer> {
        let topic = normalize_topic(self.topic.as_deref().ok_or(Error::InvalidArgument {
            what: "consumer topic",
            value: String::new(),
        })?)?;
        if self.opts.subscription.is_empty() {
            return Err(Error::InvalidArgument {
                what: "subscription name",
                value: String::new(),
            });
        }
        let n = self.client.partitions(&topic).await?;
        let opts = Arc::new(self.opts);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut partitions = Vec::new();
        let mut epochs = Vec::new();
        let names: Vec<(String, i32)> = if n == 0 {
            vec![(topic.clone(), -1)]
        } else {
            (0..n)
                .map(|i| (partition_name(&topic, i), i as i32))
                .collect()
        };
        for (name, idx) in names {
            let epoch = Arc::new(AtomicU64::new(0));
            let p = PartitionConsumer::start(
                self.client.clone(),
                name,
                idx,
                opts.clone(),
                tx.clone(),
                epoch.clone(),
            )
            .await?;
            epochs.push(epoch);
            partitions.push(p);
        }
        Ok(Consumer {
            topic,
            subscription: opts.subscription.clone(),
            partitions,
            epochs,
            rx: Mutex::new(rx),
        })
    }
}

/// Receives messages from a subscription.
#[derive(Debug)]
pub struct Consumer {
    topic: String,
    subscription: String,
    partitions: Vec<mpsc::UnboundedSender<ConsumerCmd>>,
    epochs: Vec<Arc<AtomicU64>>,
    rx: Mutex<mpsc::UnboundedReceiver<(u64, Message)>>,
}

impl Consumer {
    /// Full topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Subscription name.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    fn index(&self, id: &MessageId) -> usize {
        usize::try_from(id.partition)
            .unwrap_or(0)
            .min(self.partitions.len() - 1)
    }

    fn part(&self, id: &MessageId) -> &mpsc::UnboundedSender<ConsumerCmd> {
        &self.partitions[self.index(id)]
    }

    fn cmd(&self, id: &MessageId, c: ConsumerCmd) -> Result<()> {
        self.part(id).send(c).map_err(|_| Error::Closed("consumer"))
    }

    /// Waits for the next message.
    pub async fn receive(&self) -> Result<Message> {
        let mut rx = self.rx.lock().await;
        loop {
            let (epoch, m) = rx.recv().await.ok_or(Error::Closed("consumer"))?;
            let i = self.index(&m.id);
            if epoch < self.epochs[i].load(Ordering::Acquire) {
                // Queued before a seek or reconnect; the broker sends it again.
                continue;
            }
            let _ = self.partitions[i].send(ConsumerCmd::Consumed);
            return Ok(m);
        }
    }

    /// Waits up to `timeout` for the next message.
    pub async fn receive_timeout(&self, timeout: Duration) -> Result<Option<Message>> {
        match tokio::time::timeout(timeout, self.receive()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
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

    /// Acknowledges one message.
    pub fn ack(&self, msg: &Message) -> Result<()> {
        self.ack_id(&msg.id)
    }

    /// Acknowledges one message by id.
    pub fn ack_id(&self, id: &MessageId) -> Result<()> {
        self.cmd(id, ConsumerCmd::Ack(*id))
    }

    /// Acknowledges every message up to and including `msg` (not for Shared/Key_Shared).
    pub fn ack_cumulative(&self, msg: &Message) -> Result<()> {
        self.cmd(&msg.id, ConsumerCmd::AckCumulative(msg.id))
    }

    /// Asks for redelivery of `msg` after the negative-ack delay.
    pub fn nack(&self, msg: &Message) -> Result<()> {
        self.cmd(&msg.id, ConsumerCmd::Nack(msg.id))
    }

    /// Asks the broker to redeliver every unacknowledged message now.
    pub fn redeliver_unacknowledged(&self) -> Result<()> {
        for p in &self.partitions {
            p.send(ConsumerCmd::RedeliverAll)
                .map_err(|_| Error::Closed("consumer"))?;
        }
        Ok(())
    }

    async fn each<T>(
        &self,
        mk: impl Fn(oneshot::Sender<Result<T>>) -> ConsumerCmd,
    ) -> Result<Vec<T>> {
        let mut waits = Vec::new();
        for p in &self.partitions {
            let (tx, rx) = oneshot::channel();
            p.send(mk(tx)).map_err(|_| Error::Closed("consumer"))?;
            waits.push(rx);
        }
        let mut out = Vec::new();
        for w in waits {
            out.push(w.await.map_err(|_| Error::Closed("consumer"))??);
        }
        Ok(out)
    }

    /// Moves the subscription to `id` (every partition); messages queued before the seek
    /// are dropped.
    pub async fn seek(&self, id: MessageId) -> Result<()> {
        self.each(|tx| ConsumerCmd::Seek(SeekTarget::Id(id), tx))
            .await?;
        Ok(())
    }

    /// Moves the subscription to the first message published at or after `publish_time_ms`.
    pub async fn seek_time(&self, publish_time_ms: u64) -> Result<()> {
        self.each(|tx| ConsumerCmd::Seek(SeekTarget::Time(publish_time_ms), tx))
            .await?;
        Ok(())
    }

    /// Last message id of each partition (one entry for a non-partitioned topic).
    pub async fn last_message_ids(&self) -> Result<Vec<MessageId>> {
        self.each(ConsumerCmd::LastMessageId).await
    }

    /// Deletes the subscription and closes the consumer.
    pub async fn unsubscribe(self) -> Result<()> {
        self.each(ConsumerCmd::Unsubscribe).await.map(|_| ())
    }

    /// Closes the consumer (the subscription stays).
    pub async fn close(self) -> Result<()> {
        self.each(ConsumerCmd::Close).await.map(|_| ())
    }
}
