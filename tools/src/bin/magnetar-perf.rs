//! `magnetar-perf`: produce and consume at load and report throughput and latency, like
//! `pulsar-perf`.

use clap::Parser;
use magnetar_tools::{cmd_perf, common};

#[derive(Parser)]
#[command(
    name = "magnetar-perf",
    version,
    about = "Measure throughput and latency"
)]
struct Cli {
    #[command(flatten)]
    args: cmd_perf::PerfArgs,
}

fn main() {
    let args = Cli::parse().args;
    common::init_tracing_quiet();
    common::run_main("magnetar-perf", |shutdown| cmd_perf::run(args, shutdown));
}
