//! Schema registry endpoints with Pulsar's paths and JSON shapes:
//! `/admin/v2/schemas/{tenant}/{namespace}/{topic}/schema` (GET latest, POST upload,
//! DELETE), `.../schema/{version}` and `.../schemas` (every live version).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{bad_request, be, not_found, parse_body, require_namespace};
use super::{AdminError, AdminResult};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::names::TopicName;
use crate::schema::{self, Role, SchemaEntry, SchemaType};

type S = State<Arc<Broker>>;

pub(super) fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route(
            "/admin/v2/schemas/:t/:ns/:topic/schema",
            get(get_latest).post(upload).delete(remove),
        )
        .route(
            "/admin/v2/schemas/:t/:ns/:topic/schema/:version",
            get(get_version),
        )
        .route("/admin/v2/schemas/:t/:ns/:topic/schemas", get(get_all))
}

/// The upload body (Pulsar's `PostSchemaPayload`).
#[derive(Debug, Deserialize)]
struct PostSchemaPayload {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    properties: Option<BTreeMap<String, String>>,
}

/// True for a topic name the API description promises (`^[A-Za-z0-9][A-Za-z0-9_.=:-]{0,63}$`).
fn valid_topic(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '=' | ':' | '-'))
}

/// The topic after checking its name (400) and that its namespace exists (404).
async fn topic(b: &Broker, t: &str, ns: &str, topic: &str) -> AdminResult<TopicName> {
    if !valid_topic(topic) {
        return Err(bad_request(format!("Topic name is not valid: {topic:?}")));
    }
    require_namespace(b, t, ns).await?;
    TopicName::parse(&format!("persistent://{t}/{ns}/{topic}"))
        .map_err(|e| bad_request(e.to_string()))
}

/// Pulsar's `GetSchemaResponse`.
fn schema_json(version: u64, entry: &SchemaEntry) -> Value {
    json!({
        "version": version,
        "type": entry.kind.name(),
        "timestamp": entry.timestamp,
        "data": String::from_utf8_lossy(&entry.data),
        "properties": entry.properties,
    })
}

fn found(version: u64, entry: Option<&SchemaEntry>) -> AdminResult<Json<Value>> {
    match entry {
        None => Err(not_found("Schema not found")),
        Some(e) if e.deleted => Err(not_found("Schema is deleted")),
        Some(e) => Ok(Json(schema_json(version, e))),
    }
}

async fn get_latest(
    State(b): S,
    Path((t, ns, tp)): Path<(String, String, String)>,
) -> AdminResult<Json<Value>> {
    let name = topic(&b, &t, &ns, &tp).await?;
    let history = schema::load(b.metadata.as_ref(), &name).await.map_err(be)?;
    match history.versions.last() {
        Some(last) => found((history.versions.len() - 1) as u64, Some(last)),
        None => found(0, None),
    }
}

async fn get_version(
    State(b): S,
    Path((t, ns, tp, version)): Path<(String, String, String, String)>,
) -> AdminResult<Json<Value>> {
    let name = topic(&b, &t, &ns, &tp).await?;
    let version: u64 = version
        .parse()
        .map_err(|_| bad_request(format!("invalid schema version {version:?}")))?;
    let history = schema::load(b.metadata.as_ref(), &name).await.map_err(be)?;
    found(version, history.get(version))
}

async fn get_all(
    State(b): S,
    Path((t, ns, tp)): Path<(String, String, String)>,
) -> AdminResult<Json<Value>> {
    let name = topic(&b, &t, &ns, &tp).await?;
    let history = schema::load(b.metadata.as_ref(), &name).await.map_err(be)?;
    let all: Vec<Value> = history.live().map(|(v, e)| schema_json(v, e)).collect();
    Ok(Json(json!({ "getSchemaResponses": all })))
}

async fn upload(
    State(b): S,
    Path((t, ns, tp)): Path<(String, String, String)>,
    body: Bytes,
) -> AdminResult<Json<Value>> {
    let name = topic(&b, &t, &ns, &tp).await?;
    let payload: PostSchemaPayload = parse_body(&body)?;
    let kind = SchemaType::from_name(&payload.kind)
        .ok_or_else(|| bad_request(format!("unknown schema type {:?}", payload.kind)))?;
    // Definitions are stored as given, neither parsed nor validated (ADR 0007).
    let data = payload.schema.unwrap_or_default().into_bytes();
    let entry = SchemaEntry::new(kind, data, payload.properties.unwrap_or_default());
    match schema::register(b.metadata.as_ref(), &name, entry, Role::Producer).await {
        Ok(Some(version)) => Ok(Json(json!({ "version": { "version": version } }))),
        Ok(None) => Err(AdminError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "schema was not stored",
        )),
        Err(BrokerError::IncompatibleSchema(reason)) => {
            Err(AdminError::new(StatusCode::CONFLICT, reason))
        }
        Err(e) => Err(be(e)),
    }
}

async fn remove(
    State(b): S,
    Path((t, ns, tp)): Path<(String, String, String)>,
) -> AdminResult<Json<Value>> {
    let name = topic(&b, &t, &ns, &tp).await?;
    let version = schema::delete(b.metadata.as_ref(), &name)
        .await
        .map_err(be)?;
    // Pulsar answers version -1 when there was nothing to delete.
    let version = version.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX));
    Ok(Json(json!({ "version": version })))
}

const SCHEMAS: &str = "/admin/v2/schemas/{tenant}/{namespace}/{topic}";

/// The schema operations of the OpenAPI description: (method, path, summary).
pub(super) fn openapi_operations() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "get",
            format!("{SCHEMAS}/schema"),
            "Get the latest schema of a topic (404 if none or deleted)",
        ),
        (
            "post",
            format!("{SCHEMAS}/schema"),
            "Upload a schema (409 if its type differs from the topic's schema)",
        ),
        (
            "delete",
            format!("{SCHEMAS}/schema"),
            "Delete a topic's schema (version -1 if it had none)",
        ),
        (
            "get",
            format!("{SCHEMAS}/schema/{{version}}"),
            "Get one version of a topic's schema",
        ),
        (
            "get",
            format!("{SCHEMAS}/schemas"),
            "Get every version of a topic's schema since its last deletion",
        ),
    ]
}

/// The request and response bodies of the schema operations (OpenAPI components).
pub(super) fn openapi_components() -> Value {
    let int = json!({"type": "integer"});
    let string = json!({"type": "string"});
    let props = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let types = json!({"type": "string", "enum": SchemaType::names()});
    json!({
        // `schema` and `properties` may be null or absent (empty definition, no properties).
        "PostSchemaPayload": {"type": "object", "required": ["type"], "properties": {
            "type": types, "schema": {"type": "string", "nullable": true},
            "properties": {"type": "object", "nullable": true,
                           "additionalProperties": {"type": "string"}}}},
        "GetSchemaResponse": {"type": "object",
            "required": ["version", "type", "timestamp", "data", "properties"],
            "properties": {"version": {"type": "integer", "minimum": 0}, "type": types,
                           "timestamp": int, "data": string, "properties": props}},
        "GetAllVersionsSchemaResponse": {"type": "object", "required": ["getSchemaResponses"],
            "properties": {"getSchemaResponses": {"type": "array",
                "items": {"$ref": "#/components/schemas/GetSchemaResponse"}}}},
        "PostSchemaResponse": {"type": "object", "required": ["version"], "properties": {
            "version": {"type": "object", "required": ["version"], "properties": {
                "version": {"type": "integer", "minimum": 0}}}}},
        "DeleteSchemaResponse": {"type": "object", "required": ["version"], "properties": {
            "version": {"type": "integer", "minimum": -1}}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_the_api_description() {
        assert!(valid_topic("orders-partition-1"));
        assert!(valid_topic("a.b=c:d_e"));
        assert!(!valid_topic("null,null"));
        assert!(!valid_topic("-leading"));
        assert!(!valid_topic(""));
        assert!(!valid_topic(&"x".repeat(65)));
    }

    #[test]
    fn get_schema_response_has_pulsars_fields() {
        let mut e = SchemaEntry::new(
            SchemaType::from_name("AVRO").expect("AVRO"),
            b"{}".to_vec(),
            BTreeMap::new(),
        );
        e.properties.insert("k".into(), "v".into());
        let v = schema_json(3, &e);
        assert_eq!(v["version"], 3);
        assert_eq!(v["type"], "AVRO");
        assert_eq!(v["data"], "{}");
        assert_eq!(v["properties"]["k"], "v");
        assert!(v["timestamp"].as_i64().is_some_and(|t| t > 0));
    }
}
