//! Throughput and latency accounting for `magnetar-perf`: HDR histograms (microseconds,
//! 3 significant digits) for the current one-second interval and for the whole run.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded exactly (longer ones are clamped): one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

struct Inner {
    interval: Histogram<u64>,
    all: Histogram<u64>,
    msgs: u64,
    bytes: u64,
    interval_msgs: u64,
    interval_bytes: u64,
    errors: u64,
    last_error: Option<String>,
}

/// Shared counters of one run.
pub struct Stats(Mutex<Inner>);

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Latency {
                p50: 0.0,
                p95: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// The result of a run, as written by `--summary-json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `produce` or `consume`.
    pub mode: String,
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    pub duration_secs: f64,
    pub msg_per_sec: f64,
    pub mb_per_sec: f64,
    /// Publish latency (produce) or end-to-end latency (consume).
    pub latency_ms: Latency,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

impl Default for Stats {
    fn default() -> Self {
        Stats(Mutex::new(Inner {
            interval: histogram(),
            all: histogram(),
            msgs: 0,
            bytes: 0,
            interval_msgs: 0,
            interval_bytes: 0,
            errors: 0,
            last_error: None,
        }))
    }
}

impl Stats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One completed message with its latency and payload bytes.
    pub fn record(&self, latency: Duration, bytes: usize) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        let mut s = self.lock();
        s.interval.saturating_record(us);
        s.all.saturating_record(us);
        s.msgs += 1;
        s.interval_msgs += 1;
        s.bytes += bytes as u64;
        s.interval_bytes += bytes as u64;
    }

    /// A failed message.
    pub fn error(&self, e: &str) {
        let mut s = self.lock();
        s.errors += 1;
        s.last_error = Some(e.to_owned());
    }

    /// Messages completed so far.
    pub fn messages(&self) -> u64 {
        self.lock().msgs
    }

    /// The progress line for the interval just ended; resets the interval.
    pub fn interval_line(&self, what: &str, elapsed: Duration) -> String {
        let mut s = self.lock();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let l = Latency::of(&s.interval);
        let line = format!(
            "{what}: {:.1} msg/s, {:.2} MB/s, latency ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}, total {}, errors {}",
            s.interval_msgs as f64 / secs,
            s.interval_bytes as f64 / secs / 1e6,
            l.p50,
            l.p99,
            l.p999,
            l.max,
            s.msgs,
            s.errors,
        );
        s.interval.reset();
        s.interval_msgs = 0;
        s.interval_bytes = 0;
        line
    }

    /// The run's summary.
    pub fn summary(&self, mode: &str, elapsed: Duration) -> Summary {
        let s = self.lock();
        let secs = elapsed.as_secs_f64().max(1e-9);
        Summary {
            mode: mode.to_owned(),
            messages: s.msgs,
            bytes: s.bytes,
            errors: s.errors,
            duration_secs: secs,
            msg_per_sec: s.msgs as f64 / secs,
            mb_per_sec: s.bytes as f64 / secs / 1e6,
            latency_ms: Latency::of(&s.all),
        }
    }

    /// The last error message seen, if any.
    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }
}

impl Summary {
    /// The human-readable summary line.
    pub fn line(&self, what: &str, last_error: Option<&str>) -> String {
        let l = &self.latency_ms;
        format!(
            "summary: {what} {} messages in {:.1}s: {:.1} msg/s, {:.2} MB/s; latency ms p50 {:.2} p95 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}; errors {}{}",
            self.messages,
            self.duration_secs,
            self.msg_per_sec,
            self.mb_per_sec,
            l.p50,
            l.p95,
            l.p99,
            l.p999,
            l.max,
            self.errors,
            last_error.map(|e| format!(" (last: {e})")).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let s = Stats::default();
        for ms in 1..=1000u64 {
            s.record(Duration::from_millis(ms), 100);
        }
        let sum = s.summary("produce", Duration::from_secs(2));
        assert_eq!(sum.messages, 1000);
        assert!((sum.msg_per_sec - 500.0).abs() < 1e-6);
        assert!((sum.mb_per_sec - 0.05).abs() < 1e-9);
        let l = sum.latency_ms;
        assert!((l.p50 - 500.0).abs() <= 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() <= 1.0, "{l:?}");
        assert!((l.p999 - 999.0).abs() <= 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() <= 1.0, "{l:?}");
    }

    #[test]
    fn the_interval_resets_but_the_run_total_does_not() {
        let s = Stats::default();
        s.record(Duration::from_millis(5), 10);
        let line = s.interval_line("produced", Duration::from_secs(1));
        assert!(line.starts_with("produced: 1.0 msg/s"), "{line}");
        let line = s.interval_line("produced", Duration::from_secs(1));
        assert!(line.starts_with("produced: 0.0 msg/s"), "{line}");
        assert_eq!(s.summary("produce", Duration::from_secs(1)).messages, 1);
    }

    #[test]
    fn an_empty_run_reports_zeroes() {
        let s = Stats::default();
        let sum = s.summary("consume", Duration::from_secs(1));
        assert_eq!(sum.latency_ms.max, 0.0);
        let json = serde_json::to_value(&sum).expect("serializable");
        for k in ["msg_per_sec", "mb_per_sec"] {
            assert!(json.get(k).is_some(), "{k} missing: {json}");
        }
        for k in ["p50", "p99", "p999", "max"] {
            assert!(json["latency_ms"].get(k).is_some(), "{k} missing: {json}");
        }
    }
}
