//! `magnetar bookie` (run one bookie, plus the auto-recovery worker) and
//! `magnetar-admin bookies list|under-replicated`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use magnetar_bookie::autorecovery::{self, AutoRecoveryConfig};
use magnetar_bookie::registration::list_bookies;
use magnetar_bookie::BookieConfig;
use magnetar_metadata::MetadataStore;
use tokio_util::sync::CancellationToken;

/// Arguments of `magnetar bookie`.
#[derive(Debug, Clone, clap::Args)]
pub struct BookieArgs {
    /// Address to listen on for the bookie gRPC API.
    #[arg(long, env = "MAGNETAR_BOOKIE_LISTEN", default_value = "127.0.0.1:3181")]
    pub listen: SocketAddr,
    /// Address clients should dial, if not the listen address.
    #[arg(long, env = "MAGNETAR_BOOKIE_ADVERTISED_ADDRESS")]
    pub advertised_address: Option<String>,
    /// Data directory (RocksDB and the persisted bookie id).
    #[arg(
        long,
        env = "MAGNETAR_BOOKIE_DATA_DIR",
        default_value = "./data/bookie"
    )]
    pub data_dir: PathBuf,
    /// Metadata service addresses (comma-separated host:port).
    #[arg(long, env = "MAGNETAR_METADATA", default_value = "127.0.0.1:7000")]
    pub metadata: String,
    /// Stable bookie id (default: persisted in the data dir, derived from it on first start).
    #[arg(long, env = "MAGNETAR_BOOKIE_ID")]
    pub bookie_id: Option<String>,
    /// Disk usage fraction at which the bookie turns read-only.
    #[arg(
        long,
        env = "MAGNETAR_BOOKIE_READONLY_THRESHOLD",
        default_value_t = 0.95
    )]
    pub readonly_threshold: f64,
    /// Disk usage fraction below which it turns writable again.
    #[arg(
        long,
        env = "MAGNETAR_BOOKIE_WRITABLE_THRESHOLD",
        default_value_t = 0.90
    )]
    pub writable_threshold: f64,
    /// Registration session TTL in milliseconds.
    #[arg(long, env = "MAGNETAR_BOOKIE_SESSION_TTL_MS", default_value_t = 10_000)]
    pub session_ttl_ms: u64,
    /// Also run the auto-recovery worker (one cluster-wide holder of its lock works at a time).
    #[arg(long, env = "MAGNETAR_BOOKIE_AUTO_RECOVERY", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_recovery: bool,
    /// Seconds a bookie must be gone before its fragments are re-replicated.
    #[arg(
        long,
        env = "MAGNETAR_BOOKIE_RECOVERY_GRACE_SECS",
        default_value_t = 30
    )]
    pub recovery_grace_secs: u64,
    /// Serve Prometheus `/metrics` (and `/health`) over HTTP on this address.
    #[arg(long, env = "MAGNETAR_BOOKIE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl BookieArgs {
    /// The bookie server configuration these arguments describe.
    pub fn config(&self) -> BookieConfig {
        BookieConfig {
            bookie_id: self.bookie_id.clone(),
            advertised_address: self.advertised_address.clone(),
            readonly_threshold: self.readonly_threshold,
            writable_threshold: self.writable_threshold,
            session_ttl_ms: self.session_ttl_ms,
            ..BookieConfig::with_data_dir(&self.data_dir)
        }
    }
}

/// Runs one bookie (and, if enabled, the auto-recovery worker) until `shutdown` fires.
pub async fn run(
    args: BookieArgs,
    metadata: Arc<dyn MetadataStore>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = args.config();
    config.validate().context("bookie configuration")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    if let Some(addr) = args.metrics_listen {
        crate::common::serve_metrics(addr, shutdown.clone()).await?;
    }
    let recovery = args.auto_recovery.then(|| {
        tokio::spawn(autorecovery::run(
            metadata.clone(),
            AutoRecoveryConfig {
                grace: Duration::from_secs(args.recovery_grace_secs),
                ..Default::default()
            },
            shutdown.clone(),
        ))
    });
    let res = magnetar_bookie::run(config, listener, metadata, shutdown.clone())
        .await
        .context("bookie");
    shutdown.cancel();
    if let Some(task) = recovery {
        match task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "auto-recovery worker failed"),
            Err(e) => tracing::warn!(error = %e, "auto-recovery worker panicked"),
            Ok(Ok(())) => {}
        }
    }
    res
}

/// Output format of admin listings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable table.
    #[default]
    Text,
    /// JSON.
    Json,
}

/// Arguments of `magnetar-admin bookies list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `magnetar-admin bookies list`: one line (or JSON object) per registered bookie.
pub async fn list(args: ListArgs, metadata: Arc<dyn MetadataStore>) -> anyhow::Result<()> {
    println!("{}", list_output(args.output, metadata).await?);
    Ok(())
}

/// The text `bookies list` prints (a JSON array of {id, address, free_bytes, state}).
pub async fn list_output(
    output: Output,
    metadata: Arc<dyn MetadataStore>,
) -> anyhow::Result<String> {
    let bookies = list_bookies(metadata.as_ref())
        .await
        .context("listing bookies")?;
    Ok(match output {
        Output::Json => {
            let arr: Vec<serde_json::Value> = bookies
                .iter()
                .map(|(id, r)| {
                    serde_json::json!({
                        "id": id,
                        "address": r.address,
                        "free_bytes": r.free_bytes,
                        "state": r.state,
                    })
                })
                .collect();
            serde_json::to_string_pretty(&arr)?
        }
        Output::Text => {
            let mut s = format!(
                "{:<32} {:<22} {:>16} {}",
                "ID", "ADDRESS", "FREE_BYTES", "STATE"
            );
            for (id, r) in &bookies {
                let state = serde_json::to_value(r.state)?;
                s.push_str(&format!(
                    "\n{:<32} {:<22} {:>16} {}",
                    id,
                    r.address,
                    r.free_bytes,
                    state.as_str().unwrap_or("?")
                ));
            }
            s
        }
    })
}

/// `magnetar-admin bookies under-replicated`: ids of ledgers with a copy on a missing bookie.
pub async fn under_replicated(
    args: ListArgs,
    metadata: Arc<dyn MetadataStore>,
) -> anyhow::Result<()> {
    let ids = magnetar_bookie::under_replicated(&metadata)
        .await
        .context("scanning ledgers")?;
    match args.output {
        Output::Json => {
            let v: Vec<u64> = ids.iter().map(|l| l.0).collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        Output::Text => {
            for id in ids {
                println!("{id}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnetar_bookie::{BookieRegistration, BookieState};
    use magnetar_metadata::{Expect, MemStore};

    #[tokio::test]
    async fn bookies_list_json_has_one_object_per_bookie() {
        let md: Arc<dyn MetadataStore> = MemStore::new();
        for (id, state) in [("b1", BookieState::Writable), ("b2", BookieState::Readonly)] {
            let reg = BookieRegistration {
                address: format!("127.0.0.1:{}", if id == "b1" { 1 } else { 2 }),
                free_bytes: 42,
                state,
            };
            md.put(
                &format!("/bookies/{id}"),
                serde_json::to_vec(&reg).expect("json").into(),
                Expect::Any,
                None,
            )
            .await
            .expect("put");
        }
        let out = list_output(Output::Json, md.clone()).await.expect("list");
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid json");
        let arr = v.as_array().expect("array");
        assert_eq!(arr.len(), 2);
        assert_eq!(arr[0]["id"], "b1");
        assert_eq!(arr[1]["state"], "readonly");
        assert_eq!(arr[0]["free_bytes"], 42);
        let text = list_output(Output::Text, md).await.expect("list");
        assert!(text.contains("b2") && text.contains("readonly"));
    }
}
