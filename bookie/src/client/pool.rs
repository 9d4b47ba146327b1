//! Connections to bookies, found by bookie id through their registrations.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use magnetar_metadata::MetadataStore;
use magnetar_proto::bookie as pb;
use magnetar_proto::bookie::bookie_client::BookieClient;
use parking_lot::Mutex;
use tonic::transport::{Channel, Endpoint};

use crate::error::LedgerError;
use crate::registration::{bookie_key, list_bookies, BookieRegistration, BookieState};
use crate::wire::{from_status, lac_from_wire, MAX_MESSAGE_BYTES};

type Result<T> = std::result::Result<T, LedgerError>;

/// Deadline of one unary bookie call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Data bytes a bookie returns for one range request at most (plus one entry).
pub const RANGE_READ_BYTES: u64 = 4 << 20;

/// Entries returned by [`BookiePool::read_range_strided`].
#[derive(Debug, Default)]
pub struct RangeReply {
    /// `(entry, data)` in entry order, CRC-checked; sparse where the bookie lacks entries.
    pub entries: Vec<(u64, Bytes)>,
    /// A corrupt entry met after the last returned one; the run stops before it.
    pub corrupt: Option<u64>,
}

/// Cached gRPC channels to bookies, keyed by bookie id.
pub struct BookiePool {
    metadata: Arc<dyn MetadataStore>,
    channels: Mutex<HashMap<String, (String, Channel)>>,
}

fn unreachable(bookie: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Bookie {
        bookie: bookie.to_string(),
        message: e.to_string(),
    }
}

impl BookiePool {
    /// A pool resolving bookie ids through `metadata`.
    pub fn new(metadata: Arc<dyn MetadataStore>) -> Arc<Self> {
        Arc::new(BookiePool {
            metadata,
            channels: Mutex::new(HashMap::new()),
        })
    }

    /// The metadata store.
    pub fn metadata(&self) -> &Arc<dyn MetadataStore> {
        &self.metadata
    }

    /// Registered writable bookies.
    pub async fn writable(&self) -> Result<Vec<(String, BookieRegistration)>> {
        Ok(list_bookies(self.metadata.as_ref())
            .await?
            .into_iter()
            .filter(|(_, r)| r.state == BookieState::Writable)
            .collect())
    }

    /// A client for `bookie`, connecting if needed.
    pub async fn client(&self, bookie: &str) -> Result<BookieClient<Channel>> {
        if let Some((_, ch)) = self.channels.lock().get(bookie) {
            return Ok(Self::wrap(ch.clone()));
        }
        let reg = self
            .metadata
            .get(&bookie_key(bookie))
            .await?
            .ok_or_else(|| unreachable(bookie, "not registered"))?;
        let reg: BookieRegistration =
            serde_json::from_slice(&reg.value).map_err(|e| unreachable(bookie, e))?;
        let ch = Endpoint::from_shared(format!("http://{}", reg.address))
            .map_err(|e| unreachable(bookie, e))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(4 << 20))
            .initial_connection_window_size(Some(32 << 20))
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| unreachable(bookie, format!("connect {}: {e}", reg.address)))?;
        self.channels
            .lock()
            .insert(bookie.to_string(), (reg.address, ch.clone()));
        Ok(Self::wrap(ch))
    }

    fn wrap(ch: Channel) -> BookieClient<Channel> {
        BookieClient::new(ch)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Forgets a bookie's channel (it failed; it may come back elsewhere).
    pub fn invalidate(&self, bookie: &str) {
        self.channels.lock().remove(bookie);
    }

    async fn call<T>(
        &self,
        bookie: &str,
        fut: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => {
                self.invalidate(bookie);
                Err(unreachable(bookie, s))
            }
            Err(_) => {
                self.invalidate(bookie);
                Err(unreachable(bookie, "request timed out"))
            }
        }
    }

    /// Reads one entry from `bookie`, checking its CRC32C.
    pub async fn read_entry(&self, bookie: &str, ledger: u64, entry: u64) -> Result<Bytes> {
        let mut c = self.client(bookie).await?;
        let r = self
            .call(
                bookie,
                c.read_entry(pb::ReadEntryRequest {
                    ledger_id: ledger,
                    entry_id: entry,
                }),
            )
            .await?;
        from_status(r.status, r.message, bookie, ledger, entry)?;
        if crc32c::crc32c(&r.data) != r.crc32c {
            return Err(LedgerError::Corrupt {
                ledger,
                entry,
                bookie: bookie.to_string(),
            });
        }
        Ok(r.data)
    }

    /// Reads the entries `bookie` holds in `first..=last` (sparse), CRC-checked; a corrupt
    /// entry ends the returned run early.
    pub async fn read_range(
        &self,
        bookie: &str,
        ledger: u64,
        first: u64,
        last: u64,
    ) -> Result<Vec<(u64, Bytes)>> {
        let mut c = self.client(bookie).await?;
        let r = self
            .call(
                bookie,
                c.read_range(pb::ReadRangeRequest {
                    ledger_id: ledger,
                    first_entry: first,
                    last_entry: last,
                    max_bytes: RANGE_READ_BYTES,
                    stride: 1,
                    stop_at_corrupt: false,
                }),
            )
            .await?;
        from_status(r.status, r.message, bookie, ledger, first)?;
        Ok(r.entries
            .into_iter()
            .take_while(|e| crc32c::crc32c(&e.data) == e.crc32c)
            .map(|e| (e.entry_id, e.data))
            .collect())
    }

    /// Reads the entries `bookie` holds among `first, first + stride, ...` up to `last`
    /// (sparse, at most [`RANGE_READ_BYTES`] of data), CRC-checked. A corrupt entry, found by
    /// the bookie or by this check, ends the run and is reported in [`RangeReply::corrupt`].
    pub async fn read_range_strided(
        &self,
        bookie: &str,
        ledger: u64,
        first: u64,
        last: u64,
        stride: u64,
    ) -> Result<RangeReply> {
        let stride = stride.max(1);
        let mut c = self.client(bookie).await?;
        let r = self
            .call(
                bookie,
                c.read_range(pb::ReadRangeRequest {
                    ledger_id: ledger,
                    first_entry: first,
                    last_entry: last,
                    max_bytes: RANGE_READ_BYTES,
                    stride,
                    stop_at_corrupt: true,
                }),
            )
            .await?;
        from_status(r.status, r.message, bookie, ledger, first)?;
        let mut reply = RangeReply {
            entries: Vec::with_capacity(r.entries.len()),
            corrupt: r.corrupt_entry,
        };
        for e in r.entries {
            // An older bookie ignores the stride and returns every entry it holds.
            if e.entry_id < first
                || e.entry_id > last
                || !(e.entry_id - first).is_multiple_of(stride)
            {
                continue;
            }
            if crc32c::crc32c(&e.data) != e.crc32c {
                reply.corrupt = Some(e.entry_id);
                break;
            }
            reply.entries.push((e.entry_id, e.data));
        }
        Ok(reply)
    }

    /// Fences `ledger` on `bookie`; returns the bookie's LAC.
    pub async fn fence(&self, bookie: &str, ledger: u64) -> Result<Option<u64>> {
        let mut c = self.client(bookie).await?;
        let r = self
            .call(bookie, c.fence(pb::FenceRequest { ledger_id: ledger }))
            .await?;
        from_status(r.status, r.message, bookie, ledger, 0)?;
        Ok(lac_from_wire(r.lac))
    }

    /// The bookie's LAC of `ledger`, waiting up to `wait` for it to pass `past`.
    pub async fn read_lac(
        &self,
        bookie: &str,
        ledger: u64,
        past: Option<u64>,
        wait: Duration,
    ) -> Result<Option<u64>> {
        let mut c = self.client(bookie).await?;
        let req = pb::ReadLacRequest {
            ledger_id: ledger,
            wait_past: past.map_or(-1, |p| p as i64),
            timeout_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        };
        let r = tokio::time::timeout(wait + CALL_TIMEOUT, c.read_lac(req))
            .await
            .map_err(|_| unreachable(bookie, "read LAC timed out"))?
            .map_err(|s| {
                self.invalidate(bookie);
                unreachable(bookie, s)
            })?
            .into_inner();
        from_status(r.status, r.message, bookie, ledger, 0)?;
        Ok(lac_from_wire(r.lac))
    }

    /// Deletes `ledger` on `bookie`.
    pub async fn delete(&self, bookie: &str, ledger: u64) -> Result<()> {
        let mut c = self.client(bookie).await?;
        let r = self
            .call(
                bookie,
                c.delete_ledger(pb::DeleteLedgerRequest { ledger_id: ledger }),
            )
            .await?;
        from_status(r.status, r.message, bookie, ledger, 0)
    }
}
