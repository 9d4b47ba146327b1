//! Message lifecycle over the wire: deduplication survives broker restarts, graceful or
//! not (PRODUCER_SUCCESS carries the last stored sequence id, a resent sequence id is
//! acknowledged with -1:-1 and never stored, every message is delivered exactly once);
//! messages past the TTL are acknowledged for an idle subscription; retention deletes only
//! ledgers every subscription has consumed; delayed messages on a Shared subscription are
//! delivered once each, never early, even when the delayed index is over its memory budget.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{start_broker_on, Client, TestBroker};
use magnetar_bookie::mem::MemLedgers;
use magnetar_broker::config::BrokerConfig;
use magnetar_client::wire::commands;
use magnetar_client::wire::proto::{base_command::Type, command_ack::AckType, MessageMetadata};
use magnetar_client::wire::Outbound;
use magnetar_metadata::{MemStore, MetadataStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

async fn producer(c: &mut Client, topic: &str, name: &str) -> anyhow::Result<i64> {
    let rid = c.request_id();
    c.send(commands::producer(topic, 1, rid, Some(name), 0))
        .await?;
    let r = c.expect(Type::ProducerSuccess).await?;
    Ok(r.producer_success
        .expect("body")
        .last_sequence_id
        .unwrap_or(-1))
}

/// Publishes `seq` (the test client names every message's producer "p") and returns the
/// receipt's ledger id (`u64::MAX` for a duplicate).
async fn publish(c: &mut Client, seq: u64) -> anyhow::Result<u64> {
    c.publish(1, seq, format!("m{seq}").as_bytes()).await?;
    let r = c.expect(Type::SendReceipt).await?;
    Ok(r.send_receipt.expect("r").message_id.expect("id").ledger_id)
}

async fn run_restart(graceful: bool) -> anyhow::Result<()> {
    let meta = MemStore::new();
    let ledgers = MemLedgers::new();
    let topic = "persistent://public/default/dedup-restart";
    {
        let mut b = start_broker_on(meta.clone(), ledgers.clone()).await;
        let mut c = Client::connect(b.pulsar, 20).await?;
        c.subscribe(topic, "s", 1, 7).await?;
        assert_eq!(producer(&mut c, topic, "p").await?, -1);
        for seq in 0..5 {
            assert_ne!(publish(&mut c, seq).await?, u64::MAX);
        }
        assert_eq!(publish(&mut c, 4).await?, u64::MAX, "in-session duplicate");
        if graceful {
            b.shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(15), &mut b.task).await??;
        } else {
            b.task.abort();
        }
    }
    let b = start_broker_on(meta, ledgers).await;
    let mut c = Client::connect(b.pulsar, 20).await?;
    assert_eq!(producer(&mut c, topic, "p").await?, 4);
    for seq in 2..5 {
        assert_eq!(
            publish(&mut c, seq).await?,
            u64::MAX,
            "seq {seq} is a duplicate"
        );
    }
    assert_ne!(publish(&mut c, 5).await?, u64::MAX);
    c.subscribe(topic, "s", 1, 2).await?;
    c.send(commands::flow(2, 100)).await?;
    for _ in 0..6 {
        c.expect(Type::Message).await?;
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), c.expect(Type::Message)).await;
    assert!(extra.is_err(), "a duplicate was stored: {extra:?}");
    Ok(())
}

#[tokio::test]
async fn dedup_state_survives_graceful_restart() -> anyhow::Result<()> {
    run_restart(true).await
}

#[tokio::test]
async fn dedup_state_survives_abrupt_owner_change() -> anyhow::Result<()> {
    run_restart(false).await
}

/// A broker with short lifecycle intervals and ledgers of 5 entries.
async fn start_lifecycle_broker(meta: Arc<MemStore>) -> TestBroker {
    start_lifecycle_broker_with(meta, |_| {}).await
}

async fn start_lifecycle_broker_with(
    meta: Arc<MemStore>,
    tune: impl FnOnce(&mut BrokerConfig),
) -> TestBroker {
    let pl = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hl = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (pulsar, http) = (
        pl.local_addr().expect("addr"),
        hl.local_addr().expect("addr"),
    );
    let mut config = BrokerConfig {
        max_entries_per_ledger: 5,
        ..BrokerConfig::default()
    };
    config.lifecycle.check_interval_ms = 50;
    config.lifecycle.message_expiry_check_interval_secs = 0;
    config.lifecycle.min_ledger_rollover_secs = 0;
    // Tiny delayed index: only the delayed-delivery test here sends delayed messages.
    config.lifecycle.delayed_index_max_entries = 3;
    tune(&mut config);
    let shutdown = CancellationToken::new();
    let sd = shutdown.clone();
    let ledgers = MemLedgers::new();
    let task = tokio::spawn(async move {
        let res = magnetar_broker::service::run(config, pl, hl, meta, ledgers, sd).await;
        if let Err(e) = res {
            panic!("broker failed: {e}");
        }
    });
    TestBroker {
        pulsar,
        http,
        shutdown,
        task,
    }
}

/// Polls `f` every 20 ms for up to 10 s.
async fn eventually<F, Fut>(what: &str, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    for _ in 0..500 {
        if f().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

async fn json(meta: &MemStore, key: &str) -> anyhow::Result<serde_json::Value> {
    let v = meta
        .get(key)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{key} missing"))?;
    Ok(serde_json::from_slice(&v.value)?)
}

async fn set_ns_policy(meta: &MemStore, change: impl Fn(&mut magnetar_broker::policies::Policies)) {
    magnetar_broker::policies::update_namespace_policies(meta, "public", "default", change)
        .await
        .expect("update policies")
        .expect("namespace exists");
}

#[tokio::test]
async fn messages_past_ttl_are_acknowledged_for_idle_subscription() -> anyhow::Result<()> {
    let meta = MemStore::new();
    let b = start_lifecycle_broker(meta.clone()).await;
    let topic = "persistent://public/default/ttl";
    let mut c = Client::connect(b.pulsar, 20).await?;
    c.subscribe(topic, "idle", 1, 1).await?;
    c.create_producer(topic, 1).await?;
    // The test client stamps publish times in 2023: long past a 1 s TTL.
    let mut last = None;
    for seq in 0..7 {
        c.publish(1, seq, b"old").await?;
        let r = c.expect(Type::SendReceipt).await?;
        last = r.send_receipt.and_then(|r| r.message_id);
    }
    let last = last.expect("receipt");
    set_ns_policy(&meta, |p| p.message_ttl_in_seconds = Some(1)).await;
    let key = "/cursors/public/default/persistent/ttl/idle";
    eventually("the cursor to pass the expired messages", || async {
        let md = &json(&meta, key).await?["mark_delete"];
        Ok(md["ledger"] == last.ledger_id && md["entry"] == last.entry_id)
    })
    .await
}

#[tokio::test]
async fn retention_trims_only_ledgers_every_subscription_consumed() -> anyhow::Result<()> {
    let meta = MemStore::new();
    let b = start_lifecycle_broker(meta.clone()).await;
    let topic = "persistent://public/default/retention";
    let mut c = Client::connect(b.pulsar, 20).await?;
    set_ns_policy(&meta, |p| {
        p.retention_policies = Some(magnetar_broker::policies::RetentionPolicies::default())
    })
    .await;
    c.subscribe(topic, "fast", 1, 1).await?;
    c.subscribe(topic, "slow", 1, 2).await?;
    c.create_producer(topic, 1).await?;
    let mut ids = Vec::new();
    for seq in 0..20 {
        c.publish(1, seq, b"r").await?;
        let r = c.expect(Type::SendReceipt).await?;
        ids.push(r.send_receipt.and_then(|r| r.message_id).expect("id"));
    }
    let ml_key = "/managed-ledgers/public/default/persistent/retention";
    let ledgers = |v: serde_json::Value| v["ledgers"].as_array().map_or(0, Vec::len);
    let before = ledgers(json(&meta, ml_key).await?);
    assert!(before >= 4, "expected small ledgers, got {before}");
    let last = ids.last().cloned().expect("ids");
    c.send(commands::ack(1, AckType::Cumulative, vec![last.clone()]))
        .await?;
    // "slow" consumed nothing: over several trim rounds every ledger stays.
    let watch_until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < watch_until {
        assert!(ledgers(json(&meta, ml_key).await?) >= before);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.send(commands::ack(2, AckType::Cumulative, vec![last]))
        .await?;
    eventually("consumed ledgers to be trimmed", || async {
        Ok(ledgers(json(&meta, ml_key).await?) <= 2)
    })
    .await
}

#[tokio::test]
async fn without_a_retention_policy_consumed_ledgers_are_deleted_at_the_retention_check(
) -> anyhow::Result<()> {
    let meta = MemStore::new();
    let b = start_lifecycle_broker_with(meta.clone(), |c| {
        c.lifecycle.retention_check_interval_secs = 1;
    })
    .await;
    let topic = "persistent://public/default/default-retention";
    let mut c = Client::connect(b.pulsar, 20).await?;
    c.subscribe(topic, "only", 1, 1).await?;
    c.create_producer(topic, 1).await?;
    let mut ids = Vec::new();
    for seq in 0..20 {
        c.publish(1, seq, b"d").await?;
        let r = c.expect(Type::SendReceipt).await?;
        ids.push(r.send_receipt.and_then(|r| r.message_id).expect("id"));
    }
    let ml_key = "/managed-ledgers/public/default/persistent/default-retention";
    let ledgers = |v: serde_json::Value| v["ledgers"].as_array().map_or(0, Vec::len);
    let before = ledgers(json(&meta, ml_key).await?);
    assert!(before >= 4, "expected small ledgers, got {before}");
    let last = ids.last().cloned().expect("ids");
    c.send(commands::ack(1, AckType::Cumulative, vec![last]))
        .await?;
    eventually(
        "consumed ledgers to be deleted by the default retention",
        || async { Ok(ledgers(json(&meta, ml_key).await?) <= 2) },
    )
    .await
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[tokio::test]
async fn delayed_messages_over_index_budget_arrive_once_and_never_early() -> anyhow::Result<()> {
    let meta = MemStore::new();
    let b = start_lifecycle_broker(meta.clone()).await;
    let topic = "persistent://public/default/delayed-budget";
    let mut c = Client::connect(b.pulsar, 20).await?;
    c.subscribe(topic, "shared", 1, 1).await?;
    c.create_producer(topic, 1).await?;
    let mut due = std::collections::HashMap::new();
    let start = now_ms();
    for seq in 0..12u64 {
        // Later messages are due earlier, so the index keeps evicting and rescanning.
        let at = start + 300 + (11 - seq) * 60;
        let md = MessageMetadata {
            producer_name: "p".into(),
            sequence_id: seq,
            publish_time: start,
            deliver_at_time: Some(at as i64),
            ..Default::default()
        };
        c.send_frame(Outbound::with_payload(commands::send(1, seq, 1), &md, b"d"))
            .await?;
        let r = c.expect(Type::SendReceipt).await?;
        let id = r.send_receipt.and_then(|r| r.message_id).expect("id");
        due.insert((id.ledger_id, id.entry_id), at);
    }
    c.send(commands::flow(1, 100)).await?;
    let mut seen = std::collections::HashSet::new();
    while seen.len() < due.len() {
        let m = c.expect(Type::Message).await?.message.expect("msg");
        let id = m.message_id;
        let key = (id.ledger_id, id.entry_id);
        let at = due[&key];
        assert!(now_ms() + 5 >= at, "message {key:?} delivered before {at}");
        assert!(seen.insert(key), "message {key:?} delivered twice");
        c.send(commands::ack(1, AckType::Individual, vec![id]))
            .await?;
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), c.expect(Type::Message)).await;
    assert!(extra.is_err(), "unexpected extra delivery: {extra:?}");
    Ok(())
}
