//! Message and byte rates for stats (`msgRateIn`, `msgThroughputIn`, `msgRateOut`,
//! `msgThroughputOut`): the change of a topic's counters between two stats requests at least
//! [`MIN_WINDOW`] apart, divided by the time between them. Requests closer together get the
//! last computed rates; the first request for a topic sees zeros.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Shortest window a rate is computed over.
pub(super) const MIN_WINDOW: Duration = Duration::from_secs(1);
/// Samples kept before the table is reset (bounds memory with many topics).
const MAX_SAMPLES: usize = 100_000;

/// Monotonic counters of one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counters {
    pub msg_in: u64,
    pub bytes_in: u64,
    pub msg_out: u64,
    pub bytes_out: u64,
}

/// Per-second rates.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Rates {
    pub msg_in: f64,
    pub bytes_in: f64,
    pub msg_out: f64,
    pub bytes_out: f64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    counters: Counters,
    rates: Rates,
}

fn table() -> &'static Mutex<HashMap<String, Sample>> {
    static TABLE: OnceLock<Mutex<HashMap<String, Sample>>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn per_sec(now: u64, before: u64, secs: f64) -> f64 {
    now.saturating_sub(before) as f64 / secs
}

/// Rates of the topic `key` (unique per broker and topic) given its counters `now`.
pub(super) fn rates(key: &str, at: Instant, counters: Counters) -> Rates {
    let mut t = table().lock();
    if let Some(prev) = t.get_mut(key) {
        let elapsed = at.saturating_duration_since(prev.at);
        if elapsed >= MIN_WINDOW {
            let secs = elapsed.as_secs_f64();
            let (c, p) = (counters, prev.counters);
            prev.rates = Rates {
                msg_in: per_sec(c.msg_in, p.msg_in, secs),
                bytes_in: per_sec(c.bytes_in, p.bytes_in, secs),
                msg_out: per_sec(c.msg_out, p.msg_out, secs),
                bytes_out: per_sec(c.bytes_out, p.bytes_out, secs),
            };
            prev.at = at;
            prev.counters = counters;
        }
        return prev.rates;
    }
    if t.len() >= MAX_SAMPLES {
        t.clear();
    }
    t.insert(
        key.to_string(),
        Sample {
            at,
            counters,
            rates: Rates::default(),
        },
    );
    Rates::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_deltas_over_windows_of_at_least_a_second() {
        let t0 = Instant::now();
        let c = |m: u64| Counters {
            msg_in: m,
            bytes_in: m * 10,
            msg_out: m / 2,
            bytes_out: m * 5,
        };
        assert_eq!(rates("k-test", t0, c(100)), Rates::default());
        // Too soon: still the last rates.
        assert_eq!(
            rates("k-test", t0 + Duration::from_millis(10), c(150)),
            Rates::default()
        );
        let r = rates("k-test", t0 + Duration::from_secs(2), c(300));
        assert!((r.msg_in - 100.0).abs() < 1e-9, "{r:?}");
        assert!((r.bytes_in - 1000.0).abs() < 1e-9);
        assert!((r.msg_out - 50.0).abs() < 1e-9);
        let same = rates("k-test", t0 + Duration::from_millis(2500), c(999));
        assert_eq!(same, r);
    }
}
