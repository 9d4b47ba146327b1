//! Conversions between the gRPC messages and the store types, and the one place where
//! [`MetadataError`] maps to gRPC status codes and back.

use bytes::Bytes;
use magnetar_proto::metadata as pb;
use tonic::{Code, Status};

use crate::error::MetadataError;
use crate::store::{Expect, SessionId, TxnOp, Version, Versioned, WatchEvent};

/// Metadata key set on a follower's rejection: the request was not proposed.
pub const NOT_LEADER: &str = "magnetar-not-leader";
/// Leader id hint on a not-leader rejection.
pub const LEADER_ID: &str = "magnetar-leader-id";
/// Leader address hint on a not-leader rejection.
pub const LEADER_ADDR: &str = "magnetar-leader-addr";
const OUTCOME_UNKNOWN: &[u8] = b"outcome-unknown";

/// Encodes an expectation.
pub fn expect_to_pb(e: Expect) -> pb::Expect {
    match e {
        Expect::Any => pb::Expect {
            kind: pb::ExpectKind::ExpectAny as i32,
            version: 0,
        },
        Expect::Absent => pb::Expect {
            kind: pb::ExpectKind::ExpectAbsent as i32,
            version: 0,
        },
        Expect::Version(v) => pb::Expect {
            kind: pb::ExpectKind::ExpectVersion as i32,
            version: v.0,
        },
    }
}

/// Decodes an expectation (absent = any).
pub fn expect_from_pb(e: Option<pb::Expect>) -> Result<Expect, MetadataError> {
    let Some(e) = e else { return Ok(Expect::Any) };
    match pb::ExpectKind::try_from(e.kind) {
        Ok(pb::ExpectKind::ExpectAny) => Ok(Expect::Any),
        Ok(pb::ExpectKind::ExpectAbsent) => Ok(Expect::Absent),
        Ok(pb::ExpectKind::ExpectVersion) => Ok(Expect::Version(Version(e.version))),
        Err(_) => Err(MetadataError::InvalidArgument(format!(
            "unknown expect kind {}",
            e.kind
        ))),
    }
}

fn session_opt(s: u64) -> Option<SessionId> {
    (s != 0).then_some(SessionId(s))
}

/// Encodes a key/value.
pub fn kv_to_pb(key: String, v: &Versioned) -> pb::KeyValue {
    pb::KeyValue {
        key,
        value: v.value.to_vec(),
        version: v.version.0,
        owner_session: v.owner.map(|s| s.0).unwrap_or(0),
    }
}

/// Decodes a key/value.
pub fn kv_from_pb(kv: pb::KeyValue) -> (String, Versioned) {
    let v = Versioned {
        value: Bytes::from(kv.value),
        version: Version(kv.version),
        owner: session_opt(kv.owner_session),
    };
    (kv.key, v)
}

/// Encodes a transaction op.
pub fn op_to_pb(op: TxnOp) -> pb::TxnOp {
    use pb::txn_op::Kind;
    match op {
        TxnOp::Put {
            key,
            value,
            expect,
            session,
        } => pb::TxnOp {
            kind: Kind::Put as i32,
            key,
            value,
            expect: Some(expect_to_pb(expect)),
            session: session.map(|s| s.0).unwrap_or(0),
        },
        TxnOp::Delete { key, expect } => pb::TxnOp {
            kind: Kind::Delete as i32,
            key,
            value: Vec::new(),
            expect: Some(expect_to_pb(expect)),
            session: 0,
        },
        TxnOp::Check { key, expect } => pb::TxnOp {
            kind: Kind::Check as i32,
            key,
            value: Vec::new(),
            expect: Some(expect_to_pb(expect)),
            session: 0,
        },
    }
}

/// Decodes a transaction op.
pub fn op_from_pb(op: pb::TxnOp) -> Result<TxnOp, MetadataError> {
    use pb::txn_op::Kind;
    let expect = expect_from_pb(op.expect)?;
    match Kind::try_from(op.kind) {
        Ok(Kind::Put) => Ok(TxnOp::Put {
            key: op.key,
            value: op.value,
            expect,
            session: session_opt(op.session),
        }),
        Ok(Kind::Delete) => Ok(TxnOp::Delete {
            key: op.key,
            expect,
        }),
        Ok(Kind::Check) => Ok(TxnOp::Check {
            key: op.key,
            expect,
        }),
        Err(_) => Err(MetadataError::InvalidArgument(format!(
            "unknown txn op kind {}",
            op.kind
        ))),
    }
}

/// Encodes a watch event.
pub fn event_to_pb(e: WatchEvent) -> pb::WatchEvent {
    use pb::watch_event::Kind;
    match e {
        WatchEvent::Put {
            key,
            value,
            version,
        } => pb::WatchEvent {
            kind: Kind::Put as i32,
            key,
            value: value.to_vec(),
            version: version.0,
        },
        WatchEvent::Delete { key, version } => pb::WatchEvent {
            kind: Kind::Delete as i32,
            key,
            value: Vec::new(),
            version: version.0,
        },
        WatchEvent::Reset { version } => pb::WatchEvent {
            kind: Kind::Reset as i32,
            key: String::new(),
            value: Vec::new(),
            version: version.0,
        },
    }
}

/// Decodes a watch event.
pub fn event_from_pb(e: pb::WatchEvent) -> Result<WatchEvent, MetadataError> {
    use pb::watch_event::Kind;
    let version = Version(e.version);
    match Kind::try_from(e.kind) {
        Ok(Kind::Put) => Ok(WatchEvent::Put {
            key: e.key,
            value: Bytes::from(e.value),
            version,
        }),
        Ok(Kind::Delete) => Ok(WatchEvent::Delete {
            key: e.key,
            version,
        }),
        Ok(Kind::Reset) => Ok(WatchEvent::Reset { version }),
        Err(_) => Err(MetadataError::Storage(format!(
            "unknown watch event kind {}",
            e.kind
        ))),
    }
}

/// Maps an error to the gRPC status sent to clients.
pub fn to_status(e: MetadataError) -> Status {
    match e {
        MetadataError::BadVersion {
            key,
            expected,
            actual,
        } => {
            let details = serde_json::to_vec(&(&key, &expected, &actual)).unwrap_or_default();
            let msg = format!("version conflict on {key}: expected {expected}, found {actual}");
            Status::with_details(Code::FailedPrecondition, msg, Bytes::from(details))
        }
        MetadataError::SessionExpired(id) => Status::with_details(
            Code::NotFound,
            format!("session {id} expired or unknown"),
            Bytes::from(id.to_string()),
        ),
        MetadataError::InvalidArgument(m) => Status::invalid_argument(m),
        MetadataError::Unavailable(m) => Status::unavailable(m),
        MetadataError::OutcomeUnknown(m) => {
            Status::with_details(Code::Unavailable, m, Bytes::from_static(OUTCOME_UNKNOWN))
        }
        MetadataError::Storage(m) => Status::internal(m),
        MetadataError::Shutdown => Status::unavailable("metadata service shutting down"),
    }
}

/// Maps a status from a server back to an error. `sent` tells whether the request may have
/// reached a leader (transport errors after sending make a write's outcome unknown).
pub fn from_status(s: &Status) -> MetadataError {
    match s.code() {
        Code::FailedPrecondition => {
            match serde_json::from_slice::<(String, String, String)>(s.details()) {
                Ok((key, expected, actual)) => MetadataError::BadVersion {
                    key,
                    expected,
                    actual,
                },
                Err(_) => MetadataError::BadVersion {
                    key: String::new(),
                    expected: String::new(),
                    actual: s.message().to_string(),
                },
            }
        }
        Code::NotFound => {
            let id = std::str::from_utf8(s.details())
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            MetadataError::SessionExpired(id)
        }
        Code::InvalidArgument | Code::OutOfRange | Code::ResourceExhausted => {
            MetadataError::InvalidArgument(s.message().to_string())
        }
        Code::Internal | Code::DataLoss => MetadataError::Storage(s.message().to_string()),
        Code::Unavailable if s.details() == OUTCOME_UNKNOWN => {
            MetadataError::OutcomeUnknown(s.message().to_string())
        }
        _ => MetadataError::Unavailable(format!("{}: {}", s.code(), s.message())),
    }
}

/// If the status is a follower's not-leader rejection: the leader's address hint.
pub fn not_leader(s: &Status) -> Option<Option<String>> {
    s.metadata().get(NOT_LEADER)?;
    let addr = s
        .metadata()
        .get(LEADER_ADDR)
        .and_then(|v| v.to_str().ok())
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    Some(addr)
}

/// A not-leader rejection carrying the leader hint.
pub fn not_leader_status(leader: Option<(u64, String)>) -> Status {
    let mut s = Status::unavailable("not the metadata leader");
    let md = s.metadata_mut();
    md.insert(NOT_LEADER, tonic::metadata::MetadataValue::from_static("1"));
    if let Some((id, addr)) = leader {
        if let Ok(v) = id.to_string().parse() {
            md.insert(LEADER_ID, v);
        }
        if let Ok(v) = addr.parse() {
            md.insert(LEADER_ADDR, v);
        }
    }
    s
}
