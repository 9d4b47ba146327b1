//! `magnetar-admin namespaces ...`.

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::rest::{print_json, Rest};
use super::units::{namespace_path, parse_size_bytes, parse_time_secs};

/// A namespace argument (`tenant/namespace`).
#[derive(Debug, Args)]
pub struct Ns {
    /// `tenant/namespace`.
    pub namespace: String,
}

/// `--enable` / `--disable`.
#[derive(Debug, Args)]
pub struct Toggle {
    /// `tenant/namespace`.
    pub namespace: String,
    /// Enable.
    #[arg(short = 'e', long, conflicts_with = "disable")]
    pub enable: bool,
    /// Disable.
    #[arg(short = 'd', long)]
    pub disable: bool,
}

impl Toggle {
    fn value(&self) -> anyhow::Result<bool> {
        match (self.enable, self.disable) {
            (true, false) => Ok(true),
            (false, true) => Ok(false),
            _ => bail!("give exactly one of --enable or --disable"),
        }
    }
}

/// `namespaces ...`.
#[derive(Debug, Subcommand)]
pub enum NamespacesCmd {
    /// List a tenant's namespaces.
    List { tenant: String },
    /// Create a namespace.
    Create {
        namespace: String,
        /// Replication clusters (comma-separated).
        #[arg(short = 'c', long, value_delimiter = ',')]
        clusters: Vec<String>,
    },
    /// Delete a namespace (with --force, its topics too).
    Delete {
        namespace: String,
        /// Delete the namespace's topics first.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Show all policies of a namespace.
    Policies(Ns),
    /// List a namespace's topics.
    Topics(Ns),
    /// Show a namespace's bundles.
    Bundles(Ns),
    /// Unload a namespace's bundle (all bundles without --bundle).
    Unload {
        namespace: String,
        /// Bundle range (`0x00000000_0x3fffffff`).
        #[arg(short = 'b', long)]
        bundle: Option<String>,
    },
    /// Split a namespace bundle in two.
    SplitBundle {
        namespace: String,
        /// Bundle range (`0x00000000_0x3fffffff`).
        #[arg(short = 'b', long)]
        bundle: String,
    },
    /// Set retention of consumed messages.
    SetRetention {
        namespace: String,
        /// Time (`100m`, `3h`, `2d`, `-1` = infinite; no suffix = seconds).
        #[arg(short = 't', long, allow_hyphen_values = true)]
        time: String,
        /// Size (`10M`, `16G`, `-1` = infinite; no suffix = bytes).
        #[arg(short = 's', long, allow_hyphen_values = true)]
        size: String,
    },
    /// Show retention.
    GetRetention(Ns),
    /// Remove retention.
    RemoveRetention(Ns),
    /// Set message TTL.
    SetMessageTtl {
        namespace: String,
        /// TTL (`3600`, `1h`; 0 = none).
        #[arg(long = "messageTTL", visible_alias = "ttl")]
        ttl: String,
    },
    /// Show message TTL.
    GetMessageTtl(Ns),
    /// Remove message TTL.
    RemoveMessageTtl(Ns),
    /// Set a backlog quota.
    SetBacklogQuota {
        namespace: String,
        /// Size limit (`10M`, `-1`).
        #[arg(
            short = 'l',
            long = "limit",
            allow_hyphen_values = true,
            default_value = "-1"
        )]
        limit: String,
        /// Time limit (`1h`, `-1`).
        #[arg(
            long = "limitTime",
            visible_alias = "limit-time",
            allow_hyphen_values = true,
            default_value = "-1"
        )]
        limit_time: String,
        /// producer_request_hold | producer_exception | consumer_backlog_eviction.
        #[arg(short = 'p', long)]
        policy: String,
        /// destination_storage | message_age.
        #[arg(long = "type", default_value = "destination_storage")]
        quota_type: String,
    },
    /// Show backlog quotas.
    GetBacklogQuotas(Ns),
    /// Remove a backlog quota.
    RemoveBacklogQuota {
        namespace: String,
        /// destination_storage | message_age.
        #[arg(long = "type", default_value = "destination_storage")]
        quota_type: String,
    },
    /// Enable or disable deduplication.
    SetDeduplication(Toggle),
    /// Show deduplication.
    GetDeduplication(Ns),
    /// Enable or disable delayed delivery.
    SetDelayedDelivery {
        #[command(flatten)]
        toggle: Toggle,
        /// Tick time (`1s`, `500` ms without suffix is seconds).
        #[arg(short = 't', long, default_value = "1s")]
        time: String,
    },
    /// Show delayed delivery.
    GetDelayedDelivery(Ns),
    /// Configure auto topic creation.
    SetAutoTopicCreation {
        #[command(flatten)]
        toggle: Toggle,
        /// partitioned | non-partitioned.
        #[arg(short = 't', long = "type", default_value = "non-partitioned")]
        topic_type: String,
        /// Partitions of auto-created partitioned topics.
        #[arg(short = 'n', long = "num-partitions")]
        num_partitions: Option<u32>,
    },
    /// Show auto topic creation.
    GetAutoTopicCreation(Ns),
    /// Remove the auto topic creation override.
    RemoveAutoTopicCreation(Ns),
    /// Set replication clusters.
    #[command(visible_alias = "set-clusters")]
    SetReplicationClusters {
        namespace: String,
        /// Clusters (comma-separated).
        #[arg(short = 'c', long, value_delimiter = ',', required = true)]
        clusters: Vec<String>,
    },
    /// Show replication clusters.
    #[command(visible_alias = "get-clusters")]
    GetReplicationClusters(Ns),
    /// Set max producers per topic.
    SetMaxProducersPerTopic {
        namespace: String,
        /// Limit (0 = unlimited).
        #[arg(long = "max-producers-per-topic")]
        max: i64,
    },
    /// Show max producers per topic.
    GetMaxProducersPerTopic(Ns),
    /// Set max consumers per topic.
    SetMaxConsumersPerTopic {
        namespace: String,
        /// Limit (0 = unlimited).
        #[arg(long = "max-consumers-per-topic")]
        max: i64,
    },
    /// Show max consumers per topic.
    GetMaxConsumersPerTopic(Ns),
    /// Set the publish rate limit.
    SetPublishRate {
        namespace: String,
        /// Messages per second (-1 = unlimited).
        #[arg(short = 'm', long = "msg-publish-rate", allow_hyphen_values = true, default_value_t = -1)]
        msgs: i64,
        /// Bytes per second (-1 = unlimited).
        #[arg(short = 'b', long = "byte-publish-rate", allow_hyphen_values = true, default_value_t = -1)]
        bytes: i64,
    },
    /// Show the publish rate limit.
    GetPublishRate(Ns),
    /// Set the dispatch rate limit.
    SetDispatchRate {
        namespace: String,
        /// Messages per period (-1 = unlimited).
        #[arg(long = "msg-dispatch-rate", allow_hyphen_values = true, default_value_t = -1)]
        msgs: i64,
        /// Bytes per period (-1 = unlimited).
        #[arg(long = "byte-dispatch-rate", allow_hyphen_values = true, default_value_t = -1)]
        bytes: i64,
        /// Period in seconds.
        #[arg(long = "dispatch-rate-period", default_value_t = 1)]
        period: i64,
    },
    /// Show the dispatch rate limit.
    GetDispatchRate(Ns),
}

fn url(ns: &str, policy: &str) -> anyhow::Result<String> {
    let p = namespace_path(ns)?;
    Ok(if policy.is_empty() {
        format!("/admin/v2/namespaces/{p}")
    } else {
        format!("/admin/v2/namespaces/{p}/{policy}")
    })
}

async fn show(rest: &Rest, ns: &str, policy: &str) -> anyhow::Result<()> {
    print_json(&rest.get(&url(ns, policy)?).await?)
}

async fn set(rest: &Rest, ns: &str, policy: &str, body: Value) -> anyhow::Result<()> {
    rest.call("POST", &url(ns, policy)?, Some(body))
        .await
        .map(|_| ())
}

async fn remove(rest: &Rest, ns: &str, policy: &str) -> anyhow::Result<()> {
    rest.call("DELETE", &url(ns, policy)?, None)
        .await
        .map(|_| ())
}

/// `lo_hi` ranges from a `{"boundaries": [...]}` document.
fn bundle_ranges(v: &Value) -> Vec<String> {
    let b: Vec<&str> = v["boundaries"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    b.windows(2).map(|w| format!("{}_{}", w[0], w[1])).collect()
}

fn minutes(secs: i64) -> i64 {
    if secs < 0 {
        -1
    } else {
        secs / 60
    }
}

fn megabytes(bytes: i64) -> i64 {
    if bytes < 0 {
        -1
    } else {
        bytes >> 20
    }
}

/// Runs a `namespaces` command.
pub async fn run(rest: &Rest, cmd: NamespacesCmd) -> anyhow::Result<()> {
    use NamespacesCmd as C;
    match cmd {
        C::List { tenant } => {
            print_json(&rest.get(&format!("/admin/v2/namespaces/{tenant}")).await?)
        }
        C::Create {
            namespace,
            clusters,
        } => {
            let body = (!clusters.is_empty()).then(|| json!({"replication_clusters": clusters}));
            rest.call("PUT", &url(&namespace, "")?, body)
                .await
                .map(|_| ())
        }
        C::Delete { namespace, force } => {
            let u = super::topics::forced(url(&namespace, "")?, force);
            rest.call("DELETE", &u, None).await.map(|_| ())
        }
        C::Policies(n) => show(rest, &n.namespace, "policies").await,
        C::Topics(n) => show(rest, &n.namespace, "topics").await,
        C::Bundles(n) => show(rest, &n.namespace, "bundles").await,
        C::Unload { namespace, bundle } => {
            let bundles = match bundle {
                Some(b) => vec![b],
                None => bundle_ranges(&rest.get(&url(&namespace, "bundles")?).await?),
            };
            for b in bundles {
                rest.call("PUT", &url(&namespace, &format!("{b}/unload"))?, None)
                    .await?;
            }
            Ok(())
        }
        C::SplitBundle { namespace, bundle } => rest
            .call("PUT", &url(&namespace, &format!("{bundle}/split"))?, None)
            .await
            .map(|_| ()),
        C::SetRetention {
            namespace,
            time,
            size,
        } => {
            let body = json!({
                "retentionTimeInMinutes": minutes(parse_time_secs(&time)?),
                "retentionSizeInMB": megabytes(parse_size_bytes(&size)?),
            });
            set(rest, &namespace, "retention", body).await
        }
        C::GetRetention(n) => show(rest, &n.namespace, "retention").await,
        C::RemoveRetention(n) => remove(rest, &n.namespace, "retention").await,
        C::SetMessageTtl { namespace, ttl } => {
            set(
                rest,
                &namespace,
                "messageTTL",
                json!(parse_time_secs(&ttl)?),
            )
            .await
        }
        C::GetMessageTtl(n) => show(rest, &n.namespace, "messageTTL").await,
        C::RemoveMessageTtl(n) => remove(rest, &n.namespace, "messageTTL").await,
        C::SetBacklogQuota {
            namespace,
            limit,
            limit_time,
            policy,
            quota_type,
        } => {
            let body = json!({
                "limitSize": parse_size_bytes(&limit)?,
                "limitTime": parse_time_secs(&limit_time)?,
                "policy": policy,
            });
            set(
                rest,
                &namespace,
                &format!("backlogQuota?backlogQuotaType={quota_type}"),
                body,
            )
            .await
        }
        C::GetBacklogQuotas(n) => show(rest, &n.namespace, "backlogQuotaMap").await,
        C::RemoveBacklogQuota {
            namespace,
            quota_type,
        } => {
            remove(
                rest,
                &namespace,
                &format!("backlogQuota?backlogQuotaType={quota_type}"),
            )
            .await
        }
        C::SetDeduplication(t) => set(rest, &t.namespace, "deduplication", json!(t.value()?)).await,
        C::GetDeduplication(n) => show(rest, &n.namespace, "deduplication").await,
        C::SetDelayedDelivery { toggle, time } => {
            let tick_ms = parse_time_secs(&time)?.saturating_mul(1000);
            let body = json!({"active": toggle.value()?, "tickTime": tick_ms});
            set(rest, &toggle.namespace, "delayedDelivery", body).await
        }
        C::GetDelayedDelivery(n) => show(rest, &n.namespace, "delayedDelivery").await,
        C::SetAutoTopicCreation {
            toggle,
            topic_type,
            num_partitions,
        } => {
            let mut body =
                json!({"allowAutoTopicCreation": toggle.value()?, "topicType": topic_type});
            if let Some(n) = num_partitions {
                body["defaultNumPartitions"] = json!(n);
            }
            set(rest, &toggle.namespace, "autoTopicCreation", body).await
        }
        C::GetAutoTopicCreation(n) => show(rest, &n.namespace, "autoTopicCreation").await,
        C::RemoveAutoTopicCreation(n) => remove(rest, &n.namespace, "autoTopicCreation").await,
        C::SetReplicationClusters {
            namespace,
            clusters,
        } => set(rest, &namespace, "replication", json!(clusters)).await,
        C::GetReplicationClusters(n) => show(rest, &n.namespace, "replication").await,
        C::SetMaxProducersPerTopic { namespace, max } => {
            set(rest, &namespace, "maxProducersPerTopic", json!(max)).await
        }
        C::GetMaxProducersPerTopic(n) => show(rest, &n.namespace, "maxProducersPerTopic").await,
        C::SetMaxConsumersPerTopic { namespace, max } => {
            set(rest, &namespace, "maxConsumersPerTopic", json!(max)).await
        }
        C::GetMaxConsumersPerTopic(n) => show(rest, &n.namespace, "maxConsumersPerTopic").await,
        C::SetPublishRate {
            namespace,
            msgs,
            bytes,
        } => {
            let body =
                json!({"publishThrottlingRateInMsg": msgs, "publishThrottlingRateInByte": bytes});
            set(rest, &namespace, "publishRate", body).await
        }
        C::GetPublishRate(n) => show(rest, &n.namespace, "publishRate").await,
        C::SetDispatchRate {
            namespace,
            msgs,
            bytes,
            period,
        } => {
            let body = json!({
                "dispatchThrottlingRateInMsg": msgs,
                "dispatchThrottlingRateInByte": bytes,
                "ratePeriodInSecond": period,
                "relativeToPublishRate": false,
            });
            set(rest, &namespace, "dispatchRate", body).await
        }
        C::GetDispatchRate(n) => show(rest, &n.namespace, "dispatchRate").await,
    }
}
