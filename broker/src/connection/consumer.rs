//! SUBSCRIBE, FLOW, ACK, REDELIVER, SEEK, GET_LAST_MESSAGE_ID, UNSUBSCRIBE,
//! CLOSE_CONSUMER and CONSUMER_STATS.

use magnetar_client::wire::commands::{self, IntoCommand};
use magnetar_client::wire::proto::{
    command_ack::AckType, command_subscribe::InitialPosition as WireInitial, BaseCommand,
    CommandConsumerStatsResponse, KeySharedMode, MessageIdData, ServerError,
};
use rand::Rng;
use tracing::debug;

use super::{wire_error, Conn, ConsumerState};
use crate::dispatch::{ConsumerInfo, SubType};
use crate::names::TopicName;
use crate::position::Position;
use crate::storage::InitialPosition;
use crate::subscription::{entry_metadata, AckItem, ConsumerSink, SeekTarget};

/// `MessageId.earliest` of the clients: ledger and entry -1.
const EARLIEST: u64 = u64::MAX;
/// `MessageId.latest` of the clients: ledger and entry `i64::MAX`.
const LATEST: u64 = i64::MAX as u64;

fn pos(id: &MessageIdData) -> Position {
    Position::new(id.ledger_id, id.entry_id)
}

impl Conn {
    fn consumer_or_error(&mut self, consumer_id: u64, request_id: u64) -> Option<&ConsumerState> {
        if !self.consumers.contains_key(&consumer_id) {
            self.reply(commands::error(
                request_id,
                ServerError::ConsumerNotFound,
                format!("consumer {consumer_id} not found on this connection"),
            ));
            return None;
        }
        self.consumers.get(&consumer_id)
    }

    pub(super) async fn subscribe(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.subscribe else {
            return self.malformed();
        };
        let rid = req.request_id;
        if self.consumers.contains_key(&req.consumer_id) {
            // A retried SUBSCRIBE is answered again, as Pulsar does.
            self.reply(commands::success(rid));
            return;
        }
        let Some(sub_type) = SubType::from_wire(req.sub_type) else {
            self.reply(commands::error(
                rid,
                ServerError::UnknownError,
                "unknown subscription type",
            ));
            return;
        };
        let name = match TopicName::parse(&req.topic) {
            Ok(n) => n,
            Err(e) => return self.reply(commands::error(rid, wire_error(&e), e.to_string())),
        };
        let create = req.force_topic_creation.unwrap_or(true);
        let topic = match self.broker.get_topic(&name, create).await {
            Ok(t) => t,
            Err(e) => return self.reply(commands::error(rid, wire_error(&e), e.to_string())),
        };
        if let Err(e) = self
            .register_schema(&name, req.schema.as_ref(), crate::schema::Role::Consumer)
            .await
        {
            return self.reply(commands::error(rid, wire_error(&e), e.to_string()));
        }
        let durable = req.durable.unwrap_or(true);
        let mut initial = match req
            .initial_position
            .and_then(|p| WireInitial::try_from(p).ok())
        {
            Some(WireInitial::Earliest) => InitialPosition::Earliest,
            _ => InitialPosition::Latest,
        };
        if !durable {
            if let Some(start) = req.start_message_id.as_ref() {
                initial = match start.ledger_id {
                    EARLIEST => InitialPosition::Earliest,
                    LATEST => InitialPosition::Latest,
                    // Delivered inclusively; clients drop the start message when exclusive.
                    _ => InitialPosition::At(pos(start)),
                };
            }
        }
        if durable
            && !self.broker.config.allow_auto_subscription_creation
            && topic.subscription(&req.subscription).is_none()
        {
            self.reply(commands::error(
                rid,
                ServerError::SubscriptionNotFound,
                format!("subscription {} does not exist", req.subscription),
            ));
            return;
        }
        let sub = match topic
            .subscribe(&req.subscription, sub_type, durable, initial)
            .await
        {
            Ok(s) => s,
            Err(e) => return self.reply(commands::error(rid, wire_error(&e), e.to_string())),
        };
        let consumer_name = req
            .consumer_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                let n: u32 = rand::thread_rng().gen();
                format!("consumer-{n:08x}")
            });
        let sticky_ranges = req.key_shared_meta.as_ref().and_then(|m| {
            (m.key_shared_mode == KeySharedMode::Sticky as i32).then(|| {
                m.hash_ranges
                    .iter()
                    .map(|r| (r.start.max(0) as u32, r.end.max(0) as u32))
                    .collect()
            })
        });
        let key = self.broker.next_key();
        let info = ConsumerInfo {
            key,
            name: consumer_name.clone(),
            priority: req.priority_level.unwrap_or(0),
            sticky_ranges,
        };
        let sink = ConsumerSink {
            consumer_id: req.consumer_id,
            out: self.out_tx.clone(),
            protocol_version: self.version,
        };
        match sub.add_consumer(info, sink).await {
            Ok(()) => {
                debug!(
                    topic = %name, sub = %req.subscription, consumer = %consumer_name,
                    durable, start = ?req.start_message_id.as_ref().map(pos),
                    "subscribed"
                );
                self.consumers
                    .insert(req.consumer_id, ConsumerState { topic, sub, key });
                self.reply(commands::success(rid));
            }
            Err(e) => {
                topic.drop_if_reader(&req.subscription);
                self.reply(commands::error(rid, wire_error(&e), e.to_string()));
            }
        }
    }

    pub(super) fn flow(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.flow else {
            return self.malformed();
        };
        if let Some(c) = self.consumers.get(&req.consumer_id) {
            c.sub.flow(c.key, req.message_permits);
        }
    }

    pub(super) fn ack(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.ack else {
            return self.malformed();
        };
        let Some(c) = self.consumers.get(&req.consumer_id) else {
            if let Some(rid) = req.request_id.filter(|_| self.version >= 17) {
                self.reply(commands::ack_response(
                    req.consumer_id,
                    Some(rid),
                    Some((ServerError::ConsumerNotFound, "consumer not found".into())),
                ));
            }
            return;
        };
        let items = req
            .message_id
            .iter()
            .map(|id| AckItem {
                pos: pos(id),
                ack_set: (!id.ack_set.is_empty()).then(|| id.ack_set.clone()),
            })
            .collect();
        let cumulative = req.ack_type == AckType::Cumulative as i32;
        c.sub.ack(c.key, items, cumulative, req.request_id);
    }

    pub(super) fn redeliver(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.redeliver_unacknowledged_messages else {
            return self.malformed();
        };
        if let Some(c) = self.consumers.get(&req.consumer_id) {
            let positions =
                (!req.message_ids.is_empty()).then(|| req.message_ids.iter().map(pos).collect());
            c.sub.redeliver(c.key, positions);
        }
    }

    pub(super) async fn seek(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.seek else {
            return self.malformed();
        };
        let rid = req.request_id;
        let Some(c) = self.consumer_or_error(req.consumer_id, rid) else {
            return;
        };
        let log = c.topic.log.clone();
        let target = if let Some(t) = req.message_publish_time {
            SeekTarget::PublishTime(t)
        } else if let Some(id) = req.message_id.as_ref() {
            SeekTarget::Position(match id.ledger_id {
                EARLIEST => log.first_position(),
                LATEST => log
                    .last_confirmed()
                    .map_or(log.first_position(), |p| log.next_position(p)),
                _ => pos(id),
            })
        } else {
            self.reply(commands::error(
                rid,
                ServerError::UnknownError,
                "SEEK without target",
            ));
            return;
        };
        let sub = c.sub.clone();
        match sub.seek(target).await {
            Ok(()) => {
                // The subscription disconnected its consumers; tell the client before SUCCESS.
                self.drain_events();
                self.reply(commands::success(rid));
            }
            Err(e) => self.reply(commands::error(rid, wire_error(&e), e.to_string())),
        }
    }

    pub(super) async fn last_message_id(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.get_last_message_id else {
            return self.malformed();
        };
        let rid = req.request_id;
        let Some(c) = self.consumer_or_error(req.consumer_id, rid) else {
            return;
        };
        let log = c.topic.log.clone();
        let partition = c.topic.name.partition_index();
        let mark_delete = c.sub.cursor.mark_delete();
        let mut last = MessageIdData {
            ledger_id: log.current_ledger(),
            entry_id: u64::MAX,
            partition: Some(partition),
            ..Default::default()
        };
        if let Some(p) = log.last_confirmed() {
            last.ledger_id = p.ledger;
            last.entry_id = p.entry;
            // For a batch, the last message is the batch's last index.
            if let Ok(entries) = log.read(p, 1).await {
                if let Some((_, data)) = entries.first() {
                    let meta = entry_metadata(data);
                    if meta.num_messages > 1 {
                        last.batch_index = Some(meta.num_messages as i32 - 1);
                    }
                }
            }
        }
        let md = mark_delete.map(|m| MessageIdData {
            ledger_id: m.ledger,
            entry_id: m.entry,
            ..Default::default()
        });
        self.reply(commands::get_last_message_id_response(rid, last, md));
    }

    pub(super) async fn unsubscribe(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.unsubscribe else {
            return self.malformed();
        };
        let rid = req.request_id;
        let Some(c) = self.consumer_or_error(req.consumer_id, rid) else {
            return;
        };
        let (sub, topic, key) = (c.sub.clone(), c.topic.clone(), c.key);
        match sub.unsubscribe(Some(key)).await {
            Ok(()) => {
                self.consumers.remove(&req.consumer_id);
                match topic.remove_subscription(&sub.name).await {
                    Ok(()) => self.reply(commands::success(rid)),
                    Err(e) => self.reply(commands::error(rid, wire_error(&e), e.to_string())),
                }
            }
            Err(e) => self.reply(commands::error(rid, wire_error(&e), e.to_string())),
        }
    }

    pub(super) async fn close_consumer(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.close_consumer else {
            return self.malformed();
        };
        if let Some(c) = self.consumers.remove(&req.consumer_id) {
            // Wait, so a following SUBSCRIBE (maybe of another type) sees it gone.
            c.sub.remove_consumer_and_wait(c.key).await;
            c.topic.drop_if_reader(&c.sub.name);
        }
        self.reply(commands::success(req.request_id));
    }

    pub(super) async fn consumer_stats(&mut self, cmd: BaseCommand) {
        let Some(req) = cmd.consumer_stats else {
            return self.malformed();
        };
        let rid = req.request_id;
        let Some(c) = self.consumers.get(&req.consumer_id) else {
            self.reply(commands::consumer_stats_error(
                rid,
                ServerError::ConsumerNotFound,
                "consumer not found",
            ));
            return;
        };
        let (sub, key) = (c.sub.clone(), c.key);
        let Some(stats) = sub.stats().await else {
            self.reply(commands::consumer_stats_error(
                rid,
                ServerError::ServiceNotReady,
                "subscription closed",
            ));
            return;
        };
        let _ = key;
        let mine = stats.consumers.first().cloned();
        self.reply(
            CommandConsumerStatsResponse {
                request_id: rid,
                consumer_name: mine.as_ref().map(|m| m.consumer_name.clone()),
                available_permits: mine.as_ref().map(|m| m.available_permits.max(0) as u64),
                unacked_messages: mine.as_ref().map(|m| m.unacked_messages as u64),
                msg_backlog: Some(stats.backlog),
                r#type: Some(sub.sub_type.name().to_string()),
                msg_rate_out: Some(0.0),
                msg_throughput_out: Some(0.0),
                ..Default::default()
            }
            .into_command(),
        );
    }
}
