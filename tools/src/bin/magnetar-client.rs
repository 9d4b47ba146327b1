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
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("magnetar-client: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async move {
        let shutdown = common::shutdown_on_signals();
        cmd_client::run(args, shutdown).await
    });
    if let Err(e) = result {
        eprintln!("magnetar-client: {e:#}");
        std::process::exit(1);
    }
}
