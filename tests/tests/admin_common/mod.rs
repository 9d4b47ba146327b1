//! Shared by the `admin_*` tests: a broker over in-memory metadata and ledgers on port 0,
//! and a tiny HTTP helper that returns (status, JSON-or-text body).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use magnetar_bookie::mem::MemLedgers;
use magnetar_broker::config::BrokerConfig;
use magnetar_metadata::{MemStore, MetadataStore};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A broker running in this test process; stops when dropped.
pub struct Admin {
    pub http: reqwest::Client,
    pub base: String,
    pub pulsar: SocketAddr,
    pub shutdown: CancellationToken,
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Response status and body (JSON when it parses, else a JSON string).
pub struct Resp {
    pub status: u16,
    pub body: Value,
}

impl Resp {
    /// The `reason` of an error body.
    pub fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or("")
    }
}

pub async fn start() -> Admin {
    start_on(MemStore::new(), MemLedgers::new()).await.0
}

/// A broker over the given stores (so a test can restart it on the same data, or look at
/// the ledgers); the handle resolves once the broker has stopped after `shutdown`.
pub async fn start_on(
    metadata: Arc<dyn MetadataStore>,
    ledgers: Arc<MemLedgers>,
) -> (Admin, tokio::task::JoinHandle<()>) {
    let pl = TcpListener::bind("127.0.0.1:0").await.expect("bind pulsar");
    let hl = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let pulsar = pl.local_addr().expect("addr");
    let http_addr = hl.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let config = BrokerConfig {
        handshake_timeout_secs: 2,
        ..BrokerConfig::default()
    };
    let sd = shutdown.clone();
    let handle = tokio::spawn(async move {
        let res = magnetar_broker::service::run(config, pl, hl, metadata, ledgers, sd).await;
        if let Err(e) = res {
            panic!("broker failed: {e}");
        }
    });
    let admin = Admin {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client"),
        base: format!("http://{http_addr}"),
        pulsar,
        shutdown,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = admin.get("/admin/v2/clusters").await;
        if r.status == 200 && r.body.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (admin, handle)
}

impl Admin {
    pub fn service_url(&self) -> String {
        format!("pulsar://{}", self.pulsar)
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert!(status < 500, "{method} {path} answered {status}: {body}");
        Resp { status, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }

    pub async fn put(&self, path: &str, body: &str) -> Resp {
        self.call("PUT", path, Some(body)).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Resp {
        self.call("POST", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None).await
    }

    /// Waits until `check` holds for the JSON at `path`.
    pub async fn wait_json<F: Fn(&Value) -> bool>(&self, path: &str, check: F) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let r = self.get(path).await;
            if r.status == 200 && check(&r.body) {
                return r.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition on {path} never held; last: {} {}",
                r.status,
                r.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
