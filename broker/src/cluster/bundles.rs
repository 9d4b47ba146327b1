//! Namespace bundles: a namespace's topics are split into hash ranges over
//! `0x00000000..=0xffffffff` of the topic name's Murmur3 (x86, 32-bit, seed 0) hash — the
//! hash Pulsar uses by default. A broker owns whole bundles, never single topics.
//!
//! Pure code: boundaries, lookup of a topic's bundle, splitting.

use std::fmt;

use magnetar_client::wire::hash::murmur3_32;
use serde::{Deserialize, Serialize};

use crate::error::{BrokerError, Result};

/// Upper bound of the hash space (inclusive in the last bundle).
pub const FULL_UPPER: u32 = u32::MAX;

/// The bundle hash of a fully qualified topic name (`persistent://t/ns/topic`).
pub fn topic_hash(full_name: &str) -> u32 {
    murmur3_32(full_name.as_bytes(), 0)
}

/// One bundle: `[lower, upper)`, except that the last bundle also holds `upper`
/// (`0xffffffff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleRange {
    /// Inclusive lower bound.
    pub lower: u32,
    /// Exclusive upper bound (inclusive when it is `0xffffffff`).
    pub upper: u32,
}

impl BundleRange {
    /// True if `hash` falls in this bundle.
    pub fn contains(&self, hash: u32) -> bool {
        hash >= self.lower
            && (hash < self.upper || (self.upper == FULL_UPPER && hash == FULL_UPPER))
    }

    /// Parses Pulsar's `0x00000000_0x40000000` form.
    pub fn parse(s: &str) -> Result<BundleRange> {
        let bad = || BrokerError::InvalidRequest(format!("invalid bundle range {s:?}"));
        let (a, b) = s.split_once('_').ok_or_else(bad)?;
        let lower = parse_hex(a).ok_or_else(bad)?;
        let upper = parse_hex(b).ok_or_else(bad)?;
        if lower >= upper {
            return Err(bad());
        }
        Ok(BundleRange { lower, upper })
    }
}

fn parse_hex(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u32::from_str_radix(digits, 16).ok()
}

impl fmt::Display for BundleRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}_0x{:08x}", self.lower, self.upper)
    }
}

/// A namespace's bundle boundaries, stored at `/bundles/{tenant}/{namespace}` in the same
/// shape as Pulsar's `bundles` policy (`{"boundaries": [...], "numBundles": n}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceBundles {
    /// Sorted boundaries as `0x%08x` strings, first `0x00000000`, last `0xffffffff`.
    pub boundaries: Vec<String>,
    /// `boundaries.len() - 1`.
    pub num_bundles: usize,
}

impl NamespaceBundles {
    /// `n` equal bundles over the full hash range (n >= 1).
    pub fn even(n: usize) -> NamespaceBundles {
        let n = n.max(1) as u64;
        let full = u64::from(FULL_UPPER);
        let mut bounds: Vec<u32> = (0..n).map(|i| (full * i / n) as u32).collect();
        bounds.push(FULL_UPPER);
        NamespaceBundles::from_bounds(&bounds)
    }

    fn from_bounds(bounds: &[u32]) -> NamespaceBundles {
        NamespaceBundles {
            boundaries: bounds.iter().map(|b| format!("0x{b:08x}")).collect(),
            num_bundles: bounds.len().saturating_sub(1),
        }
    }

    /// The boundaries as numbers, checked to be strictly increasing over the full range.
    pub fn bounds(&self) -> Result<Vec<u32>> {
        let bad = |why: &str| BrokerError::InvalidRequest(format!("bad bundle boundaries: {why}"));
        let b: Vec<u32> = self
            .boundaries
            .iter()
            .map(|s| parse_hex(s).ok_or_else(|| bad(s)))
            .collect::<Result<_>>()?;
        if b.len() < 2 || b[0] != 0 || b[b.len() - 1] != FULL_UPPER {
            return Err(bad("must span 0x00000000..0xffffffff"));
        }
        if b.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("must increase"));
        }
        Ok(b)
    }

    /// Every bundle, in hash order.
    pub fn ranges(&self) -> Result<Vec<BundleRange>> {
        Ok(self
            .bounds()?
            .windows(2)
            .map(|w| BundleRange {
                lower: w[0],
                upper: w[1],
            })
            .collect())
    }

    /// The bundle holding `hash`.
    pub fn find(&self, hash: u32) -> Result<BundleRange> {
        self.ranges()?
            .into_iter()
            .find(|r| r.contains(hash))
            .ok_or_else(|| BrokerError::InvalidRequest("hash outside every bundle".into()))
    }

    /// Splits `range` at its midpoint into two bundles.
    pub fn split(&self, range: BundleRange) -> Result<NamespaceBundles> {
        let mut b = self.bounds()?;
        let Some(i) = b.iter().position(|x| *x == range.lower) else {
            return Err(BrokerError::InvalidRequest(format!("no bundle {range}")));
        };
        if b.get(i + 1) != Some(&range.upper) {
            return Err(BrokerError::InvalidRequest(format!("no bundle {range}")));
        }
        if range.upper - range.lower < 2 {
            return Err(BrokerError::InvalidRequest(format!(
                "bundle {range} is too small to split"
            )));
        }
        let mid = range.lower + (range.upper - range.lower) / 2;
        b.insert(i + 1, mid);
        Ok(NamespaceBundles::from_bounds(&b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_even_bundles_cover_everything() {
        let nb = NamespaceBundles::even(4);
        assert_eq!(nb.boundaries[0], "0x00000000");
        assert_eq!(nb.boundaries[1], "0x3fffffff");
        assert_eq!(nb.boundaries[4], "0xffffffff");
        let r = nb.ranges().expect("ranges");
        assert_eq!(r.len(), 4);
        for h in [
            0u32,
            1,
            0x3fff_fffe,
            0x3fff_ffff,
            0x8000_0000,
            u32::MAX - 1,
            u32::MAX,
        ] {
            assert_eq!(r.iter().filter(|x| x.contains(h)).count(), 1, "hash {h:#x}");
        }
    }

    #[test]
    fn split_and_parse_round_trip() {
        let nb = NamespaceBundles::even(2);
        let first = nb.ranges().expect("ranges")[0];
        let s = first.to_string();
        assert_eq!(BundleRange::parse(&s).expect("parse"), first);
        let split = nb.split(first).expect("split");
        assert_eq!(split.num_bundles, 3);
        let r = split.ranges().expect("ranges");
        assert_eq!(r[0].lower, 0);
        assert_eq!(r[0].upper, r[1].lower);
        assert_eq!(r[1].upper, first.upper);
        assert!(nb.split(BundleRange { lower: 5, upper: 9 }).is_err());
        assert!(BundleRange::parse("0x10_0x05").is_err());
    }

    #[test]
    fn partitions_hash_to_several_bundles() {
        let nb = NamespaceBundles::even(4);
        let mut seen = std::collections::HashSet::new();
        for i in 0..16 {
            let h = topic_hash(&format!("persistent://public/default/t-partition-{i}"));
            seen.insert(nb.find(h).expect("find"));
        }
        assert!(
            seen.len() >= 3,
            "16 partitions landed in {} bundles",
            seen.len()
        );
    }
}
