//! Produces and consumes continuously for N seconds (survive broker restarts meanwhile),
//! then reports acknowledged sends, unique messages received, duplicates and losses.
//! `cargo run -p magnetar-client --example resilience -- pulsar://127.0.0.1:6650 topic 30`

use std::collections::BTreeSet;
use std::time::Duration;

use magnetar_client::{InitialPosition, PulsarClient, SubType};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let a: Vec<String> = std::env::args().collect();
    let url = a
        .get(1)
        .cloned()
        .unwrap_or("pulsar://127.0.0.1:6650".into());
    let topic = a.get(2).cloned().unwrap_or("resilience".into());
    let secs: u64 = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(30);
    let client = PulsarClient::builder(url)
        .operation_timeout(Duration::from_secs(5))
        .build()?;
    let consumer = client
        .consumer()
        .topic(&topic)
        .subscription("res")
        .sub_type(SubType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await?;
    let producer = client
        .producer()
        .topic(&topic)
        .send_timeout(Duration::from_secs(60))
        .create()
        .await?;
    let recv = tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        let mut dups = 0u64;
        let mut idle = 0;
        loop {
            match consumer.receive_timeout(Duration::from_secs(1)).await {
                Ok(Some(m)) => {
                    idle = 0;
                    let n: u64 = String::from_utf8_lossy(&m.payload)
                        .parse()
                        .unwrap_or(u64::MAX);
                    if !seen.insert(n) {
                        dups += 1;
                    }
                    let _ = consumer.ack(&m);
                }
                Ok(None) => {
                    idle += 1;
                    if idle > 15 {
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("receive error: {e}");
                    break;
                }
            }
            if seen.len() as u64 == u64::MAX {
                break;
            }
        }
        (seen, dups)
    });
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut acked = BTreeSet::new();
    let mut pending = std::collections::VecDeque::new();
    let mut i = 0u64;
    let mut failed = 0u64;
    while tokio::time::Instant::now() < end {
        pending.push_back((i, producer.send(i.to_string()).await?));
        i += 1;
        while pending.len() > 100 {
            let (n, f) = pending.pop_front().expect("non-empty");
            match f.await {
                Ok(_) => {
                    acked.insert(n);
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("send {n} failed: {e}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (n, f) in pending {
        match f.await {
            Ok(_) => {
                acked.insert(n);
            }
            Err(_) => failed += 1,
        }
    }
    println!("sent {i}, acked {}, failed {failed}", acked.len());
    // Wait until everything acked was received (bounded).
    let (seen, dups) = tokio::time::timeout(Duration::from_secs(secs + 90), recv).await??;
    let lost: Vec<_> = acked.difference(&seen).take(10).collect();
    println!(
        "received {} unique, {dups} duplicates, lost {} (first: {lost:?})",
        seen.len(),
        acked.difference(&seen).count()
    );
    Ok(())
}
