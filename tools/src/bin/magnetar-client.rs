//! `magnetar-client`: produce and consume messages from the command line, like
//! `pulsar-client`.

use clap::Parser;
use magnetar_tools::{cmd_client, common};

#[derive(Parser)]
#[command(
    name = "magnetar-client",
    version,
    about = "Produce and consume messages"
)]
struct Cli {
    #[command(flatten)]
    args: cmd_client::ClientArgs,
}

fn main() {
    let args = Cli::parse().args;
    common::init_tracing_quiet();
    common::run_main("magnetar-client", |shutdown| {
        cmd_client::run(args, shutdown)
    });
}
