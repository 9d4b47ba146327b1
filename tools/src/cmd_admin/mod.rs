//! `magnetar-admin` REST commands mirroring `pulsar-admin`: clusters, tenants, namespaces
//! (and their policies), topics and subscriptions, bookies. Each command is one or a few
//! calls to the broker's `/admin/v2` API; answers are printed as pretty JSON, errors carry
//! the broker's reason.

pub mod namespaces;
pub mod rest;
pub mod schemas;
pub mod topics;
pub mod units;

use clap::{Args, Subcommand};
use serde_json::json;

pub use namespaces::NamespacesCmd;
pub use rest::{print_json, Rest};
pub use topics::TopicsCmd;

/// `clusters ...`.
#[derive(Debug, Subcommand)]
pub enum ClustersCmd {
    /// List clusters.
    List,
    /// Show a cluster's configuration.
    Get { cluster: String },
    /// Create a cluster.
    Create(ClusterArgs),
    /// Update a cluster's URLs.
    Update(ClusterArgs),
    /// Delete a cluster.
    Delete { cluster: String },
}

/// A cluster's name and URLs.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Cluster name.
    pub cluster: String,
    /// HTTP service URL (`http://host:8080`).
    #[arg(long = "url")]
    pub url: Option<String>,
    /// Pulsar protocol URL (`pulsar://host:6650`).
    #[arg(long = "broker-url")]
    pub broker_url: Option<String>,
}

/// `tenants ...`.
#[derive(Debug, Subcommand)]
pub enum TenantsCmd {
    /// List tenants.
    List,
    /// Show a tenant.
    Get { tenant: String },
    /// Create a tenant.
    Create(TenantArgs),
    /// Update a tenant.
    Update(TenantArgs),
    /// Delete a tenant (it must have no namespaces).
    Delete { tenant: String },
}

/// A tenant's name, roles and clusters.
#[derive(Debug, Args)]
pub struct TenantArgs {
    /// Tenant name.
    pub tenant: String,
    /// Comma-separated admin roles.
    #[arg(short = 'r', long = "admin-roles", value_delimiter = ',')]
    pub admin_roles: Vec<String>,
    /// Comma-separated allowed clusters (default: every cluster).
    #[arg(short = 'c', long = "allowed-clusters", value_delimiter = ',')]
    pub allowed_clusters: Vec<String>,
}

/// `brokers ...`.
#[derive(Debug, Subcommand)]
pub enum BrokersCmd {
    /// Active brokers of a cluster.
    List { cluster: String },
    /// Health check of the broker at --admin-url.
    Healthcheck,
}

/// `brokers ...` over REST.
pub async fn brokers(rest: &Rest, cmd: BrokersCmd) -> anyhow::Result<()> {
    match cmd {
        BrokersCmd::List { cluster } => {
            print_json(&rest.get(&format!("/admin/v2/brokers/{cluster}")).await?)
        }
        BrokersCmd::Healthcheck => {
            rest.get_raw("/admin/v2/brokers/health").await?;
            println!("ok");
            Ok(())
        }
    }
}

/// `bookies ...`.
#[derive(Debug, Subcommand)]
pub enum BookiesCmd {
    /// List registered bookies with their state.
    List(crate::cmd_bookie::ListArgs),
    /// Ledgers with a copy on a bookie that is gone (reads the metadata service).
    UnderReplicated(crate::cmd_bookie::ListArgs),
}

/// `clusters ...` over REST.
pub async fn clusters(rest: &Rest, cmd: ClustersCmd) -> anyhow::Result<()> {
    match cmd {
        ClustersCmd::List => print_json(&rest.get("/admin/v2/clusters").await?),
        ClustersCmd::Get { cluster } => {
            print_json(&rest.get(&format!("/admin/v2/clusters/{cluster}")).await?)
        }
        ClustersCmd::Create(a) | ClustersCmd::Update(a)
            if a.url.is_none() && a.broker_url.is_none() =>
        {
            anyhow::bail!("cluster {}: give --url and/or --broker-url", a.cluster)
        }
        ClustersCmd::Create(a) => {
            let body = json!({"serviceUrl": a.url.unwrap_or_default(), "brokerServiceUrl": a.broker_url.unwrap_or_default()});
            rest.call(
                "PUT",
                &format!("/admin/v2/clusters/{}", a.cluster),
                Some(body),
            )
            .await?;
            Ok(())
        }
        ClustersCmd::Update(a) => {
            let path = format!("/admin/v2/clusters/{}", a.cluster);
            let cur = rest.get(&path).await?;
            let body = json!({
                "serviceUrl": a.url.unwrap_or_else(|| cur["serviceUrl"].as_str().unwrap_or("").to_string()),
                "brokerServiceUrl": a.broker_url.unwrap_or_else(|| cur["brokerServiceUrl"].as_str().unwrap_or("").to_string()),
            });
            rest.call("POST", &path, Some(body)).await?;
            Ok(())
        }
        ClustersCmd::Delete { cluster } => {
            rest.call("DELETE", &format!("/admin/v2/clusters/{cluster}"), None)
                .await?;
            Ok(())
        }
    }
}

async fn tenant_body(rest: &Rest, a: &TenantArgs) -> anyhow::Result<serde_json::Value> {
    let clusters = if a.allowed_clusters.is_empty() {
        rest.get("/admin/v2/clusters").await?
    } else {
        json!(a.allowed_clusters)
    };
    Ok(json!({"adminRoles": a.admin_roles, "allowedClusters": clusters}))
}

/// `tenants ...` over REST.
pub async fn tenants(rest: &Rest, cmd: TenantsCmd) -> anyhow::Result<()> {
    match cmd {
        TenantsCmd::List => print_json(&rest.get("/admin/v2/tenants").await?),
        TenantsCmd::Get { tenant } => {
            print_json(&rest.get(&format!("/admin/v2/tenants/{tenant}")).await?)
        }
        TenantsCmd::Create(a) => {
            let body = tenant_body(rest, &a).await?;
            rest.call(
                "PUT",
                &format!("/admin/v2/tenants/{}", a.tenant),
                Some(body),
            )
            .await?;
            Ok(())
        }
        TenantsCmd::Update(a) => {
            let body = tenant_body(rest, &a).await?;
            rest.call(
                "POST",
                &format!("/admin/v2/tenants/{}", a.tenant),
                Some(body),
            )
            .await?;
            Ok(())
        }
        TenantsCmd::Delete { tenant } => {
            rest.call("DELETE", &format!("/admin/v2/tenants/{tenant}"), None)
                .await?;
            Ok(())
        }
    }
}

/// `bookies list` over REST (`/admin/v2/bookies/all`).
pub async fn bookies_list(rest: &Rest, args: crate::cmd_bookie::ListArgs) -> anyhow::Result<()> {
    let v = rest.get("/admin/v2/bookies/all").await?;
    let empty = Vec::new();
    let list = v["bookies"].as_array().unwrap_or(&empty);
    match args.output {
        crate::cmd_bookie::Output::Json => print_json(&json!(list)),
        crate::cmd_bookie::Output::Text => {
            println!("{:<32} {:<22} {:>16} STATE", "ID", "ADDRESS", "FREE_BYTES");
            for b in list {
                println!(
                    "{:<32} {:<22} {:>16} {}",
                    b["bookieId"].as_str().unwrap_or("?"),
                    b["address"].as_str().unwrap_or("?"),
                    b["freeBytes"].as_u64().unwrap_or(0),
                    b["state"].as_str().unwrap_or("?"),
                );
            }
            Ok(())
        }
    }
}
