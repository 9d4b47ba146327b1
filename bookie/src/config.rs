//! Bookie server configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::LedgerError;

/// Configuration of one bookie server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BookieConfig {
    /// Directory holding the RocksDB store and the persisted bookie id.
    pub data_dir: PathBuf,
    /// Stable identity registered under `/bookies/{id}`; default: read from
    /// `{data_dir}/bookie_id`, else derived from the data directory and persisted there.
    pub bookie_id: Option<String>,
    /// Address clients should dial; default: the listener's address (127.0.0.1 if unspecified).
    pub advertised_address: Option<String>,
    /// TTL of the registration session.
    pub session_ttl_ms: u64,
    /// Disk usage fraction at or above which the bookie turns read-only.
    pub readonly_threshold: f64,
    /// Disk usage fraction below which a read-only bookie turns writable again.
    pub writable_threshold: f64,
    /// How often disk usage is checked and the registration refreshed.
    pub disk_check_interval_ms: u64,
    /// Longest graceful shutdown wait for in-flight requests.
    pub shutdown_timeout_ms: u64,
}

impl Default for BookieConfig {
    fn default() -> Self {
        BookieConfig {
            data_dir: PathBuf::from("data/bookie"),
            bookie_id: None,
            advertised_address: None,
            session_ttl_ms: 10_000,
            readonly_threshold: 0.95,
            writable_threshold: 0.90,
            disk_check_interval_ms: 5_000,
            shutdown_timeout_ms: 5_000,
        }
    }
}

impl BookieConfig {
    /// A config storing data under `dir`, otherwise default.
    pub fn with_data_dir(dir: impl Into<PathBuf>) -> Self {
        BookieConfig {
            data_dir: dir.into(),
            ..Default::default()
        }
    }

    /// Checks the fields, naming the bad one.
    pub fn validate(&self) -> Result<(), LedgerError> {
        let bad = |m: &str| Err(LedgerError::InvalidArgument(m.to_string()));
        if !(0.0..=1.0).contains(&self.readonly_threshold) {
            return bad("readonly_threshold must be within 0..=1");
        }
        if !(0.0..=1.0).contains(&self.writable_threshold)
            || self.writable_threshold > self.readonly_threshold
        {
            return bad("writable_threshold must be within 0..=readonly_threshold");
        }
        if self.session_ttl_ms < 100 {
            return bad("session_ttl_ms must be at least 100");
        }
        if self.disk_check_interval_ms == 0 {
            return bad("disk_check_interval_ms must be positive");
        }
        if let Some(id) = &self.bookie_id {
            if id.is_empty() || id.contains('/') {
                return bad("bookie_id must be non-empty and contain no '/'");
            }
        }
        Ok(())
    }

    pub(crate) fn session_ttl(&self) -> Duration {
        Duration::from_millis(self.session_ttl_ms)
    }
}

/// Resolves the bookie id: configured, else persisted in the data dir, else derived from the
/// data dir's path and persisted so it survives restarts on another port.
pub fn resolve_bookie_id(config: &BookieConfig) -> Result<String, LedgerError> {
    let io = |e: std::io::Error| LedgerError::Storage(format!("bookie id file: {e}"));
    std::fs::create_dir_all(&config.data_dir).map_err(io)?;
    let file = config.data_dir.join("bookie_id");
    if let Some(id) = &config.bookie_id {
        std::fs::write(&file, id).map_err(io)?;
        return Ok(id.clone());
    }
    match std::fs::read_to_string(&file) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let id = derive_id(&config.data_dir);
    std::fs::write(&file, &id).map_err(io)?;
    Ok(id)
}

fn derive_id(dir: &Path) -> String {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let crc = crc32c::crc32c(canon.to_string_lossy().as_bytes());
    let salt: u32 = rand::random();
    format!("bookie-{crc:08x}{salt:08x}")
}
