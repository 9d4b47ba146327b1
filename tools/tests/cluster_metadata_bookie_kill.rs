//! While the official Python client produces continuously, `kill -9` of the metadata Raft
//! leader (3 metadata nodes) and then of a bookie in the topic's ensemble (4 bookies,
//! E=3, Qw=2, Qa=2) loses no acknowledged message, stores none twice (deduplication on),
//! and never stalls acknowledgements (nor deliveries to a live consumer) for 10 s or more.

mod cluster_support;

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cluster_support::{driver_into, python, read_all, wait_until, LocalCluster, Spec};

/// Messages produced.
const COUNT: usize = 1_500;
/// Acknowledgements before the metadata leader is killed.
const LEADER_KILL_AT: usize = 200;
/// Acknowledgements after a new leader is known before the bookie is killed.
const BOOKIE_KILL_AFTER: usize = 200;
/// Broker session TTL: about the metadata election time, so the leader kill usually also
/// costs the broker its session (it closes its topics, closes the old session and takes
/// its bundle again at once): that path must not stall either.
const TTL_MS: u64 = 2_000;
const MAX_STALL: Duration = Duration::from_secs(10);

#[test]
fn metadata_leader_and_bookie_kills_lose_nothing_and_stall_under_10s() {
    let Some(py) = python() else {
        eprintln!("SKIP: no python venv with pulsar-client (run scripts/python-venv.sh)");
        return;
    };
    let cluster = LocalCluster::start_spec(Spec {
        metadata_nodes: 3,
        bookies: 4,
        brokers: 1,
        ttl_ms: TTL_MS,
    });
    cluster.enable_dedup();
    let logs = cluster.dir.path().display().to_string();
    let topic = format!("md-bookie-kill-{}", std::process::id());

    let (tx, rx) = mpsc::channel();
    // A live consumer too: delivery must not stall either.
    let _consumer = driver_into(
        &py,
        &[
            "consume".into(),
            cluster.service_url(),
            topic.clone(),
            "60".into(),
            "100".into(),
        ],
        &[("CLUSTER_DRIVER_SUB_TYPE", "shared")],
        "c",
        tx.clone(),
    );
    let ready = (0..1_000)
        .map_while(|_| rx.recv_timeout(Duration::from_secs(30)).ok())
        .any(|ev| ev.line == "READY");
    assert!(ready, "the consumer did not subscribe; logs in {logs}");
    let _producer = driver_into(
        &py,
        &[
            "produce".into(),
            cluster.service_url(),
            format!("http://127.0.0.1:{}", cluster.brokers[0].http_port),
            topic.clone(),
            COUNT.to_string(),
            "80".into(),
        ],
        &[
            ("CLUSTER_DRIVER_WINDOW", "10"),
            ("CLUSTER_DRIVER_PRODUCER_NAME", "md-bookie-kill"),
        ],
        "p",
        tx,
    );

    let mut acked = BTreeSet::new();
    let mut failed = 0usize;
    let mut last_ack: Option<Instant> = None;
    let mut longest_gap = Duration::ZERO;
    let mut gap_end_ack = 0usize;
    let mut leader_killed: Option<(String, Instant, usize)> = None;
    let mut new_leader: Option<(String, Duration)> = None;
    let mut bookie_killed: Option<(String, Instant, usize)> = None;
    let mut first_ack_after = [None::<Duration>, None::<Duration>];
    let mut received: HashMap<usize, usize> = HashMap::new();
    let mut last_msg: Option<Instant> = None;
    let mut longest_msg_gap = Duration::ZERO;
    let mut producer_done = false;
    let deadline = Instant::now() + Duration::from_secs(100);
    loop {
        assert!(
            Instant::now() < deadline,
            "run did not finish (producer done: {producer_done}, {} acked not received); \
             logs in {logs}",
            acked.iter().filter(|i| !received.contains_key(i)).count()
        );
        let Ok(ev) = rx.recv_timeout(Duration::from_millis(200)) else {
            // Nothing arrived: look for the new leader meanwhile.
            if let (Some((old, at, _)), None) = (&leader_killed, &new_leader) {
                if let Some(l) = cluster.metadata_leader().filter(|l| l != old) {
                    new_leader = Some((l, at.elapsed()));
                }
            }
            continue;
        };
        let mut parts = ev.line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("ACK"), Some(i)) => {
                acked.insert(i.parse::<usize>().expect("ack index"));
                if let Some(prev) = last_ack {
                    let gap = ev.at.saturating_duration_since(prev);
                    if gap > longest_gap {
                        (longest_gap, gap_end_ack) = (gap, acked.len());
                    }
                }
                last_ack = Some(ev.at);
                for (k, killed) in [&leader_killed, &bookie_killed].into_iter().enumerate() {
                    if let Some((_, at, _)) = killed.as_ref().filter(|(_, at, _)| ev.at > *at) {
                        first_ack_after[k].get_or_insert_with(|| ev.at - *at);
                    }
                }
            }
            (Some("MSG"), Some(i)) => {
                *received
                    .entry(i.parse().expect("message index"))
                    .or_default() += 1;
                if let Some(prev) = last_msg {
                    longest_msg_gap = longest_msg_gap.max(ev.at.saturating_duration_since(prev));
                }
                last_msg = Some(ev.at);
            }
            (Some("FAIL"), _) => failed += 1,
            (Some("DONE"), _) => producer_done = true,
            (Some("END"), _) => panic!("the consumer stopped early; logs in {logs}"),
            _ => {}
        }
        if producer_done && acked.iter().all(|i| received.contains_key(i)) {
            break;
        }
        if leader_killed.is_none() && acked.len() >= LEADER_KILL_AT {
            let leader = cluster
                .metadata_leader()
                .unwrap_or_else(|| panic!("no metadata leader; logs in {logs}"));
            cluster.signal(&leader, "KILL");
            leader_killed = Some((leader, Instant::now(), acked.len()));
        }
        if let (Some((old, at, _)), None) = (&leader_killed, &new_leader) {
            if let Some(l) = cluster.metadata_leader().filter(|l| l != old) {
                new_leader = Some((l, at.elapsed()));
            }
        }
        if let (Some((_, _, n)), Some(_), None) = (&leader_killed, &new_leader, &bookie_killed) {
            if acked.len() >= n + BOOKIE_KILL_AFTER {
                let ensemble = cluster
                    .topic_ensemble(&topic)
                    .unwrap_or_else(|| panic!("no ensemble for {topic}; logs in {logs}"));
                let victim = ensemble[0].clone();
                cluster.signal(&victim, "KILL");
                bookie_killed = Some((victim, Instant::now(), acked.len()));
            }
        }
    }
    let (leader, _, at_leader) = leader_killed.expect("the metadata leader was killed");
    let (bookie, _, at_bookie) = bookie_killed.expect("a bookie was killed");
    eprintln!(
        "acked {} of {COUNT}, failed sends {failed}; killed metadata leader {leader} at ack \
         {at_leader} (new leader {new_leader:?}), bookie {bookie} at ack {at_bookie}",
        acked.len()
    );
    eprintln!(
        "first ack after the leader kill {:?}, after the bookie kill {:?}; longest gap \
         between acks {longest_gap:?} (ending at ack {gap_end_ack})",
        first_ack_after[0], first_ack_after[1]
    );
    assert!(
        acked.len() > at_bookie,
        "no ack after the bookie kill; logs in {logs}"
    );
    eprintln!(
        "consumer received {} distinct ({} redeliveries), longest gap between receipts \
         {longest_msg_gap:?}",
        received.len(),
        received.values().map(|n| n - 1).sum::<usize>()
    );
    assert!(
        longest_gap < MAX_STALL,
        "acks stalled for {longest_gap:?}; logs in {logs}"
    );
    assert!(
        longest_msg_gap < MAX_STALL,
        "delivery stalled for {longest_msg_gap:?}; logs in {logs}"
    );
    assert_eq!(failed, 0, "sends failed; logs in {logs}");
    let moved = wait_until(Duration::from_secs(20), || {
        cluster
            .topic_ensemble(&topic)
            .is_some_and(|e| !e.contains(&bookie))
    });
    assert!(moved, "the ensemble still names the dead bookie {bookie}");

    let stored = read_all(&py, &cluster.service_url(), &topic);
    let lost: Vec<usize> = acked
        .iter()
        .filter(|i| !stored.contains_key(i))
        .copied()
        .collect();
    let twice = stored.values().filter(|n| **n > 1).count();
    eprintln!(
        "stored {} distinct, {twice} stored more than once",
        stored.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, first {:?}; logs in {logs}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert_eq!(twice, 0, "messages stored twice; logs in {logs}");
}
