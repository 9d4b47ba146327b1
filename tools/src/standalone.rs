//! `magnetar standalone`: one metadata node, N bookies and one broker in one process.
//!
//! Internal services listen on ephemeral loopback ports, so several standalones run side by
//! side; everything is stored under `--data-dir`. Shutdown order: broker (drains clients,
//! flushes cursors, closes ledgers), then bookies (sync), then the metadata node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use magnetar_bookie::{BookKeeper, LedgerConfig};
use magnetar_metadata::{GrpcMetadataClient, MetadataStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Arguments of `magnetar standalone`.
#[derive(clap::Args, Debug, Clone)]
pub struct StandaloneArgs {
    /// Where all data lives.
    #[arg(long, env = "MAGNETAR_DATA_DIR", default_value = "./data/standalone")]
    pub data_dir: PathBuf,
    /// Pulsar binary protocol port.
    #[arg(long, env = "MAGNETAR_PORT", default_value_t = 6650)]
    pub port: u16,
    /// HTTP port (health, admin REST, metrics).
    #[arg(long, env = "MAGNETAR_HTTP_PORT", default_value_t = 8080)]
    pub http_port: u16,
    /// Address to bind the public ports to.
    #[arg(long, env = "MAGNETAR_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: String,
    /// Host name clients are told to connect to (lookup answers).
    #[arg(long, env = "MAGNETAR_ADVERTISED_ADDRESS", default_value = "127.0.0.1")]
    pub advertised_address: String,
    /// Number of bookies (1: E=Qw=Qa=1; 2: 2/2/2; 3 or more: 3/2/2).
    #[arg(long, env = "MAGNETAR_BOOKIES", default_value_t = 1)]
    pub bookies: usize,
    /// Cluster name.
    #[arg(long, env = "MAGNETAR_CLUSTER_NAME", default_value = "standalone")]
    pub cluster_name: String,
}

/// Ledger replication for `n` bookies.
pub fn ledger_config_for(n: usize) -> LedgerConfig {
    match n {
        0 | 1 => LedgerConfig::SINGLE,
        2 => LedgerConfig {
            ensemble: 2,
            write_quorum: 2,
            ack_quorum: 2,
        },
        _ => LedgerConfig {
            ensemble: 3,
            write_quorum: 2,
            ack_quorum: 2,
        },
    }
}

/// Runs a standalone until `shutdown` fires.
pub async fn run(args: StandaloneArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    if args.bookies == 0 {
        bail!("--bookies must be at least 1");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    // Bind the public ports first, so a port conflict fails fast and clearly.
    let pulsar = TcpListener::bind((args.bind_address.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.bind_address, args.port))?;
    let http = TcpListener::bind((args.bind_address.as_str(), args.http_port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.bind_address, args.http_port))?;
    let pulsar_port = pulsar.local_addr()?.port();
    let http_port = http.local_addr()?.port();

    let meta_cfg =
        magnetar_metadata::MetadataConfig::new(1, args.data_dir.join("metadata"), BTreeMap::new());
    let meta_listener = TcpListener::bind("127.0.0.1:0").await?;
    let meta_node = magnetar_metadata::server::start_on(meta_cfg, meta_listener)
        .context("cannot start the metadata node")?;
    let metadata: Arc<dyn MetadataStore> =
        Arc::new(GrpcMetadataClient::new(vec![meta_node.addr.to_string()]));
    wait_for_metadata(metadata.as_ref()).await?;
    tracing::info!(addr = %meta_node.addr, "metadata node ready");

    let bookie_stop = CancellationToken::new();
    let mut bookies = Vec::new();
    for i in 0..args.bookies {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut cfg =
            magnetar_bookie::BookieConfig::with_data_dir(args.data_dir.join(format!("bookie-{i}")));
        cfg.bookie_id = Some(format!("{}-bookie-{i}", args.cluster_name));
        let bookie = magnetar_bookie::server::Bookie::start(
            cfg,
            listener,
            metadata.clone(),
            bookie_stop.clone(),
        )
        .await
        .with_context(|| format!("cannot start bookie {i}"))?;
        tracing::info!(id = bookie.id(), addr = bookie.address(), "bookie ready");
        bookies.push(bookie);
    }
    let ledgers = BookKeeper::new(metadata.clone());

    let mut config = magnetar_broker::BrokerConfig {
        cluster_name: args.cluster_name.clone(),
        advertised_address: args.advertised_address.clone(),
        broker_port: pulsar_port,
        web_port: http_port,
        ledger: ledger_config_for(args.bookies),
        ..Default::default()
    };
    magnetar_broker::lifecycle::apply_env_overrides(&mut config);
    tracing::info!(
        port = pulsar_port,
        http_port,
        data_dir = %args.data_dir.display(),
        "magnetar standalone starting"
    );
    let broker_result =
        magnetar_broker::run(config, pulsar, http, metadata.clone(), ledgers, shutdown).await;

    bookie_stop.cancel();
    for b in bookies {
        if let Err(e) = b.wait().await {
            tracing::warn!(error = %e, "bookie stopped with an error");
        }
    }
    if let Err(e) = meta_node.shutdown().await {
        tracing::warn!(error = %e, "metadata node stopped with an error");
    }
    broker_result.context("broker failed")?;
    tracing::info!("magnetar standalone stopped");
    Ok(())
}

async fn wait_for_metadata(store: &dyn MetadataStore) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match store.get("/clusters").await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e).context("metadata node did not become ready within 30 s")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
