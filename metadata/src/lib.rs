//! Magnetar's metadata service: a linearizable, replicated key-value store that replaces
//! ZooKeeper. It owns every piece of coordination state: topic ownership, ledger metadata,
//! cursors, policies and registrations.
//!
//! Main types: [`MetadataStore`] (the contract every implementation keeps), [`MemStore`]
//! (in memory, for tests), [`GrpcMetadataClient`] (the store over gRPC, following the Raft
//! leader), and the server side: [`run`] / [`start`] run one Raft node ([`MetadataConfig`],
//! [`RunningNode`]) built on openraft 0.9 with a RocksDB log ([`raft::storage`]), an
//! in-memory state machine ([`raft::sm`]) and a gRPC transport ([`raft::network`]).
//!
//! Invariants: every write gets a version that increases with commit order (on the Raft
//! node, the log index of the write); a write with [`Expect::Absent`] or
//! [`Expect::Version`] applies only if its precondition holds at apply time; votes and log
//! entries are synced to disk before they count; reads are linearizable (read-index on the
//! leader; followers redirect); ephemeral keys disappear in the same committed command that
//! expires their session, and only the leader's clock decides expiry; a watcher sees every
//! change under its prefix exactly once, in commit order, or a [`WatchEvent::Reset`] telling
//! it to re-list; a client retries a write only when it provably did not reach a leader,
//! otherwise it reports [`MetadataError::OutcomeUnknown`].

pub mod client;
mod convert;
pub mod error;
pub mod mem;
pub mod raft;
pub mod server;
mod service;
pub mod session;
pub mod store;

pub use client::GrpcMetadataClient;
pub use error::MetadataError;
pub use mem::MemStore;
pub use server::{run, start, start_on, MetadataConfig, RunningNode};
pub use session::SessionKeeper;
pub use store::{
    list_all, Expect, MetadataStore, SessionId, TxnOp, Version, Versioned, WatchEvent, WatchStream,
};
