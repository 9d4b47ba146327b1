//! A bookie's registration under `/bookies/{bookie_id}` (an ephemeral key): its JSON shape,
//! listing, and the loop that keeps it current with the disk-usage read-only state.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use magnetar_metadata::{list_all, Expect, MetadataStore, SessionKeeper};

use crate::config::BookieConfig;
use crate::error::LedgerError;
use crate::storage::Storage;

/// Prefix of bookie registrations.
pub const BOOKIES_PREFIX: &str = "/bookies/";

/// Whether a bookie accepts new ledger entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookieState {
    /// Accepts adds.
    Writable,
    /// Disk usage above threshold (or disk full): serves reads and recovery writes only.
    Readonly,
}

/// The JSON value of `/bookies/{bookie_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookieRegistration {
    /// `host:port` clients dial.
    pub address: String,
    /// Free bytes on the data volume.
    pub free_bytes: u64,
    /// Writable or read-only.
    pub state: BookieState,
}

/// Registration key of a bookie.
pub fn bookie_key(id: &str) -> String {
    format!("{BOOKIES_PREFIX}{id}")
}

/// Every registered bookie, by id, in id order (unparsable registrations are skipped).
pub async fn list_bookies(
    metadata: &dyn MetadataStore,
) -> Result<Vec<(String, BookieRegistration)>, LedgerError> {
    let mut out = Vec::new();
    for (k, v) in list_all(metadata, BOOKIES_PREFIX).await? {
        let id = k.trim_start_matches(BOOKIES_PREFIX).to_string();
        match serde_json::from_slice::<BookieRegistration>(&v.value) {
            Ok(r) => out.push((id, r)),
            Err(e) => tracing::warn!(bookie = %id, error = %e, "unparsable bookie registration"),
        }
    }
    Ok(out)
}

/// Disk usage fraction and free bytes of the volume holding `dir`.
fn disk_usage(dir: &std::path::Path) -> Option<(f64, u64)> {
    let s = rustix::fs::statvfs(dir).ok()?;
    if s.f_blocks == 0 {
        return None;
    }
    let used = 1.0 - (s.f_bavail as f64 / s.f_blocks as f64);
    Some((used, s.f_bavail.saturating_mul(s.f_frsize)))
}

/// Applies the read-only hysteresis; returns free bytes.
pub(crate) fn check_disk(config: &BookieConfig, storage: &Storage) -> u64 {
    storage.measure_disk_used();
    let Some((used, free)) = disk_usage(&config.data_dir) else {
        return 0;
    };
    metrics::gauge!("magnetar_bookie_disk_usage_ratio").set(used);
    if used >= config.readonly_threshold {
        storage.set_read_only(true);
    } else if used < config.writable_threshold {
        storage.set_read_only(false);
    }
    free
}

pub(crate) async fn registration_loop(
    metadata: Arc<dyn MetadataStore>,
    id: String,
    address: String,
    storage: Storage,
    config: BookieConfig,
    shutdown: CancellationToken,
    registered: CancellationToken,
) {
    let key = bookie_key(&id);
    let interval = Duration::from_millis(config.disk_check_interval_ms);
    while !shutdown.is_cancelled() {
        let keeper = match SessionKeeper::start(metadata.clone(), config.session_ttl()).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(bookie = %id, error = %e, "cannot open metadata session");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
        };
        let lost = keeper.lost();
        let mut last: Option<BookieRegistration> = None;
        loop {
            let c = config.clone();
            let st = storage.clone();
            let free = tokio::task::spawn_blocking(move || check_disk(&c, &st))
                .await
                .unwrap_or(0);
            let reg = BookieRegistration {
                address: address.clone(),
                free_bytes: free,
                state: if storage.is_read_only() {
                    BookieState::Readonly
                } else {
                    BookieState::Writable
                },
            };
            let changed = last.as_ref().is_none_or(|l| {
                l.state != reg.state || l.free_bytes.abs_diff(reg.free_bytes) > 64 << 20
            });
            if changed {
                let value = serde_json::to_vec(&reg).expect("registration serializes");
                match metadata
                    .put(&key, value.into(), Expect::Any, Some(keeper.id()))
                    .await
                {
                    Ok(_) => {
                        tracing::info!(bookie = %id, state = ?reg.state, "bookie registered");
                        last = Some(reg);
                        registered.cancel();
                    }
                    Err(e) => tracing::warn!(bookie = %id, error = %e, "registration failed"),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    if let Err(e) = keeper.close().await {
                        tracing::warn!(bookie = %id, error = %e, "closing session failed");
                    }
                    return;
                }
                _ = lost.cancelled() => {
                    tracing::warn!(bookie = %id, "registration session lost; re-registering");
                    break;
                }
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}
