//! Frame codec: splits the byte stream into [`Frame`]s and writes [`Outbound`] frames.
//!
//! Layout (all integers big-endian u32 unless noted):
//! - simple command: `[totalSize][commandSize][BaseCommand]`
//! - payload command: `[totalSize][commandSize][BaseCommand]`
//!   `[0x0e02 u16][size][BrokerEntryMetadata]` (optional)
//!   `[0x0e01 u16][crc32c][metadataSize][MessageMetadata][body]`
//!
//! The CRC32C covers `metadataSize + metadata + body`. `totalSize` is checked against the
//! configured maximum before any buffer grows to hold the frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use magnetar_proto::pulsar::{BaseCommand, BrokerEntryMetadata, MessageMetadata};
use prost::Message as _;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::{Error, Result};

/// Magic number that precedes the CRC32C of a payload.
pub const MAGIC_CRC32C: u16 = 0x0e01;
/// Magic number that precedes a broker entry metadata block.
pub const MAGIC_BROKER_ENTRY_METADATA: u16 = 0x0e02;
/// Default maximum message size advertised in CONNECTED (5 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 5 * 1024 * 1024;
/// Room for command and metadata on top of the message size, as the Java broker allows.
pub const FRAME_PADDING: usize = 10 * 1024;
/// Default maximum frame size accepted by the codec.
pub const DEFAULT_MAX_FRAME_SIZE: usize = DEFAULT_MAX_MESSAGE_SIZE + FRAME_PADDING;

/// The message part of a SEND or MESSAGE frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// Broker entry metadata block (0x0e02), if the frame carried one.
    pub broker_entry_metadata: Option<BrokerEntryMetadata>,
    /// Decoded message metadata.
    pub metadata: MessageMetadata,
    /// Exact bytes `[0x0e01][crc32c][metadataSize][metadata][body]`, ready to be stored
    /// and later sent again unmodified. Frames from pre-v6 clients without a checksum get
    /// one computed, so `raw` always has this shape.
    pub raw: Bytes,
    /// The (possibly compressed, possibly batched) message body; a slice of `raw`.
    pub body: Bytes,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The command.
    pub command: BaseCommand,
    /// Payload, for SEND and MESSAGE.
    pub payload: Option<Payload>,
}

/// A frame whose command decoded but whose payload is unusable (bad checksum, bad
/// metadata). The connection can continue; the receiver reports the problem using the
/// ids in `command` (e.g. SEND_ERROR with ChecksumError for a SEND).
#[derive(Debug)]
pub struct CorruptFrame {
    /// The command that came with the bad payload.
    pub command: BaseCommand,
    /// What was wrong.
    pub error: Error,
}

impl CorruptFrame {
    /// True when the payload failed its CRC32C check.
    pub fn is_checksum_mismatch(&self) -> bool {
        matches!(self.error, Error::ChecksumMismatch { .. })
    }
}

/// A frame to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// A command without payload.
    Command(BaseCommand),
    /// A command followed by a payload.
    WithPayload {
        /// The command (SEND or MESSAGE).
        command: BaseCommand,
        /// Written as a 0x0e02 block before `raw` when set.
        broker_entry_metadata: Option<BrokerEntryMetadata>,
        /// Pre-built `[0x0e01][crc32c][metadataSize][metadata][body]`, e.g. from
        /// [`encode_payload`] or a stored entry; written unmodified.
        raw: Bytes,
    },
}

impl From<BaseCommand> for Outbound {
    fn from(command: BaseCommand) -> Self {
        Outbound::Command(command)
    }
}

impl Outbound {
    /// A command with a payload built from `metadata` and `body` (computes the CRC).
    pub fn with_payload(command: BaseCommand, metadata: &MessageMetadata, body: &[u8]) -> Self {
        Outbound::WithPayload {
            command,
            broker_entry_metadata: None,
            raw: encode_payload(metadata, body),
        }
    }

    /// A command followed by stored payload bytes, sent as they are.
    pub fn with_raw(command: BaseCommand, raw: Bytes) -> Self {
        Outbound::WithPayload {
            command,
            broker_entry_metadata: None,
            raw,
        }
    }

    /// The command of this frame.
    pub fn command(&self) -> &BaseCommand {
        match self {
            Outbound::Command(c) | Outbound::WithPayload { command: c, .. } => c,
        }
    }

    /// Total bytes this frame occupies on the wire, including the leading size field.
    pub fn encoded_len(&self) -> usize {
        match self {
            Outbound::Command(c) => 8 + c.encoded_len(),
            Outbound::WithPayload {
                command,
                broker_entry_metadata,
                raw,
            } => {
                8 + command.encoded_len()
                    + broker_entry_metadata
                        .as_ref()
                        .map_or(0, |b| 6 + b.encoded_len())
                    + raw.len()
            }
        }
    }
}

/// Builds `[0x0e01][crc32c][metadataSize][metadata][body]`.
pub fn encode_payload(metadata: &MessageMetadata, body: &[u8]) -> Bytes {
    let meta_len = metadata.encoded_len();
    let mut buf = BytesMut::with_capacity(10 + meta_len + body.len());
    buf.put_u16(MAGIC_CRC32C);
    buf.put_u32(0); // patched below
    buf.put_u32(meta_len as u32);
    metadata
        .encode(&mut buf)
        .expect("BytesMut grows on demand, encoding cannot run out of space");
    buf.put_slice(body);
    let crc = crc32c::crc32c(&buf[6..]);
    buf[2..6].copy_from_slice(&crc.to_be_bytes());
    buf.freeze()
}

/// Parses the payload part of a frame (everything after the command), or a stored entry.
/// Accepts an optional 0x0e02 block, then either a 0x0e01 checksummed payload (verified) or
/// a bare `[metadataSize][metadata][body]` from clients that predate checksums.
pub fn parse_payload(mut rest: Bytes) -> Result<Payload> {
    let mut broker_entry_metadata = None;
    if rest.len() >= 2 && rest[..2] == MAGIC_BROKER_ENTRY_METADATA.to_be_bytes() {
        if rest.len() < 6 {
            return Err(Error::MalformedFrame {
                reason: "truncated broker entry metadata header",
            });
        }
        let size = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]) as usize;
        if rest.len() < 6 + size {
            return Err(Error::MalformedFrame {
                reason: "broker entry metadata exceeds frame",
            });
        }
        let bem =
            BrokerEntryMetadata::decode(&rest[6..6 + size]).map_err(|source| Error::Decode {
                what: "BrokerEntryMetadata",
                source,
            })?;
        broker_entry_metadata = Some(bem);
        rest.advance(6 + size);
    }
    let raw = if rest.len() >= 2 && rest[..2] == MAGIC_CRC32C.to_be_bytes() {
        if rest.len() < 6 {
            return Err(Error::MalformedFrame {
                reason: "truncated checksum header",
            });
        }
        let expected = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]);
        let actual = crc32c::crc32c(&rest[6..]);
        if expected != actual {
            return Err(Error::ChecksumMismatch { expected, actual });
        }
        rest
    } else {
        let mut buf = BytesMut::with_capacity(6 + rest.len());
        buf.put_u16(MAGIC_CRC32C);
        buf.put_u32(crc32c::crc32c(&rest));
        buf.put_slice(&rest);
        buf.freeze()
    };
    if raw.len() < 10 {
        return Err(Error::MalformedFrame {
            reason: "truncated metadata size",
        });
    }
    let meta_len = u32::from_be_bytes([raw[6], raw[7], raw[8], raw[9]]) as usize;
    if raw.len() - 10 < meta_len {
        return Err(Error::MalformedFrame {
            reason: "metadata exceeds frame",
        });
    }
    let metadata =
        MessageMetadata::decode(&raw[10..10 + meta_len]).map_err(|source| Error::Decode {
            what: "MessageMetadata",
            source,
        })?;
    let body = raw.slice(10 + meta_len..);
    Ok(Payload {
        broker_entry_metadata,
        metadata,
        raw,
        body,
    })
}

/// Encodes one frame into `dst`, refusing frames larger than `max_frame_size`.
pub fn encode_frame(frame: &Outbound, dst: &mut BytesMut, max_frame_size: usize) -> Result<()> {
    let len = frame.encoded_len();
    if len - 4 > max_frame_size {
        return Err(Error::FrameTooLarge {
            size: len - 4,
            max: max_frame_size,
        });
    }
    dst.reserve(len);
    dst.put_u32((len - 4) as u32);
    let command = frame.command();
    dst.put_u32(command.encoded_len() as u32);
    command
        .encode(dst)
        .expect("space was reserved for the command");
    if let Outbound::WithPayload {
        broker_entry_metadata,
        raw,
        ..
    } = frame
    {
        if let Some(bem) = broker_entry_metadata {
            dst.put_u16(MAGIC_BROKER_ENTRY_METADATA);
            dst.put_u32(bem.encoded_len() as u32);
            bem.encode(dst)
                .expect("space was reserved for broker entry metadata");
        }
        dst.put_slice(raw);
    }
    Ok(())
}

/// Tries to decode one frame from the front of `src`. `Ok(None)` means more bytes are
/// needed; fatal errors (oversized or malformed frames, undecodable commands) mean the
/// connection must be closed.
pub fn decode_frame(
    src: &mut BytesMut,
    max_frame_size: usize,
) -> Result<Option<Result<Frame, CorruptFrame>>> {
    if src.len() < 4 {
        return Ok(None);
    }
    let total = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
    if total > max_frame_size {
        return Err(Error::FrameTooLarge {
            size: total,
            max: max_frame_size,
        });
    }
    if total < 4 {
        return Err(Error::MalformedFrame {
            reason: "total size smaller than command size field",
        });
    }
    if src.len() < 4 + total {
        src.reserve(4 + total - src.len());
        return Ok(None);
    }
    let mut frame = src.split_to(4 + total).freeze();
    frame.advance(4);
    let cmd_len = frame.get_u32() as usize;
    if cmd_len > frame.len() {
        return Err(Error::MalformedFrame {
            reason: "command size exceeds frame",
        });
    }
    let command = BaseCommand::decode(&frame[..cmd_len]).map_err(|source| Error::Decode {
        what: "BaseCommand",
        source,
    })?;
    frame.advance(cmd_len);
    if frame.is_empty() {
        return Ok(Some(Ok(Frame {
            command,
            payload: None,
        })));
    }
    Ok(Some(match parse_payload(frame) {
        Ok(payload) => Ok(Frame {
            command,
            payload: Some(payload),
        }),
        Err(error) => Err(CorruptFrame { command, error }),
    }))
}

/// `tokio_util` codec for the Pulsar binary protocol, usable on both ends.
#[derive(Debug, Clone)]
pub struct PulsarCodec {
    max_frame_size: usize,
}

impl Default for PulsarCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl PulsarCodec {
    /// A codec that rejects frames whose `totalSize` exceeds `max_frame_size`.
    pub fn new(max_frame_size: usize) -> Self {
        Self { max_frame_size }
    }

    /// The configured maximum frame size.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Changes the maximum, e.g. after CONNECTED advertised `max_message_size`.
    pub fn set_max_frame_size(&mut self, max_frame_size: usize) {
        self.max_frame_size = max_frame_size;
    }
}

impl Decoder for PulsarCodec {
    type Item = Result<Frame, CorruptFrame>;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>> {
        decode_frame(src, self.max_frame_size)
    }
}

impl Encoder<Outbound> for PulsarCodec {
    type Error = Error;

    fn encode(&mut self, item: Outbound, dst: &mut BytesMut) -> Result<()> {
        encode_frame(&item, dst, self.max_frame_size)
    }
}

impl Encoder<BaseCommand> for PulsarCodec {
    type Error = Error;

    fn encode(&mut self, item: BaseCommand, dst: &mut BytesMut) -> Result<()> {
        encode_frame(&Outbound::Command(item), dst, self.max_frame_size)
    }
}
