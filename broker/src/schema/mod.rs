//! The schema registry: each topic's schema versions (0, 1, 2, ...), kept in the metadata
//! service under `/schemas/{tenant}/{namespace}/{topic}` and shared by the partitions of a
//! partitioned topic.
//!
//! [`history`] holds the pure decisions (identical schema -> its version, other type ->
//! incompatible, same type with a new definition -> new version; see ADR 0007 for why
//! full Avro compatibility is not checked); [`registry`] stores histories with
//! compare-and-set. This module also converts between stored entries and the wire
//! `Schema` message, and encodes versions as Pulsar does (an 8-byte big-endian long).

pub mod history;
pub mod registry;

use std::collections::BTreeMap;

use magnetar_client::wire::proto::{KeyValue, Schema};

pub use history::{SchemaEntry, SchemaHistory, SchemaType};
pub use registry::{delete, key, load, register, Role};

use crate::names::TopicName;

/// The stored form of a wire schema, or `None` for "no schema" (`NONE`, `AUTO_CONSUME`
/// and any type this broker does not know, as Pulsar treats `NONE`).
pub fn from_wire(schema: &Schema) -> Option<SchemaEntry> {
    let kind = SchemaType::from_wire(schema.r#type)?;
    let properties: BTreeMap<String, String> = schema
        .properties
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    Some(SchemaEntry::new(
        kind,
        schema.schema_data.clone(),
        properties,
    ))
}

/// The wire form of a stored schema; its name is the topic's schema id, as in Pulsar.
pub fn to_wire(topic: &TopicName, entry: &SchemaEntry) -> Schema {
    let base = topic.base();
    Schema {
        name: format!("{}/{}/{}", base.tenant, base.namespace, base.local),
        schema_data: entry.data.clone(),
        r#type: entry.kind.wire(),
        properties: entry
            .properties
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
    }
}

/// A version as the protocol carries it: an 8-byte big-endian long.
pub fn version_bytes(version: u64) -> Vec<u8> {
    i64::try_from(version)
        .unwrap_or(i64::MAX)
        .to_be_bytes()
        .to_vec()
}

/// The version in a protocol `schema_version` (`None` unless 8 bytes holding a version).
pub fn version_from_bytes(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.try_into().ok()?;
    u64::try_from(i64::from_be_bytes(arr)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_big_endian_longs() {
        assert_eq!(version_bytes(1), vec![0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(version_from_bytes(&version_bytes(258)), Some(258));
        assert_eq!(version_from_bytes(&[0, 1]), None);
        assert_eq!(version_from_bytes(&(-1i64).to_be_bytes()), None);
    }

    #[test]
    fn wire_conversion_keeps_type_data_and_properties() {
        let wire = Schema {
            name: "ignored".into(),
            schema_data: b"{\"type\":\"record\"}".to_vec(),
            r#type: 2,
            properties: vec![KeyValue {
                key: "k".into(),
                value: "v".into(),
            }],
        };
        let entry = from_wire(&wire).expect("JSON is storable");
        assert_eq!(entry.kind.name(), "JSON");
        let topic = TopicName::parse("persistent://t/ns/x-partition-2").expect("name");
        let back = to_wire(&topic, &entry);
        assert_eq!(back.name, "t/ns/x");
        assert_eq!(
            (back.r#type, back.schema_data, back.properties),
            (wire.r#type, wire.schema_data, wire.properties)
        );
        let none = Schema {
            r#type: 0,
            ..Default::default()
        };
        assert!(from_wire(&none).is_none());
    }
}
