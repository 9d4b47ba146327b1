//! [`GrpcMetadataClient`]: a [`MetadataStore`] over the metadata service's gRPC API. It
//! follows the leader through redirects, retries reads across leader changes with backoff
//! under an overall deadline, and retries a write only when the request provably did not
//! reach a leader (connect failure or a follower's not-leader rejection); otherwise a broken
//! write returns [`MetadataError::OutcomeUnknown`]. Watches re-attach after a reconnect and
//! resume after the last event seen, so no event is lost or repeated.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use magnetar_proto::metadata as pb;
use magnetar_proto::metadata::metadata_client::MetadataClient;
use parking_lot::Mutex;
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Response, Status};

use crate::convert::{self, from_status, not_leader};
use crate::error::MetadataError;
use crate::store::{
    validate, Expect, MetadataStore, Result, SessionId, TxnOp, Version, Versioned, WatchEvent,
    WatchStream,
};

/// How a request may be retried.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Idempotent: retry on any unavailability.
    Always,
    /// A write: retry only if it provably was not proposed.
    IfNotSent,
}

struct Inner {
    addrs: Vec<String>,
    channels: Mutex<HashMap<String, MetadataClient<Channel>>>,
    leader: Mutex<Option<String>>,
    next: Mutex<usize>,
    deadline: Duration,
    attempt_timeout: Duration,
}

/// A metadata client over gRPC; cheap to clone.
#[derive(Clone)]
pub struct GrpcMetadataClient {
    inner: Arc<Inner>,
}

fn connect_failed(s: &Status) -> bool {
    // tonic reports a failed (lazy) connect as UNAVAILABLE before anything is sent.
    let m = s.message();
    s.code() == Code::Unavailable
        && (m.contains("error trying to connect")
            || m.contains("tcp connect error")
            || m.contains("Connection refused")
            || m.contains("dns error"))
}

impl GrpcMetadataClient {
    /// A client of the cluster whose members listen on `addrs` (`host:port`). Connections
    /// are made lazily.
    pub fn new(addrs: Vec<String>) -> Self {
        GrpcMetadataClient {
            inner: Arc::new(Inner {
                addrs,
                channels: Mutex::new(HashMap::new()),
                leader: Mutex::new(None),
                next: Mutex::new(0),
                deadline: Duration::from_secs(15),
                attempt_timeout: Duration::from_secs(5),
            }),
        }
    }

    /// Sets the overall deadline of one operation, retries included.
    pub fn with_deadline(self, deadline: Duration) -> Self {
        let inner = Arc::new(Inner {
            addrs: self.inner.addrs.clone(),
            channels: Mutex::new(HashMap::new()),
            leader: Mutex::new(None),
            next: Mutex::new(0),
            deadline,
            attempt_timeout: deadline.min(Duration::from_secs(5)),
        });
        GrpcMetadataClient { inner }
    }

    fn client_for(&self, addr: &str) -> Result<MetadataClient<Channel>> {
        let mut chans = self.inner.channels.lock();
        if let Some(c) = chans.get(addr) {
            return Ok(c.clone());
        }
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| MetadataError::InvalidArgument(format!("bad address {addr}: {e}")))?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true);
        let c = MetadataClient::new(ep.connect_lazy())
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(16 * 1024 * 1024);
        chans.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    fn pick(&self) -> Result<String> {
        if let Some(l) = self.inner.leader.lock().clone() {
            return Ok(l);
        }
        if self.inner.addrs.is_empty() {
            return Err(MetadataError::InvalidArgument(
                "no metadata addresses".into(),
            ));
        }
        let mut n = self.inner.next.lock();
        let a = self.inner.addrs[*n % self.inner.addrs.len()].clone();
        *n = n.wrapping_add(1);
        Ok(a)
    }

    fn forget(&self, addr: &str) {
        let mut l = self.inner.leader.lock();
        if l.as_deref() == Some(addr) {
            *l = None;
        }
    }

    async fn call<T, F, Fut>(&self, retry: Retry, f: F) -> Result<T>
    where
        F: Fn(MetadataClient<Channel>) -> Fut,
        Fut: Future<Output = std::result::Result<Response<T>, Status>>,
    {
        let deadline = Instant::now() + self.inner.deadline;
        let mut backoff = Duration::from_millis(20);
        let mut last = String::from("no attempt made");
        for _ in 0..10_000 {
            if Instant::now() >= deadline {
                break;
            }
            let addr = self.pick()?;
            let client = self.client_for(&addr)?;
            let attempt = tokio::time::timeout(self.inner.attempt_timeout, f(client)).await;
            let status = match attempt {
                Ok(Ok(r)) => {
                    *self.inner.leader.lock() = Some(addr);
                    return Ok(r.into_inner());
                }
                Ok(Err(s)) => s,
                Err(_) => {
                    self.forget(&addr);
                    if retry == Retry::IfNotSent {
                        return Err(MetadataError::OutcomeUnknown(format!(
                            "no answer from {addr} within {:?}",
                            self.inner.attempt_timeout
                        )));
                    }
                    last = format!("{addr}: timed out");
                    continue;
                }
            };
            if let Some(hint) = not_leader(&status) {
                *self.inner.leader.lock() = hint.filter(|h| *h != addr);
                last = format!("{addr}: not leader");
            } else if connect_failed(&status) {
                self.forget(&addr);
                last = format!("{addr}: {}", status.message());
            } else if matches!(
                status.code(),
                Code::Unavailable
                    | Code::Cancelled
                    | Code::Internal
                    | Code::Unknown
                    | Code::DeadlineExceeded
                    | Code::Aborted
            ) {
                // Also what a broken connection looks like (e.g. an h2 stream reset), so a
                // write may have been proposed.
                let err = from_status(&status);
                if retry == Retry::IfNotSent {
                    return Err(match err {
                        MetadataError::OutcomeUnknown(m) => MetadataError::OutcomeUnknown(m),
                        _ => MetadataError::OutcomeUnknown(format!("{addr}: {}", status.message())),
                    });
                }
                self.forget(&addr);
                last = format!("{addr}: {}", status.message());
            } else {
                return Err(from_status(&status));
            }
            let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 2);
            let sleep = (backoff + Duration::from_millis(jitter))
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(sleep).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
        Err(MetadataError::Unavailable(format!(
            "no metadata leader within {:?}: {last}",
            self.inner.deadline
        )))
    }

    /// The cluster status as seen by the leader (or any reachable member).
    pub async fn status(&self) -> Result<pb::StatusResponse> {
        let st = self
            .call(Retry::Always, |mut c| async move {
                c.status(pb::Empty {}).await
            })
            .await?;
        if st.leader_id != 0 && st.leader_id != st.node_id && !st.leader_addr.is_empty() {
            let leader = st.leader_addr.clone();
            if let Ok(mut c) = self.client_for(&leader) {
                if let Ok(Ok(r)) =
                    tokio::time::timeout(self.inner.attempt_timeout, c.status(pb::Empty {})).await
                {
                    return Ok(r.into_inner());
                }
            }
        }
        Ok(st)
    }

    /// The status as seen by the member at `addr` only (no leader chasing, no retries).
    pub async fn status_of(&self, addr: &str) -> Result<pb::StatusResponse> {
        let mut c = self.client_for(addr)?;
        match tokio::time::timeout(self.inner.attempt_timeout, c.status(pb::Empty {})).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(from_status(&s)),
            Err(_) => Err(MetadataError::Unavailable(format!(
                "{addr}: status timed out"
            ))),
        }
    }

    /// Adds a voter at runtime (as learner first, then promoted).
    pub async fn add_node(&self, id: u64, addr: &str) -> Result<pb::StatusResponse> {
        let addr = addr.to_string();
        self.call(Retry::IfNotSent, |mut c| {
            let addr = addr.clone();
            async move { c.add_node(pb::AddNodeRequest { id, addr }).await }
        })
        .await
    }

    /// Removes a voter at runtime.
    pub async fn remove_node(&self, id: u64) -> Result<pb::StatusResponse> {
        self.call(Retry::IfNotSent, |mut c| async move {
            c.remove_node(pb::RemoveNodeRequest { id }).await
        })
        .await
    }

    async fn open_watch(
        &self,
        prefix: &str,
        after: u64,
    ) -> Result<tonic::Streaming<pb::WatchEvent>> {
        let prefix = prefix.to_string();
        self.call(Retry::Always, |mut c| {
            let prefix = prefix.clone();
            async move {
                c.watch(pb::WatchRequest {
                    prefix,
                    after_version: after,
                })
                .await
            }
        })
        .await
    }
}

#[async_trait::async_trait]
impl MetadataStore for GrpcMetadataClient {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        validate(key, None)?;
        let key = key.to_string();
        let r = self
            .call(Retry::Always, |mut c| {
                let key = key.clone();
                async move { c.get(pb::GetRequest { key }).await }
            })
            .await?;
        Ok(r.kv.map(|kv| convert::kv_from_pb(kv).1))
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expect: Expect,
        session: Option<SessionId>,
    ) -> Result<Version> {
        validate(key, Some(&value))?;
        let req = pb::PutRequest {
            key: key.to_string(),
            value: value.to_vec(),
            expect: Some(convert::expect_to_pb(expect)),
            session: session.map(|s| s.0).unwrap_or(0),
        };
        let r = self
            .call(Retry::IfNotSent, |mut c| {
                let req = req.clone();
                async move { c.put(req).await }
            })
            .await?;
        Ok(Version(r.version))
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<bool> {
        validate(key, None)?;
        let req = pb::DeleteRequest {
            key: key.to_string(),
            expect: Some(convert::expect_to_pb(expect)),
        };
        let r = self
            .call(Retry::IfNotSent, |mut c| {
                let req = req.clone();
                async move { c.delete(req).await }
            })
            .await?;
        Ok(r.deleted)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Versioned)>> {
        let req = pb::ListRequest {
            prefix: prefix.to_string(),
            start_after: start_after.map(str::to_string),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
        };
        let r = self
            .call(Retry::Always, |mut c| {
                let req = req.clone();
                async move { c.list(req).await }
            })
            .await?;
        Ok(r.kvs.into_iter().map(convert::kv_from_pb).collect())
    }

    async fn txn(&self, ops: Vec<TxnOp>) -> Result<Version> {
        for op in &ops {
            match op {
                TxnOp::Put { key, value, .. } => validate(key, Some(value))?,
                TxnOp::Delete { key, .. } | TxnOp::Check { key, .. } => validate(key, None)?,
            }
        }
        let req = pb::TxnRequest {
            ops: ops.into_iter().map(convert::op_to_pb).collect(),
        };
        let r = self
            .call(Retry::IfNotSent, |mut c| {
                let req = req.clone();
                async move { c.txn(req).await }
            })
            .await?;
        Ok(Version(r.version))
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64> {
        validate(key, None)?;
        let key = key.to_string();
        let r = self
            .call(Retry::IfNotSent, |mut c| {
                let key = key.clone();
                async move { c.increment(pb::IncrementRequest { key, delta }).await }
            })
            .await?;
        Ok(r.value)
    }

    async fn create_session(&self, ttl: Duration) -> Result<SessionId> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let r = self
            .call(Retry::IfNotSent, |mut c| async move {
                c.create_session(pb::CreateSessionRequest { ttl_ms }).await
            })
            .await?;
        Ok(SessionId(r.session))
    }

    async fn keep_alive(&self, session: SessionId) -> Result<()> {
        // Renewing twice is harmless.
        self.call(Retry::Always, |mut c| async move {
            c.keep_alive(pb::SessionRequest { session: session.0 })
                .await
        })
        .await?;
        Ok(())
    }

    async fn close_session(&self, session: SessionId) -> Result<()> {
        // Closing a closed session is a no-op, so a retry is harmless.
        self.call(Retry::Always, |mut c| async move {
            c.close_session(pb::SessionRequest { session: session.0 })
                .await
        })
        .await?;
        Ok(())
    }

    async fn watch(&self, prefix: &str, after: Version) -> Result<WatchStream> {
        let first = self.open_watch(prefix, after.0).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<WatchEvent>>(256);
        let client = self.clone();
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            // Resume point: the last version seen and how many of its events were delivered
            // (a transaction's events share one version).
            let mut last = after.0;
            let mut seen_at_last = 0usize;
            let mut stream = Some(first);
            let mut skip = 0usize;
            loop {
                let mut s = match stream.take() {
                    Some(s) => s,
                    None => {
                        let resume = if seen_at_last > 0 {
                            last.saturating_sub(1)
                        } else {
                            last
                        };
                        skip = seen_at_last;
                        match client.open_watch(&prefix, resume).await {
                            Ok(s) => s,
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                        }
                    }
                };
                loop {
                    let msg = tokio::select! {
                        _ = tx.closed() => return,
                        m = s.message() => m,
                    };
                    let ev = match msg {
                        Ok(Some(ev)) => ev,
                        // Stream ended or broke: the node went away; re-attach elsewhere.
                        Ok(None) | Err(_) => break,
                    };
                    let ev = match convert::event_from_pb(ev) {
                        Ok(ev) => ev,
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    };
                    if let WatchEvent::Reset { .. } = ev {
                        let _ = tx.send(Ok(ev)).await;
                        return;
                    }
                    let v = crate::raft::sm::event_version(&ev).0;
                    if v == last && skip > 0 {
                        skip -= 1;
                        continue;
                    }
                    skip = 0;
                    if v < last {
                        continue;
                    }
                    if v == last {
                        seen_at_last += 1;
                    } else {
                        last = v;
                        seen_at_last = 1;
                    }
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                client.forget_all_leader();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn revision(&self) -> Result<Version> {
        let r = self
            .call(Retry::Always, |mut c| async move {
                c.revision(pb::Empty {}).await
            })
            .await?;
        Ok(Version(r.version))
    }
}

impl GrpcMetadataClient {
    fn forget_all_leader(&self) {
        *self.inner.leader.lock() = None;
    }
}
