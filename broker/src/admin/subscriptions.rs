//! Subscription administration: list, create at a position, delete, skip, clear backlog,
//! reset cursor (by time or message id), expire messages (peek is in `peek.rs`).
//!
//! Every cursor move goes through the subscription's own task (`seek`), which also
//! disconnects its consumers so they resume from the new position, as in Pulsar.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;

use super::common::{bad_request, be, conflict, not_found, parse_opt_body, precondition};
use super::topic_ops::checked_topic;
use super::AdminResult;
use crate::broker::Broker;
use crate::dispatch::SubType;
use crate::names::TopicName;
use crate::position::Position;
use crate::storage::InitialPosition;
use crate::subscription::{SeekTarget, SubscriptionHandle};
use crate::topic::Topic;

type S = State<Arc<Broker>>;
type SubPath = Path<(String, String, String, String)>;
type Params = Query<HashMap<String, String>>;

const P: &str = "/admin/v2/persistent/:t/:ns/:topic";

pub(super) fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route(&format!("{P}/subscriptions"), get(list))
        .route(
            &format!("{P}/subscription/:sub"),
            put(create).delete(remove),
        )
        .route(&format!("{P}/subscription/:sub/skip/:n"), post(skip))
        .route(&format!("{P}/subscription/:sub/skip_all"), post(skip_all))
        .route(
            &format!("{P}/subscription/:sub/resetcursor/:ts"),
            post(reset_by_time),
        )
        .route(
            &format!("{P}/subscription/:sub/resetcursor"),
            post(reset_by_id),
        )
        .route(
            &format!("{P}/subscription/:sub/expireMessages/:secs"),
            post(expire),
        )
        .route(
            &format!("{P}/all_subscription/expireMessages/:secs"),
            post(expire_all),
        )
        .route(
            &format!("{P}/subscription/:sub/position/:n"),
            get(super::peek::peek),
        )
        .route(
            &format!("{P}/ledger/:ledger/entry/:entry"),
            get(super::peek::by_id),
        )
}

/// True for partition `i` of a partitioned topic with more than `i` partitions (which
/// exists for clients whether or not it was used yet).
pub(super) async fn is_declared_partition(b: &Broker, name: &TopicName) -> AdminResult<bool> {
    let i = name.partition_index();
    if i < 0 {
        return Ok(false);
    }
    let base = name.base();
    Ok(i64::from(i) < i64::from(b.partitions(&base).await.map_err(be)?))
}

/// The topics a request applies to: the partitions of a partitioned topic, or the topic.
pub(super) async fn targets(b: &Broker, name: &TopicName) -> AdminResult<Vec<TopicName>> {
    if name.partition_index() < 0 {
        let n = b.partitions(name).await.map_err(be)?;
        if n > 0 {
            return Ok((0..n).map(|i| name.partition(i)).collect());
        }
    }
    if !b.topic_exists(name).await.map_err(be)? && !is_declared_partition(b, name).await? {
        return Err(not_found("Topic not found"));
    }
    Ok(vec![name.clone()])
}

pub(super) async fn load(b: &Broker, name: &TopicName) -> AdminResult<Arc<Topic>> {
    b.get_topic(name, false).await.map_err(be)
}

/// Durable subscriptions of a loaded topic (including cursors with no running task).
pub(super) fn sub_names(topic: &Topic) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = topic.log.cursor_names().into_iter().collect();
    names.extend(
        topic
            .subscriptions()
            .iter()
            .filter(|s| s.durable)
            .map(|s| s.name.clone()),
    );
    names
}

/// The running subscription, starting its task from the stored cursor if needed.
pub(super) async fn subscription(topic: &Topic, sub: &str) -> AdminResult<Arc<SubscriptionHandle>> {
    if let Some(s) = topic.subscription(sub) {
        return Ok(s);
    }
    if !topic.log.cursor_names().iter().any(|c| c == sub) {
        return Err(not_found("Subscription not found"));
    }
    topic
        .subscribe(sub, SubType::Exclusive, true, InitialPosition::Latest)
        .await
        .map_err(be)
}

async fn list(
    State(b): S,
    Path((t, ns, topic)): Path<(String, String, String)>,
) -> AdminResult<Json<Vec<String>>> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    let mut all = BTreeSet::new();
    for p in targets(&b, &name).await? {
        if b.topic_exists(&p).await.map_err(be)? {
            all.extend(sub_names(&*load(&b, &p).await?));
        }
    }
    Ok(Json(all.into_iter().collect()))
}

/// A Pulsar `MessageId` body: `{ledgerId, entryId}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageIdBody {
    ledger_id: i64,
    entry_id: i64,
}

fn initial_position(
    q: &HashMap<String, String>,
    body: Option<MessageIdBody>,
) -> AdminResult<InitialPosition> {
    if let Some(m) = body {
        if m.ledger_id < 0 || m.entry_id < 0 {
            // Pulsar's MessageId.latest/earliest are (-1,-1) / (-1,-1) with partition -1.
            return Ok(if m.ledger_id == i64::MAX {
                InitialPosition::Latest
            } else {
                InitialPosition::Earliest
            });
        }
        return Ok(if m.ledger_id == i64::MAX {
            InitialPosition::Latest
        } else {
            InitialPosition::At(Position::new(m.ledger_id as u64, m.entry_id as u64))
        });
    }
    match q.get("messageId").map(String::as_str) {
        None | Some("latest") => Ok(InitialPosition::Latest),
        Some("earliest") => Ok(InitialPosition::Earliest),
        Some(other) => match other.split_once(':') {
            Some((l, e)) => match (l.parse::<u64>(), e.parse::<u64>()) {
                (Ok(l), Ok(e)) => Ok(InitialPosition::At(Position::new(l, e))),
                _ => Err(bad_request(format!("invalid messageId {other:?}"))),
            },
            None => Err(bad_request(format!("invalid messageId {other:?}"))),
        },
    }
}

fn check_sub_name(sub: &str) -> AdminResult<()> {
    if sub.is_empty() || sub.len() > 1024 || sub.chars().any(char::is_control) {
        return Err(bad_request("invalid subscription name"));
    }
    Ok(())
}

async fn create(
    State(b): S,
    Path((t, ns, topic, sub)): SubPath,
    Query(q): Params,
    body: Bytes,
) -> AdminResult<StatusCode> {
    check_sub_name(&sub)?;
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    let initial = initial_position(&q, parse_opt_body(&body)?)?;
    let parts = targets(&b, &name).await?;
    // Partitions of a partitioned topic are created on first use, as clients would.
    let partitioned =
        parts.len() > 1 || parts.first() != Some(&name) || is_declared_partition(&b, &name).await?;
    for p in &parts {
        let tp = b.get_topic(p, partitioned).await.map_err(be)?;
        if sub_names(&tp).contains(&sub) {
            return Err(conflict("Subscription already exists for topic"));
        }
    }
    for p in &parts {
        let tp = load(&b, p).await?;
        let s = tp
            .subscribe(&sub, SubType::Exclusive, true, initial)
            .await
            .map_err(be)?;
        s.cursor.flush().await.map_err(be)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(b): S,
    Path((t, ns, topic, sub)): SubPath,
    Query(q): Params,
) -> AdminResult<StatusCode> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    let force = q.get("force").is_some_and(|v| v == "true");
    let mut found = false;
    for p in targets(&b, &name).await? {
        if !b.topic_exists(&p).await.map_err(be)? {
            continue;
        }
        let tp = load(&b, &p).await?;
        if !sub_names(&tp).contains(&sub) {
            continue;
        }
        found = true;
        let s = subscription(&tp, &sub).await?;
        if s.counters.consumers.load(Ordering::Relaxed) > 0 {
            if !force {
                return Err(precondition("Subscription has active connected consumers"));
            }
            s.close().await;
        } else {
            s.unsubscribe(None).await.map_err(be)?;
        }
        tp.remove_subscription(&sub).await.map_err(be)?;
        if tp.log.cursor_names().contains(&sub) {
            tp.log.delete_cursor(&sub).await.map_err(be)?;
        }
    }
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found("Subscription not found"))
    }
}

/// First position the subscription has not acknowledged.
pub(super) fn start_of_backlog(topic: &Topic, s: &SubscriptionHandle) -> Position {
    s.cursor.mark_delete().map_or_else(
        || topic.log.first_position(),
        |m| topic.log.next_position(m),
    )
}

/// The end of the log (where the next entry goes).
fn end_of_log(topic: &Topic) -> Position {
    topic.log.last_confirmed().map_or_else(
        || topic.log.first_position(),
        |l| topic.log.next_position(l),
    )
}

const SCAN_BATCH: usize = 100;
const SCAN_LIMIT: usize = 100_000;

/// Where a scan of the backlog stopped.
pub(super) enum Scan {
    /// `stop` said yes at this entry.
    Hit(Position, Bytes),
    /// The end of the log was reached.
    End,
    /// The scan limit was reached; this is the next entry to look at.
    GaveUp(Position),
}

/// Walks unacknowledged entries from the start of the backlog until `stop` says yes, the
/// log ends, or [`SCAN_LIMIT`] entries were looked at.
pub(super) async fn scan<F>(topic: &Topic, s: &SubscriptionHandle, mut stop: F) -> AdminResult<Scan>
where
    F: FnMut(Position, &Bytes) -> bool,
{
    let mut pos = start_of_backlog(topic, s);
    let Some(last) = topic.log.last_confirmed() else {
        return Ok(Scan::End);
    };
    for _ in 0..SCAN_LIMIT / SCAN_BATCH {
        if pos > last {
            return Ok(Scan::End);
        }
        let batch = topic.log.read(pos, SCAN_BATCH).await.map_err(be)?;
        let Some((end, _)) = batch.last() else {
            return Ok(Scan::End);
        };
        let end = *end;
        for (p, data) in batch {
            if !s.cursor.is_acked(p) && stop(p, &data) {
                return Ok(Scan::Hit(p, data));
            }
        }
        pos = topic.log.next_position(end);
    }
    Ok(Scan::GaveUp(pos))
}

async fn seek(s: &SubscriptionHandle, target: SeekTarget) -> AdminResult<()> {
    s.seek(target).await.map_err(be)
}

pub(super) fn parse_u64(v: &str, what: &str) -> AdminResult<u64> {
    v.parse()
        .map_err(|_| bad_request(format!("{what} must be a non-negative integer")))
}

/// Runs `op` on the subscription of every target topic; 404 if no target has it.
async fn for_each_sub<F, Fut>(
    b: &Broker,
    name: &TopicName,
    sub: &str,
    mut op: F,
) -> AdminResult<StatusCode>
where
    F: FnMut(Arc<Topic>, Arc<SubscriptionHandle>) -> Fut,
    Fut: std::future::Future<Output = AdminResult<()>>,
{
    let mut found = false;
    for p in targets(b, name).await? {
        if !b.topic_exists(&p).await.map_err(be)? {
            continue;
        }
        let tp = load(b, &p).await?;
        if !sub_names(&tp).contains(sub) {
            continue;
        }
        found = true;
        let s = subscription(&tp, sub).await?;
        op(tp, s).await?;
    }
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found("Subscription not found"))
    }
}

async fn skip(
    State(b): S,
    Path((t, ns, topic, sub, n)): Path<(String, String, String, String, String)>,
) -> AdminResult<StatusCode> {
    let n = parse_u64(&n, "number of messages")?;
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    for_each_sub(&b, &name, &sub, |tp, s| async move {
        if n == 0 {
            return Ok(());
        }
        let mut left = n;
        let hit = scan(&tp, &s, |_, _| {
            left -= 1;
            left == 0
        })
        .await?;
        let to = match hit {
            Scan::Hit(p, _) => tp.log.next_position(p),
            Scan::End => end_of_log(&tp),
            Scan::GaveUp(p) => p,
        };
        seek(&s, SeekTarget::Position(to)).await
    })
    .await
}

async fn skip_all(State(b): S, Path((t, ns, topic, sub)): SubPath) -> AdminResult<StatusCode> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    for_each_sub(&b, &name, &sub, |tp, s| async move {
        seek(&s, SeekTarget::Position(end_of_log(&tp))).await
    })
    .await
}

async fn reset_by_time(
    State(b): S,
    Path((t, ns, topic, sub, ts)): Path<(String, String, String, String, String)>,
) -> AdminResult<StatusCode> {
    let ts = parse_u64(&ts, "timestamp")?;
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    for_each_sub(&b, &name, &sub, |_, s| async move {
        seek(&s, SeekTarget::PublishTime(ts)).await
    })
    .await
}

async fn reset_by_id(
    State(b): S,
    Path((t, ns, topic, sub)): SubPath,
    body: Bytes,
) -> AdminResult<StatusCode> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    let id: MessageIdBody = super::common::parse_body(&body)?;
    if id.ledger_id < 0 || id.entry_id < 0 {
        return Err(bad_request("ledgerId and entryId must be non-negative"));
    }
    let to = Position::new(id.ledger_id as u64, id.entry_id as u64);
    for_each_sub(&b, &name, &sub, |_, s| async move {
        seek(&s, SeekTarget::Position(to)).await
    })
    .await
}

/// Acknowledges every entry published more than `secs` ago (never moves backwards). Goes
/// through the lifecycle's expiry, so consumers stay connected and the expired messages
/// count in the `msgExpired` stats.
async fn expire_sub(tp: Arc<Topic>, s: Arc<SubscriptionHandle>, secs: u64) -> AdminResult<()> {
    crate::lifecycle::expire_messages(&tp, &s, secs)
        .await
        .map_err(be)?;
    Ok(())
}

async fn expire(
    State(b): S,
    Path((t, ns, topic, sub, secs)): Path<(String, String, String, String, String)>,
) -> AdminResult<StatusCode> {
    let secs = parse_u64(&secs, "expiration time")?;
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    for_each_sub(&b, &name, &sub, |tp, s| expire_sub(tp, s, secs)).await
}

async fn expire_all(State(b): S, Path((t, ns, topic, secs)): SubPath) -> AdminResult<StatusCode> {
    let secs = parse_u64(&secs, "expiration time")?;
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    for p in targets(&b, &name).await? {
        if !b.topic_exists(&p).await.map_err(be)? {
            continue;
        }
        let tp = load(&b, &p).await?;
        for sub in sub_names(&tp) {
            let s = subscription(&tp, &sub).await?;
            expire_sub(tp.clone(), s, secs).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
