//! Exercises reader, negative ack, dead-letter, seek and cumulative ack against a broker.
//! `cargo run -p magnetar-client --example smoke -- pulsar://127.0.0.1:6650`

use std::time::Duration;

use anyhow::{ensure, Context};
use magnetar_client::{DeadLetterPolicy, InitialPosition, MessageId, PulsarClient, SubType};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let url = std::env::args()
        .nth(1)
        .unwrap_or("pulsar://127.0.0.1:6650".into());
    let suffix = rand_suffix();
    let client = PulsarClient::new(url)?;
    let topic = format!("smoke-{suffix}");
    let producer = client.producer().topic(&topic).create().await?;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(producer.send_and_wait(format!("m{i}")).await?);
    }
    println!("produced 10, ids {} .. {}", ids[0], ids[9]);

    // Reader from earliest sees all 10, then has_message_available turns false.
    let mut reader = client
        .reader()
        .topic(&topic)
        .start_message_id(MessageId::EARLIEST)
        .create()
        .await?;
    ensure!(
        reader.has_message_available().await?,
        "reader should see messages"
    );
    for i in 0..10 {
        let m = reader
            .read_next_timeout(Duration::from_secs(5))
            .await?
            .context("reader message")?;
        ensure!(m.payload == format!("m{i}").as_bytes(), "reader order");
    }
    ensure!(!reader.has_message_available().await?, "reader at end");
    reader.close().await?;
    println!("reader ok");

    // Reader starting after id 4 sees m5..m9.
    let mut reader = client
        .reader()
        .topic(&topic)
        .start_message_id(ids[4])
        .create()
        .await?;
    let m = reader
        .read_next_timeout(Duration::from_secs(5))
        .await?
        .context("reader2")?;
    ensure!(
        m.payload == "m5".as_bytes(),
        "reader start exclusive, got {:?}",
        m.payload
    );
    reader.close().await?;
    println!("reader from id ok");

    // Negative ack redelivers; after max redeliveries the message goes to the DLQ.
    let consumer = client
        .consumer()
        .topic(&topic)
        .subscription("nack")
        .sub_type(SubType::Shared)
        .initial_position(InitialPosition::Earliest)
        .negative_ack_delay(Duration::from_millis(200))
        .dead_letter(DeadLetterPolicy {
            max_redeliver_count: 2,
            dead_letter_topic: None,
        })
        .subscribe()
        .await?;
    let dlq = client
        .consumer()
        .topic(format!("{topic}-nack-DLQ"))
        .subscription("dlq")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await?;
    let mut counts = std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let Some(m) = consumer.receive_timeout(Duration::from_secs(2)).await? else {
            break;
        };
        *counts.entry(m.payload.clone()).or_insert(0u32) += 1;
        if m.payload == "m0".as_bytes() {
            consumer.nack(&m)?;
        } else {
            consumer.ack(&m)?;
        }
    }
    println!("deliveries of m0: {:?}", counts.get("m0".as_bytes()));
    ensure!(
        counts.get("m0".as_bytes()).copied().unwrap_or(0) >= 2,
        "m0 redelivered"
    );
    let d = dlq
        .receive_timeout(Duration::from_secs(10))
        .await?
        .context("dlq message")?;
    ensure!(d.payload == "m0".as_bytes(), "dlq got m0");
    println!("nack + DLQ ok");
    consumer.close().await?;
    dlq.close().await?;

    // Seek back to the start and cumulative-ack everything.
    let c = client
        .consumer()
        .topic(&topic)
        .subscription("seek")
        .initial_position(InitialPosition::Latest)
        .subscribe()
        .await?;
    c.seek(MessageId::EARLIEST).await?;
    let mut last = None;
    for _ in 0..10 {
        match c.receive_timeout(Duration::from_secs(5)).await? {
            Some(m) => last = Some(m),
            None => break,
        }
    }
    let last = last.context("messages after seek")?;
    ensure!(
        last.payload == "m9".as_bytes(),
        "seek replays all, last {:?}",
        last.payload
    );
    c.ack_cumulative(&last)?;
    println!("seek + cumulative ack ok");
    c.unsubscribe().await?;

    // Key_Shared: every key is delivered to exactly one of two consumers.
    let ks = |name: &'static str| {
        client
            .consumer()
            .topic(&topic)
            .subscription("ks")
            .consumer_name(name)
            .sub_type(SubType::KeyShared)
            .initial_position(InitialPosition::Latest)
            .subscribe()
    };
    let (c1, c2) = (ks("a").await?, ks("b").await?);
    for i in 0..100 {
        producer
            .send(
                magnetar_client::ProducerMessage::new(format!("k{i}"))
                    .with_key(format!("key{}", i % 10)),
            )
            .await?;
    }
    producer.flush().await?;
    let mut owner: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut total = 0;
    for (idx, c) in [&c1, &c2].into_iter().enumerate() {
        while let Some(m) = c.receive_timeout(Duration::from_secs(2)).await? {
            let k = m.key.clone().unwrap_or_default();
            let prev = *owner.entry(k.clone()).or_insert(idx);
            ensure!(prev == idx, "key {k} went to both consumers");
            c.ack(&m)?;
            total += 1;
        }
    }
    ensure!(total == 100, "key_shared got {total} of 100");
    println!(
        "key_shared ok: keys per consumer {:?}",
        owner.values().fold([0, 0], |mut a, v| {
            a[*v] += 1;
            a
        })
    );
    c1.close().await?;
    c2.close().await?;

    // Failover: only the active consumer receives.
    let fo = |name: &'static str| {
        client
            .consumer()
            .topic(&topic)
            .subscription("fo")
            .consumer_name(name)
            .sub_type(SubType::Failover)
            .initial_position(InitialPosition::Latest)
            .subscribe()
    };
    let (f1, f2) = (fo("a").await?, fo("b").await?);
    for i in 0..20 {
        producer.send(format!("f{i}")).await?;
    }
    producer.flush().await?;
    let mut got = [0, 0];
    for (idx, c) in [&f1, &f2].into_iter().enumerate() {
        while let Some(m) = c.receive_timeout(Duration::from_secs(2)).await? {
            c.ack(&m)?;
            got[idx] += 1;
        }
    }
    ensure!(
        got[0] + got[1] == 20 && (got[0] == 0 || got[1] == 0),
        "failover split {got:?}"
    );
    println!("failover ok {got:?}");
    f1.close().await?;
    f2.close().await?;

    // Ack timeout: an unacked message comes back.
    let at = client
        .consumer()
        .topic(&topic)
        .subscription("at")
        .sub_type(SubType::Shared)
        .initial_position(InitialPosition::Latest)
        .ack_timeout(Duration::from_secs(1))
        .subscribe()
        .await?;
    producer.send_and_wait("late").await?;
    let first = at
        .receive_timeout(Duration::from_secs(5))
        .await?
        .context("first delivery")?;
    let again = at
        .receive_timeout(Duration::from_secs(5))
        .await?
        .context("redelivery")?;
    ensure!(
        again.payload == first.payload && again.redelivery_count >= 1,
        "ack timeout redelivery"
    );
    at.ack(&again)?;
    println!(
        "ack timeout ok (redelivery_count {})",
        again.redelivery_count
    );
    at.close().await?;

    // Seek by time to the start replays everything.
    let st = client
        .consumer()
        .topic(&topic)
        .subscription("seek-time")
        .initial_position(InitialPosition::Latest)
        .subscribe()
        .await?;
    st.seek_time(0).await?;
    let m = st
        .receive_timeout(Duration::from_secs(5))
        .await?
        .context("after seek_time")?;
    ensure!(
        m.payload == "m0".as_bytes(),
        "seek_time(0) starts at m0, got {:?}",
        m.payload
    );
    println!("seek by time ok");
    st.close().await?;
    producer.close().await?;
    client.close().await;
    println!("smoke OK");
    Ok(())
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
