//! `magnetar-perf`: load generator. `produce` publishes at a target rate and reports
//! throughput and publish latency (send to receipt) every second; `consume` reports
//! throughput and end-to-end latency (publish time to receipt). Both print a summary.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use magnetar_client::{
    BatchingPolicy, CompressionType, InitialPosition, ProducerMessage, PulsarClient, SendFuture,
    SubType,
};
use stats::Stats;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Arguments of `magnetar-perf`.
#[derive(Debug, Args)]
pub struct PerfArgs {
    /// Broker service URL.
    #[arg(
        long,
        global = true,
        env = "MAGNETAR_SERVICE_URL",
        default_value = "pulsar://127.0.0.1:6650"
    )]
    pub url: String,
    /// What to measure.
    #[command(subcommand)]
    pub command: PerfCommand,
}

/// `magnetar-perf` subcommands.
#[derive(Debug, Subcommand)]
pub enum PerfCommand {
    /// Publish load.
    Produce(PerfProduceArgs),
    /// Consume load.
    Consume(PerfConsumeArgs),
}

/// Compression on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    /// No compression.
    None,
    /// LZ4 block.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// Arguments of `produce`.
#[derive(Debug, Args)]
pub struct PerfProduceArgs {
    /// Topic name.
    pub topic: String,
    /// Target messages per second (0 = as fast as possible).
    #[arg(short = 'r', long, default_value_t = 100)]
    pub rate: u64,
    /// Payload size in bytes.
    #[arg(short = 's', long, default_value_t = 1024)]
    pub size: usize,
    /// Messages to send (0 = until interrupted or --time).
    #[arg(short = 'm', long = "num-messages", default_value_t = 0)]
    pub num: u64,
    /// Seconds to run (0 = no limit).
    #[arg(long = "time", default_value_t = 0)]
    pub time_secs: u64,
    /// Batch up to this many messages (0 disables batching).
    #[arg(long, default_value_t = 1000)]
    pub batch_max_messages: usize,
    /// Batch delay in milliseconds.
    #[arg(long, default_value_t = 1)]
    pub batch_delay_ms: u64,
    /// Batch size limit in bytes.
    #[arg(long, default_value_t = 128 * 1024)]
    pub batch_max_bytes: usize,
    /// Most sends awaiting a receipt.
    #[arg(long, default_value_t = 1000)]
    pub max_pending: usize,
    /// Compression codec.
    #[arg(long, value_enum, default_value = "none")]
    pub compression: CompressionArg,
}

/// Arguments of `consume`.
#[derive(Debug, Args)]
pub struct PerfConsumeArgs {
    /// Topic name.
    pub topic: String,
    /// Subscription name.
    #[arg(short = 's', long = "subscription", default_value = "perf-sub")]
    pub subscription: String,
    /// Shared subscription instead of exclusive.
    #[arg(long)]
    pub shared: bool,
    /// Messages to receive (0 = until interrupted or --time).
    #[arg(short = 'm', long = "num-messages", default_value_t = 0)]
    pub num: u64,
    /// Seconds to run (0 = no limit).
    #[arg(long = "time", default_value_t = 0)]
    pub time_secs: u64,
    /// Receiver queue size.
    #[arg(short = 'q', long, default_value_t = 1000)]
    pub receiver_queue_size: u32,
}

/// Runs `magnetar-perf`.
pub async fn run(args: PerfArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = PulsarClient::new(&args.url).context("invalid service URL")?;
    let r = match args.command {
        PerfCommand::Produce(p) => produce(&client, p, shutdown).await,
        PerfCommand::Consume(c) => consume(&client, c, shutdown).await,
    };
    client.close().await;
    r
}

fn deadline(secs: u64) -> Option<Instant> {
    (secs > 0).then(|| Instant::now() + Duration::from_secs(secs))
}

async fn produce(
    client: &PulsarClient,
    a: PerfProduceArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut b = client
        .producer()
        .topic(&a.topic)
        .max_pending(a.max_pending)
        .compression(match a.compression {
            CompressionArg::None => CompressionType::None,
            CompressionArg::Lz4 => CompressionType::Lz4,
            CompressionArg::Zstd => CompressionType::Zstd,
        });
    if a.batch_max_messages > 0 {
        b = b.batching(BatchingPolicy {
            max_messages: a.batch_max_messages,
            max_bytes: a.batch_max_bytes,
            max_delay: Duration::from_millis(a.batch_delay_ms),
        });
    }
    let producer = b.create().await.context("cannot create producer")?;
    let stats = Arc::new(Stats::default());
    // Receipts arrive in order per partition; a collector awaits them and records latency.
    let (tx, mut rx) = mpsc::channel::<(Instant, SendFuture)>(a.max_pending.max(1) * 4);
    let collector = {
        let stats = stats.clone();
        tokio::spawn(async move {
            while let Some((t0, f)) = rx.recv().await {
                match f.await {
                    Ok(_) => stats.record(t0.elapsed(), 0),
                    Err(e) => stats.error(&e.to_string()),
                }
            }
        })
    };
    let reporter = spawn_reporter(stats.clone(), "produced");
    let payload = bytes::Bytes::from(vec![b'x'; a.size]);
    let end = deadline(a.time_secs);
    let start = Instant::now();
    let mut sent = 0u64;
    while (a.num == 0 || sent < a.num)
        && !shutdown.is_cancelled()
        && end.is_none_or(|e| Instant::now() < e)
    {
        if a.rate > 0 {
            let due = start + Duration::from_secs_f64(sent as f64 / a.rate as f64);
            if due > Instant::now() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep_until(due.into()) => {}
                }
            }
        }
        let t0 = Instant::now();
        let f = producer.send(ProducerMessage::new(payload.clone())).await?;
        stats.add_bytes(payload.len());
        if tx.send((t0, f)).await.is_err() {
            break;
        }
        sent += 1;
    }
    drop(tx);
    let _ = producer.flush().await;
    let _ = collector.await;
    reporter.abort();
    producer.close().await?;
    stats.summary("produced", start.elapsed());
    Ok(())
}

async fn consume(
    client: &PulsarClient,
    a: PerfConsumeArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let consumer = client
        .consumer()
        .topic(&a.topic)
        .subscription(&a.subscription)
        .sub_type(if a.shared {
            SubType::Shared
        } else {
            SubType::Exclusive
        })
        .initial_position(InitialPosition::Latest)
        .receiver_queue_size(a.receiver_queue_size)
        .subscribe()
        .await
        .context("cannot subscribe")?;
    let stats = Arc::new(Stats::default());
    let reporter = spawn_reporter(stats.clone(), "consumed");
    let end = deadline(a.time_secs);
    let start = Instant::now();
    let mut n = 0u64;
    while (a.num == 0 || n < a.num) && end.is_none_or(|e| Instant::now() < e) {
        let m = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.receive_timeout(Duration::from_millis(500)) => match m? {
                Some(m) => m,
                None => continue,
            },
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let e2e = Duration::from_millis(now_ms.saturating_sub(m.publish_time));
        stats.record(e2e, m.payload.len());
        consumer.ack(&m)?;
        n += 1;
    }
    reporter.abort();
    consumer.close().await?;
    stats.summary("consumed", start.elapsed());
    Ok(())
}

fn spawn_reporter(stats: Arc<Stats>, what: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = Instant::now();
        loop {
            tick.tick().await;
            let el = last.elapsed();
            last = Instant::now();
            stats.report_interval(what, el);
        }
    })
}

/// Latency and throughput counters, without extra dependencies.
mod stats {
    use std::sync::Mutex;
    use std::time::Duration;

    /// Most latency samples kept for the final summary.
    const MAX_SAMPLES: usize = 5_000_000;

    #[derive(Default)]
    struct Inner {
        interval: Vec<u64>,
        all: Vec<u64>,
        msgs: u64,
        bytes: u64,
        interval_msgs: u64,
        interval_bytes: u64,
        errors: u64,
        last_error: Option<String>,
    }

    /// Shared counters; latencies in microseconds.
    #[derive(Default)]
    pub struct Stats(Mutex<Inner>);

    fn pct(sorted: &[u64], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
    }

    impl Stats {
        fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
            self.0.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// One completed message with its latency (and payload bytes, if not counted yet).
        pub fn record(&self, latency: Duration, bytes: usize) {
            let mut s = self.lock();
            let us = latency.as_micros() as u64;
            s.interval.push(us);
            if s.all.len() < MAX_SAMPLES {
                s.all.push(us);
            }
            s.msgs += 1;
            s.interval_msgs += 1;
            s.bytes += bytes as u64;
            s.interval_bytes += bytes as u64;
        }

        /// Payload bytes sent.
        pub fn add_bytes(&self, bytes: usize) {
            let mut s = self.lock();
            s.bytes += bytes as u64;
            s.interval_bytes += bytes as u64;
        }

        /// A failed message.
        pub fn error(&self, e: &str) {
            let mut s = self.lock();
            s.errors += 1;
            s.last_error = Some(e.to_owned());
        }

        /// Prints and resets the per-interval numbers.
        pub fn report_interval(&self, what: &str, elapsed: Duration) {
            let mut s = self.lock();
            let mut v = std::mem::take(&mut s.interval);
            v.sort_unstable();
            let secs = elapsed.as_secs_f64().max(1e-9);
            println!(
                "{what}: {:.1} msg/s, {:.2} MB/s, latency ms p50 {:.2} p99 {:.2} max {:.2}, errors {}",
                s.interval_msgs as f64 / secs,
                s.interval_bytes as f64 / secs / 1e6,
                pct(&v, 0.5),
                pct(&v, 0.99),
                v.last().copied().unwrap_or(0) as f64 / 1000.0,
                s.errors,
            );
            s.interval_msgs = 0;
            s.interval_bytes = 0;
        }

        /// Prints the final summary.
        pub fn summary(&self, what: &str, elapsed: Duration) {
            let mut s = self.lock();
            let mut v = std::mem::take(&mut s.all);
            v.sort_unstable();
            let secs = elapsed.as_secs_f64().max(1e-9);
            println!(
                "summary: {what} {} messages in {:.1}s: {:.1} msg/s, {:.2} MB/s; latency ms p50 {:.2} p95 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}; errors {}{}",
                s.msgs,
                secs,
                s.msgs as f64 / secs,
                s.bytes as f64 / secs / 1e6,
                pct(&v, 0.5),
                pct(&v, 0.95),
                pct(&v, 0.99),
                pct(&v, 0.999),
                v.last().copied().unwrap_or(0) as f64 / 1000.0,
                s.errors,
                s.last_error
                    .as_ref()
                    .map(|e| format!(" (last: {e})"))
                    .unwrap_or_default(),
            );
        }
    }

    #[cfg(test)]
    mod tests {
        use super::pct;
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: crate::cmd_perf::PerfArgs,
        }

        #[test]
        fn produce_flags_parse() {
            let c = Cli::parse_from([
                "magnetar-perf",
                "produce",
                "t",
                "-r",
                "500",
                "-s",
                "10",
                "--compression",
                "lz4",
            ]);
            match c.args.command {
                crate::cmd_perf::PerfCommand::Produce(p) => {
                    assert_eq!((p.rate, p.size), (500, 10));
                }
                crate::cmd_perf::PerfCommand::Consume(_) => panic!("expected produce"),
            }
        }

        #[test]
        fn percentiles_of_sorted_samples() {
            let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
            assert_eq!(pct(&v, 0.5), 51.0);
            assert_eq!(pct(&v, 0.99), 99.0);
            assert_eq!(pct(&[], 0.5), 0.0);
        }
    }
}
