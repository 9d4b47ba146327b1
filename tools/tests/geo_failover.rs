//! Replicators survive broker failover: when the broker of the local cluster that owns a
//! replicated topic (and runs its replicator) is killed (-9) mid-stream, another broker of
//! the local cluster takes the topic over and resumes replication from the durable cursor
//! `pulsar.repl.{remote}`, so the remote cluster stores every message of the local topic
//! exactly once, in the local topic's order -- also when no client comes back to the topic
//! (the new owner loads it by itself).
//!
//! Local cluster: real processes (metadata, 2 bookies, 2 brokers); remote cluster: a
//! `magnetar standalone`; producer and consumers: the official Python client.

mod cluster_support;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::{
    driver, driver_with_env, free_port, http_get, http_json, python, wait_until, BrokerInfo,
    Driver, LocalCluster, CLUSTER,
};

const REMOTE: &str = "remote";
const COUNT: usize = 600;
const KILL_AFTER_ACKS: usize = 200;
/// Messages the first owner has replicated when it is killed (at least).
const REPLICATED_BEFORE_KILL: u64 = 100;

/// The remote cluster: a `magnetar standalone`, killed on drop.
struct Remote {
    child: Child,
    port: u16,
    http_port: u16,
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Remote {
    fn start(dir: &std::path::Path) -> Remote {
        let (port, http_port) = (free_port(), free_port());
        let log = std::fs::File::create(dir.join("remote.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_magnetar"))
            .arg("standalone")
            .arg("--data-dir")
            .arg(dir.join("remote"))
            .args(["--port", &port.to_string()])
            .args(["--http-port", &http_port.to_string()])
            .args(["--bind-address", "127.0.0.1"])
            .args(["--cluster-name", REMOTE])
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn magnetar standalone");
        let r = Remote {
            child,
            port,
            http_port,
        };
        let up = wait_until(Duration::from_secs(60), || {
            http_get(http_port, "/admin/v2/brokers/health").is_some_and(|(s, _)| s == 200)
        });
        assert!(up, "remote standalone not healthy in 60 s");
        r
    }

    fn url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.port)
    }

    /// `ClusterData` of the remote with `broker_url`.
    fn cluster_data(&self, broker_url: &str) -> String {
        format!(
            r#"{{"serviceUrl":"http://127.0.0.1:{}","brokerServiceUrl":"{broker_url}"}}"#,
            self.http_port
        )
    }

    /// `msgInCounter` of `topic` in public/default: messages stored (duplicates dropped by
    /// deduplication are not counted).
    fn stored(&self, topic: &str) -> Option<u64> {
        let (status, body) = http_get(
            self.http_port,
            &format!("/admin/v2/persistent/public/default/{topic}/stats"),
        )?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200).then(|| v["msgInCounter"].as_u64())?
    }
}

/// Messages the idle test produces.
const IDLE_COUNT: usize = 300;

fn ok(port: u16, method: &str, path: &str, body: &str) {
    let r = http_json(port, method, path, body);
    assert!(
        r.as_ref().is_some_and(|(s, _)| (200..300).contains(s)),
        "{method} {path}: {r:?}"
    );
}

/// The `replication.{REMOTE}` stats of `topic` as served by `broker` (its owner).
fn replication_stats(broker: &BrokerInfo, topic: &str) -> Option<serde_json::Value> {
    let (status, body) = http_get(
        broker.http_port,
        &format!("/admin/v2/persistent/public/default/{topic}/stats"),
    )?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let r = v["replication"][REMOTE].clone();
    (!r.is_null()).then_some(r)
}

/// Every message a fresh subscription on `url` reads from the start, in order.
fn consume_all(py: &std::path::Path, url: String, topic: &str) -> Vec<usize> {
    let c: Driver = driver(
        py,
        &[
            "consume".into(),
            url,
            topic.to_string(),
            "4".into(),
            "60".into(),
        ],
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(75);
    loop {
        assert!(Instant::now() < deadline, "consumer did not finish");
        let Ok(line) = c.lines.recv_timeout(Duration::from_secs(70)) else {
            panic!("consumer silent for 70 s");
        };
        if let Some(i) = line.strip_prefix("MSG ") {
            got.push(i.parse().expect("message index"));
        } else if line == "END" {
            return got;
        }
    }
}

/// The local cluster (metadata, 2 bookies, 2 brokers; public/default replicated to
/// [`REMOTE`]) and the remote standalone (deduplicating public/default). Unless
/// `reachable`, the local cluster is told a wrong `brokerServiceUrl` for the remote.
fn start_clusters(reachable: bool) -> (LocalCluster, Remote) {
    let cluster = LocalCluster::start(2, 2, 2_000);
    let remote = Remote::start(cluster.dir.path());
    // The remote deduplicates public/default (it does not replicate it back), so resent
    // entries are dropped there.
    ok(
        remote.http_port,
        "POST",
        "/admin/v2/namespaces/public/default/deduplication",
        "true",
    );
    // The local cluster knows the remote; public/default is replicated to it.
    let admin = cluster.brokers[0].http_port;
    let url = if reachable {
        remote.url()
    } else {
        format!("pulsar://127.0.0.1:{}", free_port())
    };
    ok(
        admin,
        "PUT",
        &format!("/admin/v2/clusters/{REMOTE}"),
        &remote.cluster_data(&url),
    );
    ok(
        admin,
        "POST",
        "/admin/v2/tenants/public",
        &format!(r#"{{"adminRoles":[],"allowedClusters":["{CLUSTER}","{REMOTE}"]}}"#),
    );
    ok(
        admin,
        "POST",
        "/admin/v2/namespaces/public/default/replication",
        &format!(r#"["{CLUSTER}","{REMOTE}"]"#),
    );
    (cluster, remote)
}

#[test]
fn replicator_resumes_on_the_new_owner_after_kill9() {
    let Some(py) = python() else {
        eprintln!("SKIP: no python venv with pulsar-client (run scripts/python-venv.sh)");
        return;
    };
    let started = Instant::now();
    let (cluster, remote) = start_clusters(true);
    let admin = cluster.brokers[0].http_port;
    let logs = cluster.dir.path().display().to_string();
    let topic = format!("geo-failover-{}", std::process::id());

    // Up to 20 sends in flight; the owner is killed while the replicator is busy.
    let d = driver_with_env(
        &py,
        &[
            "produce".into(),
            cluster.service_url(),
            format!("http://127.0.0.1:{admin}"),
            topic.clone(),
            COUNT.to_string(),
            "60".into(),
        ],
        &[("CLUSTER_DRIVER_WINDOW", "20")],
    );
    let mut acked = BTreeSet::new();
    let mut owner: Option<BrokerInfo> = None;
    let mut replicated_before_kill = 0;
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(75);
    loop {
        assert!(
            Instant::now() < deadline,
            "producer did not finish; logs in {logs}"
        );
        let Ok(line) = d.lines.recv_timeout(Duration::from_secs(60)) else {
            panic!("producer silent for 60 s; logs in {logs}");
        };
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("OWNER"), Some(url)) => {
                let b = cluster.brokers.iter().find(|b| b.url() == url);
                owner = Some(b.unwrap_or_else(|| panic!("owner {url} unknown")).clone());
            }
            (Some("ACK"), Some(i)) => {
                acked.insert(i.parse::<usize>().expect("ack index"));
                if acked.len() == KILL_AFTER_ACKS && !killed {
                    let o = owner.as_ref().expect("OWNER line first");
                    // The replicator on the owner is well under way (production goes on).
                    let mut out = 0;
                    let running = wait_until(Duration::from_secs(20), || {
                        out = replication_stats(o, &topic)
                            .and_then(|r| r["msgOutCounter"].as_u64())
                            .unwrap_or(0);
                        out >= REPLICATED_BEFORE_KILL
                    });
                    assert!(
                        running,
                        "no replication from {} before the kill; logs in {logs}",
                        o.name
                    );
                    replicated_before_kill = out;
                    cluster.signal(&o.name, "KILL");
                    killed = true;
                }
            }
            (Some("DONE"), _) => break,
            _ => {}
        }
    }
    assert!(killed, "the owner was never killed");
    let owner = owner.expect("owner reported");
    let survivor = cluster
        .brokers
        .iter()
        .find(|b| b.name != owner.name)
        .expect("two brokers")
        .clone();
    eprintln!(
        "acked {} of {COUNT}; {replicated_before_kill} replicated by {} before the kill",
        acked.len(),
        owner.name
    );

    // The survivor owns the topic and its replicator drains the backlog.
    let moved = wait_until(Duration::from_secs(30), || {
        cluster.lookup(&survivor, &topic).as_deref() == Some(survivor.url().as_str())
    });
    assert!(moved, "the survivor does not own {topic}; logs in {logs}");
    let mut last = None;
    let drained = wait_until(Duration::from_secs(30), || {
        last = replication_stats(&survivor, &topic);
        last.as_ref().is_some_and(|r| {
            r["connected"] == true
                && r["replicationBacklog"] == 0
                && r["msgOutCounter"].as_u64().unwrap_or(0) > 0
        })
    });
    assert!(
        drained,
        "replication from the survivor did not drain: {last:?}; logs in {logs}"
    );
    // It resumed from the durable cursor rather than from the start: it sent no more than
    // what the first owner had not replicated, give or take the cursor's persistence lag.
    let sent_by_survivor = last
        .as_ref()
        .and_then(|r| r["msgOutCounter"].as_u64())
        .unwrap_or(0);
    eprintln!("{sent_by_survivor} replicated by {}", survivor.name);
    assert!(
        sent_by_survivor <= COUNT as u64 - replicated_before_kill / 2,
        "the survivor replicated {sent_by_survivor} messages: it did not resume after the \
         {replicated_before_kill} the first owner had replicated"
    );
    let resumed = cluster
        .log(&survivor.name)
        .lines()
        .any(|l| l.contains("replicator started") && l.contains(&topic));
    assert!(
        resumed,
        "no replicator started on {}; logs in {logs}",
        survivor.name
    );

    // The remote holds exactly the local topic, in its order.
    let local = consume_all(&py, survivor.url(), &topic);
    let lost: Vec<&usize> = acked.iter().filter(|i| !local.contains(i)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged messages missing locally: {lost:?}"
    );
    let at_remote = consume_all(&py, remote.url(), &topic);
    eprintln!(
        "local topic {} messages ({} distinct), remote {} messages; {:?} in all",
        local.len(),
        local.iter().collect::<BTreeSet<_>>().len(),
        at_remote.len(),
        started.elapsed()
    );
    if at_remote != local {
        let dups = at_remote.len() - at_remote.iter().collect::<BTreeSet<_>>().len();
        let first_diff = local.iter().zip(&at_remote).position(|(a, b)| a != b);
        panic!(
            "remote differs from the local topic: {} vs {} messages, {dups} duplicated, \
             first difference at {first_diff:?}; logs in {logs}",
            at_remote.len(),
            local.len()
        );
    }
}

/// A replication backlog left by a dead owner drains although no client comes back: the
/// broker that takes the bundle over loads the replicated topic by itself.
#[test]
fn backlog_of_a_dead_owner_drains_without_clients() {
    let Some(py) = python() else {
        eprintln!("SKIP: no python venv with pulsar-client (run scripts/python-venv.sh)");
        return;
    };
    let started = Instant::now();
    // The remote is unreachable (wrong URL) until the owner is dead: all is backlog.
    let (cluster, remote) = start_clusters(false);
    let admin = cluster.brokers[0].http_port;
    let logs = cluster.dir.path().display().to_string();
    let topic = format!("geo-idle-{}", std::process::id());

    let d = driver(
        &py,
        &[
            "produce".into(),
            cluster.service_url(),
            format!("http://127.0.0.1:{admin}"),
            topic.clone(),
            IDLE_COUNT.to_string(),
            "60".into(),
        ],
    );
    let mut owner: Option<BrokerInfo> = None;
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "producer did not finish; logs in {logs}"
        );
        let Ok(line) = d.lines.recv_timeout(Duration::from_secs(50)) else {
            panic!("producer silent for 50 s; logs in {logs}");
        };
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("OWNER"), Some(url)) => {
                let b = cluster.brokers.iter().find(|b| b.url() == url);
                owner = Some(b.unwrap_or_else(|| panic!("owner {url} unknown")).clone());
            }
            (Some("ACK"), Some(_)) => acked += 1,
            (Some("DONE"), _) => break,
            _ => {}
        }
    }
    drop(d);
    assert_eq!(acked, IDLE_COUNT, "every message is stored locally");
    let owner = owner.expect("owner reported");
    let mut last = None;
    let pending = wait_until(Duration::from_secs(10), || {
        last = replication_stats(&owner, &topic);
        last.as_ref()
            .is_some_and(|r| r["replicationBacklog"].as_u64().unwrap_or(0) > 0)
    });
    assert!(
        pending,
        "no replication backlog on {}: {last:?}",
        owner.name
    );
    // No client is connected any more; the owner dies with the backlog, then the remote's
    // URL is corrected (on the survivor, which must not look the topic up for a client).
    cluster.signal(&owner.name, "KILL");
    let survivor = cluster
        .brokers
        .iter()
        .find(|b| b.name != owner.name)
        .expect("two brokers")
        .clone();
    ok(
        survivor.http_port,
        "POST",
        &format!("/admin/v2/clusters/{REMOTE}"),
        &remote.cluster_data(&remote.url()),
    );
    let mut stored = None;
    let drained = wait_until(Duration::from_secs(40), || {
        stored = remote.stored(&topic);
        stored == Some(IDLE_COUNT as u64)
    });
    assert!(
        drained,
        "the remote stored {stored:?} of {IDLE_COUNT} messages; logs in {logs}"
    );
    let loaded = cluster
        .log(&survivor.name)
        .lines()
        .any(|l| l.contains("replicated topic loaded") && l.contains(&topic));
    assert!(
        loaded,
        "{} did not load {topic} by itself; logs in {logs}",
        survivor.name
    );
    eprintln!(
        "backlog drained by {}; {:?} in all",
        survivor.name,
        started.elapsed()
    );

    let at_remote = consume_all(&py, remote.url(), &topic);
    assert_eq!(
        at_remote,
        (0..IDLE_COUNT).collect::<Vec<_>>(),
        "remote, in order, once"
    );
    assert!(
        remote.stored(&topic) == Some(IDLE_COUNT as u64),
        "the remote stored more afterwards"
    );
}
