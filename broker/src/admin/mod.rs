//! HTTP: health, Prometheus metrics, and the first admin endpoints Pulsar users need
//! (`/admin/v2/...` with Pulsar's paths and JSON shapes, `/lookup/v2/...`).

mod api;
mod bookies;
mod clusters;
mod common;
mod fanout;
mod namespaces;
pub mod openapi;
mod peek;
mod rates;
mod redirect;
mod schemas;
mod subscriptions;
mod tenants;
mod topic_metrics;
mod topic_ops;
mod topic_policies;
mod topics;

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::broker::Broker;
use crate::error::BrokerError;

/// An admin error: HTTP status and Pulsar's `{"reason": ...}` body.
#[derive(Debug)]
pub struct AdminError {
    status: StatusCode,
    reason: String,
}

impl AdminError {
    /// An error with a status and reason.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> AdminError {
        AdminError {
            status,
            reason: reason.into(),
        }
    }
}

impl From<BrokerError> for AdminError {
    fn from(e: BrokerError) -> Self {
        let status = match &e {
            BrokerError::InvalidTopicName { .. } | BrokerError::InvalidRequest(_) => {
                StatusCode::PRECONDITION_FAILED
            }
            BrokerError::TopicNotFound(_) | BrokerError::SubscriptionNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            BrokerError::ConsumerBusy(_) | BrokerError::ProducerBusy(_) => {
                StatusCode::PRECONDITION_FAILED
            }
            BrokerError::ServiceNotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        AdminError::new(status, e.to_string())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "reason": self.reason })),
        )
            .into_response()
    }
}

/// Result of an admin handler.
pub type AdminResult<T> = std::result::Result<T, AdminError>;

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus handle; installs the recorder on first use (several
/// brokers in one process share it).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            warn!("a metrics recorder was already installed; /metrics shows only its own");
        }
        describe_metrics();
        handle
    })
}

/// Registers the broker's metrics so they show from the start.
fn describe_metrics() {
    metrics::describe_counter!(
        "magnetar_broker_messages_in_total",
        "Messages published to this broker"
    );
    metrics::describe_counter!(
        "magnetar_broker_bytes_in_total",
        "Payload bytes published to this broker"
    );
    metrics::describe_gauge!(
        "magnetar_broker_connections_count",
        "Open client connections"
    );
    metrics::counter!("magnetar_broker_messages_in_total").absolute(0);
    metrics::counter!("magnetar_broker_bytes_in_total").absolute(0);
    metrics::gauge!("magnetar_broker_connections_count").set(0.0);
}

async fn health() -> &'static str {
    "ok"
}

async fn metrics_text(State(b): State<Arc<Broker>>) -> String {
    let mut text = prometheus().render();
    text.push_str(&topic_metrics::render(&b).await);
    text
}

/// The HTTP router.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/admin/v2/brokers/health", get(health))
        .route("/metrics", get(metrics_text))
        .merge(tenants::routes())
        .merge(topics::routes())
        .merge(api::routes())
        .merge(schemas::routes())
        .merge(crate::cluster::admin::routes())
        .layer(axum::middleware::from_fn_with_state(
            broker.clone(),
            redirect::to_owner,
        ))
        .with_state(broker)
}

/// Serves HTTP on `listener` until `shutdown`.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener, shutdown: CancellationToken) {
    let _ = prometheus();
    let app = router(broker);
    let res = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = res {
        warn!(error = %e, "http server failed");
    }
}
