//! `magnetar`: runs Magnetar servers (standalone, metadata node, bookie, broker).

use clap::{Parser, Subcommand};
use magnetar_tools::{cmd_bookie, cmd_broker, cmd_init};
use magnetar_tools::{cmd_metadata, common, standalone};

#[derive(Parser)]
#[command(
    name = "magnetar",
    version,
    about = "Magnetar: a Pulsar-compatible messaging system"
)]
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
    /// One bookie (ledger storage) with its auto-recovery worker.
    Bookie(cmd_bookie::BookieArgs),
    /// One broker of a cluster (bundle ownership through the metadata service).
    Broker(cmd_broker::BrokerArgs),
    /// Creates the cluster, tenant `public` and namespace `public/default` (idempotent).
    InitializeClusterMetadata(cmd_init::InitArgs),
}

fn main() {
    let cli = Cli::parse();
    common::init_tracing();
    common::run_main("magnetar", |shutdown| async move {
        match cli.command {
            Command::Standalone(args) => standalone::run(args, shutdown).await,
            Command::Metadata(args) => cmd_metadata::run(args, shutdown).await,
            Command::Bookie(args) => {
                let addrs = common::split_addrs(&args.metadata);
                let metadata: std::sync::Arc<dyn magnetar_metadata::MetadataStore> =
                    std::sync::Arc::new(magnetar_metadata::GrpcMetadataClient::new(addrs));
                cmd_bookie::run(args, metadata, shutdown).await
            }
            Command::Broker(args) => cmd_broker::run(args, shutdown).await,
            Command::InitializeClusterMetadata(args) => cmd_init::run(args).await,
        }
    });
}
