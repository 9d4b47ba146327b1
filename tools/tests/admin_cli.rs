//! `magnetar-admin` drives a real `magnetar standalone` over the REST API like pulsar-admin:
//! commands succeed with pretty JSON output, write-then-read round-trips, and failures print
//! the broker's reason and exit non-zero.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

struct Standalone {
    child: Child,
    admin_url: String,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn admin(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_magnetar-admin"))
        .arg("--admin-url")
        .arg(url)
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run magnetar-admin")
}

fn start(dir: &Path) -> Standalone {
    let port = free_port();
    let mut http_port = free_port();
    while http_port == port {
        http_port = free_port();
    }
    let log = std::fs::File::create(dir.join("standalone.log")).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_magnetar"))
        .args(["standalone", "--bind-address", "127.0.0.1"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--port",
            &port.to_string(),
            "--http-port",
            &http_port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start magnetar standalone");
    let s = Standalone {
        child,
        admin_url: format!("http://127.0.0.1:{http_port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = admin(&s.admin_url, &["clusters", "list"]);
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("standalone") {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "standalone never answered: {}",
            std::fs::read_to_string(dir.join("standalone.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs a command that must succeed; returns stdout.
fn ok(s: &Standalone, args: &[&str]) -> String {
    let out = admin(&s.admin_url, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(s: &Standalone, args: &[&str]) -> Value {
    let out = ok(s, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed non-JSON {out:?}: {e}"))
}

/// Runs a command that must fail; returns stderr.
fn fails(s: &Standalone, args: &[&str]) -> String {
    let out = admin(&s.admin_url, args);
    assert!(!out.status.success(), "{args:?} unexpectedly succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn admin_cli_manages_tenants_namespaces_policies_topics_and_subscriptions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path());

    assert!(json(&s, &["clusters", "list"]).as_array().is_some());
    ok(
        &s,
        &[
            "clusters",
            "create",
            "east",
            "--url",
            "http://e:8080",
            "--broker-url",
            "pulsar://e:6650",
        ],
    );
    assert_eq!(
        json(&s, &["clusters", "get", "east"])["serviceUrl"],
        "http://e:8080"
    );
    ok(
        &s,
        &["clusters", "update", "east", "--url", "http://e2:8080"],
    );
    let c = json(&s, &["clusters", "get", "east"]);
    assert_eq!(c["serviceUrl"], "http://e2:8080");
    assert_eq!(c["brokerServiceUrl"], "pulsar://e:6650");
    ok(&s, &["clusters", "delete", "east"]);

    ok(&s, &["tenants", "create", "acme", "--admin-roles", "ops"]);
    assert!(fails(&s, &["tenants", "create", "acme"]).contains("409"));
    assert!(json(&s, &["tenants", "list"])
        .as_array()
        .expect("list")
        .iter()
        .any(|t| t == "acme"));
    assert_eq!(
        json(&s, &["tenants", "get", "acme"])["adminRoles"][0],
        "ops"
    );
    assert!(fails(&s, &["tenants", "get", "ghost"]).contains("does not exist"));

    ok(&s, &["namespaces", "create", "acme/ns"]);
    assert_eq!(
        json(&s, &["namespaces", "list", "acme"]),
        serde_json::json!(["acme/ns"])
    );
    ok(
        &s,
        &[
            "namespaces",
            "set-retention",
            "acme/ns",
            "--time",
            "1h",
            "--size",
            "1G",
        ],
    );
    let r = json(&s, &["namespaces", "get-retention", "acme/ns"]);
    assert_eq!(r["retentionTimeInMinutes"], 60);
    assert_eq!(r["retentionSizeInMB"], 1024);
    ok(
        &s,
        &["namespaces", "set-message-ttl", "acme/ns", "--ttl", "1h"],
    );
    assert_eq!(
        json(&s, &["namespaces", "get-message-ttl", "acme/ns"]),
        3600
    );
    ok(
        &s,
        &[
            "namespaces",
            "set-backlog-quota",
            "acme/ns",
            "-l",
            "10M",
            "-p",
            "producer_exception",
        ],
    );
    let q = json(&s, &["namespaces", "get-backlog-quotas", "acme/ns"]);
    assert_eq!(q["destination_storage"]["limitSize"], 10 << 20);
    ok(
        &s,
        &["namespaces", "set-deduplication", "acme/ns", "--enable"],
    );
    assert_eq!(
        json(&s, &["namespaces", "get-deduplication", "acme/ns"]),
        true
    );
    ok(
        &s,
        &[
            "namespaces",
            "set-auto-topic-creation",
            "acme/ns",
            "--disable",
        ],
    );
    ok(
        &s,
        &[
            "namespaces",
            "set-max-producers-per-topic",
            "acme/ns",
            "--max-producers-per-topic",
            "3",
        ],
    );
    let p = json(&s, &["namespaces", "policies", "acme/ns"]);
    assert_eq!(p["max_producers_per_topic"], 3);
    assert_eq!(
        p["autoTopicCreationOverride"]["allowAutoTopicCreation"],
        false
    );
    assert!(fails(
        &s,
        &[
            "namespaces",
            "set-backlog-quota",
            "acme/ns",
            "-p",
            "nonsense"
        ]
    )
    .contains("400"));

    let pt = "persistent://acme/ns/parted";
    ok(&s, &["topics", "create-partitioned-topic", pt, "-p", "2"]);
    ok(&s, &["topics", "update-partitioned-topic", pt, "-p", "3"]);
    assert_eq!(
        json(&s, &["topics", "get-partitioned-topic-metadata", pt])["partitions"],
        3
    );
    assert!(fails(&s, &["topics", "update-partitioned-topic", pt, "-p", "1"]).contains("409"));
    assert!(json(&s, &["topics", "list-partitioned-topics", "acme/ns"])
        .as_array()
        .expect("list")
        .iter()
        .any(|t| t == pt));

    let t = "persistent://acme/ns/plain";
    ok(&s, &["topics", "create", t]);
    ok(
        &s,
        &[
            "topics",
            "create-subscription",
            t,
            "-s",
            "sub",
            "-m",
            "earliest",
        ],
    );
    assert_eq!(
        json(&s, &["topics", "subscriptions", t]),
        serde_json::json!(["sub"])
    );
    let st = json(&s, &["topics", "stats", t]);
    assert_eq!(st["msgInCounter"], 0);
    assert!(st["subscriptions"]["sub"].is_object(), "{st}");
    assert!(json(&s, &["topics", "stats-internal", t])["ledgers"].is_array());
    ok(&s, &["topics", "skip", t, "-s", "sub", "-n", "1"]);
    ok(&s, &["topics", "clear-backlog", t, "-s", "sub"]);
    ok(&s, &["topics", "reset-cursor", t, "-s", "sub", "-t", "1h"]);
    ok(
        &s,
        &["topics", "expire-messages", t, "-s", "sub", "-t", "10m"],
    );
    ok(&s, &["topics", "set-message-ttl", t, "-t", "60"]);
    assert_eq!(json(&s, &["topics", "get-message-ttl", t]), 60);
    assert!(ok(&s, &["topics", "lookup", t]).starts_with("pulsar://"));
    assert!(fails(&s, &["topics", "skip", t, "-s", "nosuch", "-n", "1"]).contains("404"));

    assert!(fails(&s, &["namespaces", "delete", "acme/ns"]).contains("412"));
    assert!(fails(&s, &["tenants", "delete", "acme"]).contains("409"));
    ok(&s, &["topics", "unsubscribe", t, "-s", "sub"]);
    ok(&s, &["topics", "delete", t]);
    ok(&s, &["topics", "delete-partitioned-topic", pt]);
    ok(&s, &["namespaces", "delete", "acme/ns"]);
    ok(&s, &["tenants", "delete", "acme"]);

    assert_eq!(
        json(&s, &["brokers", "list", "standalone"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(ok(&s, &["brokers", "healthcheck"]).trim(), "ok");
    assert!(json(&s, &["namespaces", "bundles", "public/default"])["boundaries"].is_array());
    ok(&s, &["namespaces", "unload", "public/default"]);
    let bookies = json(&s, &["bookies", "list", "--output", "json"]);
    assert_eq!(bookies.as_array().map(Vec::len), Some(1), "{bookies}");
}
