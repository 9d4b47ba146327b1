//! A 3-node metadata cluster of OS processes: `kill -9` of the leader during a stream of
//! CAS writes leaves a new leader serving within 5 s with every acknowledged write present,
//! and a full-cluster `kill -9` + restart from disk loses no acknowledged write.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use magnetar_metadata::{Expect, GrpcMetadataClient, MetadataError, MetadataStore, Version};
use tokio::process::{Child, Command};
use tokio::time::Instant;

struct Procs {
    root: tempfile::TempDir,
    addrs: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
}

impl Procs {
    fn members(&self) -> String {
        self.addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}={a}", i + 1))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize) {
        let child = Command::new(env!("CARGO_BIN_EXE_metadata-node"))
            .arg("--node-id")
            .arg((i + 1).to_string())
            .arg("--listen")
            .arg(self.addrs[i].to_string())
            .arg("--data-dir")
            .arg(self.root.path().join(format!("node-{}", i + 1)))
            .arg("--members")
            .arg(self.members())
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn metadata-node");
        self.children[i] = Some(child);
    }

    async fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.start_kill().expect("SIGKILL");
            let _ = c.wait().await;
        }
    }

    fn client(&self) -> GrpcMetadataClient {
        GrpcMetadataClient::new(self.addrs.iter().map(|a| a.to_string()).collect())
    }

    async fn leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let c = self.client();
        loop {
            for (i, a) in self.addrs.iter().enumerate() {
                if self.children[i].is_none() {
                    continue;
                }
                if let Ok(st) = c.status_of(&a.to_string()).await {
                    if st.leader_id == st.node_id && st.node_id == i as u64 + 1 {
                        return i;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_leader_and_whole_cluster_loses_no_acknowledged_write() {
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        addrs.push(l.local_addr().expect("addr"));
    }
    let mut p = Procs {
        root: tempfile::tempdir().expect("temp dir"),
        addrs,
        children: vec![None, None, None],
    };
    for i in 0..3 {
        p.spawn(i);
    }
    p.leader(Duration::from_secs(30)).await;
    let client = p.client();
    let mut acked: BTreeMap<String, Version> = BTreeMap::new();
    let mut killed_at = None;
    let mut recovered = None;
    let start = Instant::now();
    for i in 0..150u64 {
        assert!(start.elapsed() < Duration::from_secs(60), "test too slow");
        if i == 30 {
            let leader = p.leader(Duration::from_secs(5)).await;
            p.kill9(leader).await;
            killed_at = Some(Instant::now());
        }
        let key = format!("/p/{i:04}");
        match client
            .put(&key, Bytes::from("v"), Expect::Absent, None)
            .await
        {
            Ok(v) => {
                acked.insert(key, v);
                if let (Some(k), None) = (killed_at, recovered) {
                    recovered = Some(k.elapsed());
                }
            }
            Err(MetadataError::OutcomeUnknown(_)) | Err(MetadataError::Unavailable(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    let recovered = recovered.expect("writes resumed");
    assert!(
        recovered < Duration::from_secs(5),
        "new leader took {recovered:?}"
    );
    for (k, v) in &acked {
        let got = client
            .get(k)
            .await
            .expect("get")
            .expect("acknowledged key present");
        assert_eq!(got.version, *v);
    }
    // kill -9 everything, restart from disk.
    for i in 0..3 {
        p.kill9(i).await;
    }
    for i in 0..3 {
        p.spawn(i);
    }
    p.leader(Duration::from_secs(30)).await;
    let client = p.client();
    for (k, v) in &acked {
        let got = client
            .get(k)
            .await
            .expect("get")
            .expect("present after restart");
        assert_eq!(got.version, *v);
    }
    for i in 0..3 {
        p.kill9(i).await;
    }
}
