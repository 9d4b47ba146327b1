//! A bookie restarted on the same data dir (on another port) keeps its id, every synced
//! entry, each ledger's fenced flag and LAC, and clients find it again through its
//! registration.

mod common;

use magnetar_bookie::{BookKeeper, EntryId, LedgerConfig, Ledgers};
use magnetar_proto::bookie as pb;

use common::{cluster, payload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_bookie_keeps_entries_fence_and_lac() -> anyhow::Result<()> {
    let (md, mut bookies) = cluster(1).await;
    let bk = BookKeeper::new(md.clone());
    let w = bk.create(LedgerConfig::SINGLE).await?;
    for i in 0..50 {
        w.add(payload(i)).await?;
    }
    let id = bookies[0].id.clone();
    let old_addr = bookies[0].bookie().address().to_string();
    // Fence it (as a recovering reader would) but do not close: the flag must persist.
    let lac = bk.pool().fence(&id, w.id().0).await?;
    assert_eq!(lac, Some(48), "piggybacked LAC trails the last add by one");

    bookies[0].restart(md.clone()).await;
    assert_ne!(bookies[0].bookie().address(), old_addr);

    // The old writer's stream broke; with no spare bookie its add fails either way...
    assert!(w.add(payload(50)).await.is_err());
    // ...and the restarted bookie itself still refuses adds to the fenced ledger.
    let mut c = bk.pool().client(&id).await?;
    let resp = c
        .add_entries(futures::stream::iter(vec![pb::AddBatch {
            adds: vec![pb::AddRequest {
                ledger_id: w.id().0,
                entry_id: 50,
                crc32c: crc32c::crc32c(&payload(50)),
                data: payload(50),
                lac: 49,
                recovery: false,
            }],
        }]))
        .await?
        .into_inner();
    let resp: Vec<_> = futures::StreamExt::collect::<Vec<_>>(resp).await;
    assert_eq!(
        resp[0].as_ref().map(|r| r.responses[0].status).ok(),
        Some(pb::Status::Fenced as i32)
    );
    let lac = bk
        .pool()
        .read_lac(&id, w.id().0, None, std::time::Duration::ZERO)
        .await?;
    assert_eq!(lac, Some(48), "LAC persisted");
    let r = bk.open(w.id(), true).await?;
    assert_eq!(r.last_entry(), Some(EntryId(49)));
    assert_eq!(
        r.read(EntryId(0), EntryId(49)).await?,
        (0..50).map(payload).collect::<Vec<_>>()
    );
    bookies[0].kill().await;
    Ok(())
}
