//! A broker that is frozen (SIGSTOP) while owning a topic loses it once its session
//! expires; the new owner fences the old ledger when it opens the topic, so when the frozen
//! broker resumes (SIGCONT) it cannot append: it stops serving, its client moves to the new
//! owner, and every acknowledged message from either producer is consumed.

mod cluster_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cluster_support::{driver, driver_with_env, python, wait_until, Driver, LocalCluster};

/// Reads driver lines until DONE; returns acked indexes. `on_ack(count)` runs after each ack.
fn collect(
    d: &Driver,
    within: Duration,
    mut on_ack: impl FnMut(usize),
) -> (BTreeSet<usize>, usize) {
    let (mut acked, mut failed) = (BTreeSet::new(), 0);
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let Ok(line) = d.lines.recv_timeout(Duration::from_secs(60)) else {
            break;
        };
        if let Some(i) = line.strip_prefix("ACK ") {
            acked.insert(i.parse::<usize>().expect("ack index"));
            on_ack(acked.len());
        } else if line.starts_with("FAIL ") {
            failed += 1;
        } else if line == "DONE" {
            return (acked, failed);
        }
    }
    panic!("driver did not finish within {within:?}");
}

#[test]
fn frozen_owner_is_fenced_and_gives_up_its_topic() {
    let Some(py) = python() else {
        eprintln!("SKIP: no python venv with pulsar-client (run scripts/python-venv.sh)");
        return;
    };
    let cluster = LocalCluster::start(2, 2, 2_000);
    let topic = format!("zombie-{}", std::process::id());
    let first_http = format!("http://127.0.0.1:{}", cluster.brokers[0].http_port);
    let owner_url = cluster.lookup(&cluster.brokers[0], &topic).expect("lookup");
    let owner = cluster
        .brokers
        .iter()
        .find(|b| b.url() == owner_url)
        .expect("owner")
        .clone();
    let other = cluster
        .brokers
        .iter()
        .find(|b| b.name != owner.name)
        .expect("other")
        .clone();

    // Producer A talks to the owner; freeze the owner mid-stream.
    let a = driver_with_env(
        &py,
        &[
            "produce".into(),
            cluster.service_url(),
            first_http.clone(),
            topic.clone(),
            "200".into(),
            "120".into(),
        ],
        &[
            ("CLUSTER_DRIVER_SEND_TIMEOUT_MS", "5000"),
            ("CLUSTER_DRIVER_PRODUCER_NAME", "zombie-a"),
        ],
    );
    let mut frozen = false;
    let mut thawed_at = None;
    let mut acked_a_after_thaw = 0usize;
    let mut b_acked = BTreeSet::new();
    let (a_acked, a_failed) = collect(&a, Duration::from_secs(180), |n| {
        if thawed_at.is_some() {
            acked_a_after_thaw += 1;
        }
        if n == 50 && !frozen {
            frozen = true;
            cluster.signal(&owner.name, "STOP");
            // The other broker takes the bundle once the frozen one's session expires...
            let moved = wait_until(Duration::from_secs(30), || {
                cluster.lookup(&other, &topic).as_deref() == Some(other.url().as_str())
            });
            assert!(moved, "the other broker did not take the topic over");
            // ...and producer B makes it open the topic, fencing the old ledger.
            let b = driver(
                &py,
                &[
                    "produce".into(),
                    other.url(),
                    format!("http://127.0.0.1:{}", other.http_port),
                    topic.clone(),
                    "50".into(),
                    "60".into(),
                    "1000".into(),
                ],
            );
            let (acked, _) = collect(&b, Duration::from_secs(90), |_| {});
            assert_eq!(acked.len(), 50, "producer B on the new owner failed");
            b_acked = acked;
            cluster.signal(&owner.name, "CONT");
            thawed_at = Some(Instant::now());
        }
    });
    eprintln!(
        "A acked {} (failed {a_failed}, {acked_a_after_thaw} after the thaw), B acked {}",
        a_acked.len(),
        b_acked.len()
    );
    assert!(frozen, "owner never frozen");
    let lost_session = wait_until(Duration::from_secs(20), || {
        cluster.log(&owner.name).contains("metadata session lost")
    });
    assert!(
        lost_session,
        "the thawed broker did not notice its session was gone"
    );
    assert_eq!(
        cluster.lookup(&owner, &topic).as_deref(),
        Some(other.url().as_str()),
        "the thawed broker claims the topic again"
    );
    let zlog = cluster.log(&owner.name);
    let fenced: Vec<&str> = zlog
        .lines()
        .filter(|l| l.to_lowercase().contains("fenc"))
        .take(3)
        .collect();
    eprintln!("zombie log lines about fencing: {fenced:#?}");
    assert!(
        !fenced.is_empty(),
        "the thawed broker never hit the fence; logs in {}",
        cluster.dir.path().display()
    );

    let c = driver(
        &py,
        &[
            "consume".into(),
            other.url(),
            topic.clone(),
            "5".into(),
            "90".into(),
        ],
    );
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let Ok(line) = c.lines.recv_timeout(Duration::from_secs(100)) else {
            break;
        };
        if let Some(i) = line.strip_prefix("MSG ") {
            seen.insert(i.parse::<usize>().expect("index"));
        } else if line == "END" {
            break;
        }
    }
    let lost: Vec<usize> = a_acked
        .iter()
        .chain(b_acked.iter())
        .filter(|i| !seen.contains(i))
        .copied()
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged messages lost: {lost:?}; logs in {}",
        cluster.dir.path().display()
    );
}
