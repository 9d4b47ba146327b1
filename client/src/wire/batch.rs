//! Batch payloads and compression (LZ4, ZSTD, ZLIB, SNAPPY).
//!
//! A batched body is N x `[u32 size][SingleMessageMetadata][payload]`, where `size` is
//! the length of the encoded `SingleMessageMetadata` and `payload_size` inside it gives
//! the payload length. The whole body is then compressed as one unit; `uncompressed_size`
//! in the [`MessageMetadata`] records its size before compression.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use magnetar_proto::pulsar::{CompressionType, MessageMetadata, SingleMessageMetadata};
use prost::Message as _;

use crate::error::{Error, Result};

/// One message taken out of (or going into) a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchMessage {
    /// Per-message metadata (key, properties, event time, ...).
    pub metadata: SingleMessageMetadata,
    /// Message payload.
    pub payload: Bytes,
}

/// Splits an uncompressed batch body into its `num_messages` messages.
pub fn parse_batch(body: &Bytes, num_messages: usize) -> Result<Vec<BatchMessage>> {
    let mut rest = body.clone();
    // Bound the allocation by what the body can possibly hold (4 bytes per message).
    let mut out = Vec::with_capacity(num_messages.min(body.len() / 4 + 1));
    for _ in 0..num_messages {
        if rest.len() < 4 {
            return Err(Error::MalformedBatch {
                reason: "truncated metadata size",
            });
        }
        let meta_len = rest.get_u32() as usize;
        if meta_len > rest.len() {
            return Err(Error::MalformedBatch {
                reason: "metadata exceeds body",
            });
        }
        let metadata =
            SingleMessageMetadata::decode(&rest[..meta_len]).map_err(|source| Error::Decode {
                what: "SingleMessageMetadata",
                source,
            })?;
        rest.advance(meta_len);
        let size = usize::try_from(metadata.payload_size).map_err(|_| Error::MalformedBatch {
            reason: "negative payload size",
        })?;
        if size > rest.len() {
            return Err(Error::MalformedBatch {
                reason: "payload exceeds body",
            });
        }
        let payload = rest.split_to(size);
        out.push(BatchMessage { metadata, payload });
    }
    Ok(out)
}

/// Builds an uncompressed batch body. `payload_size` is set from each payload.
pub fn build_batch<'a>(messages: impl IntoIterator<Item = &'a BatchMessage>) -> Bytes {
    let mut buf = BytesMut::new();
    for m in messages {
        append_to_batch(&mut buf, &m.metadata, &m.payload);
    }
    buf.freeze()
}

/// Appends one message to a batch body under construction.
pub fn append_to_batch(buf: &mut BytesMut, metadata: &SingleMessageMetadata, payload: &[u8]) {
    let mut metadata = metadata.clone();
    metadata.payload_size = i32::try_from(payload.len()).unwrap_or(i32::MAX);
    let len = metadata.encoded_len();
    buf.reserve(4 + len + payload.len());
    buf.put_u32(len as u32);
    metadata
        .encode(buf)
        .expect("space was reserved for the metadata");
    buf.put_slice(payload);
}

/// Compresses `data` the way the Java client does: LZ4 as a raw block, ZSTD as a frame,
/// ZLIB as zlib-wrapped deflate, SNAPPY as a raw (unframed) snappy block.
pub fn compress(codec: CompressionType, data: &[u8]) -> Result<Bytes> {
    match codec {
        CompressionType::None => Ok(Bytes::copy_from_slice(data)),
        CompressionType::Lz4 => Ok(Bytes::from(lz4_flex::block::compress(data))),
        CompressionType::Zlib => {
            use std::io::Write as _;
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data)
                .and_then(|()| enc.finish())
                .map(Bytes::from)
                .map_err(|e| Error::Compression {
                    codec: "ZLIB",
                    op: "compression",
                    source: Box::new(e),
                })
        }
        CompressionType::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            .map(Bytes::from)
            .map_err(|e| Error::Compression {
                codec: "SNAPPY",
                op: "compression",
                source: Box::new(e),
            }),
        CompressionType::Zstd => {
            zstd::bulk::compress(data, 3)
                .map(Bytes::from)
                .map_err(|e| Error::Compression {
                    codec: "ZSTD",
                    op: "compression",
                    source: Box::new(e),
                })
        }
    }
}

/// Decompresses `data` into exactly `uncompressed_size` bytes, refusing sizes above
/// `max_size` before allocating.
pub fn decompress(
    codec: CompressionType,
    data: &Bytes,
    uncompressed_size: usize,
    max_size: usize,
) -> Result<Bytes> {
    if codec == CompressionType::None {
        return Ok(data.clone());
    }
    if uncompressed_size > max_size {
        return Err(Error::FrameTooLarge {
            size: uncompressed_size,
            max: max_size,
        });
    }
    let out = match codec {
        CompressionType::Lz4 => {
            lz4_flex::block::decompress(data, uncompressed_size).map_err(|e| {
                Error::Compression {
                    codec: "LZ4",
                    op: "decompression",
                    source: Box::new(e),
                }
            })?
        }
        CompressionType::Zstd => {
            zstd::bulk::decompress(data, uncompressed_size).map_err(|e| Error::Compression {
                codec: "ZSTD",
                op: "decompression",
                source: Box::new(e),
            })?
        }
        CompressionType::Zlib => {
            use std::io::Read as _;
            // Read one byte past the announced size so an oversized stream is detected
            // without inflating all of it.
            let mut out = Vec::with_capacity(uncompressed_size);
            flate2::read::ZlibDecoder::new(&data[..])
                .take(uncompressed_size as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Error::Compression {
                    codec: "ZLIB",
                    op: "decompression",
                    source: Box::new(e),
                })?;
            out
        }
        CompressionType::Snappy => {
            let len = snap::raw::decompress_len(data).map_err(|e| Error::Compression {
                codec: "SNAPPY",
                op: "decompression",
                source: Box::new(e),
            })?;
            if len != uncompressed_size {
                return Err(Error::MalformedBatch {
                    reason: "decompressed size differs from uncompressed_size",
                });
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|e| Error::Compression {
                    codec: "SNAPPY",
                    op: "decompression",
                    source: Box::new(e),
                })?
        }
        other => return Err(Error::UnsupportedCompression(other as i32)),
    };
    if out.len() != uncompressed_size {
        return Err(Error::MalformedBatch {
            reason: "decompressed size differs from uncompressed_size",
        });
    }
    Ok(Bytes::from(out))
}

/// True when the entry holds a batch (the producer set `num_messages_in_batch`).
pub fn is_batch(metadata: &MessageMetadata) -> bool {
    metadata.num_messages_in_batch.is_some()
}

/// Decompresses a message body and splits it into messages. A non-batched entry yields a
/// single message whose metadata is `None`. `max_size` bounds the decompressed size.
pub fn unpack(
    metadata: &MessageMetadata,
    body: &Bytes,
    max_size: usize,
) -> Result<Vec<(Option<SingleMessageMetadata>, Bytes)>> {
    let codec = CompressionType::try_from(metadata.compression.unwrap_or(0))
        .map_err(|_| Error::UnsupportedCompression(metadata.compression.unwrap_or(0)))?;
    let plain = decompress(
        codec,
        body,
        metadata.uncompressed_size.unwrap_or(0) as usize,
        max_size,
    )?;
    if !is_batch(metadata) {
        return Ok(vec![(None, plain)]);
    }
    let n = usize::try_from(metadata.num_messages_in_batch.unwrap_or(1)).map_err(|_| {
        Error::MalformedBatch {
            reason: "negative num_messages_in_batch",
        }
    })?;
    Ok(parse_batch(&plain, n)?
        .into_iter()
        .map(|m| (Some(m.metadata), m.payload))
        .collect())
}

/// Compresses `body` with `codec` and records the codec and original size in `metadata`.
pub fn pack(metadata: &mut MessageMetadata, codec: CompressionType, body: &[u8]) -> Result<Bytes> {
    if codec == CompressionType::None {
        metadata.compression = None;
        metadata.uncompressed_size = None;
        return Ok(Bytes::copy_from_slice(body));
    }
    let out = compress(codec, body)?;
    metadata.compression = Some(codec as i32);
    metadata.uncompressed_size = Some(u32::try_from(body.len()).unwrap_or(u32::MAX));
    Ok(out)
}
