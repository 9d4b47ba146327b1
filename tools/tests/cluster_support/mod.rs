//! A multi-process cluster for tests: real `magnetar` processes (one metadata node, bookies,
//! brokers) on free loopback ports with data in a temp dir, and the Python driver
//! (`tools/tests/python/cluster_driver.py`, official Pulsar client) to produce and consume.
//! Every child is killed when the cluster is dropped, also when a test fails.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Name of the cluster the tests create.
pub const CLUSTER: &str = "test";

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// The venv python with `pulsar` importable, if present.
pub fn python() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let py = PathBuf::from(home).join(".cache/magnetar-venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import pulsar"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

/// Path of the driver script.
pub fn driver_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/cluster_driver.py")
}

/// `GET path` on `127.0.0.1:port`; `(status, body)`.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, "GET", path)
}

/// A bodyless HTTP request.
pub fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    http_json(port, method, path, "")
}

/// One broker process.
#[derive(Debug, Clone)]
pub struct BrokerInfo {
    /// Process name (`broker-N`).
    pub name: String,
    /// Pulsar protocol port.
    pub port: u16,
    /// HTTP port.
    pub http_port: u16,
}

impl BrokerInfo {
    /// `pulsar://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.port)
    }
}

/// What [`LocalCluster::start_spec`] starts.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Metadata nodes (1: single node; more: one Raft cluster).
    pub metadata_nodes: usize,
    /// Bookies (replication 1,1,1 / 2,2,2 / 3,2,2 for 1 / 2 / more).
    pub bookies: usize,
    /// Brokers.
    pub brokers: usize,
    /// Broker session TTL (ms).
    pub ttl_ms: u64,
}

/// The running processes.
pub struct LocalCluster {
    /// Data and logs.
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    procs: Vec<(String, Child)>,
    /// Metadata addresses (comma-separated).
    pub metadata: String,
    /// Metadata nodes: (node id, process name, address).
    pub metadata_nodes: Vec<(u64, String, String)>,
    /// Brokers in start order.
    pub brokers: Vec<BrokerInfo>,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Debugging aid: MAGNETAR_KEEP_CLUSTER_LOGS=DIR keeps copies of the process logs.
        if let Some(keep) = std::env::var_os("MAGNETAR_KEEP_CLUSTER_LOGS") {
            let keep = PathBuf::from(keep);
            let _ = std::fs::create_dir_all(&keep);
            for (name, _) in &self.procs {
                let log = format!("{name}.log");
                let _ = std::fs::copy(self.dir.path().join(&log), keep.join(&log));
            }
        }
    }
}

impl LocalCluster {
    fn spawn(&mut self, name: &str, args: &[String]) {
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
        self.procs.push((name.to_string(), child));
    }

    /// Starts 1 metadata node, `bookies` bookies and `brokers` brokers whose sessions last
    /// `ttl_ms`; returns once every broker is registered.
    pub fn start(bookies: usize, brokers: usize, ttl_ms: u64) -> LocalCluster {
        LocalCluster::start_spec(Spec {
            metadata_nodes: 1,
            bookies,
            brokers,
            ttl_ms,
        })
    }

    /// Starts the processes `spec` describes; returns once every broker is registered.
    /// With one metadata node it is named `metadata`, with more `metadata-{id}` (ids from
    /// 1); bookies are `bookie-{i}` and also use that as their bookie id.
    pub fn start_spec(spec: Spec) -> LocalCluster {
        let Spec {
            metadata_nodes,
            bookies,
            brokers,
            ttl_ms,
        } = spec;
        let dir = tempfile::tempdir().expect("tempdir");
        let meta_addrs: Vec<String> = (0..metadata_nodes.max(1))
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut c = LocalCluster {
            dir,
            bin: PathBuf::from(env!("CARGO_BIN_EXE_magnetar")),
            procs: Vec::new(),
            metadata: meta_addrs.join(","),
            metadata_nodes: Vec::new(),
            brokers: Vec::new(),
        };
        let base = c.dir.path().to_path_buf();
        let d = |s: &str| base.join(s).to_string_lossy().into_owned();
        let members = if meta_addrs.len() > 1 {
            meta_addrs
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{}={a}", i + 1))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            String::new()
        };
        for (i, addr) in meta_addrs.iter().enumerate() {
            let id = i as u64 + 1;
            let name = if meta_addrs.len() > 1 {
                format!("metadata-{id}")
            } else {
                "metadata".to_string()
            };
            let data = d(&name);
            c.spawn(
                &name,
                &sv(&[
                    "metadata",
                    "--node-id",
                    &id.to_string(),
                    "--listen",
                    addr,
                    "--data-dir",
                    &data,
                    "--members",
                    &members,
                ]),
            );
            c.metadata_nodes.push((id, name, addr.clone()));
        }
        let meta = c.metadata.clone();
        let init_ok = wait_until(Duration::from_secs(60), || {
            Command::new(&c.bin)
                .args(sv(&[
                    "initialize-cluster-metadata",
                    "--cluster",
                    CLUSTER,
                    "--metadata",
                    &meta,
                    "--web-service-url",
                    "http://127.0.0.1:8080",
                    "--broker-service-url",
                    "pulsar://127.0.0.1:6650",
                ]))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        assert!(init_ok, "initialize-cluster-metadata failed");
        let replication = match bookies {
            1 => "1,1,1",
            2 => "2,2,2",
            _ => "3,2,2",
        };
        for i in 0..bookies {
            let (port, data) = (free_port(), d(&format!("bookie-{i}")));
            c.spawn(
                &format!("bookie-{i}"),
                &sv(&[
                    "bookie",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--data-dir",
                    &data,
                    "--metadata",
                    &meta,
                    "--bookie-id",
                    &format!("bookie-{i}"),
                    "--auto-recovery",
                    "false",
                ]),
            );
        }
        for i in 0..brokers {
            let b = BrokerInfo {
                name: format!("broker-{i}"),
                port: free_port(),
                http_port: free_port(),
            };
            c.spawn(
                &b.name,
                &sv(&[
                    "broker",
                    "--listen",
                    &format!("127.0.0.1:{}", b.port),
                    "--http-listen",
                    &format!("127.0.0.1:{}", b.http_port),
                    "--advertised-address",
                    "127.0.0.1",
                    "--metadata",
                    &meta,
                    "--cluster",
                    CLUSTER,
                    "--session-ttl-ms",
                    &ttl_ms.to_string(),
                    "--load-report-interval-ms",
                    "500",
                    "--replication",
                    replication,
                ]),
            );
            c.brokers.push(b);
        }
        let http = c.brokers[0].http_port;
        let ok = wait_until(Duration::from_secs(60), || {
            http_get(http, &format!("/admin/v2/brokers/{CLUSTER}"))
                .is_some_and(|(s, body)| s == 200 && body.matches("127.0.0.1").count() == brokers)
        });
        assert!(
            ok,
            "brokers did not register; logs in {}",
            c.dir.path().display()
        );
        c
    }

    /// Comma-separated service URL over every broker.
    pub fn service_url(&self) -> String {
        let hosts: Vec<String> = self
            .brokers
            .iter()
            .map(|b| format!("127.0.0.1:{}", b.port))
            .collect();
        format!("pulsar://{}", hosts.join(","))
    }

    /// Pid of a process.
    pub fn pid(&self, name: &str) -> u32 {
        self.procs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.id())
            .expect("known process")
    }

    /// Sends a signal (`KILL`, `STOP`, `CONT`, `TERM`) to a process.
    pub fn signal(&self, name: &str, sig: &str) {
        let st = Command::new("kill")
            .args([format!("-{sig}"), self.pid(name).to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {name}");
    }

    /// The log of a process.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The broker URL the HTTP lookup on `via` gives for `topic` (in public/default).
    pub fn lookup(&self, via: &BrokerInfo, topic: &str) -> Option<String> {
        let (status, body) = http_get(
            via.http_port,
            &format!("/lookup/v2/topic/persistent/public/default/{topic}"),
        )?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["brokerUrl"].as_str().map(String::from)
    }
}

fn sv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Polls `f` every 100 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// A running driver: its stdout lines arrive on `lines`.
pub struct Driver {
    child: Child,
    /// Output lines.
    pub lines: mpsc::Receiver<String>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the driver with `args`.
pub fn driver(py: &Path, args: &[String]) -> Driver {
    driver_with_env(py, args, &[])
}

/// Starts the driver with `args` and extra environment variables.
pub fn driver_with_env(py: &Path, args: &[String], env: &[(&str, &str)]) -> Driver {
    let mut child = Command::new(py)
        .arg(driver_script())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the python driver");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Driver { child, lines: rx }
}

/// An HTTP request with a JSON body; `(status, body)`.
pub fn http_json(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body))
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

impl LocalCluster {
    /// Enables deduplication on `public/default` through the admin API of broker 0.
    pub fn enable_dedup(&self) {
        let r = http_json(
            self.brokers[0].http_port,
            "POST",
            "/admin/v2/namespaces/public/default/deduplication",
            "true",
        );
        assert!(
            r.as_ref().is_some_and(|(s, _)| (200..300).contains(s)),
            "enabling deduplication failed: {r:?}"
        );
    }

    /// Process name of the metadata Raft leader, as the live nodes report it.
    pub fn metadata_leader(&self) -> Option<String> {
        let client = magnetar_metadata::GrpcMetadataClient::new(
            self.metadata.split(',').map(String::from).collect(),
        )
        .with_deadline(Duration::from_secs(5));
        let st = block_on(client.status()).ok()?;
        self.metadata_nodes
            .iter()
            .find(|(id, _, _)| *id == st.leader_id)
            .map(|(_, name, _)| name.clone())
    }

    /// Bookie ids of the current (last) fragment of the last ledger of `topic` (in
    /// public/default), read from the metadata service.
    pub fn topic_ensemble(&self, topic: &str) -> Option<Vec<String>> {
        use magnetar_metadata::MetadataStore;
        let client = magnetar_metadata::GrpcMetadataClient::new(
            self.metadata.split(',').map(String::from).collect(),
        )
        .with_deadline(Duration::from_secs(5));
        block_on(async {
            let ml = client
                .get(&format!(
                    "/managed-ledgers/public/default/persistent/{topic}"
                ))
                .await
                .ok()??;
            let ml: serde_json::Value = serde_json::from_slice(&ml.value).ok()?;
            let id = ml["ledgers"].as_array()?.last()?["id"].as_u64()?;
            let lm = client
                .get(&magnetar_bookie::client::meta::ledger_key(id))
                .await
                .ok()??;
            let lm: magnetar_bookie::client::meta::LedgerMetadata =
                serde_json::from_slice(&lm.value).ok()?;
            Some(lm.ensembles.last()?.bookies.clone())
        })
    }
}

/// A line from one of several drivers feeding one channel.
#[derive(Debug)]
pub struct Event {
    /// The driver's tag.
    pub tag: &'static str,
    /// The line.
    pub line: String,
    /// When it was read.
    pub at: Instant,
}

/// Starts the driver with `args` and `env`; its lines go to `tx` tagged `tag` (the
/// returned driver's own `lines` stays empty).
pub fn driver_into(
    py: &Path,
    args: &[String],
    env: &[(&str, &str)],
    tag: &'static str,
    tx: mpsc::Sender<Event>,
) -> Driver {
    let mut child = Command::new(py)
        .arg(driver_script())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the python driver");
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let ev = Event {
                tag,
                line,
                at: Instant::now(),
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    let (_, lines) = mpsc::channel();
    Driver { child, lines }
}

/// Reads every stored message of `topic` from the earliest with a fresh reader on
/// `service_url`; payload index -> copies stored.
pub fn read_all(
    py: &Path,
    service_url: &str,
    topic: &str,
) -> std::collections::HashMap<usize, usize> {
    let r = driver(
        py,
        &[
            "read".into(),
            service_url.to_string(),
            topic.to_string(),
            "90".into(),
        ],
    );
    let mut stored = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(100);
    loop {
        assert!(Instant::now() < deadline, "reader did not finish");
        let Ok(line) = r.lines.recv_timeout(Duration::from_secs(60)) else {
            panic!("reader silent for 60 s");
        };
        if let Some(i) = line.strip_prefix("MSG ") {
            *stored.entry(i.parse().expect("message index")).or_default() += 1;
        } else if line == "END" {
            return stored;
        }
    }
}
