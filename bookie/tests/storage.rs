//! A bookie's RocksDB storage: concurrent adds share synced batches (group commit), a CRC
//! mismatch is rejected on write and detected on read, fencing and LAC survive a reopen,
//! deletes remove a ledger, and LAC long-polls wake when the LAC passes.

mod common;

use std::time::Duration;

use bytes::Bytes;
use magnetar_bookie::storage::{AddOp, Storage};
use magnetar_bookie::{BookKeeper, LedgerError};

fn add(ledger: u64, entry: u64, data: &'static [u8], lac: Option<u64>) -> AddOp {
    AddOp {
        ledger,
        entry,
        data: Bytes::from_static(data),
        crc: crc32c::crc32c(data),
        lac,
        recovery: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_share_group_commits() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Storage::open(dir.path(), "b")?;
    let before = s.batches();
    let mut futs = Vec::new();
    for e in 0..2000u64 {
        futs.push(
            s.enqueue_add(add(1, e, b"payload", e.checked_sub(1)))
                .await?,
        );
    }
    for f in futs {
        f.await?;
    }
    let batches = s.batches() - before;
    assert!(batches < 1000, "2000 adds took {batches} synced batches");
    assert_eq!(s.ledger_state(1).and_then(|st| st.lac), Some(1998));
    let range = s.read_range(1, 10, 19, 1 << 20).await?;
    assert_eq!(
        range.iter().map(|(e, _, _)| *e).collect::<Vec<_>>(),
        (10..20).collect::<Vec<_>>()
    );
    s.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crc_fence_lac_and_delete_behave_and_persist() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = Storage::open(dir.path(), "b")?;
    let mut bad = add(7, 0, b"data", None);
    bad.crc ^= 1;
    assert!(matches!(
        s.add(bad).await,
        Err(LedgerError::InvalidArgument(_))
    ));
    s.add(add(7, 0, b"zero", None)).await?;
    s.add(add(7, 1, b"one", Some(0))).await?;
    assert_eq!(s.fence(7).await?, Some(0));
    assert!(matches!(
        s.add(add(7, 2, b"two", Some(1))).await,
        Err(LedgerError::Fenced(7))
    ));
    let mut rec = add(7, 2, b"two", Some(1));
    rec.recovery = true;
    s.add(rec).await?;
    s.corrupt_entry(7, 1).await?;
    assert!(matches!(
        s.read(7, 1).await,
        Err(LedgerError::Corrupt { .. })
    ));
    s.add(add(8, 0, b"other", None)).await?;
    s.close().await?;
    assert!(matches!(s.read(7, 0).await, Err(LedgerError::Shutdown)));

    let s = Storage::open(dir.path(), "b")?;
    let st = s.ledger_state(7).expect("ledger 7 persisted");
    assert!(st.fenced);
    assert_eq!(st.lac, Some(1));
    assert_eq!(s.read(7, 0).await?.0, Bytes::from_static(b"zero"));
    assert!(matches!(
        s.add(add(7, 3, b"x", None)).await,
        Err(LedgerError::Fenced(7))
    ));
    s.delete(7).await?;
    assert!(matches!(
        s.read(7, 0).await,
        Err(LedgerError::NoSuchLedger(7))
    ));
    assert_eq!(s.read(8, 0).await?.0, Bytes::from_static(b"other"));
    s.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lac_long_poll_wakes_when_lac_passes() -> anyhow::Result<()> {
    let (md, mut bookies) = common::cluster(1).await;
    let bk = BookKeeper::new(md);
    let id = bookies[0].id.clone();
    let storage = bookies[0].bookie().storage().clone();
    storage.add(add(5, 0, b"a", None)).await?;
    let pool = bk.pool().clone();
    let id2 = id.clone();
    let poll = tokio::spawn(async move {
        pool.read_lac(&id2, 5, Some(0), Duration::from_secs(20))
            .await
    });
    storage.add(add(5, 1, b"b", Some(0))).await?;
    storage.add(add(5, 2, b"c", Some(1))).await?;
    let lac = tokio::time::timeout(Duration::from_secs(10), poll).await???;
    assert_eq!(lac, Some(1));
    // Without anything to wait for, it returns at the timeout with the current LAC.
    let lac = bk
        .pool()
        .read_lac(&id, 5, Some(5), Duration::from_millis(100))
        .await?;
    assert_eq!(lac, Some(1));
    bookies[0].kill().await;
    Ok(())
}
