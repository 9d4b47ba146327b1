//! Shared plumbing for Magnetar's binaries (`magnetar`, `magnetar-admin`, `magnetar-client`,
//! `magnetar-perf`): logging, shutdown signals, and one module per subcommand group. Each
//! server subcommand is a thin layer over the owning crate's `run(config, listener,
//! shutdown)`.

pub mod cmd_admin;
pub mod cmd_bookie;
pub mod cmd_broker;
pub mod cmd_client;
pub mod cmd_init;
pub mod cmd_metadata;
pub mod cmd_perf;
pub mod common;
pub mod standalone;
