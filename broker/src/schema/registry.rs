//! Loads and stores schema histories in the metadata service: one key per topic
//! (partitions share their partitioned topic's key), updated by compare-and-set so that
//! concurrent registrations on several brokers agree on version numbers.

use bytes::Bytes;
use magnetar_metadata::{Expect, MetadataStore};

use super::history::{Resolution, SchemaEntry, SchemaHistory};
use crate::error::{BrokerError, Result};
use crate::names::TopicName;

/// Compare-and-set attempts before a registration gives up (each loses only to another
/// writer that made progress).
const MAX_CAS_ATTEMPTS: usize = 32;

/// Who presents a schema: producers may add versions; consumers only add the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// PRODUCER, GET_OR_CREATE_SCHEMA and the admin upload.
    Producer,
    /// SUBSCRIBE.
    Consumer,
}

/// Metadata key of a topic's schema history: `/schemas/{tenant}/{namespace}/{topic}`,
/// the same for every partition of a partitioned topic and for both domains (Pulsar's
/// schema id is `tenant/namespace/topic`).
pub fn key(topic: &TopicName) -> String {
    let base = topic.base();
    format!("/schemas/{}/{}/{}", base.tenant, base.namespace, base.local)
}

async fn load_versioned(
    store: &dyn MetadataStore,
    topic: &TopicName,
) -> Result<(SchemaHistory, Expect)> {
    match store.get(&key(topic)).await? {
        Some(v) => Ok((
            serde_json::from_slice(&v.value)?,
            Expect::Version(v.version),
        )),
        None => Ok((SchemaHistory::default(), Expect::Absent)),
    }
}

/// A topic's schema history (empty if it never had a schema).
pub async fn load(store: &dyn MetadataStore, topic: &TopicName) -> Result<SchemaHistory> {
    Ok(load_versioned(store, topic).await?.0)
}

/// Applies `change` to the stored history with compare-and-set, retrying on conflicts.
/// `change` returns `Err` to fail, `Ok((answer, false))` to answer without writing.
async fn update<T>(
    store: &dyn MetadataStore,
    topic: &TopicName,
    mut change: impl FnMut(&mut SchemaHistory) -> Result<(T, bool)>,
) -> Result<T> {
    let k = key(topic);
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (mut history, expect) = load_versioned(store, topic).await?;
        let (answer, write) = change(&mut history)?;
        if !write {
            return Ok(answer);
        }
        let value = Bytes::from(serde_json::to_vec(&history)?);
        match store.put(&k, value, expect, None).await {
            Ok(_) => return Ok(answer),
            Err(e) if e.is_bad_version() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(BrokerError::ServiceNotReady(format!(
        "schema of {topic} changed concurrently {MAX_CAS_ATTEMPTS} times; retry"
    )))
}

/// Registers `candidate` for `topic`: the version of an identical live schema, a new
/// version (the first schema, or a producer's new definition of the same type), `None`
/// for a consumer whose new definition is accepted without being stored, or
/// [`BrokerError::IncompatibleSchema`] when the type differs from the current schema's.
pub async fn register(
    store: &dyn MetadataStore,
    topic: &TopicName,
    candidate: SchemaEntry,
    role: Role,
) -> Result<Option<u64>> {
    update(store, topic, |history| match history.resolve(&candidate) {
        Resolution::Existing(v) => Ok((Some(v), false)),
        Resolution::Incompatible(reason) => Err(BrokerError::IncompatibleSchema(reason)),
        Resolution::New if role == Role::Consumer && history.has_schema() => Ok((None, false)),
        Resolution::New => Ok((Some(history.push(candidate.clone())), true)),
    })
    .await
}

/// Deletes the topic's schema (appends a deletion marker); the marker's version, or
/// `None` if the topic had no live schema.
pub async fn delete(store: &dyn MetadataStore, topic: &TopicName) -> Result<Option<u64>> {
    update(store, topic, |history| {
        let v = history.delete();
        Ok((v, v.is_some()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use magnetar_metadata::MemStore;

    use super::*;
    use crate::schema::SchemaType;

    fn entry(kind: &str, data: &str) -> SchemaEntry {
        SchemaEntry::new(
            SchemaType::from_name(kind).expect("type"),
            data.as_bytes().to_vec(),
            BTreeMap::new(),
        )
    }

    fn topic(name: &str) -> TopicName {
        TopicName::parse(name).expect("topic name")
    }

    #[tokio::test]
    async fn partitions_share_the_partitioned_topics_schema() {
        let store = MemStore::new();
        let p0 = topic("persistent://t/ns/orders-partition-0");
        let p1 = topic("persistent://t/ns/orders-partition-1");
        assert_eq!(key(&p0), "/schemas/t/ns/orders");
        let v = register(&*store, &p0, entry("JSON", "a"), Role::Producer).await;
        assert_eq!(v.expect("register"), Some(0));
        let v = register(&*store, &p1, entry("JSON", "a"), Role::Producer).await;
        assert_eq!(v.expect("register"), Some(0));
        let h = load(&*store, &topic("t/ns/orders")).await.expect("load");
        assert_eq!(h.versions.len(), 1);
    }

    #[tokio::test]
    async fn producers_evolve_consumers_only_check() {
        let store = MemStore::new();
        let t = topic("persistent://t/ns/evolve");
        let r = register(&*store, &t, entry("JSON", "v0"), Role::Consumer).await;
        assert_eq!(r.expect("first schema from a consumer"), Some(0));
        let r = register(&*store, &t, entry("JSON", "v1"), Role::Consumer).await;
        assert_eq!(r.expect("same type from a consumer"), None);
        let r = register(&*store, &t, entry("JSON", "v1"), Role::Producer).await;
        assert_eq!(r.expect("new definition from a producer"), Some(1));
        let err = register(&*store, &t, entry("STRING", ""), Role::Producer)
            .await
            .expect_err("other type");
        assert!(matches!(err, BrokerError::IncompatibleSchema(_)), "{err}");
        assert_eq!(delete(&*store, &t).await.expect("delete"), Some(2));
        assert_eq!(delete(&*store, &t).await.expect("delete again"), None);
        let r = register(&*store, &t, entry("STRING", ""), Role::Producer).await;
        assert_eq!(r.expect("any type after delete"), Some(3));
    }

    #[tokio::test]
    async fn concurrent_registrations_agree_on_one_version() {
        let store: Arc<dyn MetadataStore> = MemStore::new();
        let t = topic("persistent://t/ns/race");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (store, t) = (store.clone(), t.clone());
                tokio::spawn(async move {
                    register(&*store, &t, entry("AVRO", "x"), Role::Producer).await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.expect("join").expect("register"), Some(0));
        }
        assert_eq!(load(&*store, &t).await.expect("load").versions.len(), 1);
    }
}
