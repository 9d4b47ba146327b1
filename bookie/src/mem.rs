//! In-memory [`crate::Ledgers`] for broker unit tests.
//!
//! Keeps the contract of the real ledger client that the broker relies on: entry ids are
//! fixed in call order, a ledger opened with `recover = true` is fenced and closed so its
//! old writer's later adds fail with [`LedgerError::Fenced`], and after a failed add every
//! later add of that writer fails too. Test hooks make adds fail ([`MemLedgers::fail_adds`])
//! or hold their acknowledgement ([`MemLedgers::hold_adds`]) so in-flight adds can be observed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::api::{EntryId, LedgerConfig, LedgerId, LedgerReader, LedgerWriter, Ledgers, Result};
use crate::error::LedgerError;

/// One ledger's entries and state.
#[derive(Default)]
struct MemLedger {
    entries: Vec<Bytes>,
    /// Highest acknowledged entry while the writer is open.
    lac: Option<EntryId>,
    /// Final last entry once closed (by the writer or by recovery).
    closed: Option<Option<EntryId>>,
    fenced: bool,
}

type Shared = Arc<Mutex<MemLedger>>;

/// An in-memory set of ledgers.
pub struct MemLedgers {
    ledgers: Mutex<BTreeMap<LedgerId, Shared>>,
    next_id: AtomicU64,
    fail_adds: Arc<AtomicBool>,
    hold: watch::Sender<bool>,
}

impl MemLedgers {
    /// An empty set of ledgers; ids start at 1.
    pub fn new() -> Arc<MemLedgers> {
        Arc::new(MemLedgers {
            ledgers: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            fail_adds: Arc::new(AtomicBool::new(false)),
            hold: watch::channel(false).0,
        })
    }

    /// Fault hook: while set, every new add fails (as a bookie error).
    pub fn fail_adds(&self, fail: bool) {
        self.fail_adds.store(fail, Ordering::SeqCst);
    }

    /// Test hook: while set, adds are stored but not acknowledged (their futures wait).
    pub fn hold_adds(&self, hold: bool) {
        self.hold.send_replace(hold);
    }

    /// Ids of the ledgers that exist (not deleted).
    pub fn ledger_ids(&self) -> Vec<LedgerId> {
        self.ledgers.lock().keys().copied().collect()
    }

    /// Whether a ledger exists.
    pub fn exists(&self, id: LedgerId) -> bool {
        self.ledgers.lock().contains_key(&id)
    }

    /// Whether a ledger has been fenced by a recovering open.
    pub fn is_fenced(&self, id: LedgerId) -> bool {
        self.ledgers
            .lock()
            .get(&id)
            .map(|l| l.lock().fenced)
            .unwrap_or(false)
    }

    fn get(&self, id: LedgerId) -> Result<Shared> {
        self.ledgers
            .lock()
            .get(&id)
            .cloned()
            .ok_or(LedgerError::NoSuchLedger(id.0))
    }
}

fn read_range(
    id: LedgerId,
    l: &MemLedger,
    last_readable: Option<EntryId>,
    first: EntryId,
    last: EntryId,
) -> Result<Vec<Bytes>> {
    if first > last {
        return Err(LedgerError::InvalidArgument(format!(
            "read of ledger {id}: first {first} > last {last}"
        )));
    }
    match last_readable {
        Some(lr) if last <= lr => {}
        _ => {
            return Err(LedgerError::NoSuchEntry {
                ledger: id.0,
                entry: last.0,
            })
        }
    }
    Ok(l.entries[first.0 as usize..=last.0 as usize].to_vec())
}

#[async_trait::async_trait]
impl Ledgers for MemLedgers {
    async fn create(&self, config: LedgerConfig) -> Result<Arc<dyn LedgerWriter>> {
        if config.ensemble == 0
            || config.write_quorum > config.ensemble
            || config.ack_quorum > config.write_quorum
            || config.ack_quorum == 0
        {
            return Err(LedgerError::InvalidArgument(format!(
                "bad ledger config {config:?}"
            )));
        }
        let id = LedgerId(self.next_id.fetch_add(1, Ordering::SeqCst));
        let ledger: Shared = Arc::default();
        self.ledgers.lock().insert(id, ledger.clone());
        Ok(Arc::new(MemWriter {
            id,
            ledger,
            failed: Arc::new(AtomicBool::new(false)),
            fail_adds: self.fail_adds.clone(),
            hold: self.hold.subscribe(),
        }))
    }

    async fn open(&self, id: LedgerId, recover: bool) -> Result<Arc<dyn LedgerReader>> {
        let ledger = self.get(id)?;
        let last_entry = {
            let mut l = ledger.lock();
            if recover {
                l.fenced = true;
                if l.closed.is_none() {
                    // Recovery keeps every entry that reached storage, acknowledged or not.
                    let last = l.entries.len().checked_sub(1).map(|e| EntryId(e as u64));
                    l.closed = Some(last);
                }
            }
            match l.closed {
                Some(last) => last,
                None => l.lac,
            }
        };
        Ok(Arc::new(MemReader {
            id,
            ledger,
            last_entry,
        }))
    }

    async fn delete(&self, id: LedgerId) -> Result<()> {
        self.ledgers
            .lock()
            .remove(&id)
            .map(|_| ())
            .ok_or(LedgerError::NoSuchLedger(id.0))
    }
}

struct MemWriter {
    id: LedgerId,
    ledger: Shared,
    failed: Arc<AtomicBool>,
    fail_adds: Arc<AtomicBool>,
    hold: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl LedgerWriter for MemWriter {
    fn id(&self) -> LedgerId {
        self.id
    }

    fn add(&self, data: Bytes) -> BoxFuture<'static, Result<EntryId>> {
        let id = self.id;
        let stored = {
            let mut l = self.ledger.lock();
            if l.fenced {
                Err(LedgerError::Fenced(id.0))
            } else if l.closed.is_some() {
                Err(LedgerError::Closed(id.0))
            } else if self.failed.load(Ordering::SeqCst) || self.fail_adds.load(Ordering::SeqCst) {
                Err(LedgerError::Bookie {
                    bookie: "mem".into(),
                    message: "injected add failure".into(),
                })
            } else {
                l.entries.push(data);
                Ok(EntryId(l.entries.len() as u64 - 1))
            }
        };
        let entry = match stored {
            Ok(e) => e,
            Err(e) => {
                self.failed.store(true, Ordering::SeqCst);
                return futures::future::ready(Err(e)).boxed();
            }
        };
        let ledger = self.ledger.clone();
        let failed = self.failed.clone();
        let mut hold = self.hold.clone();
        async move {
            if hold.wait_for(|held| !*held).await.is_err() {
                // The MemLedgers was dropped: nothing can hold the add any more.
            }
            let mut l = ledger.lock();
            if l.fenced || failed.load(Ordering::SeqCst) {
                failed.store(true, Ordering::SeqCst);
                return Err(LedgerError::Fenced(id.0));
            }
            if l.lac.is_none_or(|lac| lac < entry) {
                l.lac = Some(entry);
            }
            Ok(entry)
        }
        .boxed()
    }

    fn last_add_confirmed(&self) -> Option<EntryId> {
        self.ledger.lock().lac
    }

    async fn read(&self, first: EntryId, last: EntryId) -> Result<Vec<Bytes>> {
        let l = self.ledger.lock();
        let readable = l.closed.unwrap_or(l.lac).min(l.lac);
        read_range(self.id, &l, readable, first, last)
    }

    async fn close(&self) -> Result<Option<EntryId>> {
        let mut l = self.ledger.lock();
        if l.fenced {
            return Err(LedgerError::Fenced(self.id.0));
        }
        if let Some(last) = l.closed {
            return Ok(last);
        }
        // Unacknowledged (held or failed) entries past the LAC are dropped on close.
        let lac = l.lac;
        let keep = lac.map_or(0, |e| e.0 as usize + 1);
        l.entries.truncate(keep);
        l.closed = Some(lac);
        Ok(lac)
    }
}

struct MemReader {
    id: LedgerId,
    ledger: Shared,
    last_entry: Option<EntryId>,
}

#[async_trait::async_trait]
impl LedgerReader for MemReader {
    fn id(&self) -> LedgerId {
        self.id
    }

    fn last_entry(&self) -> Option<EntryId> {
        self.last_entry
    }

    async fn read(&self, first: EntryId, last: EntryId) -> Result<Vec<Bytes>> {
        let l = self.ledger.lock();
        read_range(self.id, &l, self.last_entry, first, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    #[tokio::test]
    async fn recovery_fences_the_writer_and_fixes_the_last_entry() {
        let ls = MemLedgers::new();
        let w = ls.create(LedgerConfig::SINGLE).await.expect("create");
        assert_eq!(w.add(b("a")).await.expect("add"), EntryId(0));
        assert_eq!(w.add(b("b")).await.expect("add"), EntryId(1));
        let r = ls.open(w.id(), true).await.expect("recover");
        assert_eq!(r.last_entry(), Some(EntryId(1)));
        assert!(ls.is_fenced(w.id()));
        assert!(matches!(w.add(b("c")).await, Err(LedgerError::Fenced(_))));
        assert_eq!(
            r.read(EntryId(0), EntryId(1)).await.expect("read"),
            vec![b("a"), b("b")]
        );
        assert!(r.read(EntryId(0), EntryId(2)).await.is_err());
    }

    #[tokio::test]
    async fn a_failed_add_fails_every_later_add() {
        let ls = MemLedgers::new();
        let w = ls.create(LedgerConfig::SINGLE).await.expect("create");
        ls.fail_adds(true);
        assert!(w.add(b("a")).await.is_err());
        ls.fail_adds(false);
        assert!(w.add(b("b")).await.is_err());
        assert_eq!(w.close().await.expect("close"), None);
        ls.delete(w.id()).await.expect("delete");
        assert!(!ls.exists(w.id()));
    }

    #[tokio::test]
    async fn held_adds_are_stored_but_not_confirmed() {
        let ls = MemLedgers::new();
        let w = ls.create(LedgerConfig::SINGLE).await.expect("create");
        ls.hold_adds(true);
        let f = w.add(b("a"));
        assert_eq!(w.last_add_confirmed(), None);
        ls.hold_adds(false);
        assert_eq!(f.await.expect("add"), EntryId(0));
        assert_eq!(w.last_add_confirmed(), Some(EntryId(0)));
    }
}
