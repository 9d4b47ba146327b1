//! Shared by `client_cli` and `perf_cli`: the `magnetar` binary of this build as a
//! standalone on free loopback ports with a temp data dir, killed on drop.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `magnetar standalone`.
pub struct Standalone {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

fn healthy(http_port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", http_port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req =
        "GET /admin/v2/brokers/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

impl Standalone {
    /// Starts one and waits (at most 60 s) until its health endpoint answers 200.
    pub fn start() -> Standalone {
        Self::launch(false)
    }

    /// Like [`Standalone::start`], with stdout and stderr pipes whose reading ends are
    /// closed at once (a log consumer that went away).
    pub fn start_with_closed_output() -> Standalone {
        Self::launch(true)
    }

    /// Sends SIGTERM and waits (at most 30 s) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn launch(closed_output: bool) -> Standalone {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let http_port = free_port();
        let log = std::fs::File::create(dir.path().join("magnetar.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_magnetar"))
            .arg("standalone")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--port", &port.to_string()])
            .args(["--http-port", &http_port.to_string()])
            .args(["--bind-address", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(if closed_output {
                Stdio::piped()
            } else {
                log.try_clone().expect("log handle").into()
            })
            .stderr(if closed_output {
                Stdio::piped()
            } else {
                log.into()
            })
            .spawn()
            .expect("spawn magnetar standalone");
        let mut child = child;
        drop(child.stdout.take());
        drop(child.stderr.take());
        let mut s = Standalone {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !healthy(http_port) {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("standalone exited with {st}");
            }
            assert!(Instant::now() < deadline, "standalone not healthy in 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    /// `pulsar://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.port)
    }
}

/// Runs `bin args...`, killing it after `limit`; returns its output.
pub fn run(bin: &str, args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cli");
    let deadline = Instant::now() + limit;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().expect("cli output")
}
