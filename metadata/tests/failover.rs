//! A 3-node in-process metadata cluster survives losing its leader: a new leader serves
//! within 5 s, every acknowledged write survives (also a full restart from disk), session
//! expiry deletes ephemeral keys on every node, and a watcher sees every change exactly
//! once, in commit order, across the leader change.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{eventually, Cluster};
use futures::StreamExt;
use magnetar_metadata::{Expect, MetadataError, MetadataStore, Version, WatchEvent};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_during_cas_stream_loses_no_acknowledged_write() {
    let mut c = Cluster::start(3).await;
    let client = c.client();
    let mut acked: BTreeMap<String, Version> = BTreeMap::new();
    let mut cas_version = client
        .put("/cas/x", Bytes::from("0"), Expect::Absent, None)
        .await
        .expect("create");
    let mut cas_value = 0u64;
    let mut killed_at: Option<Instant> = None;
    let mut recovered_in = None;
    let start = Instant::now();
    for i in 0..200u64 {
        assert!(start.elapsed() < Duration::from_secs(60), "test too slow");
        if i == 30 {
            let leader = c.wait_leader(Duration::from_secs(5)).await;
            c.kill(leader).await;
            killed_at = Some(Instant::now());
        }
        let key = format!("/ack/{i:04}");
        match client
            .put(&key, Bytes::from(i.to_string()), Expect::Absent, None)
            .await
        {
            Ok(v) => {
                acked.insert(key, v);
                if let (Some(k), None) = (killed_at, recovered_in) {
                    recovered_in = Some(k.elapsed());
                }
            }
            Err(MetadataError::OutcomeUnknown(_)) | Err(MetadataError::Unavailable(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
        let next = cas_value + 1;
        match client
            .put(
                "/cas/x",
                Bytes::from(next.to_string()),
                Expect::Version(cas_version),
                None,
            )
            .await
        {
            Ok(v) => {
                cas_version = v;
                cas_value = next;
            }
            Err(_) => {
                // Unknown outcome or conflict: re-read the truth.
                if let Ok(Some(cur)) = client.get("/cas/x").await {
                    cas_version = cur.version;
                    cas_value = std::str::from_utf8(&cur.value)
                        .expect("utf8")
                        .parse()
                        .expect("number");
                }
            }
        }
    }
    let recovered = recovered_in.expect("writes resumed after the kill");
    assert!(
        recovered < Duration::from_secs(5),
        "new leader took {recovered:?}"
    );
    assert!(
        acked.len() > 150,
        "too few acknowledged writes: {}",
        acked.len()
    );
    for (k, v) in &acked {
        let got = client
            .get(k)
            .await
            .expect("get")
            .expect("acknowledged key present");
        assert_eq!(got.version, *v, "{k}");
    }
    let cas = client.get("/cas/x").await.expect("get").expect("present");
    assert!(cas.version >= cas_version);

    // Full-cluster restart from disk: nothing acknowledged is lost.
    for i in 0..3 {
        c.stop(i).await;
    }
    for i in 0..3 {
        c.restart(i).await;
    }
    c.wait_leader(Duration::from_secs(20)).await;
    let client = c.client();
    for (k, v) in &acked {
        let got = client
            .get(k)
            .await
            .expect("get")
            .expect("present after restart");
        assert_eq!(got.version, *v, "{k}");
    }
    let cas2 = client.get("/cas/x").await.expect("get").expect("present");
    assert_eq!(cas2.version, cas.version);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_removes_ephemeral_keys_on_every_node_and_watchers_see_it() {
    let c = Cluster::start(3).await;
    let client = Arc::new(c.client());
    let rev = client.revision().await.expect("revision");
    let mut watchers = Vec::new();
    for i in 0..3 {
        // Each watcher is served by one node from its own applied state.
        watchers.push(c.client_of(i).watch("/eph/", rev).await.expect("watch"));
    }
    let sid = client
        .create_session(Duration::from_millis(600))
        .await
        .expect("session");
    client
        .put("/eph/owner", Bytes::from("me"), Expect::Absent, Some(sid))
        .await
        .expect("ephemeral put");
    for (i, w) in watchers.iter_mut().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen_put = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = tokio::time::timeout(left, w.next())
                .await
                .unwrap_or_else(|_| panic!("node {i}: no delete event in time"))
                .expect("stream open")
                .expect("event");
            match ev {
                WatchEvent::Put { key, .. } if key == "/eph/owner" => seen_put = true,
                WatchEvent::Delete { key, .. } if key == "/eph/owner" => break,
                other => panic!("node {i}: unexpected {other:?}"),
            }
        }
        assert!(seen_put, "node {i} saw the put before the delete");
    }
    assert!(client.get("/eph/owner").await.expect("get").is_none());
    let err = client.keep_alive(sid).await.expect_err("expired");
    assert!(matches!(err, MetadataError::SessionExpired(_)), "{err:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_every_change_once_in_order_across_leader_change() {
    let mut c = Cluster::start(3).await;
    let client = c.client();
    let rev = client.revision().await.expect("revision");
    let mut w = client.watch("/wl/", rev).await.expect("watch");
    let mut acked = Vec::new();
    for i in 0..60u64 {
        if i == 20 {
            let leader = c.wait_leader(Duration::from_secs(5)).await;
            c.kill(leader).await;
        }
        let key = format!("/wl/{i:03}");
        if let Ok(v) = client.put(&key, Bytes::from("v"), Expect::Any, None).await {
            acked.push((key, v));
        }
    }
    let last = acked.last().expect("some writes").1;
    let mut seen: Vec<(String, Version)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.last().map(|(_, v)| *v < last).unwrap_or(true) {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, w.next())
            .await
            .expect("watcher caught up in time")
            .expect("stream open")
            .expect("event");
        match ev {
            WatchEvent::Put { key, version, .. } => seen.push((key, version)),
            other => panic!("unexpected {other:?}"),
        }
    }
    for pair in seen.windows(2) {
        assert!(pair[0].1 < pair[1].1, "out of order or repeated: {pair:?}");
    }
    for a in &acked {
        assert!(
            seen.contains(a),
            "acknowledged write {a:?} not seen by the watcher"
        );
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_from_a_snapshot() {
    let mut c = Cluster::start(3).await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    let lagging = (leader + 1) % 3;
    c.stop(lagging).await;
    let client = Arc::new(c.client());
    let mut tasks = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..60 {
                client
                    .put(
                        &format!("/snap/{w}/{i}"),
                        Bytes::from("v"),
                        Expect::Any,
                        None,
                    )
                    .await
                    .expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let target = client.revision().await.expect("revision");
    c.restart(lagging).await;
    let follower = c.client_of(lagging);
    let addr = c.addrs[lagging].to_string();
    let id = lagging as u64 + 1;
    eventually(
        Duration::from_secs(20),
        "lagging follower applied everything",
        || {
            let follower = follower.clone();
            let addr = addr.clone();
            async move {
                match follower.status_of(&addr).await {
                    Ok(st) => st.node_id == id && st.last_applied >= target.0,
                    Err(_) => false,
                }
            }
        },
    )
    .await;
    // Its state machine came from a snapshot: a watcher from 0 there must be reset.
    let mut w = follower.watch("/snap/", Version(0)).await.expect("watch");
    let first = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("event in time")
        .expect("open")
        .expect("event");
    assert!(matches!(first, WatchEvent::Reset { .. }), "{first:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_added_and_removed_at_runtime() {
    let root = tempfile::tempdir().expect("temp dir");
    let l1 = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let l2 = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (a1, a2) = (
        l1.local_addr().expect("addr").to_string(),
        l2.local_addr().expect("addr").to_string(),
    );
    let m1 = std::collections::BTreeMap::from([(1, a1.clone())]);
    // Node 2 lists node 1 (lower id), so it waits to be added instead of bootstrapping.
    let m2 = std::collections::BTreeMap::from([(1, a1.clone()), (2, a2.clone())]);
    let mut c1 = magnetar_metadata::MetadataConfig::new(1, root.path().join("n1"), m1);
    c1.heartbeat_ms = 50;
    c1.election_timeout_ms = 300;
    let mut c2 = magnetar_metadata::MetadataConfig::new(2, root.path().join("n2"), m2);
    c2.heartbeat_ms = 50;
    c2.election_timeout_ms = 300;
    let n1 = magnetar_metadata::start_on(c1, l1).expect("start 1");
    let n2 = magnetar_metadata::start_on(c2, l2).expect("start 2");
    let client = magnetar_metadata::GrpcMetadataClient::new(vec![a1.clone(), a2.clone()]);
    client
        .put("/m/before", Bytes::from("x"), Expect::Any, None)
        .await
        .expect("put on single node");
    let st = client.add_node(2, &a2).await.expect("add node");
    assert_eq!(st.members.iter().filter(|m| m.voter).count(), 2, "{st:?}");
    let v = client
        .put("/m/after", Bytes::from("y"), Expect::Any, None)
        .await
        .expect("put on two nodes");
    eventually(Duration::from_secs(10), "node 2 applied", || {
        let client = client.clone();
        let a2 = a2.clone();
        async move { matches!(client.status_of(&a2).await, Ok(st) if st.last_applied >= v.0) }
    })
    .await;
    let st = client.remove_node(2).await.expect("remove node");
    assert_eq!(st.members.iter().filter(|m| m.voter).count(), 1, "{st:?}");
    assert!(client.get("/m/after").await.expect("get").is_some());
    n2.shutdown().await.expect("stop 2");
    n1.shutdown().await.expect("stop 1");
}
