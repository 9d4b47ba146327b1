//! Deduplication survives broker restarts, graceful or not: PRODUCER_SUCCESS carries the
//! producer's last stored sequence id, a resent sequence id is acknowledged with -1:-1 and
//! never stored, and every message is delivered exactly once.

mod common;

use std::time::Duration;

use common::{start_broker_on, Client};
use magnetar_bookie::mem::MemLedgers;
use magnetar_client::wire::commands;
use magnetar_client::wire::proto::base_command::Type;
use magnetar_metadata::MemStore;

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
