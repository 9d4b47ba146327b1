//! A topic's schema history and the pure decisions taken on it: which version a
//! producer's or consumer's schema maps to, whether it must be added, or whether it is
//! incompatible. No IO here; [`super::registry`] loads and stores histories.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Pulsar's schema type names, indexed by the wire `Schema.Type` value.
const NAMES: [&str; 21] = [
    "NONE",
    "STRING",
    "JSON",
    "PROTOBUF",
    "AVRO",
    "BOOLEAN",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FLOAT",
    "DOUBLE",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "KEY_VALUE",
    "INSTANT",
    "LOCAL_DATE",
    "LOCAL_TIME",
    "LOCAL_DATE_TIME",
    "PROTOBUF_NATIVE",
];

/// A storable schema type (the wire `Schema.Type` values 1..=20; `NONE`, `BYTES` and the
/// `AUTO_*` types mean "no schema" and are never stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SchemaType(i32);

impl SchemaType {
    /// The type of a wire `Schema.Type`, or `None` when it does not name a storable schema.
    pub fn from_wire(value: i32) -> Option<SchemaType> {
        (1..NAMES.len() as i32)
            .contains(&value)
            .then_some(SchemaType(value))
    }

    /// The type with Pulsar's name (`"JSON"`, `"AVRO"`, ...; case-sensitive as in Pulsar).
    pub fn from_name(name: &str) -> Option<SchemaType> {
        NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| SchemaType::from_wire(i as i32))
    }

    /// The wire `Schema.Type` value.
    pub fn wire(self) -> i32 {
        self.0
    }

    /// Pulsar's name of the type.
    pub fn name(self) -> &'static str {
        NAMES[self.0 as usize]
    }

    /// Every storable type name (for the admin API description).
    pub fn names() -> &'static [&'static str] {
        &NAMES[1..]
    }
}

impl Serialize for SchemaType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for SchemaType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        SchemaType::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown schema type {name:?}")))
    }
}

/// Schema definition bytes, stored as hex (they need not be UTF-8).
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd-length hex"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("invalid hex"))
            })
            .collect()
    }
}

/// One version of a topic's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaEntry {
    /// The schema type (meaningless on a deletion marker).
    #[serde(rename = "type")]
    pub kind: SchemaType,
    /// The schema definition (an Avro-style JSON document for AVRO/JSON, empty for STRING).
    #[serde(with = "hex_bytes")]
    pub data: Vec<u8>,
    /// User properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Milliseconds since the epoch when this version was stored.
    pub timestamp: i64,
    /// A deletion marker (admin delete): versions before it no longer count.
    #[serde(default)]
    pub deleted: bool,
}

impl SchemaEntry {
    /// A live (not deleted) schema stamped with the current time.
    pub fn new(
        kind: SchemaType,
        data: Vec<u8>,
        properties: BTreeMap<String, String>,
    ) -> SchemaEntry {
        SchemaEntry {
            kind,
            data,
            properties,
            timestamp: now_millis(),
            deleted: false,
        }
    }

    fn same_definition(&self, other: &SchemaEntry) -> bool {
        self.kind == other.kind && self.data == other.data
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What a candidate schema means for a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Identical (type and definition) to this live version.
    Existing(u64),
    /// Acceptable, but not stored yet: it would become a new version.
    New,
    /// Its type differs from the topic's current schema.
    Incompatible(String),
}

/// Every version of one topic's schema; version `n` is `versions[n]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemaHistory {
    /// All versions, deletion markers included, oldest first.
    pub versions: Vec<SchemaEntry>,
}

impl SchemaHistory {
    /// Index of the first version after the last deletion marker.
    fn live_start(&self) -> usize {
        self.versions
            .iter()
            .rposition(|v| v.deleted)
            .map_or(0, |i| i + 1)
    }

    /// The live versions with their numbers (those after the last deletion).
    pub fn live(&self) -> impl Iterator<Item = (u64, &SchemaEntry)> {
        let start = self.live_start();
        self.versions
            .iter()
            .enumerate()
            .skip(start)
            .map(|(i, v)| (i as u64, v))
    }

    /// The newest live version, if the topic has a schema.
    pub fn latest(&self) -> Option<(u64, &SchemaEntry)> {
        self.live().last()
    }

    /// Version `n` (a deletion marker included), if it was ever stored.
    pub fn get(&self, n: u64) -> Option<&SchemaEntry> {
        usize::try_from(n).ok().and_then(|i| self.versions.get(i))
    }

    /// True if the topic currently has a schema.
    pub fn has_schema(&self) -> bool {
        self.latest().is_some()
    }

    /// What `candidate` means for this topic. Only the type is checked for compatibility:
    /// a definition of the same type is accepted as a new version (see ADR 0007).
    pub fn resolve(&self, candidate: &SchemaEntry) -> Resolution {
        if let Some((v, _)) = self
            .live()
            .filter(|(_, e)| e.same_definition(candidate))
            .last()
        {
            return Resolution::Existing(v);
        }
        match self.latest() {
            Some((v, cur)) if cur.kind != candidate.kind => Resolution::Incompatible(format!(
                "schema type {} is incompatible with the topic's schema version {v} of type {}",
                candidate.kind.name(),
                cur.kind.name()
            )),
            _ => Resolution::New,
        }
    }

    /// Appends a version and returns its number.
    pub fn push(&mut self, entry: SchemaEntry) -> u64 {
        self.versions.push(entry);
        (self.versions.len() - 1) as u64
    }

    /// Appends a deletion marker; `None` (nothing changed) if there is no live schema.
    pub fn delete(&mut self) -> Option<u64> {
        let (_, latest) = self.latest()?;
        let marker = SchemaEntry {
            kind: latest.kind,
            data: Vec::new(),
            properties: BTreeMap::new(),
            timestamp: now_millis(),
            deleted: true,
        };
        Some(self.push(marker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: &str, data: &str) -> SchemaEntry {
        SchemaEntry::new(
            SchemaType::from_name(kind).expect("known type"),
            data.as_bytes().to_vec(),
            BTreeMap::new(),
        )
    }

    #[test]
    fn type_names_round_trip_and_none_is_not_storable() {
        for name in SchemaType::names() {
            let t = SchemaType::from_name(name).expect("name");
            assert_eq!(t.name(), *name);
            assert_eq!(SchemaType::from_wire(t.wire()), Some(t));
        }
        assert_eq!(SchemaType::from_wire(0), None);
        assert_eq!(SchemaType::from_wire(21), None);
        assert_eq!(SchemaType::from_wire(-1), None);
        assert_eq!(SchemaType::from_name("NONE"), None);
        assert_eq!(SchemaType::from_name("json"), None);
        assert_eq!(SchemaType::from_name("JSON").map(SchemaType::wire), Some(2));
    }

    #[test]
    fn first_schema_is_new_and_identical_one_maps_to_its_version() {
        let mut h = SchemaHistory::default();
        let json = entry("JSON", "{\"a\":1}");
        assert_eq!(h.resolve(&json), Resolution::New);
        assert_eq!(h.push(json.clone()), 0);
        let mut again = json.clone();
        again.timestamp += 10;
        again.properties.insert("k".into(), "v".into());
        assert_eq!(h.resolve(&again), Resolution::Existing(0));
    }

    #[test]
    fn other_type_is_incompatible_and_same_type_new_definition_is_a_new_version() {
        let mut h = SchemaHistory::default();
        h.push(entry("JSON", "v0"));
        assert!(matches!(
            h.resolve(&entry("STRING", "")),
            Resolution::Incompatible(_)
        ));
        let v1 = entry("JSON", "v1");
        assert_eq!(h.resolve(&v1), Resolution::New);
        assert_eq!(h.push(v1), 1);
        assert_eq!(h.resolve(&entry("JSON", "v0")), Resolution::Existing(0));
        assert_eq!(h.resolve(&entry("JSON", "v1")), Resolution::Existing(1));
        assert_eq!(h.latest().map(|(v, _)| v), Some(1));
    }

    #[test]
    fn delete_hides_old_versions_and_numbering_continues() {
        let mut h = SchemaHistory::default();
        h.push(entry("JSON", "v0"));
        assert_eq!(h.delete(), Some(1));
        assert!(!h.has_schema());
        assert_eq!(h.delete(), None, "nothing live to delete");
        // After a delete any type may be registered again, as a new version.
        let s = entry("STRING", "");
        assert_eq!(h.resolve(&s), Resolution::New);
        assert_eq!(h.resolve(&entry("JSON", "v0")), Resolution::New);
        assert_eq!(h.push(s), 2);
        assert_eq!(h.live().map(|(v, _)| v).collect::<Vec<_>>(), vec![2]);
        assert!(h.get(1).is_some_and(|e| e.deleted));
    }

    #[test]
    fn history_round_trips_through_json_with_binary_data() {
        let mut h = SchemaHistory::default();
        let mut e = entry("KEY_VALUE", "");
        e.data = vec![0, 1, 0xfe, 0xff];
        e.properties.insert("p".into(), "q".into());
        h.push(e);
        h.delete();
        let json = serde_json::to_vec(&h).expect("encode");
        let back: SchemaHistory = serde_json::from_slice(&json).expect("decode");
        assert_eq!(back, h);
        let bad = br#"{"versions":[{"type":"NOPE","data":"","timestamp":0}]}"#;
        assert!(serde_json::from_slice::<SchemaHistory>(bad).is_err());
    }
}
