//! `magnetar-client` consumer features against `magnetar standalone`: acking single
//! messages of a batch (Pulsar's `ack_set`) means a resubscribed consumer gets back exactly
//! the batch's unacked messages; `batch_receive` returns at its message or byte limit, or
//! with whatever arrived when its timeout fires; `reconsume_later` brings a message back
//! through the retry-letter topic after the delay, then dead-letters it once the retry
//! budget is spent; `unsubscribe` deletes the subscription; a service URL whose first
//! host is down still serves clients.
//!
//! `cargo test -p magnetar-tests --test client_consume`

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use magnetar_client::{
    BatchReceivePolicy, BatchingPolicy, Consumer, DeadLetterPolicy, InitialPosition, Message,
    PulsarClient, SubType,
};
use magnetar_tests::{standalone::free_port, unique_topic, Standalone, StandaloneOpts};

const RECV: Duration = Duration::from_secs(10);

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

async fn recv(c: &Consumer) -> Message {
    c.receive_timeout(RECV)
        .await
        .expect("receive")
        .expect("a message within the timeout")
}

async fn subscribe(c: &PulsarClient, topic: &str, sub: &str, batch_index_ack: bool) -> Consumer {
    c.consumer()
        .topic(topic)
        .subscription(sub)
        .initial_position(InitialPosition::Earliest)
        .batch_index_ack(batch_index_ack)
        .subscribe()
        .await
        .expect("subscribe")
}

#[tokio::test]
async fn acking_half_a_batch_redelivers_only_the_other_half_after_resubscribe() {
    let s = Standalone::start(StandaloneOpts::in_process()).await;
    let c = PulsarClient::new(s.service_url()).expect("client");
    let t = unique_topic("batch-index-ack");
    let p = c
        .producer()
        .topic(&t)
        .batching(BatchingPolicy {
            max_messages: 10,
            max_bytes: 1 << 20,
            max_delay: Duration::from_secs(5),
        })
        .create()
        .await
        .expect("producer");
    let mut receipts = Vec::new();
    for i in 0..10 {
        receipts.push(p.send(format!("b-{i}").into_bytes()).await.expect("send"));
    }
    for r in receipts {
        r.await.expect("receipt");
    }
    // With batch-index acks, and (control) without: then the entry stays fully unacked.
    for (sub, batch_index_ack) in [("indexed", true), ("entry-only", false)] {
        let cons = subscribe(&c, &t, sub, batch_index_ack).await;
        let mut entry = None;
        for i in 0..10 {
            let m = recv(&cons).await;
            assert_eq!(text(&m), format!("b-{i}"));
            assert!(m.id.is_batch() && m.id.batch_size == 10, "{:?}", m.id);
            assert!(entry
                .replace(m.id.entry_id)
                .is_none_or(|e| e == m.id.entry_id));
            if i % 2 == 0 {
                cons.ack(&m).expect("ack");
            }
        }
        cons.close().await.expect("close");
        let cons = subscribe(&c, &t, sub, batch_index_ack).await;
        let mut again = Vec::new();
        while let Some(m) = cons
            .receive_timeout(Duration::from_secs(2))
            .await
            .expect("receive")
        {
            again.push(text(&m));
            assert!(again.len() <= 10, "{again:?}");
        }
        let want: Vec<String> = if batch_index_ack {
            (1..10).step_by(2).map(|i| format!("b-{i}")).collect()
        } else {
            (0..10).map(|i| format!("b-{i}")).collect()
        };
        assert_eq!(again, want, "batch_index_ack = {batch_index_ack}");
        cons.close().await.expect("close");
    }
}

#[tokio::test]
async fn batch_receive_stops_at_count_bytes_or_timeout() {
    let s = Standalone::start(StandaloneOpts::in_process()).await;
    let c = PulsarClient::new(s.service_url()).expect("client");
    let t = unique_topic("batch-receive");
    let timeout = Duration::from_secs(2);
    let cons = c
        .consumer()
        .topic(&t)
        .subscription("s")
        .initial_position(InitialPosition::Earliest)
        .batch_receive_policy(BatchReceivePolicy {
            max_messages: 5,
            max_bytes: 350,
            timeout,
        })
        .subscribe()
        .await
        .expect("subscribe");
    let p = c.producer().topic(&t).create().await.expect("producer");
    let payload = |i: usize, len: usize| format!("{i:0len$}").into_bytes();

    // Nothing there: empty after the timeout.
    let t0 = Instant::now();
    assert!(cons.batch_receive().await.expect("batch").is_empty());
    assert!(t0.elapsed() >= timeout - Duration::from_millis(50));

    // Six small messages: a full batch of five at once, then the one left at the timeout.
    for i in 0..6 {
        p.send_and_wait(payload(i, 10)).await.expect("send");
    }
    let t0 = Instant::now();
    let first = cons.batch_receive().await.expect("batch");
    assert_eq!(first.len(), 5);
    assert!(
        t0.elapsed() < timeout,
        "a full batch waited for the timeout"
    );
    let t0 = Instant::now();
    let rest = cons.batch_receive().await.expect("batch");
    assert_eq!(rest.len(), 1);
    assert!(t0.elapsed() >= timeout - Duration::from_millis(50));
    let texts: Vec<String> = first.iter().chain(&rest).map(text).collect();
    let want: Vec<String> = (0..6).map(|i| text_of(payload(i, 10))).collect();
    assert_eq!(texts, want);

    // Four 100-byte messages with a 350-byte limit: three, then the fourth.
    for i in 6..10 {
        p.send_and_wait(payload(i, 100)).await.expect("send");
    }
    // The fourth would cross 350 bytes: it waits for the next call.
    let t0 = Instant::now();
    let by_bytes = cons.batch_receive().await.expect("batch");
    assert_eq!(by_bytes.len(), 3, "{:?}", by_bytes.len());
    assert!(
        t0.elapsed() < timeout,
        "the byte limit did not close the batch"
    );
    let last = cons.batch_receive().await.expect("batch");
    assert_eq!(last.len(), 1);
    assert_eq!(text(&last[0]), text_of(payload(9, 100)));
    for m in first.iter().chain(&rest).chain(&by_bytes).chain(&last) {
        cons.ack(m).expect("ack");
    }
    cons.close().await.expect("close");
}

fn text_of(b: Vec<u8>) -> String {
    String::from_utf8(b).expect("utf8")
}

#[tokio::test]
async fn reconsume_later_goes_through_the_retry_topic_then_to_the_dead_letter_topic() {
    let s = Standalone::start(StandaloneOpts::in_process()).await;
    let c = PulsarClient::new(s.service_url()).expect("client");
    let t = unique_topic("retry");
    let dlq = subscribe(&c, &format!("{t}-s-DLQ"), "dlq", true).await;
    let cons = c
        .consumer()
        .topic(&t)
        .subscription("s")
        .sub_type(SubType::Shared)
        .initial_position(InitialPosition::Earliest)
        .enable_retry(true)
        .dead_letter(DeadLetterPolicy {
            max_redeliver_count: 2,
            dead_letter_topic: None,
        })
        .subscribe()
        .await
        .expect("subscribe");
    let retry_topic = format!("{t}-s-RETRY");
    assert_eq!(cons.topics(), {
        let mut v = vec![t.clone(), retry_topic.clone()];
        v.sort();
        v
    });
    let p = c.producer().topic(&t).create().await.expect("producer");
    p.send_and_wait(
        magnetar_client::ProducerMessage::new("job")
            .with_key("k")
            .with_property("a", "1"),
    )
    .await
    .expect("send");
    let mut m = recv(&cons).await;
    assert_eq!(m.topic, t);
    let delay = Duration::from_millis(500);
    for attempt in 1..=2 {
        let t0 = Instant::now();
        cons.reconsume_later(&m, delay).await.expect("reconsume");
        m = recv(&cons).await;
        assert!(
            t0.elapsed() >= delay - Duration::from_millis(50),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(m.topic, retry_topic);
        assert_eq!(text(&m), "job");
        assert_eq!(m.key.as_deref(), Some("k"));
        assert_eq!(m.properties["a"], "1");
        assert_eq!(m.properties["RECONSUMETIMES"], attempt.to_string());
        assert_eq!(m.properties["REAL_TOPIC"], t);
    }
    // Third retry exceeds max_redeliver_count = 2: dead-lettered, not redelivered.
    cons.reconsume_later(&m, delay).await.expect("reconsume");
    let dead = recv(&dlq).await;
    assert_eq!(text(&dead), "job");
    assert_eq!(dead.properties["RECONSUMETIMES"], "3");
    assert_eq!(dead.properties["REAL_TOPIC"], t);
    let none = cons
        .receive_timeout(Duration::from_secs(2))
        .await
        .expect("receive");
    assert!(none.is_none(), "redelivered after dead-lettering");
    cons.close().await.expect("close");
}

#[tokio::test]
async fn unsubscribe_deletes_the_subscription_and_its_backlog() {
    let s = Standalone::start(StandaloneOpts::in_process()).await;
    let c = PulsarClient::new(s.service_url()).expect("client");
    let t = unique_topic("unsub");
    let p = c.producer().topic(&t).create().await.expect("producer");
    for i in 0..3 {
        p.send_and_wait(format!("old-{i}").into_bytes())
            .await
            .expect("send");
    }
    let cons = subscribe(&c, &t, "s", true).await;
    assert_eq!(text(&recv(&cons).await), "old-0"); // received, never acked
    cons.unsubscribe().await.expect("unsubscribe");
    let stats = s.topic_stats(&t).await;
    assert!(
        stats["subscriptions"].get("s").is_none(),
        "subscription still listed: {stats}"
    );
    // A new subscription of the same name starts from scratch (here: at the end).
    let cons = c
        .consumer()
        .topic(&t)
        .subscription("s")
        .initial_position(InitialPosition::Latest)
        .subscribe()
        .await
        .expect("subscribe");
    p.send_and_wait(b"new".to_vec()).await.expect("send");
    assert_eq!(text(&recv(&cons).await), "new");
    cons.close().await.expect("close");
}

#[tokio::test]
async fn service_url_with_an_unreachable_host_still_serves_clients() {
    let s = Standalone::start(StandaloneOpts::in_process()).await;
    let good = s.service_url().trim_start_matches("pulsar://").to_owned();
    let dead = format!("127.0.0.1:{}", free_port());
    for url in [
        format!("pulsar://{dead},{good}"),
        format!("pulsar://{good},{dead}"),
    ] {
        let c = PulsarClient::new(url.as_str()).expect("client");
        let t = unique_topic("multi-host");
        let p = c.producer().topic(&t).create().await.expect("producer");
        let cons = subscribe(&c, &t, "s", true).await;
        let mut got = BTreeSet::new();
        for i in 0..4 {
            p.send_and_wait(format!("h-{i}").into_bytes())
                .await
                .expect("send");
        }
        for _ in 0..4 {
            let m = recv(&cons).await;
            got.insert(text(&m));
            cons.ack(&m).expect("ack");
        }
        assert_eq!(got.len(), 4, "{url}");
        cons.close().await.expect("close");
        p.close().await.expect("close");
        c.close().await;
    }
}
