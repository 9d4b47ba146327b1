//! The broker's entry point: `run(config, listeners, metadata, ledgers, shutdown)`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use magnetar_bookie::Ledgers;
use magnetar_metadata::{Expect, MetadataStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::error::Result;
use crate::storage::TopicStorage;

/// Runs a broker on the given listeners until `shutdown` is cancelled, storing topics in
/// managed ledgers over `ledgers`.
pub async fn run(
    config: BrokerConfig,
    pulsar_listener: TcpListener,
    http_listener: TcpListener,
    metadata: Arc<dyn MetadataStore>,
    ledgers: Arc<dyn Ledgers>,
    shutdown: CancellationToken,
) -> Result<()> {
    let storage = crate::storage::managed::ManagedStorage::new(&config, ledgers, metadata.clone());
    run_with_storage(
        config,
        pulsar_listener,
        http_listener,
        metadata,
        storage,
        shutdown,
    )
    .await
}

/// Like [`run`] with any [`TopicStorage`] (tests use the in-memory one).
pub async fn run_with_storage(
    config: BrokerConfig,
    pulsar_listener: TcpListener,
    http_listener: TcpListener,
    metadata: Arc<dyn MetadataStore>,
    storage: Arc<dyn TopicStorage>,
    shutdown: CancellationToken,
) -> Result<()> {
    config.validate()?;
    let pulsar_addr = pulsar_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let pulsar_port = match config.broker_port {
        0 => pulsar_addr.port(),
        p => p,
    };
    let http_port = match config.web_port {
        0 => http_addr.port(),
        p => p,
    };
    let broker_url = format!("pulsar://{}:{pulsar_port}", config.advertised_address);
    let http_url = format!("http://{}:{http_port}", config.advertised_address);
    ensure_cluster(&config, metadata.as_ref(), &broker_url, &http_url).await?;
    let broker = Arc::new(Broker::new(
        config,
        metadata,
        storage,
        broker_url.clone(),
        http_url,
        shutdown.child_token(),
    ));
    info!(%pulsar_addr, %http_addr, %broker_url, "broker listening");

    let tracker = TaskTracker::new();
    let cluster = crate::cluster::start(broker.clone(), tracker.clone()).await?;
    crate::lifecycle::start(broker.clone(), &tracker);
    crate::replication::start(broker.clone(), &tracker);
    let http = tokio::spawn(crate::admin::serve(
        broker.clone(),
        http_listener,
        broker.shutdown.clone(),
    ));
    loop {
        tokio::select! {
            accepted = pulsar_listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracker.spawn(crate::connection::serve(broker.clone(), stream, peer));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.cancelled() => break,
        }
    }
    info!("broker shutting down");
    drop(pulsar_listener);
    broker.shutdown.cancel();
    tracker.close();
    let deadline = Duration::from_secs(broker.config.shutdown_timeout_secs);
    let closing = async {
        broker.close_all().await;
        tracker.wait().await;
    };
    if tokio::time::timeout(deadline, closing).await.is_err() {
        warn!("shutdown deadline passed with work still running");
    }
    if let Some(c) = &cluster {
        c.release().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), http).await;
    Ok(())
}

/// Creates `/clusters/{c}`, tenant `public` and namespace `public/default` if missing.
async fn ensure_cluster(
    config: &BrokerConfig,
    metadata: &dyn MetadataStore,
    broker_url: &str,
    http_url: &str,
) -> Result<()> {
    let c = &config.cluster_name;
    let cluster = serde_json::json!({
        "serviceUrl": http_url,
        "brokerServiceUrl": broker_url,
    });
    let tenant = serde_json::json!({"adminRoles": [], "allowedClusters": [c]});
    let ns = serde_json::json!({"replication_clusters": [c]});
    for (key, value) in [
        (format!("/clusters/{c}"), cluster),
        ("/tenants/public".to_string(), tenant),
        ("/namespaces/public/default".to_string(), ns),
    ] {
        create_if_absent(metadata, &key, &value).await?;
    }
    Ok(())
}

/// Writes `value` at `key` unless the key exists. Returns whether it was created.
pub async fn create_if_absent(
    metadata: &dyn MetadataStore,
    key: &str,
    value: &serde_json::Value,
) -> Result<bool> {
    let body = Bytes::from(serde_json::to_vec(value)?);
    match metadata.put(key, body, Expect::Absent, None).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_bad_version() => Ok(false),
        Err(e) => Err(e.into()),
    }
}
