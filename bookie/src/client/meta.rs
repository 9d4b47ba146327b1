//! Ledger metadata stored as JSON under `/ledgers/{id}` and updated only by CAS.

use bytes::Bytes;
use magnetar_metadata::{Expect, MetadataStore, Version};
use serde::{Deserialize, Serialize};

use crate::api::LedgerConfig;
use crate::error::LedgerError;

/// Prefix of ledger metadata keys.
pub const LEDGERS_PREFIX: &str = "/ledgers/";
/// Counter that allocates ledger ids.
pub const LEDGER_ID_COUNTER: &str = "/counters/ledger-id";

/// Lifecycle of a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerStatus {
    /// Its writer may append.
    Open,
    /// A reader is fencing and recovering it; the writer may no longer change it.
    InRecovery,
    /// Final; `last_entry` is the last entry.
    Closed,
}

/// Bookies holding entries from `first_entry` up to the next fragment's first entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment {
    /// First entry of this fragment.
    pub first_entry: u64,
    /// Ensemble: E bookie ids (ids, not addresses, so a bookie may move).
    pub bookies: Vec<String>,
}

/// The JSON value of `/ledgers/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMetadata {
    /// E, Qw, Qa.
    pub config: LedgerConfig,
    /// Fragments in entry order; the last one is where the writer appends.
    pub ensembles: Vec<Fragment>,
    /// Open, in recovery or closed.
    pub state: LedgerStatus,
    /// Last entry once closed (`None` for an empty ledger).
    pub last_entry: Option<u64>,
}

/// Metadata key of a ledger.
pub fn ledger_key(id: u64) -> String {
    format!("{LEDGERS_PREFIX}{id:020}")
}

/// Parses a ledger id back from its key.
pub fn ledger_id_of(key: &str) -> Option<u64> {
    key.strip_prefix(LEDGERS_PREFIX)?.parse().ok()
}

impl LedgerMetadata {
    /// Index of the fragment holding `entry`.
    pub fn fragment_index(&self, entry: u64) -> usize {
        self.ensembles
            .iter()
            .rposition(|f| f.first_entry <= entry)
            .unwrap_or(0)
    }

    /// The bookies that should hold `entry`: Qw bookies from ensemble index `entry % E`.
    pub fn write_set(&self, entry: u64) -> Vec<String> {
        let f = &self.ensembles[self.fragment_index(entry)];
        write_set(&f.bookies, self.config.write_quorum, entry)
    }

    /// Whether `bookie` is in the write set of `entry` (no allocation; hot path of acks).
    pub fn in_write_set(&self, entry: u64, bookie: &str) -> bool {
        let f = &self.ensembles[self.fragment_index(entry)];
        let e = f.bookies.len() as u64;
        f.bookies.iter().enumerate().any(|(pos, b)| {
            b == bookie && (pos as u64 + e - entry % e) % e < self.config.write_quorum as u64
        })
    }

    /// Last entry of fragment `i`, if bounded (`None` = open-ended last fragment).
    pub fn fragment_last(&self, i: usize) -> Option<u64> {
        match self.ensembles.get(i + 1) {
            Some(next) => Some(next.first_entry.saturating_sub(1)),
            None if self.state == LedgerStatus::Closed => self.last_entry,
            None => None,
        }
    }

    /// Serializes to JSON.
    pub fn to_bytes(&self) -> Bytes {
        serde_json::to_vec(self)
            .expect("ledger metadata serializes")
            .into()
    }
}

/// Write set of `entry` in `ensemble` with write quorum `qw`.
pub fn write_set(ensemble: &[String], qw: usize, entry: u64) -> Vec<String> {
    let e = ensemble.len();
    let start = (entry % e as u64) as usize;
    (0..qw.min(e))
        .map(|i| ensemble[(start + i) % e].clone())
        .collect()
}

/// Loads a ledger's metadata and version.
pub async fn load(
    metadata: &dyn MetadataStore,
    id: u64,
) -> Result<(LedgerMetadata, Version), LedgerError> {
    let v = metadata
        .get(&ledger_key(id))
        .await?
        .ok_or(LedgerError::NoSuchLedger(id))?;
    let m = serde_json::from_slice(&v.value).map_err(|e| {
        LedgerError::InvalidArgument(format!("metadata of ledger {id} is not valid: {e}"))
    })?;
    Ok((m, v.version))
}

/// Writes metadata if its version is still `version`; `Ok(None)` on a version conflict.
pub async fn cas(
    metadata: &dyn MetadataStore,
    id: u64,
    m: &LedgerMetadata,
    version: Version,
) -> Result<Option<Version>, LedgerError> {
    match metadata
        .put(
            &ledger_key(id),
            m.to_bytes(),
            Expect::Version(version),
            None,
        )
        .await
    {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_bad_version() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ens(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("b{i}")).collect()
    }

    #[test]
    fn write_set_stripes_from_entry_modulo_ensemble() {
        assert_eq!(write_set(&ens(3), 2, 0), vec!["b0", "b1"]);
        assert_eq!(write_set(&ens(3), 2, 2), vec!["b2", "b0"]);
        assert_eq!(write_set(&ens(3), 2, 4), vec!["b1", "b2"]);
    }

    #[test]
    fn fragments_are_found_by_first_entry() {
        let m = LedgerMetadata {
            config: LedgerConfig {
                ensemble: 3,
                write_quorum: 2,
                ack_quorum: 2,
            },
            ensembles: vec![
                Fragment {
                    first_entry: 0,
                    bookies: ens(3),
                },
                Fragment {
                    first_entry: 10,
                    bookies: vec!["x".into(), "b1".into(), "b2".into()],
                },
            ],
            state: LedgerStatus::Closed,
            last_entry: Some(20),
        };
        assert_eq!(m.fragment_index(9), 0);
        assert_eq!(m.fragment_index(10), 1);
        assert_eq!(m.write_set(12), vec!["x", "b1"]);
        for e in 0..30 {
            for b in ["b0", "b1", "b2", "x"] {
                assert_eq!(m.in_write_set(e, b), m.write_set(e).iter().any(|w| w == b));
            }
        }
        assert_eq!(m.fragment_last(0), Some(9));
        assert_eq!(m.fragment_last(1), Some(20));
        assert_eq!(ledger_id_of(&ledger_key(42)), Some(42));
    }
}
