//! Bookie acceptance with real processes: a bookie of the ensemble SIGKILLed mid-stream loses
//! no acknowledged entry (the writer changes ensemble and goes on; every acked entry reads
//! back in order), auto-recovery in a surviving bookie process restores Qw copies of every
//! entry, and a bookie whose disk fills up fails adds cleanly, keeps every acknowledged entry
//! and registers read-only.

mod bookie_support;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use magnetar_bookie::{BookKeeper, BookieState, EntryId, LedgerConfig, LedgerId, Ledgers};

use bookie_support::{bookies, wait_for, Procs};

const SESSION_TTL_MS: &str = "2000";
const IN_FLIGHT: usize = 128;

fn acceptance_entries() -> u64 {
    std::env::var("MAGNETAR_BOOKIE_ACCEPTANCE_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Entry `i`: its index then filler, 256 bytes.
fn payload(i: u64) -> Bytes {
    let mut v = format!("entry-{i:010}-").into_bytes();
    v.resize(256, b'x');
    Bytes::from(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_bookie_mid_stream_loses_no_acked_entry_and_autorecovery_restores_copies() {
    let total = acceptance_entries();
    let (mut procs, md) = Procs::start_metadata().await;
    // Four bookies: E=3 needs a spare for the ensemble change. Only b0 runs auto-recovery,
    // so the victim (never b0) is not the lock holder.
    for i in 0..4 {
        let id = format!("b{i}");
        let data = procs.dir.path().join(&id);
        let recovery = if i == 0 { "true" } else { "false" };
        procs.start_bookie(
            &id,
            &data,
            &[
                "--session-ttl-ms",
                SESSION_TTL_MS,
                "--auto-recovery",
                recovery,
                "--recovery-grace-secs",
                "1",
            ],
        );
    }
    let up = wait_for(Duration::from_secs(30), || {
        let md = md.clone();
        async move { bookies(&md).await.len() == 4 }
    })
    .await;
    assert!(up, "bookies did not register; logs in {}", procs.log_dir());

    let bk = BookKeeper::new(md.clone());
    let cfg = LedgerConfig {
        ensemble: 3,
        write_quorum: 2,
        ack_quorum: 2,
    };
    let w = bk.create(cfg).await.expect("create ledger");
    let id = w.id();
    let first = bk.ledger_metadata(id).await.expect("metadata");
    let victim = first.ensembles[0]
        .bookies
        .iter()
        .find(|b| *b != "b0")
        .cloned()
        .expect("ensemble has a bookie other than b0");

    let start = Instant::now();
    let kill_at = total / 3;
    let mut killed_at = None;
    let mut acked = 0u64;
    let mut next = 0u64;
    let mut inflight = VecDeque::new();
    while acked < total {
        while inflight.len() < IN_FLIGHT && next < total {
            inflight.push_back(w.add(payload(next)));
            next += 1;
        }
        let e = inflight
            .pop_front()
            .expect("in flight")
            .await
            .unwrap_or_else(|e| panic!("add {acked} failed: {e}; logs in {}", procs.log_dir()));
        assert_eq!(e, EntryId(acked), "acks arrive in order");
        acked += 1;
        if acked == kill_at && killed_at.is_none() {
            procs.kill9(&victim);
            killed_at = Some(Instant::now());
        }
    }
    let write_secs = start.elapsed().as_secs_f64();
    let last = w.close().await.expect("close");
    assert_eq!(last, Some(EntryId(total - 1)));
    let m = bk.ledger_metadata(id).await.expect("metadata");
    assert!(
        m.ensembles.len() >= 2,
        "the writer changed ensemble after the kill: {:?}",
        m.ensembles
    );
    eprintln!(
        "wrote {total} entries in {write_secs:.1}s ({:.0}/s) with {victim} SIGKILLed after {kill_at}; fragments {:?}",
        total as f64 / write_secs,
        m.ensembles
    );

    // Every acknowledged entry reads back, in order, while auto-recovery (inside b0)
    // replaces the victim in every fragment once its registration has expired and the
    // grace period passed.
    let killed_at = killed_at.expect("killed");
    let read_back = async {
        let read_start = Instant::now();
        let r = bk.open(id, false).await.expect("open");
        let mut e = 0u64;
        while e < total {
            let hi = (e + 999).min(total - 1);
            let got = r.read(EntryId(e), EntryId(hi)).await.expect("read back");
            assert_eq!(got.len() as u64, hi - e + 1);
            for (k, d) in got.iter().enumerate() {
                assert_eq!(*d, payload(e + k as u64), "entry {}", e + k as u64);
            }
            e = hi + 1;
        }
        eprintln!(
            "read back {total} entries in order in {:.1}s",
            read_start.elapsed().as_secs_f64()
        );
    };
    let recovery = async {
        let ok = wait_for(Duration::from_secs(90), || {
            let bk = bk.clone();
            let victim = victim.clone();
            async move {
                bk.ledger_metadata(id)
                    .await
                    .is_ok_and(|m| m.ensembles.iter().all(|f| !f.bookies.contains(&victim)))
            }
        })
        .await;
        (ok, killed_at.elapsed().as_secs_f64())
    };
    let ((), (recovered, recovery_secs)) = tokio::join!(read_back, recovery);
    assert!(
        recovered,
        "auto-recovery did not replace {victim}; logs in {}",
        procs.log_dir()
    );
    let m = bk.ledger_metadata(id).await.expect("metadata");
    let verify_start = Instant::now();
    let copies = verify_copies(&bk, id, &m, total).await;
    eprintln!(
        "verified {copies} replicas in {:.1}s",
        verify_start.elapsed().as_secs_f64()
    );
    assert_eq!(copies, total * cfg.write_quorum as u64);
    assert!(procs.alive("b0"), "the auto-recovery bookie kept running");
    let log = std::fs::read_to_string(procs.dir.path().join("b0.log")).unwrap_or_default();
    for line in log.lines().filter(|l| {
        l.contains("auto-recovery") || l.contains("re-replicated") || l.contains("replaced")
    }) {
        eprintln!("b0: {line}");
    }
    assert!(
        log.contains("bookie registration gone; scanning"),
        "auto-recovery reacted to the /bookies/ watch, not only to its slow poll"
    );
    eprintln!(
        "auto-recovery done {recovery_secs:.1}s after the kill (session TTL 2 s, grace 1 s); fragments {:?}",
        m.ensembles
    );
}

/// Reads every entry from every bookie of its write set; returns the replicas checked.
async fn verify_copies(
    bk: &Arc<BookKeeper>,
    id: LedgerId,
    m: &magnetar_bookie::client::meta::LedgerMetadata,
    total: u64,
) -> u64 {
    let checks: Vec<(u64, String)> = (0..total)
        .flat_map(|e| m.write_set(e).into_iter().map(move |b| (e, b)))
        .collect();
    let n = checks.len() as u64;
    let mut results = futures::stream::iter(checks)
        .map(|(e, b)| {
            let bk = bk.clone();
            async move {
                let got = bk.read_from_bookie(&b, id, e).await;
                (e, b, got)
            }
        })
        .buffer_unordered(64);
    while let Some((e, b, got)) = results.next().await {
        match got {
            Ok(d) => assert_eq!(d, payload(e), "entry {e} on {b}"),
            Err(err) => panic!("entry {e} missing on {b}: {err}"),
        }
    }
    n
}

/// A tmpfs of `size` mounted at a temp dir, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_fails_adds_cleanly_keeps_acked_entries_and_turns_readonly() {
    let fs = match Tmpfs::mount("24m") {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("SKIPPED full_disk test: cannot mount a tmpfs ({e}); needs root");
            return;
        }
    };
    let test_start = Instant::now();
    let (mut procs, md) = Procs::start_metadata().await;
    let data = fs.dir.path().join("bookie");
    // Thresholds above 1.0 never trigger: the bookie must notice the real ENOSPC itself.
    procs.start_bookie(
        "full",
        &data,
        &[
            "--session-ttl-ms",
            SESSION_TTL_MS,
            "--auto-recovery",
            "false",
            "--readonly-threshold",
            "0.999",
            "--writable-threshold",
            "0.99",
        ],
    );
    let up = wait_for(Duration::from_secs(30), || {
        let md = md.clone();
        async move { bookies(&md).await.len() == 1 }
    })
    .await;
    assert!(up, "bookie did not register; logs in {}", procs.log_dir());
    eprintln!("cluster up in {:.1}s", test_start.elapsed().as_secs_f64());
    let bk = BookKeeper::new(md.clone());
    let w = bk.create(LedgerConfig::SINGLE).await.expect("create");
    let id = w.id();
    let entry = Bytes::from(vec![0x42u8; 64 * 1024]);
    let start = Instant::now();
    let mut acked = 0u64;
    let mut error = None;
    // 24 MiB of tmpfs holds well under 2,000 entries of 64 KiB.
    for i in 0..2_000u64 {
        assert!(start.elapsed() < Duration::from_secs(60), "bounded");
        match w.add(entry.clone()).await {
            Ok(e) => {
                assert_eq!(e, EntryId(i));
                acked += 1;
            }
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let error = error.expect("the disk filled up before 2,000 entries of 64 KiB");
    eprintln!(
        "disk full after {acked} acked entries of 64 KiB ({:.1}s): writer error: {error}",
        start.elapsed().as_secs_f64()
    );
    assert!(acked > 0, "some entries fit");
    assert!(procs.alive("full"), "the bookie process did not crash");
    let readonly = wait_for(Duration::from_secs(20), || {
        let md = md.clone();
        async move {
            bookies(&md)
                .await
                .iter()
                .any(|(b, r)| b == "full" && r.state == BookieState::Readonly)
        }
    })
    .await;
    eprintln!(
        "registered read-only at {:.1}s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        readonly,
        "bookie registered read-only; logs in {}",
        procs.log_dir()
    );
    for e in 0..acked {
        let d = bk
            .read_from_bookie("full", id, e)
            .await
            .unwrap_or_else(|err| panic!("acked entry {e} unreadable: {err}"));
        assert_eq!(d, entry, "entry {e}");
    }
    eprintln!(
        "acked entries read back at {:.1}s",
        start.elapsed().as_secs_f64()
    );
    assert!(procs.alive("full"), "the bookie process is still up");
    let log = std::fs::read_to_string(procs.dir.path().join("full.log")).unwrap_or_default();
    assert!(
        log.contains("disk full"),
        "the bookie met ENOSPC itself (not only the usage threshold); logs in {}",
        procs.log_dir()
    );
    drop(procs);
    eprintln!(
        "full-disk test done in {:.1}s",
        test_start.elapsed().as_secs_f64()
    );
}
