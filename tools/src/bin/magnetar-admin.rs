//! `magnetar-admin`: operate a Magnetar cluster, like `pulsar-admin`.

use clap::{Parser, Subcommand};
use magnetar_tools::cmd_admin::{
    self, BookiesCmd, BrokersCmd, ClustersCmd, NamespacesCmd, TenantsCmd, TopicsCmd,
};
use magnetar_tools::{cmd_metadata, common};

#[derive(Parser)]
#[command(
    name = "magnetar-admin",
    version,
    about = "Administer a Magnetar cluster"
)]
struct Cli {
    /// Metadata service addresses (comma-separated host:port), for metadata and bookie commands.
    #[arg(
        long,
        env = "MAGNETAR_METADATA",
        global = true,
        default_value = "127.0.0.1:7000"
    )]
    metadata: String,
    /// Admin REST URL of a broker, for clusters/tenants/namespaces/topics/bookies commands.
    #[arg(
        long = "admin-url",
        env = "MAGNETAR_ADMIN_URL",
        global = true,
        default_value = "http://127.0.0.1:8080"
    )]
    admin_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Metadata service commands.
    #[command(subcommand)]
    Metadata(MetadataCmd),
    /// Clusters (REST).
    #[command(subcommand)]
    Clusters(ClustersCmd),
    /// Tenants (REST).
    #[command(subcommand)]
    Tenants(TenantsCmd),
    /// Namespaces and their policies (REST).
    #[command(subcommand)]
    Namespaces(NamespacesCmd),
    /// Topics and subscriptions (REST).
    #[command(subcommand)]
    Topics(TopicsCmd),
    /// Topic schemas in the schema registry (REST).
    #[command(subcommand)]
    Schemas(cmd_admin::schemas::SchemasCmd),
    /// Bookies.
    #[command(subcommand)]
    Bookies(BookiesCmd),
    /// Brokers (REST).
    #[command(subcommand)]
    Brokers(BrokersCmd),
}

#[derive(Subcommand)]
enum MetadataCmd {
    /// Leader, term, members and last applied index.
    Status(cmd_metadata::StatusArgs),
}

fn main() {
    let cli = Cli::parse();
    common::init_tracing_quiet();
    let addrs = common::split_addrs(&cli.metadata);
    let admin_url = cli.admin_url.clone();
    common::run_main("magnetar-admin", |_shutdown| async move {
        let rest = || cmd_admin::Rest::new(&admin_url);
        match cli.command {
            Command::Metadata(MetadataCmd::Status(args)) => {
                cmd_metadata::status(&addrs, args).await
            }
            Command::Clusters(c) => cmd_admin::clusters(&rest()?, c).await,
            Command::Tenants(c) => cmd_admin::tenants(&rest()?, c).await,
            Command::Namespaces(c) => cmd_admin::namespaces::run(&rest()?, c).await,
            Command::Topics(c) => cmd_admin::topics::run(&rest()?, c).await,
            Command::Schemas(c) => cmd_admin::schemas::run(&rest()?, c).await,
            Command::Brokers(c) => cmd_admin::brokers(&rest()?, c).await,
            Command::Bookies(BookiesCmd::List(args)) => {
                cmd_admin::bookies_list(&rest()?, args).await
            }
            Command::Bookies(BookiesCmd::UnderReplicated(args)) => {
                let metadata: std::sync::Arc<dyn magnetar_metadata::MetadataStore> =
                    std::sync::Arc::new(magnetar_metadata::GrpcMetadataClient::new(addrs));
                magnetar_tools::cmd_bookie::under_replicated(args, metadata).await
            }
        }
    });
}
