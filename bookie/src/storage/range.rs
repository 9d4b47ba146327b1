//! Strided range reads: the entries of one ensemble position of a striped ledger.
//!
//! In a ledger with E > Qw no bookie holds a contiguous run of entries, so the client reads
//! a range as E strided requests, one per ensemble position, in parallel. A stride request
//! seeks straight to each wanted key instead of stepping over the entries of the other
//! positions, so values kept in blob files are loaded only for entries that are returned.

use bytes::Bytes;

use super::{entry_key, split_key, storage_err, verify, Storage, CF_ENTRIES};
use crate::error::LedgerError;

type Result<T> = std::result::Result<T, LedgerError>;

/// The reply of [`Storage::read_range_strided`].
#[derive(Debug, Default)]
pub struct StridedRange {
    /// `(entry, data, crc32c)` in entry order, possibly sparse (entries not held are absent).
    pub entries: Vec<(u64, Bytes, u32)>,
    /// The first corrupt entry met; `entries` stop before it.
    pub corrupt: Option<u64>,
}

/// The first entry `>= e` of the form `first + k * stride`, if any.
fn align_up(first: u64, stride: u64, e: u64) -> Option<u64> {
    if e <= first {
        return Some(first);
    }
    let k = (e - first).div_ceil(stride);
    first.checked_add(k.checked_mul(stride)?)
}

impl Storage {
    /// Reads the entries held among `first, first + stride, ...` up to `last` (possibly
    /// sparse), up to `max_bytes` of data (at least one entry). A corrupt entry ends the
    /// reply early and is reported in [`StridedRange::corrupt`], so the entries before it
    /// are not lost. `stride` 0 is read as 1.
    pub async fn read_range_strided(
        &self,
        ledger: u64,
        first: u64,
        last: u64,
        stride: u64,
        max_bytes: usize,
    ) -> Result<StridedRange> {
        let stride = stride.max(1);
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            if !inner.ledgers.read().contains_key(&ledger) {
                return Err(LedgerError::NoSuchLedger(ledger));
            }
            let db = inner.db()?;
            let cf = db.cf_handle(CF_ENTRIES).expect("created on open");
            let mut ro = rocksdb::ReadOptions::default();
            ro.set_iterate_upper_bound(entry_key(ledger, last.saturating_add(1)).to_vec());
            let mut it = db.raw_iterator_cf_opt(&cf, ro);
            let mut out = StridedRange::default();
            let mut bytes = 0usize;
            let mut want = first;
            it.seek(entry_key(ledger, want));
            // Every step returns an entry or moves `want` past the key found, so the loop
            // ends within (last - first) / stride + 1 rounds.
            while want <= last && it.valid() {
                let Some((l, e)) = it.key().and_then(split_key) else {
                    break;
                };
                if l != ledger || e > last {
                    break;
                }
                if e != want {
                    // Not a wanted entry (another position's, or `want` is not held here).
                    match align_up(first, stride, e) {
                        Some(next) if next <= last => {
                            want = next;
                            if next != e {
                                it.seek(entry_key(ledger, want));
                            }
                            continue;
                        }
                        _ => break,
                    }
                }
                let value = it.value().expect("valid iterator has a value");
                match verify(&inner.bookie, ledger, e, value) {
                    Ok((data, crc)) => {
                        bytes += data.len();
                        out.entries.push((e, data, crc));
                    }
                    Err(LedgerError::Corrupt { .. }) => {
                        out.corrupt = Some(e);
                        break;
                    }
                    Err(other) => return Err(other),
                }
                if bytes >= max_bytes {
                    break;
                }
                match want.checked_add(stride) {
                    Some(next) if next <= last => want = next,
                    _ => break,
                }
                if stride == 1 {
                    it.next();
                } else {
                    it.seek(entry_key(ledger, want));
                }
            }
            it.status().map_err(storage_err)?;
            Ok(out)
        })
        .await
        .map_err(|_| LedgerError::Shutdown)?
    }
}

#[cfg(test)]
mod tests {
    use super::align_up;

    #[test]
    fn align_up_finds_the_next_strided_entry() {
        assert_eq!(align_up(4, 3, 0), Some(4));
        assert_eq!(align_up(4, 3, 4), Some(4));
        assert_eq!(align_up(4, 3, 5), Some(7));
        assert_eq!(align_up(4, 3, 7), Some(7));
        assert_eq!(align_up(4, 1, 9), Some(9));
        assert_eq!(align_up(1, 2, u64::MAX), Some(u64::MAX));
        assert_eq!(align_up(0, 2, u64::MAX), None);
    }
}
