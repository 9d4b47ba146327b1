//! `magnetar broker`: one broker process of a cluster. Settings come from (highest first)
//! command-line flags, `MAGNETAR_*` environment variables, the TOML file given with
//! `--config`, then defaults. The TOML file holds the process settings at the top level and
//! every [`magnetar_broker::BrokerConfig`] field under `[broker]` (for example
//! `[broker.ledger]` and `[broker.cluster]`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use magnetar_bookie::{BookKeeper, LedgerConfig};
use magnetar_broker::BrokerConfig;
use magnetar_metadata::{GrpcMetadataClient, MetadataStore};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::split_addrs;

/// Arguments of `magnetar broker`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BrokerArgs {
    /// TOML config file (flags and environment variables override it).
    #[arg(long, env = "MAGNETAR_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Pulsar binary protocol address to bind (default 0.0.0.0:6650).
    #[arg(long, env = "MAGNETAR_BROKER_LISTEN")]
    pub listen: Option<String>,
    /// HTTP address to bind: admin REST, lookup, metrics (default 0.0.0.0:8080).
    #[arg(long, env = "MAGNETAR_BROKER_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Host name clients are given to reach this broker (LOOKUP answers).
    #[arg(long, env = "MAGNETAR_ADVERTISED_ADDRESS")]
    pub advertised_address: Option<String>,
    /// Metadata service addresses, comma separated (`host:port,host:port`).
    #[arg(long, env = "MAGNETAR_METADATA")]
    pub metadata: Option<String>,
    /// Cluster name.
    #[arg(long, env = "MAGNETAR_CLUSTER_NAME")]
    pub cluster: Option<String>,
    /// Metadata session TTL in milliseconds: how long a dead broker keeps its bundles.
    #[arg(long, env = "MAGNETAR_SESSION_TTL_MS")]
    pub session_ttl_ms: Option<u64>,
    /// Bundles per namespace when a namespace is first used.
    #[arg(long, env = "MAGNETAR_DEFAULT_BUNDLES")]
    pub default_bundles: Option<usize>,
    /// Load report interval in milliseconds.
    #[arg(long, env = "MAGNETAR_LOAD_REPORT_INTERVAL_MS")]
    pub load_report_interval_ms: Option<u64>,
    /// Ledger replication `E,Qw,Qa` (default 3,2,2).
    #[arg(long, env = "MAGNETAR_LEDGER_REPLICATION")]
    pub replication: Option<String>,
    /// Producer deduplication (true/false).
    #[arg(long, env = "MAGNETAR_DEDUPLICATION")]
    pub deduplication: Option<bool>,
}

/// The process settings of a broker after merging file, environment and flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BrokerProcessConfig {
    /// Pulsar protocol bind address.
    pub listen: String,
    /// HTTP bind address.
    pub http_listen: String,
    /// Metadata service addresses.
    pub metadata: Vec<String>,
    /// The broker itself.
    pub broker: BrokerConfig,
}

impl Default for BrokerProcessConfig {
    fn default() -> Self {
        let defaults = BrokerConfig::default();
        let broker = BrokerConfig {
            cluster: magnetar_broker::cluster::ClusterConfig {
                enabled: true,
                ..defaults.cluster.clone()
            },
            ledger: LedgerConfig {
                ensemble: 3,
                write_quorum: 2,
                ack_quorum: 2,
            },
            ..defaults
        };
        BrokerProcessConfig {
            listen: "0.0.0.0:6650".into(),
            http_listen: "0.0.0.0:8080".into(),
            metadata: vec!["127.0.0.1:7000".into()],
            broker,
        }
    }
}

/// Deep-merges `over` into `base` (tables merge key by key; other values replace).
pub fn merge_toml(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_toml(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Keys of `file` (dotted paths) that `known` does not have.
fn unknown_keys(known: &toml::Value, file: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    let (Some(known), Some(file)) = (known.as_table(), file.as_table()) else {
        return;
    };
    for (k, v) in file {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match known.get(k) {
            None => out.push(path),
            Some(kv) => unknown_keys(kv, v, &path, out),
        }
    }
}

/// `defaults` overlaid with the TOML file at `path` (if any); a key the defaults do not
/// have is an error, so a misspelled setting is not silently ignored.
pub fn load_toml<T: Serialize + for<'de> Deserialize<'de>>(
    defaults: &T,
    path: Option<&std::path::Path>,
) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(serde_json::from_value(serde_json::to_value(defaults)?)?);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let file: toml::Value =
        toml::from_str(&text).with_context(|| format!("bad TOML in {}", path.display()))?;
    let mut merged = toml::Value::try_from(defaults).context("encode defaults")?;
    let mut unknown = Vec::new();
    unknown_keys(&merged, &file, "", &mut unknown);
    if !unknown.is_empty() {
        bail!(
            "unknown setting(s) in {}: {} (misspelled?)",
            path.display(),
            unknown.join(", ")
        );
    }
    merge_toml(&mut merged, file);
    merged
        .try_into()
        .with_context(|| format!("bad setting in {}", path.display()))
}

fn parse_replication(s: &str) -> anyhow::Result<LedgerConfig> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--replication: expected E,Qw,Qa, got {s:?}"))?;
    let [e, w, a] = v[..] else {
        bail!("--replication: expected E,Qw,Qa, got {s:?}");
    };
    Ok(LedgerConfig {
        ensemble: e,
        write_quorum: w,
        ack_quorum: a,
    })
}

impl BrokerArgs {
    /// The effective configuration.
    pub fn resolve(&self) -> anyhow::Result<BrokerProcessConfig> {
        let mut c = load_toml(&BrokerProcessConfig::default(), self.config.as_deref())?;
        if let Some(v) = &self.listen {
            c.listen = v.clone();
        }
        if let Some(v) = &self.http_listen {
            c.http_listen = v.clone();
        }
        if let Some(v) = &self.metadata {
            c.metadata = split_addrs(v);
        }
        if let Some(v) = &self.advertised_address {
            c.broker.advertised_address = v.clone();
        }
        if let Some(v) = &self.cluster {
            c.broker.cluster_name = v.clone();
        }
        if let Some(v) = self.session_ttl_ms {
            c.broker.cluster.session_ttl_ms = v;
        }
        if let Some(v) = self.default_bundles {
            c.broker.cluster.default_bundles = v;
        }
        if let Some(v) = self.load_report_interval_ms {
            c.broker.cluster.load_report_interval_ms = v;
        }
        if let Some(v) = &self.replication {
            c.broker.ledger = parse_replication(v)?;
        }
        if let Some(v) = self.deduplication {
            c.broker.deduplication_enabled = v;
        }
        if c.metadata.is_empty() {
            bail!("metadata: at least one metadata address is needed");
        }
        if c.broker.cluster.default_bundles == 0 {
            bail!("broker.cluster.default_bundles must be at least 1");
        }
        c.broker
            .validate()
            .context("invalid broker configuration")?;
        Ok(c)
    }
}

/// Waits until the metadata service answers (a leader is elected).
pub async fn wait_for_metadata(store: &dyn MetadataStore, within: Duration) -> anyhow::Result<()> {
    let start = tokio::time::Instant::now();
    let deadline = start + within;
    let mut next_note = start + Duration::from_secs(5);
    loop {
        match store.get("/clusters").await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e).context("metadata service did not answer in time")
            }
            Err(e) => {
                if tokio::time::Instant::now() >= next_note {
                    tracing::warn!(
                        error = %e,
                        waited_secs = start.elapsed().as_secs(),
                        limit_secs = within.as_secs(),
                        "still waiting for the metadata service"
                    );
                    next_note += Duration::from_secs(5);
                }
                tokio::time::sleep(Duration::from_millis(100)).await
            }
        }
    }
}

/// Runs one broker until `shutdown` fires.
pub async fn run(args: BrokerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    let pulsar = TcpListener::bind(cfg.listen.as_str())
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let http = TcpListener::bind(cfg.http_listen.as_str())
        .await
        .with_context(|| format!("cannot listen on {}", cfg.http_listen))?;
    let metadata: Arc<dyn MetadataStore> = Arc::new(GrpcMetadataClient::new(cfg.metadata.clone()));
    tracing::info!(metadata = ?cfg.metadata, "waiting for the metadata service");
    tokio::select! {
        r = wait_for_metadata(metadata.as_ref(), Duration::from_secs(60)) => r?,
        _ = shutdown.cancelled() => return Ok(()),
    }
    let ledgers = BookKeeper::new(metadata.clone());
    tracing::info!(
        listen = %cfg.listen,
        http_listen = %cfg.http_listen,
        cluster = %cfg.broker.cluster_name,
        advertised = %cfg.broker.advertised_address,
        "magnetar broker starting"
    );
    magnetar_broker::run(cfg.broker, pulsar, http, metadata, ledgers, shutdown)
        .await
        .context("broker failed")?;
    tracing::info!("magnetar broker stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags_override_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("broker.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7650\"\nmetadata = [\"a:1\", \"b:2\"]\n[broker]\ncluster_name = \"c1\"\n[broker.cluster]\nsession_ttl_ms = 3000\n",
        )
        .expect("write");
        let args = BrokerArgs {
            config: Some(path),
            cluster: Some("c2".into()),
            replication: Some("2,2,1".into()),
            ..Default::default()
        };
        let c = args.resolve().expect("resolve");
        assert_eq!(c.listen, "127.0.0.1:7650");
        assert_eq!(c.metadata, vec!["a:1", "b:2"]);
        assert_eq!(c.broker.cluster_name, "c2");
        assert_eq!(c.broker.cluster.session_ttl_ms, 3000);
        assert!(c.broker.cluster.enabled);
        assert_eq!(c.broker.ledger.ack_quorum, 1);
        assert_eq!(c.http_listen, "0.0.0.0:8080");
    }

    fn resolve_file(text: &str) -> anyhow::Result<BrokerProcessConfig> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("broker.toml");
        std::fs::write(&path, text).expect("write");
        BrokerArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve()
    }

    #[test]
    fn the_documented_example_file_parses() {
        let doc = include_str!("../../docs/operations.md");
        let start = doc
            .find("```toml\n")
            .expect("a toml block in operations.md")
            + 8;
        let len = doc[start..].find("```").expect("closed block");
        let c = resolve_file(&doc[start..start + len]).expect("the documented file is valid");
        assert_eq!(c.broker.cluster_name, "prod");
        assert_eq!(c.broker.cluster.default_bundles, 4);
    }

    #[test]
    fn a_misspelled_setting_is_refused() {
        let e = resolve_file("[broker.cluster]\nsesion_ttl_ms = 5\n").expect_err("misspelled key");
        assert!(
            format!("{e:#}").contains("broker.cluster.sesion_ttl_ms"),
            "{e:#}"
        );
    }
}
