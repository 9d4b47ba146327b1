//! Real `magnetar metadata` / `magnetar bookie` processes for the bookie acceptance tests:
//! free loopback ports, temp dirs, logs next to the data; every child is killed on drop.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use magnetar_bookie::registration::list_bookies;
use magnetar_bookie::BookieRegistration;
use magnetar_metadata::{GrpcMetadataClient, MetadataStore};

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Polls `f` every 50 ms until it holds or `limit` passes.
pub async fn wait_for<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Processes of one test: a metadata node and bookies.
pub struct Procs {
    /// Logs (and data unless a bookie got its own data dir).
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    children: Vec<(String, Child)>,
    /// Metadata address.
    pub metadata: String,
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Procs {
    /// Starts one metadata node and waits until it answers.
    pub async fn start_metadata() -> (Procs, Arc<dyn MetadataStore>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let metadata = format!("127.0.0.1:{}", free_port());
        let mut p = Procs {
            bin: PathBuf::from(env!("CARGO_BIN_EXE_magnetar")),
            children: Vec::new(),
            metadata: metadata.clone(),
            dir,
        };
        let data = p.dir.path().join("metadata");
        p.spawn(
            "metadata",
            &[
                "metadata",
                "--node-id",
                "1",
                "--listen",
                &metadata,
                "--data-dir",
                &data.to_string_lossy(),
            ],
        );
        let md: Arc<dyn MetadataStore> = Arc::new(GrpcMetadataClient::new(vec![metadata]));
        let ok = wait_for(Duration::from_secs(30), || {
            let md = md.clone();
            async move { md.get("/probe").await.is_ok() }
        })
        .await;
        assert!(ok, "metadata did not come up; logs in {}", p.log_dir());
        (p, md)
    }

    /// Log directory (for failure messages).
    pub fn log_dir(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Spawns `magnetar ARGS` with its output in `{name}.log`.
    pub fn spawn(&mut self, name: &str, args: &[&str]) {
        let log =
            std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log file");
        let err = log.try_clone().expect("log file");
        let child = Command::new(&self.bin)
            .args(args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn magnetar");
        self.children.push((name.to_string(), child));
    }

    /// Starts bookie `id` (also its registration id) with data in `data` and `extra` flags.
    pub fn start_bookie(&mut self, id: &str, data: &Path, extra: &[&str]) {
        let listen = format!("127.0.0.1:{}", free_port());
        let data = data.to_string_lossy().into_owned();
        let metadata = self.metadata.clone();
        let mut args = vec![
            "bookie",
            "--listen",
            &listen,
            "--data-dir",
            &data,
            "--metadata",
            &metadata,
            "--bookie-id",
            id,
        ];
        args.extend_from_slice(extra);
        self.spawn(id, &args);
    }

    /// SIGKILLs process `name` and reaps it.
    pub fn kill9(&mut self, name: &str) {
        let (_, c) = self
            .children
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("known process");
        c.kill().expect("SIGKILL");
        let _ = c.wait();
    }

    /// Whether process `name` is still running.
    pub fn alive(&mut self, name: &str) -> bool {
        let (_, c) = self
            .children
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("known process");
        matches!(c.try_wait(), Ok(None))
    }
}

/// The registered bookies (empty on error).
pub async fn bookies(md: &Arc<dyn MetadataStore>) -> Vec<(String, BookieRegistration)> {
    list_bookies(md.as_ref()).await.unwrap_or_default()
}
