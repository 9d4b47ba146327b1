//! PRODUCER, SEND and CLOSE_PRODUCER.

use futures::FutureExt;
use magnetar_client::wire::proto::{BaseCommand, MessageIdData, ProducerAccessMode, ServerError};
use magnetar_client::wire::{commands, Outbound, Payload};
use tracing::debug;

use super::hold::PendingProducer;
use super::{wire_error, Conn, ProducerState};
use crate::names::TopicName;
use crate::topic::{ProducerEntry, Published};

impl Conn {
    pub(super) async fn producer(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.producer else {
            return self.malformed();
        };
        let rid = req.request_id;
        if self.holds.is_held(req.producer_id) {
            return; // a retry of a held request: the held one answers
        }
        if let Some(existing) = self.producers.get(&req.producer_id) {
            // A retried PRODUCER for the same topic is answered again, as Pulsar does.
            if existing.topic.name.to_string() == req.topic
                || TopicName::parse(&req.topic).is_ok_and(|t| t == existing.topic.name)
            {
                let (name, version) = (existing.name.clone(), existing.schema_version.clone());
                self.reply(commands::producer_success(rid, &name, -1, version, None));
            } else {
                self.reply(commands::error(
                    rid,
                    ServerError::ProducerBusy,
                    format!(
                        "producer id {} already in use on this connection",
                        req.producer_id
                    ),
                ));
            }
            return;
        }
        let name = match TopicName::parse(&req.topic) {
            Ok(n) => n,
            Err(e) => return self.reply(commands::error(rid, wire_error(&e), e.to_string())),
        };
        let topic = match self.broker.get_topic(&name, true).await {
            Ok(t) => t,
            Err(e) => return self.reply(commands::error(rid, wire_error(&e), e.to_string())),
        };
        let producer_name = match req.producer_name.clone().filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => self.broker.producer_name().await,
        };
        let exclusive = matches!(
            req.producer_access_mode
                .and_then(|m| ProducerAccessMode::try_from(m).ok()),
            Some(
                ProducerAccessMode::Exclusive
                    | ProducerAccessMode::WaitForExclusive
                    | ProducerAccessMode::ExclusiveWithFencing
            )
        );
        let schema_version = match self
            .register_schema(&name, req.schema.as_ref(), crate::schema::Role::Producer)
            .await
        {
            Ok(v) => v.map(crate::schema::version_bytes),
            Err(e) => return self.reply(commands::error(rid, wire_error(&e), e.to_string())),
        };
        let pending = PendingProducer {
            request_id: rid,
            producer_id: req.producer_id,
            name,
            topic,
            producer_name,
            exclusive,
            schema_version,
        };
        self.admit_producer(pending).await;
    }

    /// Creates an admitted producer and answers its PRODUCER request.
    pub(super) fn create_producer(&mut self, p: PendingProducer) {
        let PendingProducer {
            request_id: rid,
            producer_id,
            name,
            topic,
            producer_name,
            exclusive,
            schema_version,
        } = p;
        let key = self.broker.next_key();
        let entry = ProducerEntry {
            name: producer_name.clone(),
            exclusive,
            out: self.out_tx.clone(),
            producer_id,
        };
        match topic.add_producer(key, entry) {
            Ok(last_seq) => {
                debug!(topic = %name, producer = %producer_name, "producer created");
                self.producers.insert(
                    producer_id,
                    ProducerState {
                        topic,
                        name: producer_name.clone(),
                        key,
                        schema_version: schema_version.clone(),
                    },
                );
                self.reply(commands::producer_success(
                    rid,
                    &producer_name,
                    last_seq,
                    schema_version,
                    Some(0),
                ));
            }
            Err(e) => self.reply(commands::error(rid, wire_error(&e), e.to_string())),
        }
    }

    pub(super) fn send(&mut self, cmd: BaseCommand, payload: Option<Payload>) {
        let Some(send) = cmd.send else {
            return self.malformed();
        };
        let (pid, seq) = (send.producer_id, send.sequence_id);
        let Some(p) = self.producers.get(&pid) else {
            self.reply(commands::send_error(
                pid,
                seq,
                ServerError::UnknownError,
                "producer not found on this connection",
            ));
            return;
        };
        let Some(payload) = payload else {
            self.reply(commands::send_error(
                pid,
                seq,
                ServerError::UnknownError,
                "SEND without payload",
            ));
            return;
        };
        if payload.raw.len() > magnetar_bookie::wire::MAX_ENTRY_BYTES {
            // Storing it would fail the ledger for everyone on the topic; refuse it alone.
            self.reply(commands::send_error(
                pid,
                seq,
                ServerError::UnknownError,
                format!(
                    "message of {} bytes exceeds the entry limit of {}",
                    payload.raw.len(),
                    magnetar_bookie::wire::MAX_ENTRY_BYTES
                ),
            ));
            return;
        }
        let highest = send
            .highest_sequence_id
            .filter(|h| *h >= seq)
            .unwrap_or(seq);
        let num = send
            .num_messages
            .or(payload.metadata.num_messages_in_batch)
            .unwrap_or(1)
            .max(1) as u32;
        metrics::counter!("magnetar_broker_messages_in_total").increment(u64::from(num));
        metrics::counter!("magnetar_broker_bytes_in_total").increment(payload.raw.len() as u64);
        let md = &payload.metadata;
        let intermediate_chunk = match (md.chunk_id, md.num_chunks_from_msg) {
            (Some(id), Some(n)) => id + 1 < n,
            _ => false,
        };
        let published = if intermediate_chunk {
            p.topic.publish_chunk(payload.raw)
        } else {
            p.topic.publish(&p.name, seq, highest, num, payload.raw)
        };
        let fut = match published {
            Published::Duplicate => {
                let id = MessageIdData {
                    ledger_id: u64::MAX,
                    entry_id: u64::MAX,
                    ..Default::default()
                };
                let receipt: Outbound = commands::send_receipt(pid, seq, highest, id).into();
                async move { receipt }.boxed()
            }
            Published::Stored(stored) => async move {
                let cmd = match stored.await {
                    Ok(pos) => commands::send_receipt(
                        pid,
                        seq,
                        highest,
                        commands::message_id(pos.ledger, pos.entry),
                    ),
                    Err(e) => commands::send_error(pid, seq, wire_error(&e), e.to_string()),
                };
                Outbound::from(cmd)
            }
            .boxed(),
        };
        self.receipts.push_back(fut);
    }

    pub(super) fn close_producer(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.close_producer else {
            return self.malformed();
        };
        if let Some(p) = self.producers.remove(&req.producer_id) {
            p.topic.remove_producer(p.key);
        } else {
            self.holds.close(req.producer_id);
        }
        // Through the receipt queue, so the reply follows the producer's pending receipts.
        let done: Outbound = commands::success(req.request_id).into();
        self.receipts.push_back(async move { done }.boxed());
    }
}
