//! `magnetar metadata` (run one metadata node) and `magnetar-admin metadata status`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use magnetar_metadata::{GrpcMetadataClient, MetadataConfig};
use tokio_util::sync::CancellationToken;

/// Arguments of `magnetar metadata`.
#[derive(Debug, Clone, clap::Args)]
pub struct MetadataArgs {
    /// This node's id (> 0).
    #[arg(long, env = "MAGNETAR_METADATA_NODE_ID", default_value_t = 1)]
    pub node_id: u64,
    /// Address to listen on for gRPC (client API and Raft transport).
    #[arg(
        long,
        env = "MAGNETAR_METADATA_LISTEN",
        default_value = "127.0.0.1:7000"
    )]
    pub listen: SocketAddr,
    /// Data directory (RocksDB).
    #[arg(
        long,
        env = "MAGNETAR_METADATA_DATA_DIR",
        default_value = "./data/metadata"
    )]
    pub data_dir: PathBuf,
    /// Initial members: `1=host:port,2=host:port,3=host:port`. Empty: a single-node cluster.
    #[arg(long, env = "MAGNETAR_METADATA_MEMBERS", default_value = "")]
    pub members: String,
    /// Serve Prometheus `/metrics` (and `/health`) over HTTP on this address.
    #[arg(long, env = "MAGNETAR_METADATA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// Parses `1=ADDR,2=ADDR`.
pub fn parse_members(s: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((id, addr)) = part.split_once('=') else {
            bail!("--members: expected ID=ADDR, got {part:?}");
        };
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("--members: bad node id in {part:?}"))?;
        if id == 0 {
            bail!("--members: node ids start at 1");
        }
        out.insert(id, addr.trim().to_string());
    }
    Ok(out)
}

/// Runs one metadata node until `shutdown` fires.
pub async fn run(args: MetadataArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let members = parse_members(&args.members)?;
    if !members.is_empty() && !members.contains_key(&args.node_id) {
        bail!("--members does not list --node-id {}", args.node_id);
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    if let Some(addr) = args.metrics_listen {
        crate::common::serve_metrics(addr, shutdown.clone()).await?;
    }
    let config = MetadataConfig::new(args.node_id, args.data_dir, members);
    magnetar_metadata::run(config, listener, shutdown)
        .await
        .context("metadata node")?;
    Ok(())
}

/// Arguments of `magnetar-admin --metadata ADDRS metadata status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Output format: `text` or `json`.
    #[arg(long, default_value = "text")]
    pub output: String,
}

/// Prints the metadata cluster's leader, term, members and last applied index.
pub async fn status(metadata_addrs: &[String], args: StatusArgs) -> anyhow::Result<()> {
    let client = GrpcMetadataClient::new(metadata_addrs.to_vec());
    let st = client.status().await.context("metadata status")?;
    let members: Vec<serde_json::Value> = st
        .members
        .iter()
        .map(|m| serde_json::json!({"id": m.id, "addr": m.addr, "voter": m.voter}))
        .collect();
    match args.output.as_str() {
        "json" => {
            let v = serde_json::json!({
                "node": st.node_id,
                "leader": if st.leader_id == 0 { serde_json::Value::Null } else { st.leader_id.into() },
                "leader_addr": st.leader_addr,
                "term": st.term,
                "members": members,
                "last_applied": st.last_applied,
                "last_log_index": st.last_log_index,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "text" => {
            let leader = if st.leader_id == 0 {
                "none".to_string()
            } else {
                format!("{} ({})", st.leader_id, st.leader_addr)
            };
            println!("leader:       {leader}");
            println!("term:         {}", st.term);
            println!("last applied: {}", st.last_applied);
            println!("members:");
            for m in &st.members {
                let role = if m.voter { "voter" } else { "learner" };
                println!("  {} {} {role}", m.id, m.addr);
            }
        }
        other => bail!("--output must be text or json, got {other:?}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_members() {
        let m = parse_members("1=a:1, 2=b:2,3=c:3").expect("parse");
        assert_eq!(m.len(), 3);
        assert_eq!(m[&2], "b:2");
        assert!(parse_members("x=a").is_err());
        assert!(parse_members("0=a").is_err());
        assert!(parse_members("").expect("empty").is_empty());
    }
}
