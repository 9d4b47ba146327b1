//! `magnetar-perf`: load generator, like `pulsar-perf`. `produce` publishes from N producers
//! over T topics at a target total rate and reports throughput and publish latency (send to
//! receipt); `consume` runs N consumers per topic and reports throughput and end-to-end
//! latency (publish time to receipt). Both print a progress line every second and a
//! summary at the end, optionally also as JSON (`--summary-json`).

mod stats;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use magnetar_client::{
    BatchingPolicy, CompressionType, InitialPosition, ProducerMessage, PulsarClient, SendFuture,
    SubType,
};
use tokio::sync::mpsc;

use crate::cmd_client::SubTypeArg;
use tokio_util::sync::CancellationToken;

pub use stats::{Latency, Stats, Summary};

/// Arguments of `magnetar-perf`.
#[derive(Debug, Args)]
pub struct PerfArgs {
    /// Broker service URL (`pulsar://host:port`; several hosts separated by commas).
    #[arg(
        short = 'u',
        long = "service-url",
        alias = "url",
        global = true,
        env = "MAGNETAR_SERVICE_URL",
        default_value = "pulsar://127.0.0.1:6650"
    )]
    pub service_url: String,
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
    /// Zlib (deflate).
    Zlib,
    /// Zstandard.
    Zstd,
    /// Snappy (raw block).
    Snappy,
}

impl From<CompressionArg> for CompressionType {
    fn from(c: CompressionArg) -> CompressionType {
        match c {
            CompressionArg::None => CompressionType::None,
            CompressionArg::Lz4 => CompressionType::Lz4,
            CompressionArg::Zlib => CompressionType::Zlib,
            CompressionArg::Zstd => CompressionType::Zstd,
            CompressionArg::Snappy => CompressionType::Snappy,
        }
    }
}

/// Options both modes share.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Topic name; with `--topics N` > 1 the topics are `TOPIC-0` .. `TOPIC-{N-1}`.
    pub topic: String,
    /// Number of topics.
    #[arg(short = 't', long = "topics", default_value_t = 1)]
    pub topics: usize,
    /// Messages in all (0 = until interrupted or `--duration`).
    #[arg(short = 'm', long = "num-messages", default_value_t = 0)]
    pub num: u64,
    /// Seconds to run (0 = no limit).
    #[arg(short = 'd', long = "duration", alias = "time", default_value_t = 0)]
    pub duration_secs: u64,
    /// Also write the summary as JSON to this file.
    #[arg(long = "summary-json")]
    pub summary_json: Option<PathBuf>,
}

impl RunArgs {
    fn topic_names(&self) -> Vec<String> {
        if self.topics <= 1 {
            vec![self.topic.clone()]
        } else {
            (0..self.topics)
                .map(|i| format!("{}-{i}", self.topic))
                .collect()
        }
    }

    fn deadline(&self) -> Option<Instant> {
        (self.duration_secs > 0).then(|| Instant::now() + Duration::from_secs(self.duration_secs))
    }
}

/// Arguments of `produce`.
#[derive(Debug, Args)]
pub struct PerfProduceArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Target messages per second over all producers (0 = as fast as possible).
    #[arg(short = 'r', long, default_value_t = 100)]
    pub rate: u64,
    /// Payload size in bytes.
    #[arg(short = 's', long, default_value_t = 1024)]
    pub size: usize,
    /// Producers per topic.
    #[arg(short = 'n', long = "producers", default_value_t = 1)]
    pub producers: usize,
    /// Batch up to this many messages (0 disables batching).
    #[arg(long, default_value_t = 1000)]
    pub batch_max_messages: usize,
    /// Batch window in milliseconds.
    #[arg(long, default_value_t = 1)]
    pub batch_delay_ms: u64,
    /// Batch size limit in bytes.
    #[arg(long, default_value_t = 128 * 1024)]
    pub batch_max_bytes: usize,
    /// Send every message on its own (same as `--batch-max-messages 0`).
    #[arg(long)]
    pub disable_batching: bool,
    /// Most sends awaiting a receipt, per producer.
    #[arg(long, default_value_t = 1000)]
    pub max_pending: usize,
    /// Compression codec.
    #[arg(short = 'z', long, value_enum, default_value = "none")]
    pub compression: CompressionArg,
}

/// Arguments of `consume`.
#[derive(Debug, Args)]
pub struct PerfConsumeArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Subscription name.
    #[arg(short = 's', long = "subscription", default_value = "perf-sub")]
    pub subscription: String,
    /// Subscription type.
    #[arg(
        long = "subscription-type",
        value_enum,
        ignore_case = true,
        default_value = "exclusive"
    )]
    pub sub_type: SubTypeArg,
    /// Shorthand for `--subscription-type shared`.
    #[arg(long)]
    pub shared: bool,
    /// Consumers per topic (more than one needs a shared, failover or key-shared type).
    #[arg(short = 'n', long = "consumers", default_value_t = 1)]
    pub consumers: usize,
    /// Start a new subscription at the earliest message instead of the latest.
    #[arg(long)]
    pub earliest: bool,
    /// Receiver queue size.
    #[arg(short = 'q', long, default_value_t = 1000)]
    pub receiver_queue_size: u32,
}

/// Runs `magnetar-perf`.
pub async fn run(args: PerfArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = PulsarClient::new(&args.service_url).context("invalid service URL")?;
    let r = match args.command {
        PerfCommand::Produce(p) => produce(&client, p, shutdown).await,
        PerfCommand::Consume(c) => consume(&client, c, shutdown).await,
    };
    client.close().await;
    r
}

/// Claims message slots against the `--num-messages` budget shared by all workers.
struct Budget {
    limit: u64,
    claimed: AtomicU64,
}

impl Budget {
    fn claim(&self) -> bool {
        self.limit == 0 || self.claimed.fetch_add(1, Ordering::Relaxed) < self.limit
    }
}

async fn produce(
    client: &PulsarClient,
    a: PerfProduceArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let topics = a.run.topic_names();
    let workers = topics.len() * a.producers.max(1);
    let mut producers = Vec::with_capacity(workers);
    for topic in &topics {
        for _ in 0..a.producers.max(1) {
            let mut b = client
                .producer()
                .topic(topic)
                .max_pending(a.max_pending)
                .compression(a.compression.into());
            if a.batch_max_messages > 0 && !a.disable_batching {
                b = b.batching(BatchingPolicy {
                    max_messages: a.batch_max_messages,
                    max_bytes: a.batch_max_bytes,
                    max_delay: Duration::from_millis(a.batch_delay_ms),
                });
            }
            producers.push(
                b.create()
                    .await
                    .with_context(|| format!("cannot create a producer on {topic}"))?,
            );
        }
    }
    println!(
        "producing to {} topic(s) with {workers} producer(s), rate {} msg/s, {} B messages",
        topics.len(),
        if a.rate == 0 {
            "unlimited".to_owned()
        } else {
            a.rate.to_string()
        },
        a.size
    );
    let stats = Arc::new(Stats::default());
    let budget = Arc::new(Budget {
        limit: a.run.num,
        claimed: AtomicU64::new(0),
    });
    let end = a.run.deadline();
    let per_worker_rate = a.rate as f64 / workers as f64;
    let payload = bytes::Bytes::from(vec![b'x'; a.size]);
    let reporter = spawn_reporter(stats.clone(), "produced");
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(workers);
    for producer in producers {
        let (stats, budget, shutdown, payload) = (
            stats.clone(),
            budget.clone(),
            shutdown.clone(),
            payload.clone(),
        );
        let max_pending = a.max_pending;
        tasks.push(tokio::spawn(async move {
            // Receipts arrive in order; a collector awaits them and records latency.
            let (tx, mut rx) = mpsc::channel::<(Instant, SendFuture)>(max_pending.max(1) * 4);
            let collector = {
                let stats = stats.clone();
                let bytes = payload.len();
                tokio::spawn(async move {
                    while let Some((t0, f)) = rx.recv().await {
                        match f.await {
                            Ok(_) => stats.record(t0.elapsed(), bytes),
                            Err(e) => stats.error(&e.to_string()),
                        }
                    }
                })
            };
            let mut sent = 0u64;
            while !shutdown.is_cancelled()
                && end.is_none_or(|e| Instant::now() < e)
                && budget.claim()
            {
                if per_worker_rate > 0.0 {
                    let due = start + Duration::from_secs_f64(sent as f64 / per_worker_rate);
                    if due > Instant::now() {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep_until(due.into()) => {}
                        }
                    }
                }
                let t0 = Instant::now();
                match producer.send(ProducerMessage::new(payload.clone())).await {
                    Ok(f) => {
                        if tx.send((t0, f)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => stats.error(&e.to_string()),
                }
                sent += 1;
            }
            drop(tx);
            let _ = producer.flush().await;
            let _ = collector.await;
            if let Err(e) = producer.close().await {
                stats.error(&e.to_string());
            }
        }));
    }
    finish(tasks, reporter, &stats, "produce", start, &a.run).await
}

async fn consume(
    client: &PulsarClient,
    a: PerfConsumeArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let sub_type: SubType = if a.shared {
        SubType::Shared
    } else {
        a.sub_type.into()
    };
    let topics = a.run.topic_names();
    let mut consumers = Vec::new();
    for topic in &topics {
        for _ in 0..a.consumers.max(1) {
            consumers.push(
                client
                    .consumer()
                    .topic(topic)
                    .subscription(&a.subscription)
                    .sub_type(sub_type)
                    .initial_position(if a.earliest {
                        InitialPosition::Earliest
                    } else {
                        InitialPosition::Latest
                    })
                    .receiver_queue_size(a.receiver_queue_size)
                    .subscribe()
                    .await
                    .with_context(|| format!("cannot subscribe to {topic}"))?,
            );
        }
    }
    println!(
        "consuming from {} topic(s) with {} consumer(s) on subscription {} ({sub_type:?})",
        topics.len(),
        consumers.len(),
        a.subscription
    );
    let stats = Arc::new(Stats::default());
    let budget = Arc::new(Budget {
        limit: a.run.num,
        claimed: AtomicU64::new(0),
    });
    let done = shutdown.child_token();
    let end = a.run.deadline();
    let reporter = spawn_reporter(stats.clone(), "consumed");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for consumer in consumers {
        let (stats, budget, done) = (stats.clone(), budget.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while end.is_none_or(|e| Instant::now() < e) {
                let m = tokio::select! {
                    _ = done.cancelled() => break,
                    m = consumer.receive_timeout(Duration::from_millis(200)) => match m {
                        Ok(Some(m)) => m,
                        Ok(None) => continue,
                        Err(e) => {
                            stats.error(&e.to_string());
                            break;
                        }
                    },
                };
                if !budget.claim() {
                    done.cancel(); // the budget is spent; this message stays unacked
                    break;
                }
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let e2e = Duration::from_millis(now_ms.saturating_sub(m.publish_time));
                stats.record(e2e, m.payload.len());
                if let Err(e) = consumer.ack(&m) {
                    stats.error(&e.to_string());
                }
                if budget.limit > 0 && stats.messages() >= budget.limit {
                    done.cancel();
                }
            }
            if let Err(e) = consumer.close().await {
                stats.error(&e.to_string());
            }
        }));
    }
    finish(tasks, reporter, &stats, "consume", start, &a.run).await
}

/// Waits for the workers, then prints the summary (and writes it as JSON when asked).
async fn finish(
    workers: Vec<tokio::task::JoinHandle<()>>,
    reporter: tokio::task::JoinHandle<()>,
    stats: &Stats,
    mode: &str,
    start: Instant,
    run: &RunArgs,
) -> anyhow::Result<()> {
    for w in workers {
        w.await.with_context(|| format!("a {mode} worker failed"))?;
    }
    reporter.abort();
    let summary = stats.summary(mode, start.elapsed());
    let what = if mode == "produce" {
        "produced"
    } else {
        "consumed"
    };
    println!("{}", summary.line(what, stats.last_error().as_deref()));
    if let Some(path) = &run.summary_json {
        let json = serde_json::to_vec_pretty(&summary).context("summary to JSON")?;
        std::fs::write(path, json)
            .with_context(|| format!("cannot write the summary to {}", path.display()))?;
    }
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
            println!("{}", stats.interval_line(what, el));
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PerfArgs,
    }

    #[test]
    fn produce_flags_parse_in_pulsar_perf_spelling() {
        let c = Cli::parse_from([
            "magnetar-perf",
            "--service-url",
            "pulsar://h:1",
            "produce",
            "t",
            "--rate",
            "500",
            "--size",
            "10",
            "--duration",
            "7",
            "--producers",
            "2",
            "--topics",
            "3",
            "--compression",
            "zlib",
            "--summary-json",
            "/tmp/x.json",
        ]);
        assert_eq!(c.args.service_url, "pulsar://h:1");
        let PerfCommand::Produce(p) = c.args.command else {
            panic!("expected produce")
        };
        assert_eq!((p.rate, p.size, p.producers), (500, 10, 2));
        assert_eq!((p.run.duration_secs, p.run.topics), (7, 3));
        assert_eq!(p.run.topic_names(), ["t-0", "t-1", "t-2"]);
        assert!(p.run.summary_json.is_some());
    }

    #[test]
    fn consume_flags_parse() {
        let c = Cli::parse_from([
            "magnetar-perf",
            "consume",
            "t",
            "--consumers",
            "2",
            "--subscription-type",
            "Key_Shared",
            "--url",
            "pulsar://h:2",
        ]);
        assert_eq!(c.args.service_url, "pulsar://h:2");
        let PerfCommand::Consume(p) = c.args.command else {
            panic!("expected consume")
        };
        assert_eq!(p.consumers, 2);
        assert!(matches!(p.sub_type, SubTypeArg::KeyShared));
        assert_eq!(p.run.topic_names(), ["t"]);
    }

    #[test]
    fn the_budget_is_shared() {
        let b = Budget {
            limit: 3,
            claimed: AtomicU64::new(0),
        };
        assert_eq!((0..10).filter(|_| b.claim()).count(), 3);
        let unlimited = Budget {
            limit: 0,
            claimed: AtomicU64::new(0),
        };
        assert!((0..10).all(|_| unlimited.claim()));
    }
}
