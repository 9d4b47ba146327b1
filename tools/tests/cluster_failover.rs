//! When the broker owning a topic is killed (-9) while a client produces, the other broker
//! takes the topic over once the dead broker's metadata session expires, the client
//! reconnects by itself, and every acknowledged message is consumed afterwards (duplicates
//! are reported, not failed: deduplication state does not survive a broker).

mod cluster_support;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use cluster_support::{driver, driver_with_env, python, wait_until, LocalCluster};

const COUNT: usize = 400;
const KILL_AFTER_ACKS: usize = 100;

#[test]
fn owner_killed_mid_stream_loses_no_acknowledged_message() {
    let Some(py) = python() else {
        eprintln!("SKIP: no python venv with pulsar-client (run scripts/python-venv.sh)");
        return;
    };
    let cluster = LocalCluster::start(2, 2, 2_000);
    let topic = format!("failover-{}", std::process::id());

    // Both brokers agree on the owner of a few topics, and they are spread out.
    let mut owners = BTreeSet::new();
    for i in 0..8 {
        let t = format!("spread-{i}");
        let a = cluster
            .lookup(&cluster.brokers[0], &t)
            .expect("lookup on broker-0");
        let b = cluster
            .lookup(&cluster.brokers[1], &t)
            .expect("lookup on broker-1");
        assert_eq!(a, b, "brokers disagree on the owner of {t}");
        owners.insert(a);
    }
    assert_eq!(
        owners.len(),
        2,
        "8 topics in 4 bundles all went to one broker"
    );

    // Up to 20 sends in flight, so the kill catches several unacknowledged messages.
    let d = driver_with_env(
        &py,
        &[
            "produce".into(),
            cluster.service_url(),
            format!("http://127.0.0.1:{}", cluster.brokers[0].http_port),
            topic.clone(),
            COUNT.to_string(),
            "100".into(),
        ],
        &[("CLUSTER_DRIVER_WINDOW", "20")],
    );
    let mut acked = BTreeSet::new();
    let mut failed = 0usize;
    let mut owner = None;
    let mut killed_at: Option<Instant> = None;
    let mut acked_after_kill = 0usize;
    let mut first_ack_after_kill: Option<Duration> = None;
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        assert!(
            Instant::now() < deadline,
            "producer did not finish; logs in {}",
            cluster.dir.path().display()
        );
        let Ok(line) = d.lines.recv_timeout(Duration::from_secs(60)) else {
            panic!(
                "producer silent for 60 s; logs in {}",
                cluster.dir.path().display()
            );
        };
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("OWNER"), Some(url)) => {
                let b = cluster
                    .brokers
                    .iter()
                    .find(|b| b.url() == url)
                    .unwrap_or_else(|| panic!("owner {url} is not one of ours"));
                owner = Some(b.clone());
            }
            (Some("ACK"), Some(i)) => {
                acked.insert(i.parse::<usize>().expect("ack index"));
                if let Some(t) = killed_at {
                    acked_after_kill += 1;
                    first_ack_after_kill.get_or_insert_with(|| t.elapsed());
                }
                if acked.len() == KILL_AFTER_ACKS && killed_at.is_none() {
                    let o = owner.as_ref().expect("OWNER line first");
                    cluster.signal(&o.name, "KILL");
                    killed_at = Some(Instant::now());
                }
            }
            (Some("FAIL"), _) => failed += 1,
            (Some("DONE"), _) => break,
            (Some("DEADLINE"), _) => {}
            _ => {}
        }
    }
    let owner = owner.expect("owner reported");
    eprintln!(
        "acked {} of {COUNT}, failed sends {failed}, acked after the kill {acked_after_kill}, \
         first ack {first_ack_after_kill:?} after the kill",
        acked.len()
    );
    assert!(killed_at.is_some(), "the owner was never killed");
    assert!(
        acked_after_kill > 0,
        "the producer never recovered after the owner died"
    );

    let survivor = cluster
        .brokers
        .iter()
        .find(|b| b.name != owner.name)
        .expect("two brokers")
        .clone();
    let moved = wait_until(Duration::from_secs(30), || {
        cluster.lookup(&survivor, &topic).as_deref() == Some(survivor.url().as_str())
    });
    assert!(moved, "the survivor does not own {topic}");

    let c = driver(
        &py,
        &[
            "consume".into(),
            survivor.url(),
            topic.clone(),
            "5".into(),
            "90".into(),
        ],
    );
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "consumer did not finish");
        let Ok(line) = c.lines.recv_timeout(Duration::from_secs(100)) else {
            panic!("consumer silent for 100 s");
        };
        if let Some(i) = line.strip_prefix("MSG ") {
            *seen.entry(i.parse().expect("message index")).or_default() += 1;
        } else if line == "END" {
            break;
        }
    }
    let lost: Vec<usize> = acked
        .iter()
        .filter(|i| !seen.contains_key(i))
        .copied()
        .collect();
    let dups: Vec<usize> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| *i)
        .collect();
    eprintln!(
        "consumed {} distinct, {} duplicated",
        seen.len(),
        dups.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, first {:?}; logs in {}",
        lost.len(),
        &lost[..lost.len().min(10)],
        cluster.dir.path().display()
    );
    assert!(
        cluster.log(&survivor.name).contains("bundle acquired"),
        "the survivor never acquired a bundle"
    );
}
