//! A topic served by this broker: its log, producers (with deduplication state) and
//! subscriptions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;
use tracing::debug;

use crate::dispatch::SubType;
use crate::error::{BrokerError, Result};
use crate::names::TopicName;
use crate::position::Position;
use crate::storage::mem::MemCursor;
use crate::storage::{InitialPosition, SubCursor, TopicLog};
use crate::subscription::{ConnSender, SubscriptionHandle};

/// A connected producer as the topic sees it.
#[derive(Debug, Clone)]
pub struct ProducerEntry {
    /// Producer name.
    pub name: String,
    /// Exclusive access mode.
    pub exclusive: bool,
    /// Connection queue (to close it from the broker side).
    pub out: ConnSender,
    /// Producer id on its connection.
    pub producer_id: u64,
}

/// Result of a publish.
pub enum Published {
    /// Stored at this position.
    Stored(BoxFuture<'static, Result<Position>>),
    /// Dropped as a duplicate (sequence id not above the highest seen).
    Duplicate,
}

#[derive(Default)]
struct State {
    producers: HashMap<u64, ProducerEntry>,
    subscriptions: HashMap<String, Arc<SubscriptionHandle>>,
}

/// Counters for stats.
#[derive(Debug, Default)]
pub struct TopicCounters {
    /// Messages received.
    pub msg_in: AtomicU64,
    /// Bytes received.
    pub bytes_in: AtomicU64,
}

/// One topic.
pub struct Topic {
    /// Its name.
    pub name: TopicName,
    /// Its log.
    pub log: Arc<dyn TopicLog>,
    /// Counters.
    pub counters: TopicCounters,
    /// Message lifecycle state: deduplication, backlog quota block, counters.
    pub lifecycle: Arc<crate::lifecycle::TopicLifecycle>,
    /// Geo-replicators of this topic (one per remote cluster).
    pub replication: crate::replication::TopicReplication,
    max_read: usize,
    terminated: AtomicBool,
    state: Mutex<State>,
}

impl Topic {
    /// A topic over `log`.
    pub fn new(name: TopicName, log: Arc<dyn TopicLog>, dedup: bool, max_read: usize) -> Topic {
        Topic {
            lifecycle: Arc::new(crate::lifecycle::TopicLifecycle::new(
                name.to_string(),
                dedup,
            )),
            name,
            log,
            counters: TopicCounters::default(),
            replication: Default::default(),
            max_read,
            terminated: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        }
    }

    /// Registers a producer. Returns the last sequence id known for its name.
    pub fn add_producer(&self, key: u64, entry: ProducerEntry) -> Result<i64> {
        if self.terminated.load(Ordering::Relaxed) {
            return Err(BrokerError::TopicTerminated(self.name.to_string()));
        }
        let mut st = self.state.lock();
        for p in st.producers.values() {
            if p.exclusive || entry.exclusive {
                return Err(BrokerError::ProducerBusy(format!(
                    "topic {} has an exclusive producer",
                    self.name
                )));
            }
            if p.name == entry.name {
                return Err(BrokerError::ProducerBusy(format!(
                    "producer with name '{}' is already connected to topic {}",
                    entry.name, self.name
                )));
            }
        }
        let last = self.lifecycle.last_sequence(&entry.name);
        st.producers.insert(key, entry);
        Ok(last)
    }

    /// Removes a producer.
    pub fn remove_producer(&self, key: u64) {
        self.state.lock().producers.remove(&key);
    }

    /// Connected producers.
    pub fn producers(&self) -> Vec<ProducerEntry> {
        self.state.lock().producers.values().cloned().collect()
    }

    /// Disconnects every producer (CLOSE_PRODUCER; clients reconnect), e.g. when a backlog
    /// quota blocks them.
    pub fn disconnect_producers(&self) {
        let producers: Vec<ProducerEntry> = self
            .state
            .lock()
            .producers
            .drain()
            .map(|(_, v)| v)
            .collect();
        for p in producers {
            let _ = p.out.send(crate::subscription::ConnEvent::ProducerClosed(
                p.producer_id,
            ));
        }
    }

    /// Stores one SEND's payload as one entry (or drops a duplicate).
    pub fn publish(
        &self,
        producer_name: &str,
        sequence_id: u64,
        highest_sequence_id: u64,
        num_messages: u32,
        raw: Bytes,
    ) -> Published {
        if self.terminated.load(Ordering::Relaxed) {
            let name = self.name.to_string();
            return Published::Stored(
                async move { Err(BrokerError::TopicTerminated(name)) }.boxed(),
            );
        }
        let tracked = match self
            .lifecycle
            .admit(producer_name, sequence_id, highest_sequence_id)
        {
            crate::lifecycle::Admit::Store { tracked } => tracked,
            crate::lifecycle::Admit::Duplicate => return Published::Duplicate,
            crate::lifecycle::Admit::InFlight => {
                return Published::Stored(
                    self.lifecycle.await_in_flight(producer_name, sequence_id),
                )
            }
            crate::lifecycle::Admit::Refuse(e) => {
                return Published::Stored(async move { Err(e) }.boxed())
            }
        };
        self.counters
            .msg_in
            .fetch_add(u64::from(num_messages.max(1)), Ordering::Relaxed);
        self.counters
            .bytes_in
            .fetch_add(raw.len() as u64, Ordering::Relaxed);
        let stored = self.log.append(raw);
        if tracked {
            let highest = highest_sequence_id.max(sequence_id);
            return Published::Stored(self.lifecycle.track_store(producer_name, highest, stored));
        }
        Published::Stored(stored)
    }

    /// Stores a chunk that is not the last of its message. Every chunk carries the
    /// message's sequence id, so only the last one goes through deduplication (as in
    /// Pulsar); the others are stored as they come.
    pub fn publish_chunk(&self, raw: Bytes) -> Published {
        if self.terminated.load(Ordering::Relaxed) {
            let name = self.name.to_string();
            return Published::Stored(
                async move { Err(BrokerError::TopicTerminated(name)) }.boxed(),
            );
        }
        self.counters
            .bytes_in
            .fetch_add(raw.len() as u64, Ordering::Relaxed);
        Published::Stored(self.log.append(raw))
    }

    /// Looks up or creates a subscription. `durable = false` makes a reader subscription
    /// (non-durable cursor starting at `initial`).
    pub async fn subscribe(
        &self,
        name: &str,
        sub_type: SubType,
        durable: bool,
        initial: InitialPosition,
    ) -> Result<Arc<SubscriptionHandle>> {
        let existing = self.state.lock().subscriptions.get(name).cloned();
        let mut reuse: Option<Arc<dyn SubCursor>> = None;
        if let Some(s) = existing {
            if s.sub_type == sub_type {
                return Ok(s);
            }
            if s.counters.consumers.load(Ordering::Relaxed) > 0 {
                return Err(BrokerError::ConsumerBusy(
                    "Subscription is of different type".to_string(),
                ));
            }
            // No consumer left: the subscription may change type, keeping its cursor.
            self.state.lock().subscriptions.remove(name);
            s.close().await;
            reuse = Some(s.cursor.clone());
        }
        let cursor: Arc<dyn SubCursor> = if let Some(c) = reuse {
            c
        } else if durable {
            self.log.open_cursor(name, initial).await?
        } else {
            let start = match initial {
                InitialPosition::Earliest => self.log.first_position(),
                InitialPosition::Latest => self
                    .log
                    .last_confirmed()
                    .map_or(self.log.first_position(), |p| self.log.next_position(p)),
                InitialPosition::At(p) => p,
            };
            Arc::new(MemCursor::starting_at(start))
        };
        let mut st = self.state.lock();
        if let Some(s) = st.subscriptions.get(name) {
            // Lost a race with another subscribe of the same name.
            if s.sub_type != sub_type {
                return Err(BrokerError::ConsumerBusy(
                    "Subscription is of different type".to_string(),
                ));
            }
            return Ok(s.clone());
        }
        let handle = SubscriptionHandle::start(
            name.to_string(),
            sub_type,
            durable,
            self.name.partition_index(),
            self.log.clone(),
            cursor,
            self.max_read,
        );
        self.lifecycle.configure_subscription(&handle);
        if self.terminated.load(Ordering::Relaxed) {
            handle.topic_terminated();
        }
        st.subscriptions.insert(name.to_string(), handle.clone());
        debug!(topic = %self.name, sub = name, "subscription created");
        Ok(handle)
    }

    /// A subscription by name.
    pub fn subscription(&self, name: &str) -> Option<Arc<SubscriptionHandle>> {
        self.state.lock().subscriptions.get(name).cloned()
    }

    /// All subscriptions.
    pub fn subscriptions(&self) -> Vec<Arc<SubscriptionHandle>> {
        self.state.lock().subscriptions.values().cloned().collect()
    }

    /// Drops a subscription after a successful unsubscribe.
    pub async fn remove_subscription(&self, name: &str) -> Result<()> {
        let removed = self.state.lock().subscriptions.remove(name);
        if let Some(s) = removed {
            if s.durable {
                self.log.delete_cursor(name).await?;
            }
        }
        Ok(())
    }

    /// A non-durable subscription whose last consumer left is dropped.
    pub fn drop_if_reader(&self, name: &str) {
        let mut st = self.state.lock();
        // A reader subscription has a single consumer; when it leaves, the subscription goes.
        if st.subscriptions.get(name).is_some_and(|s| !s.durable) {
            if let Some(s) = st.subscriptions.remove(name) {
                tokio::spawn(async move { s.close().await });
            }
        }
    }

    /// Terminates the topic: no more publishes; consumers get REACHED_END_OF_TOPIC.
    pub fn terminate(&self) -> Option<Position> {
        self.terminated.store(true, Ordering::Relaxed);
        for s in self.subscriptions() {
            s.topic_terminated();
        }
        self.log.last_confirmed()
    }

    /// True once terminated.
    pub fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::Relaxed)
    }

    /// Closes producers, subscriptions (consumers are told to reconnect) and the log.
    pub async fn close(&self) -> Result<()> {
        self.replication.stop();
        let (producers, subs) = {
            let mut st = self.state.lock();
            let p: Vec<ProducerEntry> = st.producers.drain().map(|(_, v)| v).collect();
            let s: Vec<Arc<SubscriptionHandle>> =
                st.subscriptions.drain().map(|(_, v)| v).collect();
            (p, s)
        };
        for p in producers {
            let _ = p.out.send(crate::subscription::ConnEvent::ProducerClosed(
                p.producer_id,
            ));
        }
        for s in subs {
            s.close().await;
        }
        crate::lifecycle::on_topic_closing(self).await;
        metrics::gauge!("magnetar_broker_topics_count").decrement(1.0);
        self.log.close().await
    }
}
