//! The admin routes added on top of the first endpoints in `tenants.rs`/`topics.rs`, and a
//! JSON 404 for unknown paths.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;

use super::AdminError;
use crate::broker::Broker;

/// Every route of the full admin API (merged into the HTTP router).
pub(super) fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .merge(super::clusters::routes())
        .merge(super::namespaces::routes())
        .merge(super::topic_ops::routes())
        .merge(super::topic_policies::routes())
        .merge(super::subscriptions::routes())
        .merge(super::bookies::routes())
        .merge(super::openapi::routes())
        .fallback(|| async { AdminError::new(StatusCode::NOT_FOUND, "Not found") })
}
