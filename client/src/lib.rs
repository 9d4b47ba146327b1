//! `magnetar-client`: a Rust client for Magnetar and Apache Pulsar, speaking the Pulsar
//! binary protocol.
//!
//! - [`wire`]: the protocol codec shared with the broker: frame encoding and decoding
//!   (sizes checked before allocating, CRC32C verified), command builders, batch payloads,
//!   LZ4/ZSTD compression and Java-compatible key hashing.
//! - [`PulsarClient`]: service URL (several hosts), a pool with one multiplexed
//!   [`Connection`](connection::Connection) per broker, lookup and partition metadata.
//! - [`Producer`]: pipelined sends resolved by broker receipts, batching, compression,
//!   partition routing (key hash or round robin), a bounded pending queue, and reconnect
//!   that resends pending messages in order.
//! - [`Consumer`]: Exclusive / Shared / Failover / Key_Shared subscriptions, flow
//!   control with permits, individual / cumulative / negative acks, ack timeout,
//!   dead-letter policy, seek, unsubscribe.
//! - [`Reader`]: non-durable reads from a message id, `has_message_available`.
//!
//! [`Error`] is the one error type of the crate. Delivery is at-least-once: after a
//! reconnect the broker may redeliver messages that were already received but not acked.

#![warn(missing_docs)]

pub mod client;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod message;
pub mod producer;
pub mod reader;
pub mod topic;
pub mod wire;

pub use client::{ClientBuilder, PulsarClient};
pub use consumer::{
    Consumer, ConsumerBuilder, ConsumerOptions, DeadLetterPolicy, InitialPosition, SubType,
};
pub use error::{Error, Result};
pub use magnetar_proto::pulsar::{CompressionType, ProducerAccessMode};
pub use message::{Message, MessageId, ProducerMessage};
pub use producer::{
    BatchingPolicy, Producer, ProducerBuilder, ProducerOptions, RoutingMode, SendFuture,
};
pub use reader::{Reader, ReaderBuilder};
