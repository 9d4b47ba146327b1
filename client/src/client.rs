//! [`PulsarClient`]: service URL, connection pool (one multiplexed connection per
//! broker), topic lookup and partition metadata, and the entry points for producers,
//! consumers and readers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use magnetar_proto::pulsar::command_lookup_topic_response::LookupType;
use tokio::sync::Mutex;

use crate::auth::Authentication;
use crate::connection::{Connection, ConnectionOptions};
use crate::consumer::ConsumerBuilder;
use crate::error::{Error, Result};
use crate::producer::ProducerBuilder;
use crate::reader::ReaderBuilder;
use crate::topic::{normalize_topic, parse_service_url};
use crate::wire::commands;

/// Most redirects a lookup follows before giving up.
const MAX_LOOKUP_REDIRECTS: usize = 20;

struct Inner {
    hosts: Vec<String>,
    next_host: AtomicUsize,
    opts: ConnectionOptions,
    operation_timeout: Duration,
    /// One slot per broker address; each slot's lock serializes connecting to that
    /// broker only.
    pool: parking_lot::Mutex<HashMap<String, Arc<Mutex<Option<Connection>>>>>,
    ids: Arc<AtomicU64>,
    next_handle_id: AtomicU64,
}

/// Entry point of the library. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct PulsarClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PulsarClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulsarClient")
            .field("hosts", &self.inner.hosts)
            .finish()
    }
}

/// Builds a [`PulsarClient`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    service_url: String,
    opts: ConnectionOptions,
    operation_timeout: Duration,
}

impl ClientBuilder {
    /// TCP connect and handshake timeout (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.opts.connect_timeout = d;
        self
    }

    /// Timeout of broker requests such as lookup or subscribe (default 30 s).
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.operation_timeout = d;
        self
    }

    /// Keep-alive interval (default 30 s).
    pub fn keepalive(mut self, d: Duration) -> Self {
        self.opts.keepalive = d;
        self
    }

    /// Sends `method` and `data` as credentials in CONNECT (e.g. `"token"`).
    pub fn auth(mut self, method: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        self.opts.auth = Some((method.into(), data.into()));
        self
    }

    /// Credentials hook, asked at every new connection and every AUTH_CHALLENGE (replaces
    /// [`ClientBuilder::auth`]).
    pub fn authentication(mut self, auth: Arc<dyn Authentication>) -> Self {
        self.opts.authentication = Some(auth);
        self
    }

    /// Validates the service URL; no connection is made until first use.
    pub fn build(self) -> Result<PulsarClient> {
        let hosts = parse_service_url(&self.service_url)?;
        Ok(PulsarClient {
            inner: Arc::new(Inner {
                hosts,
                next_host: AtomicUsize::new(0),
                opts: self.opts,
                operation_timeout: self.operation_timeout,
                pool: parking_lot::Mutex::new(HashMap::new()),
                ids: Arc::new(AtomicU64::new(0)),
                next_handle_id: AtomicU64::new(0),
            }),
        })
    }
}

impl PulsarClient {
    /// Starts building a client for `service_url`, e.g. `pulsar://h1:6650,h2:6650`.
    pub fn builder(service_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            service_url: service_url.into(),
            opts: ConnectionOptions::default(),
            operation_timeout: Duration::from_secs(30),
        }
    }

    /// A client with default settings.
    pub fn new(service_url: impl Into<String>) -> Result<Self> {
        Self::builder(service_url).build()
    }

    /// Starts building a producer.
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder::new(self.clone())
    }

    /// Starts building a consumer.
    pub fn consumer(&self) -> ConsumerBuilder {
        ConsumerBuilder::new(self.clone())
    }

    /// Starts building a reader.
    pub fn reader(&self) -> ReaderBuilder {
        ReaderBuilder::new(self.clone())
    }

    /// Timeout applied to broker requests.
    pub fn operation_timeout(&self) -> Duration {
        self.inner.operation_timeout
    }

    pub(crate) fn next_handle_id(&self) -> u64 {
        self.inner.next_handle_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The pooled connection to `addr`, connecting if there is none or it closed.
    pub async fn connection(&self, addr: &str) -> Result<Connection> {
        let slot = self
            .inner
            .pool
            .lock()
            .entry(addr.to_owned())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let c = Connection::connect(addr, &self.inner.opts, self.inner.ids.clone()).await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// A connection to one of the service URL hosts, trying each once.
    async fn service_connection(&self) -> Result<Connection> {
        let n = self.inner.hosts.len();
        let start = self.inner.next_host.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..n {
            let host = &self.inner.hosts[(start + i) % n];
            match self.connection(host).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::debug!(host, error = %e, "service host unavailable");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(Error::InvalidArgument {
            what: "service URL",
            value: String::new(),
        }))
    }

    /// Number of partitions of `topic` (0 for a non-partitioned topic).
    pub async fn partitions(&self, topic: &str) -> Result<u32> {
        let topic = normalize_topic(topic)?;
        let conn = self.service_connection().await?;
        let resp = conn
            .request(
                |id| commands::partitioned_metadata(&topic, id),
                self.inner.operation_timeout,
            )
            .await?;
        let r = resp
            .partition_metadata_response
            .ok_or_else(|| Error::UnexpectedResponse {
                expected: "PARTITIONED_METADATA_RESPONSE",
                got: format!("{:?}", resp.r#type),
            })?;
        if let Some(code) = r.error {
            return Err(Error::server(code, r.message.unwrap_or_default()));
        }
        Ok(r.partitions.unwrap_or(0))
    }

    /// Finds the broker serving `topic` (a full name) and returns a connection to it.
    pub async fn lookup(&self, topic: &str) -> Result<Connection> {
        let mut conn = self.service_connection().await?;
        let mut authoritative = false;
        for _ in 0..MAX_LOOKUP_REDIRECTS {
            let resp = conn
                .request(
                    |id| commands::lookup(topic, id, authoritative),
                    self.inner.operation_timeout,
                )
                .await?;
            let r = resp
                .lookup_topic_response
                .ok_or_else(|| Error::UnexpectedResponse {
                    expected: "LOOKUP_RESPONSE",
                    got: format!("{:?}", resp.r#type),
                })?;
            let url = r.broker_service_url.clone().unwrap_or_default();
            match LookupType::try_from(r.response.unwrap_or(2)) {
                Ok(LookupType::Connect) => {
                    if r.proxy_through_service_url.unwrap_or(false) || url.is_empty() {
                        return Ok(conn);
                    }
                    let addr = first_host(&url)?;
                    return self.connection(&addr).await;
                }
                Ok(LookupType::Redirect) => {
                    authoritative = r.authoritative.unwrap_or(false);
                    if !r.proxy_through_service_url.unwrap_or(false) {
                        conn = self.connection(&first_host(&url)?).await?;
                    }
                }
                _ => {
                    return Err(Error::server(
                        r.error.unwrap_or(0),
                        r.message.unwrap_or_else(|| "lookup failed".into()),
                    ))
                }
            }
        }
        Err(Error::server(
            6,
            format!("too many lookup redirects for {topic}"),
        ))
    }

    /// Lists the topics of `namespace` (`tenant/ns`).
    pub async fn topics_of_namespace(&self, namespace: &str) -> Result<Vec<String>> {
        let conn = self.service_connection().await?;
        let ns = namespace.to_owned();
        let resp = conn
            .request(
                move |id| {
                    use crate::wire::commands::IntoCommand;
                    magnetar_proto::pulsar::CommandGetTopicsOfNamespace {
                        request_id: id,
                        namespace: ns,
                        mode: Some(2),
                        ..Default::default()
                    }
                    .into_command()
                },
                self.inner.operation_timeout,
            )
            .await?;
        Ok(resp
            .get_topics_of_namespace_response
            .map(|r| r.topics)
            .unwrap_or_default())
    }

    /// Closes every pooled connection. Producers and consumers should be closed first.
    pub async fn close(&self) {
        let slots: Vec<_> = self.inner.pool.lock().drain().map(|(_, s)| s).collect();
        for s in slots {
            if let Some(c) = s.lock().await.take() {
                c.close();
            }
        }
    }
}

fn first_host(url: &str) -> Result<String> {
    parse_service_url(url)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::InvalidArgument {
            what: "broker URL",
            value: url.to_owned(),
        })
}

/// Exponential backoff with jitter for reconnect loops.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff {
            next: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }

    /// The delay to wait now; doubles the following one.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::random::<u64>() % (d.as_millis() as u64 / 10 + 1);
        d + Duration::from_millis(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_max() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(100));
        for _ in 0..20 {
            b.next_delay();
        }
        assert!(b.next_delay() <= Duration::from_secs(33));
    }
}
