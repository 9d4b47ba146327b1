//! Produces N messages to a topic and consumes them back; prints what happened.
//! `cargo run -p magnetar-client --example roundtrip -- pulsar://127.0.0.1:6650 my-topic 100`

use std::time::Duration;

use magnetar_client::{BatchingPolicy, CompressionType, InitialPosition, PulsarClient, SubType};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or("pulsar://127.0.0.1:6650".into());
    let topic = args.get(2).cloned().unwrap_or("roundtrip".into());
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
    let client = PulsarClient::new(url)?;
    let consumer = client
        .consumer()
        .topic(&topic)
        .subscription("roundtrip-sub")
        .sub_type(SubType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await?;
    let producer = client
        .producer()
        .topic(&topic)
        .batching(BatchingPolicy::default())
        .compression(CompressionType::Lz4)
        .create()
        .await?;
    let mut futs = Vec::new();
    for i in 0..n {
        futs.push(producer.send(format!("msg-{i}")).await?);
    }
    for f in futs {
        f.await?;
    }
    println!("produced {n}");
    let mut got = 0;
    while got < n {
        match consumer.receive_timeout(Duration::from_secs(10)).await? {
            Some(m) => {
                consumer.ack(&m)?;
                got += 1;
            }
            None => break,
        }
    }
    println!("consumed {got}");
    producer.close().await?;
    consumer.close().await?;
    client.close().await;
    anyhow::ensure!(got == n, "missing messages");
    Ok(())
}
