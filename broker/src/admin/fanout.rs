//! Partitioned topics in cluster mode: the partitions of one topic may be owned by several
//! brokers, so an admin request on the partitioned topic is carried out on each partition
//! by the broker that owns it, over the owner's admin API (`/admin/v2/persistent/...` with
//! the partition's name), and the answers are combined here.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use bytes::Bytes;
use serde_json::Value;

use super::common::be;
use super::{AdminError, AdminResult};
use crate::broker::Broker;
use crate::cluster::ownership::LookupAnswer;
use crate::names::TopicName;

/// How long one forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .no_proxy()
            // The owner may have moved since the lookup: follow its redirects.
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_default()
    })
}

/// The web service URL of the broker owning `p`, or `None` when this broker serves it
/// (always in standalone).
pub(super) async fn remote_owner(b: &Broker, p: &TopicName) -> AdminResult<Option<String>> {
    let Some(cluster) = b.cluster.get() else {
        return Ok(None);
    };
    match cluster.lookup(p, false).await.map_err(be)? {
        LookupAnswer::Here => Ok(None),
        LookupAnswer::Elsewhere(o) => Ok(Some(o.web_service_url)),
    }
}

/// The admin path of topic (or partition) `p` followed by `suffix` (`/stats`, `?force=true`).
pub(super) fn partition_path(p: &TopicName, suffix: &str) -> String {
    format!(
        "/admin/v2/persistent/{}/{}/{}{suffix}",
        p.tenant, p.namespace, p.local
    )
}

/// Sends `method path` to the broker at `base_url`; returns the status and the JSON body
/// (`Null` when empty or not JSON).
pub(super) async fn forward(
    base_url: &str,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> AdminResult<(StatusCode, Value)> {
    let url = format!("{}{path}", base_url.trim_end_matches('/'));
    let mut req = http().request(method, &url);
    if let Some(body) = body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let resp = req.send().await.map_err(|e| {
        AdminError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("partition owner {base_url} unreachable: {e}"),
        )
    })?;
    let status =
        StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = resp.bytes().await.map_err(|e| {
        AdminError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("partition owner {base_url} answer failed: {e}"),
        )
    })?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// Sends a bodiless `method path` to the owner at `base_url` for its effect: a success or a
/// 404 (the owner has nothing to act on) is done; any other answer is passed on.
pub(super) async fn forward_done(base_url: &str, method: Method, path: &str) -> AdminResult<()> {
    let (status, v) = forward(base_url, method, path, None).await?;
    if status.is_success() || status == StatusCode::NOT_FOUND {
        Ok(())
    } else {
        Err(passed_on(status, &v))
    }
}

/// An error answer of an owner, passed on with its status and reason.
pub(super) fn passed_on(status: StatusCode, body: &Value) -> AdminError {
    let reason = body["reason"].as_str().map_or_else(
        || format!("partition owner answered {status}"),
        str::to_string,
    );
    AdminError::new(status, reason)
}

/// True if `method rest` (`rest` follows the topic in the path) is a subscription
/// operation that applies to every partition of a partitioned topic. Reads other than the
/// listing (peek) name one partition and are not fanned out.
pub(super) fn is_subscription_op(method: &Method, rest: &str) -> bool {
    if method == Method::GET {
        return rest == "subscriptions";
    }
    rest.starts_with("subscription/") || rest.starts_with("all_subscription/")
}

/// Carries out a subscription operation on every partition of `base` at its owner (this
/// broker included, through its own API so ownership is checked the same way) and combines
/// the answers: the union of subscription names for a listing; otherwise success if every
/// partition succeeded, 404 if none had the subscription, else the first failure.
pub(super) async fn subscription_op(
    b: &Arc<Broker>,
    base: &TopicName,
    partitions: u32,
    method: Method,
    rest: &str,
    query: Option<&str>,
    body: Bytes,
) -> AdminResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let suffix = match query {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    };
    let body = (!body.is_empty()).then_some(body);
    let mut names = std::collections::BTreeSet::new();
    let (mut ok, mut missing) = (0usize, 0usize);
    for i in 0..partitions {
        let p = base.partition(i);
        let owner = remote_owner(b, &p)
            .await?
            .unwrap_or_else(|| b.http_url.clone());
        let (status, v) = forward(
            &owner,
            method.clone(),
            &partition_path(&p, &suffix),
            body.clone(),
        )
        .await?;
        if status.is_success() {
            ok += 1;
            if let Some(list) = v.as_array() {
                names.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
            }
        } else if status == StatusCode::NOT_FOUND {
            missing += 1;
        } else {
            return Err(passed_on(status, &v));
        }
    }
    if rest == "subscriptions" {
        return Ok(axum::Json(names.into_iter().collect::<Vec<_>>()).into_response());
    }
    if ok == 0 && missing > 0 {
        return Err(super::common::not_found("Subscription not found"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
