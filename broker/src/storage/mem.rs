//! In-memory [`TopicStorage`]: one ledger per topic, cursors in a map. For tests and for
//! brokers run without bookies; nothing survives the process.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{InitialPosition, SubCursor, TopicLog, TopicStorage};
use crate::error::Result;
use crate::position::Position;

const LEDGER: u64 = 1;

/// In-memory topic storage.
#[derive(Default)]
pub struct MemStorage {
    logs: Mutex<HashMap<String, Arc<MemLog>>>,
}

impl MemStorage {
    /// Empty storage.
    pub fn new() -> Arc<MemStorage> {
        Arc::new(MemStorage::default())
    }
}

#[async_trait::async_trait]
impl TopicStorage for MemStorage {
    async fn open(&self, name: &str) -> Result<Arc<dyn TopicLog>> {
        let log = self
            .logs
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| {
                let (tx, _) = watch::channel(None);
                Arc::new(MemLog {
                    entries: Mutex::new(Vec::new()),
                    lac: tx,
                    cursors: Mutex::new(HashMap::new()),
                })
            })
            .clone();
        Ok(log)
    }
}

/// One in-memory log.
pub struct MemLog {
    entries: Mutex<Vec<Bytes>>,
    lac: watch::Sender<Option<Position>>,
    cursors: Mutex<HashMap<String, Arc<MemCursor>>>,
}

#[async_trait::async_trait]
impl TopicLog for MemLog {
    fn append(&self, data: Bytes) -> BoxFuture<'static, Result<Position>> {
        let pos = {
            let mut e = self.entries.lock();
            e.push(data);
            Position::new(LEDGER, e.len() as u64 - 1)
        };
        self.lac.send_replace(Some(pos));
        Box::pin(async move { Ok(pos) })
    }

    async fn read(&self, from: Position, max: usize) -> Result<Vec<(Position, Bytes)>> {
        let e = self.entries.lock();
        let start = if from.ledger < LEDGER {
            0
        } else if from.ledger > LEDGER {
            return Ok(Vec::new());
        } else {
            from.entry as usize
        };
        Ok(e.iter()
            .enumerate()
            .skip(start)
            .take(max)
            .map(|(i, b)| (Position::new(LEDGER, i as u64), b.clone()))
            .collect())
    }

    fn last_confirmed(&self) -> Option<Position> {
        *self.lac.borrow()
    }

    fn watch_lac(&self) -> watch::Receiver<Option<Position>> {
        self.lac.subscribe()
    }

    fn first_position(&self) -> Position {
        Position::new(LEDGER, 0)
    }

    fn next_position(&self, p: Position) -> Position {
        p.next()
    }

    fn current_ledger(&self) -> u64 {
        LEDGER
    }

    fn entries(&self) -> u64 {
        self.entries.lock().len() as u64
    }

    fn size_bytes(&self) -> u64 {
        self.entries.lock().iter().map(|b| b.len() as u64).sum()
    }

    fn cursor_names(&self) -> Vec<String> {
        self.cursors.lock().keys().cloned().collect()
    }

    async fn open_cursor(
        &self,
        name: &str,
        initial: InitialPosition,
    ) -> Result<Arc<dyn SubCursor>> {
        let next = Position::new(LEDGER, self.entries());
        let cursor = self
            .cursors
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| {
                let start = match initial {
                    InitialPosition::Earliest => Position::new(LEDGER, 0),
                    InitialPosition::Latest => next,
                    InitialPosition::At(p) => p,
                };
                Arc::new(MemCursor::starting_at(start))
            })
            .clone();
        Ok(cursor)
    }

    async fn delete_cursor(&self, name: &str) -> Result<()> {
        self.cursors.lock().remove(name);
        Ok(())
    }

    async fn delete(&self) -> Result<()> {
        self.entries.lock().clear();
        self.cursors.lock().clear();
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

#[derive(Debug, Default)]
struct CursorState {
    mark_delete: Option<Position>,
    acked: BTreeSet<Position>,
    read_start: Position,
}

/// An in-memory cursor; also used for non-durable (reader) subscriptions.
#[derive(Debug, Default)]
pub struct MemCursor {
    state: Mutex<CursorState>,
}

impl MemCursor {
    /// A cursor whose first read is `start`.
    pub fn starting_at(start: Position) -> MemCursor {
        let mark_delete = (start.entry > 0).then(|| Position::new(start.ledger, start.entry - 1));
        MemCursor {
            state: Mutex::new(CursorState {
                mark_delete,
                acked: BTreeSet::new(),
                read_start: start,
            }),
        }
    }

    /// Moves mark-delete forward to `p` (no-op if already there); acks at or before `p`
    /// are dropped.
    pub fn advance_to(&self, p: Position) {
        let mut s = self.state.lock();
        if s.mark_delete.is_none_or(|m| m < p) {
            s.mark_delete = Some(p);
            s.acked = s.acked.split_off(&p.next());
        }
    }
}

#[async_trait::async_trait]
impl SubCursor for MemCursor {
    fn mark_delete(&self) -> Option<Position> {
        self.state.lock().mark_delete
    }

    fn is_acked(&self, p: Position) -> bool {
        let s = self.state.lock();
        s.mark_delete.is_some_and(|m| p <= m) || s.acked.contains(&p)
    }

    fn read_position(&self) -> Position {
        let s = self.state.lock();
        s.mark_delete
            .map_or(s.read_start, |m| m.next().max(s.read_start))
    }

    async fn ack(&self, positions: &[Position]) -> Result<()> {
        let mut s = self.state.lock();
        for p in positions {
            s.acked.insert(*p);
        }
        // Advance mark-delete over a contiguous run of acks (single ledger).
        loop {
            let next = s.mark_delete.map_or(s.read_start, Position::next);
            if s.acked.remove(&next) {
                s.mark_delete = Some(next);
            } else {
                break;
            }
        }
        Ok(())
    }

    async fn ack_cumulative(&self, p: Position) -> Result<()> {
        self.advance_to(p);
        Ok(())
    }

    async fn seek(&self, p: Position) -> Result<()> {
        let mut s = self.state.lock();
        s.mark_delete = (p.entry > 0).then(|| Position::new(p.ledger, p.entry - 1));
        s.acked.clear();
        s.read_start = p;
        Ok(())
    }

    fn backlog(&self) -> Option<u64> {
        None
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}
