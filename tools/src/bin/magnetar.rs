//! `magnetar`: runs Magnetar servers (standalone, metadata node, bookie, broker).

use clap::{Parser, Subcommand};
use magnetar_tools::{cmd_metadata, common, standalone};

#[derive(Parser)]
#[command(name = "magnetar", version, about = "Magnetar: a Pulsar-compatible messaging system")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Metadata node, bookie(s) and broker in one process.
    Standalone(standalone::StandaloneArgs),
    /// One metadata (Raft) node.
    Metadata(cmd_metadata::MetadataArgs),
}

fn main() {
    let cli = Cli::parse();
    common::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("magnetar: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async move {
        let shutdown = common::shutdown_on_signals();
        match cli.command {
            Command::Standalone(args) => standalone::run(args, shutdown).await,
            Command::Metadata(args) => cmd_metadata::run(args, shutdown).await,
        }
    });
    if let Err(e) = result {
        tracing::error!("{e:#}");
        eprintln!("magnetar: {e:#}");
        std::process::exit(1);
    }
}
