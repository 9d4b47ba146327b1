//! Cursors: a subscription's (durable) or reader's (non-durable) place in the log.
//!
//! A cursor keeps a mark-delete position (every entry at or before it is acknowledged),
//! the individually acknowledged ranges after it, and a read position. Mark-delete advances
//! by itself over a contiguous prefix of individual acks. Durable cursors persist the
//! mark-delete position and the ack ranges (batched, by compare-and-set), so a restart
//! redelivers only unacknowledged entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use magnetar_metadata::{list_all, Expect, Version};
use parking_lot::Mutex;

use super::error::{MlError, Result};
use super::ledger::ManagedLedger;
use super::meta::{self, CursorInfo};
use super::ranges::{AckRange, AckSet};
use super::shared::Core;
use super::state::{MlStatus, State};
use super::Position;

/// Where a new cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// After the last confirmed entry.
    Latest,
    /// At the first stored entry.
    Earliest,
    /// At this position (the entry before it counts as acknowledged).
    Position(Position),
}

struct CursorState {
    mark_delete: Option<Position>,
    acks: AckSet,
    read: Position,
    dirty: bool,
    version: Option<Version>,
    deleted: bool,
}

/// A cursor over a managed ledger.
pub struct ManagedCursor {
    name: String,
    core: Arc<Core>,
    durable: bool,
    state: Mutex<CursorState>,
    persist_lock: tokio::sync::Mutex<()>,
}

impl CursorState {
    /// Moves mark-delete over acknowledged entries that directly follow it.
    fn advance(&mut self, st: &State) {
        loop {
            let next = match self.mark_delete {
                Some(m) => st.next_position(m),
                None => st.first_position(),
            };
            let Some(end) = self.acks.run_end(next) else {
                break;
            };
            self.mark_delete = Some(end);
            self.acks.remove_through(end);
        }
        if let Some(m) = self.mark_delete {
            if self.read <= m {
                self.read = st.next_position(m);
            }
        }
    }
}

impl ManagedCursor {
    fn new(core: Arc<Core>, name: &str, durable: bool, md: Option<Position>, acks: AckSet) -> Self {
        let read = {
            let st = core.state.lock();
            md.map_or_else(|| st.first_position(), |m| st.next_position(m))
        };
        ManagedCursor {
            name: name.to_string(),
            core,
            durable,
            state: Mutex::new(CursorState {
                mark_delete: md,
                acks,
                read,
                dirty: false,
                version: None,
                deleted: false,
            }),
            persist_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads every durable cursor and takes it over (rewrites it by CAS) so a previous
    /// owner's later cursor writes fail.
    pub(crate) async fn load_all(core: &Arc<Core>) -> Result<BTreeMap<String, Arc<ManagedCursor>>> {
        let prefix = meta::cursor_prefix(&core.name);
        let mut out = BTreeMap::new();
        for (key, v) in list_all(core.meta.as_ref(), &prefix).await? {
            let rest = &key[prefix.len()..];
            if rest.contains('/') {
                continue; // belongs to a managed ledger whose name extends ours
            }
            let info: CursorInfo = meta::decode(&key, &v.value)?;
            let version = match core
                .meta
                .put(&key, v.value.clone(), Expect::Version(v.version), None)
                .await
            {
                Ok(ver) => ver,
                Err(e) if e.is_bad_version() => return Err(MlError::Fenced(core.name.clone())),
                Err(e) => return Err(e.into()),
            };
            let name = meta::unescape_cursor(rest);
            let c = ManagedCursor::new(
                core.clone(),
                &name,
                true,
                info.mark_delete,
                AckSet::from_ranges(&info.acked),
            );
            {
                let mut cs = c.state.lock();
                cs.version = Some(version);
                cs.advance(&core.state.lock());
            }
            out.insert(name, Arc::new(c));
        }
        Ok(out)
    }

    /// This cursor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this cursor is persisted.
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    fn check_usable(&self) -> Result<()> {
        if self.state.lock().deleted {
            return Err(MlError::NoSuchCursor {
                name: self.core.name.clone(),
                cursor: self.name.clone(),
            });
        }
        match &self.core.state.lock().status {
            MlStatus::Open | MlStatus::Closing | MlStatus::Errored(_) => Ok(()),
            s => Err(self.core.status_error(s)),
        }
    }

    fn invalid(&self, p: Position, reason: &'static str) -> MlError {
        MlError::InvalidPosition {
            name: self.core.name.clone(),
            position: p,
            reason,
        }
    }

    /// Every entry at or before this position is acknowledged (`None`: nothing is).
    pub fn mark_delete_position(&self) -> Option<Position> {
        self.state.lock().mark_delete
    }

    /// The next position to read.
    pub fn read_position(&self) -> Position {
        self.state.lock().read
    }

    /// Moves the read position (not before the first unacknowledged entry).
    pub fn seek(&self, p: Position) {
        let mut cs = self.state.lock();
        let floor = cs
            .mark_delete
            .map(|m| self.core.state.lock().next_position(m));
        cs.read = floor.map_or(p, |f| p.max(f));
    }

    /// Whether `p` is acknowledged.
    pub fn is_acked(&self, p: Position) -> bool {
        let cs = self.state.lock();
        cs.mark_delete.is_some_and(|m| p <= m) || cs.acks.contains(p)
    }

    /// The individually acknowledged ranges after mark-delete.
    pub fn acked_ranges(&self) -> Vec<AckRange> {
        self.state.lock().acks.to_ranges(usize::MAX)
    }

    /// Entries after mark-delete that are not individually acknowledged.
    pub fn backlog(&self) -> u64 {
        let cs = self.state.lock();
        let after = self.core.state.lock().entries_after(cs.mark_delete);
        after.saturating_sub(cs.acks.len())
    }

    /// Acknowledges single entries. Positions past the last confirmed entry are refused.
    pub fn ack_individual(&self, positions: &[Position]) -> Result<()> {
        self.check_usable()?;
        let mut cs = self.state.lock();
        let st = self.core.state.lock();
        for &p in positions {
            if st.lac.is_none_or(|l| p > l) {
                return Err(self.invalid(p, "past the last confirmed entry"));
            }
        }
        for &p in positions {
            if cs.mark_delete.is_none_or(|m| p > m) {
                cs.acks.insert(p);
            }
        }
        cs.advance(&st);
        cs.dirty = true;
        Ok(())
    }

    /// Acknowledges every entry up to and including `p`.
    pub fn ack_cumulative(&self, p: Position) -> Result<()> {
        self.check_usable()?;
        let mut cs = self.state.lock();
        let st = self.core.state.lock();
        if st.lac.is_none_or(|l| p > l) {
            return Err(self.invalid(p, "past the last confirmed entry"));
        }
        if cs.mark_delete.is_none_or(|m| p > m) {
            cs.mark_delete = Some(p);
            cs.acks.remove_through(p);
            cs.advance(&st);
            cs.dirty = true;
        }
        Ok(())
    }

    /// Rewinds or forwards the cursor so `to` is the next entry delivered: everything before
    /// it counts as acknowledged, nothing after it does. Persisted at once.
    pub async fn reset(&self, to: Position) -> Result<()> {
        self.check_usable()?;
        let _no_trim = self.core.trim_lock.lock().await;
        {
            let mut cs = self.state.lock();
            let st = self.core.state.lock();
            let end = st
                .lac
                .map_or_else(|| st.first_position(), |l| st.next_position(l));
            let to = to.min(end);
            cs.mark_delete = st.prev_position(to);
            cs.acks.clear();
            cs.read = to;
            cs.dirty = true;
        }
        self.persist().await
    }

    /// Acknowledges everything written so far. Persisted at once.
    pub async fn clear_backlog(&self) -> Result<()> {
        self.check_usable()?;
        {
            let mut cs = self.state.lock();
            let st = self.core.state.lock();
            if let Some(l) = st.lac {
                if cs.mark_delete.is_none_or(|m| m < l) {
                    cs.mark_delete = Some(l);
                }
                cs.acks.clear();
                cs.advance(&st);
                cs.dirty = true;
            }
        }
        self.persist().await
    }

    /// Reads up to `max` unacknowledged entries from the read position and moves the read
    /// position past them.
    pub async fn read_entries(&self, max: usize) -> Result<Vec<(Position, Bytes)>> {
        for _ in 0..8 {
            let from = self.read_position();
            let entries = self.core.read(from, max).await?;
            let Some(&(last, _)) = entries.last() else {
                return Ok(Vec::new());
            };
            let next = self.core.state.lock().next_position(last);
            let mut cs = self.state.lock();
            if cs.read != from {
                continue; // sought meanwhile: read again from the new position
            }
            cs.read = next;
            let out: Vec<_> = entries
                .into_iter()
                .filter(|(p, _)| !(cs.mark_delete.is_some_and(|m| *p <= m) || cs.acks.contains(*p)))
                .collect();
            if !out.is_empty() {
                return Ok(out);
            }
        }
        Ok(Vec::new())
    }

    /// Writes the cursor's state if it changed since the last write (durable cursors only).
    pub async fn persist(&self) -> Result<()> {
        if !self.durable {
            return Ok(());
        }
        let _serial = self.persist_lock.lock().await;
        let (value, expect) = {
            let mut cs = self.state.lock();
            if cs.deleted || !cs.dirty {
                return Ok(());
            }
            if self.core.state.lock().status == MlStatus::Fenced {
                return Err(MlError::Fenced(self.core.name.clone()));
            }
            cs.dirty = false;
            let info = CursorInfo {
                mark_delete: cs.mark_delete,
                acked: cs.acks.to_ranges(self.core.cfg.max_persisted_ack_ranges),
            };
            (meta::encode(&info), meta::expect_of(cs.version))
        };
        let key = meta::cursor_key(&self.core.name, &self.name);
        match self.core.meta.put(&key, value, expect, None).await {
            Ok(v) => {
                self.state.lock().version = Some(v);
                Ok(())
            }
            Err(e) => {
                self.state.lock().dirty = true;
                if e.is_bad_version() {
                    tracing::warn!(ml = %self.core.name, cursor = %self.name, "cursor CAS lost");
                    Err(self.core.fence())
                } else {
                    Err(e.into())
                }
            }
        }
    }

    async fn delete_persisted(&self) -> Result<()> {
        let _serial = self.persist_lock.lock().await;
        let version = {
            let mut cs = self.state.lock();
            cs.deleted = true;
            cs.version
        };
        if !self.durable {
            return Ok(());
        }
        let key = meta::cursor_key(&self.core.name, &self.name);
        match self
            .core
            .meta
            .delete(&key, version.map_or(Expect::Any, Expect::Version))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_bad_version() => Err(self.core.fence()),
            Err(e) => Err(e.into()),
        }
    }
}

impl ManagedLedger {
    /// Opens the durable cursor `name`, creating it at `initial` (and persisting it at once)
    /// if it does not exist.
    pub async fn open_cursor(
        &self,
        name: &str,
        initial: InitialPosition,
    ) -> Result<Arc<ManagedCursor>> {
        let _serial = self.cursor_lock.lock().await;
        let _no_trim = self.core.trim_lock.lock().await;
        if let Some(c) = self.cursors.lock().get(name) {
            return Ok(c.clone());
        }
        let c = Arc::new(self.new_cursor(name, true, initial)?);
        c.state.lock().dirty = true;
        c.persist().await?;
        self.cursors.lock().insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// A cursor that is never persisted and never holds back trimming (for readers).
    pub fn open_non_durable_cursor(&self, start: InitialPosition) -> Result<Arc<ManagedCursor>> {
        Ok(Arc::new(self.new_cursor("", false, start)?))
    }

    fn new_cursor(
        &self,
        name: &str,
        durable: bool,
        initial: InitialPosition,
    ) -> Result<ManagedCursor> {
        let md = {
            let st = self.core.state.lock();
            if st.status != MlStatus::Open {
                return Err(self.core.status_error(&st.status));
            }
            match initial {
                InitialPosition::Latest => st.lac,
                InitialPosition::Earliest => None,
                InitialPosition::Position(p) => {
                    let end = st
                        .lac
                        .map_or_else(|| st.first_position(), |l| st.next_position(l));
                    st.prev_position(p.min(end))
                }
            }
        };
        let c = ManagedCursor::new(self.core.clone(), name, durable, md, AckSet::default());
        if let InitialPosition::Position(p) = initial {
            c.seek(p);
        }
        Ok(c)
    }

    /// Deletes a durable cursor and its persisted state.
    pub async fn delete_cursor(&self, name: &str) -> Result<()> {
        let _serial = self.cursor_lock.lock().await;
        let c = self
            .cursors
            .lock()
            .remove(name)
            .ok_or_else(|| MlError::NoSuchCursor {
                name: self.core.name.clone(),
                cursor: name.to_string(),
            })?;
        c.delete_persisted().await
    }

    /// The durable cursors.
    pub fn cursors(&self) -> Vec<Arc<ManagedCursor>> {
        self.cursors.lock().values().cloned().collect()
    }

    /// A durable cursor by name.
    pub fn cursor(&self, name: &str) -> Option<Arc<ManagedCursor>> {
        self.cursors.lock().get(name).cloned()
    }
}
