//! Loads the topics of replicated namespaces that this broker serves, so their replicators
//! run without waiting for a client: after a restart, or after the broker that owned them
//! died, a topic whose producers are gone still drains its replication backlog (Pulsar
//! loads every topic of a bundle when a broker takes the bundle over).
//!
//! In a cluster, a topic is loaded only where a lookup places it (the owner, or the broker
//! the load manager assigns an unowned bundle to), exactly as a client's lookup would.

use std::sync::Arc;
use std::time::Duration;

use magnetar_metadata::list_all;
use tracing::{debug, info};

use super::remotes_from;
use crate::broker::Broker;
use crate::cluster::ownership::LookupAnswer;
use crate::error::Result;
use crate::names::TopicName;
use crate::policies::Policies;

/// How often unloaded topics of replicated namespaces are looked for.
const EVERY: Duration = Duration::from_secs(3);

/// Runs until the broker shuts down.
pub(super) async fn run(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = broker.shutdown.cancelled() => return,
        }
        if let Err(e) = load_replicated_topics(&broker).await {
            debug!(error = %e, "replicated topics not loaded");
        }
    }
}

/// `(tenant, namespace)` of a namespace policies key (`/namespaces/{t}/{ns}`), if it is one.
fn namespace_of(key: &str) -> Option<(&str, &str)> {
    let (t, ns) = key.strip_prefix("/namespaces/")?.split_once('/')?;
    (!t.is_empty() && !ns.is_empty() && !ns.contains('/')).then_some((t, ns))
}

/// One pass: every existing persistent topic of a namespace replicated from this cluster
/// that is not loaded here and that this broker serves is loaded.
async fn load_replicated_topics(broker: &Arc<Broker>) -> Result<()> {
    let local = &broker.config.cluster_name;
    for (key, v) in list_all(broker.metadata.as_ref(), "/namespaces/").await? {
        let Some((tenant, ns)) = namespace_of(&key) else {
            continue;
        };
        let Ok(p) = serde_json::from_slice::<Policies>(&v.value) else {
            continue;
        };
        if remotes_from(&p.replication_clusters, local).is_empty() {
            continue;
        }
        for t in broker.list_topics(tenant, ns).await? {
            if broker.shutdown.is_cancelled() {
                return Ok(());
            }
            let Ok(name) = TopicName::parse(&t) else {
                continue;
            };
            if broker.loaded_topic(&name).is_some() || !broker.topic_exists(&name).await? {
                continue;
            }
            if let Some(cluster) = broker.cluster.get() {
                match cluster.lookup(&name, false).await {
                    Ok(LookupAnswer::Here) => {}
                    Ok(LookupAnswer::Elsewhere(_)) => continue,
                    Err(e) => {
                        debug!(topic = %name, error = %e, "replicated topic lookup failed");
                        continue;
                    }
                }
            }
            match broker.get_topic(&name, false).await {
                Ok(_) => info!(topic = %name, "replicated topic loaded"),
                Err(e) => debug!(topic = %name, error = %e, "replicated topic not loaded"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespace_policy_keys_name_namespaces() {
        assert_eq!(namespace_of("/namespaces/geo/repl"), Some(("geo", "repl")));
        assert_eq!(namespace_of("/namespaces/geo"), None);
        assert_eq!(namespace_of("/namespaces/geo/repl/extra"), None);
        assert_eq!(namespace_of("/namespaces//repl"), None);
        assert_eq!(namespace_of("/tenants/geo"), None);
    }
}
