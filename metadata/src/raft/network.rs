//! Raft transport over gRPC: openraft messages are bincode-encoded into `RaftPayload` bytes.
//! The reply carries the remote `Result` so a remote Raft error reaches openraft as such.

use std::time::Duration;

use magnetar_proto::metadata::raft_transport_client::RaftTransportClient;
use magnetar_proto::metadata::RaftPayload;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::types::{NodeId, TypeConfig};

/// Largest gRPC message between nodes (log batches and snapshot chunks).
pub const MAX_RAFT_MESSAGE: usize = 256 * 1024 * 1024;

/// Creates one gRPC connection per peer.
#[derive(Clone, Default)]
pub struct Network {
    /// This node's advertised address (the source key for [`faults`]).
    local_addr: String,
}

impl Network {
    /// A factory for the node advertised at `local_addr`.
    pub fn new(local_addr: impl Into<String>) -> Network {
        Network {
            local_addr: local_addr.into(),
        }
    }
}

/// Test hook: drops Raft RPCs between chosen pairs of node addresses, as a network partition
/// would. A blocked RPC fails with the same `Unreachable` error as a dead peer. Pairs are
/// keyed by advertised address (`host:port`), unique per in-process cluster, so concurrent
/// tests do not interfere. Cheap when nothing is blocked (one atomic load per RPC).
pub mod faults {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use parking_lot::RwLock;

    static ACTIVE: AtomicBool = AtomicBool::new(false);
    static DROPPED: AtomicU64 = AtomicU64::new(0);
    static BLOCKED: RwLock<Option<HashSet<(String, String)>>> = RwLock::new(None);

    /// Blocks Raft RPCs from `a` to `b` and from `b` to `a`.
    pub fn partition(a: &str, b: &str) {
        let mut g = BLOCKED.write();
        let set = g.get_or_insert_with(HashSet::new);
        set.insert((a.to_string(), b.to_string()));
        set.insert((b.to_string(), a.to_string()));
        ACTIVE.store(true, Ordering::Release);
    }

    /// Cuts `node` off from every address in `others` (both directions).
    pub fn isolate(node: &str, others: &[String]) {
        for o in others {
            partition(node, o);
        }
    }

    /// Removes every blocked pair that involves `node`.
    pub fn heal(node: &str) {
        let mut g = BLOCKED.write();
        if let Some(set) = g.as_mut() {
            set.retain(|(a, b)| a != node && b != node);
            ACTIVE.store(!set.is_empty(), Ordering::Release);
        }
    }

    /// Removes every blocked pair (of every cluster in this process).
    pub fn heal_all() {
        *BLOCKED.write() = None;
        ACTIVE.store(false, Ordering::Release);
    }

    /// How many RPCs have been dropped in this process so far.
    pub fn dropped() -> u64 {
        DROPPED.load(Ordering::Relaxed)
    }

    /// Whether RPCs from `from` to `to` are currently dropped (counted when true).
    pub fn is_blocked(from: &str, to: &str) -> bool {
        if !ACTIVE.load(Ordering::Acquire) {
            return false;
        }
        let blocked = BLOCKED
            .read()
            .as_ref()
            .is_some_and(|s| s.contains(&(from.to_string(), to.to_string())));
        if blocked {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        blocked
    }
}

/// A connection to one peer.
pub struct PeerClient {
    target: NodeId,
    /// (this node's address, the peer's address), checked against [`faults`].
    route: (String, String),
    client: Option<RaftTransportClient<Channel>>,
    error: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        match Endpoint::from_shared(format!("http://{}", node.addr)) {
            Ok(ep) => {
                let ep = ep
                    .connect_timeout(Duration::from_millis(500))
                    .tcp_nodelay(true);
                let client = RaftTransportClient::new(ep.connect_lazy())
                    .max_decoding_message_size(MAX_RAFT_MESSAGE)
                    .max_encoding_message_size(MAX_RAFT_MESSAGE);
                PeerClient {
                    target,
                    route: (self.local_addr.clone(), node.addr.clone()),
                    client: Some(client),
                    error: String::new(),
                }
            }
            Err(e) => PeerClient {
                target,
                route: (self.local_addr.clone(), node.addr.clone()),
                client: None,
                error: format!("bad address {}: {e}", node.addr),
            },
        }
    }
}

type RpcErr<E> = RPCError<NodeId, BasicNode, E>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

impl PeerClient {
    async fn call<Req, Resp, RE>(
        &mut self,
        kind: u8,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RpcErr<RE>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        RE: std::error::Error + DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(Unreachable::new(&Msg(self
                .error
                .clone()))));
        };
        if faults::is_blocked(&self.route.0, &self.route.1) {
            let m = Msg(format!(
                "rpc to node {}: partitioned (fault injection)",
                self.target
            ));
            return Err(RPCError::Unreachable(Unreachable::new(&m)));
        }
        let data = bincode::serialize(req)
            .map_err(|e| RPCError::Network(NetworkError::new(&Msg(e.to_string()))))?;
        let payload = RaftPayload { data };
        let fut = async {
            match kind {
                0 => client.append_entries(payload).await,
                1 => client.vote(payload).await,
                _ => client.install_snapshot(payload).await,
            }
        };
        let reply = match tokio::time::timeout(option.hard_ttl(), fut).await {
            Err(_) => {
                let m = Msg(format!("rpc to node {} timed out", self.target));
                return Err(RPCError::Network(NetworkError::new(&m)));
            }
            Ok(Err(status)) => {
                let m = Msg(format!("rpc to node {}: {status}", self.target));
                return Err(RPCError::Unreachable(Unreachable::new(&m)));
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        let res: Result<Resp, RE> = bincode::deserialize(&reply.data)
            .map_err(|e| RPCError::Network(NetworkError::new(&Msg(e.to_string()))))?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<RaftError<NodeId>>> {
        self.call(0, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(2, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<RaftError<NodeId>>> {
        self.call(1, &rpc, &option).await
    }
}
