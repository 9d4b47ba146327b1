//! Magnetar's storage tier, in the spirit of Apache BookKeeper: bookies store ledger entries
//! in RocksDB, and the ledger client writes each entry to a quorum of them.
//!
//! Main types: [`Ledgers`], [`LedgerWriter`], [`LedgerReader`] (the API the broker uses);
//! [`storage::Storage`] (a bookie's RocksDB store with a group-commit writer thread);
//! [`server::run`] / [`server::Bookie`] (the bookie gRPC server and its registration under
//! `/bookies/{bookie_id}`); [`BookieConfig`].
//!
//! Invariants: an add is acknowledged only after Qa bookies have synced it and every earlier
//! entry is acknowledged; a fenced ledger accepts no further adds from its old writer; every
//! stored entry carries a CRC32C that is checked on write and on every read; RocksDB is only
//! called from the writer thread or the blocking pool, never from async worker threads.

pub mod api;
pub mod autorecovery;
pub mod client;
pub mod config;
pub mod error;
pub mod mem;
pub mod registration;
pub mod server;
pub mod storage;
pub mod wire;

pub use api::{EntryId, LedgerConfig, LedgerId, LedgerReader, LedgerWriter, Ledgers};
pub use autorecovery::{under_replicated, AutoRecoveryConfig};
pub use client::BookKeeper;
pub use config::BookieConfig;
pub use error::LedgerError;
pub use registration::{BookieRegistration, BookieState};
pub use server::{run, Bookie};
