//! Broker configuration: serde with defaults for every field, validated once at start.

use std::time::Duration;

use magnetar_bookie::LedgerConfig;
use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};

/// Settings of one broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case")]
pub struct BrokerConfig {
    /// Cluster this broker belongs to (`/clusters/{cluster}`).
    pub cluster_name: String,
    /// Host name clients use to reach this broker (LOOKUP answers, admin URLs).
    pub advertised_address: String,
    /// Pulsar protocol port advertised to clients; 0 = the port actually bound.
    pub broker_port: u16,
    /// HTTP port advertised to clients; 0 = the port actually bound.
    pub web_port: u16,
    /// Largest frame accepted from and advertised to clients (bytes).
    pub max_message_size: usize,
    /// Ledger replication: ensemble E, write quorum Qw, ack quorum Qa.
    pub ledger: LedgerConfig,
    /// Roll over to a new ledger after this many entries.
    pub max_entries_per_ledger: u64,
    /// Roll over to a new ledger after this many bytes.
    pub max_ledger_size_bytes: u64,
    /// Roll over to a new ledger after this many seconds.
    pub max_ledger_rollover_secs: u64,
    /// Entry cache size per broker (bytes).
    pub cache_size_bytes: u64,
    /// Most entries read from a cursor in one dispatch round.
    pub dispatch_max_read_entries: usize,
    /// Seconds a new connection has to send CONNECT.
    pub handshake_timeout_secs: u64,
    /// Seconds of silence after which the broker pings a client (and closes after two).
    pub keep_alive_secs: u64,
    /// Producer deduplication by (producer name, sequence id).
    pub deduplication_enabled: bool,
    /// Create topics on first use.
    pub allow_auto_topic_creation: bool,
    /// Create subscriptions on first use.
    pub allow_auto_subscription_creation: bool,
    /// Seconds to wait for topics to close on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Cluster mode: bundle ownership, broker registration (`[cluster]`).
    pub cluster: crate::cluster::ClusterConfig,
    /// Message lifecycle: TTL/quota check intervals, delayed index budget (`[lifecycle]`).
    pub lifecycle: crate::lifecycle::LifecycleConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            cluster_name: "standalone".to_string(),
            advertised_address: "127.0.0.1".to_string(),
            broker_port: 0,
            web_port: 0,
            max_message_size: 5 * 1024 * 1024,
            ledger: LedgerConfig::SINGLE,
            max_entries_per_ledger: 50_000,
            max_ledger_size_bytes: 2 * 1024 * 1024 * 1024,
            max_ledger_rollover_secs: 4 * 3600,
            cache_size_bytes: 256 * 1024 * 1024,
            dispatch_max_read_entries: 100,
            handshake_timeout_secs: 10,
            keep_alive_secs: 30,
            deduplication_enabled: true,
            allow_auto_topic_creation: true,
            allow_auto_subscription_creation: true,
            shutdown_timeout_secs: 10,
            cluster: crate::cluster::ClusterConfig::default(),
            lifecycle: crate::lifecycle::LifecycleConfig::default(),
        }
    }
}

impl BrokerConfig {
    /// Checks field ranges; the error names the bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: &str| {
            Err(BrokerError::Config {
                field,
                reason: reason.to_string(),
            })
        };
        if self.cluster_name.is_empty() {
            return bad("cluster_name", "must not be empty");
        }
        if self.advertised_address.is_empty() {
            return bad("advertised_address", "must not be empty");
        }
        if self.max_message_size < 1024 {
            return bad("max_message_size", "must be at least 1024");
        }
        let l = &self.ledger;
        if !(l.ensemble >= l.write_quorum && l.write_quorum >= l.ack_quorum && l.ack_quorum >= 1) {
            return bad("ledger", "need ensemble >= write_quorum >= ack_quorum >= 1");
        }
        if self.dispatch_max_read_entries == 0 {
            return bad("dispatch_max_read_entries", "must be positive");
        }
        if self.handshake_timeout_secs == 0 {
            return bad("handshake_timeout_secs", "must be positive");
        }
        Ok(())
    }

    /// Handshake timeout as a duration.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    /// Keep-alive interval as a duration.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_quorum_names_field() {
        assert!(BrokerConfig::default().validate().is_ok());
        let cfg = BrokerConfig {
            ledger: LedgerConfig {
                ensemble: 1,
                write_quorum: 1,
                ack_quorum: 2,
            },
            ..BrokerConfig::default()
        };
        let err = cfg.validate().expect_err("Qa > Qw must fail");
        assert!(err.to_string().contains("ledger"));
    }
}
