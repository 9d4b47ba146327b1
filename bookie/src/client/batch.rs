//! Range reads as one strided request per ensemble position, in parallel.
//!
//! Entry `e` of a fragment with E bookies lives on ensemble positions `(e + i) mod E` for
//! `i < Qw`. So the entries whose write set starts at position `j` are exactly those with
//! `e mod E == j`: a *run* with stride E, which the bookie at position `j` serves with one
//! `ReadRange` (and which positions `j + 1, ...` hold too). Each run is read from its first
//! replica, moves on to the next replica of the same entries when a bookie fails or returns
//! nothing, and hands entries a replica lacks or holds corrupt to the per-entry failover
//! read ([`ReadCtx::read_entry`]). Runs are independent, so a slow or dead bookie delays only
//! its own run. Replies are capped at [`super::pool::RANGE_READ_BYTES`]; a run continues after the last
//! entry returned. When E == Qw every bookie holds every entry, and a fragment is one run
//! with stride 1 read from one bookie (a plain sequential scan there, no seeks; measured as
//! fast as or faster than E parallel strided runs, see docs/performance.md).

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::meta::LedgerMetadata;
use super::reader::{ReadCtx, READ_CONCURRENCY};
use crate::error::LedgerError;

type Result<T> = std::result::Result<T, LedgerError>;

/// Runs read at the same time by one range read (E of a fragment fit).
const MAX_PARALLEL_RUNS: usize = 8;

/// Entries `first, first + stride, ...` up to `last` of one fragment, all held by the
/// bookie at ensemble position `pos` and by the next Qw - 1 positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) frag: usize,
    pub(crate) pos: usize,
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) stride: u64,
}

/// Splits `first..=last` into runs: per fragment, one per ensemble position that is the
/// first replica of any entry in range (E > Qw), or a single one (E == Qw).
pub(crate) fn runs(m: &LedgerMetadata, first: u64, last: u64) -> Vec<Run> {
    let mut out = Vec::new();
    for frag in m.fragment_index(first)..=m.fragment_index(last) {
        let f = &m.ensembles[frag];
        let lo = first.max(f.first_entry);
        let hi = m.fragment_last(frag).map_or(last, |l| l.min(last));
        let e = f.bookies.len() as u64;
        if lo > hi || e == 0 {
            continue;
        }
        if m.config.write_quorum as u64 >= e {
            out.push(Run {
                frag,
                pos: (lo % e) as usize,
                first: lo,
                last: hi,
                stride: 1,
            });
            continue;
        }
        for pos in 0..e {
            let start = lo + (pos + e - lo % e) % e;
            if start <= hi {
                out.push(Run {
                    frag,
                    pos: pos as usize,
                    first: start,
                    last: hi,
                    stride: e,
                });
            }
        }
    }
    out
}

impl ReadCtx {
    /// Reads `first..=last` (first < last) with one strided range read per run, in
    /// parallel, and merges the runs in entry order.
    pub(crate) async fn read_batched(
        &self,
        m: &LedgerMetadata,
        first: u64,
        last: u64,
    ) -> Result<Vec<Bytes>> {
        let n = usize::try_from(last - first)
            .ok()
            .and_then(|n| n.checked_add(1))
            .ok_or_else(|| {
                LedgerError::InvalidArgument(format!("range {first}..={last} is too long"))
            })?;
        // Bounded: at most this many range replies (each up to RANGE_READ_BYTES) in flight.
        let parts: Vec<Vec<(u64, Bytes)>> = futures::stream::iter(runs(m, first, last))
            .map(|r| async move { self.read_run(m, &r).await })
            .buffer_unordered(MAX_PARALLEL_RUNS)
            .try_collect()
            .await?;
        let mut slots: Vec<Option<Bytes>> = vec![None; n];
        for (e, data) in parts.into_iter().flatten() {
            if let Some(slot) = usize::try_from(e - first)
                .ok()
                .and_then(|i| slots.get_mut(i))
            {
                *slot = Some(data);
            }
        }
        slots
            .into_iter()
            .zip(first..)
            .map(|(s, entry)| {
                s.ok_or(LedgerError::NoSuchEntry {
                    ledger: self.ledger,
                    entry,
                })
            })
            .collect()
    }

    /// Reads one run; entries come back in no particular order.
    async fn read_run(&self, m: &LedgerMetadata, run: &Run) -> Result<Vec<(u64, Bytes)>> {
        let bookies = &m.ensembles[run.frag].bookies;
        let e_sz = bookies.len();
        let stride = run.stride;
        let qw = m.config.write_quorum.clamp(1, e_sz);
        let mut out = Vec::new();
        let mut next = run.first;
        // Offset of the replica read from, within the write set of the run's entries.
        let mut replica = 0usize;
        // Replicas in a row that returned nothing at `next`.
        let mut fruitless = 0usize;
        while next <= run.last {
            let bookie = &bookies[(run.pos + replica) % e_sz];
            let before = next;
            // Entries to read one by one, with a replica known to hold them corrupt.
            let mut missing: Vec<(u64, Option<String>)> = Vec::new();
            match self
                .pool
                .read_range_strided(bookie, self.ledger, next, run.last, stride)
                .await
            {
                Ok(reply) => {
                    for (e, data) in reply.entries {
                        if e < next {
                            continue;
                        }
                        // Entries this replica lacks (a write it missed): per-entry failover.
                        while next < e {
                            missing.push((next, None));
                            next += stride;
                        }
                        out.push((e, data));
                        next = e.saturating_add(stride);
                    }
                    if let Some(x) = reply.corrupt.filter(|x| {
                        *x >= next && *x <= run.last && (*x - run.first).is_multiple_of(stride)
                    }) {
                        self.report_corrupt(bookie, Some(x));
                        while next < x {
                            missing.push((next, None));
                            next += stride;
                        }
                        missing.push((x, Some(bookie.clone())));
                        next = x.saturating_add(stride);
                    }
                }
                Err(e @ LedgerError::Corrupt { .. }) => {
                    // A bookie predating `stop_at_corrupt` fails the whole range instead.
                    self.report_corrupt(bookie, None);
                    tracing::debug!(ledger = self.ledger, bookie = %bookie, error = %e, "range read hit corruption; trying another replica");
                }
                Err(e) => {
                    tracing::debug!(ledger = self.ledger, bookie = %bookie, first = next, error = %e, "range read failed; trying another replica");
                }
            }
            if next == before {
                fruitless += 1;
                replica = (replica + 1) % qw;
                if fruitless >= qw {
                    // No replica returned `next`: the per-entry read retries every replica
                    // once more and reports the error if it is really gone.
                    missing.push((next, None));
                    next = next.saturating_add(stride);
                    fruitless = 0;
                }
            } else {
                fruitless = 0;
            }
            if !missing.is_empty() {
                metrics::counter!("magnetar_bookie_client_read_fallback_entries_total")
                    .increment(missing.len() as u64);
                let got: Vec<(u64, Bytes)> = futures::stream::iter(missing)
                    .map(|(e, skip)| async move {
                        self.read_entry_skipping(m, e, skip.as_deref())
                            .await
                            .map(|d| (e, d))
                    })
                    .buffered(READ_CONCURRENCY)
                    .try_collect()
                    .await?;
                out.extend(got);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LedgerConfig;
    use crate::client::meta::{Fragment, LedgerStatus};

    fn meta(e: usize, qw: usize, frags: &[u64], last: u64) -> LedgerMetadata {
        LedgerMetadata {
            config: LedgerConfig {
                ensemble: e,
                write_quorum: qw,
                ack_quorum: qw,
            },
            ensembles: frags
                .iter()
                .map(|&f| Fragment {
                    first_entry: f,
                    bookies: (0..e).map(|i| format!("f{f}b{i}")).collect(),
                })
                .collect(),
            state: LedgerStatus::Closed,
            last_entry: Some(last),
        }
    }

    /// Every entry is in exactly one run, whose replicas (from `pos` on) are its write set.
    fn check_cover(m: &LedgerMetadata, first: u64, last: u64) {
        let rs = runs(m, first, last);
        for entry in first..=last {
            let holders: Vec<&Run> = rs
                .iter()
                .filter(|r| {
                    entry >= r.first && entry <= r.last && (entry - r.first) % r.stride == 0
                })
                .collect();
            assert_eq!(holders.len(), 1, "entry {entry} in {rs:?}");
            let r = holders[0];
            let bookies = &m.ensembles[r.frag].bookies;
            let qw = m.config.write_quorum.min(bookies.len());
            let mut replicas: Vec<String> = (0..qw)
                .map(|i| bookies[(r.pos + i) % bookies.len()].clone())
                .collect();
            let mut ws = m.write_set(entry);
            if r.stride > 1 {
                assert_eq!(replicas, ws, "entry {entry}: replicas in write-set order");
            }
            replicas.sort();
            ws.sort();
            assert_eq!(replicas, ws, "entry {entry}");
        }
    }

    #[test]
    fn runs_cover_each_entry_once_from_its_first_replica() {
        for (e, qw) in [(1, 1), (2, 2), (3, 2), (3, 3), (4, 2), (5, 3)] {
            let m = meta(e, qw, &[0, 7, 8, 20], 40);
            for (first, last) in [(0, 40), (3, 9), (7, 7), (19, 23), (21, 22), (0, 1)] {
                check_cover(&m, first, last);
            }
        }
    }

    #[test]
    fn runs_are_per_position_with_aligned_starts() {
        let m = meta(3, 2, &[0], 100);
        let rs = runs(&m, 4, 10);
        let starts: Vec<(usize, u64)> = rs.iter().map(|r| (r.pos, r.first)).collect();
        assert_eq!(starts, vec![(0, 6), (1, 4), (2, 5)]);
        assert!(rs.iter().all(|r| r.last == 10));
        assert_eq!(runs(&m, 4, 5).len(), 2, "position 0 holds nothing in 4..=5");
    }

    #[test]
    fn fully_replicated_fragments_are_one_contiguous_run() {
        let m = meta(3, 3, &[0, 10], 100);
        let rs: Vec<(usize, u64, u64, u64)> = runs(&m, 4, 30)
            .iter()
            .map(|r| (r.frag, r.first, r.last, r.stride))
            .collect();
        assert_eq!(rs, vec![(0, 4, 9, 1), (1, 10, 30, 1)]);
    }
}
