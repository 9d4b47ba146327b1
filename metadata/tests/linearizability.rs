//! Concurrent reads and CAS writes on a 3-node cluster, with the leader killed and restarted
//! mid-run, form a linearizable history (Wing-Gong search) in each of 20 seeded runs.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Cluster;
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

/// Runs one seeded history; returns how many CAS writes were acknowledged.
async fn run_once(c: &mut Cluster, seed: u64) -> usize {
    let key = format!("/lin/{seed}");
    let setup = c.client();
    let v0 = setup
        .put(&key, Bytes::from("0"), Expect::Any, None)
        .await
        .expect("init");
    let history: Arc<Mutex<Vec<Event>>> = Arc::new(Mutex::new(Vec::new()));
    let versions: Arc<Mutex<HashMap<u64, u64>>> = Arc::new(Mutex::new(HashMap::from([(v0.0, 0)])));
    let mut tasks = Vec::new();
    for w in 0..3u64 {
        let client: GrpcMetadataClient = c.client().with_deadline(Duration::from_secs(8));
        let key = key.clone();
        let history = history.clone();
        let versions = versions.clone();
        let mut rng = StdRng::seed_from_u64(seed * 100 + w);
        tasks.push(tokio::spawn(async move {
            let mut last = v0.0;
            for n in 0..6u64 {
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
    // Kill the leader part-way through, then bring it back.
    let mut rng = StdRng::seed_from_u64(seed);
    tokio::time::sleep(Duration::from_millis(rng.gen_range(20..150))).await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    c.kill(leader).await;
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
    h.iter()
        .filter(|e| matches!(e.op, Op::Cas { ok: Some(true), .. }))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_cas_with_leader_kills_are_linearizable_over_20_seeds() {
    let mut c = Cluster::start(3).await;
    let mut acked = 0;
    for seed in 1..=20 {
        acked += run_once(&mut c, seed).await;
    }
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
