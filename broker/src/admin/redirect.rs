//! In cluster mode, topic admin requests go to the broker that owns the topic, as in
//! Pulsar: a request for a topic served elsewhere is answered with `307 Temporary Redirect`
//! to the same path on the owner's web service URL. Partitioned topics (whose partitions may
//! live on several brokers) and everything else are served here.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::broker::Broker;
use crate::cluster::ownership::LookupAnswer;
use crate::names::TopicName;

const PREFIX: &str = "/admin/v2/persistent/";

/// The topic a request path is about, if any.
fn topic_of(path: &str) -> Option<TopicName> {
    let rest = path.strip_prefix(PREFIX)?;
    let mut segs = rest.split('/');
    let (t, ns, topic) = (segs.next()?, segs.next()?, segs.next()?);
    if topic.is_empty() || (topic == "partitioned" && segs.next().is_none()) {
        return None;
    }
    TopicName::parse(&format!("persistent://{t}/{ns}/{topic}")).ok()
}

/// Largest request body passed on to partition owners.
const MAX_BODY: usize = 1 << 20;

/// The part of a topic path after the topic's own segment (`stats`, `subscription/s`, ...).
fn rest_of(path: &str) -> &str {
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    rest.splitn(4, '/').nth(3).unwrap_or_default()
}

/// Middleware: redirects topic requests to the owning broker.
pub(super) async fn to_owner(State(b): State<Arc<Broker>>, req: Request, next: Next) -> Response {
    let Some(cluster) = b.cluster.get() else {
        return next.run(req).await;
    };
    let Some(name) = topic_of(req.uri().path()) else {
        return next.run(req).await;
    };
    let partitions = if name.partition_index() < 0 {
        b.partitions(&name).await.unwrap_or(0)
    } else {
        0
    };
    if partitions > 0 {
        // A partitioned topic: subscription operations go to every partition's owner; the
        // other handlers visit the partitions themselves (see `fanout`).
        let rest = rest_of(req.uri().path()).to_string();
        if super::fanout::is_subscription_op(req.method(), &rest) {
            let method = req.method().clone();
            let query = req.uri().query().map(str::to_string);
            let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
                Ok(body) => body,
                Err(e) => {
                    return super::common::bad_request(format!("cannot read body: {e}"))
                        .into_response()
                }
            };
            return super::fanout::subscription_op(
                &b,
                &name,
                partitions,
                method,
                &rest,
                query.as_deref(),
                body,
            )
            .await
            .into_response();
        }
        return next.run(req).await;
    }
    if let Ok(LookupAnswer::Elsewhere(owner)) = cluster.lookup(&name, false).await {
        let path_and_query = req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
        let location = format!(
            "{}{path_and_query}",
            owner.web_service_url.trim_end_matches('/')
        );
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::topic_of;

    #[test]
    fn only_topic_paths_name_a_topic() {
        assert!(topic_of("/admin/v2/persistent/public/default").is_none());
        assert!(topic_of("/admin/v2/persistent/public/default/partitioned").is_none());
        assert!(topic_of("/admin/v2/clusters/x").is_none());
        let t = topic_of("/admin/v2/persistent/public/default/t1/stats").expect("topic");
        assert_eq!(t.to_string(), "persistent://public/default/t1");
        assert!(topic_of("/admin/v2/persistent/public/default/t1").is_some());
    }

    #[test]
    fn rest_is_what_follows_the_topic() {
        use super::rest_of;
        assert_eq!(
            rest_of("/admin/v2/persistent/a/b/t/subscription/s/skip/1"),
            "subscription/s/skip/1"
        );
        assert_eq!(
            rest_of("/admin/v2/persistent/a/b/t/subscriptions"),
            "subscriptions"
        );
        assert_eq!(rest_of("/admin/v2/persistent/a/b/t"), "");
    }
}
