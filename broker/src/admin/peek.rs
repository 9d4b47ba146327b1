//! `GET .../subscription/{sub}/position/{n}`: the n-th unacknowledged message of a
//! subscription, as Pulsar returns it: the payload as the body, the message metadata in
//! `X-Pulsar-*` headers.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use magnetar_client::wire::proto::MessageMetadata;
use prost::Message as _;

use super::common::{bad_request, be, not_found, precondition};
use super::subscriptions::{load, parse_u64, scan, sub_names, subscription, targets, Scan};
use super::topic_ops::checked_topic;
use super::AdminResult;
use crate::broker::Broker;
use crate::position::Position;

fn header(h: &mut HeaderMap, name: &str, value: impl ToString) {
    if let (Ok(n), Ok(v)) = (
        HeaderName::try_from(name),
        HeaderValue::from_str(&value.to_string()),
    ) {
        h.insert(n, v);
    }
}

/// Milliseconds since the epoch as Pulsar's admin API writes times
/// (`yyyy-MM-ddTHH:mm:ss.SSS+0000`, UTC).
fn format_ms_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}+0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Splits a stored entry `[0x0e01][crc][size][metadata][payload]` into metadata and payload.
fn split_entry(raw: &Bytes) -> (Option<MessageMetadata>, Bytes) {
    if raw.len() >= 10 && raw[0] == 0x0e && raw[1] == 0x01 {
        let size = u32::from_be_bytes([raw[6], raw[7], raw[8], raw[9]]) as usize;
        if raw.len() - 10 >= size {
            if let Ok(md) = MessageMetadata::decode(&raw[10..10 + size]) {
                return (Some(md), raw.slice(10 + size..));
            }
        }
    }
    (None, raw.clone())
}

pub(super) async fn peek(
    State(b): State<Arc<Broker>>,
    Path((t, ns, topic, sub, n)): Path<(String, String, String, String, String)>,
) -> AdminResult<Response> {
    let n = parse_u64(&n, "message position")?;
    if n == 0 {
        return Err(bad_request("message position starts at 1"));
    }
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    let parts = targets(&b, &name).await?;
    if parts.len() != 1 || parts[0] != name {
        return Err(precondition(
            "Peek messages on a partitioned topic is not allowed; use a partition",
        ));
    }
    let tp = load(&b, &name).await?;
    if !sub_names(&tp).contains(&sub) {
        return Err(not_found("Subscription not found"));
    }
    let s = subscription(&tp, &sub).await?;
    let mut left = n;
    let hit = scan(&tp, &s, |_, _| {
        left -= 1;
        left == 0
    })
    .await?;
    let Scan::Hit(pos, raw) = hit else {
        return Err(not_found("Message not found"));
    };
    Ok(message_response(pos, &raw))
}

/// `GET .../{topic}/ledger/{ledgerId}/entry/{entryId}`: one stored message by id.
pub(super) async fn by_id(
    State(b): State<Arc<Broker>>,
    Path((t, ns, topic, ledger, entry)): Path<(String, String, String, String, String)>,
) -> AdminResult<Response> {
    let pos = Position::new(
        parse_u64(&ledger, "ledgerId")?,
        parse_u64(&entry, "entryId")?,
    );
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    let parts = targets(&b, &name).await?;
    if parts.len() != 1 || parts[0] != name {
        return Err(precondition("Use a partition of a partitioned topic"));
    }
    let tp = load(&b, &name).await?;
    if tp.log.last_confirmed().is_none_or(|l| pos > l) {
        return Err(not_found(format!("Message {pos} not found")));
    }
    let found = tp.log.read(pos, 1).await.map_err(be)?;
    match found.into_iter().next() {
        Some((p, raw)) if p == pos => Ok(message_response(pos, &raw)),
        _ => Err(not_found(format!("Message {pos} not found"))),
    }
}

/// The payload as the body, metadata in Pulsar's `X-Pulsar-*` headers.
fn message_response(pos: Position, raw: &Bytes) -> Response {
    let (md, payload) = split_entry(raw);
    let mut h = HeaderMap::new();
    header(
        &mut h,
        "X-Pulsar-Message-ID",
        format!("{}:{}", pos.ledger, pos.entry),
    );
    header(&mut h, "Content-Type", "application/octet-stream");
    if let Some(md) = md {
        header(
            &mut h,
            "X-Pulsar-publish-time",
            format_ms_utc(md.publish_time),
        );
        header(&mut h, "X-Pulsar-producer-name", &md.producer_name);
        header(&mut h, "X-Pulsar-sequence-id", md.sequence_id);
        if let Some(k) = &md.partition_key {
            header(&mut h, "X-Pulsar-partition-key", k);
        }
        if let Some(et) = md.event_time {
            header(&mut h, "X-Pulsar-event-time", format_ms_utc(et));
        }
        if let Some(nb) = md.num_messages_in_batch {
            header(&mut h, "X-Pulsar-num-batch-message", nb);
        }
        for kv in &md.properties {
            header(&mut h, &format!("X-Pulsar-PROPERTY-{}", kv.key), &kv.value);
        }
    }
    (StatusCode::OK, h, payload).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_formatted_like_pulsar() {
        assert_eq!(super::format_ms_utc(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(
            super::format_ms_utc(1_709_210_096_789),
            "2024-02-29T12:34:56.789+0000"
        );
    }
}
