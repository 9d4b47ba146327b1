//! A bounded cache of recently added entries, weighed by payload bytes, so tailing readers
//! are served without a round trip to the bookies. Ledger ids are unique across topics, so
//! one cache can be shared by every managed ledger of a broker.

use std::sync::Arc;

use bytes::Bytes;
use moka::sync::Cache;

use super::Position;

/// Recently added entries, keyed by position.
pub struct EntryCache {
    cache: Option<Cache<Position, Bytes>>,
}

impl EntryCache {
    /// A cache holding at most about `max_bytes` of payload (0 disables it).
    pub fn new(max_bytes: u64) -> Arc<EntryCache> {
        let cache = (max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &Position, v: &Bytes| {
                    u32::try_from(v.len().saturating_add(32)).unwrap_or(u32::MAX)
                })
                .build()
        });
        Arc::new(EntryCache { cache })
    }

    /// Remembers an entry.
    pub fn insert(&self, p: Position, data: Bytes) {
        if let Some(c) = &self.cache {
            c.insert(p, data);
        }
    }

    /// A cached entry.
    pub fn get(&self, p: &Position) -> Option<Bytes> {
        self.cache.as_ref().and_then(|c| c.get(p))
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        if let Some(c) = &self.cache {
            c.invalidate_all();
        }
    }
}
