//! Persistent topic administration beyond `topics.rs`: create, delete, grow partitions,
//! terminate, internal stats, partitioned stats.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use magnetar_metadata::{list_all, Expect};
use serde_json::{json, Map, Value};

use super::common::{be, conflict, md, not_found, precondition, require_namespace};
use super::{AdminError, AdminResult};
use crate::broker::{topic_key, Broker, PartitionedMetadata};
use crate::names::TopicName;

type S = State<Arc<Broker>>;
pub(super) type TopicPath = Path<(String, String, String)>;
type Params = Query<HashMap<String, String>>;

pub(super) fn routes() -> Router<Arc<Broker>> {
    Router::new()
        .route(
            "/admin/v2/persistent/:t/:ns/:topic",
            axum::routing::put(create).delete(delete_topic),
        )
        .route(
            "/admin/v2/persistent/:t/:ns/:topic/partitions",
            post(update_partitions).delete(delete_partitioned),
        )
        .route(
            "/admin/v2/persistent/:t/:ns/:topic/terminate",
            post(terminate),
        )
        .route(
            "/admin/v2/persistent/:t/:ns/:topic/terminate/partitions",
            post(terminate_partitions),
        )
        .route(
            "/admin/v2/persistent/:t/:ns/:topic/unload",
            axum::routing::put(unload_topic),
        )
        .route(
            "/admin/v2/persistent/:t/:ns/:topic/lastMessageId",
            get(last_message_id),
        )
        .route(
            "/admin/v2/persistent/:t/:ns/:topic/internalStats",
            get(internal_stats),
        )
        .route(
            "/admin/v2/persistent/:t/:ns/:topic/partitioned-stats",
            get(partitioned_stats),
        )
}

/// Parses `persistent://{t}/{ns}/{topic}` (400 when invalid).
pub(super) fn topic_name(t: &str, ns: &str, topic: &str) -> AdminResult<TopicName> {
    super::common::check_name("Tenant", t)?;
    super::common::check_name("Namespace", ns)?;
    TopicName::parse(&format!("persistent://{t}/{ns}/{topic}"))
        .map_err(|e| super::common::bad_request(e.to_string()))
}

/// Parses the name and checks that its namespace exists.
pub(super) async fn checked_topic(
    b: &Broker,
    t: &str,
    ns: &str,
    topic: &str,
) -> AdminResult<TopicName> {
    let name = topic_name(t, ns, topic)?;
    require_namespace(b, t, ns).await?;
    Ok(name)
}

/// Unloads a topic, or every partition of a partitioned one (`pulsar-admin topics
/// unload`): its broker closes it, clients reconnect, and the next use reopens it (fencing
/// its last ledger), on this broker or, in cluster mode, on the bundle's owner.
async fn unload_topic(State(b): S, Path((t, ns, topic)): TopicPath) -> AdminResult<StatusCode> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    let n = if name.partition_index() < 0 {
        partition_count(&b, &name).await?
    } else {
        0
    };
    let targets: Vec<TopicName> = if n > 0 {
        (0..n).map(|i| name.partition(i)).collect()
    } else if b.topic_exists(&name).await.map_err(be)? {
        vec![name]
    } else {
        return Err(not_found("Topic not found"));
    };
    for p in targets {
        if let Some(owner) = super::fanout::remote_owner(&b, &p).await? {
            super::fanout::forward_done(
                &owner,
                axum::http::Method::PUT,
                &super::fanout::partition_path(&p, "/unload"),
            )
            .await?;
        } else {
            b.close_topics(|loaded| *loaded == p).await;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn partition_count(b: &Broker, name: &TopicName) -> AdminResult<u32> {
    b.partitions(name).await.map_err(be)
}

async fn create(State(b): S, Path((t, ns, topic)): TopicPath) -> AdminResult<StatusCode> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    if partition_count(&b, &name.base()).await? > 0 && name.partition_index() < 0 {
        return Err(conflict("This topic already exists as a partitioned topic"));
    }
    match b
        .metadata
        .put(
            &topic_key(&name),
            Bytes::from_static(b"{}"),
            Expect::Absent,
            None,
        )
        .await
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(e) if e.is_bad_version() => Err(conflict("This topic already exists")),
        Err(e) => Err(md(e)),
    }
}

/// Deletes a topic: closes it here (refusing while clients are attached unless `force`),
/// deletes its managed ledger (every ledger on the bookies, its cursors and the ledger
/// list), then its remaining metadata (cursor keys, ledger list, topic marker).
pub(super) async fn remove_topic(b: &Broker, name: &TopicName, force: bool) -> AdminResult<()> {
    if let Some(owner) = super::fanout::remote_owner(b, name).await? {
        // Cluster mode: only the owner may open (and so delete) the topic's ledger.
        let q = if force { "?force=true" } else { "" };
        return super::fanout::forward_done(
            &owner,
            axum::http::Method::DELETE,
            &super::fanout::partition_path(name, q),
        )
        .await;
    }
    if let Some(topic) = b.loaded_topic(name) {
        let busy = !topic.producers().is_empty()
            || topic.subscriptions().iter().any(|s| {
                s.counters
                    .consumers
                    .load(std::sync::atomic::Ordering::Relaxed)
                    > 0
            });
        if busy && !force {
            return Err(precondition("Topic has active producers/subscriptions"));
        }
        let wanted = name.clone();
        b.close_topics(move |n| *n == wanted).await;
    }
    let ledger = name.ledger_name();
    if b.metadata
        .get(&format!("/managed-ledgers/{ledger}"))
        .await
        .map_err(md)?
        .is_some()
    {
        // Opening the (now closed) log again gives the instance that owns the ledger list.
        let log = b.storage.open(&ledger).await.map_err(be)?;
        log.delete().await.map_err(be)?;
    }
    for (k, _) in list_all(b.metadata.as_ref(), &format!("/cursors/{ledger}/"))
        .await
        .map_err(md)?
    {
        b.metadata.delete(&k, Expect::Any).await.map_err(md)?;
    }
    b.metadata
        .delete(&format!("/managed-ledgers/{ledger}"), Expect::Any)
        .await
        .map_err(md)?;
    b.metadata
        .delete(&topic_key(name), Expect::Any)
        .await
        .map_err(md)?;
    Ok(())
}

fn force(q: &HashMap<String, String>) -> bool {
    q.get("force").is_some_and(|v| v == "true")
}

async fn delete_topic(
    State(b): S,
    Path((t, ns, topic)): TopicPath,
    Query(q): Params,
) -> AdminResult<StatusCode> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    if name.partition_index() < 0 && partition_count(&b, &name).await? > 0 {
        return delete_partitioned_inner(&b, &name, force(&q)).await;
    }
    if !b.topic_exists(&name).await.map_err(be)? {
        return Err(not_found("Topic not found"));
    }
    remove_topic(&b, &name, force(&q)).await?;
    let _ = b
        .metadata
        .delete(&crate::policies::topic_policies_key(&name), Expect::Any)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_partitioned_inner(
    b: &Broker,
    name: &TopicName,
    force: bool,
) -> AdminResult<StatusCode> {
    let n = partition_count(b, name).await?;
    if n == 0 {
        return Err(not_found("Partitioned topic does not exist"));
    }
    for i in 0..n {
        let p = name.partition(i);
        // Each partition is deleted by its owner (`remove_topic` forwards in cluster mode).
        if b.cluster.get().is_some() || b.topic_exists(&p).await.map_err(be)? {
            remove_topic(b, &p, force).await?;
        }
    }
    b.metadata
        .delete(&name.partitioned_key(), Expect::Any)
        .await
        .map_err(md)?;
    let _ = b
        .metadata
        .delete(&crate::policies::topic_policies_key(name), Expect::Any)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_partitioned(
    State(b): S,
    Path((t, ns, topic)): TopicPath,
    Query(q): Params,
) -> AdminResult<StatusCode> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    delete_partitioned_inner(&b, &name, force(&q)).await
}

async fn update_partitions(
    State(b): S,
    Path((t, ns, topic)): TopicPath,
    body: Bytes,
) -> AdminResult<StatusCode> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    let n: u32 = std::str::from_utf8(&body)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| super::common::bad_request("body must be the number of partitions"))?;
    let key = name.partitioned_key();
    let Some(cur) = b.metadata.get(&key).await.map_err(md)? else {
        return Err(not_found("Partitioned topic does not exist"));
    };
    let meta: PartitionedMetadata = serde_json::from_slice(&cur.value)
        .map_err(|e| AdminError::from(crate::error::BrokerError::from(e)))?;
    if n > super::openapi::MAX_PARTITIONS {
        return Err(super::common::bad_request(format!(
            "Number of partitions must be at most {}",
            super::openapi::MAX_PARTITIONS
        )));
    }
    if n <= meta.partitions {
        return Err(conflict(format!(
            "Number of new partitions must be greater than existing number of partitions ({})",
            meta.partitions
        )));
    }
    let body = serde_json::to_vec(&PartitionedMetadata { partitions: n })
        .map_err(|e| AdminError::from(crate::error::BrokerError::from(e)))?;
    super::common::put_at_version(
        &b,
        &key,
        Bytes::from(body),
        cur.version,
        "Partitioned topic",
    )
    .await
}

/// A Pulsar `MessageId` JSON object.
pub(super) fn message_id(ledger: u64, entry: u64, partition: i32) -> Value {
    json!({"ledgerId": ledger, "entryId": entry, "partitionIndex": partition})
}

async fn terminate(State(b): S, Path((t, ns, topic)): TopicPath) -> AdminResult<Json<Value>> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    if name.partition_index() < 0 && partition_count(&b, &name).await? > 0 {
        return Err(precondition(
            "Termination of a partitioned topic is not allowed",
        ));
    }
    let topic = b.get_topic(&name, false).await.map_err(be)?;
    let last = topic.terminate();
    // Persisted with the ledger list, so the topic stays terminated after a restart or a
    // move to another broker (the broker terminates it again when it loads).
    let at = last.map_or_else(|| "-1:-1".to_string(), |p| p.to_string());
    topic
        .log
        .set_property(crate::storage::TERMINATED_PROPERTY, &at)
        .await
        .map_err(be)?;
    let _ = b
        .metadata
        .put(
            &topic_key(&name),
            Bytes::from_static(br#"{"terminated":true}"#),
            Expect::Any,
            None,
        )
        .await;
    Ok(Json(match last {
        Some(p) => message_id(p.ledger, p.entry, name.partition_index()),
        // Nothing was ever written: Pulsar's answer is the current ledger, entry -1.
        None => {
            json!({"ledgerId": topic.log.current_ledger(), "entryId": -1, "partitionIndex": name.partition_index()})
        }
    }))
}

/// Terminates every used partition of a partitioned topic (each at its owner); answers
/// `{partitionIndex: MessageId}`.
async fn terminate_partitions(
    State(b): S,
    Path((t, ns, topic)): TopicPath,
) -> AdminResult<Json<Value>> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    let n = partition_count(&b, &name).await?;
    if n == 0 {
        return Err(not_found("Partitioned topic does not exist"));
    }
    let mut out = Map::new();
    for i in 0..n {
        let p = name.partition(i);
        let owner = super::fanout::remote_owner(&b, &p)
            .await?
            .unwrap_or_else(|| b.http_url.clone());
        let (status, v) = super::fanout::forward(
            &owner,
            axum::http::Method::POST,
            &super::fanout::partition_path(&p, "/terminate"),
            None,
        )
        .await?;
        match status {
            StatusCode::OK => {
                out.insert(i.to_string(), v);
            }
            StatusCode::NOT_FOUND => {} // never used: nothing to terminate
            s => return Err(super::fanout::passed_on(s, &v)),
        }
    }
    Ok(Json(Value::Object(out)))
}

async fn last_message_id(State(b): S, Path((t, ns, topic)): TopicPath) -> AdminResult<Json<Value>> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    if name.partition_index() < 0 && partition_count(&b, &name).await? > 0 {
        return Err(precondition("Use a partition of a partitioned topic"));
    }
    let topic = b.get_topic(&name, false).await.map_err(be)?;
    let idx = name.partition_index();
    Ok(Json(match topic.log.last_confirmed() {
        Some(p) => message_id(p.ledger, p.entry, idx),
        // Pulsar's answer for an empty topic: the current ledger, entry -1.
        None => {
            json!({"ledgerId": topic.log.current_ledger(), "entryId": -1, "partitionIndex": idx})
        }
    }))
}

fn pos_str(v: &Value) -> String {
    match (
        v.get("ledger").and_then(Value::as_u64),
        v.get("entry").and_then(Value::as_u64),
    ) {
        (Some(l), Some(e)) => format!("{l}:{e}"),
        _ => "-1:-1".to_string(),
    }
}

async fn internal_stats(State(b): S, Path((t, ns, topic)): TopicPath) -> AdminResult<Json<Value>> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    if !b.topic_exists(&name).await.map_err(be)? {
        return Err(not_found("Topic not found"));
    }
    let ledger_name = name.ledger_name();
    let ml: Value = match b
        .metadata
        .get(&format!("/managed-ledgers/{ledger_name}"))
        .await
        .map_err(md)?
    {
        Some(v) => serde_json::from_slice(&v.value).unwrap_or(Value::Null),
        None => Value::Null,
    };
    let loaded = b.loaded_topic(&name);
    let mut ledgers: Vec<Value> = ml["ledgers"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| {
                    json!({
                        "ledgerId": l["id"],
                        "entries": l["entries"],
                        "size": l["size"],
                        "timestamp": l["created_ms"],
                        "offloaded": false,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut cursors = Map::new();
    let prefix = format!("/cursors/{ledger_name}/");
    for (k, v) in list_all(b.metadata.as_ref(), &prefix).await.map_err(md)? {
        let c: Value = serde_json::from_slice(&v.value).unwrap_or(Value::Null);
        let cname = k[prefix.len()..].replace("%2F", "/").replace("%25", "%");
        let md_pos = pos_str(&c["mark_delete"]);
        cursors.insert(
            cname,
            json!({
                "markDeletePosition": md_pos,
                "readPosition": md_pos,
                "individuallyDeletedMessages": c["acked"].as_array().map_or(0, Vec::len).to_string(),
                "cursorLedger": -1,
                "state": "Open",
                "active": false,
            }),
        );
    }
    let (entries, size, last) = if let Some(topic) = &loaded {
        for s in topic.subscriptions() {
            let mdp = s
                .cursor
                .mark_delete()
                .map_or("-1:-1".to_string(), |p| p.to_string());
            cursors.insert(
                s.name.clone(),
                json!({
                    "markDeletePosition": mdp,
                    "readPosition": s.cursor.read_position().to_string(),
                    "messagesConsumedCounter": s.counters.msg_out.load(std::sync::atomic::Ordering::Relaxed),
                    "numberOfEntriesSinceFirstNotAckedMessage": s.cursor.backlog().unwrap_or(0),
                    "state": "Open",
                    "active": s.counters.consumers.load(std::sync::atomic::Ordering::Relaxed) > 0,
                    "isDurable": s.durable,
                }),
            );
        }
        // The open ledger's entry count and size are only stored when it closes: take them
        // from the live log.
        let closed_size: u64 = ledgers
            .iter()
            .rev()
            .skip(1)
            .filter_map(|l| l["size"].as_u64())
            .sum();
        if let (Some(l), Some(lc)) = (ledgers.last_mut(), topic.log.last_confirmed()) {
            if l["ledgerId"].as_u64() == Some(lc.ledger) {
                l["entries"] = json!(lc.entry + 1);
                l["size"] = json!(topic.log.size_bytes().saturating_sub(closed_size));
            }
        }
        (
            topic.log.entries(),
            topic.log.size_bytes(),
            topic
                .log
                .last_confirmed()
                .map_or("-1:-1".to_string(), |p| p.to_string()),
        )
    } else {
        let e: u64 = ledgers.iter().filter_map(|l| l["entries"].as_u64()).sum();
        let s: u64 = ledgers.iter().filter_map(|l| l["size"].as_u64()).sum();
        (e, s, "-1:-1".to_string())
    };
    Ok(Json(json!({
        "entriesAddedCounter": entries,
        "numberOfEntries": entries,
        "totalSize": size,
        "currentLedgerEntries": ledgers.last().and_then(|l| l["entries"].as_u64()).unwrap_or(0),
        "currentLedgerSize": ledgers.last().and_then(|l| l["size"].as_u64()).unwrap_or(0),
        "lastConfirmedEntry": last,
        "state": if loaded.is_some() { "LedgerOpened" } else { "Closed" },
        "ledgers": ledgers,
        "cursors": cursors,
        "properties": ml.get("properties").cloned().unwrap_or_else(|| json!({})),
    })))
}

const SUMMED: &[&str] = &[
    "msgRateIn",
    "msgThroughputIn",
    "msgRateOut",
    "msgThroughputOut",
    "msgInCounter",
    "bytesInCounter",
    "storageSize",
    "backlogSize",
];

fn add_num(acc: &mut Value, key: &str, v: &Value) {
    let sum = acc[key].as_f64().unwrap_or(0.0) + v[key].as_f64().unwrap_or(0.0);
    acc[key] = if v[key].is_u64() || v[key].is_i64() {
        json!(sum as u64)
    } else {
        json!(sum)
    };
}

async fn partitioned_stats(
    State(b): S,
    Path((t, ns, topic)): TopicPath,
    Query(q): Params,
) -> AdminResult<Json<Value>> {
    let name = checked_topic(&b, &t, &ns, &topic).await?;
    let n = partition_count(&b, &name).await?;
    if n == 0 {
        return Err(not_found("Partitioned topic does not exist"));
    }
    let per_partition = q.get("perPartition").is_none_or(|v| v != "false");
    let mut total = json!({"publishers": [], "subscriptions": {}, "metadata": {"partitions": n}});
    let mut parts = Map::new();
    for i in 0..n {
        let p = name.partition(i);
        let st = if let Some(owner) = super::fanout::remote_owner(&b, &p).await? {
            let (status, v) = super::fanout::forward(
                &owner,
                axum::http::Method::GET,
                &super::fanout::partition_path(&p, "/stats"),
                None,
            )
            .await?;
            match status {
                StatusCode::OK => v,
                StatusCode::NOT_FOUND => continue, // not used yet
                s => return Err(super::fanout::passed_on(s, &v)),
            }
        } else {
            if !b.topic_exists(&p).await.map_err(be)? {
                continue;
            }
            super::topics::stats(
                State(b.clone()),
                Path((t.clone(), ns.clone(), p.local.clone())),
            )
            .await?
            .0
        };
        for k in SUMMED {
            add_num(&mut total, k, &st);
        }
        if let (Some(acc), Some(ps)) = (
            total["publishers"].as_array_mut(),
            st["publishers"].as_array(),
        ) {
            acc.extend(ps.iter().cloned());
        }
        if let Some(subs) = st["subscriptions"].as_object() {
            for (sname, s) in subs {
                let acc = &mut total["subscriptions"][sname];
                if acc.is_null() {
                    *acc = s.clone();
                    continue;
                }
                for k in [
                    "msgBacklog",
                    "msgRateOut",
                    "msgThroughputOut",
                    "msgOutCounter",
                    "bytesOutCounter",
                    "unackedMessages",
                ] {
                    add_num(acc, k, s);
                }
                if let (Some(a), Some(cs)) =
                    (acc["consumers"].as_array_mut(), s["consumers"].as_array())
                {
                    a.extend(cs.iter().cloned());
                }
            }
        }
        crate::replication::merge_partition_stats(&mut total, &st);
        parts.insert(p.to_string(), st);
    }
    if per_partition {
        total["partitions"] = Value::Object(parts);
    }
    Ok(Json(total))
}
