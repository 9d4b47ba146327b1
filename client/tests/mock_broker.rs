//! The client library produces, consumes, batches, compresses and reconnects correctly
//! against an in-process mock broker that speaks the Pulsar binary protocol: pending sends
//! are resent after the broker closes a producer, also when the topic moved to another
//! broker (re-lookup); the pending queue is bounded; the authentication hook supplies
//! CONNECT credentials and answers AUTH_CHALLENGE.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use magnetar_client::wire::commands::{self, IntoCommand};
use magnetar_client::wire::proto::{base_command::Type, CommandSendReceipt};
use magnetar_client::wire::{Outbound, PulsarCodec};
use magnetar_client::{
    BatchingPolicy, CompressionType, InitialPosition, ProducerMessage, PulsarClient, SubType,
};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

/// Entries stored per topic: raw payload bytes exactly as received.
#[derive(Default)]
struct State {
    topics: HashMap<String, Vec<Bytes>>,
    /// Close every producer after this many SENDs on a connection (once).
    close_producer_after: Option<usize>,
    acks: usize,
    producers_created: usize,
    /// Close the consumer (once) after dispatching this many messages on a connection.
    close_consumer_after: Option<usize>,
    /// Entry ids acked, per topic.
    acked: HashMap<String, std::collections::HashSet<u64>>,
    subscribes: usize,
    /// Send AUTH_CHALLENGE during the handshake and once more right after CONNECTED.
    challenge: bool,
    /// (method, data) of every CONNECT and AUTH_RESPONSE, in arrival order.
    credentials: Vec<(String, Vec<u8>)>,
    /// Lookups answer with this broker URL instead of the serving broker's own.
    lookup_to: Option<String>,
    /// URL of the broker that served each PRODUCER command.
    producer_brokers: Vec<String>,
    /// Store SENDs but never answer them with a receipt.
    withhold_receipts: bool,
}

async fn start_broker(state: Arc<Mutex<State>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let url = format!("pulsar://{addr}");
    let url2 = url.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(serve(sock, state.clone(), url2.clone()));
        }
    });
    url
}

async fn serve(sock: TcpStream, state: Arc<Mutex<State>>, url: String) {
    let framed = Framed::new(sock, PulsarCodec::default());
    let (mut sink, mut stream) = framed.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if sink.send(f).await.is_err() {
                return;
            }
        }
    });
    let mut producer_topics: HashMap<u64, String> = HashMap::new();
    // consumer id -> (topic, next entry index, permits)
    let mut consumers: HashMap<u64, (String, usize, u32)> = HashMap::new();
    let mut sends = 0usize;
    let mut dispatched = 0usize;
    while let Some(Ok(item)) = stream.next().await {
        let frame = item.expect("mock broker expects valid payloads");
        let cmd = frame.command;
        let reply = |c| {
            let _ = tx.send(Outbound::from(c));
        };
        match commands::command_type(&cmd) {
            Some(Type::Connect) => {
                let c = cmd.connect.expect("body");
                let mut st = state.lock();
                st.credentials.push((
                    c.auth_method_name.unwrap_or_default(),
                    c.auth_data.unwrap_or_default(),
                ));
                if st.challenge {
                    reply(auth_challenge(b"step-1"));
                } else {
                    reply(commands::connected("mock", 21, 5 << 20, None));
                }
            }
            Some(Type::AuthResponse) => {
                let r = cmd.auth_response.and_then(|r| r.response).expect("body");
                let n = {
                    let mut st = state.lock();
                    st.credentials.push((
                        r.auth_method_name.unwrap_or_default(),
                        r.auth_data.unwrap_or_default(),
                    ));
                    st.credentials.len()
                };
                if n == 2 {
                    // Handshake answered: connect, then ask for a refresh at once.
                    reply(commands::connected("mock", 21, 5 << 20, None));
                    reply(auth_challenge(b"refresh"));
                }
            }
            Some(Type::Ping) => reply(commands::pong()),
            Some(Type::PartitionedMetadata) => {
                let r = cmd.partition_metadata.expect("body");
                reply(commands::partitioned_metadata_response(r.request_id, 0));
            }
            Some(Type::Lookup) => {
                let r = cmd.lookup_topic.expect("body");
                let owner = state
                    .lock()
                    .lookup_to
                    .clone()
                    .unwrap_or_else(|| url.clone());
                reply(commands::lookup_connect(r.request_id, &owner, true, false));
            }
            Some(Type::Producer) => {
                let p = cmd.producer.expect("body");
                producer_topics.insert(p.producer_id, p.topic.clone());
                {
                    let mut st = state.lock();
                    st.producers_created += 1;
                    st.producer_brokers.push(url.clone());
                }
                reply(commands::producer_success(
                    p.request_id,
                    "mock-producer",
                    -1,
                    None,
                    None,
                ));
            }
            Some(Type::Send) => {
                let s = cmd.send.expect("body");
                let payload = frame.payload.expect("send has a payload");
                if !producer_topics.contains_key(&s.producer_id) {
                    continue; // closed producer: the client resends after reconnecting
                }
                sends += 1;
                let close = {
                    let mut st = state.lock();
                    if st.close_producer_after == Some(sends) {
                        st.close_producer_after = None;
                        true
                    } else {
                        false
                    }
                };
                if close {
                    // Drop this message and ask the client to reconnect.
                    producer_topics.remove(&s.producer_id);
                    reply(commands::close_producer(
                        s.producer_id,
                        commands::BROKER_INITIATED_REQUEST_ID,
                    ));
                    continue;
                }
                let topic = producer_topics[&s.producer_id].clone();
                let entry = {
                    let mut st = state.lock();
                    let withhold = st.withhold_receipts;
                    let v = st.topics.entry(topic).or_default();
                    v.push(payload.raw.clone());
                    if withhold {
                        continue;
                    }
                    v.len() as u64 - 1
                };
                reply(
                    CommandSendReceipt {
                        producer_id: s.producer_id,
                        sequence_id: s.sequence_id,
                        message_id: Some(commands::message_id(1, entry)),
                        highest_sequence_id: s.highest_sequence_id,
                    }
                    .into_command(),
                );
            }
            Some(Type::Subscribe) => {
                let s = cmd.subscribe.expect("body");
                consumers.insert(s.consumer_id, (s.topic.clone(), 0, 0));
                state.lock().subscribes += 1;
                reply(commands::success(s.request_id));
            }
            Some(Type::Flow) => {
                let f = cmd.flow.expect("body");
                if let Some(c) = consumers.get_mut(&f.consumer_id) {
                    c.2 += f.message_permits;
                }
            }
            Some(Type::Ack) => {
                let a = cmd.ack.expect("body");
                let topic = consumers
                    .get(&a.consumer_id)
                    .map(|c| c.0.clone())
                    .unwrap_or_default();
                let mut st = state.lock();
                st.acks += a.message_id.len();
                for id in a.message_id {
                    st.acked
                        .entry(topic.clone())
                        .or_default()
                        .insert(id.entry_id);
                }
            }
            Some(Type::CloseProducer) => reply(commands::success(
                cmd.close_producer.expect("body").request_id,
            )),
            Some(Type::CloseConsumer) => reply(commands::success(
                cmd.close_consumer.expect("body").request_id,
            )),
            _ => {}
        }
        // Dispatch stored entries to consumers with permits.
        let mut closed = Vec::new();
        for (cid, (topic, next, permits)) in consumers.iter_mut() {
            let (entries, acked) = {
                let st = state.lock();
                (
                    st.topics.get(topic.as_str()).cloned().unwrap_or_default(),
                    st.acked.get(topic.as_str()).cloned().unwrap_or_default(),
                )
            };
            while *permits > 0 && *next < entries.len() {
                if acked.contains(&(*next as u64)) {
                    *next += 1;
                    continue;
                }
                dispatched += 1;
                let close = {
                    let mut st = state.lock();
                    if st.close_consumer_after == Some(dispatched) {
                        st.close_consumer_after = None;
                        true
                    } else {
                        false
                    }
                };
                if close {
                    closed.push(*cid);
                    let _ = tx.send(Outbound::from(commands::close_consumer(
                        *cid,
                        commands::BROKER_INITIATED_REQUEST_ID,
                    )));
                    break;
                }
                let msg =
                    commands::message(*cid, commands::message_id(1, *next as u64), 0, vec![], None);
                let _ = tx.send(Outbound::with_raw(msg, entries[*next].clone()));
                *next += 1;
                *permits -= 1;
            }
        }
        for c in closed {
            consumers.remove(&c);
        }
    }
}

fn auth_challenge(data: &[u8]) -> magnetar_client::wire::proto::BaseCommand {
    magnetar_client::wire::proto::CommandAuthChallenge {
        server_version: Some("mock".into()),
        challenge: Some(magnetar_client::wire::proto::AuthData {
            auth_method_name: Some("token".into()),
            auth_data: Some(data.to_vec()),
        }),
        protocol_version: Some(21),
    }
    .into_command()
}

async fn consume_n(client: &PulsarClient, topic: &str, n: usize) -> Vec<String> {
    let consumer = client
        .consumer()
        .topic(topic)
        .subscription("s")
        .sub_type(SubType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let mut got = Vec::new();
    for _ in 0..n {
        let m = consumer
            .receive_timeout(Duration::from_secs(10))
            .await
            .expect("receive")
            .expect("message within 10s");
        consumer.ack(&m).expect("ack");
        got.push(String::from_utf8(m.payload.to_vec()).expect("utf8"));
    }
    consumer.close().await.expect("close");
    got
}

#[tokio::test]
async fn batched_lz4_messages_round_trip_in_order() {
    let state = Arc::new(Mutex::new(State::default()));
    let url = start_broker(state.clone()).await;
    let client = PulsarClient::new(url).expect("client");
    let producer = client
        .producer()
        .topic("t1")
        .batching(BatchingPolicy {
            max_messages: 10,
            max_bytes: 1 << 20,
            max_delay: Duration::from_millis(5),
        })
        .compression(CompressionType::Lz4)
        .create()
        .await
        .expect("producer");
    let mut futs = Vec::new();
    for i in 0..95 {
        let msg = ProducerMessage::new(format!("m{i}")).with_key(format!("k{}", i % 3));
        futs.push(producer.send(msg).await.expect("queue"));
    }
    let mut ids = Vec::new();
    for f in futs {
        ids.push(f.await.expect("receipt"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    assert_eq!(ids[0].batch_size, 10);
    producer.close().await.expect("close");
    let entries = state.lock().topics["persistent://public/default/t1"].len();
    assert_eq!(entries, 10, "95 messages in batches of 10");
    let got = consume_n(&client, "t1", 95).await;
    let want: Vec<String> = (0..95).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn producer_resends_pending_after_broker_close() {
    let state = Arc::new(Mutex::new(State {
        close_producer_after: Some(5),
        ..Default::default()
    }));
    let url = start_broker(state.clone()).await;
    let client = PulsarClient::new(url).expect("client");
    let producer = client
        .producer()
        .topic("t2")
        .compression(CompressionType::Zstd)
        .create()
        .await
        .expect("producer");
    let mut futs = Vec::new();
    for i in 0..20 {
        futs.push(producer.send(format!("m{i}")).await.expect("queue"));
    }
    for f in futs {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("receipt in time")
            .expect("receipt");
    }
    assert!(state.lock().producers_created >= 2, "producer reconnected");
    producer.close().await.expect("close");
    let got = consume_n(&client, "t2", 20).await;
    let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "every message stored once, in order");
}

/// The topic moves from broker A to broker B: A closes the producer, the lookup now names
/// B, and the producer re-looks the topic up and resends its pending message to B.
#[tokio::test]
async fn producer_follows_a_topic_that_moved_to_another_broker() {
    let state = Arc::new(Mutex::new(State::default()));
    let a = start_broker(state.clone()).await;
    let b = start_broker(state.clone()).await;
    let client = PulsarClient::new(a.clone()).expect("client");
    let producer = client
        .producer()
        .topic("moving")
        .create()
        .await
        .expect("producer");
    producer.send_and_wait("m0").await.expect("send");
    {
        let mut st = state.lock();
        st.lookup_to = Some(b.clone());
        st.close_producer_after = Some(2); // A drops m1 and closes the producer
    }
    let id = tokio::time::timeout(Duration::from_secs(10), producer.send_and_wait("m1"))
        .await
        .expect("receipt in time")
        .expect("receipt");
    assert_eq!(id.entry_id, 1);
    assert_eq!(state.lock().producer_brokers, vec![a, b]);
    producer.close().await.expect("close");
    assert_eq!(consume_n(&client, "moving", 2).await, vec!["m0", "m1"]);
}

/// `max_pending` bounds what a producer holds without receipts: a blocking producer's
/// `send` waits once it is reached; a non-blocking one fails with `QueueFull`.
#[tokio::test]
async fn full_pending_queue_blocks_send_or_fails_fast() {
    let state = Arc::new(Mutex::new(State {
        withhold_receipts: true,
        ..State::default()
    }));
    let url = start_broker(state.clone()).await;
    let client = PulsarClient::new(url).expect("client");
    for blocking in [false, true] {
        let topic = format!("full-{blocking}");
        let producer = client
            .producer()
            .topic(&topic)
            .max_pending(2)
            .block_if_queue_full(blocking)
            .create()
            .await
            .expect("producer");
        let mut receipts = Vec::new();
        for i in 0..2 {
            receipts.push(producer.send(format!("m{i}")).await.expect("queue"));
        }
        // Both are on the broker (unanswered), so the producer's pending queue is full...
        let full = format!("persistent://public/default/{topic}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while state.lock().topics.get(&full).map_or(0, Vec::len) < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "sends never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // ...and two more fill the hand-off channel to the producer task.
        for i in 2..4 {
            receipts.push(producer.send(format!("m{i}")).await.expect("queue"));
        }
        if blocking {
            let waited =
                tokio::time::timeout(Duration::from_millis(300), producer.send("m4")).await;
            assert!(waited.is_err(), "send returned although the queue is full");
        } else {
            let r = producer.send("m4").await;
            assert!(matches!(r, Err(magnetar_client::Error::QueueFull)), "{r:?}");
        }
        assert_eq!(
            state.lock().topics[&full].len(),
            2,
            "more than max_pending in flight"
        );
    }
}

#[tokio::test]
async fn consumer_resubscribes_after_broker_close_and_gets_everything() {
    let state = Arc::new(Mutex::new(State {
        close_consumer_after: Some(7),
        ..Default::default()
    }));
    let url = start_broker(state.clone()).await;
    let client = PulsarClient::new(url).expect("client");
    let producer = client
        .producer()
        .topic("t3")
        .create()
        .await
        .expect("producer");
    for i in 0..30 {
        producer.send_and_wait(format!("m{i}")).await.expect("send");
    }
    let consumer = client
        .consumer()
        .topic("t3")
        .subscription("s")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 30 {
        let m = consumer
            .receive_timeout(Duration::from_secs(10))
            .await
            .expect("receive")
            .expect("message within 10s");
        consumer.ack(&m).expect("ack");
        seen.insert(String::from_utf8(m.payload.to_vec()).expect("utf8"));
    }
    assert!(state.lock().subscribes >= 2, "consumer resubscribed");
    consumer.close().await.expect("close");
}

/// Answers each request with `token-<n>:<challenge>`, counting calls.
#[derive(Debug, Default)]
struct CountingToken(std::sync::atomic::AtomicUsize);

impl magnetar_client::Authentication for CountingToken {
    fn method(&self) -> String {
        "token".into()
    }

    fn data(&self, challenge: Option<&[u8]>) -> magnetar_client::Result<Vec<u8>> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let c = challenge.map(|c| String::from_utf8_lossy(c).into_owned());
        Ok(format!("token-{n}:{}", c.unwrap_or_default()).into_bytes())
    }
}

#[tokio::test]
async fn authentication_hook_supplies_connect_credentials_and_answers_challenges() {
    let state = Arc::new(Mutex::new(State {
        challenge: true,
        ..State::default()
    }));
    let url = start_broker(state.clone()).await;
    let client = PulsarClient::builder(url)
        .authentication(Arc::new(CountingToken::default()))
        .build()
        .expect("client");
    // The first request needs the handshake (with its challenge) to complete.
    let producer = client
        .producer()
        .topic("auth")
        .create()
        .await
        .expect("producer");
    producer.send_and_wait("x").await.expect("send");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while state.lock().credentials.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "refresh never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let creds: Vec<(String, String)> = state
        .lock()
        .credentials
        .iter()
        .map(|(m, d)| (m.clone(), String::from_utf8_lossy(d).into_owned()))
        .collect();
    assert_eq!(
        creds,
        vec![
            ("token".to_owned(), "token-0:".to_owned()),
            ("token".to_owned(), "token-1:step-1".to_owned()),
            ("token".to_owned(), "token-2:refresh".to_owned()),
        ]
    );
}
