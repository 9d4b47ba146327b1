//! The Magnetar broker: serves the Apache Pulsar binary protocol, owns topics, writes
//! messages to managed ledgers on bookies and dispatches them to subscriptions.
//!
//! Main pieces: [`service::run`] (the entry point: listeners in, shutdown token);
//! [`config::BrokerConfig`]; [`broker::Broker`] (topics loaded here); [`connection`]
//! (one task per client connection); [`subscription`] (one task per subscription);
//! [`dispatch`] (pure dispatch decisions: permits, pending entries, redelivery,
//! subscription types); [`storage`] (the seam to managed ledgers); [`names`].
//!
//! Invariants: one SEND is stored as one ledger entry, unmodified; receipts go back to a
//! producer in the order of its sends; an entry is pending on at most one consumer.
pub mod admin;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod error;
pub mod lifecycle;
pub mod ml;
pub mod names;
pub mod policies;
pub mod position;
pub mod replication;
pub mod schema;
pub mod service;
pub mod storage;
pub mod subscription;
pub mod topic;

pub use config::BrokerConfig;
pub use error::BrokerError;
pub use service::run;
