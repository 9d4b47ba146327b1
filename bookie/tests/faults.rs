//! Bad input and local faults give clear errors and never crash or corrupt a bookie: corrupt
//! replicas are read around and reported, oversized entries, unknown ledgers, fenced and
//! closed ledgers and a full disk (injected ENOSPC, or usage above the read-only threshold)
//! are each rejected with their own error.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use magnetar_bookie::registration::list_bookies;
use magnetar_bookie::wire::MAX_ENTRY_BYTES;
use magnetar_bookie::{
    BookKeeper, BookieState, EntryId, LedgerConfig, LedgerError, LedgerId, Ledgers,
};
use magnetar_proto::bookie as pb;

use common::{cluster, payload, start_bookie_with, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_replica_is_read_around_and_reported() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(3).await;
    let bk = BookKeeper::new(md.clone());
    for cfg in [
        LedgerConfig {
            ensemble: 3,
            write_quorum: 2,
            ack_quorum: 2,
        },
        LedgerConfig {
            ensemble: 3,
            write_quorum: 3,
            ack_quorum: 2,
        },
    ] {
        let w = bk.create(cfg).await?;
        for i in 0..20 {
            w.add(payload(i)).await?;
        }
        w.close().await?;
        let m = bk.ledger_metadata(w.id()).await?;
        let first = m.write_set(7)[0].clone();
        let victim = bookies.iter().find(|b| b.id == first).expect("ours");
        victim.bookie().storage().corrupt_entry(w.id().0, 7).await?;
        let before = bk.corrupt_entries_seen();
        let r = bk.open(w.id(), false).await?;
        assert_eq!(r.read(EntryId(7), EntryId(7)).await?, vec![payload(7)]);
        assert_eq!(
            r.read(EntryId(0), EntryId(19)).await?,
            (0..20).map(payload).collect::<Vec<_>>()
        );
        assert!(bk.corrupt_entries_seen() > before, "corruption reported");
        assert!(matches!(
            bk.read_from_bookie(&first, w.id(), 7).await,
            Err(LedgerError::Corrupt { .. })
        ));
    }
    for b in &mut bookies {
        b.kill().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(1).await;
    let bk = BookKeeper::new(md.clone());
    let w = bk.create(LedgerConfig::SINGLE).await?;
    let big = Bytes::from(vec![7u8; MAX_ENTRY_BYTES + 1]);
    assert!(matches!(
        w.add(big.clone()).await,
        Err(LedgerError::TooLarge { .. })
    ));
    assert_eq!(w.add(payload(0)).await?, EntryId(0), "ledger still usable");

    // Raw protocol: oversized entry, fenced ledger.
    let mut c = bk.pool().client(&bookies[0].id).await?;
    let resp = c
        .add_entries(futures::stream::iter(vec![pb::AddBatch {
            adds: vec![pb::AddRequest {
                ledger_id: 999,
                entry_id: 0,
                crc32c: crc32c::crc32c(&big),
                data: big,
                lac: -1,
                recovery: false,
            }],
        }]))
        .await?
        .into_inner();
    let resp: Vec<_> = futures::StreamExt::collect::<Vec<_>>(resp).await;
    assert_eq!(resp.len(), 1);
    assert_eq!(
        resp[0].as_ref().map(|r| r.responses[0].status).ok(),
        Some(pb::Status::TooLarge as i32)
    );
    assert_eq!(bk.pool().fence(&bookies[0].id, w.id().0).await?, None);
    assert!(matches!(
        w.add(payload(1)).await,
        Err(LedgerError::Fenced(_))
    ));
    assert!(matches!(
        w.add(payload(2)).await,
        Err(LedgerError::Fenced(_))
    ));

    assert!(matches!(
        bk.open(LedgerId(424_242), false).await,
        Err(LedgerError::NoSuchLedger(_))
    ));
    assert!(matches!(
        bk.read_from_bookie(&bookies[0].id, LedgerId(424_242), 0)
            .await,
        Err(LedgerError::NoSuchLedger(_))
    ));
    assert!(matches!(
        bk.read_from_bookie(&bookies[0].id, w.id(), 5).await,
        Err(LedgerError::NoSuchEntry { .. })
    ));
    assert!(matches!(
        bk.create(LedgerConfig {
            ensemble: 2,
            write_quorum: 2,
            ack_quorum: 2
        })
        .await,
        Err(LedgerError::NotEnoughBookies {
            needed: 2,
            available: 1
        })
    ));
    assert!(matches!(
        bk.create(LedgerConfig {
            ensemble: 1,
            write_quorum: 2,
            ack_quorum: 1
        })
        .await,
        Err(LedgerError::InvalidArgument(_))
    ));
    bookies[0].kill().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_fails_adds_cleanly_and_keeps_stored_entries() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(1).await;
    let bk = BookKeeper::new(md.clone());
    let w = bk.create(LedgerConfig::SINGLE).await?;
    for i in 0..5 {
        w.add(payload(i)).await?;
    }
    let faults = bookies[0].bookie().storage().faults();
    faults.fail_writes.store(true, Ordering::SeqCst);
    let err = w.add(payload(5)).await.expect_err("disk full");
    assert!(
        err.to_string().contains("No space left")
            || matches!(err, LedgerError::NotEnoughBookies { .. }),
        "{err}"
    );
    faults.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(
        bk.read_from_bookie(&bookies[0].id, w.id(), 4).await?,
        payload(4),
        "stored entries intact"
    );
    let w2 = bk.create(LedgerConfig::SINGLE).await?;
    assert_eq!(w2.add(payload(0)).await?, EntryId(0), "writable again");

    // A bookie above its usage threshold registers read-only and gets no new ledgers.
    let mut ro = start_bookie_with(md.clone(), |c| {
        c.readonly_threshold = 0.0;
        c.writable_threshold = 0.0;
    })
    .await;
    let md2 = md.clone();
    let ro_id = ro.id.clone();
    assert!(
        wait_for(Duration::from_secs(10), || {
            let (md, id) = (md2.clone(), ro_id.clone());
            async move {
                list_bookies(md.as_ref()).await.is_ok_and(|v| {
                    v.iter()
                        .any(|(b, r)| *b == id && r.state == BookieState::Readonly)
                })
            }
        })
        .await
    );
    bookies[0].kill().await;
    assert!(matches!(
        bk.create(LedgerConfig::SINGLE).await,
        Err(LedgerError::NotEnoughBookies { .. })
    ));
    ro.kill().await;
    Ok(())
}
