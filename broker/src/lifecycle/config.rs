//! Settings of the message lifecycle (`[lifecycle]` in the broker config), with
//! `MAGNETAR_*` environment overrides so tests can shorten intervals.

use serde::{Deserialize, Serialize};

use crate::config::BrokerConfig;

/// Lifecycle settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case")]
pub struct LifecycleConfig {
    /// How often policies are re-resolved, backlog quotas checked and deduplication
    /// snapshots written (ms).
    pub check_interval_ms: u64,
    /// How often messages past their TTL are expired (seconds).
    pub message_expiry_check_interval_secs: u64,
    /// Most delayed entries indexed in memory per subscription; beyond it the latest are
    /// dropped from memory and found again by a rescan.
    pub delayed_index_max_entries: usize,
    /// A ledger is rolled over for size or entry count only once it is this old (seconds).
    pub min_ledger_rollover_secs: u64,
    /// How long a producer creation waits under `producer_request_hold` before failing (ms).
    pub backlog_quota_hold_timeout_ms: u64,
    /// Without a retention policy, how often consumed ledgers are deleted (seconds; Pulsar's
    /// `retentionCheckIntervalInSeconds`).
    pub retention_check_interval_secs: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            check_interval_ms: 1_000,
            message_expiry_check_interval_secs: 60,
            delayed_index_max_entries: 100_000,
            min_ledger_rollover_secs: 600,
            backlog_quota_hold_timeout_ms: 1_000,
            retention_check_interval_secs: 120,
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => {
            tracing::warn!(var = name, value = %v, "ignoring non-numeric setting");
            None
        }
    }
}

/// Applies `MAGNETAR_LIFECYCLE_CHECK_INTERVAL_MS`, `MAGNETAR_MESSAGE_EXPIRY_CHECK_INTERVAL_SECS`,
/// `MAGNETAR_DELAYED_INDEX_MAX_ENTRIES`, `MAGNETAR_MIN_LEDGER_ROLLOVER_SECS`,
/// `MAGNETAR_BACKLOG_QUOTA_HOLD_TIMEOUT_MS` and `MAGNETAR_MAX_ENTRIES_PER_LEDGER`.
pub fn apply_env_overrides(config: &mut BrokerConfig) {
    let l = &mut config.lifecycle;
    if let Some(v) = env_u64("MAGNETAR_LIFECYCLE_CHECK_INTERVAL_MS") {
        l.check_interval_ms = v;
    }
    if let Some(v) = env_u64("MAGNETAR_MESSAGE_EXPIRY_CHECK_INTERVAL_SECS") {
        l.message_expiry_check_interval_secs = v;
    }
    if let Some(v) = env_u64("MAGNETAR_DELAYED_INDEX_MAX_ENTRIES") {
        l.delayed_index_max_entries = v as usize;
    }
    if let Some(v) = env_u64("MAGNETAR_MIN_LEDGER_ROLLOVER_SECS") {
        l.min_ledger_rollover_secs = v;
    }
    if let Some(v) = env_u64("MAGNETAR_BACKLOG_QUOTA_HOLD_TIMEOUT_MS") {
        l.backlog_quota_hold_timeout_ms = v;
    }
    if let Some(v) = env_u64("MAGNETAR_RETENTION_CHECK_INTERVAL_SECS") {
        l.retention_check_interval_secs = v;
    }
    if let Some(v) = env_u64("MAGNETAR_MAX_ENTRIES_PER_LEDGER") {
        config.max_entries_per_ledger = v;
    }
}
