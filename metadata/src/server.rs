//! A metadata node: opens RocksDB, starts openraft, serves the gRPC API and the Raft
//! transport on one listener, bootstraps the cluster, and runs the leader's session-expiry
//! loop. Entry points: [`run`] (blocks until shutdown) and [`start`] (spawns, for
//! in-process use by standalone mode and tests).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use magnetar_proto::metadata::metadata_client::MetadataClient;
use magnetar_proto::metadata::metadata_server::MetadataServer;
use magnetar_proto::metadata::raft_transport_server::RaftTransportServer;
use magnetar_proto::metadata::Empty;
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::MetadataError;
use crate::raft::network::{Network, MAX_RAFT_MESSAGE};
use crate::raft::sm::SharedState;
use crate::raft::storage::{open_db, LogStore, StateMachineStore};
use crate::raft::types::{Command, NodeId, Raft};
use crate::service::{MetadataService, NodeCtx, TransportService};

/// Configuration of one metadata node.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MetadataConfig {
    /// This node's id (> 0).
    pub node_id: NodeId,
    /// Directory of the node's RocksDB.
    pub data_dir: PathBuf,
    /// Initial members, id -> `host:port`. Empty or only this node: a single-node cluster
    /// (this node's address then defaults to the listener's). With several members the
    /// lowest id initializes the cluster once every member answers.
    #[serde(default)]
    pub members: BTreeMap<NodeId, String>,
    /// Leader heartbeat interval.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// Election timeout lower bound (the upper bound is twice this).
    #[serde(default = "default_election_ms")]
    pub election_timeout_ms: u64,
    /// Build a snapshot (and purge the log) after this many applied entries.
    #[serde(default = "default_snapshot_logs")]
    pub snapshot_logs: u64,
    /// Log entries kept behind the last snapshot (for lagging followers) before purging.
    #[serde(default = "default_logs_to_keep")]
    pub logs_to_keep: u64,
}

fn default_heartbeat_ms() -> u64 {
    100
}
fn default_election_ms() -> u64 {
    600
}
fn default_snapshot_logs() -> u64 {
    5000
}
fn default_logs_to_keep() -> u64 {
    1000
}

impl MetadataConfig {
    /// A config with default timings.
    pub fn new(
        node_id: NodeId,
        data_dir: impl Into<PathBuf>,
        members: BTreeMap<NodeId, String>,
    ) -> Self {
        MetadataConfig {
            node_id,
            data_dir: data_dir.into(),
            members,
            heartbeat_ms: default_heartbeat_ms(),
            election_timeout_ms: default_election_ms(),
            snapshot_logs: default_snapshot_logs(),
            logs_to_keep: default_logs_to_keep(),
        }
    }
}

/// A node started with [`start`].
pub struct RunningNode {
    /// Node id.
    pub id: NodeId,
    /// The bound gRPC address.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), MetadataError>>,
}

impl RunningNode {
    /// Stops the node gracefully (Raft stopped, RocksDB closed) and waits for it.
    pub async fn shutdown(self) -> Result<(), MetadataError> {
        self.shutdown.cancel();
        self.handle
            .await
            .map_err(|e| MetadataError::Storage(format!("metadata node task failed: {e}")))?
    }

    /// Kills the node without a graceful stop: the serving task is aborted and the listener
    /// closed; Raft stops once its last handle is gone. In-process stand-in for a crash.
    pub fn abort(&self) {
        self.handle.abort();
        self.shutdown.cancel();
    }

    /// A client connected to this node only.
    pub fn client(&self) -> crate::client::GrpcMetadataClient {
        crate::client::GrpcMetadataClient::new(vec![self.addr.to_string()])
    }
}

/// Binds `listen` and runs a node in a spawned task.
pub async fn start(
    config: MetadataConfig,
    listen: SocketAddr,
) -> Result<RunningNode, MetadataError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| MetadataError::Storage(format!("bind {listen}: {e}")))?;
    start_on(config, listener)
}

/// Runs a node on an already bound listener in a spawned task.
pub fn start_on(
    config: MetadataConfig,
    listener: TcpListener,
) -> Result<RunningNode, MetadataError> {
    let addr = listener
        .local_addr()
        .map_err(|e| MetadataError::Storage(format!("listener address: {e}")))?;
    let shutdown = CancellationToken::new();
    let id = config.node_id;
    let handle = tokio::spawn(run(config, listener, shutdown.clone()));
    Ok(RunningNode {
        id,
        addr,
        shutdown,
        handle,
    })
}

/// Runs a metadata node until `shutdown` fires.
pub async fn run(
    config: MetadataConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), MetadataError> {
    let id = config.node_id;
    if id == 0 {
        return Err(MetadataError::InvalidArgument("node_id must be > 0".into()));
    }
    let local = listener
        .local_addr()
        .map_err(|e| MetadataError::Storage(format!("listener address: {e}")))?;
    let mut members = config.members.clone();
    if members.is_empty() {
        members.insert(id, local.to_string());
    }
    if !members.contains_key(&id) {
        return Err(MetadataError::InvalidArgument(format!(
            "members do not include this node's id {id}"
        )));
    }

    let db = open_with_retry(config.data_dir.clone()).await?;

    let state = Arc::new(SharedState::default());
    let sm = StateMachineStore::open(db.clone(), state.clone())
        .await
        .map_err(|e| MetadataError::Storage(e.to_string()))?;
    let log = LogStore::new(db.clone());
    let network = Network::new(members.get(&id).cloned().unwrap_or_default());
    let raft_config = openraft::Config {
        cluster_name: "magnetar-metadata".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_timeout_ms,
        election_timeout_max: config.election_timeout_ms * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs),
        max_in_snapshot_log_to_keep: config.logs_to_keep,
        max_payload_entries: 256,
        ..Default::default()
    }
    .validate()
    .map_err(|e| MetadataError::InvalidArgument(format!("raft config: {e}")))?;
    let raft = Raft::new(id, Arc::new(raft_config), network, log, sm)
        .await
        .map_err(|e| MetadataError::Storage(format!("start raft: {e}")))?;

    // If this task is aborted, Raft still stops (a crash, as peers see it).
    let mut raft_guard = StopRaftOnDrop(Some(raft.clone()));
    let node_shutdown = shutdown.child_token();
    let ctx = NodeCtx {
        id,
        raft: raft.clone(),
        state,
        shutdown: node_shutdown.clone(),
    };
    tracing::info!(node = id, addr = %local, "metadata node starting");

    let tasks = tokio_util::task::TaskTracker::new();
    tasks.spawn(bootstrap(raft.clone(), id, members, node_shutdown.clone()));
    tasks.spawn(leader_duties(ctx.clone(), node_shutdown.clone()));
    tasks.close();

    let api = MetadataServer::new(MetadataService::new(ctx.clone()))
        .max_decoding_message_size(16 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    let transport = RaftTransportServer::new(TransportService::new(raft.clone()))
        .max_decoding_message_size(MAX_RAFT_MESSAGE)
        .max_encoding_message_size(MAX_RAFT_MESSAGE);
    // `tcp_nodelay` below only applies to listeners tonic binds itself: set it on every
    // accepted stream, or Nagle + delayed ACK add ~40 ms to responses.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |s| {
            if let Ok(s) = &s {
                let _ = s.set_nodelay(true);
            }
            s
        },
    );
    let stop = node_shutdown.clone();
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(api)
        .add_service(transport)
        .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await });
    // Aborted with this task too, so an aborted node closes its listener at once.
    let mut server = AbortOnDrop(tokio::spawn(server));
    let served = tokio::select! {
        r = &mut server.0 => Some(r),
        _ = shutdown.cancelled() => None,
    };
    node_shutdown.cancel();
    let served = match served {
        Some(r) => r,
        // Clients may hold connections open; do not wait for them forever.
        None => match tokio::time::timeout(Duration::from_secs(3), &mut server.0).await {
            Ok(r) => r,
            Err(_) => {
                server.0.abort();
                Ok(Ok(()))
            }
        },
    };
    raft_guard.0 = None;
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(node = id, error = %e, "raft shutdown");
    }
    tasks.wait().await;
    drop(ctx);
    drop(raft);
    // The last handles of the DB go with the Raft core; flush what is ours and close.
    let flush = tokio::task::spawn_blocking(move || {
        let _ = db.flush_wal(true);
        drop(db);
    });
    let _ = flush.await;
    tracing::info!(node = id, "metadata node stopped");
    match served {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(MetadataError::Storage(format!("grpc server: {e}"))),
        Err(e) => Err(MetadataError::Storage(format!("grpc server task: {e}"))),
    }
}

struct StopRaftOnDrop(Option<Raft>);

impl Drop for StopRaftOnDrop {
    fn drop(&mut self) {
        if let (Some(raft), Ok(rt)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                let _ = raft.shutdown().await;
            });
        }
    }
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Initializes the cluster once: a single member at once; with several, only the lowest
/// id, after every member answers. A node that already has Raft state does nothing.
async fn bootstrap(
    raft: Raft,
    id: NodeId,
    members: BTreeMap<NodeId, String>,
    stop: CancellationToken,
) {
    match raft.is_initialized().await {
        Ok(false) => {}
        _ => return,
    }
    if members.keys().next() != Some(&id) {
        return;
    }
    let nodes: BTreeMap<NodeId, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
        .collect();
    if members.len() > 1 {
        let deadline_log = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut logged = false;
        loop {
            let mut all = true;
            for (peer, addr) in &members {
                if *peer != id && !reachable(addr).await {
                    all = false;
                }
            }
            if all {
                break;
            }
            if !logged && tokio::time::Instant::now() > deadline_log {
                tracing::warn!(
                    node = id,
                    "waiting for every metadata member to be reachable"
                );
                logged = true;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            // Another node may have joined us to a cluster meanwhile.
            if let Ok(true) = raft.is_initialized().await {
                return;
            }
        }
    }
    match raft.initialize(nodes).await {
        Ok(()) => tracing::info!(node = id, members = ?members, "metadata cluster initialized"),
        Err(e) => tracing::info!(node = id, error = %e, "cluster already initialized"),
    }
}

/// Opens the node's RocksDB; retries for a few seconds while a previous instance of this
/// node (in the same process, being torn down) still holds the lock.
async fn open_with_retry(dir: PathBuf) -> Result<Arc<rocksdb::DB>, MetadataError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = dir.clone();
        let res = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&d)
                .map_err(|e| MetadataError::Storage(format!("create {}: {e}", d.display())))?;
            open_db(&d.join("raft"))
        })
        .await
        .map_err(|e| MetadataError::Storage(e.to_string()))?;
        match res {
            Err(MetadataError::Storage(m))
                if m.contains("lock") && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

async fn reachable(addr: &str) -> bool {
    let Ok(ep) = tonic::transport::Endpoint::from_shared(format!("http://{addr}")) else {
        return false;
    };
    let ep = ep
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_millis(500));
    match ep.connect().await {
        Ok(ch) => MetadataClient::new(ch).status(Empty {}).await.is_ok(),
        Err(_) => false,
    }
}

/// On the leader: grants a fresh lease period to every session when leadership begins, and
/// proposes `ExpireSession` for sessions whose lease ran out on this node's clock.
async fn leader_duties(ctx: NodeCtx, stop: CancellationToken) {
    let mut led_term = None;
    // Expiries proposed recently, so one is not proposed every tick while in flight.
    let mut pending: HashMap<(u64, u64), tokio::time::Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let (is_leader, term, applied) = {
            let m = ctx.raft.metrics();
            let m = m.borrow();
            (
                m.state == ServerState::Leader,
                m.current_term,
                m.last_applied.map(|l| l.index).unwrap_or(0),
            )
        };
        metrics::gauge!("magnetar_metadata_is_leader").set(if is_leader { 1.0 } else { 0.0 });
        metrics::gauge!("magnetar_metadata_last_applied_index").set(applied as f64);
        if !is_leader {
            led_term = None;
            continue;
        }
        if led_term != Some(term) {
            // Wait until this leader has applied its own blank entry (and so every earlier
            // entry) before trusting the session table.
            if ctx.raft.ensure_linearizable().await.is_err() {
                continue;
            }
            ctx.state.renew_all_leases();
            led_term = Some(term);
            pending.clear();
            continue;
        }
        for (session, renewed_at) in ctx.state.expired_leases() {
            let now = tokio::time::Instant::now();
            match pending.get(&(session, renewed_at)) {
                Some(at) if now.duration_since(*at) < Duration::from_secs(2) => continue,
                _ => {
                    pending.insert((session, renewed_at), now);
                }
            }
            tracing::info!(session, "metadata session lease expired; expiring");
            metrics::counter!("magnetar_metadata_sessions_expired_total").increment(1);
            let ctx2 = ctx.clone();
            tokio::spawn(async move {
                let cmd = Command::ExpireSession {
                    session,
                    renewed_at,
                };
                if let Err(e) = ctx2.write(cmd).await {
                    tracing::warn!(session, error = %e, "expire session failed");
                }
            });
        }
        pending.retain(|_, at| at.elapsed() < Duration::from_secs(10));
    }
}
