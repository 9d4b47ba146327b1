//! `magnetar-perf` against a real `magnetar standalone`: a run bounded by message count
//! prints a progress line per second and a final summary with the count it sent and no
//! errors; several producers and consumers over several topics move every message once, and
//! `--summary-json` writes throughput and latency percentiles.

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

fn summary_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("summary JSON written");
    serde_json::from_str(&text).expect("summary is JSON")
}

#[test]
fn producers_and_consumers_over_topics_write_json_summaries() {
    let s = Standalone::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (pj, cj) = (dir.path().join("p.json"), dir.path().join("c.json"));
    let url = s.url();
    let consumer = {
        let (url, cj) = (url.clone(), cj.clone());
        std::thread::spawn(move || {
            run(
                env!("CARGO_BIN_EXE_magnetar-perf"),
                &[
                    "--service-url",
                    &url,
                    "consume",
                    "multi",
                    "--topics",
                    "2",
                    "--consumers",
                    "2",
                    "--subscription-type",
                    "shared",
                    "--earliest",
                    "-m",
                    "2000",
                    "--duration",
                    "60",
                    "--summary-json",
                    cj.to_str().expect("utf-8 path"),
                ],
                Duration::from_secs(90),
            )
        })
    };
    let out = run(
        env!("CARGO_BIN_EXE_magnetar-perf"),
        &[
            "--service-url",
            &url,
            "produce",
            "multi",
            "--topics",
            "2",
            "--producers",
            "2",
            "--rate",
            "2000",
            "-m",
            "2000",
            "--size",
            "512",
            "--duration",
            "60",
            "--summary-json",
            pj.to_str().expect("utf-8 path"),
        ],
        Duration::from_secs(90),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cout = consumer.join().expect("consumer thread");
    assert!(
        cout.status.success(),
        "{}",
        String::from_utf8_lossy(&cout.stderr)
    );
    for (path, mode) in [(&pj, "produce"), (&cj, "consume")] {
        let j = summary_json(path);
        assert_eq!(j["mode"], mode, "{j}");
        assert_eq!(j["messages"], 2000, "{j}");
        assert_eq!(j["errors"], 0, "{j}");
        assert!(j["msg_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{j}");
        assert!(j["mb_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{j}");
        let l = &j["latency_ms"];
        let p = |k: &str| {
            l[k].as_f64()
                .unwrap_or_else(|| panic!("latency_ms.{k}: {j}"))
        };
        assert!(
            p("p50") <= p("p99") && p("p99") <= p("p999") && p("p999") <= p("max"),
            "{j}"
        );
    }
}
