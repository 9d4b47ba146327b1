//! In cluster mode, topic admin requests sent to a broker that does not own the topic are
//! redirected (307) to the owner's HTTP URL, so every broker answers for every topic.

use std::sync::Arc;
use std::time::Duration;

use magnetar_bookie::mem::MemLedgers;
use magnetar_broker::cluster::ClusterConfig;
use magnetar_broker::config::BrokerConfig;
use magnetar_metadata::{MemStore, MetadataStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Node {
    http: String,
}

async fn start_node(
    metadata: Arc<dyn MetadataStore>,
    ledgers: Arc<MemLedgers>,
    shutdown: CancellationToken,
) -> Node {
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
    Node { http }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_requests_to_a_non_owner_are_redirected_to_the_owner() {
    let metadata: Arc<dyn MetadataStore> = MemStore::new();
    let ledgers = MemLedgers::new();
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let a = start_node(metadata.clone(), ledgers.clone(), shutdown.child_token()).await;
    let b = start_node(metadata.clone(), ledgers.clone(), shutdown.child_token()).await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let follow = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    // Wait for both brokers to serve HTTP.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for n in [&a, &b] {
        loop {
            let ok = follow
                .get(format!("{}/admin/v2/clusters", n.http))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "broker not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let path = "/admin/v2/persistent/public/default/redirected";
    let r = follow
        .put(format!("{}{path}", a.http))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), 204);

    let mut statuses = Vec::new();
    for n in [&a, &b] {
        let r = no_redirect
            .get(format!("{}{path}/stats", n.http))
            .send()
            .await
            .expect("stats");
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        statuses.push((r.status().as_u16(), loc));
    }
    let owners = statuses.iter().filter(|(s, _)| *s == 200).count();
    let redirects: Vec<&Option<String>> = statuses
        .iter()
        .filter(|(s, _)| *s == 307)
        .map(|(_, l)| l)
        .collect();
    assert_eq!((owners, redirects.len()), (1, 1), "{statuses:?}");
    let loc = redirects[0].as_deref().expect("Location header");
    assert!(loc.ends_with(&format!("{path}/stats")), "{loc}");
    assert!(
        loc.starts_with(&a.http) || loc.starts_with(&b.http),
        "{loc}"
    );

    for n in [&a, &b] {
        let r = follow
            .get(format!("{}{path}/stats", n.http))
            .send()
            .await
            .expect("stats");
        assert_eq!(r.status(), 200, "following the redirect from {}", n.http);
    }
}
