//! The Pulsar binary protocol codec, shared by the broker and the client.
//!
//! - [`frame`]: the `tokio_util` codec ([`PulsarCodec`]) and the [`Frame`] / [`Outbound`]
//!   types. Sizes are checked before buffers grow; payload CRC32C is verified and a bad
//!   payload surfaces as a [`CorruptFrame`] that keeps the connection usable.
//! - [`commands`]: builders for every command either side sends.
//! - [`batch`]: batch payloads and LZ4/ZSTD compression.
//! - [`hash`]: Java-compatible key hashing for partition routing and Key_Shared.

pub mod batch;
pub mod commands;
pub mod frame;
pub mod hash;

pub use batch::{build_batch, compress, decompress, pack, parse_batch, unpack, BatchMessage};
pub use frame::{
    decode_frame, encode_frame, encode_payload, parse_payload, CorruptFrame, Frame, Outbound,
    Payload, PulsarCodec, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_MESSAGE_SIZE, FRAME_PADDING,
    MAGIC_BROKER_ENTRY_METADATA, MAGIC_CRC32C,
};
pub use magnetar_proto::pulsar as proto;

/// Highest protocol version this implementation speaks.
pub const PROTOCOL_VERSION: i32 = 21;

#[cfg(test)]
mod tests;
