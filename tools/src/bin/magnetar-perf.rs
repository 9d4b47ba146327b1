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
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("magnetar-perf: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async move {
        let shutdown = common::shutdown_on_signals();
        cmd_perf::run(args, shutdown).await
    });
    if let Err(e) = result {
        eprintln!("magnetar-perf: {e:#}");
        std::process::exit(1);
    }
}
