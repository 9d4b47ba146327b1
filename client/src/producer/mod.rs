//! Producers: [`ProducerBuilder`] creates a [`Producer`] on a topic (one partition
//! producer per partition of a partitioned topic). `send` queues a message and returns a
//! [`SendFuture`] that resolves to the [`MessageId`] once the broker's receipt arrives, so
//! many sends can be in flight at once.

mod batch;
mod partition;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use batch::BatchingPolicy;
use magnetar_proto::pulsar::{CompressionType, ProducerAccessMode};
use tokio::sync::{mpsc, oneshot};

use crate::client::PulsarClient;
use crate::error::{Error, Result};
use crate::message::{MessageId, ProducerMessage};
use crate::topic::{normalize_topic, partition_name};
use crate::wire::hash;
use partition::{PartitionProducer, ProducerCmd};

/// How messages without a key pick a partition (keyed messages always hash the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoutingMode {
    /// Rotate over partitions.
    #[default]
    RoundRobin,
    /// Always use this partition.
    Single(u32),
}

/// Producer settings (see [`ProducerBuilder`]).
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// Producer name; the broker assigns one when `None`. A fixed name enables
    /// deduplication across restarts.
    pub name: Option<String>,
    /// Batching limits; `None` sends every message as its own entry.
    pub batching: Option<BatchingPolicy>,
    /// Payload compression.
    pub compression: CompressionType,
    /// Most sends awaiting a receipt per partition; `send` waits when it is reached
    /// (or fails with [`Error::QueueFull`] when `block_if_queue_full` is false).
    pub max_pending: usize,
    /// Whether `send` waits for room in a full pending queue (default) or fails.
    pub block_if_queue_full: bool,
    /// Fail a send that got no receipt within this time (zero: never).
    pub send_timeout: Duration,
    /// Shared or exclusive access to the topic.
    pub access_mode: ProducerAccessMode,
    /// Partition choice for messages without a key.
    pub routing: RoutingMode,
    /// Producer properties sent to the broker.
    pub properties: HashMap<String, String>,
    /// Subscription the broker creates together with the topic, if any.
    pub initial_subscription: Option<String>,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            name: None,
            batching: None,
            compression: CompressionType::None,
            max_pending: 1000,
            block_if_queue_full: true,
            send_timeout: Duration::from_secs(30),
            access_mode: ProducerAccessMode::Shared,
            routing: RoutingMode::RoundRobin,
            properties: HashMap::new(),
            initial_subscription: None,
        }
    }
}

/// Builds a [`Producer`].
#[derive(Debug)]
pub struct ProducerBuilder {
    client: PulsarClient,
    topic: Option<String>,
    opts: ProducerOptions,
}

impl ProducerBuilder {
    pub(crate) fn new(client: PulsarClient) -> Self {
        ProducerBuilder {
            client,
            topic: None,
            opts: ProducerOptions::default(),
        }
    }

    /// Topic to publish to (short names become `persistent://public/default/...`).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Fixed producer name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.opts.name = Some(name.into());
        self
    }

    /// Enables batching with `policy`.
    pub fn batching(mut self, policy: BatchingPolicy) -> Self {
        self.opts.batching = Some(policy);
        self
    }

    /// Compression codec (NONE, LZ4, ZLIB, ZSTD or SNAPPY).
    pub fn compression(mut self, c: CompressionType) -> Self {
        self.opts.compression = c;
        self
    }

    /// Most sends in flight per partition.
    pub fn max_pending(mut self, n: usize) -> Self {
        self.opts.max_pending = n.max(1);
        self
    }

    /// Whether `send` waits while the pending queue is full (default true) or fails at
    /// once with [`Error::QueueFull`].
    pub fn block_if_queue_full(mut self, block: bool) -> Self {
        self.opts.block_if_queue_full = block;
        self
    }

    /// Send timeout (zero disables it).
    pub fn send_timeout(mut self, d: Duration) -> Self {
        self.opts.send_timeout = d;
        self
    }

    /// Access mode.
    pub fn access_mode(mut self, m: ProducerAccessMode) -> Self {
        self.opts.access_mode = m;
        self
    }

    /// Routing of messages without a key.
    pub fn routing(mut self, r: RoutingMode) -> Self {
        self.opts.routing = r;
        self
    }

    /// Adds a producer property.
    pub fn property(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.opts.properties.insert(k.into(), v.into());
        self
    }

    /// Replaces all options at once.
    pub fn options(mut self, opts: ProducerOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Looks the topic up, registers the producer(s) and returns once ready.
    pub async fn create(self) -> Result<Producer> {
        let topic = normalize_topic(self.topic.as_deref().ok_or(Error::InvalidArgument {
            what: "producer topic",
            value: String::new(),
        })?)?;
        let n = self.client.partitions(&topic).await?;
        let opts = Arc::new(self.opts);
        let mut partitions = Vec::new();
        let mut name = String::new();
        if n == 0 {
            let (tx, nm) =
                PartitionProducer::start(self.client.clone(), topic.clone(), -1, opts.clone())
                    .await?;
            partitions.push(tx);
            name = nm;
        } else {
            for i in 0..n {
                let (tx, nm) = PartitionProducer::start(
                    self.client.clone(),
                    partition_name(&topic, i),
                    i as i32,
                    opts.clone(),
                )
                .await?;
                partitions.push(tx);
                if name.is_empty() {
                    name = nm;
                }
            }
        }
        Ok(Producer {
            topic,
            name,
            partitions,
            next: AtomicUsize::new(0),
            routing: opts.routing,
            block_if_full: opts.block_if_queue_full,
        })
    }
}

/// Publishes messages to one topic. Dropping it closes the partition producers after
/// their pending sends complete.
#[derive(Debug)]
pub struct Producer {
    topic: String,
    name: String,
    partitions: Vec<mpsc::Sender<ProducerCmd>>,
    next: AtomicUsize,
    routing: RoutingMode,
    block_if_full: bool,
}

/// Resolves to the id of a sent message once the broker acknowledged it.
#[derive(Debug)]
pub struct SendFuture(oneshot::Receiver<Result<MessageId>>);

impl Future for SendFuture {
    type Output = Result<MessageId>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed("producer"))))
    }
}

impl Producer {
    /// Full topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Producer name (of the first partition).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of partitions written to (1 for a non-partitioned topic).
    pub fn partitions(&self) -> usize {
        self.partitions.len()
    }

    fn route(&self, msg: &ProducerMessage) -> usize {
        let n = self.partitions.len();
        if n <= 1 {
            return 0;
        }
        if let Some(k) = &msg.key {
            return hash::partition_for_key(k, n as u32) as usize;
        }
        match self.routing {
            RoutingMode::Single(p) => (p as usize) % n,
            RoutingMode::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
        }
    }

    /// Queues `msg`, waiting while the pending queue is full (or failing with
    /// [`Error::QueueFull`] if the producer is set not to block). The returned future
    /// resolves after the broker's receipt.
    pub async fn send(&self, msg: impl Into<ProducerMessage>) -> Result<SendFuture> {
        let msg = msg.into();
        let p = self.route(&msg);
        let (tx, rx) = oneshot::channel();
        let cmd = ProducerCmd::Send(Box::new(msg), tx);
        if self.block_if_full {
            self.partitions[p]
                .send(cmd)
                .await
                .map_err(|_| Error::Closed("producer"))?;
        } else {
            self.partitions[p].try_send(cmd).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Error::QueueFull,
                mpsc::error::TrySendError::Closed(_) => Error::Closed("producer"),
            })?;
        }
        Ok(SendFuture(rx))
    }

    /// Queues an already-encoded message: `metadata` (with the caller's `sequence_id`;
    /// the producer name is replaced by this producer's) and its `body` as stored (possibly
    /// compressed or a batch), sent unchanged. For republishing stored messages (the
    /// geo-replicator); non-partitioned topics only (partition 0 is used).
    pub async fn send_raw(
        &self,
        metadata: magnetar_proto::pulsar::MessageMetadata,
        body: bytes::Bytes,
    ) -> Result<SendFuture> {
        let (tx, rx) = oneshot::channel();
        self.partitions[0]
            .send(ProducerCmd::SendRaw(Box::new((metadata, body)), tx))
            .await
            .map_err(|_| Error::Closed("producer"))?;
        Ok(SendFuture(rx))
    }

    /// Sends and waits for the receipt.
    pub async fn send_and_wait(&self, msg: impl Into<ProducerMessage>) -> Result<MessageId> {
        self.send(msg).await?.await
    }

    /// Sends the current batch and waits until every message sent so far is acknowledged.
    pub async fn flush(&self) -> Result<()> {
        let mut waits = Vec::new();
        for p in &self.partitions {
            let (tx, rx) = oneshot::channel();
            p.send(ProducerCmd::Flush(tx))
                .await
                .map_err(|_| Error::Closed("producer"))?;
            waits.push(rx);
        }
        for w in waits {
            w.await.map_err(|_| Error::Closed("producer"))??;
        }
        Ok(())
    }

    /// Flushes and closes the producer on the broker.
    pub async fn close(self) -> Result<()> {
        let mut waits = Vec::new();
        for p in &self.partitions {
            let (tx, rx) = oneshot::channel();
            if p.send(ProducerCmd::Close(tx)).await.is_ok() {
                waits.push(rx);
            }
        }
        for w in waits {
            let _ = w.await;
        }
        Ok(())
    }
}
