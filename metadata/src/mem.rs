//! In-memory [`MetadataStore`]: the reference implementation used by unit tests and by the
//! conformance suite that every other implementation must also pass.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::error::MetadataError;
use crate::store::{
    validate, Expect, MetadataStore, Result, SessionId, TxnOp, Version, Versioned, WatchEvent,
    WatchStream,
};

const HISTORY: usize = 10_000;

struct Session {
    ttl: Duration,
    deadline: Instant,
}

#[derive(Default)]
struct State {
    keys: BTreeMap<String, Versioned>,
    revision: u64,
    next_session: u64,
    sessions: HashMap<u64, Session>,
    history: VecDeque<(u64, Version, WatchEvent)>,
    seq: u64,
}

/// A [`MetadataStore`] held in process memory.
pub struct MemStore {
    state: Mutex<State>,
    events: broadcast::Sender<(u64, Version, WatchEvent)>,
}

fn check(keys: &BTreeMap<String, Versioned>, key: &str, expect: Expect) -> Result<()> {
    let cur = keys.get(key).map(|v| v.version);
    if expect.holds(cur) {
        Ok(())
    } else {
        Err(MetadataError::BadVersion {
            key: key.to_string(),
            expected: format!("{expect:?}"),
            actual: format!("{cur:?}"),
        })
    }
}

impl State {
    fn emit(&mut self, tx: &broadcast::Sender<(u64, Version, WatchEvent)>, ev: WatchEvent) {
        let v = Version(self.revision);
        self.seq += 1;
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((self.seq, v, ev.clone()));
        let _ = tx.send((self.seq, v, ev));
    }

    fn expire(&mut self, tx: &broadcast::Sender<(u64, Version, WatchEvent)>, now: Instant) {
        let dead: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.drop_session(tx, id);
        }
    }

    fn drop_session(&mut self, tx: &broadcast::Sender<(u64, Version, WatchEvent)>, id: u64) {
        self.sessions.remove(&id);
        let owned: Vec<String> = self
            .keys
            .iter()
            .filter(|(_, v)| v.owner == Some(SessionId(id)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in owned {
            self.revision += 1;
            self.keys.remove(&key);
            let version = Version(self.revision);
            self.emit(tx, WatchEvent::Delete { key, version });
        }
    }
}

impl MemStore {
    /// Creates an empty store; when called inside a Tokio runtime it also starts a task that
    /// expires sessions (otherwise expiry happens lazily on each call).
    pub fn new() -> Arc<Self> {
        let (events, _) = broadcast::channel(4096);
        let store = Arc::new(MemStore {
            state: Mutex::new(State::default()),
            events,
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            let weak: Weak<MemStore> = Arc::downgrade(&store);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let Some(store) = weak.upgrade() else { return };
                    drop(store.locked());
                }
            });
        }
        store
    }

    fn locked(&self) -> parking_lot::MutexGuard<'_, State> {
        let mut st = self.state.lock();
        st.expire(&self.events, Instant::now());
        st
    }

    fn apply(&self, st: &mut State, ops: Vec<TxnOp>) -> Result<Version> {
        for op in &ops {
            match op {
                TxnOp::Put {
                    key,
                    value,
                    expect,
                    session,
                } => {
                    validate(key, Some(value))?;
                    check(&st.keys, key, *expect)?;
                    if let Some(s) = session {
                        if !st.sessions.contains_key(&s.0) {
                            return Err(MetadataError::SessionExpired(s.0));
                        }
                    }
                }
                TxnOp::Delete { key, expect } | TxnOp::Check { key, expect } => {
                    validate(key, None)?;
                    check(&st.keys, key, *expect)?;
                }
            }
        }
        st.revision += 1;
        let version = Version(st.revision);
        for op in ops {
            match op {
                TxnOp::Put {
                    key,
                    value,
                    session,
                    ..
                } => {
                    let value = Bytes::from(value);
                    st.keys.insert(
                        key.clone(),
                        Versioned {
                            value: value.clone(),
                            version,
                            owner: session,
                        },
                    );
                    st.emit(
                        &self.events,
                        WatchEvent::Put {
                            key,
                            value,
                            version,
                        },
                    );
                }
                TxnOp::Delete { key, .. } => {
                    if st.keys.remove(&key).is_some() {
                        st.emit(&self.events, WatchEvent::Delete { key, version });
                    }
                }
                TxnOp::Check { .. } => {}
            }
        }
        Ok(version)
    }
}

#[async_trait::async_trait]
impl MetadataStore for MemStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        validate(key, None)?;
        Ok(self.locked().keys.get(key).cloned())
    }

    async fn put(
        &self,
        key: &str,
        value: Bytes,
        expect: Expect,
        session: Option<SessionId>,
    ) -> Result<Version> {
        let mut st = self.locked();
        self.apply(
            &mut st,
            vec![TxnOp::Put {
                key: key.to_string(),
                value: value.to_vec(),
                expect,
                session,
            }],
        )
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<bool> {
        let mut st = self.locked();
        validate(key, None)?;
        check(&st.keys, key, expect)?;
        if !st.keys.contains_key(key) {
            return Ok(false);
        }
        self.apply(
            &mut st,
            vec![TxnOp::Delete {
                key: key.to_string(),
                expect,
            }],
        )?;
        Ok(true)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Versioned)>> {
        let st = self.locked();
        let start = match start_after {
            Some(a) if a >= prefix => std::ops::Bound::Excluded(a.to_string()),
            _ => std::ops::Bound::Included(prefix.to_string()),
        };
        Ok(st
            .keys
            .range((start, std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn txn(&self, ops: Vec<TxnOp>) -> Result<Version> {
        let mut st = self.locked();
        self.apply(&mut st, ops)
    }

    async fn increment(&self, key: &str, delta: u64) -> Result<u64> {
        let mut st = self.locked();
        let cur = match st.keys.get(key) {
            Some(v) => decode_counter(key, &v.value)?,
            None => 0,
        };
        let next = cur.checked_add(delta).ok_or_else(|| {
            MetadataError::InvalidArgument(format!("counter {key} would overflow"))
        })?;
        self.apply(
            &mut st,
            vec![TxnOp::Put {
                key: key.to_string(),
                value: next.to_be_bytes().to_vec(),
                expect: Expect::Any,
                session: None,
            }],
        )?;
        Ok(next)
    }

    async fn create_session(&self, ttl: Duration) -> Result<SessionId> {
        let mut st = self.locked();
        st.next_session += 1;
        let id = st.next_session;
        st.sessions.insert(
            id,
            Session {
                ttl,
                deadline: Instant::now() + ttl,
            },
        );
        Ok(SessionId(id))
    }

    async fn keep_alive(&self, session: SessionId) -> Result<()> {
        let mut st = self.locked();
        match st.sessions.get_mut(&session.0) {
            Some(s) => {
                s.deadline = Instant::now() + s.ttl;
                Ok(())
            }
            None => Err(MetadataError::SessionExpired(session.0)),
        }
    }

    async fn close_session(&self, session: SessionId) -> Result<()> {
        let mut st = self.locked();
        st.drop_session(&self.events, session.0);
        Ok(())
    }

    async fn watch(&self, prefix: &str, after: Version) -> Result<WatchStream> {
        let st = self.locked();
        let rx = self.events.subscribe();
        let oldest = st
            .history
            .front()
            .map(|(_, v, _)| v.0)
            .unwrap_or(st.revision + 1);
        let mut backlog = Vec::new();
        if after.0.saturating_add(1) < oldest && after.0 < st.revision {
            backlog.push(Ok(WatchEvent::Reset {
                version: Version(st.revision),
            }));
        } else {
            backlog.extend(
                st.history
                    .iter()
                    .filter(|(_, v, e)| *v > after && event_key(e).starts_with(prefix))
                    .map(|(_, _, e)| Ok(e.clone())),
            );
        }
        let seen = st.seq;
        let revision = Version(st.revision);
        drop(st);
        let prefix = prefix.to_string();
        let live = futures::stream::unfold((rx, seen), move |(mut rx, seen)| {
            let prefix = prefix.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok((seq, _, e)) if seq > seen && event_key(&e).starts_with(&prefix) => {
                            return Some((Ok(e), (rx, seq)));
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let reset = WatchEvent::Reset { version: revision };
                            return Some((Ok(reset), (rx, u64::MAX)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(Box::pin(futures::StreamExt::chain(
            futures::stream::iter(backlog),
            live,
        )))
    }

    async fn revision(&self) -> Result<Version> {
        Ok(Version(self.locked().revision))
    }
}

/// Decodes a counter value (8 bytes, big-endian).
pub fn decode_counter(key: &str, value: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| MetadataError::InvalidArgument(format!("{key} does not hold a counter")))?;
    Ok(u64::from_be_bytes(bytes))
}

fn event_key(e: &WatchEvent) -> &str {
    match e {
        WatchEvent::Put { key, .. } | WatchEvent::Delete { key, .. } => key,
        WatchEvent::Reset { .. } => "",
    }
}
