//! `magnetar-client` end to end against `magnetar standalone`: batching with every codec
//! (LZ4, ZSTD, ZLIB, SNAPPY),
//! each subscription type, ack / nack / ack-timeout redelivery, dead-letter routing, seek
//! (by id and by time), readers' start position and `has_message_available`, key routing on
//! partitioned topics (same key, same partition), and a producer that rides out a kill -9
//! and restart of the server with every acknowledged message present afterwards.
//!
//! `cargo build -p magnetar-tools --bin magnetar && cargo test -p magnetar-tests --test client_e2e`

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use magnetar_client::{
    BatchingPolicy, CompressionType, Consumer, DeadLetterPolicy, InitialPosition, Message,
    MessageId, ProducerMessage, PulsarClient, SubType,
};
use magnetar_tests::{unique_topic, Standalone, StandaloneOpts};

const RECV: Duration = Duration::from_secs(10);

async fn setup() -> (Standalone, PulsarClient) {
    let s = Standalone::start(StandaloneOpts::in_process()).await;
    let c = PulsarClient::new(s.service_url()).expect("client");
    (s, c)
}

async fn consumer(c: &PulsarClient, topic: &str, sub: &str, ty: SubType) -> Consumer {
    try_consumer(c, topic, sub, ty).await.expect("subscribe")
}

async fn try_consumer(
    c: &PulsarClient,
    topic: &str,
    sub: &str,
    ty: SubType,
) -> magnetar_client::Result<Consumer> {
    c.consumer()
        .topic(topic)
        .subscription(sub)
        .sub_type(ty)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
}

fn msg(i: usize) -> ProducerMessage {
    ProducerMessage::new(format!("m-{i}").into_bytes())
        .with_key(format!("k{}", i % 16))
        .with_property("i", i.to_string())
}

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

async fn recv(c: &Consumer) -> Message {
    c.receive_timeout(RECV)
        .await
        .expect("receive")
        .expect("a message within the timeout")
}

#[tokio::test]
async fn batches_with_every_codec_keep_order_keys_and_properties() {
    let (_s, c) = setup().await;
    for codec in [
        CompressionType::None,
        CompressionType::Lz4,
        CompressionType::Zstd,
        CompressionType::Zlib,
        CompressionType::Snappy,
    ] {
        let t = unique_topic(&format!("batch-{codec:?}"));
        let cons = consumer(&c, &t, "s", SubType::Exclusive).await;
        let p = c
            .producer()
            .topic(&t)
            .batching(BatchingPolicy {
                max_messages: 50,
                ..BatchingPolicy::default()
            })
            .compression(codec)
            .create()
            .await
            .expect("producer");
        let mut futs = Vec::new();
        for i in 0..200 {
            futs.push(p.send(msg(i)).await.expect("send"));
        }
        p.flush().await.expect("flush");
        for f in futs {
            tokio::time::timeout(RECV, f)
                .await
                .expect("receipt in time")
                .expect("receipt");
        }
        let mut batched = 0;
        for i in 0..200 {
            let m = recv(&cons).await;
            assert_eq!(text(&m), format!("m-{i}"), "{codec:?}");
            assert_eq!(m.key.as_deref(), Some(format!("k{}", i % 16).as_str()));
            assert_eq!(m.properties.get("i"), Some(&i.to_string()));
            batched += usize::from(m.id.is_batch());
            cons.ack(&m).expect("ack");
        }
        assert!(batched > 0, "{codec:?}: no message came in a batch");
        p.close().await.expect("close");
    }
}

#[tokio::test]
async fn subscription_types_behave_like_pulsar() {
    let (_s, c) = setup().await;
    // Exclusive: a second consumer is refused.
    let t = unique_topic("excl");
    let _first = consumer(&c, &t, "s", SubType::Exclusive).await;
    assert!(try_consumer(&c, &t, "s", SubType::Exclusive).await.is_err());

    // Shared spreads; Key_Shared spreads and pins each key to one consumer.
    for ty in [SubType::Shared, SubType::KeyShared] {
        let t = unique_topic(&format!("{ty:?}"));
        let a = consumer(&c, &t, "s", ty).await;
        let b = consumer(&c, &t, "s", ty).await;
        let p = c.producer().topic(&t).create().await.expect("producer");
        for i in 0..50 {
            p.send_and_wait(msg(i)).await.expect("send");
        }
        let mut keys: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        let mut got = BTreeSet::new();
        let mut per = [0usize; 2];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while got.len() < 50 && tokio::time::Instant::now() < deadline {
            let short = Duration::from_millis(300);
            let (w, m) = tokio::select! {
                m = a.receive_timeout(short) => (0, m.expect("receive")),
                m = b.receive_timeout(short) => (1, m.expect("receive")),
            };
            let Some(m) = m else { continue };
            [&a, &b][w].ack(&m).expect("ack");
            per[w] += 1;
            got.insert(text(&m));
            keys.entry(m.key.clone().expect("key"))
                .or_default()
                .insert(w);
        }
        assert_eq!(got.len(), 50, "{ty:?}");
        assert!(per[0] > 0 && per[1] > 0, "{ty:?} not spread: {per:?}");
        if ty == SubType::KeyShared {
            assert!(keys.values().all(|w| w.len() == 1), "{keys:?}");
        }
    }

    // Failover: one active consumer gets everything; the standby takes over when it closes.
    let t = unique_topic("failover");
    let a = consumer(&c, &t, "s", SubType::Failover).await;
    let b = consumer(&c, &t, "s", SubType::Failover).await;
    let p = c.producer().topic(&t).create().await.expect("producer");
    for i in 0..10 {
        p.send_and_wait(msg(i)).await.expect("send");
    }
    let (active, standby) = tokio::select! {
        m = a.receive_timeout(RECV) => { a.ack(&m.expect("recv").expect("msg")).expect("ack"); (a, b) }
        m = b.receive_timeout(RECV) => { b.ack(&m.expect("recv").expect("msg")).expect("ack"); (b, a) }
    };
    for i in 1..10 {
        let m = recv(&active).await;
        assert_eq!(text(&m), format!("m-{i}"));
        active.ack(&m).expect("ack");
    }
    let none = standby
        .receive_timeout(Duration::from_millis(300))
        .await
        .expect("receive");
    assert!(
        none.is_none(),
        "standby got a message while the active was up"
    );
    active.close().await.expect("close");
    p.send_and_wait(msg(10)).await.expect("send");
    assert_eq!(text(&recv(&standby).await), "m-10");
}

#[tokio::test]
async fn nack_and_ack_timeout_redeliver() {
    let (_s, c) = setup().await;
    let t = unique_topic("nack");
    let cons = c
        .consumer()
        .topic(&t)
        .subscription("s")
        .sub_type(SubType::Shared)
        .initial_position(InitialPosition::Earliest)
        .negative_ack_delay(Duration::from_millis(200))
        .subscribe()
        .await
        .expect("subscribe");
    let p = c.producer().topic(&t).create().await.expect("producer");
    p.send_and_wait(msg(0)).await.expect("send");
    let m = recv(&cons).await;
    assert_eq!(m.redelivery_count, 0);
    cons.nack(&m).expect("nack");
    let again = recv(&cons).await;
    assert_eq!(text(&again), "m-0");
    assert!(again.redelivery_count >= 1, "{}", again.redelivery_count);
    cons.ack(&again).expect("ack");

    let t = unique_topic("ack-timeout");
    let cons = c
        .consumer()
        .topic(&t)
        .subscription("s")
        .sub_type(SubType::Shared)
        .initial_position(InitialPosition::Earliest)
        .ack_timeout(Duration::from_secs(1))
        .subscribe()
        .await
        .expect("subscribe");
    let p = c.producer().topic(&t).create().await.expect("producer");
    p.send_and_wait(msg(1)).await.expect("send");
    let first = recv(&cons).await;
    let again = recv(&cons).await; // not acked: comes back after the ack timeout
    assert_eq!(text(&first), text(&again));
    cons.ack(&again).expect("ack");
}

#[tokio::test]
async fn messages_nacked_too_often_go_to_the_dead_letter_topic() {
    let (_s, c) = setup().await;
    let t = unique_topic("dlq");
    let dlq_topic = format!("{t}-s-DLQ");
    let dlq = consumer(&c, &dlq_topic, "dlq-reader", SubType::Exclusive).await;
    let cons = c
        .consumer()
        .topic(&t)
        .subscription("s")
        .sub_type(SubType::Shared)
        .initial_position(InitialPosition::Earliest)
        .negative_ack_delay(Duration::from_millis(100))
        .dead_letter(DeadLetterPolicy {
            max_redeliver_count: 2,
            dead_letter_topic: None,
        })
        .subscribe()
        .await
        .expect("subscribe");
    let p = c.producer().topic(&t).create().await.expect("producer");
    p.send_and_wait(msg(7)).await.expect("send");
    p.send_and_wait(msg(8)).await.expect("send");
    // m-7 is always rejected, m-8 accepted; bounded number of deliveries.
    let mut deliveries_of_7 = 0;
    for _ in 0..10 {
        let Some(m) = cons
            .receive_timeout(Duration::from_secs(3))
            .await
            .expect("recv")
        else {
            break;
        };
        if text(&m) == "m-7" {
            deliveries_of_7 += 1;
            cons.nack(&m).expect("nack");
        } else {
            cons.ack(&m).expect("ack");
        }
    }
    assert!(
        (2..=3).contains(&deliveries_of_7),
        "m-7 delivered {deliveries_of_7} times"
    );
    let dead = recv(&dlq).await;
    assert_eq!(text(&dead), "m-7");
    assert_eq!(dead.key.as_deref(), Some("k7"));
    assert_eq!(dead.properties.get("i").map(String::as_str), Some("7"));
}

#[tokio::test]
async fn seek_rewinds_a_subscription_and_reader_knows_when_it_is_caught_up() {
    let (_s, c) = setup().await;
    let t = unique_topic("seek");
    let p = c.producer().topic(&t).create().await.expect("producer");
    let mut ids: Vec<MessageId> = Vec::new();
    for i in 0..10 {
        ids.push(p.send_and_wait(msg(i)).await.expect("send"));
    }
    let cons = consumer(&c, &t, "s", SubType::Exclusive).await;
    for _ in 0..10 {
        let m = recv(&cons).await;
        cons.ack(&m).expect("ack");
    }
    cons.seek(ids[4]).await.expect("seek");
    for i in 4..10 {
        let m = recv(&cons).await;
        assert_eq!(text(&m), format!("m-{i}"));
        cons.ack(&m).expect("ack");
    }

    let mut reader = c
        .reader()
        .topic(&t)
        .start_message_id(MessageId::EARLIEST)
        .create()
        .await
        .expect("reader");
    let mut n = 0;
    while reader.has_message_available().await.expect("has_message") {
        let m = reader
            .read_next_timeout(RECV)
            .await
            .expect("read")
            .expect("message announced as available");
        assert_eq!(text(&m), format!("m-{n}"));
        n += 1;
        assert!(n <= 10, "reader read past the end");
    }
    assert_eq!(n, 10);
    p.send_and_wait(msg(10)).await.expect("send");
    assert!(reader.has_message_available().await.expect("has_message"));
    let m = reader.read_next_timeout(RECV).await.expect("read");
    assert_eq!(m.map(|m| text(&m)).as_deref(), Some("m-10"));
}

#[tokio::test]
async fn keyed_messages_stick_to_one_partition() {
    let (s, c) = setup().await;
    let t = unique_topic("parts");
    s.create_partitioned_topic(&t, 4).await;
    assert_eq!(c.partitions(&t).await.expect("partitions"), 4);
    let p = c.producer().topic(&t).create().await.expect("producer");
    assert_eq!(p.partitions(), 4);
    let mut sent_to: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for i in 0..40 {
        let id = p.send_and_wait(msg(i)).await.expect("send");
        sent_to
            .entry(format!("k{}", i % 16))
            .or_default()
            .insert(id.partition);
    }
    assert!(sent_to.values().all(|p| p.len() == 1), "{sent_to:?}");
    let used: BTreeSet<i32> = sent_to.values().flatten().copied().collect();
    assert!(used.len() > 1, "sixteen keys all hashed to {used:?}");

    let cons = consumer(&c, &t, "s", SubType::Shared).await;
    let mut got: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for _ in 0..40 {
        let m = recv(&cons).await;
        got.entry(m.key.clone().expect("key"))
            .or_default()
            .insert(m.id.partition);
        cons.ack(&m).expect("ack");
    }
    assert_eq!(got, sent_to);
}

/// A kill -9 and restart while one producer keeps sending and one consumer keeps
/// receiving: every send that was acknowledged reaches the consumer that rode out the
/// restart and is stored exactly once (deduplication is on by default, so the producer's
/// resends after reconnecting are not stored again); sends that failed may or may not be.
#[tokio::test]
async fn acknowledged_messages_survive_kill9_while_producing() {
    let mut s = Standalone::start(StandaloneOpts::default()).await;
    let c = PulsarClient::new(s.service_url()).expect("client");
    let t = unique_topic("ride-out");
    let p = Arc::new(
        c.producer()
            .topic(&t)
            .send_timeout(Duration::from_secs(30))
            .create()
            .await
            .expect("producer"),
    );
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    // A consumer that rides out the restart: deliveries counted per message.
    let live = consumer(&c, &t, "live", SubType::Exclusive).await;
    let delivered = Arc::new(Mutex::new(std::collections::BTreeMap::<usize, usize>::new()));
    let live_done = tokio_util::sync::CancellationToken::new();
    let live_task = {
        let (delivered, done) = (delivered.clone(), live_done.clone());
        tokio::spawn(async move {
            while !done.is_cancelled() {
                let Ok(Some(m)) = live.receive_timeout(Duration::from_millis(200)).await else {
                    continue; // empty poll, or the broker is down: the consumer reconnects
                };
                if let Some(i) = text(&m).strip_prefix("r-").and_then(|n| n.parse().ok()) {
                    *delivered.lock().expect("lock").entry(i).or_insert(0) += 1;
                }
                let _ = live.ack(&m);
            }
        })
    };
    // Sends are pipelined (paced at ~500/s, receipts collected separately), so the kill
    // lands with messages in flight and the outage fills the producer's pending queue,
    // which it must resend in order after reconnecting.
    let task = {
        let (p, acked, sent, stop) = (p.clone(), acked.clone(), sent.clone(), stop.clone());
        tokio::spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let collector = tokio::spawn(async move {
                let mut failed = 0usize;
                while let Some((i, f)) = rx.recv().await {
                    match tokio::time::timeout(Duration::from_secs(60), f).await {
                        Ok(Ok(_)) => {
                            acked.lock().expect("lock").insert(i);
                        }
                        _ => failed += 1,
                    }
                }
                failed
            });
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            let mut failed = 0usize;
            for i in 0..100_000 {
                if stop.is_cancelled() {
                    break;
                }
                tick.tick().await;
                sent.store(i + 1, std::sync::atomic::Ordering::Relaxed);
                match p.send(format!("r-{i}").into_bytes()).await {
                    Ok(f) => tx.send((i, f)).expect("collector alive"),
                    Err(_) => failed += 1,
                }
            }
            drop(tx);
            failed + collector.await.expect("collector")
        })
    };
    let count = |acked: &Arc<Mutex<BTreeSet<usize>>>| acked.lock().expect("lock").len();
    magnetar_tests::wait_for("50 acks before the kill", Duration::from_secs(30), || {
        let n = count(&acked);
        async move { (n >= 50).then_some(()) }
    })
    .await;
    s.kill9();
    s.start_again().await;
    let before = count(&acked);
    magnetar_tests::wait_for(
        "200 more acks after the restart",
        Duration::from_secs(60),
        || {
            let n = count(&acked);
            async move { (n >= before + 200).then_some(()) }
        },
    )
    .await;
    stop.cancel();
    let failed = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("producer task ends")
        .expect("producer task");
    let acked: BTreeSet<usize> = acked.lock().expect("lock").clone();
    let total = sent.load(std::sync::atomic::Ordering::Relaxed);

    let cons = consumer(&c, &t, "check", SubType::Exclusive).await;
    let mut seen = BTreeSet::new();
    while let Some(m) = cons
        .receive_timeout(Duration::from_secs(3))
        .await
        .expect("receive")
    {
        let i: usize = text(&m)
            .strip_prefix("r-")
            .and_then(|n| n.parse().ok())
            .expect("payload r-<n>");
        assert!(seen.insert(i), "r-{i} is stored twice");
        assert!(seen.len() <= total, "more distinct messages than sent");
    }
    // The live consumer gets everything acknowledged, however long it was cut off.
    magnetar_tests::wait_for(
        "the live consumer to catch up",
        Duration::from_secs(60),
        || {
            let d = delivered.lock().expect("lock");
            let caught_up = acked.iter().all(|i| d.contains_key(i));
            async move { caught_up.then_some(()) }
        },
    )
    .await;
    live_done.cancel();
    live_task.await.expect("live consumer task");
    let redelivered = delivered
        .lock()
        .expect("lock")
        .values()
        .filter(|n| **n > 1)
        .count();
    eprintln!(
        "ride-out: {total} sent, {} acked, {failed} failed, {} read back, {redelivered} \
         redelivered to the live consumer (acks the kill lost)",
        acked.len(),
        seen.len()
    );
    let missing: Vec<_> = acked.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages lost (of {} acked, {failed} failed sends): {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(20)]
    );
}

#[tokio::test]
async fn seek_by_time_and_readers_from_a_message_id_start_after_it() {
    let (_s, c) = setup().await;
    let t = unique_topic("seek-time");
    let p = c.producer().topic(&t).create().await.expect("producer");
    let mut empty = c
        .reader()
        .topic(&t)
        .start_message_id(MessageId::EARLIEST)
        .create()
        .await
        .expect("reader");
    assert!(!empty.has_message_available().await.expect("has_message"));
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(p.send_and_wait(msg(i)).await.expect("send"));
    }
    let cons = consumer(&c, &t, "s", SubType::Exclusive).await;
    let mut times = Vec::new();
    for _ in 0..6 {
        let m = recv(&cons).await;
        times.push(m.publish_time);
        cons.ack(&m).expect("ack");
    }
    // Rewind to the publish time of m-3: everything published at or after it comes back.
    cons.seek_time(times[3]).await.expect("seek by time");
    let m = recv(&cons).await;
    let first: usize = text(&m)[2..].parse().expect("index");
    assert!(
        first <= 3 && times[first] >= times[3],
        "seek by time resumed at m-{first}"
    );

    // Like Pulsar's readers (start id exclusive), reading from id[2] yields m-3 first.
    let mut r = c
        .reader()
        .topic(&t)
        .start_message_id(ids[2])
        .create()
        .await
        .expect("reader");
    let m = r
        .read_next_timeout(RECV)
        .await
        .expect("read")
        .expect("message");
    assert_eq!(text(&m), "m-3");
}
