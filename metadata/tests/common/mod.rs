//! In-process metadata clusters for integration tests: N nodes on 127.0.0.1 port 0 with
//! temp dirs, kill/restart by index, leader discovery by polling with a deadline.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use magnetar_metadata::{start_on, GrpcMetadataClient, MetadataConfig, RunningNode};
use tokio::net::TcpListener;

/// An in-process metadata cluster.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub addrs: Vec<SocketAddr>,
    pub nodes: Vec<Option<RunningNode>>,
    members: BTreeMap<u64, String>,
}

fn config(id: u64, root: &std::path::Path, members: &BTreeMap<u64, String>) -> MetadataConfig {
    let mut c = MetadataConfig::new(id, root.join(format!("node-{id}")), members.clone());
    c.heartbeat_ms = 50;
    c.election_timeout_ms = 300;
    c.snapshot_logs = 200;
    c.logs_to_keep = 50;
    c
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) and waits for a leader.
    pub async fn start(n: usize) -> Cluster {
        // Logs only when RUST_LOG is set.
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let root = tempfile::tempdir().expect("temp dir");
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..n {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addrs.push(l.local_addr().expect("addr"));
            listeners.push(l);
        }
        let members: BTreeMap<u64, String> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (i as u64 + 1, a.to_string()))
            .collect();
        let mut nodes = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let c = config(i as u64 + 1, root.path(), &members);
            nodes.push(Some(start_on(c, l).expect("start node")));
        }
        let cluster = Cluster {
            root,
            addrs,
            nodes,
            members,
        };
        cluster.wait_leader(Duration::from_secs(20)).await;
        cluster
    }

    /// A client of every member.
    pub fn client(&self) -> GrpcMetadataClient {
        GrpcMetadataClient::new(self.addrs.iter().map(|a| a.to_string()).collect())
    }

    /// A client of one member only.
    pub fn client_of(&self, i: usize) -> GrpcMetadataClient {
        GrpcMetadataClient::new(vec![self.addrs[i].to_string()])
            .with_deadline(Duration::from_secs(2))
    }

    /// Index of the leader as agreed by a running node, waiting up to `timeout`.
    pub async fn wait_leader(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            for (i, n) in self.nodes.iter().enumerate() {
                if n.is_none() {
                    continue;
                }
                let c = GrpcMetadataClient::new(vec![self.addrs[i].to_string()])
                    .with_deadline(Duration::from_millis(500));
                if let Ok(st) = c.status().await {
                    if st.leader_id != 0 && st.node_id == st.leader_id {
                        let idx = (st.leader_id - 1) as usize;
                        if self.nodes[idx].is_some() {
                            return idx;
                        }
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no leader within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops node `i` gracefully.
    pub async fn stop(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.shutdown().await.expect("node shutdown");
        }
    }

    /// Kills node `i` (task aborted, no graceful stop).
    pub async fn kill(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.abort();
            let _ = n.shutdown().await;
        }
    }

    /// Restarts node `i` on its old address and data dir.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} still running");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let l = loop {
            match TcpListener::bind(self.addrs[i]).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(tokio::time::Instant::now() < deadline, "rebind: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let c = config(i as u64 + 1, self.root.path(), &self.members);
        self.nodes[i] = Some(start_on(c, l).expect("restart node"));
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
