//! A broker over in-memory metadata and ledgers, taking `magnetar standalone`'s flags, for
//! running the Python compatibility suite against the broker alone (nothing persists).
//!
//! `cargo run -p magnetar-broker --example mem_standalone -- standalone --port 6650 --http-port 8080`

use std::sync::Arc;

use magnetar_bookie::mem::MemLedgers;
use magnetar_broker::BrokerConfig;
use magnetar_metadata::MemStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let port: u16 = flag("--port").map_or(Ok(6650), |p| p.parse())?;
    let http_port: u16 = flag("--http-port").map_or(Ok(8080), |p| p.parse())?;
    let mut config = BrokerConfig::default();
    if let Some(c) = flag("--cluster-name") {
        config.cluster_name = c;
    }
    let pulsar = TcpListener::bind(("127.0.0.1", port)).await?;
    let http = TcpListener::bind(("127.0.0.1", http_port)).await?;
    let shutdown = CancellationToken::new();
    let sd = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        sd.cancel();
    });
    let ledgers: Arc<MemLedgers> = MemLedgers::new();
    magnetar_broker::run(config, pulsar, http, MemStore::new(), ledgers, shutdown).await?;
    Ok(())
}
