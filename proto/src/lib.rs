//! Protocol definitions for Magnetar, generated code only.
//!
//! - [`metadata`]: the metadata service's gRPC API (KV, sessions, watches, Raft transport).
//! - [`bookie`]: the bookie gRPC API (adds, reads, fencing, LAC).
//! - [`pulsar`]: the Apache Pulsar binary protocol messages (`pulsar_api.proto`), written
//!   from the published spec; field numbers and enum values match it for wire compatibility.
//!
//! Invariant: nothing here is hand-written logic; all types come from the `.proto` files
//! under `proto/proto/`, compiled by `build.rs` with a vendored `protoc`.
#![allow(clippy::all, missing_docs)]

/// Metadata service gRPC API.
pub mod metadata {
    tonic::include_proto!("magnetar.metadata");
}

/// Bookie gRPC API.
pub mod bookie {
    tonic::include_proto!("magnetar.bookie");
}

/// Apache Pulsar binary protocol messages (package `pulsar.proto`).
pub mod pulsar {
    tonic::include_proto!("pulsar.proto");
}
