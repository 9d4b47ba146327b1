//! `magnetar-admin schemas ...`: a topic's schema in the registry, like
//! `pulsar-admin schemas get|upload|delete`.

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::Value;

use super::rest::{print_json, Rest};
use super::units::topic_path;

/// `schemas ...`.
#[derive(Debug, Subcommand)]
pub enum SchemasCmd {
    /// Show a topic's latest schema (or one version, or every version).
    Get {
        /// `persistent://tenant/ns/topic` (or a short form).
        topic: String,
        /// This version instead of the latest.
        #[arg(short = 'v', long)]
        version: Option<u64>,
        /// Every version since the last deletion.
        #[arg(short = 'a', long = "all-versions", conflicts_with = "version")]
        all_versions: bool,
    },
    /// Upload a schema from a JSON file: `{"type": "JSON", "schema": "...", "properties": {}}`.
    Upload {
        /// `persistent://tenant/ns/topic` (or a short form).
        topic: String,
        /// The schema file.
        #[arg(short = 'f', long)]
        filename: std::path::PathBuf,
    },
    /// Delete a topic's schema.
    Delete {
        /// `persistent://tenant/ns/topic` (or a short form).
        topic: String,
    },
}

/// `/admin/v2/schemas/{tenant}/{ns}/{topic}` of a topic argument.
fn schemas_path(topic: &str) -> anyhow::Result<String> {
    let path = topic_path(topic)?;
    let rest = path
        .strip_prefix("persistent/")
        .context("topic path without domain")?;
    Ok(format!("/admin/v2/schemas/{rest}"))
}

/// `schemas ...` over REST.
pub async fn run(rest: &Rest, cmd: SchemasCmd) -> anyhow::Result<()> {
    match cmd {
        SchemasCmd::Get {
            topic,
            version,
            all_versions,
        } => {
            let base = schemas_path(&topic)?;
            let path = match (version, all_versions) {
                (_, true) => format!("{base}/schemas"),
                (Some(v), false) => format!("{base}/schema/{v}"),
                (None, false) => format!("{base}/schema"),
            };
            print_json(&rest.get(&path).await?)
        }
        SchemasCmd::Upload { topic, filename } => {
            let text = std::fs::read_to_string(&filename)
                .with_context(|| format!("reading {}", filename.display()))?;
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", filename.display()))?;
            if !body["type"].is_string() {
                bail!("{}: a \"type\" field is required", filename.display());
            }
            let path = format!("{}/schema", schemas_path(&topic)?);
            print_json(&rest.call("POST", &path, Some(body)).await?)
        }
        SchemasCmd::Delete { topic } => {
            let path = format!("{}/schema", schemas_path(&topic)?);
            print_json(&rest.call("DELETE", &path, None).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_paths_follow_pulsar() {
        assert_eq!(
            schemas_path("persistent://t/ns/orders").expect("path"),
            "/admin/v2/schemas/t/ns/orders"
        );
        assert_eq!(
            schemas_path("orders").expect("short"),
            "/admin/v2/schemas/public/default/orders"
        );
    }
}
