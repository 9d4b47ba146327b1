//! Bundle ownership: who serves a topic, assigning unowned bundles, unload and split.

use std::collections::HashMap;

use bytes::Bytes;
use magnetar_metadata::{list_all, Expect, SessionId};
use tracing::{debug, info};

use super::bundles::{topic_hash, BundleRange, NamespaceBundles};
use super::{ownership_key, Cluster, LoadReport, OwnerInfo};
use crate::broker::Broker;
use crate::error::{BrokerError, Result};
use crate::names::TopicName;

/// Where a topic is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupAnswer {
    /// By this broker (it owns the bundle now).
    Here,
    /// By another broker.
    Elsewhere(OwnerInfo),
}

/// What an unload or split did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleOp {
    /// Done here.
    Done,
    /// The bundle belongs to another broker: redo the request there.
    OwnedBy(OwnerInfo),
}

fn bundles_key(ns_path: &str) -> String {
    format!("/bundles/{ns_path}")
}

fn not_ready(msg: String) -> BrokerError {
    BrokerError::ServiceNotReady(msg)
}

impl Cluster {
    /// The bundles of `t/ns`, created with the default count on first use. `fresh` reads
    /// the metadata service; otherwise the cached copy is used when present.
    pub async fn namespace_bundles(&self, ns_path: &str, fresh: bool) -> Result<NamespaceBundles> {
        if !fresh {
            if let Some(b) = self.bundles.lock().get(ns_path) {
                return Ok(b.clone());
            }
        }
        let key = bundles_key(ns_path);
        for _ in 0..5 {
            if let Some(v) = self.metadata.get(&key).await? {
                let nb: NamespaceBundles = serde_json::from_slice(&v.value)?;
                nb.bounds()?;
                self.bundles.lock().insert(ns_path.to_string(), nb.clone());
                return Ok(nb);
            }
            let nb = NamespaceBundles::even(self.config.default_bundles);
            let body = Bytes::from(serde_json::to_vec(&nb)?);
            match self.metadata.put(&key, body, Expect::Absent, None).await {
                Ok(_) => {
                    self.bundles.lock().insert(ns_path.to_string(), nb.clone());
                    return Ok(nb);
                }
                Err(e) if e.is_bad_version() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(not_ready(format!("bundles of {ns_path} keep changing")))
    }

    /// The bundle serving `name`.
    pub async fn bundle_of(&self, name: &TopicName, fresh: bool) -> Result<BundleRange> {
        let nb = self
            .namespace_bundles(&name.namespace_path(), fresh)
            .await?;
        nb.find(topic_hash(&name.to_string()))
    }

    /// The current owner of a bundle and the session holding it.
    pub async fn owner(
        &self,
        ns_path: &str,
        range: BundleRange,
    ) -> Result<Option<(OwnerInfo, Option<SessionId>)>> {
        match self.metadata.get(&ownership_key(ns_path, range)).await? {
            Some(v) => Ok(Some((serde_json::from_slice(&v.value)?, v.owner))),
            None => Ok(None),
        }
    }

    fn is_me(&self, owner: &OwnerInfo, session: Option<SessionId>) -> bool {
        owner.broker_id == self.me.broker_id && session.is_some() && session == self.session_id()
    }

    /// Takes an unowned bundle (create-only write under our session). `Ok(None)` when it is
    /// ours now, `Ok(Some(owner))` when another broker won.
    async fn acquire(&self, ns_path: &str, range: BundleRange) -> Result<Option<OwnerInfo>> {
        let Some(session) = self.session_id() else {
            return Err(not_ready("broker has no metadata session".into()));
        };
        let body = Bytes::from(serde_json::to_vec(&self.me)?);
        let key = ownership_key(ns_path, range);
        match self
            .metadata
            .put(&key, body, Expect::Absent, Some(session))
            .await
        {
            Ok(_) => {
                if self.session_id() != Some(session) {
                    return Err(not_ready("metadata session lost while acquiring".into()));
                }
                self.owned.lock().insert((ns_path.to_string(), range));
                info!(bundle = %format!("{ns_path}/{range}"), "bundle acquired");
                metrics::counter!("magnetar_broker_bundles_acquired_total").increment(1);
                Ok(None)
            }
            Err(e) if e.is_bad_version() => match self.owner(ns_path, range).await? {
                Some((o, s)) if self.is_me(&o, s) => {
                    self.owned.lock().insert((ns_path.to_string(), range));
                    Ok(None)
                }
                Some((o, _)) => Ok(Some(o)),
                None => Err(not_ready(format!(
                    "bundle {ns_path}/{range} is changing owner"
                ))),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Ok if this broker may serve `name` (acquiring its bundle if nobody owns it);
    /// ServiceNotReady otherwise, which makes clients look the topic up again.
    pub async fn check_owned(&self, name: &TopicName) -> Result<()> {
        let ns = name.namespace_path();
        if self.session_id().is_none() {
            return Err(not_ready("broker has no metadata session".into()));
        }
        let cached = self.bundle_of(name, false).await?;
        if self.owned.lock().contains(&(ns.clone(), cached)) {
            return Ok(());
        }
        // Bundles may have been split elsewhere: decide on fresh boundaries.
        let range = self.bundle_of(name, true).await?;
        if self.owned.lock().contains(&(ns.clone(), range)) {
            return Ok(());
        }
        match self.owner(&ns, range).await? {
            Some((o, s)) if self.is_me(&o, s) => {
                self.owned.lock().insert((ns, range));
                Ok(())
            }
            Some((o, _)) => Err(not_ready(format!(
                "topic {name} is served by {}",
                o.broker_service_url
            ))),
            None => match self.acquire(&ns, range).await? {
                None => Ok(()),
                Some(o) => Err(not_ready(format!(
                    "topic {name} is served by {}",
                    o.broker_service_url
                ))),
            },
        }
    }

    /// Answers a LOOKUP: the owner, or a newly assigned one. With `authoritative` (the
    /// client was redirected here) an unowned bundle is taken by this broker.
    pub async fn lookup(&self, name: &TopicName, authoritative: bool) -> Result<LookupAnswer> {
        let ns = name.namespace_path();
        let range = self.bundle_of(name, true).await?;
        if self.owned.lock().contains(&(ns.clone(), range)) {
            return Ok(LookupAnswer::Here);
        }
        match self.owner(&ns, range).await? {
            Some((o, s)) if self.is_me(&o, s) => {
                self.owned.lock().insert((ns, range));
                return Ok(LookupAnswer::Here);
            }
            // Held by this broker's previous process (killed and restarted before its
            // session expired): redirecting to ourselves would loop, so ask to retry.
            Some((o, _)) if o.broker_id == self.me.broker_id => {
                return Err(not_ready(format!(
                    "bundle {ns}/{range} is still held by this broker's previous session"
                )));
            }
            Some((o, _)) => return Ok(LookupAnswer::Elsewhere(o)),
            None => {}
        }
        let target = if authoritative {
            self.me.clone()
        } else {
            self.least_loaded(&ns, range).await?
        };
        debug!(topic = %name, bundle = %range, target = %target.broker_id, "assigning bundle");
        if target.broker_id != self.me.broker_id {
            return Ok(LookupAnswer::Elsewhere(target));
        }
        match self.acquire(&ns, range).await? {
            None => Ok(LookupAnswer::Here),
            Some(o) => Ok(LookupAnswer::Elsewhere(o)),
        }
    }

    /// Live brokers of this cluster with their load reports, by id.
    pub async fn active_brokers(&self) -> Result<Vec<(String, LoadReport)>> {
        let mut out = Vec::new();
        for (k, v) in list_all(self.metadata.as_ref(), "/brokers/").await? {
            let Ok(report) = serde_json::from_slice::<LoadReport>(&v.value) else {
                continue;
            };
            if report.cluster == self.cluster_name {
                out.push((k["/brokers/".len()..].to_string(), report));
            }
        }
        Ok(out)
    }

    /// The least-loaded live broker ([`super::placement`]): bundles owned (from the
    /// ownership keys) plus the load each broker last reported.
    async fn least_loaded(&self, ns_path: &str, range: BundleRange) -> Result<OwnerInfo> {
        let brokers = self.active_brokers().await?;
        let mut owned: HashMap<String, usize> = HashMap::new();
        for (_, v) in list_all(self.metadata.as_ref(), "/ownership/").await? {
            if let Ok(o) = serde_json::from_slice::<OwnerInfo>(&v.value) {
                *owned.entry(o.broker_id).or_default() += 1;
            }
        }
        let bundle = format!("{ns_path}/{range}");
        let best = super::placement::least_loaded(&brokers, &owned, &bundle);
        Ok(match best.and_then(|i| brokers.into_iter().nth(i)) {
            Some((id, r)) => OwnerInfo {
                broker_id: id,
                broker_service_url: r.broker_service_url,
                web_service_url: r.web_service_url,
            },
            None => self.me.clone(),
        })
    }

    /// Stops serving a bundle: closes its topics here and deletes the ownership key, so
    /// the next lookup assigns it again.
    pub async fn unload(
        &self,
        broker: &Broker,
        ns_path: &str,
        range: BundleRange,
    ) -> Result<BundleOp> {
        match self.owner(ns_path, range).await? {
            Some((o, s)) if !self.is_me(&o, s) => return Ok(BundleOp::OwnedBy(o)),
            None => return Ok(BundleOp::Done),
            Some(_) => {}
        }
        self.owned.lock().remove(&(ns_path.to_string(), range));
        let n = self.close_bundle_topics(broker, ns_path, range).await;
        self.metadata
            .delete(&ownership_key(ns_path, range), Expect::Any)
            .await?;
        info!(bundle = %format!("{ns_path}/{range}"), topics = n, "bundle unloaded");
        Ok(BundleOp::Done)
    }

    async fn close_bundle_topics(
        &self,
        broker: &Broker,
        ns_path: &str,
        range: BundleRange,
    ) -> usize {
        broker
            .close_topics(|t| {
                t.namespace_path() == ns_path && range.contains(topic_hash(&t.to_string()))
            })
            .await
    }

    /// Splits a bundle in two at its midpoint; if this broker owned it, the old bundle is
    /// unloaded so both halves get assigned afresh.
    pub async fn split(
        &self,
        broker: &Broker,
        ns_path: &str,
        range: BundleRange,
    ) -> Result<BundleOp> {
        let owner = self.owner(ns_path, range).await?;
        if let Some((o, s)) = &owner {
            if !self.is_me(o, *s) {
                return Ok(BundleOp::OwnedBy(o.clone()));
            }
        }
        let key = bundles_key(ns_path);
        self.namespace_bundles(ns_path, true).await?;
        let Some(v) = self.metadata.get(&key).await? else {
            return Err(not_ready(format!("bundles of {ns_path} vanished")));
        };
        let nb: NamespaceBundles = serde_json::from_slice(&v.value)?;
        let split = nb.split(range)?;
        let body = Bytes::from(serde_json::to_vec(&split)?);
        self.metadata
            .put(&key, body, Expect::Version(v.version), None)
            .await?;
        self.bundles.lock().insert(ns_path.to_string(), split);
        if owner.is_some() {
            self.owned.lock().remove(&(ns_path.to_string(), range));
            self.close_bundle_topics(broker, ns_path, range).await;
            self.metadata
                .delete(&ownership_key(ns_path, range), Expect::Any)
                .await?;
        }
        info!(bundle = %format!("{ns_path}/{range}"), "bundle split");
        Ok(BundleOp::Done)
    }
}

impl Cluster {
    /// `(brokerServiceUrl, webServiceUrl)` of the broker serving `name` (assigning one if
    /// the bundle is unowned), for the HTTP lookup.
    pub async fn owner_urls(&self, name: &TopicName) -> Result<(String, String)> {
        Ok(match self.lookup(name, false).await? {
            LookupAnswer::Here => (
                self.me.broker_service_url.clone(),
                self.me.web_service_url.clone(),
            ),
            LookupAnswer::Elsewhere(o) => (o.broker_service_url, o.web_service_url),
        })
    }
}
