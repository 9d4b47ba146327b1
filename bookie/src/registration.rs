//! A bookie's registration under `/bookies/{bookie_id}` (an ephemeral key).

use serde::{Deserialize, Serialize};

use magnetar_metadata::{list_all, MetadataStore};

use crate::error::LedgerError;

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
