//! `magnetar-client`: a Rust client for Magnetar and Apache Pulsar, speaking the Pulsar
//! binary protocol.
//!
//! - [`wire`]: the protocol codec shared with the broker: frame encoding and decoding
//!   (sizes checked before allocating, CRC32C verified), command builders, batch payloads,
//!   LZ4/ZSTD/ZLIB/SNAPPY compression (Pulsar's formats: raw LZ4 and snappy blocks, zlib
//!   streams, ZSTD frames) and Java-compatible key hashing.
//! - [`PulsarClient`]: service URL (several hosts, tried in turn), a pool with one
//!   multiplexed [`Connection`](connection::Connection) per broker, lookup (followed again
//!   on every reconnect, so clients follow a topic that moved), partition metadata, and an
//!   [`Authentication`] hook asked at every CONNECT and AUTH_CHALLENGE.
//! - [`Producer`]: pipelined sends resolved by broker receipts, batching, compression,
//!   partition routing (key hash or round robin), a bounded pending queue (`send` waits, or
//!   fails with [`Error::QueueFull`]), `flush`, and reconnect with backoff that resends
//!   pending messages in order.
//! - [`Consumer`]: one topic, a list of topics, or a regex over a namespace's topics
//!   (re-checked periodically for new ones) merged into one receive queue;
//!   Exclusive / Shared / Failover / Key_Shared subscriptions, flow control with permits,
//!   `receive` / `batch_receive` ([`BatchReceivePolicy`]), individual (optionally
//!   batch-index) / cumulative / negative acks, ack timeout, dead-letter policy, retry-letter
//!   topic (`reconsume_later`), seek by id or time, unsubscribe; reconnects with backoff.
//! - [`Reader`]: non-durable reads from a message id, `has_message_available`.
//!
//! [`Error`] is the one error type of the crate. Delivery is at-least-once: after a
//! reconnect the broker may redeliver messages that were already received but not acked.
//!
//! ```no_run
//! use magnetar_client::{InitialPosition, PulsarClient, SubType};
//!
//! # async fn f() -> magnetar_client::Result<()> {
//! let client = PulsarClient::new("pulsar://localhost:6650")?;
//! let producer = client.producer().topic("greetings").create().await?;
//! producer.send_and_wait("hello").await?;
//!
//! let consumer = client
//!     .consumer()
//!     .topic("greetings")
//!     .subscription("readme")
//!     .sub_type(SubType::Shared)
//!     .initial_position(InitialPosition::Earliest)
//!     .subscribe()
//!     .await?;
//! let msg = consumer.receive().await?;
//! consumer.ack(&msg)?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod message;
pub mod producer;
pub mod reader;
pub mod topic;
pub mod wire;

pub use auth::{Authentication, StaticAuth};
pub use client::{ClientBuilder, PulsarClient};
pub use consumer::{
    BatchReceivePolicy, Consumer, ConsumerBuilder, ConsumerOptions, DeadLetterPolicy,
    InitialPosition, SubType,
};
pub use error::{Error, Result};
pub use magnetar_proto::pulsar::{CompressionType, ProducerAccessMode};
pub use message::{Message, MessageId, ProducerMessage};
pub use producer::{
    BatchingPolicy, Producer, ProducerBuilder, ProducerOptions, RoutingMode, SendFuture,
};
pub use reader::{Reader, ReaderBuilder};
