//! Consumers: [`ConsumerBuilder`] subscribes to one topic, a list of topics, or every
//! topic of a namespace matching a pattern (every partition of a partitioned topic) and
//! returns a [`Consumer`] whose one receive queue merges them. It acks individually
//! (batch-index acks inside batches) or cumulatively, negatively acks for delayed
//! redelivery, receives in batches, sends messages to a retry-letter topic to be consumed
//! again later, and can seek or unsubscribe. Dead-letter and retry routing, ack timeouts
//! and pattern discovery are client-side, as in Pulsar.

mod handle;
mod partition;
mod retry;
mod topics;
mod tracker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::client::PulsarClient;
use crate::error::{Error, Result};
use crate::message::MessageId;
use crate::topic::normalize_topic;
use crate::wire::DEFAULT_MAX_MESSAGE_SIZE;
pub use handle::Consumer;
pub use retry::{DELAY_TIME, ORIGIN_MESSAGE_ID, REAL_TOPIC, RECONSUME_TIMES};
use topics::{Shared, TopicPattern};

pub use magnetar_proto::pulsar::command_subscribe::{InitialPosition, SubType};

/// Sends messages redelivered too often to a dead-letter topic instead of the application.
#[derive(Debug, Clone)]
pub struct DeadLetterPolicy {
    /// Deliveries after which a message goes to the dead-letter topic.
    pub max_redeliver_count: u32,
    /// Topic to use; default `{topic}-{subscription}-DLQ`.
    pub dead_letter_topic: Option<String>,
}

/// Limits of one [`Consumer::batch_receive`] call: it returns as soon as `max_messages`
/// or `max_bytes` (payload bytes) are reached, or when `timeout` fires with whatever
/// arrived by then (possibly nothing).
#[derive(Debug, Clone, Copy)]
pub struct BatchReceivePolicy {
    /// Most messages per batch (at least 1).
    pub max_messages: usize,
    /// Most payload bytes per batch; a message that would cross it waits for the next
    /// call (a batch always takes its first message).
    pub max_bytes: usize,
    /// Longest wait for a batch to fill.
    pub timeout: Duration,
}

impl Default for BatchReceivePolicy {
    fn default() -> Self {
        BatchReceivePolicy {
            max_messages: 100,
            max_bytes: 10 * 1024 * 1024,
            timeout: Duration::from_millis(100),
        }
    }
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
    /// Acknowledge single messages of a batch on the broker at once (an ack carrying
    /// Pulsar's `ack_set`), so a redelivery or a new consumer gets back only the batch's
    /// unacked messages. When false (the default, as in the Java client) the entry is
    /// acked once all its messages are, and a redelivery brings back the whole batch.
    /// Magnetar brokers always honour `ack_set`; an Apache Pulsar broker needs
    /// `acknowledgmentAtBatchIndexLevelEnabled=true`, otherwise it treats such an ack as
    /// acking the whole entry.
    pub batch_index_ack: bool,
    /// Limits of [`Consumer::batch_receive`].
    pub batch_receive: BatchReceivePolicy,
    /// How often a pattern consumer lists the namespace for new matching topics
    /// (default one minute, as the Java client).
    pub pattern_auto_discovery_period: Duration,
    /// Enables [`Consumer::reconsume_later`]: the consumer also subscribes to the
    /// retry-letter topic.
    pub retry_enable: bool,
    /// Retry-letter topic; default `{first topic}-{subscription}-RETRY`.
    pub retry_letter_topic: Option<String>,
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
            batch_index_ack: false,
            batch_receive: BatchReceivePolicy::default(),
            pattern_auto_discovery_period: Duration::from_secs(60),
            retry_enable: false,
            retry_letter_topic: None,
        }
    }
}

/// Builds a [`Consumer`].
#[derive(Debug)]
pub struct ConsumerBuilder {
    client: PulsarClient,
    topics: Vec<String>,
    pattern: Option<String>,
    opts: ConsumerOptions,
}

impl ConsumerBuilder {
    pub(crate) fn new(client: PulsarClient) -> Self {
        ConsumerBuilder {
            client,
            topics: Vec::new(),
            pattern: None,
            opts: ConsumerOptions::default(),
        }
    }

    /// Topic to consume; call again (or use [`ConsumerBuilder::topics`]) to consume
    /// several topics through one consumer.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// Adds several topics: the consumer merges them into one receive queue and routes
    /// each ack to the topic the message came from.
    ///
    /// ```no_run
    /// # async fn f(client: magnetar_client::PulsarClient) -> magnetar_client::Result<()> {
    /// let consumer = client
    ///     .consumer()
    ///     .topics(["orders", "payments"])
    ///     .subscription("audit")
    ///     .subscribe()
    ///     .await?;
    /// let msg = consumer.receive().await?;
    /// println!("{} from {}", msg.id, msg.topic);
    /// consumer.ack(&msg)?;
    /// # Ok(()) }
    /// ```
    pub fn topics<I, S>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// Subscribes to every topic of one namespace whose full name matches `regex`
    /// (e.g. `persistent://public/default/orders-.*`; a short `tenant/ns/re` form gets
    /// the `persistent://` domain), including topics created later: the namespace is
    /// listed again every [`ConsumerBuilder::pattern_auto_discovery_period`].
    ///
    /// ```no_run
    /// # async fn f(client: magnetar_client::PulsarClient) -> magnetar_client::Result<()> {
    /// let consumer = client
    ///     .consumer()
    ///     .topics_pattern("persistent://public/default/orders-.*")
    ///     .pattern_auto_discovery_period(std::time::Duration::from_secs(10))
    ///     .subscription("all-orders")
    ///     .subscribe()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn topics_pattern(mut self, regex: impl Into<String>) -> Self {
        self.pattern = Some(regex.into());
        self
    }

    /// Interval between pattern re-checks (default 60 s).
    pub fn pattern_auto_discovery_period(mut self, d: Duration) -> Self {
        self.opts.pattern_auto_discovery_period = d.max(Duration::from_millis(10));
        self
    }

    /// Limits of [`Consumer::batch_receive`].
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use magnetar_client::BatchReceivePolicy;
    /// # async fn f(client: magnetar_client::PulsarClient) -> magnetar_client::Result<()> {
    /// let consumer = client
    ///     .consumer()
    ///     .topic("events")
    ///     .subscription("bulk")
    ///     .batch_receive_policy(BatchReceivePolicy {
    ///         max_messages: 500,
    ///         max_bytes: 1 << 20,
    ///         timeout: Duration::from_millis(200),
    ///     })
    ///     .subscribe()
    ///     .await?;
    /// let batch = consumer.batch_receive().await?; // up to 500 messages / 1 MiB / 200 ms
    /// for m in &batch {
    ///     consumer.ack(m)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn batch_receive_policy(mut self, p: BatchReceivePolicy) -> Self {
        self.opts.batch_receive = BatchReceivePolicy {
            max_messages: p.max_messages.max(1),
            ..p
        };
        self
    }

    /// Enables [`Consumer::reconsume_later`] (and subscribes to the retry-letter topic).
    pub fn enable_retry(mut self, on: bool) -> Self {
        self.opts.retry_enable = on;
        self
    }

    /// Retry-letter topic (default `{topic}-{subscription}-RETRY`); implies
    /// [`ConsumerBuilder::enable_retry`].
    pub fn retry_letter_topic(mut self, t: impl Into<String>) -> Self {
        self.opts.retry_letter_topic = Some(t.into());
        self.opts.retry_enable = true;
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

    /// Batch-index acknowledgement (default off; see [`ConsumerOptions::batch_index_ack`]).
    pub fn batch_index_ack(mut self, on: bool) -> Self {
        self.opts.batch_index_ack = on;
        self
    }

    /// Replaces all options (the subscription name included).
    pub fn options(mut self, opts: ConsumerOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Subscribes (every partition of every topic) and returns once the broker accepted.
    pub async fn subscribe(self) -> Result<Consumer> {
        if self.opts.subscription.is_empty() {
            return Err(Error::InvalidArgument {
                what: "subscription name",
                value: String::new(),
            });
        }
        let mut topics = Vec::new();
        for t in &self.topics {
            let t = normalize_topic(t)?;
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
        let pattern = self
            .pattern
            .as_deref()
            .map(TopicPattern::parse)
            .transpose()?;
        if topics.is_empty() && pattern.is_none() {
            return Err(Error::InvalidArgument {
                what: "consumer topic",
                value: String::new(),
            });
        }
        let mut opts = self.opts;
        let retry_topic = if opts.retry_enable {
            let t = match (&opts.retry_letter_topic, topics.first()) {
                (Some(t), _) => normalize_topic(t)?,
                (None, Some(first)) => format!("{first}-{}-RETRY", opts.subscription),
                (None, None) => {
                    return Err(Error::InvalidArgument {
                        what: "retry-letter topic (required for a pattern-only consumer)",
                        value: String::new(),
                    })
                }
            };
            if !topics.contains(&t) {
                topics.push(t.clone());
            }
            opts.retry_letter_topic = Some(t.clone());
            Some(t)
        } else {
            None
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let keep_open = pattern.is_some();
        let shared = Shared::new(self.client.clone(), Arc::new(opts), tx);
        for t in &topics {
            shared.add_topic(t).await?;
        }
        let watcher = match pattern {
            Some(p) => Some(topics::start_discovery(shared.clone(), p).await?),
            None => None,
        };
        shared.finish_setup(keep_open);
        Ok(Consumer::new(shared, topics, retry_topic, rx, watcher))
    }
}
