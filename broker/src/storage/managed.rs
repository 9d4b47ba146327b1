//! [`TopicStorage`] over managed ledgers: the production storage of topics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use magnetar_bookie::Ledgers;
use magnetar_metadata::MetadataStore;
use tokio::sync::watch;

use super::{InitialPosition, SubCursor, TopicLog, TopicStorage};
use crate::config::BrokerConfig;
use crate::error::Result;
use crate::ml::{self, ManagedCursor, ManagedLedger, MlConfig};
use crate::position::Position;

/// Opens managed ledgers for topics.
pub struct ManagedStorage {
    ledgers: Arc<dyn Ledgers>,
    meta: Arc<dyn MetadataStore>,
    cfg: MlConfig,
    /// One entry cache for every topic of the broker: `cache_size_bytes` bounds the whole
    /// broker, and positions are unique across topics because ledger ids are global.
    cache: Arc<ml::EntryCache>,
    open: tokio::sync::Mutex<HashMap<String, Arc<ManagedLog>>>,
}

impl ManagedStorage {
    /// Storage with ledger settings from the broker config.
    pub fn new(
        config: &BrokerConfig,
        ledgers: Arc<dyn Ledgers>,
        meta: Arc<dyn MetadataStore>,
    ) -> Arc<ManagedStorage> {
        let cfg = MlConfig {
            ledger: config.ledger,
            max_entries_per_ledger: config.max_entries_per_ledger,
            max_ledger_size_bytes: config.max_ledger_size_bytes,
            max_ledger_age: Duration::from_secs(config.max_ledger_rollover_secs),
            cache_size_bytes: config.cache_size_bytes,
            min_ledger_rollover_time: Duration::from_secs(
                config.lifecycle.min_ledger_rollover_secs,
            ),
            ..MlConfig::default()
        };
        Arc::new(ManagedStorage {
            ledgers,
            meta,
            cache: ml::EntryCache::new(cfg.cache_size_bytes),
            cfg,
            open: tokio::sync::Mutex::new(HashMap::new()),
        })
    }
}

#[async_trait::async_trait]
impl TopicStorage for ManagedStorage {
    async fn open(&self, name: &str) -> Result<Arc<dyn TopicLog>> {
        let mut open = self.open.lock().await;
        if let Some(l) = open.get(name) {
            if l.ml.status() == ml::MlStatus::Open {
                return Ok(l.clone());
            }
        }
        let ml = ManagedLedger::open_with_cache(
            name,
            self.ledgers.clone(),
            self.meta.clone(),
            self.cfg.clone(),
            self.cache.clone(),
        )
        .await?;
        let log = Arc::new(ManagedLog { ml });
        open.insert(name.to_string(), log.clone());
        Ok(log)
    }
}

/// A topic log backed by a managed ledger.
pub struct ManagedLog {
    ml: Arc<ManagedLedger>,
}

fn initial(i: InitialPosition) -> ml::InitialPosition {
    match i {
        InitialPosition::Latest => ml::InitialPosition::Latest,
        InitialPosition::Earliest => ml::InitialPosition::Earliest,
        InitialPosition::At(p) => ml::InitialPosition::Position(p.into()),
    }
}

#[async_trait::async_trait]
impl TopicLog for ManagedLog {
    fn append(&self, data: Bytes) -> BoxFuture<'static, Result<Position>> {
        let fut = self.ml.add(data);
        async move { Ok(fut.await?.into()) }.boxed()
    }

    async fn read(&self, from: Position, max: usize) -> Result<Vec<(Position, Bytes)>> {
        Ok(self
            .ml
            .read(from.into(), max)
            .await?
            .into_iter()
            .map(|(p, b)| (p.into(), b))
            .collect())
    }

    fn last_confirmed(&self) -> Option<Position> {
        self.ml.last_confirmed().map(Into::into)
    }

    fn watch_lac(&self) -> watch::Receiver<Option<Position>> {
        // The ML's watch carries its own position type; bridge it.
        let mut src = self.ml.lac_watch();
        let (tx, rx) = watch::channel(src.borrow().map(Into::into));
        tokio::spawn(async move {
            while src.changed().await.is_ok() {
                let v = src.borrow().map(Into::into);
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        rx
    }

    fn first_position(&self) -> Position {
        self.ml.first_position().into()
    }

    fn next_position(&self, p: Position) -> Position {
        self.ml.next_position(p.into()).into()
    }

    fn current_ledger(&self) -> u64 {
        self.ml.ledgers_info().last().map_or(0, |l| l.id.0)
    }

    fn entries(&self) -> u64 {
        self.ml.entries_count()
    }

    fn size_bytes(&self) -> u64 {
        self.ml.total_size()
    }

    fn cursor_names(&self) -> Vec<String> {
        self.ml
            .cursors()
            .iter()
            .map(|c| c.name().to_string())
            .collect()
    }

    async fn open_cursor(
        &self,
        name: &str,
        initial_pos: InitialPosition,
    ) -> Result<Arc<dyn SubCursor>> {
        let c = self.ml.open_cursor(name, initial(initial_pos)).await?;
        Ok(Arc::new(MlCursor { c }))
    }

    async fn delete_cursor(&self, name: &str) -> Result<()> {
        match self.ml.delete_cursor(name).await {
            Ok(()) | Err(ml::MlError::NoSuchCursor { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self) -> Result<()> {
        Ok(self.ml.delete().await?)
    }

    fn is_healthy(&self) -> bool {
        self.ml.status() == ml::MlStatus::Open
    }

    fn properties(&self) -> std::collections::BTreeMap<String, String> {
        self.ml.properties()
    }

    async fn set_property(&self, key: &str, value: &str) -> Result<()> {
        Ok(self.ml.set_property(key, value).await?)
    }

    fn set_retention(&self, policy: Option<ml::RetentionPolicy>) {
        self.ml.set_auto_trim(policy);
    }

    async fn trim(&self, policy: ml::RetentionPolicy) -> Result<()> {
        self.ml.trim(policy).await?;
        Ok(())
    }

    async fn close(&self) -> Result<()> {
        Ok(self.ml.close().await?)
    }
}

/// A durable managed-ledger cursor.
pub struct MlCursor {
    c: Arc<ManagedCursor>,
}

#[async_trait::async_trait]
impl SubCursor for MlCursor {
    fn mark_delete(&self) -> Option<Position> {
        self.c.mark_delete_position().map(Into::into)
    }

    fn is_acked(&self, p: Position) -> bool {
        self.c.is_acked(p.into())
    }

    fn read_position(&self) -> Position {
        self.c.read_position().into()
    }

    async fn ack(&self, positions: &[Position]) -> Result<()> {
        let ps: Vec<ml::Position> = positions.iter().map(|p| (*p).into()).collect();
        Ok(self.c.ack_individual(&ps)?)
    }

    async fn ack_cumulative(&self, p: Position) -> Result<()> {
        Ok(self.c.ack_cumulative(p.into())?)
    }

    async fn seek(&self, p: Position) -> Result<()> {
        Ok(self.c.reset(p.into()).await?)
    }

    fn backlog(&self) -> Option<u64> {
        Some(self.c.backlog())
    }

    async fn flush(&self) -> Result<()> {
        Ok(self.c.persist().await?)
    }
}
