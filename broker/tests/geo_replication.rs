//! Geo-replication between two in-process brokers (clusters `a` and `b`): messages produced
//! in `a` reach `b` once, in order, marked `replicated_from = a`, never looping back, and a
//! restart of `a`'s broker resumes replication from its durable cursor without duplicates
//! (ledgers roll over every 37 entries, so reads cross ledgers), also when no client comes
//! back to the restarted broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use magnetar_bookie::mem::MemLedgers;
use magnetar_broker::config::BrokerConfig;
use magnetar_client::{Consumer, InitialPosition, ProducerMessage, PulsarClient};
use magnetar_metadata::{Expect, MemStore, MetadataStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Cluster {
    name: &'static str,
    metadata: Arc<MemStore>,
    ledgers: Arc<MemLedgers>,
    url: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Cluster {
    async fn start(
        name: &'static str,
        metadata: Arc<MemStore>,
        ledgers: Arc<MemLedgers>,
    ) -> Cluster {
        let pl = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hl = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("pulsar://{}", pl.local_addr().expect("addr"));
        let config = BrokerConfig {
            cluster_name: name.to_string(),
            // Small ledgers: replication reads across rollovers.
            max_entries_per_ledger: 37,
            ..BrokerConfig::default()
        };
        let shutdown = CancellationToken::new();
        let (md, lg, sd) = (metadata.clone(), ledgers.clone(), shutdown.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = magnetar_broker::service::run(config, pl, hl, md, lg, sd).await {
                panic!("broker {name} failed: {e}");
            }
        });
        Cluster {
            name,
            metadata,
            ledgers,
            url,
            shutdown,
            task,
        }
    }

    async fn stop(self) -> (Arc<MemStore>, Arc<MemLedgers>) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
        (self.metadata, self.ledgers)
    }

    async fn put(&self, key: &str, value: serde_json::Value) {
        self.metadata
            .put(key, Bytes::from(value.to_string()), Expect::Any, None)
            .await
            .expect("metadata put");
    }

    /// Knows `peer`, and has namespace `geo/ns` replicated to both.
    async fn configure(&self, peer_name: &str, peer_url: &str) {
        self.put(
            &format!("/clusters/{peer_name}"),
            serde_json::json!({"serviceUrl": "", "brokerServiceUrl": peer_url}),
        )
        .await;
        self.put(
            "/tenants/geo",
            serde_json::json!({"adminRoles": [], "allowedClusters": ["a", "b"]}),
        )
        .await;
        self.put(
            "/namespaces/geo/ns",
            serde_json::json!({"replication_clusters": ["a", "b"]}),
        )
        .await;
    }
}

const TOPIC: &str = "persistent://geo/ns/orders";

async fn subscribe(url: &str, sub: &str) -> Result<(PulsarClient, Consumer)> {
    let client = PulsarClient::new(url)?;
    let consumer = client
        .consumer()
        .topic(TOPIC)
        .subscription(sub)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await?;
    Ok((client, consumer))
}

async fn produce(url: &str, range: std::ops::Range<u32>) -> Result<()> {
    let client = PulsarClient::new(url)?;
    let producer = client.producer().topic(TOPIC).create().await?;
    for i in range {
        let msg = ProducerMessage::new(format!("m-{i}"))
            .with_key(format!("k{}", i % 5))
            .with_property("i", i.to_string())
            .with_event_time(1_000 + u64::from(i));
        producer.send(msg).await?;
    }
    producer.flush().await?;
    producer.close().await?;
    client.close().await;
    Ok(())
}

/// Receives exactly `n` messages (then checks nothing more comes within `quiet`).
async fn receive(c: &Consumer, n: usize, quiet: Duration) -> Result<Vec<magnetar_client::Message>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        if Instant::now() > deadline {
            bail!("received {} of {n} messages", out.len());
        }
        if let Some(m) = c.receive_timeout(Duration::from_millis(500)).await? {
            c.ack(&m)?;
            out.push(m);
        }
    }
    if let Some(m) = c.receive_timeout(quiet).await? {
        bail!("unexpected extra message {:?}", m.payload);
    }
    Ok(out)
}

fn payloads(msgs: &[magnetar_client::Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

fn expected(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("m-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_replicate_once_in_order_and_survive_source_restart() -> Result<()> {
    let a = Cluster::start("a", MemStore::new(), MemLedgers::new()).await;
    let b = Cluster::start("b", MemStore::new(), MemLedgers::new()).await;
    a.configure(b.name, &b.url).await;
    b.configure(a.name, &a.url).await;

    let (_cb, on_b) = subscribe(&b.url, "s").await.context("subscribe on b")?;
    let (_ca, on_a) = subscribe(&a.url, "s").await.context("subscribe on a")?;
    produce(&a.url, 0..200).await?;
    let got_a = receive(&on_a, 200, Duration::from_millis(200)).await?;
    let got_b = receive(&on_b, 200, Duration::from_millis(500)).await?;
    assert_eq!(payloads(&got_b), expected(0..200));
    for (l, r) in got_a.iter().zip(&got_b) {
        assert_eq!(r.replicated_from.as_deref(), Some("a"));
        assert_eq!(l.replicated_from, None);
        assert_eq!((&r.key, &r.properties), (&l.key, &l.properties));
        assert_eq!(
            (r.event_time, r.publish_time),
            (l.event_time, l.publish_time)
        );
    }
    // Nothing came back to a: still exactly its own 200.
    assert!(on_a
        .receive_timeout(Duration::from_millis(800))
        .await?
        .is_none());

    // Restart a's broker on the same stores: the replicator resumes from its cursor.
    drop((on_a, _ca));
    let (md, lg) = a.stop().await;
    let a = Cluster::start("a", md, lg).await;
    b.configure(a.name, &a.url).await;
    produce(&a.url, 200..300).await?;
    let more = receive(&on_b, 100, Duration::from_millis(800)).await?;
    assert_eq!(payloads(&more), expected(200..300));
    a.stop().await;
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_namespace_drops_resent_sequence_ids() -> Result<()> {
    let b = Cluster::start("b", MemStore::new(), MemLedgers::new()).await;
    b.configure("a", "pulsar://127.0.0.1:1").await;
    let (client, on_b) = subscribe(&b.url, "s").await?;
    // What a replicator does after a reconnect: the same name and sequence ids again.
    let producer = client
        .producer()
        .topic(TOPIC)
        .name("a.repl.test")
        .create()
        .await?;
    for seq in [1u64, 2, 2, 1, 3] {
        let md = magnetar_client::wire::proto::MessageMetadata {
            sequence_id: seq,
            publish_time: 1,
            replicated_from: Some("a".into()),
            ..Default::default()
        };
        producer
            .send_raw(md, Bytes::from(format!("m-{seq}")))
            .await?
            .await?;
    }
    let got = receive(&on_b, 3, Duration::from_millis(800)).await?;
    assert_eq!(payloads(&got), vec!["m-1", "m-2", "m-3"]);
    b.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_broker_drains_its_backlog_without_clients() -> Result<()> {
    let a = Cluster::start("a", MemStore::new(), MemLedgers::new()).await;
    let b = Cluster::start("b", MemStore::new(), MemLedgers::new()).await;
    // b is unreachable from a until a restarts: everything a stores is backlog.
    a.configure(b.name, "pulsar://127.0.0.1:1").await;
    // b deduplicates but does not replicate back: no replicator of b loads the topic on a.
    b.configure(a.name, &a.url).await;
    b.put(
        "/namespaces/geo/ns",
        serde_json::json!({"replication_clusters": ["b"], "deduplicationEnabled": true}),
    )
    .await;
    let (_cb, on_b) = subscribe(&b.url, "s").await.context("subscribe on b")?;
    produce(&a.url, 0..50).await?;
    let (md, lg) = a.stop().await;
    let a = Cluster::start("a", md, lg).await;
    a.configure(b.name, &b.url).await;
    // No client comes back to a: its broker loads the replicated topic by itself.
    let got = receive(&on_b, 50, Duration::from_millis(800)).await?;
    assert_eq!(payloads(&got), expected(0..50));
    a.stop().await;
    b.stop().await;
    Ok(())
}
