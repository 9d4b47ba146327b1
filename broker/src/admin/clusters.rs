//! Writes to clusters and tenants (reads are served by `tenants.rs`): create, update and
//! delete, persisted at `/clusters/{c}` and `/tenants/{t}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::Router;
use bytes::Bytes;
use magnetar_metadata::{list_all, Expect};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{
    any_under, bad_request, check_name, conflict, get_stored, md, not_found, parse_body,
    precondition, put_at_version,
};
use super::AdminResult;
use crate::broker::Broker;

type S = State<Arc<Broker>>;

/// `ClusterData` as Pulsar writes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterData {
    /// HTTP admin URL.
    #[serde(default)]
    pub service_url: String,
    /// `pulsar://` URL.
    #[serde(default)]
    pub broker_service_url: String,
    /// Anything else Pulsar allows (TLS URLs, proxy, ...), kept as given.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// `TenantInfo` as Pulsar writes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantInfo {
    /// Roles allowed to administer the tenant.
    #[serde(default)]
    pub admin_roles: Vec<String>,
    /// Clusters the tenant may use.
    #[serde(default)]
    pub allowed_clusters: Vec<String>,
}

pub(super) fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route(
            "/admin/v2/clusters/:c",
            put(create_cluster)
                .post(update_cluster)
                .delete(delete_cluster),
        )
        .route(
            "/admin/v2/tenants/:t",
            axum::routing::post(update_tenant).delete(delete_tenant),
        )
}

fn encode<T: Serialize>(v: &T) -> AdminResult<Bytes> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| bad_request(format!("cannot encode: {e}")))
}

fn cluster_body(body: &Bytes) -> AdminResult<ClusterData> {
    let c: ClusterData = parse_body(body)?;
    if c.service_url.is_empty() && c.broker_service_url.is_empty() {
        return Err(bad_request("serviceUrl or brokerServiceUrl is required"));
    }
    Ok(c)
}

async fn create_cluster(
    State(b): S,
    Path(c): Path<String>,
    body: Bytes,
) -> AdminResult<StatusCode> {
    check_name("Cluster", &c)?;
    let data = cluster_body(&body)?;
    match b
        .metadata
        .put(
            &format!("/clusters/{c}"),
            encode(&data)?,
            Expect::Absent,
            None,
        )
        .await
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(e) if e.is_bad_version() => Err(conflict("Cluster already exists")),
        Err(e) => Err(md(e)),
    }
}

async fn update_cluster(
    State(b): S,
    Path(c): Path<String>,
    body: Bytes,
) -> AdminResult<StatusCode> {
    check_name("Cluster", &c)?;
    let data = cluster_body(&body)?;
    let key = format!("/clusters/{c}");
    let (_, version) = get_stored(&b, &key, "Cluster").await?;
    put_at_version(&b, &key, encode(&data)?, version, "Cluster").await
}

async fn delete_cluster(State(b): S, Path(c): Path<String>) -> AdminResult<StatusCode> {
    check_name("Cluster", &c)?;
    let key = format!("/clusters/{c}");
    get_stored(&b, &key, "Cluster").await?;
    if c == b.config.cluster_name {
        return Err(precondition(
            "Cannot delete the cluster this broker belongs to",
        ));
    }
    for (_, v) in list_all(b.metadata.as_ref(), "/namespaces/")
        .await
        .map_err(md)?
    {
        let p: Value = serde_json::from_slice(&v.value).unwrap_or(Value::Null);
        let used = p["replication_clusters"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(c.as_str())));
        if used {
            return Err(precondition(
                "Cluster is still used by a namespace's replication",
            ));
        }
    }
    b.metadata.delete(&key, Expect::Any).await.map_err(md)?;
    Ok(StatusCode::NO_CONTENT)
}

/// 412 unless every allowed cluster of `info` exists.
pub(super) async fn check_clusters(b: &Broker, info: &TenantInfo) -> AdminResult<()> {
    for c in &info.allowed_clusters {
        check_name("Cluster", c)?;
        if b.metadata
            .get(&format!("/clusters/{c}"))
            .await
            .map_err(md)?
            .is_none()
        {
            return Err(precondition(format!("Cluster {c} does not exist")));
        }
    }
    Ok(())
}

async fn update_tenant(State(b): S, Path(t): Path<String>, body: Bytes) -> AdminResult<StatusCode> {
    check_name("Tenant", &t)?;
    let info: TenantInfo = parse_body(&body)?;
    let key = format!("/tenants/{t}");
    let (_, version) = get_stored(&b, &key, "Tenant").await?;
    check_clusters(&b, &info).await?;
    put_at_version(&b, &key, encode(&info)?, version, "Tenant").await
}

async fn delete_tenant(State(b): S, Path(t): Path<String>) -> AdminResult<StatusCode> {
    check_name("Tenant", &t)?;
    let key = format!("/tenants/{t}");
    get_stored(&b, &key, "Tenant").await?;
    if any_under(&b, &format!("/namespaces/{t}/")).await? {
        return Err(conflict("The tenant still has active namespaces"));
    }
    if !b.metadata.delete(&key, Expect::Any).await.map_err(md)? {
        return Err(not_found("Tenant does not exist"));
    }
    Ok(StatusCode::NO_CONTENT)
}
