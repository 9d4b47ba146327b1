//! Managed ledgers: a topic's log as a list of ledgers, and its cursors (Pulsar's
//! ManagedLedger/ManagedCursor in spirit).
//!
//! Main types: [`ManagedLedger`] (open/add/read/trim/close/delete), [`ManagedCursor`]
//! (mark-delete, individual acks, read position), [`Position`], [`MlConfig`], [`MlError`].
//!
//! Invariants:
//! - The ledger list at `/managed-ledgers/{name}` changes only by compare-and-set against
//!   the version this instance last wrote; losing a CAS means another owner took over, and
//!   the instance becomes [`MlStatus::Fenced`]. Cursor state (`/cursors/{name}/{cursor}`)
//!   is written the same way, and opening rewrites every cursor to take it over.
//! - Opening recovers the previous owner's last ledger with fencing, so a stale owner can
//!   never append again: its adds fail with `Fenced` and it stops.
//! - An add's position is fixed when `add` is called; adds complete in position order, and
//!   the last confirmed position only moves forward. Only the last ledger of the list is
//!   written; every earlier ledger is closed and its entry count is final.
//! - Reads never go past the last confirmed entry; the ledger list and the last confirmed
//!   position are read under one lock, so a tailing reader never skips an entry.
//! - A cursor's mark-delete position `m` means every entry `<= m` is acknowledged; the
//!   individually acknowledged ranges all lie after `m`, and `m` advances over any that
//!   directly follow it. A write failure or a lost CAS is terminal for the instance: the
//!   broker closes the topic and reopens the managed ledger, which recovers.
//! - Trimming deletes only ledgers every durable cursor has passed, never the last one.

mod cache;
mod cursor;
mod error;
mod ledger;
mod meta;
mod position;
pub mod ranges;
mod shared;
mod state;
mod trim;
mod writer;

pub use cache::EntryCache;
pub use cursor::{InitialPosition, ManagedCursor};
pub use error::{MlError, Result};
pub use ledger::ManagedLedger;
pub use meta::{LedgerInfo, MlConfig, RetentionPolicy};
pub use position::Position;
pub use state::MlStatus;
