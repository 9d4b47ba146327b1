//! Guarantee under test: a managed ledger never loses or reorders an acknowledged entry
//! (across rollovers, crashes and takeovers), a stale owner can never append after a new
//! owner opens the log, cursors redeliver only unacknowledged entries after a restart, and
//! trimming deletes only ledgers every durable cursor has consumed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use magnetar_bookie::mem::MemLedgers;
use magnetar_bookie::{LedgerId, Ledgers};
use magnetar_broker::ml::{
    InitialPosition, ManagedLedger, MlConfig, MlError, MlStatus, Position, RetentionPolicy,
};
use magnetar_metadata::{MemStore, MetadataStore};

fn cfg(max_entries: u64, cache: u64) -> MlConfig {
    MlConfig {
        max_entries_per_ledger: max_entries,
        min_ledger_rollover_time: Duration::ZERO,
        cache_size_bytes: cache,
        cursor_persist_interval: Duration::from_millis(20),
        ..MlConfig::default()
    }
}

struct Env {
    ledgers: Arc<MemLedgers>,
    meta: Arc<MemStore>,
}

impl Env {
    fn new() -> Env {
        Env {
            ledgers: MemLedgers::new(),
            meta: MemStore::new(),
        }
    }

    async fn open(&self, name: &str, cfg: MlConfig) -> Result<Arc<ManagedLedger>, MlError> {
        let ledgers: Arc<dyn Ledgers> = self.ledgers.clone();
        let meta: Arc<dyn MetadataStore> = self.meta.clone();
        ManagedLedger::open(name, ledgers, meta, cfg).await
    }
}

fn msg(i: usize) -> Bytes {
    Bytes::from(format!("m{i}"))
}

async fn add_all(ml: &ManagedLedger, range: std::ops::Range<usize>) -> Vec<Position> {
    let futs: Vec<_> = range.map(|i| ml.add(msg(i))).collect();
    join_all(futs)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("adds succeed")
}

async fn read_all(ml: &ManagedLedger) -> Vec<(Position, Bytes)> {
    ml.read(ml.first_position(), 100_000).await.expect("read")
}

#[tokio::test]
async fn adds_keep_call_order_and_reads_cross_rollovers() {
    for cache in [0, 1 << 20] {
        let env = Env::new();
        let ml = env
            .open("t/ns/persistent/a", cfg(3, cache))
            .await
            .expect("open");
        let positions = add_all(&ml, 0..10).await;
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert_eq!(ml.last_confirmed(), positions.last().copied());
        assert_eq!(ml.entries_count(), 10);
        // 3 + 3 + 3 + 1 entries, the last ledger still open.
        let sizes: Vec<u64> = ml.ledgers_info().iter().map(|l| l.entries).collect();
        assert_eq!(sizes, vec![3, 3, 3, 1]);

        let all = read_all(&ml).await;
        assert_eq!(all.len(), 10);
        for (i, (p, data)) in all.iter().enumerate() {
            assert_eq!(*p, positions[i]);
            assert_eq!(*data, msg(i));
        }
        // Past the end of the first ledger: continues in the next one.
        let first = positions[0].ledger.0;
        let from_end = ml.read(Position::new(first, 3), 2).await.expect("read");
        assert_eq!(
            from_end.iter().map(|e| e.0).collect::<Vec<_>>(),
            positions[3..5]
        );
        // Never beyond the last confirmed entry.
        let tail = ml
            .read(ml.next_position(positions[9]), 10)
            .await
            .expect("read");
        assert!(tail.is_empty());
        assert_eq!(ml.next_position(positions[2]), positions[3]);
        ml.close().await.expect("close");
        assert!(matches!(ml.add(msg(99)).await, Err(MlError::Closed(_))));
    }
}

#[tokio::test]
async fn reopen_after_crash_recovers_entries_and_fences_the_old_owner() {
    let env = Env::new();
    let old = env
        .open("t/ns/persistent/crash", cfg(4, 1 << 20))
        .await
        .expect("open");
    let acked = add_all(&old, 0..6).await;

    // A new owner opens while the old one is still alive (it "lost" ownership).
    let new = env
        .open("t/ns/persistent/crash", cfg(4, 1 << 20))
        .await
        .expect("reopen");
    let all = read_all(&new).await;
    assert_eq!(all.iter().map(|e| e.0).collect::<Vec<_>>(), acked);
    assert_eq!(new.last_confirmed(), acked.last().copied());

    let err = old
        .add(msg(100))
        .await
        .expect_err("stale owner must not append");
    assert!(err.is_fenced(), "{err}");
    assert_eq!(old.status(), MlStatus::Fenced);
    assert!(old.terminated().is_cancelled());
    assert!(old.add(msg(101)).await.is_err());

    let p = new.add(msg(6)).await.expect("new owner appends");
    assert!(p > *acked.last().expect("entries"));

    // Crash of the new owner: dropped without close; a third open sees everything.
    drop(new);
    let third = env
        .open("t/ns/persistent/crash", cfg(4, 0))
        .await
        .expect("reopen");
    let all = read_all(&third).await;
    assert_eq!(all.len(), 7);
    for (i, (_, data)) in all.iter().enumerate() {
        assert_eq!(*data, msg(i));
    }
    // Recovery drops empty ledgers: every ledger but the new one holds entries.
    let infos = third.ledgers_info();
    assert!(infos[..infos.len() - 1].iter().all(|l| l.entries > 0));
}

#[tokio::test]
async fn in_flight_adds_fail_when_a_new_owner_fences_the_ledger() {
    let env = Env::new();
    let old = env
        .open("t/ns/persistent/inflight", cfg(100, 1 << 20))
        .await
        .expect("open");
    add_all(&old, 0..2).await;
    env.ledgers.hold_adds(true);
    let pending: Vec<_> = (2..5).map(|i| old.add(msg(i))).collect();
    assert_eq!(old.last_confirmed().map(|p| p.entry.0), Some(1));
    let new = env
        .open("t/ns/persistent/inflight", cfg(100, 1 << 20))
        .await
        .expect("reopen");
    env.ledgers.hold_adds(false);
    for r in join_all(pending).await {
        assert!(r.expect_err("fenced").is_fenced());
    }
    // The stored-but-unacknowledged entries may survive (at least once), in order.
    let all = read_all(&new).await;
    assert!(all.len() >= 2);
    for (i, (_, data)) in all.iter().enumerate() {
        assert_eq!(*data, msg(i));
    }
}

#[tokio::test]
async fn a_failed_add_stops_the_ledger_and_reopen_recovers_acknowledged_entries() {
    let env = Env::new();
    let ml = env
        .open("t/ns/persistent/fail", cfg(100, 1 << 20))
        .await
        .expect("open");
    add_all(&ml, 0..3).await;
    env.ledgers.fail_adds(true);
    assert!(ml.add(msg(3)).await.is_err());
    assert!(matches!(ml.status(), MlStatus::Errored(_)));
    assert!(ml.add(msg(4)).await.is_err());
    env.ledgers.fail_adds(false);
    drop(ml);
    let ml = env
        .open("t/ns/persistent/fail", cfg(100, 1 << 20))
        .await
        .expect("reopen");
    assert_eq!(read_all(&ml).await.len(), 3);
    add_all(&ml, 3..4).await;
}

#[tokio::test]
async fn cursor_state_with_ack_holes_survives_reopen() {
    let env = Env::new();
    let name = "t/ns/persistent/cursor";
    let ml = env.open(name, cfg(4, 1 << 20)).await.expect("open");
    let c = ml
        .open_cursor("sub/1", InitialPosition::Earliest)
        .await
        .expect("cursor");
    let p = add_all(&ml, 0..10).await;
    assert_eq!(c.backlog(), 10);
    c.ack_individual(&[p[0], p[1], p[2], p[4], p[6], p[7]])
        .expect("ack");
    assert_eq!(c.mark_delete_position(), Some(p[2]));
    assert!(c.is_acked(p[4]) && !c.is_acked(p[3]) && !c.is_acked(p[5]));
    assert_eq!(c.backlog(), 4);
    // Acking the hole at 3 (last entry of the first ledger) moves mark-delete across the
    // ledger boundary over 4.
    c.ack_individual(&[p[3]]).expect("ack");
    assert_eq!(c.mark_delete_position(), Some(p[4]));
    assert_eq!(c.backlog(), 3);
    let ranges = c.acked_ranges();
    let md = c.mark_delete_position();
    assert!(c
        .ack_individual(&[Position::new(p[9].ledger.0, 50)])
        .is_err());

    // Wait for the batched persistence, then "crash".
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let key = format!("/cursors/{name}/sub%2F1");
    loop {
        let stored = env
            .meta
            .get(&key)
            .await
            .expect("get")
            .expect("cursor persisted");
        let v: serde_json::Value = serde_json::from_slice(&stored.value).expect("json");
        let md: Option<Position> =
            serde_json::from_value(v["mark_delete"].clone()).expect("position");
        if md == Some(p[4]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cursor not persisted: {v}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop((c, ml));

    let ml = env.open(name, cfg(4, 1 << 20)).await.expect("reopen");
    let c = ml.cursor("sub/1").expect("cursor survives");
    assert_eq!(c.mark_delete_position(), md);
    assert_eq!(c.acked_ranges(), ranges);
    assert_eq!(c.backlog(), 3);
    let redelivered: Vec<Bytes> = c
        .read_entries(100)
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(redelivered, vec![msg(5), msg(8), msg(9)]);
    assert!(c.read_entries(100).await.expect("read").is_empty());

    // Reset rewinds and clears the individual acks; clear_backlog acks everything.
    c.reset(p[6]).await.expect("reset");
    assert_eq!(c.mark_delete_position(), Some(p[5]));
    assert!(c.acked_ranges().is_empty());
    assert_eq!(c.backlog(), 4);
    c.clear_backlog().await.expect("clear");
    assert_eq!(c.backlog(), 0);
    ml.close().await.expect("close");
    let ml = env.open(name, cfg(4, 1 << 20)).await.expect("reopen");
    let c = ml.cursor("sub/1").expect("cursor");
    assert_eq!(c.mark_delete_position(), Some(p[9]));
    ml.delete_cursor("sub/1").await.expect("delete cursor");
    assert!(ml.cursors().is_empty());
    assert!(env.meta.get(&key).await.expect("get").is_none());
}

#[tokio::test]
async fn trim_deletes_only_fully_consumed_ledgers() {
    let env = Env::new();
    let ml = env
        .open("t/ns/persistent/trim", cfg(2, 1 << 20))
        .await
        .expect("open");
    let a = ml
        .open_cursor("a", InitialPosition::Earliest)
        .await
        .expect("a");
    let b = ml
        .open_cursor("b", InitialPosition::Earliest)
        .await
        .expect("b");
    let p = add_all(&ml, 0..6).await;
    // The full third ledger is rolled over once idle.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ml.ledgers_info().len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rollover of a full ledger"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ids: Vec<LedgerId> = ml.ledgers_info().iter().map(|l| l.id).collect();
    assert_eq!(ids.len(), 4, "three full ledgers and the current one");

    assert!(ml
        .trim(RetentionPolicy::default())
        .await
        .expect("trim")
        .is_empty());
    a.ack_cumulative(p[3]).expect("ack");
    b.ack_cumulative(p[1]).expect("ack");
    let keep_all = RetentionPolicy {
        time_minutes: -1,
        size_mb: -1,
    };
    assert!(ml.trim(keep_all).await.expect("trim").is_empty());
    assert_eq!(
        ml.trim(RetentionPolicy::default()).await.expect("trim"),
        vec![ids[0]]
    );
    assert!(!env.ledgers.exists(ids[0]) && env.ledgers.exists(ids[1]));

    // b consumes the second ledger with individual acks, one entry of the third stays unacked.
    b.ack_individual(&[p[3], p[2], p[5]]).expect("ack");
    assert_eq!(b.mark_delete_position(), Some(p[3]));
    assert_eq!(
        ml.trim(RetentionPolicy::default()).await.expect("trim"),
        vec![ids[1]]
    );
    a.ack_cumulative(p[5]).expect("ack");
    assert!(ml
        .trim(RetentionPolicy::default())
        .await
        .expect("trim")
        .is_empty());
    assert!(env.ledgers.exists(ids[2]) && env.ledgers.exists(ids[3]));

    // Reading from a trimmed position continues at the first stored entry.
    let rest = ml.read(p[0], 10).await.expect("read");
    assert_eq!(rest.iter().map(|e| e.0).collect::<Vec<_>>(), p[4..6]);
    assert_eq!(ml.entries_count(), 2);

    // The trimmed list is what a new owner sees.
    ml.close().await.expect("close");
    let ml = env
        .open("t/ns/persistent/trim", cfg(2, 1 << 20))
        .await
        .expect("reopen");
    assert_eq!(ml.first_position(), p[4]);
    ml.delete().await.expect("delete");
    assert!(env.ledgers.ledger_ids().is_empty());
    assert!(env
        .meta
        .get("/managed-ledgers/t/ns/persistent/trim")
        .await
        .expect("get")
        .is_none());
    assert!(env
        .meta
        .get("/cursors/t/ns/persistent/trim/a")
        .await
        .expect("get")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailing_reader_never_skips_entries_during_concurrent_adds() {
    const N: usize = 600;
    let env = Env::new();
    let ml = env
        .open("t/ns/persistent/tail", cfg(7, 4096))
        .await
        .expect("open");
    let writer = {
        let ml = ml.clone();
        tokio::spawn(async move {
            for chunk in (0..N).collect::<Vec<_>>().chunks(13) {
                add_all(&ml, chunk[0]..chunk[0] + chunk.len()).await;
                tokio::task::yield_now().await;
            }
        })
    };
    let mut pos = ml.first_position();
    let mut seen = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen < N {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reader stalled at {seen}"
        );
        tokio::time::timeout(Duration::from_secs(5), ml.wait_for_entry(pos))
            .await
            .expect("entry arrives")
            .expect("wait");
        let batch = ml.read(pos, 5).await.expect("read");
        assert!(
            !batch.is_empty(),
            "LAC said an entry exists at or after {pos}"
        );
        for (p, data) in batch {
            assert!(p >= pos);
            assert_eq!(data, msg(seen), "entry {seen} at {p}");
            seen += 1;
            pos = ml.next_position(p);
        }
    }
    writer.await.expect("writer");
    assert_eq!(ml.entries_count(), N as u64);
}

#[tokio::test]
async fn stale_owner_cursor_writes_are_rejected_after_takeover() {
    let env = Env::new();
    let name = "t/ns/persistent/stale-cursor";
    let old = env.open(name, cfg(100, 1 << 20)).await.expect("open");
    let oc = old
        .open_cursor("s", InitialPosition::Earliest)
        .await
        .expect("cursor");
    let p = add_all(&old, 0..4).await;
    oc.ack_individual(&[p[0]]).expect("ack");
    oc.persist().await.expect("persist");

    let new = env.open(name, cfg(100, 1 << 20)).await.expect("reopen");
    let nc = new.cursor("s").expect("cursor taken over");
    assert_eq!(nc.mark_delete_position(), Some(p[0]));

    oc.ack_cumulative(p[3]).expect("in-memory ack");
    assert!(oc.persist().await.expect_err("stale write").is_fenced());
    assert_eq!(old.status(), MlStatus::Fenced);

    nc.ack_individual(&[p[1]]).expect("ack");
    nc.persist().await.expect("new owner persists");
    new.close().await.expect("close");
    let again = env.open(name, cfg(100, 1 << 20)).await.expect("reopen");
    let c = again.cursor("s").expect("cursor");
    assert_eq!(c.mark_delete_position(), Some(p[1]));
    assert_eq!(c.backlog(), 2);
}

#[tokio::test]
async fn old_ledgers_roll_over_when_idle_and_readers_do_not_hold_back_trimming() {
    let env = Env::new();
    let mut c = cfg(1000, 1 << 20);
    c.max_ledger_age = Duration::from_millis(30);
    let ml = env.open("t/ns/persistent/age", c).await.expect("open");
    let p = add_all(&ml, 0..3).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ml.ledgers_info().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no time-based rollover"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reader = ml
        .open_non_durable_cursor(InitialPosition::Earliest)
        .expect("reader");
    assert!(ml.cursors().is_empty());
    let got: Vec<Position> = reader
        .read_entries(10)
        .await
        .expect("read")
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(got, p);
    // No durable cursor: with zero retention the consumed ledger goes, readers or not.
    let first = p[0].ledger;
    assert_eq!(
        ml.trim(RetentionPolicy::default()).await.expect("trim"),
        vec![first]
    );
    assert!(!env.ledgers.exists(first));
    let next = ml.add(msg(3)).await.expect("add");
    reader.seek(next);
    let tail = reader.read_entries(10).await.expect("read");
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].1, msg(3));
}

#[tokio::test]
async fn zero_rollover_limits_mean_no_limit() {
    let env = Env::new();
    let mut c = cfg(0, 0);
    c.max_ledger_size_bytes = 0;
    c.max_ledger_age = Duration::ZERO;
    let ml = env.open("t/ns/persistent/nolimit", c).await.expect("open");
    let p = add_all(&ml, 0..20).await;
    assert_eq!(ml.ledgers_info().len(), 1);
    assert!(p.iter().all(|x| x.ledger == p[0].ledger));
    assert_eq!(read_all(&ml).await.len(), 20);
    assert_eq!(
        ml.total_size(),
        (0..20).map(|i| msg(i).len() as u64).sum::<u64>()
    );
}

#[tokio::test]
async fn automatic_trimming_deletes_consumed_ledgers() {
    let env = Env::new();
    let mut c = cfg(2, 1 << 20);
    c.auto_trim = Some(RetentionPolicy::default());
    let ml = env.open("t/ns/persistent/auto", c).await.expect("open");
    let sub = ml
        .open_cursor("s", InitialPosition::Earliest)
        .await
        .expect("cursor");
    let p = add_all(&ml, 0..5).await;
    let first = p[0].ledger;
    sub.ack_individual(&[p[1], p[0]]).expect("ack");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while env.ledgers.exists(first) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumed ledger not trimmed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Unconsumed ledgers stay.
    assert!(env.ledgers.exists(p[2].ledger) && env.ledgers.exists(p[4].ledger));
    assert_eq!(ml.entries_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_sees_every_entry_once_while_adds_and_automatic_trimming_run() {
    const N: usize = 300;
    let env = Env::new();
    let mut c = cfg(5, 2048);
    c.cursor_persist_interval = Duration::from_millis(2);
    c.auto_trim = Some(RetentionPolicy::default());
    let ml = env.open("t/ns/persistent/stress", c).await.expect("open");
    let sub = ml
        .open_cursor("s", InitialPosition::Earliest)
        .await
        .expect("cursor");
    let producer = {
        let ml = ml.clone();
        tokio::spawn(async move {
            for start in (0..N).step_by(7) {
                add_all(&ml, start..(start + 7).min(N)).await;
                tokio::task::yield_now().await;
            }
        })
    };
    let mut seen = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen < N {
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumer stalled at {seen}"
        );
        let batch = sub.read_entries(6).await.expect("read");
        if batch.is_empty() {
            let next = sub.read_position();
            let _ = tokio::time::timeout(Duration::from_millis(200), ml.wait_for_entry(next)).await;
            continue;
        }
        for (_, data) in &batch {
            assert_eq!(*data, msg(seen));
            seen += 1;
        }
        // Acknowledge out of order: newest first.
        let positions: Vec<Position> = batch.iter().rev().map(|e| e.0).collect();
        sub.ack_individual(&positions).expect("ack");
    }
    producer.await.expect("producer");
    assert_eq!(sub.backlog(), 0);
    assert_eq!(sub.mark_delete_position(), ml.last_confirmed());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ml.ledgers_info().len() > 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumed ledgers not trimmed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
