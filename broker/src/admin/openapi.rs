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
            "put",
            format!("{TOPIC}/unload"),
            "Unload a topic (every partition of a partitioned one)",
        ),
        (
            "post",
            format!("{TOPIC}/terminate/partitions"),
            "Terminate every partition of a partitioned topic",
        ),
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
    ops.extend(super::schemas::openapi_operations());
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

/// Pulsar's character set for tenant, namespace, cluster, topic and subscription names as
/// this description promises them (the server also refuses anything outside it with 400).
const NAME: &str = "^[A-Za-z0-9][A-Za-z0-9_.=:-]{0,63}$";

/// The schema of a path parameter.
fn param_schema(name: &str) -> Value {
    match name {
        "numMessages" | "timestamp" | "expireTimeInSeconds" | "ledgerId" | "entryId" => {
            json!({"type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991_i64})
        }
        "messagePosition" => json!({"type": "integer", "minimum": 1, "maximum": 100_000}),
        "version" => json!({"type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991_i64}),
        "bundle" => json!({"type": "string", "pattern": "^0x[0-9a-f]{8}_0x[0-9a-f]{8}$"}),
        _ => {
            let example = match name {
                "tenant" => "public",
                "namespace" => "default",
                "cluster" => "standalone",
                "subscription" => "my-subscription",
                _ => "my-topic",
            };
            json!({"type": "string", "pattern": NAME, "example": example})
        }
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The JSON request body an operation takes, if any.
fn request_body(method: &str, path: &str) -> Option<Value> {
    let last = path.rsplit('/').next().unwrap_or_default();
    let int = json!({"type": "integer", "minimum": 0, "maximum": 2_147_483_647});
    let schema = match (method, last) {
        ("put" | "post", "{cluster}") => schema_ref("ClusterData"),
        ("put" | "post", "{tenant}") => schema_ref("TenantInfo"),
        ("put" | "post", "partitions") => {
            json!({"type": "integer", "minimum": 1, "maximum": MAX_PARTITIONS})
        }
        ("post", "messageTTL" | "maxProducersPerTopic" | "maxConsumersPerTopic") => int,
        ("post", "maxProducers" | "maxConsumers") => int,
        ("post", "deduplication" | "deduplicationEnabled") => json!({"type": "boolean"}),
        ("post", "retention") => schema_ref("RetentionPolicies"),
        ("post", "backlogQuota") => schema_ref("BacklogQuota"),
        ("post", "replication") => {
            json!({"type": "array", "items": {"type": "string", "pattern": NAME}})
        }
        ("post", "resetcursor") => schema_ref("MessageIdBody"),
        ("post", "schema") => schema_ref("PostSchemaPayload"),
        _ => return None,
    };
    Some(json!({"required": true, "content": {"application/json": {"schema": schema}}}))
}

/// The schema of a successful GET's JSON answer (`None`: any JSON value).
fn response_schema(path: &str) -> Option<Value> {
    let last = path.rsplit('/').next().unwrap_or_default();
    let strings = json!({"type": "array", "items": {"type": "string"}});
    Some(match last {
        "clusters" | "tenants" | "topics" | "subscriptions" | "partitioned" => strings,
        "{cluster}" if path.contains("/brokers/") => strings,
        "{cluster}" => schema_ref("ClusterData"),
        "{tenant}" if path.contains("/namespaces/") => strings,
        "{tenant}" => schema_ref("TenantInfo"),
        "{namespace}" if path.starts_with("/admin/v2/persistent/") => strings,
        "{namespace}" | "policies" => json!({"type": "object"}),
        "partitions" => schema_ref("PartitionedTopicMetadata"),
        "stats" => schema_ref("TopicStats"),
        "partitioned-stats" => schema_ref("PartitionedTopicStats"),
        "internalStats" => schema_ref("PersistentTopicInternalStats"),
        "lastMessageId" => schema_ref("MessageId"),
        "backlogQuotaMap" => {
            json!({"type": "object", "additionalProperties": schema_ref("BacklogQuota")})
        }
        "all" => schema_ref("Bookies"),
        "bundles" => schema_ref("BundlesData"),
        "{topic}" if path.starts_with("/lookup/") => schema_ref("LookupData"),
        "schema" | "{version}" => schema_ref("GetSchemaResponse"),
        "schemas" => schema_ref("GetAllVersionsSchemaResponse"),
        _ => return None,
    })
}

/// Named schemas of the request and response bodies.
fn components() -> Value {
    let int = json!({"type": "integer"});
    let num = json!({"type": "number"});
    let string = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "Error": {"type": "object", "required": ["reason"], "properties": {"reason": string}},
        "ClusterData": {"type": "object", "properties": {
            "serviceUrl": string, "serviceUrlTls": string,
            "brokerServiceUrl": string, "brokerServiceUrlTls": string}},
        "TenantInfo": {"type": "object", "properties": {
            "adminRoles": strings,
            "allowedClusters": {"type": "array", "items": {"type": "string", "pattern": NAME}}}},
        "RetentionPolicies": {"type": "object",
            "required": ["retentionTimeInMinutes", "retentionSizeInMB"],
            "properties": {
                "retentionTimeInMinutes": {"type": "integer", "minimum": -1, "maximum": 2_147_483_647},
                "retentionSizeInMB": {"type": "integer", "minimum": -1, "maximum": 9_007_199_254_740_991_i64}}},
        "BacklogQuota": {"type": "object", "properties": {
            "limitSize": {"type": "integer", "minimum": -1, "maximum": 9_007_199_254_740_991_i64},
            "limitTime": {"type": "integer", "minimum": -1, "maximum": 2_147_483_647},
            "policy": {"type": "string", "enum": ["producer_request_hold", "producer_exception", "consumer_backlog_eviction"]}}},
        "MessageIdBody": {"type": "object", "required": ["ledgerId", "entryId"], "properties": {
            "ledgerId": {"type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991_i64},
            "entryId": {"type": "integer", "minimum": 0, "maximum": 9_007_199_254_740_991_i64}}},
        "MessageId": {"type": "object", "required": ["ledgerId", "entryId", "partitionIndex"],
            "properties": {"ledgerId": {"type": "integer", "minimum": 0},
                           "entryId": {"type": "integer", "minimum": -1},
                           "partitionIndex": {"type": "integer", "minimum": -1}}},
        "PartitionedTopicMetadata": {"type": "object", "required": ["partitions"],
            "properties": {"partitions": {"type": "integer", "minimum": 0}}},
        "TopicStats": {"type": "object",
            "required": ["msgRateIn", "msgRateOut", "msgThroughputIn", "msgThroughputOut",
                         "msgInCounter", "bytesInCounter", "publishers", "subscriptions"],
            "properties": {
                "msgRateIn": num, "msgRateOut": num, "msgThroughputIn": num,
                "msgThroughputOut": num, "msgInCounter": int, "bytesInCounter": int,
                "storageSize": int, "backlogSize": int,
                "publishers": {"type": "array", "items": {"type": "object"}},
                "subscriptions": {"type": "object", "additionalProperties": {"type": "object"}}}},
        "PartitionedTopicStats": {"type": "object",
            "required": ["metadata", "publishers", "subscriptions"],
            "properties": {
                "metadata": schema_ref("PartitionedTopicMetadata"),
                "publishers": {"type": "array", "items": {"type": "object"}},
                "subscriptions": {"type": "object", "additionalProperties": {"type": "object"}},
                "partitions": {"type": "object", "additionalProperties": schema_ref("TopicStats")}}},
        "PersistentTopicInternalStats": {"type": "object",
            "required": ["entriesAddedCounter", "numberOfEntries", "totalSize", "lastConfirmedEntry",
                         "state", "ledgers", "cursors"],
            "properties": {
                "entriesAddedCounter": int, "numberOfEntries": int, "totalSize": int,
                "lastConfirmedEntry": string, "state": string,
                "ledgers": {"type": "array", "items": {"type": "object", "required": ["ledgerId"],
                    "properties": {"ledgerId": int, "entries": int, "size": int}}},
                "cursors": {"type": "object", "additionalProperties": {"type": "object",
                    "properties": {"markDeletePosition": string, "readPosition": string}}}}},
        "LookupData": {"type": "object", "required": ["brokerUrl", "httpUrl"],
            "properties": {"brokerUrl": string, "httpUrl": string, "nativeUrl": string}},
        "Bookies": {"type": "object", "required": ["bookies"], "properties": {"bookies": {
            "type": "array", "items": {"type": "object", "required": ["bookieId", "state"],
                "properties": {"bookieId": string, "address": string, "state": string}}}}},
        "BundlesData": {"type": "object", "required": ["boundaries", "numBundles"],
            "properties": {"boundaries": strings, "numBundles": int}},
    })
}

/// Adds the schema registry's bodies to the components.
fn with_schema_components(mut all: Value) -> Value {
    if let (Some(all), Value::Object(more)) =
        (all.as_object_mut(), super::schemas::openapi_components())
    {
        all.extend(more);
    }
    all
}

/// Error statuses an operation may answer besides 400/404/409/412.
fn extra_errors(method: &str, path: &str) -> &'static [&'static str] {
    if path.ends_with("/partitions") && method == "put" {
        &["406"]
    } else if (path == NS && method == "put") || (path == format!("{NS}/replication")) {
        &["403"] // replication clusters the tenant is not allowed on
    } else {
        &[]
    }
}

/// Upper bound on the partitions of one partitioned topic (admin operations on a
/// partitioned topic visit every partition, so the count stays moderate).
pub const MAX_PARTITIONS: u32 = 128;

/// The OpenAPI document.
pub fn document() -> Value {
    let error = json!({"description": "Error", "content": {"application/json": {"schema": schema_ref("Error")}}});
    let mut paths = Map::new();
    for (method, path, summary) in operations() {
        let params: Vec<Value> = path
            .split('/')
            .filter(|s| s.starts_with('{'))
            .map(|s| s.trim_matches(|c| c == '{' || c == '}'))
            .map(|n| json!({"name": n, "in": "path", "required": true, "schema": param_schema(n)}))
            .collect();
        let mut responses = Map::new();
        match (method, path.as_str()) {
            ("get", "/metrics" | "/admin/v2/brokers/health") => {
                responses.insert(
                    "200".into(),
                    json!({"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}),
                );
            }
            ("get", p) if p.contains("/position/") || p.contains("/entry/") => {
                responses.insert(
                    "200".into(),
                    json!({"description": "The message payload; metadata in X-Pulsar-* headers",
                           "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}),
                );
            }
            ("get", p) => {
                let schema = response_schema(p).unwrap_or_else(|| json!({}));
                responses.insert(
                    "200".into(),
                    json!({"description": "OK", "content": {"application/json": {"schema": schema}}}),
                );
            }
            ("post", p) if p.ends_with("/terminate/partitions") => {
                responses.insert(
                    "200".into(),
                    json!({"description": "Id of each partition's last message, by partition index",
                           "content": {"application/json": {"schema": {"type": "object", "additionalProperties": schema_ref("MessageId")}}}}),
                );
            }
            ("post", p) if p.ends_with("/terminate") => {
                responses.insert(
                    "200".into(),
                    json!({"description": "Id of the last message", "content": {"application/json": {"schema": schema_ref("MessageId")}}}),
                );
            }
            (m @ ("post" | "delete"), p) if p.starts_with("/admin/v2/schemas/") => {
                let name = if m == "post" {
                    "PostSchemaResponse"
                } else {
                    "DeleteSchemaResponse"
                };
                responses.insert(
                    "200".into(),
                    json!({"description": "OK", "content": {"application/json": {"schema": schema_ref(name)}}}),
                );
            }
            _ => {
                responses.insert("204".into(), json!({"description": "Done"}));
            }
        }
        responses.insert(
            "307".into(),
            json!({"description": "Served by another broker (Location)"}),
        );
        for code in ["400", "404", "409", "412"]
            .iter()
            .chain(extra_errors(method, &path))
        {
            responses.insert((*code).to_string(), error.clone());
        }
        let mut op = json!({
            "operationId": operation_id(method, &path),
            "summary": summary,
            "parameters": params,
            "responses": responses,
        });
        if let Some(body) = request_body(method, &path) {
            op["requestBody"] = body;
        }
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Magnetar admin API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Apache Pulsar compatible admin REST API (/admin/v2)"},
        "paths": paths,
        "components": {"schemas": with_schema_components(components())},
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
