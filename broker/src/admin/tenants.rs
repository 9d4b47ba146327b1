//! Clusters, tenants and namespaces.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use magnetar_metadata::list_all;
use serde_json::Value;

use super::{AdminError, AdminResult};
use crate::broker::Broker;
use crate::service::create_if_absent;

type S = State<Arc<Broker>>;

pub(super) fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route("/admin/v2/clusters", get(clusters))
        .route("/admin/v2/clusters/:c", get(cluster))
        .route("/admin/v2/tenants", get(tenants))
        .route("/admin/v2/tenants/:t", get(get_tenant).put(put_tenant))
        .route("/admin/v2/namespaces/:t", get(namespaces))
        .route(
            "/admin/v2/namespaces/:t/:ns",
            get(get_namespace).put(put_namespace),
        )
}

async fn children(b: &Broker, prefix: &str) -> AdminResult<Vec<String>> {
    let keys = list_all(b.metadata.as_ref(), prefix)
        .await
        .map_err(|e| AdminError::from(crate::error::BrokerError::from(e)))?;
    Ok(keys
        .into_iter()
        .filter_map(|(k, _)| {
            let rest = &k[prefix.len()..];
            (!rest.contains('/')).then(|| rest.to_string())
        })
        .collect())
}

async fn get_json(b: &Broker, key: &str, what: &str) -> AdminResult<Json<Value>> {
    match b
        .metadata
        .get(key)
        .await
        .map_err(|e| AdminError::from(crate::error::BrokerError::from(e)))?
    {
        Some(v) => Ok(Json(
            serde_json::from_slice(&v.value).unwrap_or(Value::Null),
        )),
        None => Err(AdminError::new(
            StatusCode::NOT_FOUND,
            format!("{what} does not exist"),
        )),
    }
}

async fn clusters(State(b): S) -> AdminResult<Json<Vec<String>>> {
    Ok(Json(children(&b, "/clusters/").await?))
}

async fn cluster(State(b): S, Path(c): Path<String>) -> AdminResult<Json<Value>> {
    get_json(&b, &format!("/clusters/{c}"), "Cluster").await
}

async fn tenants(State(b): S) -> AdminResult<Json<Vec<String>>> {
    Ok(Json(children(&b, "/tenants/").await?))
}

async fn get_tenant(State(b): S, Path(t): Path<String>) -> AdminResult<Json<Value>> {
    get_json(&b, &format!("/tenants/{t}"), "Tenant").await
}

async fn put_tenant(
    State(b): S,
    Path(t): Path<String>,
    body: axum::body::Bytes,
) -> AdminResult<StatusCode> {
    super::common::check_name("Tenant", &t)?;
    let value = super::common::parse_opt_body::<Value>(&body)?.unwrap_or_else(
        || serde_json::json!({"adminRoles": [], "allowedClusters": [b.config.cluster_name]}),
    );
    super::common::check_shape::<super::clusters::TenantInfo>("tenant info", &value)?;
    let info: super::clusters::TenantInfo = serde_json::from_value(value.clone())
        .map_err(|e| super::common::bad_request(format!("invalid tenant info: {e}")))?;
    super::clusters::check_clusters(&b, &info).await?;
    let created = create_if_absent(b.metadata.as_ref(), &format!("/tenants/{t}"), &value)
        .await
        .map_err(AdminError::from)?;
    if created {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AdminError::new(
            StatusCode::CONFLICT,
            "Tenant already exists",
        ))
    }
}

async fn namespaces(State(b): S, Path(t): Path<String>) -> AdminResult<Json<Vec<String>>> {
    let _ = get_json(&b, &format!("/tenants/{t}"), "Tenant").await?;
    let names = children(&b, &format!("/namespaces/{t}/")).await?;
    Ok(Json(
        names.into_iter().map(|n| format!("{t}/{n}")).collect(),
    ))
}

async fn get_namespace(
    State(b): S,
    Path((t, ns)): Path<(String, String)>,
) -> AdminResult<Json<Value>> {
    get_json(&b, &format!("/namespaces/{t}/{ns}"), "Namespace").await
}

async fn put_namespace(
    State(b): S,
    Path((t, ns)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> AdminResult<StatusCode> {
    super::common::check_name("Namespace", &ns)?;
    let _ = get_json(&b, &format!("/tenants/{t}"), "Tenant").await?;
    let value = super::common::parse_opt_body::<Value>(&body)?
        .unwrap_or_else(|| serde_json::json!({"replication_clusters": [b.config.cluster_name]}));
    super::common::check_shape::<crate::policies::Policies>("namespace policies", &value)?;
    let clusters: Vec<String> =
        serde_json::from_value(value["replication_clusters"].clone()).unwrap_or_default();
    if let Some(why) =
        crate::replication::refuse_replication_clusters(b.metadata.as_ref(), &t, &clusters)
            .await
            .map_err(AdminError::from)?
    {
        return Err(AdminError::new(StatusCode::FORBIDDEN, why));
    }
    let created = create_if_absent(
        b.metadata.as_ref(),
        &format!("/namespaces/{t}/{ns}"),
        &value,
    )
    .await
    .map_err(AdminError::from)?;
    if created {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AdminError::new(
            StatusCode::CONFLICT,
            "Namespace already exists",
        ))
    }
}
