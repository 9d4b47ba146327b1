//! The processes without a broker HTTP port also expose Prometheus metrics: `magnetar
//! metadata --metrics-listen` and `magnetar bookie --metrics-listen` serve `/metrics` with
//! their own `magnetar_metadata_*` / `magnetar_bookie_*` series, and `/health`.

mod bookie_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bookie_support::{free_port, wait_for, Procs};

/// `GET path` over plain HTTP/1.0; `(status, body)`.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

async fn scrape_until(addr: &str, needle: &str) -> bool {
    wait_for(Duration::from_secs(30), || {
        let found = get(addr, "/metrics").is_some_and(|(st, b)| st == 200 && b.contains(needle));
        async move { found }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_bookie_processes_serve_metrics() {
    let (mut procs, _md) = Procs::start_metadata().await;

    let bookie_metrics = format!("127.0.0.1:{}", free_port());
    let data = procs.dir.path().join("bookie-data");
    procs.start_bookie("bookie-m", &data, &["--metrics-listen", &bookie_metrics]);
    assert!(
        scrape_until(&bookie_metrics, "magnetar_bookie_").await,
        "no bookie metrics at {bookie_metrics}; logs in {}",
        procs.log_dir()
    );
    assert_eq!(get(&bookie_metrics, "/health").map(|r| r.0), Some(200));

    let md_listen = format!("127.0.0.1:{}", free_port());
    let md_metrics = format!("127.0.0.1:{}", free_port());
    let md_data = procs.dir.path().join("metadata-2");
    procs.spawn(
        "metadata-2",
        &[
            "metadata",
            "--listen",
            &md_listen,
            "--data-dir",
            &md_data.to_string_lossy(),
            "--metrics-listen",
            &md_metrics,
        ],
    );
    assert!(
        scrape_until(&md_metrics, "magnetar_metadata_is_leader 1").await,
        "no metadata metrics at {md_metrics}; logs in {}",
        procs.log_dir()
    );
}
