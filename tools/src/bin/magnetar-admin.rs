//! `magnetar-admin`: operate a Magnetar cluster, like `pulsar-admin`.

use clap::{Parser, Subcommand};
use magnetar_tools::{cmd_metadata, common};

#[derive(Parser)]
#[command(name = "magnetar-admin", version, about = "Administer a Magnetar cluster")]
struct Cli {
    /// Metadata service addresses (comma-separated host:port), for metadata and bookie commands.
    #[arg(long, env = "MAGNETAR_METADATA", global = true, default_value = "127.0.0.1:2181")]
    metadata: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Metadata service commands.
    #[command(subcommand)]
    Metadata(MetadataCmd),
}

#[derive(Subcommand)]
enum MetadataCmd {
    /// Leader, term, members and last applied index.
    Status(cmd_metadata::StatusArgs),
}

fn main() {
    let cli = Cli::parse();
    common::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("magnetar-admin: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let addrs = common::split_addrs(&cli.metadata);
    let result = rt.block_on(async move {
        match cli.command {
            Command::Metadata(MetadataCmd::Status(args)) => cmd_metadata::status(&addrs, args).await,
        }
    });
    if let Err(e) = result {
        eprintln!("magnetar-admin: {e:#}");
        std::process::exit(1);
    }
}
