//! [`Standalone`]: one `magnetar standalone` for a test, on free loopback ports and a
//! temporary data dir, as a child process or on a runtime thread inside the test process.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use magnetar_tools::standalone::StandaloneArgs;
use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// How a [`Standalone`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The real `magnetar` binary as a child process (see the crate doc for which binary).
    Process,
    /// `magnetar_tools::standalone::run` on a dedicated runtime thread in this process.
    InProcess,
}

/// Options of [`Standalone::start`].
#[derive(Debug, Clone)]
pub struct StandaloneOpts {
    /// Number of bookies (`--bookies`).
    pub bookies: usize,
    /// Process or in-process.
    pub mode: Mode,
    /// How long start (and restart) may take before the test fails.
    pub start_timeout: Duration,
}

impl Default for StandaloneOpts {
    fn default() -> Self {
        Self {
            bookies: 1,
            mode: Mode::Process,
            start_timeout: Duration::from_secs(60),
        }
    }
}

impl StandaloneOpts {
    /// Defaults, in process.
    pub fn in_process() -> Self {
        Self {
            mode: Mode::InProcess,
            ..Self::default()
        }
    }
}

enum Running {
    Stopped,
    Process(Child),
    InProcess {
        stop: CancellationToken,
        thread: JoinHandle<anyhow::Result<()>>,
    },
}

/// A running standalone; restartable on the same data dir and ports; killed when dropped.
pub struct Standalone {
    opts: StandaloneOpts,
    root: TempDir,
    port: u16,
    http_port: u16,
    running: Running,
    http: reqwest::Client,
}

/// A loopback port that was free a moment ago (bind port 0, then release it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

/// The `magnetar` binary [`Mode::Process`] runs.
pub fn magnetar_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MAGNETAR_BIN") {
        return PathBuf::from(p);
    }
    // Test executables live in <target>/debug/deps/; the binary is in <target>/debug/.
    let exe = std::env::current_exe().expect("path of the test executable");
    let candidates = [
        exe.parent()
            .and_then(Path::parent)
            .map(|d| d.join("magnetar")),
        std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("debug/magnetar")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "no magnetar binary found next to {} nor in $CARGO_TARGET_DIR/debug: run \
         `cargo build -p magnetar-tools --bin magnetar` first or set MAGNETAR_BIN",
        exe.display()
    );
}

impl Standalone {
    /// Starts a standalone and waits until `/admin/v2/brokers/health` answers 200.
    pub async fn start(opts: StandaloneOpts) -> Standalone {
        let root = tempfile::Builder::new()
            .prefix("magnetar-standalone-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let mut http_port = free_port();
        while http_port == port {
            http_port = free_port();
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        let mut s = Standalone {
            opts,
            root,
            port,
            http_port,
            running: Running::Stopped,
            http,
        };
        s.launch().await;
        s
    }

    /// `pulsar://127.0.0.1:<port>`.
    pub fn service_url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<http port>`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The data dir (survives restarts, removed on drop).
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The process log (process mode only).
    pub fn log_path(&self) -> PathBuf {
        self.root.path().join("magnetar.log")
    }

    /// The last `n` lines of the process log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    async fn launch(&mut self) {
        assert!(matches!(self.running, Running::Stopped), "already running");
        match self.opts.mode {
            Mode::Process => {
                let log = File::create(self.log_path()).expect("create log file");
                let child = Command::new(magnetar_bin())
                    .arg("standalone")
                    .arg("--data-dir")
                    .arg(self.data_dir())
                    .args(["--port", &self.port.to_string()])
                    .args(["--http-port", &self.http_port.to_string()])
                    .args(["--bind-address", "127.0.0.1"])
                    .args(["--bookies", &self.opts.bookies.to_string()])
                    .env(
                        "RUST_LOG",
                        std::env::var("RUST_LOG").unwrap_or("warn".into()),
                    )
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().expect("clone log handle"))
                    .stderr(log)
                    .spawn()
                    .expect("spawn magnetar standalone");
                self.running = Running::Process(child);
            }
            Mode::InProcess => {
                let args = StandaloneArgs {
                    data_dir: self.data_dir(),
                    port: self.port,
                    http_port: self.http_port,
                    bind_address: "127.0.0.1".into(),
                    advertised_address: "127.0.0.1".into(),
                    bookies: self.opts.bookies,
                    cluster_name: "standalone".into(),
                };
                let stop = CancellationToken::new();
                let token = stop.clone();
                let thread = std::thread::Builder::new()
                    .name("standalone".into())
                    .spawn(move || {
                        let rt = tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(2)
                            .enable_all()
                            .build()?;
                        rt.block_on(magnetar_tools::standalone::run(args, token))
                    })
                    .expect("spawn standalone thread");
                self.running = Running::InProcess { stop, thread };
            }
        }
        self.wait_healthy().await;
    }

    async fn wait_healthy(&mut self) {
        let deadline = tokio::time::Instant::now() + self.opts.start_timeout;
        let url = format!("{}/admin/v2/brokers/health", self.http_url());
        let mut delay = Duration::from_millis(20);
        loop {
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            self.assert_alive();
            assert!(
                tokio::time::Instant::now() < deadline,
                "standalone not healthy within {:?}\n{}",
                self.opts.start_timeout,
                self.log_tail(60)
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }
    }

    fn assert_alive(&mut self) {
        let log = self.log_tail(60);
        match &mut self.running {
            Running::Process(c) => {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("magnetar standalone exited with {st}\n{log}");
                }
            }
            Running::InProcess { thread, .. } => {
                assert!(!thread.is_finished(), "in-process standalone stopped early");
            }
            Running::Stopped => panic!("standalone is not running"),
        }
    }

    /// Whether the server is still up (the process has not exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.running {
            Running::Process(c) => matches!(c.try_wait(), Ok(None)),
            Running::InProcess { thread, .. } => !thread.is_finished(),
            Running::Stopped => false,
        }
    }

    /// SIGKILL (process mode only): no shutdown code runs, nothing is flushed.
    pub fn kill9(&mut self) {
        match std::mem::replace(&mut self.running, Running::Stopped) {
            Running::Process(mut c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            Running::InProcess { .. } => panic!("kill9 needs Mode::Process"),
            Running::Stopped => {}
        }
    }

    /// Graceful stop (SIGTERM, or the shutdown token in process), bounded by 30 s; then
    /// SIGKILL if the process is still there.
    pub async fn stop(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        match std::mem::replace(&mut self.running, Running::Stopped) {
            Running::Process(mut c) => {
                if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
                while matches!(c.try_wait(), Ok(None)) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = c.kill();
                let _ = c.wait();
            }
            Running::InProcess { stop, thread } => {
                stop.cancel();
                while !thread.is_finished() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert!(thread.is_finished(), "in-process standalone did not stop");
                match thread.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => panic!("standalone failed: {e:#}"),
                    Err(_) => panic!("standalone thread panicked"),
                }
            }
            Running::Stopped => {}
        }
    }

    /// Stops gracefully if running, then starts again on the same ports and data dir.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }

    /// Starts again after [`kill9`](Self::kill9) or [`stop`](Self::stop).
    pub async fn start_again(&mut self) {
        self.launch().await;
    }

    /// Sends an admin request; returns status and body (JSON if it parses, else a string).
    pub async fn admin(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, format!("{}{path}", self.http_url()));
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("admin request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("admin response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// Creates `public/default/<name>` with `partitions` partitions (name may be a full
    /// topic name).
    pub async fn create_partitioned_topic(&self, topic: &str, partitions: u32) {
        let path = format!(
            "/admin/v2/persistent/public/default/{}/partitions",
            crate::short_name(topic)
        );
        let (status, body) = self
            .admin("PUT", &path, Some(&partitions.to_string()))
            .await;
        assert!(
            (200..300).contains(&status),
            "PUT {path} answered {status}: {body}"
        );
    }

    /// `GET .../<topic>/stats` of a non-partitioned topic in public/default.
    pub async fn topic_stats(&self, topic: &str) -> Value {
        let path = format!(
            "/admin/v2/persistent/public/default/{}/stats",
            crate::short_name(topic)
        );
        let (status, body) = self.admin("GET", &path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.running, Running::Stopped) {
            Running::Process(mut c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            Running::InProcess { stop, thread } => {
                stop.cancel();
                // Bounded: the broker drains with its own deadline; don't hang a failing test.
                for _ in 0..300 {
                    if thread.is_finished() {
                        let _ = thread.join();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Running::Stopped => {}
        }
    }
}
