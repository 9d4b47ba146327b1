//! Concurrent reads and CAS writes on a 3-node cluster, with the leader killed and restarted
//! mid-run and (every other run) the leader network-partitioned from both followers for
//! 1-3 s, form a linearizable history (Wing-Gong search) in each of 20 seeded runs.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Cluster;
use magnetar_metadata::raft::network::faults;
use magnetar_metadata::{Expect, GrpcMetadataClient, MetadataError, MetadataStore, Version};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What an operation did, as the client saw it. Values are unique per write, so a version
/// maps to exactly one value.
#[derive(Debug, Clone)]
enum Op {
    /// A read that returned this value.
    Read(u64),
    /// CAS from the value at `expect` to `new`; `ok`: Some(true) applied, Some(false) failed
    /// its precondition, None outcome unknown.
    Cas {
        expect: u64,
        new: u64,
        ok: Option<bool>,
    },
}

#[derive(Debug, Clone)]
struct Event {
    op: Op,
    invoke: Instant,
    /// None: never answered (may take effect at any time after `invoke`).
    ret: Option<Instant>,
}

/// Wing-Gong search for a linearization of `history` on a register starting at `init`.
fn linearizable(history: &[Event], versions: &HashMap<u64, u64>, init: u64) -> bool {
    assert!(history.len() <= 64, "history too long for the bitmask");
    let mut seen = HashSet::new();
    search(history, versions, 0, init, &mut seen)
}

fn search(
    h: &[Event],
    versions: &HashMap<u64, u64>,
    done: u64,
    state: u64,
    seen: &mut HashSet<(u64, u64)>,
) -> bool {
    let pending: Vec<usize> = (0..h.len()).filter(|i| done & (1 << i) == 0).collect();
    // Done when every answered op is linearized; unanswered ones may never have happened.
    if pending.iter().all(|&i| h[i].ret.is_none()) {
        return true;
    }
    if !seen.insert((done, state)) {
        return false;
    }
    let first_ret = pending.iter().filter_map(|&i| h[i].ret).min();
    for &i in &pending {
        if let Some(fr) = first_ret {
            if h[i].invoke > fr {
                continue; // some other op returned before this one began
            }
        }
        let next = match &h[i].op {
            Op::Read(v) => (*v == state).then_some(state),
            Op::Cas { expect, new, ok } => {
                let Some(expected_value) = versions.get(expect).copied() else {
                    continue;
                };
                let holds = expected_value == state;
                match ok {
                    Some(true) => holds.then_some(*new),
                    Some(false) => (!holds).then_some(state),
                    // Unknown: linearize it as applied (if it can be); skipping it is the
                    // other branch, covered by the end condition.
                    None => holds.then_some(*new),
                }
            }
        };
        if let Some(s) = next {
            if search(h, versions, done | (1 << i), s, seen) {
                return true;
            }
        }
    }
    false
}

/// Heals a partitioned node's links when dropped (also when a test assertion panics).
struct HealOnDrop(String);

impl Drop for HealOnDrop {
    fn drop(&mut self) {
        faults::heal(&self.0);
    }
}

/// What one seeded run did.
struct RunStats {
    acked: usize,
    ops: usize,
    partitioned: bool,
    /// Whether the followers elected a new leader while the old one was cut off.
    failover: bool,
}

/// Each worker issues at least this many ops, and keeps going (up to `MAX_OPS`) until the
/// faults are over; 3 workers x 21 ops fit the checker's 64-op bitmask.
const MIN_OPS: u64 = 6;
const MAX_OPS: u64 = 21;

/// Runs one seeded history; with `partition`, the leader is first cut off from both
/// followers for 1-3 s while clients keep going through all nodes.
async fn run_once(c: &mut Cluster, seed: u64, partition: bool) -> RunStats {
    let key = format!("/lin/{seed}");
    let setup = c.client();
    let v0 = setup
        .put(&key, Bytes::from("0"), Expect::Any, None)
        .await
        .expect("init");
    let history: Arc<Mutex<Vec<Event>>> = Arc::new(Mutex::new(Vec::new()));
    let versions: Arc<Mutex<HashMap<u64, u64>>> = Arc::new(Mutex::new(HashMap::from([(v0.0, 0)])));
    let faults_over = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..3u64 {
        let faults_over = faults_over.clone();
        let client: GrpcMetadataClient = c.client().with_deadline(Duration::from_secs(8));
        let key = key.clone();
        let history = history.clone();
        let versions = versions.clone();
        let mut rng = StdRng::seed_from_u64(seed * 100 + w);
        tasks.push(tokio::spawn(async move {
            let mut last = v0.0;
            for n in 0..MAX_OPS {
                if n >= MIN_OPS && faults_over.load(Ordering::Acquire) {
                    break;
                }
                let invoke = Instant::now();
                if rng.gen_bool(0.5) {
                    if let Ok(Some(v)) = client.get(&key).await {
                        let value: u64 = std::str::from_utf8(&v.value)
                            .expect("utf8")
                            .parse()
                            .expect("number");
                        versions.lock().insert(v.version.0, value);
                        last = v.version.0;
                        let ret = Some(Instant::now());
                        history.lock().push(Event {
                            op: Op::Read(value),
                            invoke,
                            ret,
                        });
                    }
                } else {
                    let new = (w + 1) * 1000 + n + 1;
                    let expect = last;
                    let r = client
                        .put(
                            &key,
                            Bytes::from(new.to_string()),
                            Expect::Version(Version(expect)),
                            None,
                        )
                        .await;
                    let (ok, ret) = match r {
                        Ok(v) => {
                            versions.lock().insert(v.0, new);
                            last = v.0;
                            (Some(true), Some(Instant::now()))
                        }
                        Err(MetadataError::BadVersion { .. }) => {
                            (Some(false), Some(Instant::now()))
                        }
                        Err(_) => (None, None),
                    };
                    history.lock().push(Event {
                        op: Op::Cas { expect, new, ok },
                        invoke,
                        ret,
                    });
                }
                tokio::time::sleep(Duration::from_millis(rng.gen_range(5..40))).await;
            }
        }));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    tokio::time::sleep(Duration::from_millis(rng.gen_range(20..150))).await;
    let mut failover = false;
    if partition {
        // Isolate the leader (both directions, Raft traffic only; clients reach every node).
        let leader = c.wait_leader(Duration::from_secs(10)).await;
        let me = c.addrs[leader].to_string();
        let others: Vec<String> = (0..c.addrs.len())
            .filter(|&i| i != leader)
            .map(|i| c.addrs[i].to_string())
            .collect();
        let heal = HealOnDrop(me.clone());
        faults::isolate(&me, &others);
        let until = Instant::now() + Duration::from_millis(rng.gen_range(1000..=3000));
        while Instant::now() < until {
            if !failover && follower_leads(c, leader).await {
                failover = true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(heal);
    }
    // Kill the leader part-way through, then bring it back.
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    c.kill(leader).await;
    faults_over.store(true, Ordering::Release);
    for t in tasks {
        t.await.expect("worker");
    }
    c.restart(leader).await;
    c.wait_leader(Duration::from_secs(10)).await;
    let h = history.lock().clone();
    let versions = versions.lock().clone();
    assert!(
        linearizable(&h, &versions, 0),
        "seed {seed}: history is not linearizable: {h:#?}"
    );
    RunStats {
        acked: h
            .iter()
            .filter(|e| matches!(e.op, Op::Cas { ok: Some(true), .. }))
            .count(),
        ops: h.len(),
        partitioned: partition,
        failover,
    }
}

/// Whether a node other than `old` currently says it is the leader.
async fn follower_leads(c: &Cluster, old: usize) -> bool {
    for (i, addr) in c.addrs.iter().enumerate() {
        if i == old {
            continue;
        }
        let client = GrpcMetadataClient::new(vec![addr.to_string()])
            .with_deadline(Duration::from_millis(300));
        if let Ok(st) = client.status().await {
            if st.leader_id != 0 && st.node_id == st.leader_id {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_cas_with_leader_kills_and_partitions_are_linearizable_over_20_seeds() {
    let started = Instant::now();
    let mut c = Cluster::start(3).await;
    let (mut acked, mut ops, mut partitions, mut failovers) = (0, 0, 0, 0);
    for seed in 1..=20 {
        let s = run_once(&mut c, seed, seed % 2 == 0).await;
        acked += s.acked;
        ops += s.ops;
        partitions += usize::from(s.partitioned);
        failovers += usize::from(s.failover);
    }
    eprintln!(
        "linearizability: 20 runs, {ops} ops checked, {acked} CAS acked, \
         {partitions} partitions ({failovers} with a new leader elected meanwhile), \
         {} raft rpcs dropped, {:?}",
        faults::dropped(),
        started.elapsed()
    );
    assert_eq!(
        failovers, partitions,
        "a partitioned leader was not replaced: the fault did not bite"
    );
    assert!(
        acked >= 20,
        "too few successful CAS writes to mean anything: {acked}"
    );
    c.shutdown().await;
}

#[test]
fn checker_rejects_a_stale_read() {
    let t0 = Instant::now();
    let t = |ms| t0 + Duration::from_millis(ms);
    let versions = HashMap::from([(1, 0), (2, 5)]);
    let h = vec![
        Event {
            op: Op::Cas {
                expect: 1,
                new: 5,
                ok: Some(true),
            },
            invoke: t(0),
            ret: Some(t(10)),
        },
        Event {
            op: Op::Read(0),
            invoke: t(20),
            ret: Some(t(30)),
        },
    ];
    assert!(!linearizable(&h, &versions, 0));
    let h2 = vec![
        Event {
            op: Op::Cas {
                expect: 1,
                new: 5,
                ok: None,
            },
            invoke: t(0),
            ret: None,
        },
        Event {
            op: Op::Read(0),
            invoke: t(20),
            ret: Some(t(30)),
        },
        Event {
            op: Op::Read(5),
            invoke: t(40),
            ret: Some(t(50)),
        },
    ];
    assert!(linearizable(&h2, &versions, 0));
}
