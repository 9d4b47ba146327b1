//! Batch container: collects messages until a size, count or time limit, then turns
//! them into one entry. Pure data; the partition task decides when to flush.

use bytes::{Bytes, BytesMut};
use magnetar_proto::pulsar::{KeyValue, MessageMetadata, SingleMessageMetadata};
use tokio::sync::oneshot;

use crate::error::Result;
use crate::message::{MessageId, ProducerMessage};
use crate::wire::batch::append_to_batch;

/// Completes one `send` with the message's id.
pub(crate) type Ack = oneshot::Sender<Result<MessageId>>;

/// Limits that close a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchingPolicy {
    /// Most messages per batch.
    pub max_messages: usize,
    /// Most payload bytes per batch.
    pub max_bytes: usize,
    /// Longest time the first message of a batch waits.
    pub max_delay: std::time::Duration,
}

impl Default for BatchingPolicy {
    fn default() -> Self {
        BatchingPolicy {
            max_messages: 1000,
            max_bytes: 128 * 1024,
            max_delay: std::time::Duration::from_millis(1),
        }
    }
}

/// Messages waiting to become one batch entry.
#[derive(Default)]
pub(crate) struct BatchContainer {
    body: BytesMut,
    acks: Vec<Ack>,
    first_sequence_id: Option<u64>,
    last_sequence_id: u64,
}

/// A closed batch ready to send.
pub(crate) struct ClosedBatch {
    pub body: Bytes,
    pub acks: Vec<Ack>,
    pub sequence_id: u64,
    pub highest_sequence_id: u64,
}

impl BatchContainer {
    pub(crate) fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.acks.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.body.len()
    }

    /// True when adding `msg` would exceed `policy` (a batch always takes one message).
    pub(crate) fn would_overflow(&self, policy: &BatchingPolicy, msg: &ProducerMessage) -> bool {
        !self.is_empty()
            && (self.len() + 1 > policy.max_messages
                || self.bytes() + msg.payload.len() > policy.max_bytes)
    }

    pub(crate) fn add(&mut self, msg: &ProducerMessage, sequence_id: u64, ack: Ack) {
        let single = SingleMessageMetadata {
            properties: props(msg),
            partition_key: msg.key.clone(),
            payload_size: 0,
            event_time: msg.event_time,
            ordering_key: msg.ordering_key.clone(),
            sequence_id: Some(sequence_id),
            ..Default::default()
        };
        append_to_batch(&mut self.body, &single, &msg.payload);
        self.first_sequence_id.get_or_insert(sequence_id);
        self.last_sequence_id = sequence_id;
        self.acks.push(ack);
    }

    pub(crate) fn take(&mut self) -> Option<ClosedBatch> {
        let first = self.first_sequence_id.take()?;
        Some(ClosedBatch {
            body: std::mem::take(&mut self.body).freeze(),
            acks: std::mem::take(&mut self.acks),
            sequence_id: first,
            highest_sequence_id: self.last_sequence_id,
        })
    }
}

pub(crate) fn props(msg: &ProducerMessage) -> Vec<KeyValue> {
    let mut v: Vec<KeyValue> = msg
        .properties
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: v.clone(),
        })
        .collect();
    v.sort_by(|a, b| a.key.cmp(&b.key));
    v
}

/// Metadata for a single (non-batched) message.
pub(crate) fn single_metadata(
    producer_name: &str,
    sequence_id: u64,
    publish_time: u64,
    msg: &ProducerMessage,
) -> MessageMetadata {
    MessageMetadata {
        producer_name: producer_name.to_owned(),
        sequence_id,
        publish_time,
        properties: props(msg),
        partition_key: msg.key.clone(),
        ordering_key: msg.ordering_key.clone(),
        event_time: msg.event_time,
        deliver_at_time: msg.deliver_at,
        replicate_to: msg.replicate_to.clone(),
        replicated_from: msg.replicated_from.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::batch::parse_batch;

    #[test]
    fn container_closes_on_count_and_bytes() {
        let policy = BatchingPolicy {
            max_messages: 2,
            max_bytes: 100,
            max_delay: std::time::Duration::from_millis(1),
        };
        let mut c = BatchContainer::default();
        let m = ProducerMessage::new("abcd");
        assert!(!c.would_overflow(&policy, &m));
        c.add(&m, 5, oneshot::channel().0);
        assert!(!c.would_overflow(&policy, &m));
        c.add(&m, 6, oneshot::channel().0);
        assert!(c.would_overflow(&policy, &m));
        let b = c.take().expect("batch");
        assert_eq!(
            (b.sequence_id, b.highest_sequence_id, b.acks.len()),
            (5, 6, 2)
        );
        let msgs = parse_batch(&b.body, 2).expect("parse");
        assert_eq!(msgs[1].metadata.sequence_id, Some(6));
        assert!(c.take().is_none());
        let big = ProducerMessage::new(vec![0u8; 100]);
        assert!(
            !c.would_overflow(&policy, &big),
            "an empty batch takes any message"
        );
    }
}
