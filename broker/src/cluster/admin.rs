//! Admin endpoints of cluster mode: active brokers, namespace bundles, unload and split.
//! Requests for a bundle owned by another broker are redirected (307) to its owner.

use std::sync::Arc;

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;

use super::bundles::{topic_hash, BundleRange, NamespaceBundles};
use super::ownership::BundleOp;
use crate::admin::{AdminError, AdminResult};
use crate::broker::Broker;

type S = State<Arc<Broker>>;

/// Routes merged into the broker's HTTP router.
pub fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/admin/v2/brokers/:cluster", get(brokers))
        .route("/admin/v2/namespaces/:t/:ns/bundles", get(bundles))
        .route(
            "/admin/v2/namespaces/:t/:ns/:bundle/unload",
            post(unload).put(unload),
        )
        .route(
            "/admin/v2/namespaces/:t/:ns/:bundle/split",
            post(split).put(split),
        )
}

async fn brokers(State(b): S, Path(cluster): Path<String>) -> AdminResult<Json<Vec<String>>> {
    if cluster != b.config.cluster_name {
        return Err(AdminError::new(
            StatusCode::NOT_FOUND,
            format!("cluster {cluster} does not exist"),
        ));
    }
    match b.cluster.get() {
        Some(c) => {
            let mut ids: Vec<String> = c
                .active_brokers()
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            ids.sort();
            Ok(Json(ids))
        }
        None => Ok(Json(vec![b
            .broker_url
            .trim_start_matches("pulsar://")
            .to_string()])),
    }
}

async fn bundles(State(b): S, Path((t, ns)): Path<(String, String)>) -> AdminResult<Json<Value>> {
    let nb = match b.cluster.get() {
        Some(c) => c.namespace_bundles(&format!("{t}/{ns}"), true).await?,
        None => NamespaceBundles::even(b.config.cluster.default_bundles),
    };
    Ok(Json(
        serde_json::to_value(nb).map_err(crate::error::BrokerError::from)?,
    ))
}

fn redirect(owner_http: &str, uri: &OriginalUri) -> Response {
    let target = format!("{}{}", owner_http.trim_end_matches('/'), uri.0.path());
    Redirect::temporary(&target).into_response()
}

async fn unload(
    State(b): S,
    uri: OriginalUri,
    Path((t, ns, bundle)): Path<(String, String, String)>,
) -> AdminResult<Response> {
    let range = BundleRange::parse(&bundle)?;
    let ns_path = format!("{t}/{ns}");
    require_bundle(&b, &ns_path, range).await?;
    let Some(c) = b.cluster.get() else {
        // Standalone: nobody else can take the bundle; closing its topics is the unload.
        b.close_topics(|n| {
            n.namespace_path() == ns_path && range.contains(topic_hash(&n.to_string()))
        })
        .await;
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    match c.unload(&b, &ns_path, range).await? {
        BundleOp::Done => Ok(StatusCode::NO_CONTENT.into_response()),
        BundleOp::OwnedBy(o) => Ok(redirect(&o.web_service_url, &uri)),
    }
}

/// 404 for an unknown namespace, 412 for a range that is not one of its bundles.
async fn require_bundle(b: &Broker, ns_path: &str, range: BundleRange) -> AdminResult<()> {
    let stored = b
        .metadata
        .get(&format!("/namespaces/{ns_path}"))
        .await
        .map_err(crate::error::BrokerError::from)?;
    if stored.is_none() {
        return Err(AdminError::new(
            StatusCode::NOT_FOUND,
            format!("Namespace {ns_path} does not exist"),
        ));
    }
    let nb = match b.cluster.get() {
        Some(c) => c.namespace_bundles(ns_path, true).await?,
        None => NamespaceBundles::even(b.config.cluster.default_bundles),
    };
    if !nb.ranges()?.contains(&range) {
        return Err(AdminError::new(
            StatusCode::PRECONDITION_FAILED,
            format!("no bundle {range} in namespace {ns_path}"),
        ));
    }
    Ok(())
}

async fn split(
    State(b): S,
    uri: OriginalUri,
    Path((t, ns, bundle)): Path<(String, String, String)>,
) -> AdminResult<Response> {
    let range = BundleRange::parse(&bundle)?;
    let Some(c) = b.cluster.get() else {
        return Err(AdminError::new(
            StatusCode::PRECONDITION_FAILED,
            "bundle split needs cluster mode",
        ));
    };
    match c.split(&b, &format!("{t}/{ns}"), range).await? {
        BundleOp::Done => Ok(StatusCode::NO_CONTENT.into_response()),
        BundleOp::OwnedBy(o) => Ok(redirect(&o.web_service_url, &uri)),
    }
}
