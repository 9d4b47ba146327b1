//! Range reads of striped ledgers (E > Qw, no bookie holds a contiguous run) return every
//! entry in order, through one strided range read per ensemble position; with a bookie down,
//! a corrupt replica or replicas that missed writes they still return everything (failover
//! to the other replicas, corruption reported), an entry on no replica fails the read, and a
//! bookie serves strided ranges that stop at a corrupt entry.

mod common;

use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use magnetar_bookie::client::meta;
use magnetar_bookie::storage::{AddOp, Storage};
use magnetar_bookie::{BookKeeper, EntryId, LedgerConfig, LedgerError, LedgerId, Ledgers};
use magnetar_metadata::Expect;

use common::{cluster, payload};

const STRIPED: LedgerConfig = LedgerConfig {
    ensemble: 3,
    write_quorum: 2,
    ack_quorum: 2,
};

async fn write_ledger(bk: &BookKeeper, cfg: LedgerConfig, n: u64) -> anyhow::Result<LedgerId> {
    let w = bk.create(cfg).await?;
    let acks: Vec<_> = (0..n).map(|i| w.add(payload(i))).collect();
    for a in acks {
        a.await?;
    }
    w.close().await?;
    Ok(w.id())
}

fn expected(first: u64, last: u64) -> Vec<Bytes> {
    (first..=last).map(payload).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn striped_range_reads_return_every_entry_in_order() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(4).await;
    let bk = BookKeeper::new(md.clone());
    for cfg in [
        STRIPED,
        LedgerConfig {
            ensemble: 4,
            write_quorum: 2,
            ack_quorum: 2,
        },
        LedgerConfig {
            ensemble: 4,
            write_quorum: 3,
            ack_quorum: 2,
        },
        LedgerConfig {
            ensemble: 2,
            write_quorum: 2,
            ack_quorum: 2,
        },
    ] {
        let n = 1500;
        let id = write_ledger(&bk, cfg, n).await?;
        let r = bk.open(id, false).await?;
        assert_eq!(r.last_entry(), Some(EntryId(n - 1)));
        for (first, last) in [
            (0, n - 1),
            (0, 1),
            (1, 2),
            (7, 7),
            (5, 8),
            (100, 1099),
            (1497, 1499),
        ] {
            assert_eq!(
                r.read(EntryId(first), EntryId(last)).await?,
                expected(first, last),
                "{cfg:?} {first}..={last}"
            );
        }
    }

    // An open ledger reads up to its LAC through the writer too.
    let w = bk.create(STRIPED).await?;
    for i in 0..50 {
        w.add(payload(i)).await?;
    }
    assert_eq!(w.read(EntryId(3), EntryId(49)).await?, expected(3, 49));
    for b in &mut bookies {
        b.kill().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn striped_range_read_fails_over_when_a_bookie_is_down() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(3).await;
    let bk = BookKeeper::new(md.clone());
    let n = 1200;
    let id = write_ledger(&bk, STRIPED, n).await?;
    let first_replica_of_0 = bk.ledger_metadata(id).await?.write_set(0)[0].clone();
    let victim = bookies
        .iter()
        .position(|b| b.id == first_replica_of_0)
        .expect("ensemble bookie is ours");
    bookies[victim].kill().await;

    let r = bk.open(id, false).await?;
    assert_eq!(
        r.read(EntryId(0), EntryId(n - 1)).await?,
        expected(0, n - 1)
    );
    assert_eq!(r.read(EntryId(10), EntryId(20)).await?, expected(10, 20));
    // A fresh client (no cached channels) fails over too.
    let fresh = BookKeeper::new(md.clone());
    let r = fresh.open(id, false).await?;
    assert_eq!(
        r.read(EntryId(0), EntryId(n - 1)).await?,
        expected(0, n - 1)
    );

    // With two of three bookies down some entries have no replica left: the read fails.
    let other = (0..3).find(|i| *i != victim).expect("three bookies");
    bookies[other].kill().await;
    assert!(r.read(EntryId(0), EntryId(n - 1)).await.is_err());
    for b in &mut bookies {
        b.kill().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_replica_mid_range_is_read_around_and_reported() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(3).await;
    let bk = BookKeeper::new(md.clone());
    let n = 600;
    let id = write_ledger(&bk, STRIPED, n).await?;
    let m = bk.ledger_metadata(id).await?;
    let holder = m.write_set(250)[0].clone();
    let victim = bookies.iter().find(|b| b.id == holder).expect("ours");
    victim.bookie().storage().corrupt_entry(id.0, 250).await?;

    let before = bk.corrupt_entries_seen();
    let r = bk.open(id, false).await?;
    assert_eq!(
        r.read(EntryId(0), EntryId(n - 1)).await?,
        expected(0, n - 1)
    );
    assert!(bk.corrupt_entries_seen() > before, "corruption reported");

    // The bookie's strided reply stops before the corrupt entry and names it.
    let stride = m.config.ensemble as u64;
    let first = 250 % stride;
    let reply = bk
        .pool()
        .read_range_strided(&holder, id.0, first, n - 1, stride)
        .await?;
    assert_eq!(reply.corrupt, Some(250));
    let ids: Vec<u64> = reply.entries.iter().map(|(e, _)| *e).collect();
    assert_eq!(
        ids,
        (first..250).step_by(stride as usize).collect::<Vec<_>>()
    );
    // Plain range reads keep failing as a whole on corruption.
    assert!(matches!(
        bk.pool().read_range(&holder, id.0, 0, n - 1).await,
        Err(LedgerError::Corrupt { .. })
    ));
    for b in &mut bookies {
        b.kill().await;
    }
    Ok(())
}

/// Replicas that missed writes (a gap in the middle of a run, the tail of a run on its first
/// replica) are read around through the next replica and per-entry failover; an entry on no
/// replica fails the read that covers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_missing_on_replicas_are_read_from_the_others() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(3).await;
    let bk = BookKeeper::new(md.clone());
    let n = 300u64;
    let id = bk.create(STRIPED).await?.id();
    let (mut m, _) = meta::load(md.as_ref(), id.0).await?;
    let storage = |b: &str| {
        bookies
            .iter()
            .find(|t| t.id == b)
            .expect("ensemble bookie is ours")
            .bookie()
            .storage()
            .clone()
    };
    for e in 0..n {
        for (i, b) in m.write_set(e).iter().enumerate() {
            let first_replica = i == 0;
            let lost = e == 150 || (first_replica && (e == 10 || e == 31 || e >= 250));
            if !lost {
                storage(b).add(add(id.0, e, payload(e))).await?;
            }
        }
    }
    m.state = meta::LedgerStatus::Closed;
    m.last_entry = Some(n - 1);
    md.put(&meta::ledger_key(id.0), m.to_bytes(), Expect::Any, None)
        .await?;

    let r = bk.open(id, false).await?;
    assert_eq!(r.read(EntryId(0), EntryId(149)).await?, expected(0, 149));
    assert_eq!(
        r.read(EntryId(151), EntryId(n - 1)).await?,
        expected(151, n - 1)
    );
    assert_eq!(
        r.read(EntryId(245), EntryId(260)).await?,
        expected(245, 260)
    );
    assert!(matches!(
        r.read(EntryId(0), EntryId(n - 1)).await,
        Err(LedgerError::NoSuchEntry { entry: 150, .. })
    ));
    for b in &mut bookies {
        b.kill().await;
    }
    Ok(())
}

fn add(ledger: u64, entry: u64, data: Bytes) -> AddOp {
    AddOp {
        ledger,
        entry,
        crc: crc32c::crc32c(&data),
        data,
        lac: None,
        recovery: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_reads_strided_sparse_and_bounded_ranges() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Storage::open(dir.path(), "b")?;
    // Entries 0..60 except multiples of 7 (a sparse holder), plus a neighbour ledger.
    for e in (0..60u64).filter(|e| e % 7 != 0) {
        s.add(add(1, e, payload(e))).await?;
    }
    s.add(add(2, 0, payload(0))).await?;

    let ids = |r: &magnetar_bookie::storage::StridedRange| {
        r.entries.iter().map(|(e, _, _)| *e).collect::<Vec<_>>()
    };
    let r = s.read_range_strided(1, 2, 59, 3, usize::MAX).await?;
    let want: Vec<u64> = (2..=59).step_by(3).filter(|e| e % 7 != 0).collect();
    assert_eq!(ids(&r), want);
    assert!(r.entries.iter().all(|(e, d, _)| *d == payload(*e)));
    assert_eq!(r.corrupt, None);
    // Stride 0 and 1 read every held entry.
    let all: Vec<u64> = (10..=20).filter(|e| e % 7 != 0).collect();
    assert_eq!(
        ids(&s.read_range_strided(1, 10, 20, 0, usize::MAX).await?),
        all
    );
    assert_eq!(
        ids(&s.read_range_strided(1, 10, 20, 1, usize::MAX).await?),
        all
    );
    // Bounded in bytes, at least one entry.
    assert_eq!(s.read_range_strided(1, 1, 59, 5, 1).await?.entries.len(), 1);
    // A stride past the range, or a range of absent entries, returns nothing.
    assert!(s
        .read_range_strided(1, 14, 14, 9, 1 << 20)
        .await?
        .entries
        .is_empty());
    // A corrupt entry ends the reply; unwanted corrupt entries are not looked at.
    s.corrupt_entry(1, 11).await?;
    let r = s.read_range_strided(1, 2, 59, 3, usize::MAX).await?;
    assert_eq!(ids(&r), vec![2, 5, 8]);
    assert_eq!(r.corrupt, Some(11));
    let r = s.read_range_strided(1, 1, 59, 3, usize::MAX).await?;
    assert_eq!(r.corrupt, None);
    assert!(matches!(
        s.read_range_strided(9, 0, 10, 2, 1 << 20).await,
        Err(LedgerError::NoSuchLedger(9))
    ));
    s.close().await?;
    Ok(())
}

fn bench_entries() -> u64 {
    std::env::var("MAGNETAR_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// The read path the client had before strided reads: per-entry reads (64 concurrent, each
/// from the entry's first replica) when E > Qw; contiguous range reads from one bookie per
/// fragment when E == Qw.
async fn read_old_path(bk: &BookKeeper, id: LedgerId, n: u64) -> anyhow::Result<Vec<Bytes>> {
    let m = bk.ledger_metadata(id).await?;
    if m.config.ensemble == m.config.write_quorum {
        let b = m.write_set(0)[0].clone();
        let mut out = Vec::new();
        let mut from = 0;
        while from < n {
            let run = bk.pool().read_range(&b, id.0, from, n - 1).await?;
            let last = run
                .last()
                .map(|(e, _)| *e)
                .expect("bookie holds every entry");
            out.extend(run.into_iter().map(|(_, d)| d));
            from = last + 1;
        }
        return Ok(out);
    }
    let m = &m;
    futures::stream::iter(0..n)
        .map(|e| async move { bk.read_from_bookie(&m.write_set(e)[0], id, e).await })
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|r| r.map_err(anyhow::Error::from))
        .collect()
}

/// Same run, same ledgers: the old read paths against the strided range read, for a striped
/// ledger (E=3, Qw=2) and a fully replicated one (E=Qw=3). Run with
/// `cargo test -p magnetar-bookie --test striped_reads -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bench_striped_range_read_vs_per_entry() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(3).await;
    let bk = BookKeeper::new(md.clone());
    let n = bench_entries();
    let data = Bytes::from(vec![0x5au8; 1024]);
    let mut striped = None;
    println!("| E/Qw/Qa | path | entries | ms | entries/s |");
    println!("|---|---|---|---|---|");
    for cfg in [
        STRIPED,
        LedgerConfig {
            ensemble: 3,
            write_quorum: 3,
            ack_quorum: 2,
        },
    ] {
        let w = bk.create(cfg).await?;
        let mut acks = Vec::new();
        for _ in 0..n {
            acks.push(w.add(data.clone()));
        }
        for a in acks {
            a.await?;
        }
        w.close().await?;
        let id = w.id();
        let r = bk.open(id, false).await?;
        let mut ratios = Vec::new();
        for round in 0..2 {
            let t = Instant::now();
            let got = read_old_path(&bk, id, n).await?;
            let old = t.elapsed();
            assert_eq!(got.len() as u64, n);

            let t = Instant::now();
            let got = r.read(EntryId(0), EntryId(n - 1)).await?;
            let new = t.elapsed();
            assert_eq!(got.len() as u64, n);
            assert!(got.iter().all(|d| *d == data));
            let q = format!("{}/{}/{}", cfg.ensemble, cfg.write_quorum, cfg.ack_quorum);
            for (path, d) in [("old", old), ("strided", new)] {
                println!(
                    "| {q} | {path} (round {round}) | {n} | {} | {:.0} |",
                    d.as_millis(),
                    n as f64 / d.as_secs_f64()
                );
            }
            ratios.push(old.as_secs_f64() / new.as_secs_f64());
        }
        println!("{cfg:?}: old time / strided time per round: {ratios:.1?}");
        striped.get_or_insert(id);
    }
    // Failover: one bookie of the striped ledger down, read by a client with no channels.
    let id = striped.expect("striped ledger written");
    let down = bk.ledger_metadata(id).await?.write_set(0)[0].clone();
    for b in bookies.iter_mut().filter(|b| b.id == down) {
        b.kill().await;
    }
    let fresh = BookKeeper::new(md.clone());
    let r = fresh.open(id, false).await?;
    let t = Instant::now();
    assert_eq!(r.read(EntryId(0), EntryId(n - 1)).await?.len() as u64, n);
    let d = t.elapsed();
    println!(
        "| 3/2/2 | strided, 1 of 3 bookies down | {n} | {} | {:.0} |",
        d.as_millis(),
        n as f64 / d.as_secs_f64()
    );
    for b in &mut bookies {
        b.kill().await;
    }
    Ok(())
}
