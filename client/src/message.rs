//! Message ids and messages as the application sees them.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use magnetar_proto::pulsar::{MessageIdData, MessageMetadata, SingleMessageMetadata};

/// Position of a message: ledger and entry, plus the partition and the index inside a
/// batch entry. Ordered by (ledger, entry, batch index); `partition` does not take part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId {
    /// Ledger holding the entry.
    pub ledger_id: u64,
    /// Entry within the ledger.
    pub entry_id: u64,
    /// Partition index, -1 for a non-partitioned topic.
    pub partition: i32,
    /// Index inside a batch entry, -1 if the entry is not a batch.
    pub batch_index: i32,
    /// Number of messages in the batch entry (0 if unknown or not a batch).
    pub batch_size: i32,
}

impl MessageId {
    /// The position before the first message of a topic.
    pub const EARLIEST: MessageId = MessageId {
        ledger_id: u64::MAX,
        entry_id: u64::MAX,
        partition: -1,
        batch_index: -1,
        batch_size: 0,
    };
    /// The position after the last message of a topic.
    pub const LATEST: MessageId = MessageId {
        ledger_id: i64::MAX as u64,
        entry_id: i64::MAX as u64,
        partition: -1,
        batch_index: -1,
        batch_size: 0,
    };

    /// A non-batched id.
    pub fn new(ledger_id: u64, entry_id: u64, partition: i32) -> Self {
        MessageId {
            ledger_id,
            entry_id,
            partition,
            batch_index: -1,
            batch_size: 0,
        }
    }

    /// Converts from the wire form.
    pub fn from_proto(d: &MessageIdData) -> Self {
        MessageId {
            ledger_id: d.ledger_id,
            entry_id: d.entry_id,
            partition: d.partition.unwrap_or(-1),
            batch_index: d.batch_index.unwrap_or(-1),
            batch_size: d.batch_size.unwrap_or(0),
        }
    }

    /// The wire form.
    pub fn to_proto(&self) -> MessageIdData {
        MessageIdData {
            ledger_id: self.ledger_id,
            entry_id: self.entry_id,
            partition: (self.partition >= 0).then_some(self.partition),
            batch_index: (self.batch_index >= 0).then_some(self.batch_index),
            batch_size: (self.batch_size > 0).then_some(self.batch_size),
            ..Default::default()
        }
    }

    /// The wire form of the whole entry (batch index dropped), used for entry-level acks.
    pub fn entry_proto(&self) -> MessageIdData {
        MessageIdData {
            ledger_id: self.ledger_id,
            entry_id: self.entry_id,
            partition: (self.partition >= 0).then_some(self.partition),
            ..Default::default()
        }
    }

    /// True for ids of messages inside a batch entry.
    pub fn is_batch(&self) -> bool {
        self.batch_index >= 0
    }

    fn key(&self) -> (i128, i128, i32) {
        // EARLIEST uses -1 (u64::MAX) for ledger and entry; order it before everything.
        let signed = |v: u64| if v == u64::MAX { -1 } else { v as i128 };
        (
            signed(self.ledger_id),
            signed(self.entry_id),
            self.batch_index,
        )
    }
}

impl PartialOrd for MessageId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MessageId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.ledger_id as i64, self.entry_id as i64, self.partition, self.batch_index
        )
    }
}

/// A message received by a consumer or reader.
#[derive(Debug, Clone)]
pub struct Message {
    /// Topic (partition) the message came from.
    pub topic: String,
    /// Its id; pass it back to ack.
    pub id: MessageId,
    /// Application payload.
    pub payload: Bytes,
    /// Partition key, if the producer set one.
    pub key: Option<String>,
    /// Ordering key, if the producer set one.
    pub ordering_key: Option<Vec<u8>>,
    /// Application properties.
    pub properties: HashMap<String, String>,
    /// Producer's publish time, milliseconds since the epoch.
    pub publish_time: u64,
    /// Application event time (0 if unset).
    pub event_time: u64,
    /// Name of the producer.
    pub producer_name: String,
    /// Producer's sequence id.
    pub sequence_id: u64,
    /// How many times the broker delivered this message before.
    pub redelivery_count: u32,
    /// Cluster the message was replicated from, if any.
    pub replicated_from: Option<String>,
}

impl Message {
    pub(crate) fn build(
        topic: &str,
        id: MessageId,
        meta: &MessageMetadata,
        single: Option<&SingleMessageMetadata>,
        payload: Bytes,
        redelivery_count: u32,
    ) -> Self {
        let (key, ordering_key, props, event_time, seq) = match single {
            Some(s) => (
                s.partition_key.clone(),
                s.ordering_key.clone(),
                &s.properties,
                s.event_time.unwrap_or(0),
                s.sequence_id
                    .unwrap_or(meta.sequence_id + id.batch_index.max(0) as u64),
            ),
            None => (
                meta.partition_key.clone(),
                meta.ordering_key.clone(),
                &meta.properties,
                meta.event_time.unwrap_or(0),
                meta.sequence_id,
            ),
        };
        Message {
            topic: topic.to_owned(),
            id,
            payload,
            key,
            ordering_key,
            properties: props
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect(),
            publish_time: meta.publish_time,
            event_time,
            producer_name: meta.producer_name.clone(),
            sequence_id: seq,
            redelivery_count,
            replicated_from: meta.replicated_from.clone(),
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone, Default)]
pub struct ProducerMessage {
    /// Payload.
    pub payload: Bytes,
    /// Partition key: routes the message and orders Key_Shared delivery.
    pub key: Option<String>,
    /// Overrides `key` for Key_Shared ordering.
    pub ordering_key: Option<Vec<u8>>,
    /// Application properties.
    pub properties: HashMap<String, String>,
    /// Event time, milliseconds since the epoch.
    pub event_time: Option<u64>,
    /// Deliver no earlier than this time (milliseconds since the epoch). Never batched.
    pub deliver_at: Option<i64>,
    /// Explicit sequence id (otherwise the producer assigns the next one).
    pub sequence_id: Option<u64>,
    /// Restricts geo-replication to these clusters.
    pub replicate_to: Vec<String>,
    /// Marks a message copied from another cluster (used by the replicator).
    pub replicated_from: Option<String>,
}

impl ProducerMessage {
    /// A message with just a payload.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        ProducerMessage {
            payload: payload.into(),
            ..Default::default()
        }
    }

    /// Sets the partition key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a property.
    pub fn with_property(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.properties.insert(k.into(), v.into());
        self
    }

    /// Sets the event time.
    pub fn with_event_time(mut self, ms: u64) -> Self {
        self.event_time = Some(ms);
        self
    }

    /// Delays delivery until `ms` since the epoch.
    pub fn deliver_at(mut self, ms: i64) -> Self {
        self.deliver_at = Some(ms);
        self
    }
}

impl<T: Into<Bytes>> From<T> for ProducerMessage {
    fn from(p: T) -> Self {
        ProducerMessage::new(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_sorts_first_and_latest_last() {
        let a = MessageId::new(3, 4, -1);
        assert!(MessageId::EARLIEST < a);
        assert!(a < MessageId::LATEST);
        let mut b = a;
        b.batch_index = 2;
        assert!(a < b);
    }

    #[test]
    fn proto_round_trip() {
        let id = MessageId {
            ledger_id: 1,
            entry_id: 2,
            partition: 3,
            batch_index: 4,
            batch_size: 5,
        };
        assert_eq!(MessageId::from_proto(&id.to_proto()), id);
        assert_eq!(
            MessageId::from_proto(&MessageId::new(1, 2, -1).to_proto()).partition,
            -1
        );
    }
}
