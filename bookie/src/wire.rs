//! The one place where ledger errors map to and from the bookie wire status codes.

use magnetar_proto::bookie::Status;

use crate::error::LedgerError;

/// Wire status and message for an error.
pub fn to_status(e: &LedgerError) -> (Status, String) {
    let s = match e {
        LedgerError::Fenced(_) | LedgerError::Closed(_) => Status::Fenced,
        LedgerError::NoSuchLedger(_) => Status::NoSuchLedger,
        LedgerError::NoSuchEntry { .. } => Status::NoSuchEntry,
        LedgerError::Corrupt { .. } => Status::Corrupt,
        LedgerError::TooLarge { .. } => Status::TooLarge,
        LedgerError::ReadOnly(_) => Status::ReadOnly,
        LedgerError::InvalidArgument(_) => Status::InvalidArgument,
        LedgerError::Shutdown => Status::Shutdown,
        _ => Status::StorageError,
    };
    (s, e.to_string())
}

/// Error for a non-OK wire status returned by `bookie` for `ledger`/`entry`.
pub fn from_status(
    status: i32,
    message: String,
    bookie: &str,
    ledger: u64,
    entry: u64,
) -> Result<(), LedgerError> {
    let status = Status::try_from(status).unwrap_or(Status::StorageError);
    Err(match status {
        Status::Ok => return Ok(()),
        Status::Fenced => LedgerError::Fenced(ledger),
        Status::NoSuchLedger => LedgerError::NoSuchLedger(ledger),
        Status::NoSuchEntry => LedgerError::NoSuchEntry { ledger, entry },
        Status::Corrupt => LedgerError::Corrupt {
            ledger,
            entry,
            bookie: bookie.to_string(),
        },
        Status::TooLarge => LedgerError::Bookie {
            bookie: bookie.to_string(),
            message,
        },
        Status::ReadOnly => LedgerError::ReadOnly(bookie.to_string()),
        Status::InvalidArgument => LedgerError::InvalidArgument(message),
        Status::Shutdown | Status::StorageError => LedgerError::Bookie {
            bookie: bookie.to_string(),
            message,
        },
    })
}

/// LAC to wire (-1 for none).
pub fn lac_to_wire(lac: Option<u64>) -> i64 {
    lac.map_or(-1, |l| l as i64)
}

/// LAC from wire.
pub fn lac_from_wire(lac: i64) -> Option<u64> {
    u64::try_from(lac).ok()
}

/// Largest entry a bookie accepts: a 5 MiB message plus its Pulsar metadata and framing
/// (Pulsar allows 10 KiB of padding; chunked messages fill the 5 MiB exactly).
pub const MAX_ENTRY_BYTES: usize = 5 * 1024 * 1024 + 64 * 1024;
/// gRPC message limit: one entry plus framing.
pub const MAX_MESSAGE_BYTES: usize = MAX_ENTRY_BYTES + 64 * 1024;
/// Payload bytes a client coalesces into one `AddBatch` (a larger single entry travels alone).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Adds a client coalesces into one `AddBatch`.
pub const MAX_BATCH_ADDS: usize = 1024;

/// Turns a queue of adds into a stream of `AddBatch`es holding whatever is queued (at most
/// [`MAX_BATCH_ADDS`] adds / [`MAX_BATCH_BYTES`], or one larger entry alone).
pub fn batch_adds(
    rx: tokio::sync::mpsc::UnboundedReceiver<magnetar_proto::bookie::AddRequest>,
) -> impl futures::Stream<Item = magnetar_proto::bookie::AddBatch> + Send + 'static {
    futures::stream::unfold((rx, None), |(mut rx, carry)| async move {
        let first = match carry {
            Some(r) => r,
            None => rx.recv().await?,
        };
        let mut bytes = first.data.len();
        let mut adds = vec![first];
        let mut carry = None;
        while adds.len() < MAX_BATCH_ADDS {
            match rx.try_recv() {
                Ok(r) if bytes + r.data.len() > MAX_BATCH_BYTES => {
                    carry = Some(r);
                    break;
                }
                Ok(r) => {
                    bytes += r.data.len();
                    adds.push(r);
                }
                Err(_) => break,
            }
        }
        Some((magnetar_proto::bookie::AddBatch { adds }, (rx, carry)))
    })
}
