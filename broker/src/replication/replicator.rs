//! One replicator: republishes a topic's entries to one remote cluster.
//!
//! It reads the topic's log from its durable cursor `pulsar.repl.{remote}`, sends every
//! entry that [`should_replicate`] (metadata unchanged except `replicated_from` = the local
//! cluster) through a `magnetar_client` producer with a stable name and a sequence id
//! derived from the entry's position, and acknowledges the cursor cumulatively only after
//! the remote's SEND_RECEIPT, in log order. After a restart or a failure it resumes after
//! the cursor's mark-delete; the remote's deduplication drops what it already stored.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use magnetar_client::{PulsarClient, SendFuture};
use magnetar_metadata::MetadataStore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::decide::{cursor_name, producer_name, sequence_id, should_replicate, split_entry};
use crate::error::{BrokerError, Result};
use crate::position::Position;
use crate::storage::{InitialPosition, SubCursor};
use crate::topic::Topic;

/// Most entries sent and not yet acknowledged by the remote.
const MAX_IN_FLIGHT: usize = 1_000;
/// Entries read from the log per step.
const READ_BATCH: usize = 100;
/// A send outstanding this long marks the remote as disconnected (the producer keeps
/// reconnecting and resending on its own).
const STALL: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Counters of one replicator, read by topic stats.
#[derive(Debug, Default)]
pub struct ReplicatorStats {
    /// Producer on the remote cluster is up and receipts arrive.
    pub connected: AtomicBool,
    /// Entries not yet acknowledged by the remote.
    pub backlog: AtomicU64,
    /// Messages replicated (acknowledged by the remote).
    pub msg_out: AtomicU64,
    /// Bytes replicated.
    pub bytes_out: AtomicU64,
    /// Messages per second, as `f64` bits (sampled by the replication loop).
    pub rate_bits: AtomicU64,
    /// Age of the oldest message sent and not yet acknowledged by the remote (seconds).
    pub delay_secs: AtomicU64,
}

/// What a replicator needs.
pub struct ReplicatorCtx {
    /// The topic replicated.
    pub topic: Arc<Topic>,
    /// Local cluster name (`replicated_from`).
    pub local: String,
    /// Remote cluster name.
    pub remote: String,
    /// Where `/clusters/{remote}` is read.
    pub metadata: Arc<dyn MetadataStore>,
    /// Counters.
    pub stats: Arc<ReplicatorStats>,
    /// Stops the replicator.
    pub stop: CancellationToken,
}

/// Reads `brokerServiceUrl` of a cluster from `/clusters/{name}`.
pub async fn remote_url(metadata: &dyn MetadataStore, cluster: &str) -> Result<String> {
    let v = metadata
        .get(&format!("/clusters/{cluster}"))
        .await?
        .ok_or_else(|| BrokerError::InvalidRequest(format!("cluster {cluster} is not known")))?;
    let data: serde_json::Value = serde_json::from_slice(&v.value)?;
    match data["brokerServiceUrl"].as_str() {
        Some(u) if !u.is_empty() => Ok(u.to_string()),
        _ => Err(BrokerError::InvalidRequest(format!(
            "cluster {cluster} has no brokerServiceUrl"
        ))),
    }
}

/// Runs until stopped: opens the cursor, then connects and pumps, retrying with backoff.
pub async fn run(ctx: ReplicatorCtx) {
    let mut delay = BACKOFF_MIN;
    let cursor = loop {
        match ctx
            .topic
            .log
            .open_cursor(&cursor_name(&ctx.remote), InitialPosition::Earliest)
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                warn!(topic = %ctx.topic.name, remote = %ctx.remote, error = %e, "replicator cursor unavailable");
                if !pause(&ctx.stop, &mut delay).await {
                    return;
                }
            }
        }
    };
    let mut acked = cursor.mark_delete();
    let start = cursor.read_position();
    info!(topic = %ctx.topic.name, remote = %ctx.remote, %start, "replicator started");
    let mut failures = 0u64;
    while !ctx.stop.is_cancelled() {
        update_backlog(&ctx, cursor.as_ref());
        let res = connect(&ctx).await;
        let (client, producer) = match res {
            Ok(p) => p,
            Err(e) => {
                ctx.stats.connected.store(false, Ordering::Relaxed);
                failures += 1;
                if failures % 60 == 1 {
                    warn!(topic = %ctx.topic.name, remote = %ctx.remote, error = %e, failures, "replicator cannot connect");
                }
                if !pause(&ctx.stop, &mut delay).await {
                    break;
                }
                continue;
            }
        };
        ctx.stats.connected.store(true, Ordering::Relaxed);
        failures = 0;
        let from = acked.map_or(start, |p| ctx.topic.log.next_position(p));
        let before = acked;
        let res = pump(&ctx, cursor.as_ref(), &producer, from, &mut acked).await;
        if acked != before {
            delay = BACKOFF_MIN; // made progress: the next failure retries quickly
        }
        ctx.stats.connected.store(false, Ordering::Relaxed);
        drop(producer);
        client.close().await;
        match res {
            Ok(()) => break,
            Err(e) => {
                warn!(topic = %ctx.topic.name, remote = %ctx.remote, error = %e, "replicator failed; restarting");
                if !pause(&ctx.stop, &mut delay).await {
                    break;
                }
            }
        }
    }
    if let Err(e) = cursor.flush().await {
        debug!(topic = %ctx.topic.name, error = %e, "replicator cursor flush failed");
    }
    info!(topic = %ctx.topic.name, remote = %ctx.remote, "replicator stopped");
}

/// Sleeps for the current backoff (doubling it); false if stopped meanwhile.
async fn pause(stop: &CancellationToken, delay: &mut Duration) -> bool {
    let d = *delay;
    *delay = (*delay * 2).min(BACKOFF_MAX);
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.cancelled() => false,
    }
}

async fn connect(ctx: &ReplicatorCtx) -> Result<(PulsarClient, magnetar_client::Producer)> {
    let url = remote_url(ctx.metadata.as_ref(), &ctx.remote).await?;
    let client = PulsarClient::builder(url)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .map_err(client_err)?;
    let topic = ctx.topic.name.to_string();
    let producer = client
        .producer()
        .topic(topic.clone())
        .name(producer_name(&ctx.local, &topic))
        .send_timeout(Duration::ZERO)
        .max_pending(MAX_IN_FLIGHT)
        .create()
        .await;
    match producer {
        Ok(p) => Ok((client, p)),
        Err(e) => {
            client.close().await;
            Err(client_err(e))
        }
    }
}

fn client_err(e: magnetar_client::Error) -> BrokerError {
    BrokerError::ServiceNotReady(format!("replication client: {e}"))
}

fn update_backlog(ctx: &ReplicatorCtx, cursor: &dyn SubCursor) {
    if let Some(b) = cursor.backlog() {
        ctx.stats.backlog.store(b, Ordering::Relaxed);
    }
}

struct InFlight {
    pos: Position,
    /// `None`: skipped (not for this remote), acknowledged in order with the rest.
    send: Option<SendFuture>,
    messages: u64,
    bytes: u64,
    sent: Instant,
    /// Publish time of the message (ms since the epoch; 0 if skipped).
    publish_time: u64,
}

/// Sends entries from `from` on, acknowledging the cursor as receipts arrive. Returns
/// `Ok(())` when stopped, an error when the producer failed.
async fn pump(
    ctx: &ReplicatorCtx,
    cursor: &dyn SubCursor,
    producer: &magnetar_client::Producer,
    from: Position,
    acked: &mut Option<Position>,
) -> Result<()> {
    let log = ctx.topic.log.clone();
    let mut lac = log.watch_lac();
    let mut next = from;
    let mut last_read: Option<Position> = None;
    let mut starved = false;
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        if ctx.stop.is_cancelled() {
            return Ok(());
        }
        let available = log.last_confirmed().is_some_and(|l| next <= l) && !starved;
        if available && inflight.len() < MAX_IN_FLIGHT {
            let want = READ_BATCH.min(MAX_IN_FLIGHT - inflight.len());
            let entries = log.read(next, want).await?;
            match entries.last() {
                Some((last, _)) => {
                    next = log.next_position(*last);
                    last_read = Some(*last);
                }
                None => {
                    // Nothing where the log said entries are (a ledger rolled over since
                    // `next` was computed): recompute, and wait a tick rather than spin.
                    if let Some(p) = last_read.or(*acked) {
                        next = log.next_position(p);
                    }
                    starved = true;
                }
            }
            for (pos, raw) in entries {
                inflight.push_back(send_entry(ctx, producer, pos, raw).await?);
            }
            settle(ctx, cursor, &mut inflight, acked, false).await?;
            continue;
        }
        starved = false;
        let front = async {
            match inflight.front_mut().and_then(|f| f.send.as_mut()) {
                Some(f) => f.await.map(|_| ()),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = front => {
                r.map_err(client_err)?;
                settle(ctx, cursor, &mut inflight, acked, true).await?;
            }
            changed = lac.changed() => {
                if changed.is_err() {
                    return Err(BrokerError::ServiceNotReady(format!("{} closed", ctx.topic.name)));
                }
            }
            _ = tick.tick() => {
                let stalled = inflight.front().is_some_and(|f| f.send.is_some() && f.sent.elapsed() > STALL);
                ctx.stats.connected.store(!stalled, Ordering::Relaxed);
                let oldest = inflight.iter().find(|f| f.send.is_some()).map_or(0, |f| f.publish_time);
                ctx.stats.delay_secs.store(age_secs(oldest), Ordering::Relaxed);
                settle(ctx, cursor, &mut inflight, acked, false).await?;
                update_backlog(ctx, cursor);
            }
            _ = ctx.stop.cancelled() => return Ok(()),
        }
    }
}

async fn send_entry(
    ctx: &ReplicatorCtx,
    producer: &magnetar_client::Producer,
    pos: Position,
    raw: bytes::Bytes,
) -> Result<InFlight> {
    let mut f = InFlight {
        pos,
        send: None,
        messages: 0,
        bytes: raw.len() as u64,
        sent: Instant::now(),
        publish_time: 0,
    };
    let Some((mut md, body)) = split_entry(&raw) else {
        warn!(topic = %ctx.topic.name, %pos, "entry without readable metadata; not replicated");
        return Ok(f);
    };
    if !should_replicate(&md, &ctx.remote) {
        return Ok(f);
    }
    f.messages = md.num_messages_in_batch.map_or(1, |n| n.max(1) as u64);
    f.publish_time = md.publish_time;
    md.replicated_from = Some(ctx.local.clone());
    md.sequence_id = sequence_id(pos);
    f.send = Some(producer.send_raw(md, body).await.map_err(client_err)?);
    Ok(f)
}

/// Pops the completed prefix of `inflight` and acknowledges the cursor up to it. `front_done`:
/// the front's receipt was just awaited.
async fn settle(
    ctx: &ReplicatorCtx,
    cursor: &dyn SubCursor,
    inflight: &mut VecDeque<InFlight>,
    acked: &mut Option<Position>,
    mut front_done: bool,
) -> Result<()> {
    let mut upto = None;
    while let Some(f) = inflight.front_mut() {
        let done = match f.send.as_mut() {
            None => true,
            Some(_) if front_done => true,
            Some(s) => match s.now_or_never() {
                None => false,
                Some(r) => {
                    r.map_err(client_err)?;
                    true
                }
            },
        };
        front_done = false;
        if !done {
            break;
        }
        let f = inflight.pop_front().expect("front exists");
        if f.send.is_some() {
            ctx.stats.msg_out.fetch_add(f.messages, Ordering::Relaxed);
            ctx.stats.bytes_out.fetch_add(f.bytes, Ordering::Relaxed);
            metrics::counter!("magnetar_broker_replication_messages_total").increment(f.messages);
        }
        upto = Some(f.pos);
    }
    if let Some(p) = upto {
        cursor.ack_cumulative(p).await?;
        *acked = Some(p);
        update_backlog(ctx, cursor);
    }
    Ok(())
}

/// Seconds since `publish_ms` (0 for 0 or a time in the future).
fn age_secs(publish_ms: u64) -> u64 {
    if publish_ms == 0 {
        return 0;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now.saturating_sub(publish_ms) / 1000
}
