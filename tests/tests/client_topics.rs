//! One `magnetar-client` consumer over many topics against `magnetar standalone`: a topic
//! list (plain and partitioned) is merged into one receive queue with every ack reaching
//! the topic its message came from, and a regex subscription also picks up matching
//! topics created after it started (and only those), on the configured re-check period.
//!
//! `cargo test -p magnetar-tests --test client_topics`

use std::collections::BTreeSet;
use std::time::Duration;

use magnetar_client::{InitialPosition, Message, PulsarClient, SubType};
use magnetar_tests::{unique_topic, Standalone, StandaloneOpts};

const RECV: Duration = Duration::from_secs(10);

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

async fn produce(c: &PulsarClient, topic: &str, prefix: &str, n: usize) {
    let p = c.producer().topic(topic).create().await.expect("producer");
    for i in 0..n {
        p.send_and_wait(format!("{prefix}-{i}").into_bytes())
            .await
            .expect("send");
    }
    p.close().await.expect("close");
}

#[tokio::test]
async fn multi_topic_consumer_merges_topics_and_acks_reach_each_topic() {
    let s = Standalone::start(StandaloneOpts::in_process()).await;
    let c = PulsarClient::new(s.service_url()).expect("client");
    let plain = unique_topic("multi-plain");
    let parted = unique_topic("multi-parted");
    s.create_partitioned_topic(&parted, 2).await;
    produce(&c, &plain, "a", 5).await;
    produce(&c, &parted, "b", 6).await;

    let subscribe = || {
        c.consumer()
            .topics([plain.as_str(), parted.as_str()])
            .subscription("multi")
            .sub_type(SubType::Shared)
            .initial_position(InitialPosition::Earliest)
            .subscribe()
    };
    let cons = subscribe().await.expect("subscribe");
    assert_eq!(cons.topics(), {
        let mut v = vec![plain.clone(), parted.clone()];
        v.sort();
        v
    });
    let mut got = BTreeSet::new();
    let mut nacked = None;
    for _ in 0..11 {
        let m = cons
            .receive_timeout(RECV)
            .await
            .expect("receive")
            .expect("message");
        let from_parted = m.topic.starts_with(&format!("{parted}-partition-"));
        assert!(
            m.topic == plain || from_parted,
            "unexpected topic {}",
            m.topic
        );
        assert_eq!(text(&m).starts_with("b-"), from_parted, "{}", m.topic);
        assert!(got.insert(text(&m)), "duplicate {}", text(&m));
        // Reject one message of the partitioned topic once: it must come back from there.
        if from_parted && nacked.is_none() {
            nacked = Some(text(&m));
            cons.nack(&m).expect("nack");
        } else {
            cons.ack(&m).expect("ack");
        }
    }
    assert_eq!(got.len(), 11);
    // An id alone cannot name its topic on a multi-topic consumer.
    let none = cons
        .receive_timeout(Duration::from_millis(10))
        .await
        .expect("receive");
    assert!(none.is_none());
    let cons = {
        cons.close().await.expect("close");
        subscribe().await.expect("resubscribe")
    };
    // Everything acked stays acked on its own topic; only the nacked message returns.
    let again = cons
        .receive_timeout(RECV)
        .await
        .expect("receive")
        .expect("the nacked message again");
    assert_eq!(Some(text(&again)), nacked);
    assert!(again.topic.starts_with(&parted));
    assert!(
        cons.ack_id(&again.id).is_err(),
        "ack by bare id on a multi-topic consumer"
    );
    cons.ack(&again).expect("ack");
    let extra = cons
        .receive_timeout(Duration::from_secs(1))
        .await
        .expect("receive");
    assert!(
        extra.is_none(),
        "redelivered: {:?}",
        extra.map(|m| text(&m))
    );
    cons.close().await.expect("close");
}

#[tokio::test]
async fn pattern_consumer_discovers_matching_topics_created_later() {
    let s = Standalone::start(StandaloneOpts::in_process()).await;
    let c = PulsarClient::new(s.service_url()).expect("client");
    // A prefix unique to this run, so topics of other tests never match.
    let base = unique_topic("pat");
    let first = format!("{base}-orders-1");
    produce(&c, &first, "first", 2).await;

    let cons = c
        .consumer()
        .topics_pattern(format!("{}-orders-.*", regex_escape(&base)))
        .pattern_auto_discovery_period(Duration::from_secs(1))
        .subscription("pattern")
        .sub_type(SubType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    assert_eq!(cons.topics(), vec![first.clone()]);
    let mut got = BTreeSet::new();
    for _ in 0..2 {
        let m = cons
            .receive_timeout(RECV)
            .await
            .expect("recv")
            .expect("msg");
        assert_eq!(m.topic, first);
        got.insert(text(&m));
        cons.ack(&m).expect("ack");
    }

    // Created after the subscription: one matching (partitioned), one not.
    let later = format!("{base}-orders-2");
    let other = format!("{base}-payments");
    s.create_partitioned_topic(&later, 2).await;
    produce(&c, &later, "later", 4).await;
    produce(&c, &other, "other", 2).await;
    for _ in 0..4 {
        let m = cons
            .receive_timeout(RECV)
            .await
            .expect("recv")
            .expect("a message of the topic created later");
        assert!(m.topic.starts_with(&later), "{}", m.topic);
        got.insert(text(&m));
        cons.ack(&m).expect("ack");
    }
    let want: BTreeSet<String> = [
        "first-0", "first-1", "later-0", "later-1", "later-2", "later-3",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
    assert_eq!(cons.topics(), vec![first.clone(), later.clone()]);
    let none = cons
        .receive_timeout(Duration::from_millis(1500))
        .await
        .expect("recv");
    assert!(
        none.is_none(),
        "a non-matching topic was consumed: {:?}",
        none.map(|m| m.topic)
    );
    cons.close().await.expect("close");
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|ch| {
            let special = ".+*?()|[]{}^$\\".contains(ch);
            special.then_some('\\').into_iter().chain([ch])
        })
        .collect()
}
