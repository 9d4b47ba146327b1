//! Benchmark (ignored by default): group commit makes many in-flight adds share one fsync, so
//! entries/s at 256 in flight is far above 1 in flight. Also measures the disk's raw synced
//! 4 KiB write rate in the same run. Run with
//! `cargo test -p magnetar-bookie --test bench_adds -- --ignored --nocapture`.

mod common;

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use magnetar_bookie::{BookKeeper, LedgerConfig, Ledgers};

use common::cluster;

fn bench_secs() -> f64 {
    std::env::var("MAGNETAR_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.5)
}

fn raw_synced_writes_per_sec(dir: &std::path::Path, size: usize) -> anyhow::Result<f64> {
    let path = dir.join(format!("raw-sync-probe-{size}"));
    let mut f = std::fs::File::create(&path)?;
    let buf = vec![0xabu8; size];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) && n < 100_000 {
        f.write_all(&buf)?;
        f.sync_data()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bench_bookie_adds() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let raw = tokio::task::spawn_blocking({
        let p = tmp.path().to_path_buf();
        move || -> anyhow::Result<(f64, f64)> {
            Ok((
                raw_synced_writes_per_sec(&p, 4096)?,
                raw_synced_writes_per_sec(&p, 128 * 1024)?,
            ))
        }
    })
    .await??;
    let (raw, raw_big) = raw;
    println!("raw synced 4KiB writes: {raw:.0}/s");
    println!(
        "raw synced 128KiB writes: {raw_big:.0}/s ({:.1} MB/s)",
        raw_big * 131_072.0 / 1e6
    );
    println!("| bookies | E/Qw/Qa | in flight | entries/s | MB/s |");
    println!("|---|---|---|---|---|");
    let entry = Bytes::from(vec![0x5au8; 1024]);
    let mut rate_1 = 0.0;
    let mut rate_256 = 0.0;
    for (n_bookies, cfg) in [
        (1, LedgerConfig::SINGLE),
        (
            3,
            LedgerConfig {
                ensemble: 3,
                write_quorum: 2,
                ack_quorum: 2,
            },
        ),
    ] {
        let (md, mut bookies) = cluster(n_bookies).await;
        let bk = BookKeeper::new(md);
        for window in [1usize, 16, 256] {
            let w = bk.create(cfg).await?;
            let deadline = Duration::from_secs_f64(bench_secs());
            let batches0: u64 = bookies.iter().map(|b| b.bookie().storage().batches()).sum();
            let start = Instant::now();
            let mut done = 0u64;
            let mut inflight = VecDeque::new();
            while start.elapsed() < deadline && done < 10_000_000 {
                while inflight.len() < window {
                    inflight.push_back(w.add(entry.clone()));
                }
                inflight.pop_front().expect("non-empty").await?;
                done += 1;
            }
            for f in inflight {
                f.await?;
                done += 1;
            }
            let secs = start.elapsed().as_secs_f64();
            let batches: u64 = bookies
                .iter()
                .map(|b| b.bookie().storage().batches())
                .sum::<u64>()
                - batches0;
            eprintln!("  {batches} group commits for {done} entries");
            let rate = done as f64 / secs;
            println!(
                "| {n_bookies} | {}/{}/{} | {window} | {rate:.0} | {:.1} |",
                cfg.ensemble,
                cfg.write_quorum,
                cfg.ack_quorum,
                rate * 1024.0 / 1e6
            );
            if n_bookies == 1 && window == 1 {
                rate_1 = rate;
            }
            if n_bookies == 1 && window == 256 {
                rate_256 = rate;
            }
            w.close().await?;
        }
        for b in &mut bookies {
            b.kill().await;
        }
    }
    println!(
        "group commit speed-up (1 bookie, 256 vs 1 in flight): {:.1}x",
        rate_256 / rate_1
    );
    assert!(rate_256 >= 20.0 * rate_1, "group commit speed-up below 20x");
    Ok(())
}

/// Sustained run (ignored; `MAGNETAR_BENCH_SUSTAINED_SECS`, default 90): 3 bookies,
/// E/Qw/Qa 3/2/2, 256 in flight, 1 KiB entries; prints entries/s per 10 s and the first vs
/// the last 30 s, plus the disk's raw synced 4 KiB write rate measured in the same run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bench_sustained_adds() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("MAGNETAR_BENCH_SUSTAINED_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(90)
        .clamp(60, 600);
    let tmp = tempfile::tempdir()?;
    let p = tmp.path().to_path_buf();
    let raw = tokio::task::spawn_blocking(move || raw_synced_writes_per_sec(&p, 4096)).await??;
    println!("raw synced 4KiB writes (same run, before): {raw:.0}/s");
    let (md, mut bookies) = cluster(3).await;
    let bk = BookKeeper::new(md);
    let w = bk
        .create(LedgerConfig {
            ensemble: 3,
            write_quorum: 2,
            ack_quorum: 2,
        })
        .await?;
    let entry = Bytes::from(vec![0x5au8; 1024]);
    let start = Instant::now();
    let total = Duration::from_secs(secs);
    let mut per_sec = vec![0u64; secs as usize + 1];
    let mut inflight = VecDeque::new();
    let mut done = 0u64;
    while start.elapsed() < total && done < 100_000_000 {
        while inflight.len() < 256 {
            inflight.push_back(w.add(entry.clone()));
        }
        inflight.pop_front().expect("non-empty").await?;
        done += 1;
        let s = (start.elapsed().as_secs() as usize).min(secs as usize);
        per_sec[s] += 1;
    }
    for f in inflight {
        f.await?;
    }
    let batches: u64 = bookies.iter().map(|b| b.bookie().storage().batches()).sum();
    w.close().await?;
    for b in &mut bookies {
        b.kill().await;
    }
    let p = tmp.path().to_path_buf();
    let raw_after =
        tokio::task::spawn_blocking(move || raw_synced_writes_per_sec(&p, 4096)).await??;
    println!("raw synced 4KiB writes (same run, after): {raw_after:.0}/s");
    println!("| seconds | entries/s |");
    println!("|---|---|");
    for (i, c) in per_sec[..secs as usize].chunks(10).enumerate() {
        let rate = c.iter().sum::<u64>() as f64 / c.len() as f64;
        println!("| {}-{} | {rate:.0} |", i * 10, i * 10 + c.len());
    }
    let n = secs as usize;
    let first: u64 = per_sec[..30].iter().sum();
    let last: u64 = per_sec[n - 30..n].iter().sum();
    println!(
        "sustained {secs}s: {done} entries, {:.0}/s overall; first 30 s {:.0}/s, last 30 s {:.0}/s ({:+.1}%); {batches} group commits over 3 bookies",
        done as f64 / secs as f64,
        first as f64 / 30.0,
        last as f64 / 30.0,
        (last as f64 / first as f64 - 1.0) * 100.0
    );
    Ok(())
}
