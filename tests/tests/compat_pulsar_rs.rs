//! The Rust `pulsar` crate (pulsar-rs, crates.io) works unchanged against `magnetar
//! standalone`: produce/consume with keys and properties, every subscription type, batching
//! with LZ4/ZSTD, individual and cumulative acks, redelivery of unacked messages after a
//! reconnect, readers, seek and partitioned topics.
//!
//! Behind the `pulsar-rs` feature because the crate's build script needs `protoc`:
//!
//! ```text
//! cargo build -p magnetar-tools --bin magnetar
//! PROTOC=$(ls -d ~/.cargo/registry/src/*/protoc-bin-vendored-linux-x86_64-*/bin/protoc) \
//!   cargo test -p magnetar-tests --features pulsar-rs --test compat_pulsar_rs
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::TryStreamExt;
use magnetar_tests::{unique_topic, Standalone, StandaloneOpts};
use pulsar::compression::{Compression, CompressionLz4, CompressionZstd};
use pulsar::consumer::{DeadLetterPolicy, InitialPosition, Message};
use pulsar::producer::Message as OutMessage;
use pulsar::routing_policy::RoutingPolicy;
use pulsar::{
    Consumer, ConsumerOptions, OperationRetryOptions, Producer, ProducerOptions, Pulsar, SubType,
    TokioExecutor,
};

type Client = Pulsar<TokioExecutor>;
type Cons = Consumer<Vec<u8>, TokioExecutor>;

const RECV: Duration = Duration::from_secs(10);

async fn setup() -> (Standalone, Client) {
    let s = Standalone::start(StandaloneOpts::default()).await;
    // pulsar-rs retries ConsumerBusy (a rejected Exclusive subscribe) forever by default.
    let retry = OperationRetryOptions {
        operation_timeout: Duration::from_secs(15),
        retry_delay: Duration::from_millis(200),
        max_retries: Some(3),
    };
    let client = Pulsar::builder(s.service_url(), TokioExecutor)
        .with_operation_retry_options(retry)
        .build()
        .await
        .expect("pulsar-rs client");
    (s, client)
}

async fn producer(c: &Client, topic: &str, opts: ProducerOptions) -> Producer<TokioExecutor> {
    c.producer()
        .with_topic(topic)
        .with_options(opts)
        .build()
        .await
        .expect("producer")
}

async fn consumer(c: &Client, topic: &str, sub: &str, ty: SubType) -> Result<Cons, pulsar::Error> {
    c.consumer()
        .with_topic(topic)
        .with_subscription(sub)
        .with_subscription_type(ty)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
}

fn msg(i: usize) -> OutMessage {
    OutMessage {
        payload: format!("m-{i}").into_bytes(),
        partition_key: Some(format!("k{}", i % 16)),
        properties: HashMap::from([("i".to_string(), i.to_string())]),
        ..Default::default()
    }
}

/// Sends `range` pipelined (flushing any batch) and waits for every receipt.
async fn send_all(p: &mut Producer<TokioExecutor>, range: std::ops::Range<usize>) {
    let mut futs = Vec::new();
    for i in range {
        futs.push(p.send_non_blocking(msg(i)).await.expect("send"));
    }
    if p.options().batch_size.is_some() {
        p.send_batch().await.expect("flush batch");
    }
    for f in futs {
        tokio::time::timeout(RECV, f)
            .await
            .expect("receipt in time")
            .expect("receipt");
    }
}

async fn recv(c: &mut Cons) -> Option<Message<Vec<u8>>> {
    match tokio::time::timeout(RECV, c.try_next()).await {
        Ok(r) => r.expect("consumer stream error"),
        Err(_) => None,
    }
}

/// Receives, within a short window, whatever arrives (for "nothing more" checks).
async fn recv_quiet(c: &mut Cons, wait: Duration) -> Option<Message<Vec<u8>>> {
    tokio::time::timeout(wait, c.try_next())
        .await
        .ok()
        .and_then(|r| r.expect("consumer stream error"))
}

fn text(m: &Message<Vec<u8>>) -> String {
    String::from_utf8_lossy(&m.payload.data).into_owned()
}

fn prop(m: &Message<Vec<u8>>, k: &str) -> Option<String> {
    m.payload
        .metadata
        .properties
        .iter()
        .find(|kv| kv.key == k)
        .map(|kv| kv.value.clone())
}

#[tokio::test]
async fn round_trip_keeps_payload_key_and_properties() {
    let (_s, c) = setup().await;
    let t = unique_topic("rs-rt");
    let mut cons = consumer(&c, &t, "s", SubType::Exclusive)
        .await
        .expect("subscribe");
    let mut p = producer(&c, &t, ProducerOptions::default()).await;
    send_all(&mut p, 0..10).await;
    for i in 0..10 {
        let m = recv(&mut cons).await.expect("message");
        assert_eq!(text(&m), format!("m-{i}"));
        assert_eq!(m.key(), Some(format!("k{}", i % 16)));
        assert_eq!(prop(&m, "i"), Some(i.to_string()));
        cons.ack(&m).await.expect("ack");
    }
    assert!(recv_quiet(&mut cons, Duration::from_millis(300))
        .await
        .is_none());
}

#[tokio::test]
async fn exclusive_rejects_a_second_consumer() {
    let (_s, c) = setup().await;
    let t = unique_topic("rs-excl");
    let _first = consumer(&c, &t, "s", SubType::Exclusive)
        .await
        .expect("first");
    let second = tokio::time::timeout(
        Duration::from_secs(30),
        consumer(&c, &t, "s", SubType::Exclusive),
    )
    .await
    .expect("second subscribe answered in time");
    assert!(second.is_err(), "second exclusive consumer was accepted");
}

#[tokio::test]
async fn shared_spreads_and_key_shared_pins_keys() {
    let (_s, c) = setup().await;
    for (ty, name) in [
        (SubType::Shared, "shared"),
        (SubType::KeyShared, "keyshared"),
    ] {
        let t = unique_topic(&format!("rs-{name}"));
        let mut a = consumer(&c, &t, "s", ty).await.expect("a");
        let mut b = consumer(&c, &t, "s", ty).await.expect("b");
        let mut p = producer(&c, &t, ProducerOptions::default()).await;
        send_all(&mut p, 0..40).await;
        let mut seen: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new(); // key -> consumers
        let mut got = BTreeSet::new();
        let mut per = [0usize; 2];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while got.len() < 40 && tokio::time::Instant::now() < deadline {
            let (which, m) = tokio::select! {
                m = recv_quiet(&mut a, Duration::from_millis(500)) => (0, m),
                m = recv_quiet(&mut b, Duration::from_millis(500)) => (1, m),
            };
            let Some(m) = m else { continue };
            if which == 0 {
                a.ack(&m).await.expect("ack");
            } else {
                b.ack(&m).await.expect("ack");
            }
            per[which] += 1;
            got.insert(text(&m));
            seen.entry(m.key().expect("key")).or_default().insert(which);
        }
        assert_eq!(got.len(), 40, "{name}: got {got:?}");
        assert!(per[0] > 0 && per[1] > 0, "{name}: not spread: {per:?}");
        if ty == SubType::KeyShared {
            for (k, cs) in &seen {
                assert_eq!(cs.len(), 1, "key {k} went to consumers {cs:?}");
            }
        }
    }
}

#[tokio::test]
async fn failover_moves_to_the_standby_when_the_active_closes() {
    let (_s, c) = setup().await;
    let t = unique_topic("rs-failover");
    let mut a = consumer(&c, &t, "s", SubType::Failover).await.expect("a");
    let mut b = consumer(&c, &t, "s", SubType::Failover).await.expect("b");
    let mut p = producer(&c, &t, ProducerOptions::default()).await;
    send_all(&mut p, 0..10).await;
    // Exactly one of the two is active and gets all ten, in order.
    let (mut active, mut standby) = tokio::select! {
        m = recv(&mut a) => { let m = m.expect("message"); a.ack(&m).await.expect("ack"); (a, b) }
        m = recv(&mut b) => { let m = m.expect("message"); b.ack(&m).await.expect("ack"); (b, a) }
    };
    for i in 1..10 {
        let m = recv(&mut active).await.expect("message on the active");
        assert_eq!(text(&m), format!("m-{i}"));
        active.ack(&m).await.expect("ack");
    }
    assert!(recv_quiet(&mut standby, Duration::from_millis(300))
        .await
        .is_none());
    active.close().await.expect("close active");
    drop(active);
    send_all(&mut p, 10..15).await;
    for i in 10..15 {
        let m = recv(&mut standby).await.expect("message after failover");
        assert_eq!(text(&m), format!("m-{i}"));
        standby.ack(&m).await.expect("ack");
    }
}

#[tokio::test]
async fn batches_with_lz4_and_zstd_arrive_whole_and_in_order() {
    let (_s, c) = setup().await;
    let codecs = [
        ("lz4", Compression::Lz4(CompressionLz4::default())),
        ("zstd", Compression::Zstd(CompressionZstd::default())),
        ("none", Compression::None),
    ];
    for (name, codec) in codecs {
        let t = unique_topic(&format!("rs-batch-{name}"));
        let mut cons = consumer(&c, &t, "s", SubType::Exclusive)
            .await
            .expect("subscribe");
        let opts = ProducerOptions {
            batch_size: Some(25),
            batch_timeout: Some(Duration::from_millis(5)),
            compression: Some(codec),
            ..Default::default()
        };
        let mut p = producer(&c, &t, opts).await;
        send_all(&mut p, 0..100).await;
        for i in 0..100 {
            let m = recv(&mut cons).await.expect("message");
            assert_eq!(text(&m), format!("m-{i}"), "{name}");
            assert_eq!(prop(&m, "i"), Some(i.to_string()), "{name}");
            assert_eq!(m.key(), Some(format!("k{}", i % 16)), "{name}");
            cons.ack(&m).await.expect("ack");
        }
    }
}

#[tokio::test]
async fn unacked_messages_come_back_after_reconnect_and_acked_ones_do_not() {
    let (_s, c) = setup().await;
    let t = unique_topic("rs-redeliver");
    let mut p = producer(&c, &t, ProducerOptions::default()).await;
    send_all(&mut p, 0..10).await;
    {
        let mut cons = consumer(&c, &t, "s", SubType::Shared)
            .await
            .expect("subscribe");
        for i in 0..10 {
            let m = recv(&mut cons).await.expect("message");
            assert_eq!(text(&m), format!("m-{i}"));
            if i % 2 == 0 {
                cons.ack(&m).await.expect("ack");
            }
        }
        cons.close().await.expect("close");
    }
    let mut cons = consumer(&c, &t, "s", SubType::Shared)
        .await
        .expect("resubscribe");
    let mut again = BTreeSet::new();
    for _ in 0..5 {
        let m = recv(&mut cons).await.expect("redelivered message");
        again.insert(text(&m));
        cons.ack(&m).await.expect("ack");
    }
    let want: BTreeSet<String> = (1..10).step_by(2).map(|i| format!("m-{i}")).collect();
    assert_eq!(again, want);
    assert!(recv_quiet(&mut cons, Duration::from_millis(500))
        .await
        .is_none());
}

#[tokio::test]
async fn cumulative_ack_acknowledges_everything_up_to_the_message() {
    let (_s, c) = setup().await;
    let t = unique_topic("rs-cumulative");
    let mut p = producer(&c, &t, ProducerOptions::default()).await;
    send_all(&mut p, 0..10).await;
    {
        let mut cons = consumer(&c, &t, "s", SubType::Exclusive)
            .await
            .expect("subscribe");
        let mut last = None;
        for _ in 0..6 {
            last = recv(&mut cons).await;
        }
        let last = last.expect("six messages");
        assert_eq!(text(&last), "m-5");
        cons.cumulative_ack(&last).await.expect("cumulative ack");
        cons.close().await.expect("close");
    }
    let mut cons = consumer(&c, &t, "s", SubType::Exclusive)
        .await
        .expect("resubscribe");
    for i in 6..10 {
        let m = recv(&mut cons)
            .await
            .expect("message after the cumulative ack");
        assert_eq!(text(&m), format!("m-{i}"));
    }
}

#[tokio::test]
async fn reader_reads_from_earliest_and_consumer_seek_rewinds() {
    let (_s, c) = setup().await;
    let t = unique_topic("rs-reader");
    let mut p = producer(&c, &t, ProducerOptions::default()).await;
    send_all(&mut p, 0..8).await;
    let mut reader = c
        .reader()
        .with_topic(&t)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .into_reader::<Vec<u8>>()
        .await
        .expect("reader");
    let mut ids = Vec::new();
    for i in 0..8 {
        let m = tokio::time::timeout(RECV, reader.try_next())
            .await
            .expect("reader message in time")
            .expect("reader stream")
            .expect("reader message");
        assert_eq!(text(&m), format!("m-{i}"));
        ids.push(m.message_id().clone());
    }

    // Shared, not Exclusive: like Pulsar, the broker disconnects the subscription's
    // consumers on seek; pulsar-rs then both reconnects the old consumer and creates a new
    // one, which an Exclusive subscription would refuse (ConsumerBusy) depending on timing.
    let mut cons = consumer(&c, &t, "s", SubType::Shared)
        .await
        .expect("subscribe");
    for _ in 0..8 {
        let m = recv(&mut cons).await.expect("message");
        cons.ack(&m).await.expect("ack");
    }
    cons.seek(None, Some(ids[3].clone()), None, c.clone())
        .await
        .expect("seek");
    let mut again = BTreeSet::new();
    while again.len() < 5 {
        let m = recv(&mut cons).await.expect("message after seek");
        cons.ack(&m).await.expect("ack");
        again.insert(text(&m));
    }
    let want: BTreeSet<String> = (3..8).map(|i| format!("m-{i}")).collect();
    assert_eq!(again, want);
}

#[tokio::test]
async fn partitioned_topic_routes_keys_consistently_and_delivers_all() {
    let (s, c) = setup().await;
    let t = unique_topic("rs-parts");
    s.create_partitioned_topic(&t, 3).await;
    assert_eq!(
        c.lookup_partitioned_topic_number(&t)
            .await
            .expect("partition metadata"),
        3
    );
    let mut cons = consumer(&c, &t, "s", SubType::Shared)
        .await
        .expect("subscribe");
    // pulsar-rs hashes keys only with an explicit policy (`None` is pure round robin).
    let opts = ProducerOptions {
        routing_policy: Some(RoutingPolicy::RoundRobin),
        ..Default::default()
    };
    let mut p = producer(&c, &t, opts).await;
    send_all(&mut p, 0..30).await;
    let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut got = BTreeSet::new();
    for _ in 0..30 {
        let m = recv(&mut cons).await.expect("message");
        assert!(m.topic.contains("-partition-"), "topic {}", m.topic);
        by_key
            .entry(m.key().expect("key"))
            .or_default()
            .insert(m.topic.clone());
        got.insert(text(&m));
        cons.ack(&m).await.expect("ack");
    }
    assert_eq!(got.len(), 30);
    for (k, parts) in &by_key {
        assert_eq!(parts.len(), 1, "key {k} spread over {parts:?}");
    }
}

#[tokio::test]
async fn nack_redelivers_then_dead_letters_and_last_message_id_is_reported() {
    let (_s, c) = setup().await;
    let t = unique_topic("rs-nack");
    let dlq_topic = format!("{t}-DLQ");
    let mut dlq = consumer(&c, &dlq_topic, "d", SubType::Exclusive)
        .await
        .expect("dlq subscribe");
    let mut cons: Cons = c
        .consumer()
        .with_topic(&t)
        .with_subscription("s")
        .with_subscription_type(SubType::Shared)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .with_dead_letter_policy(DeadLetterPolicy {
            // pulsar-rs dead-letters a message delivered with redelivery_count >= this
            // instead of handing it to the application: deliveries 0 and 1 arrive.
            max_redeliver_count: 2,
            dead_letter_topic: dlq_topic.clone(),
        })
        .build()
        .await
        .expect("subscribe");
    let mut p = producer(&c, &t, ProducerOptions::default()).await;
    send_all(&mut p, 0..1).await;
    let first = recv(&mut cons).await.expect("message");
    assert_eq!(text(&first), "m-0");
    cons.nack(&first).await.expect("nack");
    let again = recv(&mut cons).await.expect("redelivery after nack");
    assert_eq!(text(&again), "m-0");
    assert_eq!(again.message_id(), first.message_id());
    cons.nack(&again).await.expect("nack again");
    let dead = recv(&mut dlq)
        .await
        .expect("message in the dead-letter topic");
    assert_eq!(text(&dead), "m-0");

    let last = cons.get_last_message_id().await.expect("last message id");
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].entry_id, first.message_id().entry_id);
    assert_eq!(last[0].ledger_id, first.message_id().ledger_id);
}
