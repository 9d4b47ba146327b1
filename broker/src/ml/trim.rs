//! Trimming: deleting the oldest ledgers once every durable cursor has consumed them and
//! the retention policy lets them go. Unacknowledged data is never deleted, nor is the
//! ledger being written.

use magnetar_bookie::LedgerId;

use super::error::Result;
use super::ledger::ManagedLedger;
use super::meta::{self, RetentionPolicy};
use super::Position;

const MB: u64 = 1 << 20;

impl ManagedLedger {
    /// Deletes the oldest ledgers that every durable cursor has passed (mark-delete at or
    /// beyond the ledger's last entry) and that `retention` no longer keeps. Returns the
    /// deleted ledgers. The ledger list is updated by CAS before any ledger is deleted.
    pub async fn trim(&self, retention: RetentionPolicy) -> Result<Vec<LedgerId>> {
        // Cursors only move forward while the trim lock is held (resets and new cursors
        // take it), so a snapshot of mark-delete positions is safe to use.
        let _trimming = self.core.trim_lock.lock().await;
        let marks: Vec<Option<Position>> = self
            .cursors()
            .iter()
            .map(|c| c.mark_delete_position())
            .collect();
        let now = meta::now_ms();
        let doomed: Vec<LedgerId> = {
            let st = self.core.state.lock();
            let total: u64 = st.ledgers.values().map(|l| l.size).sum();
            let last = st.ledgers.keys().next_back().copied();
            let mut deleted_size = 0u64;
            let mut doomed = Vec::new();
            for (id, info) in &st.ledgers {
                if Some(*id) == last {
                    break;
                }
                let consumed = info.entries == 0
                    || marks
                        .iter()
                        .all(|m| m.is_some_and(|m| m >= Position::new(id.0, info.entries - 1)));
                if !consumed {
                    break;
                }
                let expired = retention.time_minutes >= 0
                    && now.saturating_sub(info.created_ms)
                        >= (retention.time_minutes as u64).saturating_mul(60_000);
                let over_quota = retention.size_mb >= 0
                    && total - deleted_size > (retention.size_mb as u64).saturating_mul(MB);
                if !(expired || over_quota) {
                    break;
                }
                deleted_size += info.size;
                doomed.push(*id);
            }
            doomed
        };
        if doomed.is_empty() {
            return Ok(doomed);
        }
        meta::update_ledgers(&self.core, |ledgers, _| {
            for id in &doomed {
                ledgers.remove(id);
            }
        })
        .await?;
        for id in &doomed {
            if let Err(e) = self.core.ledgers.delete(*id).await {
                tracing::warn!(ml = %self.core.name, ledger = %id, error = %e, "could not delete trimmed ledger");
            }
        }
        self.core.forget_readers(&doomed);
        metrics::counter!("magnetar_broker_ml_trimmed_ledgers_total")
            .increment(doomed.len() as u64);
        tracing::info!(ml = %self.core.name, ledgers = ?doomed, "trimmed consumed ledgers");
        Ok(doomed)
    }
}
