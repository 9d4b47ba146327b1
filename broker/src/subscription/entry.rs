//! What dispatch needs from a stored entry's message metadata.

use bytes::Bytes;
use magnetar_client::wire::{hash, proto::MessageMetadata};
use prost::Message as _;

/// Metadata of a stored entry, as far as dispatch cares.
#[derive(Debug, Clone, Default)]
pub struct EntryMeta {
    /// Messages in the entry (1 unless batched).
    pub num_messages: u32,
    /// Key_Shared slot of the entry's ordering or partition key (`None` without a key).
    pub slot: Option<u32>,
    /// Publish time (ms).
    pub publish_time: u64,
    /// Delayed delivery: not before this time (ms since epoch).
    pub deliver_at: Option<u64>,
}

/// Decodes the metadata of an entry stored as `[0x0e01][crc][size][metadata][body]`.
/// Entries that do not decode count as one keyless message.
pub fn entry_metadata(raw: &Bytes) -> EntryMeta {
    let fallback = EntryMeta {
        num_messages: 1,
        ..EntryMeta::default()
    };
    if raw.len() < 10 {
        return fallback;
    }
    let size = u32::from_be_bytes([raw[6], raw[7], raw[8], raw[9]]) as usize;
    if raw.len() - 10 < size {
        return fallback;
    }
    let Ok(md) = MessageMetadata::decode(&raw[10..10 + size]) else {
        return fallback;
    };
    let has_key = md.ordering_key.is_some() || md.partition_key.is_some();
    EntryMeta {
        num_messages: md.num_messages_in_batch.map_or(1, |n| n.max(1) as u32),
        slot: has_key.then(|| hash::key_shared_slot(hash::sticky_key(&md))),
        publish_time: md.publish_time,
        deliver_at: md.deliver_at_time.and_then(|t| u64::try_from(t).ok()),
    }
}
