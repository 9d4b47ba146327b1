//! Subscription semantics over the wire: batch index acks survive redelivery (the MESSAGE
//! carries the ack set), redelivery requests count, Failover announces the active
//! consumer, seek disconnects and rewinds, GET_LAST_MESSAGE_ID reports the tail, the
//! handshake times out, and shutdown completes.

mod common;

use std::time::Duration;

use common::{start_broker, Client};
use magnetar_client::wire::commands;
use magnetar_client::wire::proto::{
    base_command::Type, command_ack::AckType, MessageIdData, MessageMetadata,
};
use magnetar_client::wire::Outbound;

async fn publish_batch(c: &mut Client, pid: u64, seq: u64, n: i32) -> anyhow::Result<()> {
    let md = MessageMetadata {
        producer_name: "p".into(),
        sequence_id: seq,
        publish_time: 1_700_000_000_000,
        num_messages_in_batch: Some(n),
        ..Default::default()
    };
    c.send_frame(Outbound::with_payload(
        commands::send(pid, seq, n),
        &md,
        b"batch-body",
    ))
    .await
}

#[tokio::test]
async fn partially_acked_batch_is_redelivered_with_its_ack_set() -> anyhow::Result<()> {
    let b = start_broker().await;
    let topic = "persistent://public/default/batch-acks";
    let mut c = Client::connect(b.pulsar, 20).await?;
    c.create_producer(topic, 1).await?;
    c.subscribe(topic, "s", 1, 1).await?;
    publish_batch(&mut c, 1, 0, 3).await?;
    c.expect(Type::SendReceipt).await?;
    c.send(commands::flow(1, 10)).await?;
    let m = c.expect(Type::Message).await?.message.expect("msg");
    assert!(m.ack_set.is_empty());
    // Ack index 0 only: bits 1 and 2 stay unacknowledged.
    let id = MessageIdData {
        ack_set: vec![0b110],
        ..m.message_id.clone()
    };
    c.send(commands::ack(1, AckType::Individual, vec![id]))
        .await?;
    c.send(commands::redeliver_unacknowledged(1, vec![], None))
        .await?;
    let m = c.expect(Type::Message).await?.message.expect("msg");
    assert_eq!(m.ack_set, vec![0b110]);
    assert_eq!(m.redelivery_count, Some(1));
    Ok(())
}

#[tokio::test]
async fn failover_announces_the_active_consumer() -> anyhow::Result<()> {
    let b = start_broker().await;
    let topic = "persistent://public/default/failover";
    let mut c1 = Client::connect(b.pulsar, 20).await?;
    let mut c2 = Client::connect(b.pulsar, 20).await?;
    let r = c1.subscribe_named(topic, "f", 2, 1, "b-consumer").await?;
    assert_eq!(commands::command_type(&r), Some(Type::Success));
    let change = c1.expect(Type::ActiveConsumerChange).await?;
    assert_eq!(
        change.active_consumer_change.and_then(|a| a.is_active),
        Some(true)
    );
    // "a-consumer" sorts first and takes over.
    let r = c2.subscribe_named(topic, "f", 2, 1, "a-consumer").await?;
    assert_eq!(commands::command_type(&r), Some(Type::Success));
    let c2_change = c2.expect(Type::ActiveConsumerChange).await?;
    assert_eq!(
        c2_change.active_consumer_change.and_then(|a| a.is_active),
        Some(true)
    );
    let c1_change = c1.expect(Type::ActiveConsumerChange).await?;
    assert_eq!(
        c1_change.active_consumer_change.and_then(|a| a.is_active),
        Some(false)
    );
    Ok(())
}

#[tokio::test]
async fn seek_closes_consumers_and_rewinds() -> anyhow::Result<()> {
    let b = start_broker().await;
    let topic = "persistent://public/default/seek";
    let mut c = Client::connect(b.pulsar, 20).await?;
    c.create_producer(topic, 1).await?;
    c.subscribe(topic, "s", 0, 1).await?;
    for i in 0..3 {
        c.publish(1, i, b"x").await?;
        c.expect(Type::SendReceipt).await?;
    }
    c.send(commands::flow(1, 10)).await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            c.expect(Type::Message)
                .await?
                .message
                .expect("m")
                .message_id,
        );
    }
    c.send(commands::ack(1, AckType::Cumulative, vec![ids[2].clone()]))
        .await?;
    let rid = c.request_id();
    c.send(commands::seek_to_id(1, rid, ids[1].clone())).await?;
    c.expect(Type::CloseConsumer).await?;
    c.expect(Type::Success).await?;
    // Resubscribe (as clients do after CLOSE_CONSUMER): delivery resumes at the target.
    c.subscribe(topic, "s", 0, 1).await?;
    c.send(commands::flow(1, 10)).await?;
    for want in &ids[1..] {
        let m = c.expect(Type::Message).await?.message.expect("m");
        assert_eq!(m.message_id.entry_id, want.entry_id);
    }
    // GET_LAST_MESSAGE_ID reports the last entry.
    let rid = c.request_id();
    c.send(commands::get_last_message_id(1, rid)).await?;
    let r = c.expect(Type::GetLastMessageIdResponse).await?;
    let last = r
        .get_last_message_id_response
        .expect("body")
        .last_message_id;
    assert_eq!(last.entry_id, ids[2].entry_id);
    Ok(())
}

#[tokio::test]
async fn silent_connection_is_closed_after_handshake_timeout() -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let b = start_broker().await;
    let mut s = tokio::net::TcpStream::connect(b.pulsar).await?;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await??;
    assert_eq!(
        n, 0,
        "broker should close a connection that never sends CONNECT"
    );
    Ok(())
}

#[tokio::test]
async fn shutdown_closes_clients_and_returns() -> anyhow::Result<()> {
    let b = start_broker().await;
    let mut c = Client::connect(b.pulsar, 20).await?;
    c.create_producer("persistent://public/default/sd", 1)
        .await?;
    b.shutdown.cancel();
    let mut b = b;
    tokio::time::timeout(Duration::from_secs(15), &mut b.task).await??;
    Ok(())
}

#[tokio::test]
async fn delayed_message_waits_on_shared_subscription() -> anyhow::Result<()> {
    let b = start_broker().await;
    let topic = "persistent://public/default/delayed";
    let mut c = Client::connect(b.pulsar, 20).await?;
    c.create_producer(topic, 1).await?;
    c.subscribe(topic, "s", 1, 1).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let md = MessageMetadata {
        producer_name: "p".into(),
        sequence_id: 0,
        publish_time: now as u64,
        deliver_at_time: Some(now + 1500),
        ..Default::default()
    };
    c.send_frame(Outbound::with_payload(
        commands::send(1, 0, 1),
        &md,
        b"later",
    ))
    .await?;
    c.expect(Type::SendReceipt).await?;
    c.publish(1, 1, b"now").await?;
    c.expect(Type::SendReceipt).await?;
    let start = std::time::Instant::now();
    c.send(commands::flow(1, 10)).await?;
    let first = c.next_frame().await?;
    assert_eq!(&first.payload.expect("p").body[..], b"now");
    let second = c.next_frame().await?;
    assert_eq!(&second.payload.expect("p").body[..], b"later");
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );
    Ok(())
}
