//! When the broker owning a topic is killed (-9) while two producers and two Shared
//! consumers (official Python client) run, the other broker takes the topic over once the
//! dead broker's metadata session expires, every client continues through it within 10 s
//! of that expiry, every acknowledged message is consumed, and with deduplication on none
//! is stored twice (a fresh reader from the earliest message sees each exactly once).

mod cluster_support;

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cluster_support::{
    driver, driver_into, http_get, python, read_all, wait_until, BrokerInfo, LocalCluster,
};

/// Messages per producer.
const COUNT: usize = 300;
/// Producer B's payloads start here (producer A's at 0).
const B_FIRST: usize = 100_000;
/// Total acknowledged sends before the owner is killed.
const KILL_AFTER_ACKS: usize = 150;
const TTL_MS: u64 = 2_000;
/// Allowed time from session expiry to a client's first success through the new owner.
const RECOVERY: Duration = Duration::from_secs(10);

/// Per-client progress around the kill.
#[derive(Default)]
struct Progress {
    last: Option<Instant>,
    longest_gap: Duration,
    first_after_kill: Option<Duration>,
    after_kill: usize,
}

impl Progress {
    fn record(&mut self, at: Instant, killed_at: Option<Instant>) {
        if let Some(prev) = self.last {
            self.longest_gap = self.longest_gap.max(at.saturating_duration_since(prev));
        }
        self.last = Some(at);
        if let Some(k) = killed_at.filter(|k| at > *k) {
            self.after_kill += 1;
            self.first_after_kill
                .get_or_insert_with(|| at.saturating_duration_since(k));
        }
    }
}

fn spread_check(cluster: &LocalCluster) {
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
}

#[test]
fn owner_killed_under_two_producers_and_two_shared_consumers_loses_and_duplicates_nothing() {
    let Some(py) = python() else {
        eprintln!("SKIP: no python venv with pulsar-client (run scripts/python-venv.sh)");
        return;
    };
    let cluster = LocalCluster::start(2, 2, TTL_MS);
    cluster.enable_dedup();
    let topic = format!("failover-{}", std::process::id());
    spread_check(&cluster);
    let logs = cluster.dir.path().display().to_string();

    let (tx, rx) = mpsc::channel();
    let consume = |tag: &'static str| {
        driver_into(
            &py,
            &[
                "consume".into(),
                cluster.service_url(),
                topic.clone(),
                "120".into(),
                "150".into(),
            ],
            &[
                ("CLUSTER_DRIVER_SUB_TYPE", "shared"),
                ("CLUSTER_DRIVER_SUBSCRIPTION", "failover-shared"),
                ("CLUSTER_DRIVER_CONSUMER_NAME", tag),
            ],
            tag,
            tx.clone(),
        )
    };
    let _consumers = [consume("c1"), consume("c2")];
    let mut ready = 0;
    while ready < 2 {
        let ev = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("consumers did not subscribe; logs in {logs}"));
        ready += usize::from(ev.line == "READY");
    }

    // Up to 20 sends in flight per producer, so the kill catches unacknowledged messages.
    let produce = |tag: &'static str, name: &str, first: usize| {
        driver_into(
            &py,
            &[
                "produce".into(),
                cluster.service_url(),
                format!("http://127.0.0.1:{}", cluster.brokers[0].http_port),
                topic.clone(),
                COUNT.to_string(),
                "100".into(),
                first.to_string(),
            ],
            &[
                ("CLUSTER_DRIVER_WINDOW", "20"),
                ("CLUSTER_DRIVER_PRODUCER_NAME", name),
            ],
            tag,
            tx.clone(),
        )
    };
    let _producers = [
        produce("p1", "failover-a", 0),
        produce("p2", "failover-b", B_FIRST),
    ];
    drop(tx);

    let mut acked = BTreeSet::new();
    let mut received: HashMap<usize, usize> = HashMap::new();
    let mut progress: HashMap<&'static str, Progress> = HashMap::new();
    let (mut failed, mut done) = (0usize, 0usize);
    let mut owner: Option<BrokerInfo> = None;
    let mut killed_at: Option<Instant> = None;
    let mut all_done_at: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        assert!(
            Instant::now() < deadline,
            "run did not finish; logs in {logs}"
        );
        if let Some(t) = all_done_at {
            if acked.iter().all(|i| received.contains_key(i)) {
                break;
            }
            let missing = acked.iter().filter(|i| !received.contains_key(i)).count();
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{missing} acknowledged messages never reached the Shared consumers; logs in {logs}"
            );
        }
        let Ok(ev) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let mut parts = ev.line.split_whitespace();
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
                progress.entry(ev.tag).or_default().record(ev.at, killed_at);
                if acked.len() == KILL_AFTER_ACKS && killed_at.is_none() {
                    let o = owner.as_ref().expect("OWNER line first");
                    cluster.signal(&o.name, "KILL");
                    killed_at = Some(Instant::now());
                }
            }
            (Some("MSG"), Some(i)) => {
                *received
                    .entry(i.parse().expect("message index"))
                    .or_default() += 1;
                progress.entry(ev.tag).or_default().record(ev.at, killed_at);
            }
            (Some("FAIL"), _) => failed += 1,
            (Some("DONE"), _) => {
                done += 1;
                if done == 2 {
                    all_done_at = Some(Instant::now());
                }
            }
            (Some("END"), _) => panic!("consumer {} stopped early; logs in {logs}", ev.tag),
            _ => {}
        }
    }
    let owner = owner.expect("owner reported");
    assert!(killed_at.is_some(), "the owner was never killed");
    let redelivered: usize = received.values().map(|n| n - 1).sum();
    eprintln!(
        "acked {} of {}, failed sends {failed}, received {} distinct ({redelivered} redeliveries)",
        acked.len(),
        2 * COUNT,
        received.len()
    );
    let ttl = Duration::from_millis(TTL_MS);
    for tag in ["p1", "p2", "c1", "c2"] {
        let p = progress
            .get(tag)
            .unwrap_or_else(|| panic!("{tag} made no progress"));
        eprintln!(
            "{tag}: {} after the kill, first {:?} after it, longest gap {:?}",
            p.after_kill, p.first_after_kill, p.longest_gap
        );
        let first = p
            .first_after_kill
            .unwrap_or_else(|| panic!("{tag} never continued after the kill; logs in {logs}"));
        assert!(
            first < ttl + RECOVERY,
            "{tag} took {first:?} after the kill (session TTL {ttl:?}); logs in {logs}"
        );
        assert!(
            p.longest_gap < ttl + RECOVERY,
            "{tag} stalled for {:?}; logs in {logs}",
            p.longest_gap
        );
    }
    assert_eq!(failed, 0, "sends failed; logs in {logs}");

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
    assert!(
        cluster.log(&survivor.name).contains("bundle acquired"),
        "the survivor never acquired a bundle"
    );

    let dup_sends = http_get(
        survivor.http_port,
        &format!("/admin/v2/persistent/public/default/{topic}/stats"),
    )
    .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
    .and_then(|v| v["msgDuplicates"].as_u64());
    eprintln!("sends the new owner acknowledged as duplicates: {dup_sends:?}");

    // The new owner recovered each producer's last sequence id (snapshot + ledger tail) and
    // reports it to a producer reconnecting under the same name.
    for name in ["failover-a", "failover-b"] {
        let d = driver(
            &py,
            &[
                "last-seq".into(),
                survivor.url(),
                topic.clone(),
                name.into(),
            ],
        );
        // The client logs to stdout too: skip to the driver's line.
        let line = (0..1_000)
            .map_while(|_| d.lines.recv_timeout(Duration::from_secs(60)).ok())
            .find(|l| l.starts_with("LASTSEQ "))
            .unwrap_or_else(|| panic!("no LASTSEQ for {name}; logs in {logs}"));
        assert_eq!(
            line,
            format!("LASTSEQ {}", COUNT - 1),
            "last sequence id of {name} after failover"
        );
    }

    // Storage-level check: a fresh reader sees every acknowledged message exactly once.
    let stored = read_all(&py, &survivor.url(), &topic);
    let lost: Vec<usize> = acked
        .iter()
        .filter(|i| !stored.contains_key(i))
        .copied()
        .collect();
    let mut twice: Vec<usize> = stored
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| *i)
        .collect();
    twice.sort_unstable();
    eprintln!(
        "stored {} distinct, {} stored more than once",
        stored.len(),
        twice.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged messages not stored, first {:?}; logs in {logs}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        twice.is_empty(),
        "{} messages stored twice despite deduplication, first {:?}; logs in {logs}",
        twice.len(),
        &twice[..twice.len().min(10)]
    );
}
