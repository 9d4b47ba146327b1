//! Unit tests of the pure state machine: apply semantics and snapshot encoding.

use bytes::Bytes;
use openraft::{CommittedLeaderId, LogId};
use proptest::prelude::*;

use super::sm::{SharedState, SmData};
use super::types::{ApplyError, Command, CommandResult};
use crate::store::{Expect, SessionId, TxnOp, Version, Versioned, WatchEvent};

fn put(key: &str, expect: Expect, session: Option<u64>) -> Command {
    Command::Txn {
        ops: vec![TxnOp::Put {
            key: key.into(),
            value: b"v".to_vec(),
            expect,
            session: session.map(SessionId),
        }],
    }
}

#[test]
fn version_is_the_log_index_and_cas_checks_it() {
    let mut d = SmData::default();
    let mut ev = Vec::new();
    assert_eq!(
        d.apply(7, put("/a", Expect::Absent, None), &mut ev),
        CommandResult::Txn {
            version: 7,
            deleted: false
        }
    );
    assert!(matches!(
        d.apply(8, put("/a", Expect::Version(Version(6)), None), &mut ev),
        CommandResult::Failed(ApplyError::BadVersion { .. })
    ));
    assert_eq!(
        d.apply(9, put("/a", Expect::Version(Version(7)), None), &mut ev),
        CommandResult::Txn {
            version: 9,
            deleted: false
        }
    );
    assert_eq!(ev.len(), 2);
}

#[test]
fn expire_applies_only_if_not_renewed_since() {
    let mut d = SmData::default();
    let mut ev = Vec::new();
    assert_eq!(
        d.apply(1, Command::CreateSession { ttl_ms: 100 }, &mut ev),
        CommandResult::Session(1)
    );
    d.apply(2, put("/e", Expect::Any, Some(1)), &mut ev);
    d.apply(3, Command::KeepAlive { session: 1 }, &mut ev);
    // The leader decided expiry based on the renewal at 1; the one at 3 wins.
    d.apply(
        4,
        Command::ExpireSession {
            session: 1,
            renewed_at: 1,
        },
        &mut ev,
    );
    assert!(d.keys.contains_key("/e"));
    d.apply(
        5,
        Command::ExpireSession {
            session: 1,
            renewed_at: 3,
        },
        &mut ev,
    );
    assert!(!d.keys.contains_key("/e"));
    assert!(d.sessions.is_empty());
    assert_eq!(
        ev.last(),
        Some(&WatchEvent::Delete {
            key: "/e".into(),
            version: Version(5)
        })
    );
}

#[test]
fn bad_input_is_rejected_without_panicking() {
    let mut d = SmData::default();
    let mut ev = Vec::new();
    let huge = Command::Txn {
        ops: vec![TxnOp::Put {
            key: "/big".into(),
            value: vec![0; 1024 * 1024 + 1],
            expect: Expect::Any,
            session: None,
        }],
    };
    assert!(matches!(
        d.apply(1, huge, &mut ev),
        CommandResult::Failed(ApplyError::Invalid(_))
    ));
    let bad_key = Command::Increment {
        key: "nokey".into(),
        delta: 1,
    };
    assert!(matches!(
        d.apply(2, bad_key, &mut ev),
        CommandResult::Failed(_)
    ));
    let state = SharedState::default();
    let log_id = LogId::new(CommittedLeaderId::new(1, 1), 3);
    let big_ttl = Command::CreateSession { ttl_ms: u64::MAX };
    assert_eq!(
        state.apply_batch(vec![(log_id, Some(big_ttl), None)]).len(),
        1
    );
}

proptest! {
    #[test]
    fn snapshot_roundtrips(
        keys in proptest::collection::btree_map("/[a-z]{1,8}", (proptest::collection::vec(any::<u8>(), 0..32), 1u64..1000, proptest::option::of(1u64..10)), 0..20),
        applied in 0u64..1000,
    ) {
        let mut d = SmData::default();
        for (k, (v, ver, owner)) in keys {
            d.keys.insert(k, Versioned { value: Bytes::from(v), version: Version(ver), owner: owner.map(SessionId) });
        }
        d.last_applied = Some(LogId::new(CommittedLeaderId::new(2, 1), applied));
        let back = SmData::decode(&d.encode().expect("encode")).expect("decode");
        prop_assert_eq!(back.keys, d.keys);
        prop_assert_eq!(back.last_applied, d.last_applied);
    }
}
