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
    service_url: String,
    log: std::path::PathBuf,
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
        service_url: format!("pulsar://127.0.0.1:{port}"),
        log: dir.join("standalone.log"),
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

/// Produces `n` messages to `topic` with `magnetar-client`. (An unset policy prints
/// nothing, so those reads are checked with `ok(...)` being empty.)
fn produce(s: &Standalone, topic: &str, n: u32) {
    let out = Command::new(env!("CARGO_BIN_EXE_magnetar-client"))
        .args(["--url", &s.service_url, "produce", topic, "-m", "hello"])
        .args(["-n", &n.to_string()])
        .env("RUST_LOG", "error")
        .output()
        .expect("run magnetar-client");
    assert!(
        out.status.success(),
        "produce failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The metadata node's address, from the standalone's log (`metadata node ready addr=...`).
fn metadata_addr(s: &Standalone) -> Option<String> {
    let log = std::fs::read_to_string(&s.log).ok()?;
    let line = log.lines().find(|l| l.contains("metadata node ready"))?;
    let addr = line.split("addr=").nth(1)?.split_whitespace().next()?;
    Some(addr.trim_matches('"').to_string())
}

/// Every verb `magnetar-admin GROUP --help` lists (every group for `""`).
fn verbs(group: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_magnetar-admin"))
        .args([group, "--help"].into_iter().filter(|a| !a.is_empty()))
        .output()
        .expect("run magnetar-admin --help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_cli_verb_is_exercised_by_a_test() {
    // Calls in this file read `"group", "verb", ...`; compare without whitespace.
    let src: String = include_str!("admin_cli.rs")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut missing = Vec::new();
    let groups = verbs("");
    assert!(groups.contains(&"topics".to_string()), "{groups:?}");
    for group in &groups {
        let vs = verbs(group);
        assert!(!vs.is_empty(), "no verbs listed for {group}");
        for v in vs {
            if !src.contains(&format!("\"{group}\",\"{v}\"")) {
                missing.push(format!("{group} {v}"));
            }
        }
    }
    assert!(missing.is_empty(), "verbs without a test: {missing:?}");
}

#[test]
fn admin_cli_covers_remaining_verbs_and_refuses_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = start(dir.path());

    // Tenants: update, bad names, unknown and duplicate resources.
    ok(&s, &["tenants", "create", "cov"]);
    ok(&s, &["tenants", "update", "cov", "--admin-roles", "a,b"]);
    assert_eq!(
        json(&s, &["tenants", "get", "cov"])["adminRoles"],
        serde_json::json!(["a", "b"])
    );
    assert!(fails(&s, &["tenants", "create", "bad name!"]).contains("400"));
    assert!(fails(&s, &["tenants", "update", "ghost"]).contains("404"));
    assert!(fails(&s, &["tenants", "delete", "ghost"]).contains("404"));
    assert!(fails(&s, &["tenants", "create", "x", "-c", "nosuch"]).contains("412"));
    assert!(fails(&s, &["clusters", "get", "nosuch"]).contains("404"));
    assert!(fails(&s, &["clusters", "create", "nourl"]).contains("--url"));
    assert!(fails(&s, &["clusters", "delete", "nosuch"]).contains("404"));

    // Namespaces: every policy verb, with out-of-range values refused.
    let ns = "cov/ns";
    ok(&s, &["namespaces", "create", ns]);
    assert!(fails(&s, &["namespaces", "create", ns]).contains("409"));
    assert!(fails(&s, &["namespaces", "create", "ghost/ns"]).contains("404"));
    assert!(fails(&s, &["namespaces", "create", "cov/bad name"]).contains("400"));
    assert_eq!(
        json(&s, &["namespaces", "topics", ns]),
        serde_json::json!([])
    );
    ok(
        &s,
        &["namespaces", "set-retention", ns, "-t", "1h", "-s", "1G"],
    );
    ok(&s, &["namespaces", "remove-retention", ns]);
    assert!(ok(&s, &["namespaces", "get-retention", ns])
        .trim()
        .is_empty());
    assert!(fails(
        &s,
        &["namespaces", "set-retention", ns, "-t", "abc", "-s", "1G"]
    )
    .contains("invalid time"));
    ok(&s, &["namespaces", "set-message-ttl", ns, "--ttl", "60"]);
    ok(&s, &["namespaces", "remove-message-ttl", ns]);
    assert!(ok(&s, &["namespaces", "get-message-ttl", ns])
        .trim()
        .is_empty());
    let quota = [
        "namespaces",
        "set-backlog-quota",
        ns,
        "-l",
        "10M",
        "-p",
        "producer_request_hold",
    ];
    ok(&s, &quota);
    ok(&s, &["namespaces", "remove-backlog-quota", ns]);
    assert_eq!(
        json(&s, &["namespaces", "get-backlog-quotas", ns]),
        serde_json::json!({})
    );
    assert!(fails(
        &s,
        &["namespaces", "set-backlog-quota", ns, "-p", "nonsense"]
    )
    .contains("400"));
    ok(
        &s,
        &[
            "namespaces",
            "set-delayed-delivery",
            ns,
            "--enable",
            "-t",
            "2s",
        ],
    );
    assert_eq!(
        json(&s, &["namespaces", "get-delayed-delivery", ns])["tickTime"],
        2000
    );
    assert!(fails(&s, &["namespaces", "set-delayed-delivery", ns]).contains("--enable"));
    ok(
        &s,
        &["namespaces", "set-auto-topic-creation", ns, "--enable"],
    );
    assert_eq!(
        json(&s, &["namespaces", "get-auto-topic-creation", ns])["allowAutoTopicCreation"],
        true
    );
    ok(&s, &["namespaces", "remove-auto-topic-creation", ns]);
    assert!(ok(&s, &["namespaces", "get-auto-topic-creation", ns])
        .trim()
        .is_empty());
    let bad_auto = [
        "namespaces",
        "set-auto-topic-creation",
        ns,
        "--enable",
        "-t",
        "partitioned",
    ];
    assert!(fails(&s, &bad_auto).contains("400"));
    ok(
        &s,
        &[
            "namespaces",
            "set-replication-clusters",
            ns,
            "-c",
            "standalone",
        ],
    );
    assert_eq!(
        json(&s, &["namespaces", "get-replication-clusters", ns]),
        serde_json::json!(["standalone"])
    );
    assert!(fails(
        &s,
        &["namespaces", "set-replication-clusters", ns, "-c", "nosuch"]
    )
    .contains("412"));
    ok(
        &s,
        &[
            "namespaces",
            "set-max-producers-per-topic",
            ns,
            "--max-producers-per-topic",
            "3",
        ],
    );
    assert_eq!(
        json(&s, &["namespaces", "get-max-producers-per-topic", ns]),
        3
    );
    ok(
        &s,
        &[
            "namespaces",
            "set-max-consumers-per-topic",
            ns,
            "--max-consumers-per-topic",
            "4",
        ],
    );
    assert_eq!(
        json(&s, &["namespaces", "get-max-consumers-per-topic", ns]),
        4
    );
    let neg = [
        "namespaces",
        "set-max-consumers-per-topic",
        ns,
        "--max-consumers-per-topic",
        "3000000000",
    ];
    assert!(fails(&s, &neg).contains("400"));
    ok(
        &s,
        &[
            "namespaces",
            "set-publish-rate",
            ns,
            "-m",
            "100",
            "-b",
            "1000",
        ],
    );
    assert!(!ok(&s, &["namespaces", "get-publish-rate", ns])
        .trim()
        .is_empty());
    ok(
        &s,
        &[
            "namespaces",
            "set-dispatch-rate",
            ns,
            "--msg-dispatch-rate",
            "50",
        ],
    );
    assert!(!ok(&s, &["namespaces", "get-dispatch-rate", ns])
        .trim()
        .is_empty());
    let bundles = json(&s, &["namespaces", "bundles", ns]);
    let b = bundles["boundaries"].as_array().expect("boundaries");
    let first = format!(
        "{}_{}",
        b[0].as_str().expect("lo"),
        b[1].as_str().expect("hi")
    );
    // Splitting needs cluster mode (tests/cluster_bundles.rs); standalone refuses it.
    assert!(fails(&s, &["namespaces", "split-bundle", ns, "-b", &first]).contains("cluster mode"));
    assert!(fails(&s, &["namespaces", "split-bundle", ns, "-b", "nonsense"]).contains("412"));

    // Topics: the remaining verbs, on data produced by the client.
    let t = "persistent://cov/ns/t1";
    ok(&s, &["topics", "create", t]);
    assert!(fails(&s, &["topics", "create", t]).contains("409"));
    assert!(fails(&s, &["topics", "create", "persistent://cov/ns"]).contains("invalid topic name"));
    assert!(fails(&s, &["topics", "stats", "persistent://cov/ns/ghost"]).contains("404"));
    assert!(json(&s, &["topics", "list", ns])
        .as_array()
        .expect("list")
        .contains(&serde_json::json!(t)));
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
    assert!(fails(&s, &["topics", "create-subscription", t, "-s", "sub"]).contains("409"));
    produce(&s, t, 3);
    let peeked = ok(&s, &["topics", "peek-messages", t, "-s", "sub", "-n", "2"]);
    assert_eq!(peeked.matches("Message ID:").count(), 2, "{peeked}");
    let last = json(&s, &["topics", "last-message-id", t]);
    let (l, e) = (last["ledgerId"].to_string(), last["entryId"].to_string());
    let msg = ok(&s, &["topics", "get-message-by-id", t, "-l", &l, "-e", &e]);
    assert!(msg.contains("hello"), "{msg}");
    assert!(fails(
        &s,
        &["topics", "get-message-by-id", t, "-l", "999999", "-e", "0"]
    )
    .contains("404"));
    ok(
        &s,
        &["topics", "expire-messages-all-subscriptions", t, "-t", "1h"],
    );
    ok(&s, &["topics", "set-message-ttl", t, "-t", "60"]);
    ok(&s, &["topics", "remove-message-ttl", t]);
    assert!(ok(&s, &["topics", "get-message-ttl", t]).trim().is_empty());
    ok(&s, &["topics", "set-retention", t, "-t", "2h", "-s", "10M"]);
    assert_eq!(
        json(&s, &["topics", "get-retention", t])["retentionTimeInMinutes"],
        120
    );
    ok(&s, &["topics", "remove-retention", t]);
    assert!(ok(&s, &["topics", "get-retention", t]).trim().is_empty());
    ok(&s, &["topics", "set-deduplication", t, "--enable"]);
    assert_eq!(json(&s, &["topics", "get-deduplication", t]), true);
    ok(&s, &["topics", "set-max-producers", t, "-p", "2"]);
    ok(&s, &["topics", "set-max-consumers", t, "-c", "2"]);
    assert!(fails(&s, &["topics", "set-max-producers", t, "-p", "3000000000"]).contains("400"));
    let id = ok(&s, &["topics", "terminate", t]);
    assert!(id.contains("terminated"), "{id}");

    let pt = "persistent://cov/ns/pt";
    ok(&s, &["topics", "create-partitioned-topic", pt, "-p", "2"]);
    assert!(fails(&s, &["topics", "create-partitioned-topic", pt, "-p", "2"]).contains("409"));
    assert!(fails(
        &s,
        &[
            "topics",
            "create-partitioned-topic",
            "persistent://cov/ns/p0",
            "-p",
            "0"
        ]
    )
    .contains("at least 1"));
    assert!(fails(
        &s,
        &[
            "topics",
            "create-partitioned-topic",
            "persistent://cov/ns/huge",
            "-p",
            "1000000"
        ]
    )
    .contains("406"));
    assert!(fails(&s, &["topics", "terminate", pt]).contains("412"));
    produce(&s, pt, 2);
    let ps = json(&s, &["topics", "partitioned-stats", pt, "--per-partition"]);
    assert_eq!(ps["metadata"]["partitions"], 2);
    assert_eq!(ps["msgInCounter"], 2);
    assert_eq!(ps["partitions"].as_object().map(|m| m.len()), Some(2));
    assert!(fails(&s, &["topics", "partitioned-stats", t]).contains("404"));
    // Unloading resets the in-memory counters (as in Pulsar), so it comes after the stats.
    ok(&s, &["topics", "unload", pt]);
    ok(&s, &["topics", "unload", t]);
    assert!(fails(
        &s,
        &["topics", "unload", "persistent://cov/ns/never-created"]
    )
    .contains("404"));
    assert!(fails(&s, &["namespaces", "delete", ns]).contains("412"));

    // Schemas: upload from a file, read back, delete; bad files and types refused.
    let st = "persistent://cov/ns/with-schema";
    let file = dir.path().join("schema.json");
    let def = r#"{"type": "JSON", "schema": "{\"type\":\"record\"}", "properties": {}}"#;
    std::fs::write(&file, def).expect("write schema file");
    let file = file.to_str().expect("utf-8 path");
    ok(&s, &["schemas", "upload", st, "-f", file]);
    assert_eq!(json(&s, &["schemas", "get", st])["type"], "JSON");
    assert!(ok(&s, &["schemas", "get", st, "--all-versions"]).contains("JSON"));
    ok(&s, &["schemas", "delete", st]);
    assert!(fails(&s, &["schemas", "get", st]).contains("404"));
    assert!(!fails(
        &s,
        &["schemas", "upload", st, "-f", "/nonexistent/schema.json"]
    )
    .is_empty());
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"type": "NOPE", "schema": ""}"#).expect("write bad schema");
    let bad = bad.to_str().expect("utf-8 path");
    assert!(fails(&s, &["schemas", "upload", st, "-f", bad]).contains("400"));
    assert!(fails(&s, &["schemas", "get", "persistent://cov/ghost/t"]).contains("404"));

    // Bookies and the metadata service (address from the standalone's log).
    let meta = metadata_addr(&s).expect("metadata address in the standalone log");
    let status = admin(&s.admin_url, &["--metadata", &meta, "metadata", "status"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let under = admin(
        &s.admin_url,
        &[
            "--metadata",
            &meta,
            "bookies",
            "under-replicated",
            "--output",
            "json",
        ],
    );
    assert!(
        under.status.success(),
        "{}",
        String::from_utf8_lossy(&under.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&under.stdout).trim(), "[]");
}
