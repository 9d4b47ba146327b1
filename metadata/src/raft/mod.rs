//! The Raft replicated state machine: openraft type configuration, commands, the in-memory
//! state machine with its watch history, the RocksDB log store and the gRPC transport.

pub mod network;
pub mod sm;
#[cfg(test)]
mod sm_tests;
pub mod storage;
pub mod types;
