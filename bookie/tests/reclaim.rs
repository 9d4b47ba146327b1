//! Deleting ledgers gives their disk space back: after deletes the bookie's data directory
//! shrinks (WAL, memtables, SST and blob files of the deleted ledgers are dropped), the
//! surviving ledger stays readable, and the `disk_used_bytes` measurement follows.

use std::time::{Duration, Instant};

use bytes::Bytes;
use magnetar_bookie::storage::{AddOp, Storage};

const ENTRY_BYTES: usize = 64 * 1024;
const LEDGERS: u64 = 10;
const ENTRIES_PER_LEDGER: u64 = 48; // 10 x 48 x 64 KiB = 30 MiB

fn entry(ledger: u64, e: u64) -> Bytes {
    let mut v = vec![0u8; ENTRY_BYTES];
    // Incompressible-ish content so on-disk sizes are honest.
    let mut x = ledger.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ e;
    for chunk in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    Bytes::from(v)
}

fn has_blob_file(dir: &std::path::Path) -> std::io::Result<bool> {
    for e in std::fs::read_dir(dir)? {
        if e?.file_name().to_string_lossy().ends_with(".blob") {
            return Ok(true);
        }
    }
    Ok(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_ledgers_shrinks_the_data_directory() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Storage::open(dir.path(), "b")?;
    for l in 1..=LEDGERS {
        let mut futs = Vec::new();
        for e in 0..ENTRIES_PER_LEDGER {
            let data = entry(l, e);
            let op = AddOp {
                ledger: l,
                entry: e,
                crc: crc32c::crc32c(&data),
                data,
                lac: e.checked_sub(1),
                recovery: false,
            };
            futs.push(s.enqueue_add(op).await?);
        }
        for f in futs {
            f.await?;
        }
    }
    let st = s.clone();
    let full = tokio::task::spawn_blocking(move || st.measure_disk_used()).await?;
    let written = LEDGERS * ENTRIES_PER_LEDGER * ENTRY_BYTES as u64;
    assert!(
        full >= written / 2,
        "{full} bytes on disk after writing {written}"
    );

    // Deleting a small extra ledger first makes the reclaimer flush everything into blob
    // files shared by all ledgers: the deleted ledgers' space must come back although the
    // surviving ledger still points into those files.
    let extra = AddOp {
        ledger: 1_000,
        entry: 0,
        data: Bytes::from_static(b"x"),
        crc: crc32c::crc32c(b"x"),
        lac: None,
        recovery: false,
    };
    s.add(extra).await?;
    s.delete(1_000).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_blob_file(dir.path())? {
        assert!(
            Instant::now() < deadline,
            "no blob file after the first reclaim round"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for l in 1..LEDGERS {
        s.delete(l).await?;
    }
    // Reclaiming runs on its own thread; poll the directory size with a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut now = full;
    while Instant::now() < deadline {
        let st = s.clone();
        now = tokio::task::spawn_blocking(move || st.measure_disk_used()).await?;
        if now < full / 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        now < full / 4,
        "data directory went from {full} to only {now} bytes after deleting 9 of 10 ledgers"
    );
    assert_eq!(s.disk_used_bytes(), now);
    // The surviving ledger is intact.
    let got = s
        .read_range(LEDGERS, 0, ENTRIES_PER_LEDGER - 1, usize::MAX)
        .await?;
    assert_eq!(got.len() as u64, ENTRIES_PER_LEDGER);
    assert_eq!(got[5].1, entry(LEDGERS, 5));
    eprintln!("data directory: {full} bytes before deletes, {now} after");
    s.close().await?;
    Ok(())
}
