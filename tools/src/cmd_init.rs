//! `magnetar initialize-cluster-metadata`: creates `/clusters/{name}`, tenant `public` and
//! namespace `public/default` (the same keys and JSON the broker writes on start), without
//! touching any that already exist. Safe to run more than once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use magnetar_metadata::{GrpcMetadataClient, MetadataStore};

use crate::cmd_broker::wait_for_metadata;
use crate::common::split_addrs;

/// Arguments of `magnetar initialize-cluster-metadata`.
#[derive(clap::Args, Debug, Clone)]
pub struct InitArgs {
    /// Cluster name.
    #[arg(long, env = "MAGNETAR_CLUSTER_NAME")]
    pub cluster: String,
    /// Metadata service addresses, comma separated.
    #[arg(long, env = "MAGNETAR_METADATA")]
    pub metadata: String,
    /// HTTP service URL of the cluster (`http://host:8080`).
    #[arg(long, env = "MAGNETAR_WEB_SERVICE_URL")]
    pub web_service_url: String,
    /// Pulsar protocol service URL of the cluster (`pulsar://host:6650`).
    #[arg(long, env = "MAGNETAR_BROKER_SERVICE_URL")]
    pub broker_service_url: String,
}

/// The keys and values written, in order.
pub fn cluster_records(args: &InitArgs) -> Vec<(String, serde_json::Value)> {
    let c = &args.cluster;
    vec![
        (
            format!("/clusters/{c}"),
            serde_json::json!({
                "serviceUrl": args.web_service_url,
                "brokerServiceUrl": args.broker_service_url,
            }),
        ),
        (
            "/tenants/public".to_string(),
            serde_json::json!({"adminRoles": [], "allowedClusters": [c]}),
        ),
        (
            "/namespaces/public/default".to_string(),
            serde_json::json!({"replication_clusters": [c]}),
        ),
    ]
}

/// Writes the cluster's initial metadata.
pub async fn run(args: InitArgs) -> anyhow::Result<()> {
    let store: Arc<dyn MetadataStore> =
        Arc::new(GrpcMetadataClient::new(split_addrs(&args.metadata)));
    wait_for_metadata(store.as_ref(), Duration::from_secs(60)).await?;
    for (key, value) in cluster_records(&args) {
        let created = magnetar_broker::service::create_if_absent(store.as_ref(), &key, &value)
            .await
            .with_context(|| format!("writing {key}"))?;
        let what = if created { "created" } else { "exists" };
        tracing::info!(%key, "{what}");
    }
    tracing::info!(cluster = %args.cluster, "cluster metadata initialized");
    Ok(())
}
