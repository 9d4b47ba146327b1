//! In cluster mode the partitions of one partitioned topic are owned by different brokers,
//! and admin operations on the partitioned topic reach every partition at its owner, from
//! whichever broker is asked: subscription create/list/skip, partitioned stats, terminate
//! and delete.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use magnetar_bookie::mem::MemLedgers;
use magnetar_broker::cluster::ClusterConfig;
use magnetar_broker::config::BrokerConfig;
use magnetar_metadata::{MemStore, MetadataStore};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const NS: &str = "/admin/v2/persistent/public/default";
const PARTITIONS: u32 = 8;

async fn start_node(
    metadata: Arc<dyn MetadataStore>,
    ledgers: Arc<MemLedgers>,
    shutdown: CancellationToken,
) -> String {
    let pl = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hl = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = format!("http://{}", hl.local_addr().expect("addr"));
    let config = BrokerConfig {
        cluster: ClusterConfig {
            enabled: true,
            ..ClusterConfig::default()
        },
        ..BrokerConfig::default()
    };
    tokio::spawn(async move {
        if let Err(e) =
            magnetar_broker::service::run(config, pl, hl, metadata, ledgers, shutdown).await
        {
            panic!("broker failed: {e}");
        }
    });
    http
}

struct Http(reqwest::Client);

impl Http {
    async fn call(&self, method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.0.request(m, url);
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert!(status < 500, "{method} {url} answered {status}: {v}");
        (status, v)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_topic_operations_reach_every_partition_owner() {
    let metadata: Arc<dyn MetadataStore> = MemStore::new();
    let ledgers = MemLedgers::new();
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let a = start_node(metadata.clone(), ledgers.clone(), shutdown.child_token()).await;
    let b = start_node(metadata.clone(), ledgers.clone(), shutdown.child_token()).await;
    let http = Http(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for n in [&a, &b] {
        loop {
            let ok = http
                .0
                .get(format!("{n}/admin/v2/brokers/standalone"))
                .send()
                .await
                .is_ok();
            if ok {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "broker not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Both brokers registered before any bundle is assigned, so assignments spread out.
    loop {
        let (_, v) = http
            .call("GET", &format!("{a}/admin/v2/brokers/standalone"), None)
            .await;
        if v.as_array().is_some_and(|l| l.len() == 2) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "brokers never both active: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let topic = format!("{NS}/spread");
    let (s, v) = http
        .call(
            "PUT",
            &format!("{a}{topic}/partitions"),
            Some(&PARTITIONS.to_string()),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    // Look every partition up, so each bundle gets an owner; both brokers must own some.
    let mut owners = BTreeSet::new();
    for i in 0..PARTITIONS {
        let (s, v) = http
            .call(
                "GET",
                &format!("{a}/lookup/v2/topic/persistent/public/default/spread-partition-{i}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        owners.insert(v["httpUrl"].as_str().expect("httpUrl").to_string());
    }
    assert_eq!(
        owners.len(),
        2,
        "partitions all owned by one broker: {owners:?}"
    );

    // A subscription on the partitioned topic, created through one broker, exists on every
    // partition; listing through the other broker shows it.
    let (s, v) = http
        .call(
            "PUT",
            &format!("{a}{topic}/subscription/sub?messageId=earliest"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = http
        .call("GET", &format!("{b}{topic}/subscriptions"), None)
        .await;
    assert_eq!((s, v.clone()), (200, serde_json::json!(["sub"])), "{v}");
    let (s, v) = http
        .call("PUT", &format!("{b}{topic}/subscription/sub"), None)
        .await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = http
        .call(
            "POST",
            &format!("{b}{topic}/subscription/sub/skip_all"),
            None,
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = http
        .call(
            "POST",
            &format!("{b}{topic}/subscription/nosuch/skip_all"),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");

    for n in [&a, &b] {
        let (s, st) = http
            .call(
                "GET",
                &format!("{n}{topic}/partitioned-stats?perPartition=true"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{st}");
        assert_eq!(st["metadata"]["partitions"], PARTITIONS, "{st}");
        let parts = st["partitions"].as_object().expect("partitions");
        assert_eq!(parts.len(), PARTITIONS as usize, "{st}");
        for (p, ps) in parts {
            assert!(ps["subscriptions"]["sub"].is_object(), "{p}: {ps}");
        }
    }

    let (s, v) = http
        .call("POST", &format!("{b}{topic}/terminate/partitions"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v.as_object().map(|m| m.len()),
        Some(PARTITIONS as usize),
        "{v}"
    );

    let (s, v) = http
        .call("DELETE", &format!("{a}{topic}/partitions?force=true"), None)
        .await;
    assert_eq!(s, 204, "{v}");
    for i in 0..PARTITIONS {
        let (s, v) = http
            .call("GET", &format!("{b}{topic}-partition-{i}/stats"), None)
            .await;
        assert_eq!(s, 404, "partition {i} survived: {v}");
    }
    let (_, v) = http
        .call("GET", &format!("{a}{topic}/partitions"), None)
        .await;
    assert_eq!(v["partitions"], 0, "{v}");
    assert!(
        ledgers.ledger_ids().is_empty(),
        "ledgers left behind: {:?}",
        ledgers.ledger_ids()
    );
}
