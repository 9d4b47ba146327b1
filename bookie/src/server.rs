//! The bookie gRPC server: pipelined adds, reads, LAC long-polls, fencing, deletes, and the
//! bookie's registration and disk-usage watch.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt};
use magnetar_metadata::MetadataStore;
use magnetar_proto::bookie as pb;
use magnetar_proto::bookie::bookie_server::{Bookie as BookieRpc, BookieServer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::config::{resolve_bookie_id, BookieConfig};
use crate::error::LedgerError;
use crate::registration::{check_disk, registration_loop};
use crate::storage::{AddOp, Storage};
use crate::wire::{lac_from_wire, lac_to_wire, to_status, MAX_ENTRY_BYTES, MAX_MESSAGE_BYTES};

type Result<T> = std::result::Result<T, LedgerError>;

/// Longest LAC long-poll a client may ask for.
const MAX_LONG_POLL: Duration = Duration::from_secs(60);

struct Service {
    storage: Storage,
    shutdown: CancellationToken,
}

fn add_response(ledger: u64, entry: u64, res: Result<()>) -> pb::AddResponse {
    let (status, message) = match res {
        Ok(()) => (pb::Status::Ok, String::new()),
        Err(e) => to_status(&e),
    };
    pb::AddResponse {
        ledger_id: ledger,
        entry_id: entry,
        status: status as i32,
        message,
    }
}

type AddStream =
    Pin<Box<dyn Stream<Item = std::result::Result<pb::AddBatchResponse, Status>> + Send>>;
type BatchFuture = Pin<Box<dyn std::future::Future<Output = pb::AddBatchResponse> + Send>>;

/// Queues every add of a batch (in order) and returns the future of its response.
async fn enqueue_batch(storage: &Storage, batch: pb::AddBatch) -> BatchFuture {
    let mut futs: Vec<Pin<Box<dyn std::future::Future<Output = pb::AddResponse> + Send>>> =
        Vec::with_capacity(batch.adds.len());
    for r in batch.adds {
        let (l, e) = (r.ledger_id, r.entry_id);
        if r.data.len() > MAX_ENTRY_BYTES {
            let err = LedgerError::TooLarge {
                size: r.data.len(),
                limit: MAX_ENTRY_BYTES,
            };
            futs.push(Box::pin(futures::future::ready(add_response(
                l,
                e,
                Err(err),
            ))));
            continue;
        }
        let op = AddOp {
            ledger: l,
            entry: e,
            data: r.data,
            crc: r.crc32c,
            lac: lac_from_wire(r.lac),
            recovery: r.recovery,
        };
        match storage.enqueue_add(op).await {
            Ok(fut) => futs.push(Box::pin(async move { add_response(l, e, fut.await) })),
            Err(err) => futs.push(Box::pin(futures::future::ready(add_response(
                l,
                e,
                Err(err),
            )))),
        }
    }
    Box::pin(async move {
        pb::AddBatchResponse {
            responses: futures::future::join_all(futs).await,
        }
    })
}

#[tonic::async_trait]
impl BookieRpc for Service {
    type AddEntriesStream = AddStream;

    async fn add_entries(
        &self,
        req: Request<Streaming<pb::AddBatch>>,
    ) -> std::result::Result<Response<AddStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        let storage = self.storage.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut pending: FuturesOrdered<BatchFuture> = FuturesOrdered::new();
            let mut open = true;
            loop {
                tokio::select! {
                    biased;
                    Some(resp) = pending.next(), if !pending.is_empty() => {
                        if tx.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                    _ = shutdown.cancelled(), if open => open = false,
                    msg = inbound.message(), if open => match msg {
                        Ok(Some(batch)) => pending.push_back(enqueue_batch(&storage, batch).await),
                        Ok(None) => open = false,
                        Err(status) => {
                            tracing::debug!(error = %status, "add stream broke");
                            open = false;
                        }
                    },
                    else => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn read_entry(
        &self,
        req: Request<pb::ReadEntryRequest>,
    ) -> std::result::Result<Response<pb::ReadEntryResponse>, Status> {
        let r = req.into_inner();
        let lac = lac_to_wire(self.storage.ledger_state(r.ledger_id).and_then(|s| s.lac));
        let resp = match self.storage.read(r.ledger_id, r.entry_id).await {
            Ok((data, crc)) => pb::ReadEntryResponse {
                status: pb::Status::Ok as i32,
                message: String::new(),
                data,
                crc32c: crc,
                lac,
            },
            Err(e) => {
                let (s, message) = to_status(&e);
                pb::ReadEntryResponse {
                    status: s as i32,
                    message,
                    lac,
                    ..Default::default()
                }
            }
        };
        Ok(Response::new(resp))
    }

    async fn read_range(
        &self,
        req: Request<pb::ReadRangeRequest>,
    ) -> std::result::Result<Response<pb::ReadRangeResponse>, Status> {
        let r = req.into_inner();
        let max = usize::try_from(r.max_bytes)
            .unwrap_or(MAX_ENTRY_BYTES)
            .clamp(1, MAX_ENTRY_BYTES);
        let resp = match self
            .storage
            .read_range_strided(r.ledger_id, r.first_entry, r.last_entry, r.stride, max)
            .await
        {
            // Older clients expect a corrupt entry to fail the whole read.
            Ok(range) if range.corrupt.is_some() && !r.stop_at_corrupt => {
                let (s, message) = to_status(&LedgerError::Corrupt {
                    ledger: r.ledger_id,
                    entry: range.corrupt.unwrap_or_default(),
                    bookie: self.storage.bookie_id().to_string(),
                });
                pb::ReadRangeResponse {
                    status: s as i32,
                    message,
                    ..Default::default()
                }
            }
            Ok(range) => pb::ReadRangeResponse {
                status: pb::Status::Ok as i32,
                message: String::new(),
                entries: range
                    .entries
                    .into_iter()
                    .map(|(entry_id, data, crc32c)| pb::Entry {
                        entry_id,
                        data,
                        crc32c,
                    })
                    .collect(),
                corrupt_entry: range.corrupt,
            },
            Err(e) => {
                let (s, message) = to_status(&e);
                pb::ReadRangeResponse {
                    status: s as i32,
                    message,
                    ..Default::default()
                }
            }
        };
        Ok(Response::new(resp))
    }

    async fn read_lac(
        &self,
        req: Request<pb::ReadLacRequest>,
    ) -> std::result::Result<Response<pb::ReadLacResponse>, Status> {
        let r = req.into_inner();
        let timeout = Duration::from_millis(u64::from(r.timeout_ms)).min(MAX_LONG_POLL);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.storage.changes();
        loop {
            let st = self.storage.ledger_state(r.ledger_id);
            let lac = st.and_then(|s| s.lac);
            let passed = r.wait_past < 0 || lac_to_wire(lac) > r.wait_past;
            if passed || tokio::time::Instant::now() >= deadline || self.shutdown.is_cancelled() {
                let resp = match st {
                    Some(_) => pb::ReadLacResponse {
                        status: pb::Status::Ok as i32,
                        message: String::new(),
                        lac: lac_to_wire(lac),
                    },
                    None => {
                        let (s, message) = to_status(&LedgerError::NoSuchLedger(r.ledger_id));
                        pb::ReadLacResponse {
                            status: s as i32,
                            message,
                            lac: -1,
                        }
                    }
                };
                return Ok(Response::new(resp));
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.shutdown.cancelled() => {}
            }
        }
    }

    async fn fence(
        &self,
        req: Request<pb::FenceRequest>,
    ) -> std::result::Result<Response<pb::FenceResponse>, Status> {
        let r = req.into_inner();
        let resp = match self.storage.fence(r.ledger_id).await {
            Ok(lac) => pb::FenceResponse {
                status: pb::Status::Ok as i32,
                message: String::new(),
                lac: lac_to_wire(lac),
            },
            Err(e) => {
                let (s, message) = to_status(&e);
                pb::FenceResponse {
                    status: s as i32,
                    message,
                    lac: -1,
                }
            }
        };
        Ok(Response::new(resp))
    }

    async fn delete_ledger(
        &self,
        req: Request<pb::DeleteLedgerRequest>,
    ) -> std::result::Result<Response<pb::DeleteLedgerResponse>, Status> {
        let r = req.into_inner();
        let resp = match self.storage.delete(r.ledger_id).await {
            Ok(()) => pb::DeleteLedgerResponse::default(),
            Err(e) => {
                let (s, message) = to_status(&e);
                pb::DeleteLedgerResponse {
                    status: s as i32,
                    message,
                }
            }
        };
        Ok(Response::new(resp))
    }

    async fn list_ledgers(
        &self,
        _req: Request<pb::ListLedgersRequest>,
    ) -> std::result::Result<Response<pb::ListLedgersResponse>, Status> {
        let ledgers = self
            .storage
            .list_ledgers()
            .into_iter()
            .map(|(id, s)| pb::LedgerInfo {
                ledger_id: id,
                lac: lac_to_wire(s.lac),
                fenced: s.fenced,
            })
            .collect();
        Ok(Response::new(pb::ListLedgersResponse { ledgers }))
    }
}

/// A running bookie.
pub struct Bookie {
    id: String,
    address: String,
    storage: Storage,
    task: JoinHandle<Result<()>>,
}

impl Bookie {
    /// Opens storage, starts serving on `listener` and registers `/bookies/{id}`; runs until
    /// `shutdown` fires, then stops accepting, drains in-flight requests, syncs storage and
    /// closes its session (removing the registration).
    pub async fn start(
        config: BookieConfig,
        listener: TcpListener,
        metadata: Arc<dyn MetadataStore>,
        shutdown: CancellationToken,
    ) -> Result<Bookie> {
        config.validate()?;
        // A child token: an internal failure stops this bookie, never the caller's other work.
        let shutdown = shutdown.child_token();
        let id = resolve_bookie_id(&config)?;
        let local = listener
            .local_addr()
            .map_err(|e| LedgerError::InvalidArgument(format!("listener address: {e}")))?;
        let address = config
            .advertised_address
            .clone()
            .unwrap_or_else(|| advertised(local));
        let dir = config.data_dir.join("ledgers");
        let storage = {
            let (dir, id) = (dir.clone(), id.clone());
            tokio::task::spawn_blocking(move || Storage::open(&dir, &id))
                .await
                .map_err(|_| LedgerError::Shutdown)??
        };
        check_disk(&config, &storage);
        let svc = Service {
            storage: storage.clone(),
            shutdown: shutdown.clone(),
        };
        // Every open ledger keeps one add stream per bookie: allow many streams, and large
        // flow-control windows so pipelined adds are not throttled per stream.
        let server = tonic::transport::Server::builder()
            .max_concurrent_streams(Some(100_000))
            .initial_stream_window_size(Some(4 << 20))
            .initial_connection_window_size(Some(32 << 20))
            .tcp_nodelay(true)
            .add_service(
                BookieServer::new(svc)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(
                // `tcp_nodelay` above only applies to listeners tonic binds itself: without
                // this, Nagle + delayed ACK add ~40 ms to every read response.
                TcpListenerStream::new(listener).map(|s| {
                    if let Ok(s) = &s {
                        let _ = s.set_nodelay(true);
                    }
                    s
                }),
                shutdown.clone().cancelled_owned(),
            );
        let registered = CancellationToken::new();
        let reg = tokio::spawn(registration_loop(
            metadata,
            id.clone(),
            address.clone(),
            storage.clone(),
            config.clone(),
            shutdown.clone(),
            registered.clone(),
        ));
        let (task_storage, task_id) = (storage.clone(), id.clone());
        let grace = Duration::from_millis(config.shutdown_timeout_ms);
        let task = tokio::spawn(async move {
            tracing::info!(bookie = %task_id, address = %local, "bookie serving");
            let res = tokio::select! {
                r = server => r.map_err(|e| LedgerError::Bookie { bookie: task_id.clone(), message: e.to_string() }),
                _ = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                    tracing::warn!(bookie = %task_id, "graceful shutdown timed out");
                    Ok(())
                }
            };
            shutdown.cancel();
            let _ = reg.await;
            if let Err(e) = task_storage.sync().await {
                tracing::error!(bookie = %task_id, error = %e, "final sync failed");
            }
            if let Err(e) = task_storage.close().await {
                tracing::error!(bookie = %task_id, error = %e, "closing storage failed");
            }
            tracing::info!(bookie = %task_id, "bookie stopped");
            res
        });
        // Callers (and tests) may rely on the bookie being discoverable once start returns.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        tokio::select! {
            _ = registered.cancelled() => {}
            _ = tokio::time::sleep_until(deadline) => tracing::warn!(bookie = %id, "not registered yet"),
        }
        Ok(Bookie {
            id,
            address: config
                .advertised_address
                .clone()
                .unwrap_or_else(|| advertised(local)),
            storage,
            task,
        })
    }

    /// This bookie's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The address it advertises.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Its storage (fault injection and inspection in tests).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Waits until the bookie has shut down.
    pub async fn wait(self) -> Result<()> {
        self.task.await.map_err(|_| LedgerError::Shutdown)?
    }
}

fn advertised(local: SocketAddr) -> String {
    if local.ip().is_unspecified() {
        format!("127.0.0.1:{}", local.port())
    } else {
        local.to_string()
    }
}

/// Runs a bookie until `shutdown` fires (see [`Bookie::start`]).
pub async fn run(
    config: BookieConfig,
    listener: TcpListener,
    metadata: Arc<dyn MetadataStore>,
    shutdown: CancellationToken,
) -> Result<()> {
    Bookie::start(config, listener, metadata, shutdown)
        .await?
        .wait()
        .await
}
