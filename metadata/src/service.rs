//! The gRPC services of a metadata node: the client API ([`MetadataService`]) and the Raft
//! transport ([`TransportService`]). Writes go through `client_write`; linearizable reads
//! use read-index (`ensure_linearizable`) on the leader; followers redirect.

// tonic's handlers return `Status` (large); the helpers here do too.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use magnetar_proto::metadata as pb;
use magnetar_proto::metadata::metadata_server::Metadata;
use magnetar_proto::metadata::raft_transport_server::RaftTransport;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::convert::{self, not_leader_status, to_status};
use crate::error::MetadataError;
use crate::raft::sm::{event_key, event_version, SharedState, WatchStart};
use crate::raft::types::{Command, CommandResult, NodeId, Raft};
use crate::store::{validate, TxnOp, Version, WatchEvent};

/// Largest page a `list` returns.
const MAX_LIST: usize = 10_000;

/// Shared by both services.
#[derive(Clone)]
pub struct NodeCtx {
    /// This node's id.
    pub id: NodeId,
    /// The Raft handle.
    pub raft: Raft,
    /// The state machine.
    pub state: Arc<SharedState>,
    /// Fires on node shutdown (ends watch streams).
    pub shutdown: CancellationToken,
}

impl NodeCtx {
    fn leader_hint(&self, leader: Option<NodeId>) -> Option<(u64, String)> {
        let leader = leader?;
        let m = self.raft.metrics().borrow().membership_config.clone();
        let addr = m.membership().get_node(&leader).map(|n| n.addr.clone())?;
        Some((leader, addr))
    }

    /// Waits until this node, as leader, has applied everything committed before now.
    async fn linearize(&self) -> Result<(), Status> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(not_leader_status(self.leader_hint(f.leader_id)))
            }
            Err(RaftError::APIError(e)) => Err(Status::unavailable(e.to_string())),
            Err(RaftError::Fatal(_)) => Err(to_status(MetadataError::Shutdown)),
        }
    }

    /// Proposes a command and waits for its applied result.
    pub async fn write(&self, cmd: Command) -> Result<CommandResult, Status> {
        metrics::counter!("magnetar_metadata_proposals_total").increment(1);
        match self.raft.client_write(cmd).await {
            Ok(resp) => match resp.data {
                CommandResult::Failed(e) => Err(to_status(e.into())),
                other => Ok(other),
            },
            // Rejected before append, or the entry was truncated: never applied.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(not_leader_status(self.leader_hint(f.leader_id)))
            }
            Err(RaftError::APIError(e)) => {
                Err(to_status(MetadataError::OutcomeUnknown(e.to_string())))
            }
            Err(RaftError::Fatal(e)) => Err(to_status(MetadataError::OutcomeUnknown(format!(
                "raft stopped after the write was submitted: {e}"
            )))),
        }
    }

    /// The node's view of the cluster.
    pub fn status(&self) -> pb::StatusResponse {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, n)| pb::Member {
                id: *id,
                addr: n.addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let leader = m.current_leader;
        let leader_addr = leader
            .and_then(|l| membership.get_node(&l).map(|n| n.addr.clone()))
            .unwrap_or_default();
        pb::StatusResponse {
            node_id: self.id,
            leader_id: leader.unwrap_or(0),
            leader_addr,
            term: m.current_term,
            members,
            last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            last_log_index: m.last_log_index.unwrap_or(0),
        }
    }
}

/// The client-facing gRPC service.
pub struct MetadataService {
    ctx: NodeCtx,
}

impl MetadataService {
    /// A service over a running node.
    pub fn new(ctx: NodeCtx) -> Self {
        MetadataService { ctx }
    }
}

fn invalid(e: MetadataError) -> Status {
    to_status(e)
}

type WatchOut = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Metadata for MetadataService {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let req = req.into_inner();
        validate(&req.key, None).map_err(invalid)?;
        self.ctx.linearize().await?;
        let kv = self.ctx.state.read(|d| {
            d.keys
                .get(&req.key)
                .map(|v| convert::kv_to_pb(req.key.clone(), v))
        });
        Ok(Response::new(pb::GetResponse { kv }))
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let req = req.into_inner();
        validate(&req.key, Some(&req.value)).map_err(invalid)?;
        let expect = convert::expect_from_pb(req.expect).map_err(invalid)?;
        let op = TxnOp::Put {
            key: req.key,
            value: req.value,
            expect,
            session: (req.session != 0).then_some(crate::SessionId(req.session)),
        };
        match self.ctx.write(Command::Txn { ops: vec![op] }).await? {
            CommandResult::Txn { version, .. } => Ok(Response::new(pb::PutResponse { version })),
            other => Err(Status::internal(format!(
                "unexpected apply result {other:?}"
            ))),
        }
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let req = req.into_inner();
        validate(&req.key, None).map_err(invalid)?;
        let expect = convert::expect_from_pb(req.expect).map_err(invalid)?;
        let op = TxnOp::Delete {
            key: req.key,
            expect,
        };
        match self.ctx.write(Command::Txn { ops: vec![op] }).await? {
            CommandResult::Txn { deleted, .. } => Ok(Response::new(pb::DeleteResponse { deleted })),
            other => Err(Status::internal(format!(
                "unexpected apply result {other:?}"
            ))),
        }
    }

    async fn list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let req = req.into_inner();
        let limit = (req.limit as usize).min(MAX_LIST);
        self.ctx.linearize().await?;
        let kvs = self.ctx.state.read(|d| {
            let start = match &req.start_after {
                Some(a) if a.as_str() >= req.prefix.as_str() => {
                    std::ops::Bound::Excluded(a.clone())
                }
                _ => std::ops::Bound::Included(req.prefix.clone()),
            };
            d.keys
                .range((start, std::ops::Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(&req.prefix))
                .take(limit)
                .map(|(k, v)| convert::kv_to_pb(k.clone(), v))
                .collect()
        });
        Ok(Response::new(pb::ListResponse { kvs }))
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let ops = req
            .into_inner()
            .ops
            .into_iter()
            .map(convert::op_from_pb)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        for op in &ops {
            match op {
                TxnOp::Put { key, value, .. } => validate(key, Some(value)).map_err(invalid)?,
                TxnOp::Delete { key, .. } | TxnOp::Check { key, .. } => {
                    validate(key, None).map_err(invalid)?
                }
            }
        }
        match self.ctx.write(Command::Txn { ops }).await? {
            CommandResult::Txn { version, .. } => Ok(Response::new(pb::TxnResponse { version })),
            other => Err(Status::internal(format!(
                "unexpected apply result {other:?}"
            ))),
        }
    }

    async fn increment(
        &self,
        req: Request<pb::IncrementRequest>,
    ) -> Result<Response<pb::IncrementResponse>, Status> {
        let req = req.into_inner();
        validate(&req.key, None).map_err(invalid)?;
        let cmd = Command::Increment {
            key: req.key,
            delta: req.delta,
        };
        match self.ctx.write(cmd).await? {
            CommandResult::Counter(value) => Ok(Response::new(pb::IncrementResponse { value })),
            other => Err(Status::internal(format!(
                "unexpected apply result {other:?}"
            ))),
        }
    }

    async fn create_session(
        &self,
        req: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let ttl_ms = req.into_inner().ttl_ms;
        if ttl_ms == 0 || ttl_ms > 24 * 3600 * 1000 {
            return Err(Status::invalid_argument(format!(
                "session ttl {ttl_ms} ms out of range"
            )));
        }
        match self.ctx.write(Command::CreateSession { ttl_ms }).await? {
            CommandResult::Session(session) => {
                Ok(Response::new(pb::CreateSessionResponse { session }))
            }
            other => Err(Status::internal(format!(
                "unexpected apply result {other:?}"
            ))),
        }
    }

    async fn keep_alive(
        &self,
        req: Request<pb::SessionRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let session = req.into_inner().session;
        self.ctx.write(Command::KeepAlive { session }).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn close_session(
        &self,
        req: Request<pb::SessionRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let session = req.into_inner().session;
        self.ctx.write(Command::CloseSession { session }).await?;
        Ok(Response::new(pb::Empty {}))
    }

    type WatchStream = WatchOut;

    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<WatchOut>, Status> {
        let req = req.into_inner();
        let after = Version(req.after_version);
        let (backlog, mut rx, covered) = match self.ctx.state.watch(&req.prefix, after) {
            WatchStart::Reset(version) => {
                let ev = convert::event_to_pb(WatchEvent::Reset { version });
                let s = futures::stream::iter([Ok(ev)]);
                return Ok(Response::new(Box::pin(s)));
            }
            WatchStart::Resume(b, rx, covered) => (b, rx, covered),
        };
        let (tx, out) = tokio::sync::mpsc::channel::<Result<pb::WatchEvent, Status>>(256);
        let state = self.ctx.state.clone();
        let shutdown = self.ctx.shutdown.clone();
        let prefix = req.prefix;
        tokio::spawn(async move {
            for ev in backlog {
                if tx.send(Ok(convert::event_to_pb(ev))).await.is_err() {
                    return;
                }
            }
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                    r = rx.recv() => r,
                };
                let ev = match next {
                    Ok((seq, ev)) => {
                        if seq <= covered
                            || event_version(&ev) <= after
                            || !event_key(&ev).starts_with(&prefix)
                        {
                            continue;
                        }
                        ev
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let version = Version(state.applied_index());
                        let _ = tx
                            .send(Ok(convert::event_to_pb(WatchEvent::Reset { version })))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Ok(convert::event_to_pb(ev))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    async fn revision(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::RevisionResponse>, Status> {
        self.ctx.linearize().await?;
        let version = self.ctx.state.applied_index();
        Ok(Response::new(pb::RevisionResponse { version }))
    }

    async fn status(&self, _: Request<pb::Empty>) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(self.ctx.status()))
    }

    async fn add_node(
        &self,
        req: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let req = req.into_inner();
        if req.id == 0 || req.addr.is_empty() {
            return Err(Status::invalid_argument(
                "node id must be > 0 and addr non-empty",
            ));
        }
        let raft = &self.ctx.raft;
        let node = BasicNode { addr: req.addr };
        raft.add_learner(req.id, node, true)
            .await
            .map_err(|e| self.membership_error(e))?;
        let add = ChangeMembers::AddVoterIds(BTreeSet::from([req.id]));
        raft.change_membership(add, false)
            .await
            .map_err(|e| self.membership_error(e))?;
        Ok(Response::new(self.ctx.status()))
    }

    async fn remove_node(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let id = req.into_inner().id;
        let remove = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
        self.ctx
            .raft
            .change_membership(remove, false)
            .await
            .map_err(|e| self.membership_error(e))?;
        Ok(Response::new(self.ctx.status()))
    }
}

impl MetadataService {
    fn membership_error(
        &self,
        e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
    ) -> Status {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                not_leader_status(self.ctx.leader_hint(f.leader_id))
            }
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                Status::failed_precondition(e.to_string())
            }
            RaftError::Fatal(_) => to_status(MetadataError::Shutdown),
        }
    }
}

/// The Raft transport gRPC service.
pub struct TransportService {
    raft: Raft,
}

impl TransportService {
    /// A transport endpoint for `raft`.
    pub fn new(raft: Raft) -> Self {
        TransportService { raft }
    }
}

fn decode<T: serde::de::DeserializeOwned>(p: pb::RaftPayload) -> Result<T, Status> {
    use bincode::Options;
    // Same encoding as `bincode::serialize`; reads can never run past the message.
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(p.data.len() as u64)
        .deserialize(&p.data)
        .map_err(|e| Status::invalid_argument(format!("bad raft payload: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Response<pb::RaftPayload>, Status> {
    let data = bincode::serialize(v).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(pb::RaftPayload { data }))
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn append_entries(
        &self,
        req: Request<pb::RaftPayload>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let rpc = decode(req.into_inner())?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(
        &self,
        req: Request<pb::RaftPayload>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let rpc = decode(req.into_inner())?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<pb::RaftPayload>,
    ) -> Result<Response<pb::RaftPayload>, Status> {
        let rpc = decode(req.into_inner())?;
        encode(&self.raft.install_snapshot(rpc).await)
    }
}
