//! Configuration, the persisted form of a managed ledger's ledger list and cursors, and the
//! compare-and-set that is the only way the ledger list changes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use magnetar_bookie::{LedgerConfig, LedgerId};
use magnetar_metadata::{Expect, MetadataStore, Version};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::error::{MlError, Result};
use super::ranges::AckRange;
use super::shared::Core;
use super::Position;

/// Settings of a managed ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MlConfig {
    /// E/Qw/Qa of every ledger created.
    pub ledger: LedgerConfig,
    /// Roll over to a new ledger after this many entries (0: no limit).
    pub max_entries_per_ledger: u64,
    /// Roll over to a new ledger after this many payload bytes (0: no limit).
    pub max_ledger_size_bytes: u64,
    /// Roll over a ledger that holds entries once it is this old, even when idle (0: never).
    pub max_ledger_age: Duration,
    /// Size/entry rollover waits until the ledger is at least this old.
    pub min_ledger_rollover_time: Duration,
    /// Bytes of recently added entries kept for tail reads (0 disables the cache); used
    /// when no shared cache is passed to [`super::ManagedLedger::open_with_cache`].
    pub cache_size_bytes: u64,
    /// Dirty cursors are persisted at most this often (and on close).
    pub cursor_persist_interval: Duration,
    /// Most individual-ack ranges persisted per cursor (the rest are redelivered).
    pub max_persisted_ack_ranges: usize,
    /// Trim consumed ledgers automatically under this retention policy (checked about once
    /// a second); `None` leaves trimming to explicit [`super::ManagedLedger::trim`] calls.
    pub auto_trim: Option<RetentionPolicy>,
}

impl Default for MlConfig {
    fn default() -> Self {
        MlConfig {
            ledger: LedgerConfig::SINGLE,
            max_entries_per_ledger: 50_000,
            max_ledger_size_bytes: 2 << 30,
            max_ledger_age: Duration::from_secs(4 * 3600),
            min_ledger_rollover_time: Duration::from_secs(10 * 60),
            cache_size_bytes: 64 << 20,
            cursor_persist_interval: Duration::from_millis(100),
            max_persisted_ack_ranges: 10_000,
            auto_trim: None,
        }
    }
}

/// Retention of consumed data, as in Pulsar's namespace policy: `-1` keeps forever, `0`
/// keeps nothing once every durable cursor has consumed it. A consumed ledger is deleted
/// when it is older than the time limit or the topic is over the size limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Minutes to keep consumed data (-1: forever).
    pub time_minutes: i64,
    /// Megabytes of consumed data to keep (-1: unlimited).
    pub size_mb: i64,
}

/// One ledger of a managed ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerInfo {
    /// Ledger id.
    pub id: LedgerId,
    /// Entries in the ledger (confirmed entries for the ledger being written).
    pub entries: u64,
    /// Payload bytes in the ledger (estimated for a recovered ledger).
    pub size: u64,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// The value stored at `/managed-ledgers/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct MlMeta {
    pub ledgers: Vec<LedgerInfo>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// The value stored for a durable cursor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CursorInfo {
    pub mark_delete: Option<Position>,
    #[serde(default)]
    pub acked: Vec<AckRange>,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Metadata key of a managed ledger.
pub(crate) fn ml_key(name: &str) -> String {
    format!("/managed-ledgers/{name}")
}

/// Metadata prefix of a managed ledger's cursors.
pub(crate) fn cursor_prefix(name: &str) -> String {
    format!("/cursors/{name}/")
}

/// Metadata key of a cursor; the cursor name is escaped so it never holds a `/`.
pub(crate) fn cursor_key(name: &str, cursor: &str) -> String {
    let escaped = cursor.replace('%', "%25").replace('/', "%2F");
    format!("{}{escaped}", cursor_prefix(name))
}

/// Inverse of the escaping in [`cursor_key`].
pub(crate) fn unescape_cursor(s: &str) -> String {
    s.replace("%2F", "/").replace("%25", "%")
}

pub(crate) fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T> {
    serde_json::from_slice(value).map_err(|source| MlError::CorruptMetadata {
        key: key.to_string(),
        source,
    })
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("metadata values always serialize"))
}

pub(crate) fn expect_of(version: Option<Version>) -> Expect {
    version.map_or(Expect::Absent, Expect::Version)
}

/// Writes the ledger list changed by `change`, by compare-and-set against the version this
/// instance last wrote. Losing the CAS means another owner took over: the managed ledger
/// becomes fenced. `change` is applied to the in-memory list only after the write succeeds.
pub(crate) async fn update_ledgers<F>(core: &Core, change: F) -> Result<()>
where
    F: Fn(&mut BTreeMap<LedgerId, LedgerInfo>, &mut BTreeMap<String, String>),
{
    let _serial = core.meta_lock.lock().await;
    let (value, expect) = {
        let st = core.state.lock();
        let mut ledgers = st.ledgers.clone();
        let mut properties = st.properties.clone();
        change(&mut ledgers, &mut properties);
        let meta = MlMeta {
            ledgers: ledgers.into_values().collect(),
            properties,
        };
        (encode(&meta), expect_of(st.version))
    };
    let key = ml_key(&core.name);
    match core.meta.put(&key, value, expect, None).await {
        Ok(v) => {
            let mut st = core.state.lock();
            let st = &mut *st;
            change(&mut st.ledgers, &mut st.properties);
            st.version = Some(v);
            Ok(())
        }
        Err(e) if e.is_bad_version() => {
            tracing::warn!(ml = %core.name, "ledger list CAS lost: another owner took over");
            Err(core.fence())
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads a key and decodes it.
pub(crate) async fn get_decoded<T: DeserializeOwned>(
    meta: &dyn MetadataStore,
    key: &str,
) -> Result<Option<(T, Version)>> {
    match meta.get(key).await? {
        Some(v) => Ok(Some((decode(key, &v.value)?, v.version))),
        None => Ok(None),
    }
}
