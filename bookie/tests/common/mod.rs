//! In-process bookies on 127.0.0.1:0 with temp dirs and an in-memory metadata store.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use magnetar_bookie::{Bookie, BookieConfig};
use magnetar_metadata::{MemStore, MetadataStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One running bookie and what is needed to stop it.
pub struct TestBookie {
    pub id: String,
    pub bookie: Option<Bookie>,
    pub shutdown: CancellationToken,
    pub dir: tempfile::TempDir,
}

impl TestBookie {
    /// Shuts the bookie's server down and waits for it.
    pub async fn kill(&mut self) {
        self.shutdown.cancel();
        if let Some(b) = self.bookie.take() {
            b.wait().await.expect("bookie stops cleanly");
        }
    }

    /// Starts the bookie again on the same data dir (and a new port).
    pub async fn restart(&mut self, md: Arc<dyn MetadataStore>) {
        self.kill().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        self.shutdown = CancellationToken::new();
        let bookie = Bookie::start(
            test_config(self.dir.path()),
            listener,
            md,
            self.shutdown.clone(),
        )
        .await
        .expect("bookie restarts");
        assert_eq!(bookie.id(), self.id, "bookie id persisted in the data dir");
        self.bookie = Some(bookie);
    }

    pub fn bookie(&self) -> &Bookie {
        self.bookie.as_ref().expect("bookie running")
    }
}

pub fn test_config(dir: &std::path::Path) -> BookieConfig {
    BookieConfig {
        session_ttl_ms: 1_000,
        disk_check_interval_ms: 200,
        shutdown_timeout_ms: 2_000,
        // Shared CI disks may be nearly full; tests that need read-only set it explicitly.
        readonly_threshold: 1.0,
        writable_threshold: 1.0,
        ..BookieConfig::with_data_dir(dir)
    }
}

pub async fn start_bookie_with(
    md: Arc<dyn MetadataStore>,
    f: impl FnOnce(&mut BookieConfig),
) -> TestBookie {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = test_config(dir.path());
    f(&mut cfg);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let shutdown = CancellationToken::new();
    let bookie = Bookie::start(cfg, listener, md, shutdown.clone())
        .await
        .expect("bookie starts");
    TestBookie {
        id: bookie.id().to_string(),
        bookie: Some(bookie),
        shutdown,
        dir,
    }
}

pub async fn start_bookie(md: Arc<dyn MetadataStore>) -> TestBookie {
    start_bookie_with(md, |_| {}).await
}

pub async fn cluster(n: usize) -> (Arc<dyn MetadataStore>, Vec<TestBookie>) {
    init_tracing();
    let md: Arc<dyn MetadataStore> = MemStore::new();
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(start_bookie(md.clone()).await);
    }
    (md, v)
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub async fn wait_for<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn payload(i: u64) -> bytes::Bytes {
    bytes::Bytes::from(format!("entry-{i:08}-{}", "x".repeat((i % 97) as usize)))
}
