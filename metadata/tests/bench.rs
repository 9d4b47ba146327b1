//! Benchmark (ignored by default): CAS writes/s and linearizable-read latency p50/p99 on
//! in-process 1- and 3-node clusters over loopback gRPC. Run with
//! `cargo test -p magnetar-metadata --test bench -- --ignored --nocapture`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Cluster;
use magnetar_metadata::{Expect, MetadataStore};

async fn cas_per_sec(client: Arc<dyn MetadataStore>, writers: usize, for_: Duration) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("/bench/cas/{w}");
            let mut v = c
                .put(&key, Bytes::from("0"), Expect::Any, None)
                .await
                .expect("init");
            let mut n = 0u64;
            while start.elapsed() < for_ {
                v = c
                    .put(&key, Bytes::from(n.to_string()), Expect::Version(v), None)
                    .await
                    .expect("cas");
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("writer");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn read_latency(client: Arc<dyn MetadataStore>, n: usize) -> (Duration, Duration) {
    client
        .put("/bench/read", Bytes::from("x"), Expect::Any, None)
        .await
        .expect("put");
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client
            .get("/bench/read")
            .await
            .expect("get")
            .expect("present");
        lat.push(t.elapsed());
    }
    lat.sort();
    (lat[n / 2], lat[n * 99 / 100])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn bench_cas_and_linearizable_reads() {
    for nodes in [1usize, 3] {
        let c = Cluster::start(nodes).await;
        let client: Arc<dyn MetadataStore> = Arc::new(c.client());
        let one = cas_per_sec(client.clone(), 1, Duration::from_secs(3)).await;
        let eight = cas_per_sec(client.clone(), 8, Duration::from_secs(3)).await;
        let (p50, p99) = read_latency(client, 2000).await;
        println!(
            "nodes={nodes} cas_per_sec_1_writer={one:.0} cas_per_sec_8_writers={eight:.0} \
             read_p50_us={} read_p99_us={}",
            p50.as_micros(),
            p99.as_micros()
        );
        c.shutdown().await;
    }
}
