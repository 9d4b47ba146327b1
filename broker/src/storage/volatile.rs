//! Storage for `non-persistent://` topics: a bounded in-memory window of recent entries
//! per topic, never written to bookies and lost when the topic unloads, as in Pulsar.
//!
//! Invariants: an entry is kept only while some subscription still needs it and only
//! within [`VolatileLimits`]; when a slow subscription falls out of the window its
//! cursor is moved past the dropped entries (Pulsar drops non-persistent messages a
//! consumer cannot take), so memory stays bounded whatever the consumers do. With no
//! subscription at all an appended entry is dropped at once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::mem::MemCursor;
use super::{InitialPosition, SubCursor, TopicLog, TopicStorage};
use crate::error::Result;
use crate::position::Position;

const LEDGER: u64 = 1;

/// How much a non-persistent topic keeps for its subscriptions.
#[derive(Debug, Clone, Copy)]
pub struct VolatileLimits {
    /// Most entries kept per topic.
    pub max_entries: usize,
    /// Most bytes kept per topic.
    pub max_bytes: usize,
}

impl Default for VolatileLimits {
    fn default() -> Self {
        VolatileLimits {
            max_entries: 10_000,
            max_bytes: 64 << 20,
        }
    }
}

/// The logs of the non-persistent topics loaded on one broker.
#[derive(Default)]
pub struct VolatileStorage {
    limits: VolatileLimits,
    logs: Mutex<HashMap<String, Arc<VolatileLog>>>,
}

impl VolatileStorage {
    /// Storage with these limits per topic.
    pub fn new(limits: VolatileLimits) -> Arc<VolatileStorage> {
        Arc::new(VolatileStorage {
            limits,
            logs: Mutex::new(HashMap::new()),
        })
    }
}

#[async_trait::async_trait]
impl TopicStorage for VolatileStorage {
    async fn open(&self, name: &str) -> Result<Arc<dyn TopicLog>> {
        let log = self
            .logs
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(VolatileLog::new(self.limits)))
            .clone();
        Ok(log)
    }
}

struct Window {
    /// Entry id of `entries[0]`.
    base: u64,
    entries: VecDeque<Bytes>,
    bytes: usize,
}

impl Window {
    fn next_id(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    fn pop_front(&mut self) {
        if let Some(b) = self.entries.pop_front() {
            self.bytes -= b.len();
            self.base += 1;
        }
    }
}

/// One non-persistent topic's window of entries.
pub struct VolatileLog {
    limits: VolatileLimits,
    window: Mutex<Window>,
    lac: watch::Sender<Option<Position>>,
    cursors: Mutex<HashMap<String, Arc<MemCursor>>>,
}

impl VolatileLog {
    fn new(limits: VolatileLimits) -> VolatileLog {
        let (lac, _) = watch::channel(None);
        VolatileLog {
            limits,
            window: Mutex::new(Window {
                base: 0,
                entries: VecDeque::new(),
                bytes: 0,
            }),
            lac,
            cursors: Mutex::new(HashMap::new()),
        }
    }

    /// Drops entries no subscription needs any more, then whatever exceeds the limits;
    /// returns the first entry id kept when entries were dropped over the limits.
    fn trim(&self) -> Option<u64> {
        let cursors: Vec<Arc<MemCursor>> = self.cursors.lock().values().cloned().collect();
        let needed_from = cursors
            .iter()
            .map(|c| c.mark_delete().map_or(0, |m| m.entry + 1))
            .min();
        let mut w = self.window.lock();
        let needed_from = needed_from.unwrap_or_else(|| w.next_id());
        while w.base < needed_from && !w.entries.is_empty() {
            w.pop_front();
        }
        let mut forced = false;
        while w.entries.len() > self.limits.max_entries || w.bytes > self.limits.max_bytes {
            w.pop_front();
            forced = true;
        }
        forced.then_some(w.base)
    }
}

#[async_trait::async_trait]
impl TopicLog for VolatileLog {
    fn append(&self, data: Bytes) -> BoxFuture<'static, Result<Position>> {
        let pos = {
            let mut w = self.window.lock();
            w.bytes += data.len();
            w.entries.push_back(data);
            Position::new(LEDGER, w.next_id() - 1)
        };
        self.lac.send_replace(Some(pos));
        if let Some(kept_from) = self.trim() {
            // Subscriptions that fell out of the window skip what was dropped.
            if kept_from > 0 {
                let last_dropped = Position::new(LEDGER, kept_from - 1);
                let behind: Vec<Arc<MemCursor>> = self
                    .cursors
                    .lock()
                    .values()
                    .filter(|c| c.mark_delete().is_none_or(|m| m < last_dropped))
                    .cloned()
                    .collect();
                metrics::counter!("magnetar_broker_non_persistent_dropped_total")
                    .increment(behind.len() as u64);
                for c in behind {
                    c.advance_to(last_dropped);
                }
            }
        }
        Box::pin(async move { Ok(pos) })
    }

    async fn read(&self, from: Position, max: usize) -> Result<Vec<(Position, Bytes)>> {
        let w = self.window.lock();
        let start = if from.ledger < LEDGER {
            w.base
        } else if from.ledger > LEDGER {
            return Ok(Vec::new());
        } else {
            from.entry.max(w.base)
        };
        let skip = (start - w.base) as usize;
        Ok(w.entries
            .iter()
            .skip(skip)
            .take(max)
            .enumerate()
            .map(|(i, b)| (Position::new(LEDGER, start + i as u64), b.clone()))
            .collect())
    }

    fn last_confirmed(&self) -> Option<Position> {
        *self.lac.borrow()
    }

    fn watch_lac(&self) -> watch::Receiver<Option<Position>> {
        self.lac.subscribe()
    }

    fn first_position(&self) -> Position {
        Position::new(LEDGER, self.window.lock().base)
    }

    fn next_position(&self, p: Position) -> Position {
        p.next()
    }

    fn current_ledger(&self) -> u64 {
        LEDGER
    }

    fn entries(&self) -> u64 {
        self.window.lock().entries.len() as u64
    }

    fn size_bytes(&self) -> u64 {
        self.window.lock().bytes as u64
    }

    fn cursor_names(&self) -> Vec<String> {
        // Non-persistent subscriptions do not outlive their topic's load.
        Vec::new()
    }

    async fn open_cursor(
        &self,
        name: &str,
        initial: InitialPosition,
    ) -> Result<Arc<dyn SubCursor>> {
        let (base, next) = {
            let w = self.window.lock();
            (w.base, w.next_id())
        };
        let cursor = self
            .cursors
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| {
                let start = match initial {
                    InitialPosition::Earliest => base,
                    InitialPosition::Latest => next,
                    InitialPosition::At(p) => p.entry.max(base),
                };
                Arc::new(MemCursor::starting_at(Position::new(LEDGER, start)))
            })
            .clone();
        Ok(cursor)
    }

    async fn delete_cursor(&self, name: &str) -> Result<()> {
        self.cursors.lock().remove(name);
        self.trim();
        Ok(())
    }

    async fn delete(&self) -> Result<()> {
        let mut w = self.window.lock();
        while !w.entries.is_empty() {
            w.pop_front();
        }
        drop(w);
        self.cursors.lock().clear();
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_entries: usize) -> VolatileLimits {
        VolatileLimits {
            max_entries,
            max_bytes: 1 << 20,
        }
    }

    #[tokio::test]
    async fn without_subscriptions_nothing_is_kept() {
        let log = VolatileLog::new(limits(100));
        for _ in 0..10 {
            log.append(Bytes::from_static(b"x")).await.expect("append");
        }
        assert_eq!(log.entries(), 0);
        assert_eq!(log.last_confirmed(), Some(Position::new(LEDGER, 9)));
    }

    #[tokio::test]
    async fn acknowledged_entries_are_released() {
        let log = VolatileLog::new(limits(100));
        let c = log
            .open_cursor("s", InitialPosition::Latest)
            .await
            .expect("in-memory op");
        let mut ps = Vec::new();
        for _ in 0..5 {
            ps.push(log.append(Bytes::from_static(b"x")).await.expect("append"));
        }
        assert_eq!(log.entries(), 5);
        c.ack(&ps[..3]).await.expect("in-memory op");
        log.append(Bytes::from_static(b"y")).await.expect("append");
        assert_eq!(log.entries(), 3);
        let read = log.read(c.read_position(), 10).await.expect("in-memory op");
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].0, ps[3]);
    }

    #[tokio::test]
    async fn a_slow_subscription_skips_what_the_window_dropped() {
        let log = VolatileLog::new(limits(4));
        let c = log
            .open_cursor("s", InitialPosition::Latest)
            .await
            .expect("in-memory op");
        for _ in 0..10 {
            log.append(Bytes::from_static(b"x")).await.expect("append");
        }
        assert_eq!(log.entries(), 4);
        assert_eq!(c.read_position(), Position::new(LEDGER, 6));
        let read = log
            .read(Position::new(LEDGER, 0), 10)
            .await
            .expect("in-memory op");
        assert_eq!(read.first().map(|r| r.0), Some(Position::new(LEDGER, 6)));
    }
}
