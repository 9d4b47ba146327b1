//! Pure replication decisions: which stored entries go to a remote cluster, the sequence id
//! an entry is republished with, and how a stored entry splits into metadata and body.

use bytes::Bytes;
use magnetar_proto::pulsar::MessageMetadata;
use prost::Message as _;

use crate::position::Position;

/// Prefix of replicator cursor names: `pulsar.repl.{remote}` (as in Pulsar).
pub const CURSOR_PREFIX: &str = "pulsar.repl.";

/// The cursor a topic's replicator to `remote` uses.
pub fn cursor_name(remote: &str) -> String {
    format!("{CURSOR_PREFIX}{remote}")
}

/// True for replicator cursors, which are not subscriptions.
pub fn is_replicator_cursor(name: &str) -> bool {
    name.starts_with(CURSOR_PREFIX)
}

/// The producer name a replicator from `local` uses on the remote topic `topic`: stable
/// across restarts, so the remote's deduplication recognises resends.
pub fn producer_name(local: &str, topic: &str) -> String {
    format!("{local}.repl.{:08x}", crc32c::crc32c(topic.as_bytes()))
}

/// The sequence id an entry is republished with: increasing with the position, so the
/// remote drops a resend of anything it already stored. Assumes entry ids below 2^32 and
/// ledger ids below 2^31 (ledger ids are a metadata counter; ledgers roll over long before).
pub fn sequence_id(p: Position) -> u64 {
    (p.ledger << 32) | (p.entry & 0xffff_ffff)
}

/// Whether a message with metadata `md` is replicated to `remote`: never a message that was
/// itself replicated (no loops), and only to the clusters its `replicate_to` names when it
/// names any (`disable_replication` sets it to `["__local__"]`).
pub fn should_replicate(md: &MessageMetadata, remote: &str) -> bool {
    if md.replicated_from.is_some() {
        return false;
    }
    md.replicate_to.is_empty() || md.replicate_to.iter().any(|c| c == remote)
}

/// Splits a stored entry (`[magic crc32c] metadata-size metadata body`) into its metadata
/// and body. `None` if it does not parse.
pub fn split_entry(raw: &Bytes) -> Option<(MessageMetadata, Bytes)> {
    let start = if raw.len() >= 2 && raw[0] == 0x0e && raw[1] == 0x01 {
        6
    } else {
        0
    };
    let size_end = start + 4;
    if raw.len() < size_end {
        return None;
    }
    let size =
        u32::from_be_bytes([raw[start], raw[start + 1], raw[start + 2], raw[start + 3]]) as usize;
    let md_end = size_end.checked_add(size)?;
    if raw.len() < md_end {
        return None;
    }
    let md = MessageMetadata::decode(&raw[size_end..md_end]).ok()?;
    Some((md, raw.slice(md_end..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md() -> MessageMetadata {
        MessageMetadata {
            producer_name: "p".into(),
            sequence_id: 7,
            publish_time: 1,
            ..Default::default()
        }
    }

    #[test]
    fn replicated_messages_never_go_back() {
        let mut m = md();
        assert!(should_replicate(&m, "b"));
        m.replicated_from = Some("b".into());
        assert!(!should_replicate(&m, "b"));
        assert!(!should_replicate(&m, "c"));
    }

    #[test]
    fn replicate_to_restricts_targets() {
        let mut m = md();
        m.replicate_to = vec!["c".into()];
        assert!(!should_replicate(&m, "b"));
        assert!(should_replicate(&m, "c"));
        m.replicate_to = vec!["__local__".into()];
        assert!(!should_replicate(&m, "b"));
    }

    #[test]
    fn sequence_ids_increase_with_positions() {
        let ps = [
            Position::new(1, 0),
            Position::new(1, 1),
            Position::new(1, 900),
            Position::new(2, 0),
            Position::new(30, 5),
        ];
        for w in ps.windows(2) {
            assert!(sequence_id(w[0]) < sequence_id(w[1]));
        }
        assert!(sequence_id(Position::new((1 << 31) - 1, u32::MAX as u64)) <= i64::MAX as u64);
    }

    #[test]
    fn split_entry_round_trips_client_encoding() {
        let raw = magnetar_client::wire::encode_payload(&md(), b"hello");
        let (m, body) = split_entry(&raw).expect("parses");
        assert_eq!(m, md());
        assert_eq!(&body[..], b"hello");
        assert!(split_entry(&Bytes::from_static(b"\x0e\x01")).is_none());
        assert!(split_entry(&Bytes::from_static(b"\x00\x00\x00\x09ab")).is_none());
    }

    #[test]
    fn replicator_cursors_are_recognised() {
        assert!(is_replicator_cursor(&cursor_name("b")));
        assert!(!is_replicator_cursor("my-sub"));
        assert_ne!(producer_name("a", "t1"), producer_name("a", "t2"));
    }
}
