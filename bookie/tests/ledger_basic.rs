//! Acknowledged entries of a quorum-written ledger read back in order, before and after close,
//! and reopening a closed or open ledger reports the right last entry.

mod common;

use bytes::Bytes;
use magnetar_bookie::{BookKeeper, EntryId, LedgerConfig, LedgerError, Ledgers};

use common::{cluster, payload};

const Q322: LedgerConfig = LedgerConfig {
    ensemble: 3,
    write_quorum: 2,
    ack_quorum: 2,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_entries_read_back_in_order_after_close() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(3).await;
    let bk = BookKeeper::new(md.clone());
    let w = bk.create(Q322).await?;
    let futs: Vec<_> = (0..200).map(|i| w.add(payload(i))).collect();
    for (i, f) in futs.into_iter().enumerate() {
        assert_eq!(f.await?, EntryId(i as u64));
    }
    assert_eq!(w.last_add_confirmed(), Some(EntryId(199)));
    let got = w.read(EntryId(0), EntryId(199)).await?;
    assert_eq!(got, (0..200).map(payload).collect::<Vec<_>>());
    assert_eq!(w.close().await?, Some(EntryId(199)));
    assert!(matches!(
        w.add(Bytes::from_static(b"late")).await,
        Err(LedgerError::Closed(_))
    ));

    let r = bk.open(w.id(), false).await?;
    assert_eq!(r.last_entry(), Some(EntryId(199)));
    assert_eq!(
        r.read(EntryId(50), EntryId(60)).await?,
        (50..=60).map(payload).collect::<Vec<_>>()
    );
    let r = bk.open(w.id(), true).await?;
    assert_eq!(r.last_entry(), Some(EntryId(199)));

    bk.delete(w.id()).await?;
    assert!(matches!(
        bk.open(w.id(), false).await,
        Err(LedgerError::NoSuchLedger(_))
    ));
    for b in &mut bookies {
        b.kill().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_bookie_ledger_round_trips_and_recovers_open_ledger() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(1).await;
    let bk = BookKeeper::new(md.clone());
    let w = bk.create(LedgerConfig::SINGLE).await?;
    for i in 0..10 {
        w.add(payload(i)).await?;
    }
    let r = bk.open(w.id(), true).await?;
    assert_eq!(r.last_entry(), Some(EntryId(9)));
    assert_eq!(
        r.read(EntryId(0), EntryId(9)).await?,
        (0..10).map(payload).collect::<Vec<_>>()
    );
    assert!(matches!(
        w.add(payload(10)).await,
        Err(LedgerError::Fenced(_))
    ));
    bookies[0].kill().await;
    Ok(())
}
