//! Every `MetadataStore` implementation (in-memory, 1-node and 3-node Raft clusters over
//! gRPC) keeps the same contract: versions, CAS, transactions, counters, sessions with
//! ephemeral keys, ordered watches, and input validation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{eventually, Cluster};
use futures::StreamExt;
use magnetar_metadata::{
    list_all, Expect, MemStore, MetadataError, MetadataStore, SessionId, TxnOp, Version, WatchEvent,
};

type Store = Arc<dyn MetadataStore>;

async fn put_get_cas(s: Store) {
    let v1 = s
        .put("/c/a", Bytes::from("1"), Expect::Absent, None)
        .await
        .expect("create");
    let got = s.get("/c/a").await.expect("get").expect("present");
    assert_eq!(got.value, Bytes::from("1"));
    assert_eq!(got.version, v1);
    let err = s
        .put("/c/a", Bytes::from("x"), Expect::Absent, None)
        .await
        .expect_err("create twice");
    assert!(err.is_bad_version(), "{err:?}");
    let v2 = s
        .put("/c/a", Bytes::from("2"), Expect::Version(v1), None)
        .await
        .expect("cas");
    assert!(v2 > v1);
    let err = s
        .put("/c/a", Bytes::from("3"), Expect::Version(v1), None)
        .await
        .expect_err("stale cas");
    assert!(err.is_bad_version(), "{err:?}");
    assert!(s.get("/c/missing").await.expect("get").is_none());
    assert!(s.revision().await.expect("revision") >= v2);
    assert!(!s
        .delete("/c/missing", Expect::Any)
        .await
        .expect("delete absent"));
    let err = s
        .delete("/c/a", Expect::Version(v1))
        .await
        .expect_err("stale delete");
    assert!(err.is_bad_version());
    assert!(s.delete("/c/a", Expect::Version(v2)).await.expect("delete"));
    assert!(s.get("/c/a").await.expect("get").is_none());
}

async fn list_and_txn(s: Store) {
    for i in 0..25 {
        s.put(&format!("/l/k{i:02}"), Bytes::from("v"), Expect::Any, None)
            .await
            .expect("put");
    }
    s.put("/lz", Bytes::from("v"), Expect::Any, None)
        .await
        .expect("put");
    let page = s.list("/l/", None, 10).await.expect("list");
    assert_eq!(page.len(), 10);
    assert_eq!(page[0].0, "/l/k00");
    let page2 = s.list("/l/", Some("/l/k09"), 100).await.expect("list");
    assert_eq!(page2.len(), 15);
    assert_eq!(page2[0].0, "/l/k10");
    assert_eq!(list_all(s.as_ref(), "/l/").await.expect("all").len(), 25);

    let cur = s
        .get("/l/k00")
        .await
        .expect("get")
        .expect("present")
        .version;
    let err = s
        .txn(vec![
            TxnOp::Put {
                key: "/t/a".into(),
                value: b"a".to_vec(),
                expect: Expect::Absent,
                session: None,
            },
            TxnOp::Check {
                key: "/l/k00".into(),
                expect: Expect::Version(Version(cur.0 + 1000)),
            },
        ])
        .await
        .expect_err("failed check");
    assert!(err.is_bad_version());
    assert!(
        s.get("/t/a").await.expect("get").is_none(),
        "txn must be atomic"
    );
    let v = s
        .txn(vec![
            TxnOp::Put {
                key: "/t/a".into(),
                value: b"a".to_vec(),
                expect: Expect::Absent,
                session: None,
            },
            TxnOp::Delete {
                key: "/l/k00".into(),
                expect: Expect::Version(cur),
            },
        ])
        .await
        .expect("txn");
    assert_eq!(
        s.get("/t/a").await.expect("get").expect("present").version,
        v
    );
    assert!(s.get("/l/k00").await.expect("get").is_none());
}

async fn counters(s: Store) {
    assert_eq!(s.increment("/n/c", 1).await.expect("inc"), 1);
    assert_eq!(s.increment("/n/c", 5).await.expect("inc"), 6);
    s.put("/n/s", Bytes::from("abc"), Expect::Any, None)
        .await
        .expect("put");
    let err = s.increment("/n/s", 1).await.expect_err("not a counter");
    assert!(matches!(err, MetadataError::InvalidArgument(_)), "{err:?}");
    s.put(
        "/n/max",
        Bytes::copy_from_slice(&u64::MAX.to_be_bytes()),
        Expect::Any,
        None,
    )
    .await
    .expect("put");
    assert!(
        s.increment("/n/max", 1).await.is_err(),
        "overflow must fail, not panic"
    );
}

async fn sessions(s: Store) {
    let sid = s
        .create_session(Duration::from_secs(30))
        .await
        .expect("session");
    s.put("/e/a", Bytes::from("x"), Expect::Absent, Some(sid))
        .await
        .expect("ephemeral");
    assert_eq!(
        s.get("/e/a").await.expect("get").expect("present").owner,
        Some(sid)
    );
    s.keep_alive(sid).await.expect("keep alive");
    s.close_session(sid).await.expect("close");
    assert!(s.get("/e/a").await.expect("get").is_none());
    let err = s.keep_alive(sid).await.expect_err("closed");
    assert!(matches!(err, MetadataError::SessionExpired(_)), "{err:?}");
    let err = s
        .put(
            "/e/b",
            Bytes::from("x"),
            Expect::Any,
            Some(SessionId(987_654)),
        )
        .await
        .expect_err("unknown session");
    assert!(matches!(err, MetadataError::SessionExpired(_)), "{err:?}");

    // Expiry: no keep-alives, the key must disappear.
    let short = s
        .create_session(Duration::from_millis(400))
        .await
        .expect("session");
    s.put("/e/short", Bytes::from("x"), Expect::Any, Some(short))
        .await
        .expect("ephemeral");
    eventually(Duration::from_secs(10), "session expiry", || {
        let s = s.clone();
        async move { matches!(s.get("/e/short").await, Ok(None)) }
    })
    .await;
}

async fn watches(s: Store) {
    let start = s.revision().await.expect("revision");
    let mut w = s.watch("/w/", start).await.expect("watch");
    let v1 = s
        .put("/w/a", Bytes::from("1"), Expect::Any, None)
        .await
        .expect("put");
    s.put("/other", Bytes::from("1"), Expect::Any, None)
        .await
        .expect("put");
    let v2 = s
        .put("/w/b", Bytes::from("2"), Expect::Any, None)
        .await
        .expect("put");
    s.delete("/w/a", Expect::Any).await.expect("delete");
    let mut got = Vec::new();
    for _ in 0..3 {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        got.push(ev);
    }
    assert!(
        matches!(&got[0], WatchEvent::Put { key, version, .. } if key == "/w/a" && *version == v1)
    );
    assert!(
        matches!(&got[1], WatchEvent::Put { key, version, .. } if key == "/w/b" && *version == v2)
    );
    assert!(matches!(&got[2], WatchEvent::Delete { key, .. } if key == "/w/a"));

    // A watcher from an older version gets the backlog, in order.
    let mut w2 = s.watch("/w/", start).await.expect("watch");
    let first = tokio::time::timeout(Duration::from_secs(10), w2.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("event");
    assert_eq!(first, got[0]);
}

async fn validation(s: Store) {
    let big = Bytes::from(vec![0u8; 1024 * 1024 + 1]);
    let err = s
        .put("/v/big", big, Expect::Any, None)
        .await
        .expect_err("too big");
    assert!(matches!(err, MetadataError::InvalidArgument(_)), "{err:?}");
    let err = s
        .put("no-slash", Bytes::from("x"), Expect::Any, None)
        .await
        .expect_err("bad key");
    assert!(matches!(err, MetadataError::InvalidArgument(_)), "{err:?}");
    let err = s.get("").await.expect_err("empty key");
    assert!(matches!(err, MetadataError::InvalidArgument(_)), "{err:?}");
    // The store still works afterwards.
    s.put("/v/ok", Bytes::from("x"), Expect::Any, None)
        .await
        .expect("put");
}

async fn all(s: Store) {
    put_get_cas(s.clone()).await;
    list_and_txn(s.clone()).await;
    counters(s.clone()).await;
    sessions(s.clone()).await;
    watches(s.clone()).await;
    validation(s).await;
}

#[tokio::test]
async fn mem_store_conforms() {
    all(MemStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_grpc_cluster_conforms() {
    let c = Cluster::start(1).await;
    all(Arc::new(c.client())).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_grpc_cluster_conforms() {
    let c = Cluster::start(3).await;
    all(Arc::new(c.client())).await;
    c.shutdown().await;
}
