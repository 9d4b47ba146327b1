//! Test harness: starts Magnetar servers on loopback with temporary directories and waits on
//! conditions with deadlines, never fixed sleeps.
//!
//! - [`Standalone`]: one `magnetar standalone` on free loopback ports and a temp data dir,
//!   either as a real OS process ([`Mode::Process`], the default: `kill9()` is a real
//!   SIGKILL) or inside the test process on its own runtime thread ([`Mode::InProcess`]:
//!   faster to start, always runs the code just compiled, but cannot be killed -9).
//!   Stopped (process killed) on drop.
//! - [`wait_for`]: polls an async condition until it holds or a deadline passes.
//! - [`unique_topic`]: a fresh `persistent://public/default/...` name per call.
//!
//! Which binary [`Mode::Process`] runs: `$MAGNETAR_BIN` if set, else `magnetar` next to the
//! test executable's `deps/` directory (that is, the same target dir the test was built in:
//! `$CARGO_TARGET_DIR/debug/magnetar`). Cargo does not rebuild that binary for this crate's
//! tests, so build it first: `cargo build -p magnetar-tools --bin magnetar`.

pub mod standalone;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use standalone::{Mode, Standalone, StandaloneOpts};

/// Polls `cond` (with a short back-off) until it returns `Some`, or panics naming `what`
/// once `timeout` has passed.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// A topic name no other call in this process (or a recent run) returns.
pub fn unique_topic(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "persistent://public/default/{prefix}-{}-{t:x}-{n}",
        std::process::id()
    )
}

/// The short name (`public/default/<name>` -> `<name>`) of a topic, for admin URLs.
pub fn short_name(topic: &str) -> &str {
    topic.rsplit('/').next().unwrap_or(topic)
}
