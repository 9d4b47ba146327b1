//! `magnetar-admin topics ...`: topics, subscriptions and per-topic policies.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::rest::{print_json, Rest};
use super::units::{namespace_path, parse_size_bytes, parse_time_secs, topic_path};

/// A topic argument.
#[derive(Debug, Args)]
pub struct Topic {
    /// `persistent://tenant/ns/topic` (or a short form).
    pub topic: String,
}

/// A topic and a subscription.
#[derive(Debug, Args)]
pub struct TopicSub {
    /// `persistent://tenant/ns/topic`.
    pub topic: String,
    /// Subscription name.
    #[arg(short = 's', long = "subscription")]
    pub subscription: String,
}

/// `topics ...`.
#[derive(Debug, Subcommand)]
pub enum TopicsCmd {
    /// List a namespace's topics.
    List { namespace: String },
    /// List a namespace's partitioned topics.
    ListPartitionedTopics { namespace: String },
    /// Create a non-partitioned topic.
    Create(Topic),
    /// Create a partitioned topic.
    CreatePartitionedTopic {
        topic: String,
        /// Number of partitions.
        #[arg(short = 'p', long)]
        partitions: u32,
    },
    /// Grow a partitioned topic.
    UpdatePartitionedTopic {
        topic: String,
        /// New number of partitions.
        #[arg(short = 'p', long)]
        partitions: u32,
    },
    /// Partition metadata of a topic.
    GetPartitionedTopicMetadata(Topic),
    /// Delete a topic.
    Delete {
        topic: String,
        /// Close producers and consumers first.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Delete a partitioned topic and its partitions.
    DeletePartitionedTopic {
        topic: String,
        /// Close producers and consumers first.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Topic stats.
    Stats(Topic),
    /// Managed ledger and cursor state.
    StatsInternal(Topic),
    /// Stats of a partitioned topic.
    PartitionedStats {
        topic: String,
        /// Include each partition.
        #[arg(long = "per-partition")]
        per_partition: bool,
    },
    /// Terminate a topic (no more messages accepted).
    Terminate(Topic),
    /// Unload a topic (every partition of a partitioned one); clients reconnect.
    Unload(Topic),
    /// Broker serving a topic.
    Lookup(Topic),
    /// List subscriptions.
    Subscriptions(Topic),
    /// Create a subscription.
    CreateSubscription {
        #[command(flatten)]
        ts: TopicSub,
        /// `latest`, `earliest` or `ledgerId:entryId`.
        #[arg(short = 'm', long = "messageId", default_value = "latest")]
        message_id: String,
    },
    /// Delete a subscription.
    Unsubscribe {
        #[command(flatten)]
        ts: TopicSub,
        /// Disconnect consumers first.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Skip messages of a subscription.
    Skip {
        #[command(flatten)]
        ts: TopicSub,
        /// Number of messages.
        #[arg(short = 'n', long = "count")]
        count: u64,
    },
    /// Skip every message of a subscription.
    ClearBacklog(TopicSub),
    /// Move a subscription's cursor to a time or message id.
    ResetCursor {
        #[command(flatten)]
        ts: TopicSub,
        /// How far back (`10m`, `1h`, `0` = now).
        #[arg(short = 't', long, conflicts_with = "message_id")]
        time: Option<String>,
        /// `ledgerId:entryId`.
        #[arg(short = 'm', long = "messageId")]
        message_id: Option<String>,
    },
    /// Acknowledge messages older than a time on one subscription.
    ExpireMessages {
        #[command(flatten)]
        ts: TopicSub,
        /// Age (`10m`, `1h`, `60`).
        #[arg(short = 't', long = "expireTime")]
        time: String,
    },
    /// Acknowledge messages older than a time on every subscription.
    ExpireMessagesAllSubscriptions {
        topic: String,
        /// Age (`10m`, `1h`, `60`).
        #[arg(short = 't', long = "expireTime")]
        time: String,
    },
    /// Show the first N unacknowledged messages of a subscription.
    PeekMessages {
        #[command(flatten)]
        ts: TopicSub,
        /// Number of messages.
        #[arg(short = 'n', long = "count", default_value_t = 1)]
        count: u64,
    },
    /// Id of a topic's last message.
    LastMessageId(Topic),
    /// Show one message by id.
    GetMessageById {
        topic: String,
        /// Ledger id.
        #[arg(short = 'l', long = "ledgerId")]
        ledger: u64,
        /// Entry id.
        #[arg(short = 'e', long = "entryId")]
        entry: u64,
    },
    /// Set a topic's message TTL.
    SetMessageTtl {
        topic: String,
        /// TTL (`60`, `1h`).
        #[arg(short = 't', long)]
        ttl: String,
    },
    /// Show a topic's message TTL override.
    GetMessageTtl(Topic),
    /// Remove a topic's message TTL override.
    RemoveMessageTtl(Topic),
    /// Set a topic's retention.
    SetRetention {
        topic: String,
        /// Time (`3h`, `-1`).
        #[arg(short = 't', long, allow_hyphen_values = true)]
        time: String,
        /// Size (`1G`, `-1`).
        #[arg(short = 's', long, allow_hyphen_values = true)]
        size: String,
    },
    /// Show a topic's retention override.
    GetRetention(Topic),
    /// Remove a topic's retention override.
    RemoveRetention(Topic),
    /// Enable or disable deduplication on a topic.
    SetDeduplication {
        topic: String,
        /// Enable (else disable).
        #[arg(short = 'e', long)]
        enable: bool,
    },
    /// Show a topic's deduplication override.
    GetDeduplication(Topic),
    /// Set a topic's max producers.
    SetMaxProducers {
        topic: String,
        /// Limit.
        #[arg(short = 'p', long = "max-producers")]
        max: i64,
    },
    /// Set a topic's max consumers.
    SetMaxConsumers {
        topic: String,
        /// Limit.
        #[arg(short = 'c', long = "max-consumers")]
        max: i64,
    },
}

fn topic_url(topic: &str, suffix: &str) -> anyhow::Result<String> {
    let p = topic_path(topic)?;
    Ok(if suffix.is_empty() {
        format!("/admin/v2/{p}")
    } else {
        format!("/admin/v2/{p}/{suffix}")
    })
}

fn sub_url(ts: &TopicSub, suffix: &str) -> anyhow::Result<String> {
    let sub = encode(&ts.subscription);
    topic_url(&ts.topic, &format!("subscription/{sub}{suffix}"))
}

/// Percent-encodes a path segment.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn message_id(s: &str) -> anyhow::Result<Value> {
    let (l, e) = s
        .split_once(':')
        .ok_or_else(|| anyhow!("invalid message id {s:?}: expected ledgerId:entryId"))?;
    let l: u64 = l
        .parse()
        .map_err(|_| anyhow!("invalid ledger id in {s:?}"))?;
    let e: u64 = e
        .parse()
        .map_err(|_| anyhow!("invalid entry id in {s:?}"))?;
    Ok(json!({"ledgerId": l, "entryId": e}))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn done(rest: &Rest, method: &str, url: String, body: Option<Value>) -> anyhow::Result<()> {
    rest.call(method, &url, body).await.map(|_| ())
}

/// `url` with `?force=true` when `force` (delete even with clients connected).
pub(super) fn forced(url: String, force: bool) -> String {
    if force {
        format!("{url}?force=true")
    } else {
        url
    }
}

async fn peek(rest: &Rest, ts: &TopicSub, count: u64) -> anyhow::Result<()> {
    for i in 1..=count {
        let r = match rest.get_raw(&sub_url(ts, &format!("/position/{i}"))?).await {
            Ok(r) => r,
            Err(e) if i > 1 && e.to_string().contains("HTTP 404") => break,
            Err(e) => return Err(e),
        };
        print_message(&r)?;
    }
    Ok(())
}

/// Prints a message the way pulsar-admin does: id, metadata, payload.
fn print_message(r: &super::rest::RawResponse) -> anyhow::Result<()> {
    let id = r
        .headers
        .get("x-pulsar-message-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    println!("Message ID: {id}");
    let mut props = serde_json::Map::new();
    for (k, v) in &r.headers {
        let k = k.as_str();
        if let Some(name) = k.strip_prefix("x-pulsar-") {
            if name != "message-id" {
                props.insert(name.to_string(), json!(v.to_str().unwrap_or("")));
            }
        }
    }
    println!("Metadata: {}", serde_json::to_string_pretty(&props)?);
    println!("{}", String::from_utf8_lossy(&r.body));
    Ok(())
}

/// Per-topic policy verbs: (verb, HTTP method, topic sub-path). A `GET` prints the answer;
/// `POST` sends the verb's JSON value; `DELETE` removes the override.
const POLICY_VERBS: &[(&str, &str, &str)] = &[
    ("set-message-ttl", "POST", "messageTTL"),
    ("get-message-ttl", "GET", "messageTTL"),
    ("remove-message-ttl", "DELETE", "messageTTL"),
    ("set-retention", "POST", "retention"),
    ("get-retention", "GET", "retention"),
    ("remove-retention", "DELETE", "retention"),
    ("set-deduplication", "POST", "deduplicationEnabled"),
    ("get-deduplication", "GET", "deduplicationEnabled"),
    ("set-max-producers", "POST", "maxProducers"),
    ("set-max-consumers", "POST", "maxConsumers"),
];

/// Runs the per-topic policy `verb` (a row of [`POLICY_VERBS`]) on `topic`.
async fn policy(rest: &Rest, verb: &str, topic: &str, body: Option<Value>) -> anyhow::Result<()> {
    let &(_, method, path) = POLICY_VERBS
        .iter()
        .find(|(v, _, _)| *v == verb)
        .ok_or_else(|| anyhow!("unknown topic policy verb {verb}"))?;
    let url = topic_url(topic, path)?;
    if method == "GET" {
        print_json(&rest.get(&url).await?)
    } else {
        done(rest, method, url, body).await
    }
}

/// Runs a `topics` command.
pub async fn run(rest: &Rest, cmd: TopicsCmd) -> anyhow::Result<()> {
    use TopicsCmd as C;
    match cmd {
        C::List { namespace } => print_json(
            &rest
                .get(&format!(
                    "/admin/v2/persistent/{}",
                    namespace_path(&namespace)?
                ))
                .await?,
        ),
        C::ListPartitionedTopics { namespace } => print_json(
            &rest
                .get(&format!(
                    "/admin/v2/persistent/{}/partitioned",
                    namespace_path(&namespace)?
                ))
                .await?,
        ),
        C::Create(t) => done(rest, "PUT", topic_url(&t.topic, "")?, None).await,
        C::CreatePartitionedTopic { topic, partitions } => {
            if partitions == 0 {
                bail!("the number of partitions must be at least 1");
            }
            done(
                rest,
                "PUT",
                topic_url(&topic, "partitions")?,
                Some(json!(partitions)),
            )
            .await
        }
        C::UpdatePartitionedTopic { topic, partitions } => {
            done(
                rest,
                "POST",
                topic_url(&topic, "partitions")?,
                Some(json!(partitions)),
            )
            .await
        }
        C::GetPartitionedTopicMetadata(t) => {
            print_json(&rest.get(&topic_url(&t.topic, "partitions")?).await?)
        }
        C::Delete { topic, force } => {
            done(rest, "DELETE", forced(topic_url(&topic, "")?, force), None).await
        }
        C::DeletePartitionedTopic { topic, force } => {
            done(
                rest,
                "DELETE",
                forced(topic_url(&topic, "partitions")?, force),
                None,
            )
            .await
        }
        C::Stats(t) => print_json(&rest.get(&topic_url(&t.topic, "stats")?).await?),
        C::StatsInternal(t) => print_json(&rest.get(&topic_url(&t.topic, "internalStats")?).await?),
        C::PartitionedStats {
            topic,
            per_partition,
        } => print_json(
            &rest
                .get(&format!(
                    "{}?perPartition={per_partition}",
                    topic_url(&topic, "partitioned-stats")?
                ))
                .await?,
        ),
        C::Terminate(t) => {
            let id = rest
                .call("POST", &topic_url(&t.topic, "terminate")?, None)
                .await?;
            println!(
                "Topic successfully terminated at {}:{}",
                id["ledgerId"], id["entryId"]
            );
            Ok(())
        }
        C::Unload(t) => done(rest, "PUT", topic_url(&t.topic, "unload")?, None).await,
        C::Lookup(t) => {
            let v = rest
                .get(&format!("/lookup/v2/topic/{}", topic_path(&t.topic)?))
                .await?;
            println!("{}", v["brokerUrl"].as_str().unwrap_or(""));
            Ok(())
        }
        C::Subscriptions(t) => print_json(&rest.get(&topic_url(&t.topic, "subscriptions")?).await?),
        C::CreateSubscription { ts, message_id: m } => {
            let url = sub_url(&ts, "")?;
            match m.as_str() {
                "latest" | "earliest" => {
                    done(rest, "PUT", format!("{url}?messageId={m}"), None).await
                }
                id => done(rest, "PUT", url, Some(message_id(id)?)).await,
            }
        }
        C::Unsubscribe { ts, force } => {
            done(rest, "DELETE", forced(sub_url(&ts, "")?, force), None).await
        }
        C::Skip { ts, count } => {
            done(rest, "POST", sub_url(&ts, &format!("/skip/{count}"))?, None).await
        }
        C::ClearBacklog(ts) => done(rest, "POST", sub_url(&ts, "/skip_all")?, None).await,
        C::ResetCursor {
            ts,
            time,
            message_id: m,
        } => match (time, m) {
            (Some(t), None) => {
                let back = u64::try_from(parse_time_secs(&t)?)
                    .map_err(|_| anyhow!("time must not be -1"))?;
                let ts_ms = now_ms().saturating_sub(back.saturating_mul(1000));
                done(
                    rest,
                    "POST",
                    sub_url(&ts, &format!("/resetcursor/{ts_ms}"))?,
                    None,
                )
                .await
            }
            (None, Some(id)) => {
                done(
                    rest,
                    "POST",
                    sub_url(&ts, "/resetcursor")?,
                    Some(message_id(&id)?),
                )
                .await
            }
            _ => bail!("give either --time or --messageId"),
        },
        C::ExpireMessages { ts, time } => {
            let secs = parse_time_secs(&time)?.max(0);
            done(
                rest,
                "POST",
                sub_url(&ts, &format!("/expireMessages/{secs}"))?,
                None,
            )
            .await
        }
        C::ExpireMessagesAllSubscriptions { topic, time } => {
            let secs = parse_time_secs(&time)?.max(0);
            done(
                rest,
                "POST",
                topic_url(&topic, &format!("all_subscription/expireMessages/{secs}"))?,
                None,
            )
            .await
        }
        C::PeekMessages { ts, count } => peek(rest, &ts, count).await,
        C::LastMessageId(t) => print_json(&rest.get(&topic_url(&t.topic, "lastMessageId")?).await?),
        C::GetMessageById {
            topic,
            ledger,
            entry,
        } => {
            let r = rest
                .get_raw(&topic_url(
                    &topic,
                    &format!("ledger/{ledger}/entry/{entry}"),
                )?)
                .await?;
            print_message(&r)
        }
        C::SetMessageTtl { topic, ttl } => {
            let ttl = json!(parse_time_secs(&ttl)?);
            policy(rest, "set-message-ttl", &topic, Some(ttl)).await
        }
        C::GetMessageTtl(t) => policy(rest, "get-message-ttl", &t.topic, None).await,
        C::RemoveMessageTtl(t) => policy(rest, "remove-message-ttl", &t.topic, None).await,
        C::SetRetention { topic, time, size } => {
            let secs = parse_time_secs(&time)?;
            let bytes = parse_size_bytes(&size)?;
            let body = json!({
                "retentionTimeInMinutes": if secs < 0 { -1 } else { secs / 60 },
                "retentionSizeInMB": if bytes < 0 { -1 } else { bytes >> 20 },
            });
            policy(rest, "set-retention", &topic, Some(body)).await
        }
        C::GetRetention(t) => policy(rest, "get-retention", &t.topic, None).await,
        C::RemoveRetention(t) => policy(rest, "remove-retention", &t.topic, None).await,
        C::SetDeduplication { topic, enable } => {
            policy(rest, "set-deduplication", &topic, Some(json!(enable))).await
        }
        C::GetDeduplication(t) => policy(rest, "get-deduplication", &t.topic, None).await,
        C::SetMaxProducers { topic, max } => {
            policy(rest, "set-max-producers", &topic, Some(json!(max))).await
        }
        C::SetMaxConsumers { topic, max } => {
            policy(rest, "set-max-consumers", &topic, Some(json!(max))).await
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: super::TopicsCmd,
    }

    #[test]
    fn every_policy_verb_is_a_topics_subcommand() {
        let cmd = Cli::command();
        let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
        for (verb, method, _) in super::POLICY_VERBS {
            assert!(
                names.contains(verb),
                "{verb} is not a `topics` verb: {names:?}"
            );
            assert!(
                ["GET", "POST", "DELETE"].contains(method),
                "{verb}: {method}"
            );
        }
    }
}
