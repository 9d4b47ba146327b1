//! Magnetar's storage tier, in the spirit of Apache BookKeeper: bookies store ledger entries
//! in RocksDB, and the ledger client writes each entry to a quorum of them.
//!
//! Main types: [`Ledgers`], [`LedgerWriter`], [`LedgerReader`] (the API the broker uses);
//! [`BookKeeper`] (the quorum client implementing it: placement, pipelined adds, ensemble
//! changes, fencing recovery, failover reads); [`mem::MemLedgers`] (in memory, for tests);
//! [`storage::Storage`] (a bookie's RocksDB store with its group-commit writer thread);
//! [`server::run`] / [`Bookie`] (the bookie gRPC server, registered as the ephemeral key
//! `/bookies/{bookie_id}`); [`autorecovery`] (re-replication of lost bookies' fragments).
//! Ledger metadata lives as JSON under `/ledgers/{id}` ([`client::meta`]), updated by CAS.
//!
//! Invariants: an add is acknowledged only after Qa bookies have synced it and every earlier
//! entry is acknowledged; a fenced ledger accepts no further adds from its old writer (only
//! recovery writes); ledger metadata changes only by compare-and-set, so racing writers and
//! recoverers converge; every stored entry carries a CRC32C that is checked on write and on
//! every read; RocksDB is only called from the writer thread or the blocking pool, never
//! from async worker threads.

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
