//! Ownership decisions of two brokers over one in-memory metadata store.

use std::sync::Arc;
use std::time::Duration;

use magnetar_metadata::{MemStore, MetadataStore, SessionKeeper};

use super::ownership::LookupAnswer;
use super::*;
use crate::names::TopicName;

async fn broker(store: Arc<MemStore>, port: u16) -> Cluster {
    let metadata: Arc<dyn MetadataStore> = store;
    let c = Cluster {
        config: ClusterConfig {
            enabled: true,
            ..ClusterConfig::default()
        },
        cluster_name: "c".into(),
        metadata: metadata.clone(),
        me: OwnerInfo {
            broker_id: format!("127.0.0.1:{port}"),
            broker_service_url: format!("pulsar://127.0.0.1:{port}"),
            web_service_url: format!("http://127.0.0.1:{}", port + 1),
        },
        session: Mutex::new(None),
        owned: Mutex::new(HashSet::new()),
        bundles: Mutex::new(HashMap::new()),
    };
    let keeper = SessionKeeper::start(metadata, Duration::from_secs(30))
        .await
        .expect("session");
    let report = LoadReport {
        cluster: "c".into(),
        broker_service_url: c.me.broker_service_url.clone(),
        web_service_url: c.me.web_service_url.clone(),
        ..LoadReport::default()
    };
    c.publish_report(keeper.id(), &report)
        .await
        .expect("register");
    *c.session.lock() = Some(keeper);
    c
}

fn topic(i: usize) -> TopicName {
    TopicName::parse(&format!("persistent://public/default/t{i}")).expect("name")
}

/// Resolves a lookup the way a client does: follow one redirect with authoritative=true.
async fn owner_of(a: &Cluster, b: &Cluster, t: &TopicName) -> String {
    match a.lookup(t, false).await.expect("lookup") {
        LookupAnswer::Here => a.me.broker_id.clone(),
        LookupAnswer::Elsewhere(o) => {
            assert_eq!(o.broker_id, b.me.broker_id);
            assert_eq!(b.lookup(t, true).await.expect("lookup"), LookupAnswer::Here);
            o.broker_id
        }
    }
}

#[tokio::test]
async fn one_owner_per_bundle_and_release_hands_it_over() {
    let store = MemStore::new();
    let a = broker(store.clone(), 7000).await;
    let b = broker(store.clone(), 7100).await;
    let mut owners = HashSet::new();
    for i in 0..12 {
        let t = topic(i);
        let owner = owner_of(&a, &b, &t).await;
        owners.insert(owner.clone());
        let (mine, theirs) = if owner == a.me.broker_id {
            (&a, &b)
        } else {
            (&b, &a)
        };
        mine.check_owned(&t).await.expect("owner serves its topic");
        let err = theirs.check_owned(&t).await.expect_err("non-owner refuses");
        assert!(matches!(err, crate::error::BrokerError::ServiceNotReady(_)));
        match theirs.lookup(&t, false).await.expect("lookup") {
            LookupAnswer::Elsewhere(o) => assert_eq!(o, mine.me),
            LookupAnswer::Here => panic!("two owners of {t}"),
        }
    }
    assert_eq!(
        owners.len(),
        2,
        "12 topics over 4 bundles all went to one broker"
    );

    // A releases everything (graceful shutdown): B can serve every topic at once.
    a.release().await;
    for i in 0..12 {
        b.check_owned(&topic(i))
            .await
            .expect("b takes over released bundles");
    }
    assert_eq!(b.owned_bundles().len(), 4);
}

#[tokio::test]
async fn a_broker_without_session_serves_nothing() {
    let store = MemStore::new();
    let a = broker(store.clone(), 7200).await;
    let t = topic(1);
    assert_eq!(
        a.lookup(&t, true).await.expect("lookup"),
        LookupAnswer::Here
    );
    *a.session.lock() = None;
    a.owned.lock().clear();
    assert!(a.check_owned(&t).await.is_err());
}

#[tokio::test]
async fn a_restarted_broker_waits_for_its_old_session_instead_of_redirecting_to_itself() {
    let store = MemStore::new();
    let old = broker(store.clone(), 7300).await;
    let t = topic(3);
    assert_eq!(
        old.lookup(&t, true).await.expect("lookup"),
        LookupAnswer::Here
    );
    // Same address, new process and session; the old session is still alive.
    let new = broker(store.clone(), 7300).await;
    let err = new
        .lookup(&t, false)
        .await
        .expect_err("must not redirect to itself");
    assert!(matches!(err, crate::error::BrokerError::ServiceNotReady(_)));
    old.release().await;
    assert_eq!(
        new.lookup(&t, false).await.expect("lookup"),
        LookupAnswer::Here
    );
}

#[tokio::test]
async fn unowned_bundles_go_to_the_broker_reporting_less_load() {
    let store = MemStore::new();
    let a = broker(store.clone(), 7400).await;
    let b = broker(store.clone(), 7500).await;
    // A reports a heavy publish rate and many connections; B reports nothing.
    let busy = LoadReport {
        cluster: "c".into(),
        broker_service_url: a.me.broker_service_url.clone(),
        web_service_url: a.me.web_service_url.clone(),
        topics: 20,
        connections: 100,
        msg_rate_in: 50_000.0,
        ..LoadReport::default()
    };
    a.publish_report(a.session_id().expect("session"), &busy)
        .await
        .expect("report");
    for i in 0..12 {
        assert_eq!(
            owner_of(&a, &b, &topic(i)).await,
            b.me.broker_id,
            "t{i} went to the busy broker"
        );
    }
    assert_eq!(b.owned_bundles().len(), 4);
    assert!(a.owned_bundles().is_empty());
}
