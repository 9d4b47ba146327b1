//! A broker started with `service::run` accepts Pulsar protocol clients: messages a
//! producer got receipts for are delivered to a subscription in order, acks stick, and
//! protocol errors get the right replies without killing other connections.

mod common;

use std::time::Duration;

use common::{start_broker, Client};
use magnetar_client::wire::commands;
use magnetar_client::wire::proto::{base_command::Type, command_ack::AckType, ServerError};

#[tokio::test]
async fn produced_messages_are_received_in_order_and_acks_stick() -> anyhow::Result<()> {
    let b = start_broker().await;
    let topic = "persistent://public/default/t1";
    let mut c = Client::connect(b.pulsar, 20).await?;

    // Lookup and partition metadata, as the official clients do first.
    let rid = c.request_id();
    c.send(commands::partitioned_metadata(topic, rid)).await?;
    let r = c.expect(Type::PartitionedMetadataResponse).await?;
    assert_eq!(
        r.partition_metadata_response.and_then(|m| m.partitions),
        Some(0)
    );
    let rid = c.request_id();
    c.send(commands::lookup(topic, rid, false)).await?;
    let r = c.expect(Type::LookupResponse).await?;
    let url = r.lookup_topic_response.and_then(|l| l.broker_service_url);
    assert_eq!(url, Some(format!("pulsar://127.0.0.1:{}", b.pulsar.port())));

    let name = c.create_producer(topic, 1).await?;
    assert!(name.starts_with("standalone-"), "{name}");
    let sub = c.subscribe(topic, "s1", 0, 7).await?;
    assert_eq!(commands::command_type(&sub), Some(Type::Success));

    for i in 0..10u64 {
        c.publish(1, i, format!("m{i}").as_bytes()).await?;
    }
    for i in 0..10u64 {
        let r = c.expect(Type::SendReceipt).await?;
        let r = r.send_receipt.expect("receipt");
        assert_eq!(r.sequence_id, i);
        assert_eq!(r.message_id.expect("id").entry_id, i);
    }
    c.send(commands::flow(7, 100)).await?;
    let mut ids = Vec::new();
    for i in 0..10u64 {
        let f = c.next_frame().await?;
        let m = f.command.message.expect("MESSAGE");
        assert_eq!(m.consumer_id, 7);
        let p = f.payload.expect("payload");
        assert_eq!(&p.body[..], format!("m{i}").as_bytes());
        ids.push(m.message_id);
    }
    // Ack the first five, close and resubscribe: the rest come again.
    c.send(commands::ack(7, AckType::Individual, ids[..5].to_vec()))
        .await?;
    let rid = c.request_id();
    c.send(commands::close_consumer(7, rid)).await?;
    c.expect(Type::Success).await?;
    let sub = c.subscribe(topic, "s1", 0, 8).await?;
    assert_eq!(commands::command_type(&sub), Some(Type::Success));
    c.send(commands::flow(8, 100)).await?;
    for i in 5..10u64 {
        let f = c.next_frame().await?;
        let m = f.command.message.expect("MESSAGE");
        assert_eq!(m.message_id.entry_id, i);
        assert_eq!(m.redelivery_count, None);
    }
    Ok(())
}

#[tokio::test]
async fn exclusive_second_consumer_is_refused_and_other_type_is_busy() -> anyhow::Result<()> {
    let b = start_broker().await;
    let topic = "persistent://public/default/t2";
    let mut c = Client::connect(b.pulsar, 20).await?;
    let r = c.subscribe(topic, "s", 0, 1).await?;
    assert_eq!(commands::command_type(&r), Some(Type::Success));
    let r = c.subscribe(topic, "s", 0, 2).await?;
    assert_eq!(
        r.error.map(|e| e.error),
        Some(ServerError::ConsumerBusy as i32)
    );
    let r = c.subscribe(topic, "s", 1, 3).await?;
    assert_eq!(
        r.error.map(|e| e.error),
        Some(ServerError::ConsumerBusy as i32)
    );
    Ok(())
}

#[tokio::test]
async fn shared_subscription_redelivers_a_closed_consumers_messages() -> anyhow::Result<()> {
    let b = start_broker().await;
    let topic = "persistent://public/default/t3";
    let mut p = Client::connect(b.pulsar, 20).await?;
    let mut c1 = Client::connect(b.pulsar, 20).await?;
    let mut c2 = Client::connect(b.pulsar, 20).await?;
    p.create_producer(topic, 1).await?;
    assert_eq!(
        commands::command_type(&c1.subscribe(topic, "sh", 1, 1).await?),
        Some(Type::Success)
    );
    assert_eq!(
        commands::command_type(&c2.subscribe(topic, "sh", 1, 1).await?),
        Some(Type::Success)
    );
    c1.send(commands::flow(1, 2)).await?;
    for i in 0..4u64 {
        p.publish(1, i, b"x").await?;
        p.expect(Type::SendReceipt).await?;
    }
    // c1 takes two and leaves without acking; c2 then gets all four.
    for _ in 0..2 {
        c1.expect(Type::Message).await?;
    }
    drop(c1);
    c2.send(commands::flow(1, 10)).await?;
    let mut got = Vec::new();
    let mut redelivered = 0;
    for _ in 0..4 {
        let m = c2.expect(Type::Message).await?.message.expect("msg");
        if m.redelivery_count.unwrap_or(0) > 0 {
            redelivered += 1;
        }
        got.push(m.message_id.entry_id);
    }
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3]);
    assert_eq!(
        redelivered, 0,
        "a consumer leaving is not a redelivery request"
    );
    Ok(())
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let b = start_broker().await;
    let mut good = Client::connect(b.pulsar, 20).await?;
    // Garbage: a huge size prefix.
    let mut raw = tokio::net::TcpStream::connect(b.pulsar).await?;
    raw.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await?;
    // A command before CONNECT gets an error and a close.
    let mut early = tokio::net::TcpStream::connect(b.pulsar).await?;
    let mut f =
        tokio_util::codec::Framed::new(&mut early, magnetar_client::wire::PulsarCodec::default());
    futures::SinkExt::send(&mut f, commands::ping()).await?;
    let reply =
        tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut f)).await?;
    assert!(matches!(reply, Some(Ok(Ok(ref fr))) if fr.command.error.is_some()));
    // The good connection still works.
    good.send(commands::ping()).await?;
    good.expect(Type::Pong).await?;
    // Unknown producer id on SEND -> SEND_ERROR, connection kept.
    good.publish(99, 0, b"x").await?;
    good.expect(Type::SendError).await?;
    good.send(commands::ping()).await?;
    good.expect(Type::Pong).await?;
    Ok(())
}

#[tokio::test]
async fn admin_health_and_partitions() -> anyhow::Result<()> {
    let b = start_broker().await;
    let mut s = tokio::net::TcpStream::connect(b.http).await?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"PUT /admin/v2/persistent/public/default/pt/partitions HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\nconnection: close\r\n\r\n3")
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    assert!(out.starts_with("HTTP/1.1 204"), "{out}");
    let mut c = Client::connect(b.pulsar, 20).await?;
    let rid = c.request_id();
    c.send(commands::partitioned_metadata(
        "persistent://public/default/pt",
        rid,
    ))
    .await?;
    let r = c.expect(Type::PartitionedMetadataResponse).await?;
    assert_eq!(
        r.partition_metadata_response.and_then(|m| m.partitions),
        Some(3)
    );
    let mut s = tokio::net::TcpStream::connect(b.http).await?;
    s.write_all(b"GET /admin/v2/brokers/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("ok"),
        "{out}"
    );
    Ok(())
}

#[tokio::test]
async fn idle_client_is_pinged_and_dropped_when_silent() -> anyhow::Result<()> {
    use futures::StreamExt;
    let config = magnetar_broker::BrokerConfig {
        keep_alive_secs: 1,
        ..magnetar_broker::BrokerConfig::default()
    };
    let b = common::start_broker_with(
        config,
        magnetar_metadata::MemStore::new(),
        magnetar_bookie::mem::MemLedgers::new(),
    )
    .await;
    let mut c = Client::connect(b.pulsar, 20).await?;
    // Read raw frames (Client::next_frame would answer the PING).
    let f = tokio::time::timeout(Duration::from_secs(5), c.framed.next())
        .await?
        .expect("frame")?
        .expect("not corrupt");
    assert_eq!(commands::command_type(&f.command), Some(Type::Ping));
    // Never answering: the broker closes the connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, c.framed.next()).await? {
            None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        }
    }
    Ok(())
}
