//! The replicated state machine in memory: keys, sessions, and the watch history. Applying
//! a command is a pure function of the state and the log index, so every node reaches the
//! same state; the only clock-dependent part (session leases) lives outside, on the leader.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use openraft::{BasicNode, LogId, StoredMembership};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::types::{ApplyError, Command, CommandResult, NodeId};
use crate::store::{validate, Expect, SessionId, TxnOp, Version, Versioned, WatchEvent};

/// Events kept per node for watchers that resume from an older version.
const HISTORY: usize = 20_000;
/// Longest lease a node's clock tracks (longer TTLs are clamped; the API rejects them).
const MAX_TTL_MS: u64 = 24 * 3600 * 1000;

fn ttl(ms: u64) -> Duration {
    Duration::from_millis(ms.min(MAX_TTL_MS))
}

/// A session as replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRec {
    /// Time to live after the last renewal.
    pub ttl_ms: u64,
    /// Log index of the last create/keep-alive.
    pub renewed_at: u64,
}

/// The replicated data (what a snapshot holds).
#[derive(Debug, Clone, Default)]
pub struct SmData {
    /// Keys and their values.
    pub keys: BTreeMap<String, Versioned>,
    /// Live sessions.
    pub sessions: BTreeMap<u64, SessionRec>,
    /// Last applied log id.
    pub last_applied: Option<LogId<NodeId>>,
    /// Last applied membership.
    pub membership: StoredMembership<NodeId, BasicNode>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotRepr {
    keys: Vec<(String, Vec<u8>, u64, Option<u64>)>,
    sessions: Vec<(u64, SessionRec)>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

impl SmData {
    /// Encodes the data for a snapshot (bincode).
    pub fn encode(&self) -> Result<Vec<u8>, bincode::Error> {
        let repr = SnapshotRepr {
            keys: self
                .keys
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.value.to_vec(),
                        v.version.0,
                        v.owner.map(|s| s.0),
                    )
                })
                .collect(),
            sessions: self.sessions.iter().map(|(k, v)| (*k, *v)).collect(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        };
        bincode::serialize(&repr)
    }

    /// Decodes snapshot bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, bincode::Error> {
        let repr: SnapshotRepr = bincode::deserialize(bytes)?;
        Ok(SmData {
            keys: repr
                .keys
                .into_iter()
                .map(|(k, v, ver, owner)| {
                    let val = Versioned {
                        value: Bytes::from(v),
                        version: Version(ver),
                        owner: owner.map(SessionId),
                    };
                    (k, val)
                })
                .collect(),
            sessions: repr.sessions.into_iter().collect(),
            last_applied: repr.last_applied,
            membership: repr.membership,
        })
    }

    fn check(&self, key: &str, expect: Expect) -> Result<(), ApplyError> {
        let cur = self.keys.get(key).map(|v| v.version);
        if expect.holds(cur) {
            Ok(())
        } else {
            Err(ApplyError::BadVersion {
                key: key.to_string(),
                expected: format!("{expect:?}"),
                actual: format!("{cur:?}"),
            })
        }
    }

    /// Applies one command at log `index`, pushing the resulting watch events.
    pub fn apply(
        &mut self,
        index: u64,
        cmd: Command,
        events: &mut Vec<WatchEvent>,
    ) -> CommandResult {
        let version = Version(index);
        match cmd {
            Command::Txn { ops } => match self.txn(version, ops, events) {
                Ok(deleted) => CommandResult::Txn {
                    version: index,
                    deleted,
                },
                Err(e) => CommandResult::Failed(e),
            },
            Command::Increment { key, delta } => {
                if let Err(e) = validate(&key, None) {
                    return CommandResult::Failed(ApplyError::Invalid(e.to_string()));
                }
                let cur = match self.keys.get(&key) {
                    Some(v) => match <[u8; 8]>::try_from(v.value.as_ref()) {
                        Ok(b) => u64::from_be_bytes(b),
                        Err(_) => {
                            let m = format!("{key} does not hold a counter");
                            return CommandResult::Failed(ApplyError::Invalid(m));
                        }
                    },
                    None => 0,
                };
                let Some(next) = cur.checked_add(delta) else {
                    let m = format!("counter {key} would overflow");
                    return CommandResult::Failed(ApplyError::Invalid(m));
                };
                let value = Bytes::copy_from_slice(&next.to_be_bytes());
                self.put(key, value, version, None, events);
                CommandResult::Counter(next)
            }
            Command::CreateSession { ttl_ms } => {
                let rec = SessionRec {
                    ttl_ms,
                    renewed_at: index,
                };
                self.sessions.insert(index, rec);
                CommandResult::Session(index)
            }
            Command::KeepAlive { session } => match self.sessions.get_mut(&session) {
                Some(s) => {
                    s.renewed_at = index;
                    CommandResult::Session(session)
                }
                None => CommandResult::Failed(ApplyError::SessionExpired(session)),
            },
            Command::CloseSession { session } => {
                self.drop_session(session, version, events);
                CommandResult::Session(session)
            }
            Command::ExpireSession {
                session,
                renewed_at,
            } => {
                if self.sessions.get(&session).map(|s| s.renewed_at) == Some(renewed_at) {
                    self.drop_session(session, version, events);
                }
                CommandResult::Session(session)
            }
        }
    }

    fn txn(
        &mut self,
        version: Version,
        ops: Vec<TxnOp>,
        events: &mut Vec<WatchEvent>,
    ) -> Result<bool, ApplyError> {
        for op in &ops {
            match op {
                TxnOp::Put {
                    key,
                    value,
                    expect,
                    session,
                } => {
                    validate(key, Some(value)).map_err(|e| ApplyError::Invalid(e.to_string()))?;
                    self.check(key, *expect)?;
                    if let Some(s) = session {
                        if !self.sessions.contains_key(&s.0) {
                            return Err(ApplyError::SessionExpired(s.0));
                        }
                    }
                }
                TxnOp::Delete { key, expect } | TxnOp::Check { key, expect } => {
                    validate(key, None).map_err(|e| ApplyError::Invalid(e.to_string()))?;
                    self.check(key, *expect)?;
                }
            }
        }
        let mut deleted = false;
        for op in ops {
            match op {
                TxnOp::Put {
                    key,
                    value,
                    session,
                    ..
                } => self.put(key, Bytes::from(value), version, session, events),
                TxnOp::Delete { key, .. } => {
                    if self.keys.remove(&key).is_some() {
                        deleted = true;
                        events.push(WatchEvent::Delete { key, version });
                    }
                }
                TxnOp::Check { .. } => {}
            }
        }
        Ok(deleted)
    }

    fn put(
        &mut self,
        key: String,
        value: Bytes,
        version: Version,
        owner: Option<SessionId>,
        events: &mut Vec<WatchEvent>,
    ) {
        let v = Versioned {
            value: value.clone(),
            version,
            owner,
        };
        self.keys.insert(key.clone(), v);
        events.push(WatchEvent::Put {
            key,
            value,
            version,
        });
    }

    fn drop_session(&mut self, id: u64, version: Version, events: &mut Vec<WatchEvent>) {
        if self.sessions.remove(&id).is_none() {
            return;
        }
        let owned: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, v)| v.owner == Some(SessionId(id)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in owned {
            self.keys.remove(&key);
            events.push(WatchEvent::Delete { key, version });
        }
    }
}

/// A watch event numbered in apply order (several events may share a version).
pub type Numbered = (u64, WatchEvent);

/// The state machine plus its watch history, shared by the Raft storage (writer) and the
/// gRPC service (readers).
pub struct SharedState {
    inner: RwLock<Inner>,
    events: broadcast::Sender<Numbered>,
    /// Leader-side session leases: session -> (deadline, renewed_at). Local clock only.
    leases: Mutex<HashMap<u64, (Instant, u64)>>,
}

struct Inner {
    data: SmData,
    history: VecDeque<Numbered>,
    /// Watchers resuming after a version >= this get a complete backlog.
    complete_after: u64,
    seq: u64,
}

impl Default for SharedState {
    fn default() -> Self {
        let (events, _) = broadcast::channel(8192);
        SharedState {
            inner: RwLock::new(Inner {
                data: SmData::default(),
                history: VecDeque::new(),
                complete_after: 0,
                seq: 0,
            }),
            events,
            leases: Mutex::new(HashMap::new()),
        }
    }
}

/// One entry to apply: its log id, its command (none for blank/membership entries) and
/// the membership it carries.
pub type ApplyItem = (
    LogId<NodeId>,
    Option<Command>,
    Option<StoredMembership<NodeId, BasicNode>>,
);

/// Where a new watcher starts.
pub enum WatchStart {
    /// Backlog to send, the broadcast receiver, and the sequence number already covered.
    Resume(Vec<WatchEvent>, broadcast::Receiver<Numbered>, u64),
    /// Too far behind: reset to this version.
    Reset(Version),
}

impl SharedState {
    /// Replaces the whole state (startup or snapshot install).
    pub fn replace(&self, data: SmData) {
        let mut inner = self.inner.write();
        let applied = data.last_applied.map(|l| l.index).unwrap_or(0);
        let now = Instant::now();
        let mut leases = self.leases.lock();
        leases.clear();
        for (id, s) in &data.sessions {
            leases.insert(*id, (now + ttl(s.ttl_ms), s.renewed_at));
        }
        inner.data = data;
        inner.history.clear();
        inner.complete_after = applied;
    }

    /// Applies a batch of entries' commands; `None` commands only advance the log id.
    pub fn apply_batch(&self, batch: Vec<ApplyItem>) -> Vec<CommandResult> {
        let mut out = Vec::with_capacity(batch.len());
        let mut inner = self.inner.write();
        let now = Instant::now();
        for (log_id, cmd, membership) in batch {
            let mut events = Vec::new();
            let res = match cmd {
                Some(cmd) => {
                    let lease_update = match &cmd {
                        Command::CreateSession { ttl_ms } => Some((log_id.index, *ttl_ms)),
                        Command::KeepAlive { session } => inner
                            .data
                            .sessions
                            .get(session)
                            .map(|s| (*session, s.ttl_ms)),
                        _ => None,
                    };
                    let res = inner.data.apply(log_id.index, cmd, &mut events);
                    let mut leases = self.leases.lock();
                    if let Some((id, ttl)) = lease_update {
                        let deadline = now + self::ttl(ttl);
                        leases.insert(id, (deadline, log_id.index));
                    }
                    leases.retain(|id, _| inner.data.sessions.contains_key(id));
                    res
                }
                None => CommandResult::None,
            };
            if let Some(m) = membership {
                inner.data.membership = m;
            }
            inner.data.last_applied = Some(log_id);
            for ev in events {
                inner.seq += 1;
                let seq = inner.seq;
                if inner.history.len() >= HISTORY {
                    if let Some((_, old)) = inner.history.pop_front() {
                        inner.complete_after = event_version(&old).0;
                    }
                }
                inner.history.push_back((seq, ev.clone()));
                let _ = self.events.send((seq, ev));
            }
            out.push(res);
        }
        out
    }

    /// Runs `f` on the data under the read lock.
    pub fn read<R>(&self, f: impl FnOnce(&SmData) -> R) -> R {
        f(&self.inner.read().data)
    }

    /// Starts a watcher of `prefix` after `after`.
    pub fn watch(&self, prefix: &str, after: Version) -> WatchStart {
        let inner = self.inner.read();
        let applied = inner.data.last_applied.map(|l| l.index).unwrap_or(0);
        if after.0 < inner.complete_after {
            return WatchStart::Reset(Version(applied));
        }
        let rx = self.events.subscribe();
        let backlog = inner
            .history
            .iter()
            .filter(|(_, e)| event_version(e) > after && event_key(e).starts_with(prefix))
            .map(|(_, e)| e.clone())
            .collect();
        WatchStart::Resume(backlog, rx, inner.seq)
    }

    /// The last applied log index.
    pub fn applied_index(&self) -> u64 {
        self.inner
            .read()
            .data
            .last_applied
            .map(|l| l.index)
            .unwrap_or(0)
    }

    /// Resets every lease to a full TTL from now (a new leader grants a fresh grace period).
    pub fn renew_all_leases(&self) {
        let now = Instant::now();
        let inner = self.inner.read();
        let mut leases = self.leases.lock();
        leases.clear();
        for (id, s) in &inner.data.sessions {
            leases.insert(*id, (now + ttl(s.ttl_ms), s.renewed_at));
        }
    }

    /// Sessions whose lease ran out on this node's clock: (session, renewed_at).
    pub fn expired_leases(&self) -> Vec<(u64, u64)> {
        let now = Instant::now();
        self.leases
            .lock()
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now)
            .map(|(id, (_, renewed))| (*id, *renewed))
            .collect()
    }
}

/// The version carried by an event.
pub fn event_version(e: &WatchEvent) -> Version {
    match e {
        WatchEvent::Put { version, .. }
        | WatchEvent::Delete { version, .. }
        | WatchEvent::Reset { version } => *version,
    }
}

/// The key of an event ("" for a reset).
pub fn event_key(e: &WatchEvent) -> &str {
    match e {
        WatchEvent::Put { key, .. } | WatchEvent::Delete { key, .. } => key,
        WatchEvent::Reset { .. } => "",
    }
}
