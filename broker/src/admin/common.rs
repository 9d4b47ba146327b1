//! Helpers shared by the admin handlers: metadata access with Pulsar's error statuses,
//! request bodies parsed into `{"reason": ...}` errors, and name checks.

use axum::http::StatusCode;
use bytes::Bytes;
use magnetar_metadata::MetadataError;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{AdminError, AdminResult};
use crate::broker::Broker;
use crate::error::BrokerError;

/// 400 with a reason.
pub(super) fn bad_request(reason: impl Into<String>) -> AdminError {
    AdminError::new(StatusCode::BAD_REQUEST, reason)
}

/// 404 with a reason.
pub(super) fn not_found(reason: impl Into<String>) -> AdminError {
    AdminError::new(StatusCode::NOT_FOUND, reason)
}

/// 409 with a reason.
pub(super) fn conflict(reason: impl Into<String>) -> AdminError {
    AdminError::new(StatusCode::CONFLICT, reason)
}

/// 412 with a reason.
pub(super) fn precondition(reason: impl Into<String>) -> AdminError {
    AdminError::new(StatusCode::PRECONDITION_FAILED, reason)
}

/// Maps a metadata failure (500, or 400 for keys/values the store refuses).
pub(super) fn md(e: MetadataError) -> AdminError {
    match e {
        MetadataError::InvalidArgument(r) => bad_request(r),
        e => AdminError::from(BrokerError::from(e)),
    }
}

/// Maps a broker error.
pub(super) fn be(e: BrokerError) -> AdminError {
    match e {
        BrokerError::Metadata(m) => md(m),
        BrokerError::Json(j) => bad_request(format!("invalid stored JSON: {j}")),
        e => AdminError::from(e),
    }
}

/// True for a valid tenant, namespace or cluster name (Pulsar's character set).
pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | ':'))
}

/// 400 unless `s` is a valid name.
pub(super) fn check_name(what: &str, s: &str) -> AdminResult<()> {
    if valid_name(s) {
        Ok(())
    } else {
        Err(bad_request(format!("{what} name is not valid: {s:?}")))
    }
}

/// Parses a JSON body; empty or malformed bodies are 400.
pub(super) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> AdminResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request("request body is required"));
    }
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid request body: {e}")))
}

/// 400 unless `value` has the JSON shape of `T` (so stored documents always parse).
pub(super) fn check_shape<T: DeserializeOwned>(what: &str, value: &Value) -> AdminResult<()> {
    T::deserialize(value)
        .map(|_| ())
        .map_err(|e| bad_request(format!("invalid {what}: {e}")))
}

/// Parses an optional JSON body (empty = `None`).
pub(super) fn parse_opt_body<T: DeserializeOwned>(body: &Bytes) -> AdminResult<Option<T>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse_body(body).map(Some)
}

/// True if any key exists under `prefix`.
pub(super) async fn any_under(b: &Broker, prefix: &str) -> AdminResult<bool> {
    Ok(!b
        .metadata
        .list(prefix, None, 1)
        .await
        .map_err(md)?
        .is_empty())
}

/// A stored JSON value, or 404 naming `what`.
pub(super) async fn get_stored(
    b: &Broker,
    key: &str,
    what: &str,
) -> AdminResult<(Value, magnetar_metadata::Version)> {
    match b.metadata.get(key).await.map_err(md)? {
        Some(v) => Ok((
            serde_json::from_slice(&v.value).unwrap_or(Value::Null),
            v.version,
        )),
        None => Err(not_found(format!("{what} does not exist"))),
    }
}

/// Writes `value` at `key` if it is still at `version` (204); 409 naming `what` if it
/// changed since it was read.
pub(super) async fn put_at_version(
    b: &Broker,
    key: &str,
    value: bytes::Bytes,
    version: magnetar_metadata::Version,
    what: &str,
) -> AdminResult<axum::http::StatusCode> {
    match b
        .metadata
        .put(
            key,
            value,
            magnetar_metadata::Expect::Version(version),
            None,
        )
        .await
    {
        Ok(_) => Ok(axum::http::StatusCode::NO_CONTENT),
        Err(e) if e.is_bad_version() => Err(conflict(format!("{what} was changed concurrently"))),
        Err(e) => Err(md(e)),
    }
}

/// 404 unless the namespace exists.
pub(super) async fn require_namespace(b: &Broker, t: &str, ns: &str) -> AdminResult<()> {
    check_name("Tenant", t)?;
    check_name("Namespace", ns)?;
    get_stored(b, &format!("/namespaces/{t}/{ns}"), "Namespace")
        .await
        .map(|_| ())
}
