//! `GET /admin/v2/openapi.json`: an OpenAPI 3 description of the admin API, built from one
//! table of operations (method, path, summary, success status).

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::broker::Broker;

const NS: &str = "/admin/v2/namespaces/{tenant}/{namespace}";
const TOPIC: &str = "/admin/v2/persistent/{tenant}/{namespace}/{topic}";

/// Every admin operation: (method, path, summary).
fn operations() -> Vec<(&'static str, String, &'static str)> {
    let mut ops: Vec<(&'static str, String, &'static str)> = vec![
        (
            "get",
            "/admin/v2/brokers/health".into(),
            "Broker health check",
        ),
        ("get", "/admin/v2/clusters".into(), "List clusters"),
        (
            "get",
            "/admin/v2/clusters/{cluster}".into(),
            "Get a cluster's data",
        ),
        (
            "put",
            "/admin/v2/clusters/{cluster}".into(),
            "Create a cluster (serviceUrl, brokerServiceUrl)",
        ),
        (
            "post",
            "/admin/v2/clusters/{cluster}".into(),
            "Update a cluster",
        ),
        (
            "delete",
            "/admin/v2/clusters/{cluster}".into(),
            "Delete a cluster",
        ),
        ("get", "/admin/v2/tenants".into(), "List tenants"),
        (
            "get",
            "/admin/v2/tenants/{tenant}".into(),
            "Get a tenant (adminRoles, allowedClusters)",
        ),
        (
            "put",
            "/admin/v2/tenants/{tenant}".into(),
            "Create a tenant",
        ),
        (
            "post",
            "/admin/v2/tenants/{tenant}".into(),
            "Update a tenant",
        ),
        (
            "delete",
            "/admin/v2/tenants/{tenant}".into(),
            "Delete a tenant (409 while it has namespaces)",
        ),
        (
            "get",
            "/admin/v2/namespaces/{tenant}".into(),
            "List a tenant's namespaces",
        ),
        ("get", NS.into(), "Get a namespace's policies"),
        ("put", NS.into(), "Create a namespace"),
        (
            "delete",
            NS.into(),
            "Delete a namespace (412 while it has topics)",
        ),
        (
            "get",
            format!("{NS}/policies"),
            "Get a namespace's policies",
        ),
        ("get", format!("{NS}/topics"), "List a namespace's topics"),
        ("get", format!("{NS}/backlogQuotaMap"), "Get backlog quotas"),
        (
            "post",
            format!("{NS}/backlogQuota"),
            "Set a backlog quota (limitSize, limitTime, policy)",
        ),
        (
            "delete",
            format!("{NS}/backlogQuota"),
            "Remove a backlog quota",
        ),
        (
            "get",
            "/admin/v2/persistent/{tenant}/{namespace}".into(),
            "List topics",
        ),
        (
            "get",
            "/admin/v2/persistent/{tenant}/{namespace}/partitioned".into(),
            "List partitioned topics",
        ),
        ("put", TOPIC.into(), "Create a non-partitioned topic"),
        ("delete", TOPIC.into(), "Delete a topic (?force=true)"),
        (
            "get",
            format!("{TOPIC}/partitions"),
            "Get partition metadata",
        ),
        (
            "put",
            format!("{TOPIC}/partitions"),
            "Create a partitioned topic (body: partitions)",
        ),
        (
            "post",
            format!("{TOPIC}/partitions"),
            "Grow a partitioned topic",
        ),
        (
            "delete",
            format!("{TOPIC}/partitions"),
            "Delete a partitioned topic",
        ),
        ("get", format!("{TOPIC}/stats"), "Topic stats"),
        (
            "get",
            format!("{TOPIC}/internalStats"),
            "Managed ledger and cursor state",
        ),
        (
            "get",
            format!("{TOPIC}/partitioned-stats"),
            "Stats summed over partitions",
        ),
        ("post", format!("{TOPIC}/terminate"), "Terminate a topic"),
        (
            "get",
            format!("{TOPIC}/subscriptions"),
            "List subscriptions",
        ),
        (
            "put",
            format!("{TOPIC}/subscription/{{subscription}}"),
            "Create a subscription (?messageId=earliest|latest or body MessageId)",
        ),
        (
            "delete",
            format!("{TOPIC}/subscription/{{subscription}}"),
            "Delete a subscription (?force=true)",
        ),
        (
            "post",
            format!("{TOPIC}/subscription/{{subscription}}/skip/{{numMessages}}"),
            "Skip messages",
        ),
        (
            "post",
            format!("{TOPIC}/subscription/{{subscription}}/skip_all"),
            "Clear the backlog",
        ),
        (
            "post",
            format!("{TOPIC}/subscription/{{subscription}}/resetcursor/{{timestamp}}"),
            "Reset the cursor to a publish time",
        ),
        (
            "post",
            format!("{TOPIC}/subscription/{{subscription}}/resetcursor"),
            "Reset the cursor to a message id",
        ),
        (
            "post",
            format!("{TOPIC}/subscription/{{subscription}}/expireMessages/{{expireTimeInSeconds}}"),
            "Expire old messages",
        ),
        (
            "post",
            format!("{TOPIC}/all_subscription/expireMessages/{{expireTimeInSeconds}}"),
            "Expire old messages on every subscription",
        ),
        (
            "get",
            format!("{TOPIC}/subscription/{{subscription}}/position/{{messagePosition}}"),
            "Peek the n-th unacknowledged message",
        ),
        (
            "get",
            format!("{TOPIC}/backlogQuotaMap"),
            "Get topic backlog quotas",
        ),
        (
            "post",
            format!("{TOPIC}/backlogQuota"),
            "Set a topic backlog quota",
        ),
        (
            "delete",
            format!("{TOPIC}/backlogQuota"),
            "Remove a topic backlog quota",
        ),
        (
            "get",
            "/lookup/v2/topic/persistent/{tenant}/{namespace}/{topic}".into(),
            "Look up a topic's broker",
        ),
        (
            "get",
            "/admin/v2/bookies/all".into(),
            "List bookies with their state",
        ),
        ("get", "/admin/v2/openapi.json".into(), "This description"),
        (
            "get",
            "/admin/v2/brokers/{cluster}".into(),
            "List active brokers",
        ),
        ("get", format!("{NS}/bundles"), "Get a namespace's bundles"),
        ("put", format!("{NS}/{{bundle}}/unload"), "Unload a bundle"),
        ("put", format!("{NS}/{{bundle}}/split"), "Split a bundle"),
        ("get", "/metrics".into(), "Prometheus metrics"),
        (
            "get",
            format!("{TOPIC}/lastMessageId"),
            "Id of the last message",
        ),
        (
            "get",
            format!("{TOPIC}/ledger/{{ledgerId}}/entry/{{entryId}}"),
            "Get a message by id",
        ),
    ];
    for p in [
        "retention",
        "messageTTL",
        "deduplication",
        "delayedDelivery",
        "autoTopicCreation",
        "maxProducersPerTopic",
        "maxConsumersPerTopic",
        "replication",
        "publishRate",
        "dispatchRate",
    ] {
        ops.push(("get", format!("{NS}/{p}"), "Get a namespace policy"));
        ops.push(("post", format!("{NS}/{p}"), "Set a namespace policy"));
        ops.push(("delete", format!("{NS}/{p}"), "Remove a namespace policy"));
    }
    for p in [
        "retention",
        "messageTTL",
        "deduplicationEnabled",
        "maxProducers",
        "maxConsumers",
        "delayedDelivery",
    ] {
        ops.push(("get", format!("{TOPIC}/{p}"), "Get a topic policy override"));
        ops.push((
            "post",
            format!("{TOPIC}/{p}"),
            "Set a topic policy override",
        ));
        ops.push((
            "delete",
            format!("{TOPIC}/{p}"),
            "Remove a topic policy override",
        ));
    }
    ops
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for seg in path.trim_start_matches("/admin/v2/").split('/') {
        let seg = seg.trim_matches(|c| c == '{' || c == '}');
        let mut cs = seg.chars().filter(|c| c.is_ascii_alphanumeric());
        if let Some(f) = cs.next() {
            id.push(f.to_ascii_uppercase());
            id.extend(cs);
        }
    }
    id
}

/// The OpenAPI document.
pub fn document() -> Value {
    let error = json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut paths = Map::new();
    for (method, path, summary) in operations() {
        let params: Vec<Value> = path
            .split('/')
            .filter(|s| s.starts_with('{'))
            .map(|s| json!({"name": s.trim_matches(|c| c == '{' || c == '}'), "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let ok = if method == "get" {
            json!({"description": "OK", "content": {"application/json": {}}})
        } else {
            json!({"description": "Done"})
        };
        let op = json!({
            "operationId": operation_id(method, &path),
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": ok, "204": {"description": "Done"},
                "400": error, "404": error, "409": error, "412": error,
            },
        });
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Magnetar admin API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Apache Pulsar compatible admin REST API (/admin/v2)"},
        "paths": paths,
        "components": {"schemas": {"Error": {"type": "object", "properties": {"reason": {"type": "string"}}}}},
    })
}

pub(super) fn routes() -> Router<Arc<Broker>> {
    Router::new().route("/admin/v2/openapi.json", get(|| async { Json(document()) }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_operation_has_a_unique_id() {
        let doc = super::document();
        let mut ids = std::collections::HashSet::new();
        for (_, methods) in doc["paths"].as_object().expect("paths") {
            for (_, op) in methods.as_object().expect("methods") {
                let id = op["operationId"].as_str().expect("id").to_string();
                assert!(ids.insert(id.clone()), "duplicate operationId {id}");
            }
        }
        assert!(ids.len() > 60);
    }
}
