//! A subscription: one task that owns its [`Dispatcher`], its [`AckState`] and its cursor,
//! reads entries from the topic log and sends MESSAGE frames to consumers' connections.
//! Connections talk to it through [`SubscriptionHandle`]. The task is split by concern:
//! `task` (the event loop, acks, seek, delivery), `read` (what to read next and what to do
//! with what was read) and `delayed` (delayed delivery and the bounded bytes held for
//! waiting entries).

mod delayed;
mod entry;
mod read;
mod task;

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use magnetar_client::wire::Outbound;
use tokio::sync::{mpsc, oneshot};

use crate::dispatch::{ConsumerInfo, ConsumerKey, SubType};
use crate::error::{BrokerError, Result};
use crate::position::Position;
use crate::storage::{SubCursor, TopicLog};

pub use entry::{entry_metadata, EntryMeta};

/// What a subscription sends to a connection.
#[derive(Debug)]
pub enum ConnEvent {
    /// Write this frame (boxed: a `BaseCommand` is large).
    Frame(Box<Outbound>),
    /// The broker closed this consumer (seek, unsubscribe by admin, topic close): forget
    /// it and tell the client with CLOSE_CONSUMER.
    ConsumerClosed(u64),
    /// The broker closed this producer: forget it and send CLOSE_PRODUCER.
    ProducerClosed(u64),
}

/// Sender side of a connection's outbound queue.
pub type ConnSender = mpsc::UnboundedSender<ConnEvent>;

/// How a subscription reaches one consumer.
#[derive(Debug, Clone)]
pub struct ConsumerSink {
    /// The consumer id on its connection.
    pub consumer_id: u64,
    /// The connection's outbound queue.
    pub out: ConnSender,
    /// Negotiated protocol version of the connection.
    pub protocol_version: i32,
}

/// Where a seek goes.
#[derive(Debug, Clone, Copy)]
pub enum SeekTarget {
    /// To this entry (inclusive).
    Position(Position),
    /// To the first entry published at or after this time (ms since epoch).
    PublishTime(u64),
}

/// One acknowledged message id.
#[derive(Debug, Clone)]
pub struct AckItem {
    /// Entry position.
    pub pos: Position,
    /// Batch ack set (bits = indexes still unacknowledged), if any.
    pub ack_set: Option<Vec<i64>>,
}

/// Requests to a subscription task.
#[derive(Debug)]
pub(crate) enum SubEvent {
    AddConsumer {
        info: ConsumerInfo,
        sink: ConsumerSink,
        reply: oneshot::Sender<Result<()>>,
    },
    RemoveConsumer {
        key: ConsumerKey,
        done: Option<oneshot::Sender<()>>,
    },
    Flow {
        key: ConsumerKey,
        permits: u32,
    },
    Ack {
        key: ConsumerKey,
        items: Vec<AckItem>,
        cumulative: bool,
        request_id: Option<u64>,
    },
    Redeliver {
        key: ConsumerKey,
        positions: Option<Vec<Position>>,
    },
    Seek {
        target: SeekTarget,
        reply: oneshot::Sender<Result<()>>,
    },
    Unsubscribe {
        key: Option<ConsumerKey>,
        reply: oneshot::Sender<Result<()>>,
    },
    Stats {
        reply: oneshot::Sender<SubStatsSnapshot>,
    },
    TopicTerminated,
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// Counters shared between the task and readers of stats.
#[derive(Debug, Default)]
pub struct SubCounters {
    /// Messages delivered.
    pub msg_out: AtomicU64,
    /// Bytes delivered.
    pub bytes_out: AtomicU64,
    /// Connected consumers.
    pub consumers: AtomicUsize,
    /// Delayed entries waiting for their delivery time (held in memory).
    pub delayed: AtomicU64,
    /// Entries expired by TTL or `expireMessages` (and age-based backlog eviction).
    pub expired: AtomicU64,
    /// Set by the lifecycle when the delayed delivery policy is off: delayed messages are
    /// then delivered at once.
    pub delayed_delivery_off: std::sync::atomic::AtomicBool,
}

/// Per-consumer stats.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStatsSnapshot {
    /// Consumer name.
    pub consumer_name: String,
    /// Available permits.
    pub available_permits: i64,
    /// Unacked entries.
    pub unacked_messages: usize,
}

/// Subscription stats.
#[derive(Debug, Clone)]
pub struct SubStatsSnapshot {
    /// Unacknowledged entries.
    pub backlog: u64,
    /// Consumers.
    pub consumers: Vec<ConsumerStatsSnapshot>,
    /// Entries waiting for redelivery.
    pub replay: usize,
}

/// Handle to a running subscription task.
pub struct SubscriptionHandle {
    /// Subscription name.
    pub name: String,
    /// Type fixed by the first consumer.
    pub sub_type: SubType,
    /// False for reader (non-durable) subscriptions.
    pub durable: bool,
    /// Its cursor.
    pub cursor: Arc<dyn SubCursor>,
    /// Counters.
    pub counters: Arc<SubCounters>,
    tx: mpsc::UnboundedSender<SubEvent>,
}

impl std::fmt::Debug for SubscriptionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionHandle")
            .field("name", &self.name)
            .field("sub_type", &self.sub_type)
            .finish()
    }
}

fn gone() -> BrokerError {
    BrokerError::ServiceNotReady("subscription closed".to_string())
}

impl SubscriptionHandle {
    /// Starts a subscription task.
    pub fn start(
        name: String,
        sub_type: SubType,
        durable: bool,
        partition: i32,
        log: Arc<dyn TopicLog>,
        cursor: Arc<dyn SubCursor>,
        max_read: usize,
    ) -> Arc<SubscriptionHandle> {
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(SubCounters::default());
        let task = task::SubTask::new(
            name.clone(),
            sub_type,
            partition,
            log,
            cursor.clone(),
            counters.clone(),
            max_read,
        );
        tokio::spawn(task.run(rx));
        Arc::new(SubscriptionHandle {
            name,
            sub_type,
            durable,
            cursor,
            counters,
            tx,
        })
    }

    fn send(&self, ev: SubEvent) -> Result<()> {
        self.tx.send(ev).map_err(|_| gone())
    }

    /// Adds a consumer (checks subscription type rules).
    pub async fn add_consumer(&self, info: ConsumerInfo, sink: ConsumerSink) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(SubEvent::AddConsumer { info, sink, reply })?;
        rx.await.map_err(|_| gone())?
    }

    /// Removes a consumer; its unacked entries are redelivered to others.
    pub fn remove_consumer(&self, key: ConsumerKey) {
        let _ = self.send(SubEvent::RemoveConsumer { key, done: None });
    }

    /// Removes a consumer and waits until the subscription has forgotten it.
    pub async fn remove_consumer_and_wait(&self, key: ConsumerKey) {
        let (done, rx) = oneshot::channel();
        if self
            .send(SubEvent::RemoveConsumer {
                key,
                done: Some(done),
            })
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// FLOW.
    pub fn flow(&self, key: ConsumerKey, permits: u32) {
        let _ = self.send(SubEvent::Flow { key, permits });
    }

    /// ACK; the subscription answers with ACK_RESPONSE itself when `request_id` is set.
    pub fn ack(
        &self,
        key: ConsumerKey,
        items: Vec<AckItem>,
        cumulative: bool,
        request_id: Option<u64>,
    ) {
        let _ = self.send(SubEvent::Ack {
            key,
            items,
            cumulative,
            request_id,
        });
    }

    /// REDELIVER_UNACKNOWLEDGED_MESSAGES.
    pub fn redeliver(&self, key: ConsumerKey, positions: Option<Vec<Position>>) {
        let _ = self.send(SubEvent::Redeliver { key, positions });
    }

    /// SEEK: resets the cursor and disconnects every consumer (they reconnect).
    pub async fn seek(&self, target: SeekTarget) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(SubEvent::Seek { target, reply })?;
        rx.await.map_err(|_| gone())?
    }

    /// UNSUBSCRIBE: fails while other consumers are connected. The task ends on success.
    pub async fn unsubscribe(&self, key: Option<ConsumerKey>) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(SubEvent::Unsubscribe { key, reply })?;
        rx.await.map_err(|_| gone())?
    }

    /// Stats snapshot.
    pub async fn stats(&self) -> Option<SubStatsSnapshot> {
        let (reply, rx) = oneshot::channel();
        self.send(SubEvent::Stats { reply }).ok()?;
        rx.await.ok()
    }

    /// The topic was terminated: consumers learn it once they reach the end.
    pub fn topic_terminated(&self) {
        let _ = self.send(SubEvent::TopicTerminated);
    }

    /// Closes every consumer and flushes the cursor.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.send(SubEvent::Close { reply }).is_ok() {
            let _ = rx.await;
        }
    }
}
