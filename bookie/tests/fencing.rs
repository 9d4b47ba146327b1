//! Fencing: once another client opens a ledger with recovery, every later add of the old
//! writer fails; the closed ledger holds every acknowledged entry and nothing that was never
//! written; racing recoverers end with the same last entry.

mod common;

use std::sync::Arc;

use magnetar_bookie::{BookKeeper, EntryId, LedgerConfig, LedgerError, Ledgers};

use common::{cluster, payload, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_fences_a_live_writer_and_keeps_every_acked_entry() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(3).await;
    let writer_client = BookKeeper::new(md.clone());
    let w = writer_client
        .create(LedgerConfig {
            ensemble: 3,
            write_quorum: 2,
            ack_quorum: 2,
        })
        .await?;
    let id = w.id();
    let acked = Arc::new(parking_lot::Mutex::new(Vec::<u64>::new()));
    let (acked2, w2) = (acked.clone(), w.clone());
    let writing = tokio::spawn(async move {
        let mut i = 0u64;
        let mut first_failure = None;
        let mut inflight = std::collections::VecDeque::new();
        // Bounded: at most 200k adds; stops shortly after the first failure.
        while i < 200_000 {
            inflight.push_back(w2.add(payload(i)));
            i += 1;
            if inflight.len() >= 32 {
                match inflight.pop_front().expect("non-empty").await {
                    Ok(e) => {
                        assert!(first_failure.is_none(), "an add succeeded after a failure");
                        acked2.lock().push(e.0);
                    }
                    Err(e) => {
                        first_failure.get_or_insert(e);
                        if i > 64 + acked2.lock().len() as u64 {
                            break;
                        }
                    }
                }
            }
        }
        for f in inflight {
            if let Ok(e) = f.await {
                assert!(first_failure.is_none(), "entry {e} acked after a failure");
                acked2.lock().push(e.0);
            }
        }
        first_failure
    });
    let acked3 = acked.clone();
    assert!(
        wait_for(std::time::Duration::from_secs(30), || {
            let n = acked3.lock().len();
            async move { n >= 300 }
        })
        .await
    );

    // Two recoverers race.
    let (a, b) = (BookKeeper::new(md.clone()), BookKeeper::new(md.clone()));
    let (ra, rb) = tokio::join!(a.open(id, true), b.open(id, true));
    let (ra, rb) = (ra?, rb?);
    assert_eq!(ra.last_entry(), rb.last_entry(), "racing recoverers agree");
    let failure = writing.await?;
    assert!(
        matches!(failure, Some(LedgerError::Fenced(_))),
        "{failure:?}"
    );
    assert!(matches!(
        w.add(payload(0)).await,
        Err(LedgerError::Fenced(_))
    ));
    assert!(w.close().await.is_err());

    let acked = acked.lock().clone();
    let max_acked = *acked.last().expect("some acked");
    for (i, e) in acked.iter().enumerate() {
        assert_eq!(*e, i as u64, "acks in order");
    }
    let last = ra.last_entry().expect("non-empty").0;
    assert!(
        last >= max_acked,
        "closed at {last}, acked up to {max_acked}"
    );
    let all = ra.read(EntryId(0), EntryId(last)).await?;
    for (i, d) in all.iter().enumerate() {
        assert_eq!(d, &payload(i as u64), "entry {i} is what the writer wrote");
    }
    let m = a.ledger_metadata(id).await?;
    assert_eq!(m.last_entry, Some(last));
    for b in &mut bookies {
        b.kill().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_with_a_dead_ensemble_bookie_rewrites_to_a_replacement() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(4).await;
    let bk = BookKeeper::new(md.clone());
    let w = bk
        .create(LedgerConfig {
            ensemble: 3,
            write_quorum: 2,
            ack_quorum: 2,
        })
        .await?;
    let id = w.id();
    for i in 0..100 {
        w.add(payload(i)).await?;
    }
    let ensemble = bk.ledger_metadata(id).await?.ensembles[0].bookies.clone();
    // The writer goes away without closing, then one of its bookies dies.
    drop(w);
    let victim = bookies
        .iter()
        .position(|b| b.id == ensemble[0])
        .expect("ours");
    bookies[victim].kill().await;

    let r = BookKeeper::new(md.clone()).open(id, true).await?;
    assert_eq!(r.last_entry(), Some(EntryId(99)));
    assert_eq!(
        r.read(EntryId(0), EntryId(99)).await?,
        (0..100).map(payload).collect::<Vec<_>>()
    );
    let m = bk.ledger_metadata(id).await?;
    assert_eq!(m.last_entry, Some(99));
    let last = m.ensembles.last().expect("fragment");
    assert_eq!(
        last.first_entry, 99,
        "entry 99 was rewritten to a new ensemble: {m:?}"
    );
    assert!(!last.bookies.contains(&ensemble[0]));
    for b in &mut bookies {
        b.kill().await;
    }
    Ok(())
}
