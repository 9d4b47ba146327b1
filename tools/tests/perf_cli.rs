//! `magnetar-perf produce` against a real `magnetar standalone`: a run bounded by message
//! count prints a progress line per second and a final summary with the count it sent and
//! no errors.

mod cli_standalone;

use std::time::Duration;

use cli_standalone::{run, Standalone};

#[test]
fn bounded_produce_run_prints_progress_and_summary() {
    let s = Standalone::start();
    let out = run(
        env!("CARGO_BIN_EXE_magnetar-perf"),
        &[
            "--url",
            &s.url(),
            "produce",
            "perf-topic",
            "-r",
            "400",
            "-m",
            "1000",
            "-s",
            "256",
            "--time",
            "30",
            "--compression",
            "lz4",
        ],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // 1000 messages at 400/s take ~2.5 s: at least one per-second progress line.
    let progress = stdout
        .lines()
        .filter(|l| l.starts_with("produced: ") && l.contains("msg/s"))
        .count();
    assert!(progress >= 1, "no progress lines:\n{stdout}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("summary: produced "))
        .unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
    assert!(
        summary.starts_with("summary: produced 1000 messages"),
        "{summary}"
    );
    assert!(summary.contains("errors 0"), "{summary}");
}
