//! A bookie killed while a ledger is being written loses no acknowledged entry: the writer
//! changes ensemble and continues, every acknowledged entry reads back in order, and once the
//! dead bookie's registration is gone auto-recovery restores Qw copies of every entry.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use magnetar_bookie::autorecovery::{self, AutoRecoveryConfig};
use magnetar_bookie::{under_replicated, BookKeeper, EntryId, LedgerConfig, Ledgers};
use tokio_util::sync::CancellationToken;

use common::{cluster, payload, wait_for};

fn entries() -> u64 {
    std::env::var("MAGNETAR_BOOKIE_ACCEPTANCE_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_bookie_mid_write_loses_nothing_and_auto_recovery_restores_copies(
) -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(4).await;
    let bk = BookKeeper::new(md.clone());
    let cfg = LedgerConfig {
        ensemble: 3,
        write_quorum: 2,
        ack_quorum: 2,
    };
    let w = bk.create(cfg).await?;
    let ensemble = bk.ledger_metadata(w.id()).await?.ensembles[0]
        .bookies
        .clone();
    let victim = bookies
        .iter()
        .position(|b| b.id == ensemble[1])
        .expect("ensemble bookie is ours");

    let n = entries();
    let mut inflight = VecDeque::new();
    let mut acked = 0u64;
    for i in 0..n {
        if i == n / 3 {
            bookies[victim].kill().await;
        }
        inflight.push_back((i, w.add(payload(i))));
        while inflight.len() >= 256 {
            let (want, f) = inflight.pop_front().expect("non-empty");
            assert_eq!(f.await?, EntryId(want));
            acked += 1;
        }
    }
    for (want, f) in inflight {
        assert_eq!(f.await?, EntryId(want));
        acked += 1;
    }
    assert_eq!(acked, n);
    assert_eq!(w.close().await?, Some(EntryId(n - 1)));

    let m = bk.ledger_metadata(w.id()).await?;
    assert!(
        m.ensembles.len() >= 2,
        "an ensemble change was recorded: {m:?}"
    );
    assert!(!m
        .ensembles
        .last()
        .expect("fragment")
        .bookies
        .contains(&ensemble[1]));

    let r = bk.open(w.id(), false).await?;
    let all = r.read(EntryId(0), EntryId(n - 1)).await?;
    assert_eq!(all.len() as u64, n);
    for (i, d) in all.iter().enumerate() {
        assert_eq!(d, &payload(i as u64), "entry {i}");
    }

    // The dead bookie's registration is gone; auto-recovery re-replicates its fragments.
    let stop = CancellationToken::new();
    let ar = tokio::spawn(autorecovery::run(
        md.clone(),
        AutoRecoveryConfig {
            grace: Duration::from_millis(300),
            scan_interval: Duration::from_millis(200),
            session_ttl: Duration::from_secs(2),
        },
        stop.clone(),
    ));
    let md2 = md.clone();
    assert!(
        wait_for(Duration::from_secs(60), || {
            let md = md2.clone();
            async move {
                under_replicated(&md)
                    .await
                    .map(|v| v.is_empty())
                    .unwrap_or(false)
            }
        })
        .await,
        "auto-recovery finished"
    );
    stop.cancel();
    ar.await??;

    let m = bk.ledger_metadata(w.id()).await?;
    for e in 0..n {
        for b in m.write_set(e) {
            assert_ne!(b, ensemble[1]);
            let d = bk.read_from_bookie(&b, w.id(), e).await?;
            assert_eq!(d, payload(e), "entry {e} on {b}");
        }
    }
    for b in &mut bookies {
        b.kill().await;
    }
    Ok(())
}
