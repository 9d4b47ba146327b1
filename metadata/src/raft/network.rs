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
pub struct Network;

/// A connection to one peer.
pub struct PeerClient {
    target: NodeId,
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
                    client: Some(client),
                    error: String::new(),
                }
            }
            Err(e) => PeerClient {
                target,
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
