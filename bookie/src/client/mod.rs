//! The ledger client: [`BookKeeper`] implements [`crate::Ledgers`] over real bookies.

mod batch;
mod ensemble;
pub mod meta;
pub mod pool;
mod reader;
mod recovery;
mod writer;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use magnetar_metadata::MetadataStore;

use self::meta::{Fragment, LedgerMetadata, LedgerStatus};
use self::pool::BookiePool;
use self::reader::{ReadCtx, Reader};
use self::writer::{Writer, WriterCore};
use crate::api::{LedgerConfig, LedgerId, LedgerReader, LedgerWriter, Ledgers};
use crate::error::LedgerError;

type Result<T> = std::result::Result<T, LedgerError>;

/// Ledger client over the bookies registered in the metadata store.
pub struct BookKeeper {
    pool: Arc<BookiePool>,
    corrupt: Arc<AtomicU64>,
}

impl BookKeeper {
    /// A client using `metadata` for ledger metadata and bookie discovery.
    pub fn new(metadata: Arc<dyn MetadataStore>) -> Arc<Self> {
        Arc::new(BookKeeper {
            pool: BookiePool::new(metadata),
            corrupt: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Bookie connections (diagnostics, re-replication).
    pub fn pool(&self) -> &Arc<BookiePool> {
        &self.pool
    }

    /// Corrupt replicas this client has met (and read around) so far.
    pub fn corrupt_entries_seen(&self) -> u64 {
        self.corrupt.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A ledger's metadata.
    pub async fn ledger_metadata(&self, id: LedgerId) -> Result<LedgerMetadata> {
        Ok(meta::load(self.pool.metadata().as_ref(), id.0).await?.0)
    }

    /// Reads one entry from one specific bookie (diagnostics and tests).
    pub async fn read_from_bookie(&self, bookie: &str, id: LedgerId, entry: u64) -> Result<Bytes> {
        self.pool.read_entry(bookie, id.0, entry).await
    }

    fn reads(&self, id: u64) -> ReadCtx {
        ReadCtx {
            pool: self.pool.clone(),
            ledger: id,
            corrupt: self.corrupt.clone(),
        }
    }

    /// Highest LAC reported by the bookies of the last fragment.
    async fn lac_of_open(&self, id: u64, m: &LedgerMetadata) -> Option<u64> {
        let last = m.ensembles.last().expect("ledger has a fragment");
        let lacs = futures::future::join_all(
            last.bookies
                .iter()
                .map(|b| self.pool.read_lac(b, id, None, Duration::ZERO)),
        )
        .await;
        let floor = last.first_entry.checked_sub(1);
        lacs.into_iter()
            .filter_map(|r| r.ok().flatten())
            .max()
            .max(floor)
    }
}

fn validate(c: &LedgerConfig) -> Result<()> {
    if c.ack_quorum == 0 || c.ack_quorum > c.write_quorum || c.write_quorum > c.ensemble {
        return Err(LedgerError::InvalidArgument(format!(
            "need E >= Qw >= Qa >= 1, got E={} Qw={} Qa={}",
            c.ensemble, c.write_quorum, c.ack_quorum
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Ledgers for BookKeeper {
    async fn create(&self, config: LedgerConfig) -> Result<Arc<dyn LedgerWriter>> {
        validate(&config)?;
        let md = self.pool.metadata().clone();
        let mut bookies: Vec<String> = self
            .pool
            .writable()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        if bookies.len() < config.ensemble {
            return Err(LedgerError::NotEnoughBookies {
                needed: config.ensemble,
                available: bookies.len(),
            });
        }
        rand::seq::SliceRandom::shuffle(bookies.as_mut_slice(), &mut rand::thread_rng());
        bookies.truncate(config.ensemble);
        let id = md.increment(meta::LEDGER_ID_COUNTER, 1).await?;
        let m = LedgerMetadata {
            config,
            ensembles: vec![Fragment {
                first_entry: 0,
                bookies,
            }],
            state: LedgerStatus::Open,
            last_entry: None,
        };
        let version = md
            .put(
                &meta::ledger_key(id),
                m.to_bytes(),
                magnetar_metadata::Expect::Absent,
                None,
            )
            .await?;
        tracing::info!(ledger = id, ensemble = ?m.ensembles[0].bookies, "ledger created");
        metrics::counter!("magnetar_bookie_client_ledgers_created_total").increment(1);
        let core = WriterCore::new(self.pool.clone(), id, m, version, 0, false);
        Ok(Arc::new(Writer {
            core,
            reads: self.reads(id),
        }))
    }

    async fn open(&self, id: LedgerId, recover: bool) -> Result<Arc<dyn LedgerReader>> {
        let reads = self.reads(id.0);
        let m = if recover {
            recovery::recover(&self.pool, &reads, id.0).await?
        } else {
            meta::load(self.pool.metadata().as_ref(), id.0).await?.0
        };
        let last = match m.state {
            LedgerStatus::Closed => m.last_entry,
            _ => self.lac_of_open(id.0, &m).await,
        };
        Ok(Arc::new(Reader {
            meta: m,
            last,
            reads,
        }))
    }

    async fn delete(&self, id: LedgerId) -> Result<()> {
        let md = self.pool.metadata().clone();
        let (m, _) = meta::load(md.as_ref(), id.0).await?;
        let mut bookies: Vec<&String> = m.ensembles.iter().flat_map(|f| f.bookies.iter()).collect();
        bookies.sort();
        bookies.dedup();
        for b in bookies {
            if let Err(e) = self.pool.delete(b, id.0).await {
                tracing::warn!(ledger = id.0, bookie = %b, error = %e, "delete on bookie failed; its copy stays orphaned");
            }
        }
        md.delete(&meta::ledger_key(id.0), magnetar_metadata::Expect::Any)
            .await?;
        tracing::info!(ledger = id.0, "ledger deleted");
        Ok(())
    }
}

/// A read context for crate-internal users (re-replication).
pub(crate) fn reader_ctx(pool: Arc<BookiePool>, ledger: u64, corrupt: Arc<AtomicU64>) -> ReadCtx {
    ReadCtx {
        pool,
        ledger,
        corrupt,
    }
}
