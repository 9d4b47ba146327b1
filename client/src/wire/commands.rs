//! Command builders: one place where both the broker and the client construct
//! [`BaseCommand`]s, so the `type` field always matches the populated command.
//!
//! Every `Command*` message converts into a [`BaseCommand`] with [`IntoCommand`]; the functions
//! below fill in the usual fields for the commands sent most often.

use magnetar_proto::pulsar::{
    base_command::Type, command_ack::AckType, command_lookup_topic_response::LookupType,
    command_partitioned_topic_metadata_response::LookupType as PartitionLookupType, BaseCommand,
    CommandAck, CommandAckResponse, CommandActiveConsumerChange, CommandAddPartitionToTxn,
    CommandAddPartitionToTxnResponse, CommandAddSubscriptionToTxn,
    CommandAddSubscriptionToTxnResponse, CommandAuthChallenge, CommandAuthResponse,
    CommandCloseConsumer, CommandCloseProducer, CommandConnect, CommandConnected,
    CommandConsumerStats, CommandConsumerStatsResponse, CommandEndTxn, CommandEndTxnOnPartition,
    CommandEndTxnOnPartitionResponse, CommandEndTxnOnSubscription,
    CommandEndTxnOnSubscriptionResponse, CommandEndTxnResponse, CommandError, CommandFlow,
    CommandGetLastMessageId, CommandGetLastMessageIdResponse, CommandGetOrCreateSchema,
    CommandGetOrCreateSchemaResponse, CommandGetSchema, CommandGetSchemaResponse,
    CommandGetTopicsOfNamespace, CommandGetTopicsOfNamespaceResponse, CommandLookupTopic,
    CommandLookupTopicResponse, CommandMessage, CommandNewTxn, CommandNewTxnResponse,
    CommandPartitionedTopicMetadata, CommandPartitionedTopicMetadataResponse, CommandPing,
    CommandPong, CommandProducer, CommandProducerSuccess, CommandReachedEndOfTopic,
    CommandRedeliverUnacknowledgedMessages, CommandSeek, CommandSend, CommandSendError,
    CommandSendReceipt, CommandSubscribe, CommandSuccess, CommandTcClientConnectRequest,
    CommandTcClientConnectResponse, CommandTopicMigrated, CommandUnsubscribe,
    CommandWatchTopicList, CommandWatchTopicListClose, CommandWatchTopicListSuccess,
    CommandWatchTopicUpdate, FeatureFlags, MessageIdData, ServerError,
};

/// Wraps a `Command*` message into a [`BaseCommand`] with the matching `type`.
pub trait IntoCommand {
    /// The wrapped command.
    fn into_command(self) -> BaseCommand;
}

macro_rules! into_base {
    ($($cmd:ident => $ty:ident, $field:ident;)*) => {
        $(
            impl IntoCommand for $cmd {
                fn into_command(self) -> BaseCommand {
                    BaseCommand {
                        r#type: Type::$ty as i32,
                        $field: Some(self),
                        ..Default::default()
                    }
                }
            }
        )*
    };
}

into_base! {
    CommandConnect => Connect, connect;
    CommandConnected => Connected, connected;
    CommandSubscribe => Subscribe, subscribe;
    CommandProducer => Producer, producer;
    CommandSend => Send, send;
    CommandSendReceipt => SendReceipt, send_receipt;
    CommandSendError => SendError, send_error;
    CommandMessage => Message, message;
    CommandAck => Ack, ack;
    CommandFlow => Flow, flow;
    CommandUnsubscribe => Unsubscribe, unsubscribe;
    CommandSuccess => Success, success;
    CommandError => Error, error;
    CommandCloseProducer => CloseProducer, close_producer;
    CommandCloseConsumer => CloseConsumer, close_consumer;
    CommandProducerSuccess => ProducerSuccess, producer_success;
    CommandPing => Ping, ping;
    CommandPong => Pong, pong;
    CommandRedeliverUnacknowledgedMessages => RedeliverUnacknowledgedMessages, redeliver_unacknowledged_messages;
    CommandPartitionedTopicMetadata => PartitionedMetadata, partition_metadata;
    CommandPartitionedTopicMetadataResponse => PartitionedMetadataResponse, partition_metadata_response;
    CommandLookupTopic => Lookup, lookup_topic;
    CommandLookupTopicResponse => LookupResponse, lookup_topic_response;
    CommandConsumerStats => ConsumerStats, consumer_stats;
    CommandConsumerStatsResponse => ConsumerStatsResponse, consumer_stats_response;
    CommandReachedEndOfTopic => ReachedEndOfTopic, reached_end_of_topic;
    CommandSeek => Seek, seek;
    CommandGetLastMessageId => GetLastMessageId, get_last_message_id;
    CommandGetLastMessageIdResponse => GetLastMessageIdResponse, get_last_message_id_response;
    CommandActiveConsumerChange => ActiveConsumerChange, active_consumer_change;
    CommandGetTopicsOfNamespace => GetTopicsOfNamespace, get_topics_of_namespace;
    CommandGetTopicsOfNamespaceResponse => GetTopicsOfNamespaceResponse, get_topics_of_namespace_response;
    CommandGetSchema => GetSchema, get_schema;
    CommandGetSchemaResponse => GetSchemaResponse, get_schema_response;
    CommandAuthChallenge => AuthChallenge, auth_challenge;
    CommandAuthResponse => AuthResponse, auth_response;
    CommandAckResponse => AckResponse, ack_response;
    CommandGetOrCreateSchema => GetOrCreateSchema, get_or_create_schema;
    CommandGetOrCreateSchemaResponse => GetOrCreateSchemaResponse, get_or_create_schema_response;
    CommandNewTxn => NewTxn, new_txn;
    CommandNewTxnResponse => NewTxnResponse, new_txn_response;
    CommandAddPartitionToTxn => AddPartitionToTxn, add_partition_to_txn;
    CommandAddPartitionToTxnResponse => AddPartitionToTxnResponse, add_partition_to_txn_response;
    CommandAddSubscriptionToTxn => AddSubscriptionToTxn, add_subscription_to_txn;
    CommandAddSubscriptionToTxnResponse => AddSubscriptionToTxnResponse, add_subscription_to_txn_response;
    CommandEndTxn => EndTxn, end_txn;
    CommandEndTxnResponse => EndTxnResponse, end_txn_response;
    CommandEndTxnOnPartition => EndTxnOnPartition, end_txn_on_partition;
    CommandEndTxnOnPartitionResponse => EndTxnOnPartitionResponse, end_txn_on_partition_response;
    CommandEndTxnOnSubscription => EndTxnOnSubscription, end_txn_on_subscription;
    CommandEndTxnOnSubscriptionResponse => EndTxnOnSubscriptionResponse, end_txn_on_subscription_response;
    CommandTcClientConnectRequest => TcClientConnectRequest, tc_client_connect_request;
    CommandTcClientConnectResponse => TcClientConnectResponse, tc_client_connect_response;
    CommandWatchTopicList => WatchTopicList, watch_topic_list;
    CommandWatchTopicListSuccess => WatchTopicListSuccess, watch_topic_list_success;
    CommandWatchTopicUpdate => WatchTopicUpdate, watch_topic_update;
    CommandWatchTopicListClose => WatchTopicListClose, watch_topic_list_close;
    CommandTopicMigrated => TopicMigrated, topic_migrated;
}

/// Request id used by the broker for CLOSE_PRODUCER / CLOSE_CONSUMER it initiates
/// (`-1` as an unsigned 64-bit value).
pub const BROKER_INITIATED_REQUEST_ID: u64 = u64::MAX;

/// The command's type, or `None` for a value this build does not know.
pub fn command_type(cmd: &BaseCommand) -> Option<Type> {
    Type::try_from(cmd.r#type).ok()
}

/// A [`MessageIdData`] for a non-batched message on a non-partitioned topic.
pub fn message_id(ledger_id: u64, entry_id: u64) -> MessageIdData {
    MessageIdData {
        ledger_id,
        entry_id,
        ..Default::default()
    }
}

// ---- handshake and keep-alive ----

/// CONNECT sent by a client.
pub fn connect(
    client_version: &str,
    protocol_version: i32,
    auth: Option<(&str, Vec<u8>)>,
) -> BaseCommand {
    let (auth_method_name, auth_data) = match auth {
        Some((m, d)) => (Some(m.to_owned()), Some(d)),
        None => (None, None),
    };
    CommandConnect {
        client_version: client_version.to_owned(),
        protocol_version: Some(protocol_version),
        auth_method_name,
        auth_data,
        feature_flags: Some(FeatureFlags {
            supports_auth_refresh: Some(true),
            supports_broker_entry_metadata: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
    .into_command()
}

/// CONNECTED sent by the broker.
pub fn connected(
    server_version: &str,
    protocol_version: i32,
    max_message_size: i32,
    feature_flags: Option<FeatureFlags>,
) -> BaseCommand {
    CommandConnected {
        server_version: server_version.to_owned(),
        protocol_version: Some(protocol_version),
        max_message_size: Some(max_message_size),
        feature_flags,
    }
    .into_command()
}

/// PING.
pub fn ping() -> BaseCommand {
    CommandPing {}.into_command()
}

/// PONG.
pub fn pong() -> BaseCommand {
    CommandPong {}.into_command()
}

// ---- generic responses ----

/// SUCCESS for `request_id`.
pub fn success(request_id: u64) -> BaseCommand {
    CommandSuccess {
        request_id,
        schema: None,
    }
    .into_command()
}

/// ERROR for `request_id`.
pub fn error(request_id: u64, code: ServerError, message: impl Into<String>) -> BaseCommand {
    CommandError {
        request_id,
        error: code as i32,
        message: message.into(),
    }
    .into_command()
}

// ---- lookup ----

/// PARTITIONED_METADATA request.
pub fn partitioned_metadata(topic: &str, request_id: u64) -> BaseCommand {
    CommandPartitionedTopicMetadata {
        topic: topic.to_owned(),
        request_id,
        ..Default::default()
    }
    .into_command()
}

/// PARTITIONED_METADATA_RESPONSE with the partition count (0 = not partitioned).
pub fn partitioned_metadata_response(request_id: u64, partitions: u32) -> BaseCommand {
    CommandPartitionedTopicMetadataResponse {
        partitions: Some(partitions),
        request_id,
        response: Some(PartitionLookupType::Success as i32),
        error: None,
        message: None,
    }
    .into_command()
}

/// PARTITIONED_METADATA_RESPONSE reporting a failure.
pub fn partitioned_metadata_error(
    request_id: u64,
    code: ServerError,
    message: impl Into<String>,
) -> BaseCommand {
    CommandPartitionedTopicMetadataResponse {
        partitions: None,
        request_id,
        response: Some(PartitionLookupType::Failed as i32),
        error: Some(code as i32),
        message: Some(message.into()),
    }
    .into_command()
}

/// LOOKUP request.
pub fn lookup(topic: &str, request_id: u64, authoritative: bool) -> BaseCommand {
    CommandLookupTopic {
        topic: topic.to_owned(),
        request_id,
        authoritative: Some(authoritative),
        ..Default::default()
    }
    .into_command()
}

/// LOOKUP_RESPONSE telling the client to connect to `broker_url` (which serves the topic).
/// `proxy_through_service_url` keeps the client on the URL it used for the lookup.
pub fn lookup_connect(
    request_id: u64,
    broker_url: &str,
    authoritative: bool,
    proxy_through_service_url: bool,
) -> BaseCommand {
    CommandLookupTopicResponse {
        broker_service_url: Some(broker_url.to_owned()),
        response: Some(LookupType::Connect as i32),
        request_id,
        authoritative: Some(authoritative),
        proxy_through_service_url: Some(proxy_through_service_url),
        ..Default::default()
    }
    .into_command()
}

/// LOOKUP_RESPONSE telling the client to repeat the lookup against `broker_url`.
pub fn lookup_redirect(request_id: u64, broker_url: &str, authoritative: bool) -> BaseCommand {
    CommandLookupTopicResponse {
        broker_service_url: Some(broker_url.to_owned()),
        response: Some(LookupType::Redirect as i32),
        request_id,
        authoritative: Some(authoritative),
        ..Default::default()
    }
    .into_command()
}

/// LOOKUP_RESPONSE reporting a failure.
pub fn lookup_error(request_id: u64, code: ServerError, message: impl Into<String>) -> BaseCommand {
    CommandLookupTopicResponse {
        response: Some(LookupType::Failed as i32),
        request_id,
        error: Some(code as i32),
        message: Some(message.into()),
        ..Default::default()
    }
    .into_command()
}

/// GET_TOPICS_OF_NAMESPACE_RESPONSE (unfiltered, changed).
pub fn get_topics_of_namespace_response(request_id: u64, topics: Vec<String>) -> BaseCommand {
    CommandGetTopicsOfNamespaceResponse {
        request_id,
        topics,
        filtered: Some(false),
        topics_hash: None,
        changed: Some(true),
    }
    .into_command()
}

// ---- producers ----

/// PRODUCER request. `epoch` counts reconnections of this producer.
pub fn producer(
    topic: &str,
    producer_id: u64,
    request_id: u64,
    producer_name: Option<&str>,
    epoch: u64,
) -> BaseCommand {
    CommandProducer {
        topic: topic.to_owned(),
        producer_id,
        request_id,
        producer_name: producer_name.map(str::to_owned),
        user_provided_producer_name: Some(producer_name.is_some()),
        epoch: Some(epoch),
        ..Default::default()
    }
    .into_command()
}

/// PRODUCER_SUCCESS. `last_sequence_id` is -1 when nothing is known for the name.
pub fn producer_success(
    request_id: u64,
    producer_name: &str,
    last_sequence_id: i64,
    schema_version: Option<Vec<u8>>,
    topic_epoch: Option<u64>,
) -> BaseCommand {
    CommandProducerSuccess {
        request_id,
        producer_name: producer_name.to_owned(),
        last_sequence_id: Some(last_sequence_id),
        schema_version,
        topic_epoch,
        producer_ready: Some(true),
    }
    .into_command()
}

/// SEND for one message or a batch of `num_messages`.
pub fn send(producer_id: u64, sequence_id: u64, num_messages: i32) -> BaseCommand {
    CommandSend {
        producer_id,
        sequence_id,
        num_messages: (num_messages != 1).then_some(num_messages),
        ..Default::default()
    }
    .into_command()
}

/// SEND_RECEIPT with the id the message was stored under.
pub fn send_receipt(
    producer_id: u64,
    sequence_id: u64,
    highest_sequence_id: u64,
    message_id: MessageIdData,
) -> BaseCommand {
    CommandSendReceipt {
        producer_id,
        sequence_id,
        message_id: Some(message_id),
        highest_sequence_id: Some(highest_sequence_id),
    }
    .into_command()
}

/// SEND_ERROR (the client fails the pending send; ChecksumError makes it resend).
pub fn send_error(
    producer_id: u64,
    sequence_id: u64,
    code: ServerError,
    message: impl Into<String>,
) -> BaseCommand {
    CommandSendError {
        producer_id,
        sequence_id,
        error: code as i32,
        message: message.into(),
    }
    .into_command()
}

/// CLOSE_PRODUCER. Use [`BROKER_INITIATED_REQUEST_ID`] when the broker closes it.
pub fn close_producer(producer_id: u64, request_id: u64) -> BaseCommand {
    CommandCloseProducer {
        producer_id,
        request_id,
        ..Default::default()
    }
    .into_command()
}

// ---- consumers ----

/// FLOW granting `permits` more messages.
pub fn flow(consumer_id: u64, permits: u32) -> BaseCommand {
    CommandFlow {
        consumer_id,
        message_permits: permits,
    }
    .into_command()
}

/// MESSAGE header; the payload follows as the stored entry bytes.
pub fn message(
    consumer_id: u64,
    message_id: MessageIdData,
    redelivery_count: u32,
    ack_set: Vec<i64>,
    consumer_epoch: Option<u64>,
) -> BaseCommand {
    CommandMessage {
        consumer_id,
        message_id,
        redelivery_count: (redelivery_count > 0).then_some(redelivery_count),
        ack_set,
        consumer_epoch,
    }
    .into_command()
}

/// ACK of one or more message ids.
pub fn ack(consumer_id: u64, ack_type: AckType, message_ids: Vec<MessageIdData>) -> BaseCommand {
    CommandAck {
        consumer_id,
        ack_type: ack_type as i32,
        message_id: message_ids,
        ..Default::default()
    }
    .into_command()
}

/// ACK_RESPONSE for an ack that carried a `request_id`; `error` when it failed.
pub fn ack_response(
    consumer_id: u64,
    request_id: Option<u64>,
    error: Option<(ServerError, String)>,
) -> BaseCommand {
    let (error, message) = match error {
        Some((c, m)) => (Some(c as i32), Some(m)),
        None => (None, None),
    };
    CommandAckResponse {
        consumer_id,
        request_id,
        error,
        message,
        ..Default::default()
    }
    .into_command()
}

/// REDELIVER_UNACKNOWLEDGED_MESSAGES (all when `message_ids` is empty).
pub fn redeliver_unacknowledged(
    consumer_id: u64,
    message_ids: Vec<MessageIdData>,
    consumer_epoch: Option<u64>,
) -> BaseCommand {
    CommandRedeliverUnacknowledgedMessages {
        consumer_id,
        message_ids,
        consumer_epoch,
    }
    .into_command()
}

/// UNSUBSCRIBE.
pub fn unsubscribe(consumer_id: u64, request_id: u64) -> BaseCommand {
    CommandUnsubscribe {
        consumer_id,
        request_id,
        force: None,
    }
    .into_command()
}

/// SEEK to a message id.
pub fn seek_to_id(consumer_id: u64, request_id: u64, message_id: MessageIdData) -> BaseCommand {
    CommandSeek {
        consumer_id,
        request_id,
        message_id: Some(message_id),
        message_publish_time: None,
    }
    .into_command()
}

/// SEEK to a publish time (milliseconds since the epoch).
pub fn seek_to_time(consumer_id: u64, request_id: u64, publish_time_ms: u64) -> BaseCommand {
    CommandSeek {
        consumer_id,
        request_id,
        message_id: None,
        message_publish_time: Some(publish_time_ms),
    }
    .into_command()
}

/// CLOSE_CONSUMER. Use [`BROKER_INITIATED_REQUEST_ID`] when the broker closes it.
pub fn close_consumer(consumer_id: u64, request_id: u64) -> BaseCommand {
    CommandCloseConsumer {
        consumer_id,
        request_id,
        ..Default::default()
    }
    .into_command()
}

/// ACTIVE_CONSUMER_CHANGE (Failover and Exclusive subscriptions).
pub fn active_consumer_change(consumer_id: u64, is_active: bool) -> BaseCommand {
    CommandActiveConsumerChange {
        consumer_id,
        is_active: Some(is_active),
    }
    .into_command()
}

/// REACHED_END_OF_TOPIC.
pub fn reached_end_of_topic(consumer_id: u64) -> BaseCommand {
    CommandReachedEndOfTopic { consumer_id }.into_command()
}

/// GET_LAST_MESSAGE_ID request.
pub fn get_last_message_id(consumer_id: u64, request_id: u64) -> BaseCommand {
    CommandGetLastMessageId {
        consumer_id,
        request_id,
    }
    .into_command()
}

/// GET_LAST_MESSAGE_ID_RESPONSE.
pub fn get_last_message_id_response(
    request_id: u64,
    last_message_id: MessageIdData,
    consumer_mark_delete_position: Option<MessageIdData>,
) -> BaseCommand {
    CommandGetLastMessageIdResponse {
        last_message_id,
        request_id,
        consumer_mark_delete_position,
    }
    .into_command()
}

/// CONSUMER_STATS_RESPONSE reporting an error; build the success case from
/// [`CommandConsumerStatsResponse`] directly and convert it with
/// [`IntoCommand::into_command`].
pub fn consumer_stats_error(
    request_id: u64,
    code: ServerError,
    message: impl Into<String>,
) -> BaseCommand {
    CommandConsumerStatsResponse {
        request_id,
        error_code: Some(code as i32),
        error_message: Some(message.into()),
        ..Default::default()
    }
    .into_command()
}

/// GET_SCHEMA_RESPONSE reporting an error (e.g. TopicNotFound when there is no schema).
pub fn get_schema_error(
    request_id: u64,
    code: ServerError,
    message: impl Into<String>,
) -> BaseCommand {
    CommandGetSchemaResponse {
        request_id,
        error_code: Some(code as i32),
        error_message: Some(message.into()),
        ..Default::default()
    }
    .into_command()
}

/// TOPIC_MIGRATED (protocol v20+ only).
pub fn topic_migrated(
    resource_id: u64,
    resource_type: magnetar_proto::pulsar::command_topic_migrated::ResourceType,
    broker_url: &str,
) -> BaseCommand {
    CommandTopicMigrated {
        resource_id,
        resource_type: resource_type as i32,
        broker_service_url: Some(broker_url.to_owned()),
        broker_service_url_tls: None,
    }
    .into_command()
}
