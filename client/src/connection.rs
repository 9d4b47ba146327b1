//! One multiplexed connection to a broker: a reader task dispatches frames to pending
//! requests (by request id), producers and consumers (by their ids); a writer task drains
//! an unbounded queue of outbound frames. Dropping the last handle or losing the socket
//! fails every pending request and tells every registered producer and consumer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use magnetar_proto::pulsar::{
    base_command::Type, BaseCommand, CommandMessage, CommandSendError, CommandSendReceipt,
};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthProvider, StaticAuth};
use crate::error::{Error, Result};
use crate::wire::{commands, Outbound, Payload, PulsarCodec, FRAME_PADDING, PROTOCOL_VERSION};

/// Events a connection delivers to a producer.
#[derive(Debug)]
pub(crate) enum ProducerEvent {
    Receipt(CommandSendReceipt),
    SendError(CommandSendError),
    /// Broker CLOSE_PRODUCER or connection lost: look up again and reconnect.
    Closed,
}

/// Events a connection delivers to a consumer.
#[derive(Debug)]
pub(crate) enum ConsumerEvent {
    Message(Box<(CommandMessage, Payload)>),
    ActiveChange(bool),
    EndOfTopic,
    /// Broker CLOSE_CONSUMER or connection lost: look up again and reconnect.
    Closed,
}

type Pending = HashMap<u64, oneshot::Sender<Result<BaseCommand>>>;

struct Shared {
    addr: String,
    pending: Mutex<Pending>,
    producers: Mutex<HashMap<u64, mpsc::UnboundedSender<ProducerEvent>>>,
    consumers: Mutex<HashMap<u64, mpsc::UnboundedSender<ConsumerEvent>>>,
    closed: CancellationToken,
    last_seen: Mutex<Instant>,
    auth: Option<AuthProvider>,
}

const CLIENT_VERSION: &str = concat!("magnetar-client-", env!("CARGO_PKG_VERSION"));

/// The AUTH_RESPONSE to a challenge: `None` without a provider (the broker then closes
/// the connection, as it would for wrong credentials).
fn auth_response(
    provider: Option<&AuthProvider>,
    challenge: &magnetar_proto::pulsar::CommandAuthChallenge,
) -> Option<Result<BaseCommand>> {
    use crate::wire::commands::IntoCommand;
    let p = provider?;
    let data = challenge
        .challenge
        .as_ref()
        .and_then(|c| c.auth_data.as_deref());
    Some(p.data(data).map(|d| {
        magnetar_proto::pulsar::CommandAuthResponse {
            client_version: Some(CLIENT_VERSION.to_owned()),
            response: Some(magnetar_proto::pulsar::AuthData {
                auth_method_name: Some(p.method()),
                auth_data: Some(d),
            }),
            protocol_version: Some(PROTOCOL_VERSION),
        }
        .into_command()
    }))
}

/// A handle to a broker connection; clones share the socket.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Outbound>,
    ids: Arc<AtomicU64>,
    max_message_size: usize,
    protocol_version: i32,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.shared.addr)
            .finish()
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// TCP connect + handshake deadline.
    pub connect_timeout: Duration,
    /// Interval between PINGs; the connection is dropped after two silent intervals.
    pub keepalive: Duration,
    /// Optional auth method name and data sent in CONNECT (used when `authentication`
    /// is `None`).
    pub auth: Option<(String, Vec<u8>)>,
    /// Credentials hook, asked at every CONNECT and AUTH_CHALLENGE.
    pub authentication: Option<AuthProvider>,
}

impl ConnectionOptions {
    /// The credentials hook in effect, if any.
    fn provider(&self) -> Option<AuthProvider> {
        self.authentication.clone().or_else(|| {
            self.auth
                .as_ref()
                .map(|(m, d)| Arc::new(StaticAuth::new(m.clone(), d.clone())) as AuthProvider)
        })
    }
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(30),
            auth: None,
            authentication: None,
        }
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`), performs the CONNECT handshake and starts the
    /// reader and writer tasks. `ids` is the client-wide request-id counter.
    pub async fn connect(
        addr: &str,
        opts: &ConnectionOptions,
        ids: Arc<AtomicU64>,
    ) -> Result<Self> {
        let timeout = opts.connect_timeout;
        let provider = opts.provider();
        let fut = async {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut framed = Framed::new(stream, PulsarCodec::default());
            let auth = match &provider {
                Some(p) => Some((p.method(), p.data(None)?)),
                None => None,
            };
            framed
                .send(Outbound::from(commands::connect(
                    CLIENT_VERSION,
                    PROTOCOL_VERSION,
                    auth.as_ref().map(|(m, d)| (m.as_str(), d.clone())),
                )))
                .await?;
            loop {
                let Some(item) = framed.next().await else {
                    return Err(Error::Disconnected {
                        addr: addr.to_owned(),
                    });
                };
                let frame = item?.map_err(|c| c.error)?;
                match commands::command_type(&frame.command) {
                    Some(Type::Connected) => {
                        let c = frame.command.connected.unwrap_or_default();
                        return Ok((framed, c));
                    }
                    Some(Type::Error) => {
                        let e = frame.command.error.unwrap_or_default();
                        return Err(Error::server(e.error, e.message));
                    }
                    Some(Type::Ping) => framed.send(Outbound::from(commands::pong())).await?,
                    Some(Type::AuthChallenge) => {
                        let challenge = frame.command.auth_challenge.unwrap_or_default();
                        if let Some(r) = auth_response(provider.as_ref(), &challenge) {
                            framed.send(Outbound::from(r?)).await?;
                        }
                    }
                    _ => {
                        return Err(Error::UnexpectedResponse {
                            expected: "CONNECTED",
                            got: format!("{:?}", frame.command.r#type),
                        })
                    }
                }
            }
        };
        let (mut framed, connected) =
            tokio::time::timeout(timeout, fut)
                .await
                .map_err(|_| Error::Timeout {
                    what: "connect",
                    after: timeout,
                })??;
        let max_message_size = connected
            .max_message_size
            .and_then(|m| usize::try_from(m).ok())
            .filter(|m| *m > 0)
            .unwrap_or(crate::wire::DEFAULT_MAX_MESSAGE_SIZE);
        framed
            .codec_mut()
            .set_max_frame_size(max_message_size + FRAME_PADDING);
        let protocol_version = connected.protocol_version.unwrap_or(0);
        let shared = Arc::new(Shared {
            addr: addr.to_owned(),
            pending: Mutex::new(HashMap::new()),
            producers: Mutex::new(HashMap::new()),
            consumers: Mutex::new(HashMap::new()),
            closed: CancellationToken::new(),
            last_seen: Mutex::new(Instant::now()),
            auth: provider,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (sink, stream) = framed.split();
        tokio::spawn(write_loop(sink, rx, shared.clone()));
        tokio::spawn(read_loop(stream, shared.clone(), tx.clone()));
        tokio::spawn(keepalive_loop(shared.clone(), tx.clone(), opts.keepalive));
        tracing::debug!(addr, protocol_version, "connected to broker");
        Ok(Connection {
            shared,
            tx,
            ids,
            max_message_size,
            protocol_version,
        })
    }

    /// Broker address (`host:port`).
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Maximum message size the broker advertised.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Protocol version the broker answered with.
    pub fn protocol_version(&self) -> i32 {
        self.protocol_version
    }

    /// True once the socket is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.shared.closed.cancel();
    }

    /// A fresh request id.
    pub fn next_request_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues a frame for sending.
    pub fn send(&self, frame: impl Into<Outbound>) -> Result<()> {
        if self.is_closed() {
            return Err(self.disconnected());
        }
        self.tx.send(frame.into()).map_err(|_| self.disconnected())
    }

    /// Sends the command built by `make(request_id)` and waits for the response with that
    /// request id. A broker ERROR becomes [`Error::Server`].
    pub async fn request(
        &self,
        make: impl FnOnce(u64) -> BaseCommand,
        timeout: Duration,
    ) -> Result<BaseCommand> {
        let id = self.next_request_id();
        let (tx, rx) = oneshot::channel();
        self.shared.pending.lock().insert(id, tx);
        if let Err(e) = self.send(make(id)) {
            self.shared.pending.lock().remove(&id);
            return Err(e);
        }
        let res = tokio::time::timeout(timeout, rx).await;
        match res {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(self.disconnected()),
            Err(_) => {
                self.shared.pending.lock().remove(&id);
                Err(Error::Timeout {
                    what: "broker request",
                    after: timeout,
                })
            }
        }
    }

    pub(crate) fn register_producer(&self, id: u64, tx: mpsc::UnboundedSender<ProducerEvent>) {
        self.shared.producers.lock().insert(id, tx);
        if self.is_closed() {
            if let Some(tx) = self.shared.producers.lock().remove(&id) {
                let _ = tx.send(ProducerEvent::Closed);
            }
        }
    }

    pub(crate) fn unregister_producer(&self, id: u64) {
        self.shared.producers.lock().remove(&id);
    }

    pub(crate) fn register_consumer(&self, id: u64, tx: mpsc::UnboundedSender<ConsumerEvent>) {
        self.shared.consumers.lock().insert(id, tx);
        if self.is_closed() {
            if let Some(tx) = self.shared.consumers.lock().remove(&id) {
                let _ = tx.send(ConsumerEvent::Closed);
            }
        }
    }

    pub(crate) fn unregister_consumer(&self, id: u64) {
        self.shared.consumers.lock().remove(&id);
    }

    fn disconnected(&self) -> Error {
        Error::Disconnected {
            addr: self.shared.addr.clone(),
        }
    }
}

type Sink = futures::stream::SplitSink<Framed<TcpStream, PulsarCodec>, Outbound>;
type Stream = futures::stream::SplitStream<Framed<TcpStream, PulsarCodec>>;

async fn write_loop(
    mut sink: Sink,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    shared: Arc<Shared>,
) {
    loop {
        let frame = tokio::select! {
            _ = shared.closed.cancelled() => break,
            f = rx.recv() => match f { Some(f) => f, None => break },
        };
        if let Err(e) = sink.feed(frame).await {
            tracing::debug!(addr = %shared.addr, error = %e, "write failed");
            break;
        }
        // Coalesce whatever is already queued into one flush.
        while let Ok(f) = rx.try_recv() {
            if let Err(e) = sink.feed(f).await {
                tracing::debug!(addr = %shared.addr, error = %e, "write failed");
                shared.closed.cancel();
                return;
            }
        }
        if let Err(e) = sink.flush().await {
            tracing::debug!(addr = %shared.addr, error = %e, "flush failed");
            break;
        }
    }
    shared.closed.cancel();
    let _ = sink.close().await;
}

async fn keepalive_loop(shared: Arc<Shared>, tx: mpsc::UnboundedSender<Outbound>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shared.closed.cancelled() => return,
            _ = tick.tick() => {}
        }
        if shared.last_seen.lock().elapsed() > every * 2 {
            tracing::warn!(addr = %shared.addr, "broker silent for two keep-alive intervals, closing");
            shared.closed.cancel();
            return;
        }
        if tx.send(Outbound::from(commands::ping())).is_err() {
            return;
        }
    }
}

async fn read_loop(mut stream: Stream, shared: Arc<Shared>, tx: mpsc::UnboundedSender<Outbound>) {
    loop {
        let item = tokio::select! {
            _ = shared.closed.cancelled() => break,
            i = stream.next() => i,
        };
        let frame = match item {
            None => break,
            Some(Err(e)) => {
                tracing::warn!(addr = %shared.addr, error = %e, "bad frame from broker, closing");
                break;
            }
            Some(Ok(Err(corrupt))) => {
                // A corrupt MESSAGE payload: ask for redelivery of that message.
                tracing::warn!(addr = %shared.addr, error = %corrupt.error, "corrupt payload from broker");
                if let Some(m) = corrupt.command.message {
                    let _ = tx.send(Outbound::from(commands::redeliver_unacknowledged(
                        m.consumer_id,
                        vec![m.message_id],
                        None,
                    )));
                }
                continue;
            }
            Some(Ok(Ok(frame))) => frame,
        };
        *shared.last_seen.lock() = Instant::now();
        dispatch(&shared, &tx, frame.command, frame.payload);
    }
    shared.closed.cancel();
    // Fail everything still waiting on this connection.
    for (_, p) in shared.pending.lock().drain() {
        let _ = p.send(Err(Error::Disconnected {
            addr: shared.addr.clone(),
        }));
    }
    for (_, p) in shared.producers.lock().drain() {
        let _ = p.send(ProducerEvent::Closed);
    }
    for (_, c) in shared.consumers.lock().drain() {
        let _ = c.send(ConsumerEvent::Closed);
    }
    tracing::debug!(addr = %shared.addr, "connection closed");
}

fn dispatch(
    shared: &Shared,
    tx: &mpsc::UnboundedSender<Outbound>,
    cmd: BaseCommand,
    payload: Option<Payload>,
) {
    let respond = |id: u64, r: Result<BaseCommand>| {
        if let Some(p) = shared.pending.lock().remove(&id) {
            let _ = p.send(r);
        }
    };
    match commands::command_type(&cmd) {
        Some(Type::Ping) => {
            let _ = tx.send(Outbound::from(commands::pong()));
        }
        Some(Type::Pong) => {}
        Some(Type::AuthChallenge) => {
            let challenge = cmd.auth_challenge.unwrap_or_default();
            match auth_response(shared.auth.as_ref(), &challenge) {
                Some(Ok(r)) => {
                    let _ = tx.send(Outbound::from(r));
                }
                Some(Err(e)) => {
                    tracing::warn!(addr = %shared.addr, error = %e, "cannot refresh credentials")
                }
                None => tracing::warn!(addr = %shared.addr, "auth challenge without credentials"),
            }
        }
        Some(Type::SendReceipt) => {
            if let Some(r) = cmd.send_receipt {
                if let Some(p) = shared.producers.lock().get(&r.producer_id) {
                    let _ = p.send(ProducerEvent::Receipt(r));
                }
            }
        }
        Some(Type::SendError) => {
            if let Some(e) = cmd.send_error {
                if let Some(p) = shared.producers.lock().get(&e.producer_id) {
                    let _ = p.send(ProducerEvent::SendError(e));
                }
            }
        }
        Some(Type::CloseProducer) => {
            if let Some(c) = cmd.close_producer {
                if let Some(p) = shared.producers.lock().remove(&c.producer_id) {
                    let _ = p.send(ProducerEvent::Closed);
                }
            }
        }
        Some(Type::CloseConsumer) => {
            if let Some(c) = cmd.close_consumer {
                if let Some(p) = shared.consumers.lock().remove(&c.consumer_id) {
                    let _ = p.send(ConsumerEvent::Closed);
                }
            }
        }
        Some(Type::TopicMigrated) => {
            if let Some(m) = cmd.topic_migrated {
                if m.resource_type == 0 {
                    if let Some(p) = shared.producers.lock().remove(&m.resource_id) {
                        let _ = p.send(ProducerEvent::Closed);
                    }
                } else if let Some(c) = shared.consumers.lock().remove(&m.resource_id) {
                    let _ = c.send(ConsumerEvent::Closed);
                }
            }
        }
        Some(Type::Message) => {
            if let (Some(m), Some(p)) = (cmd.message, payload) {
                if let Some(c) = shared.consumers.lock().get(&m.consumer_id) {
                    let _ = c.send(ConsumerEvent::Message(Box::new((m, p))));
                }
            }
        }
        Some(Type::ActiveConsumerChange) => {
            if let Some(a) = cmd.active_consumer_change {
                if let Some(c) = shared.consumers.lock().get(&a.consumer_id) {
                    let _ = c.send(ConsumerEvent::ActiveChange(a.is_active.unwrap_or(false)));
                }
            }
        }
        Some(Type::ReachedEndOfTopic) => {
            if let Some(a) = cmd.reached_end_of_topic {
                if let Some(c) = shared.consumers.lock().get(&a.consumer_id) {
                    let _ = c.send(ConsumerEvent::EndOfTopic);
                }
            }
        }
        Some(Type::Error) => {
            if let Some(e) = &cmd.error {
                respond(e.request_id, Err(Error::server(e.error, e.message.clone())));
            }
        }
        Some(Type::ProducerSuccess) => {
            if let Some(s) = &cmd.producer_success {
                // Not ready yet (waiting for exclusive access): keep waiting.
                if s.producer_ready.unwrap_or(true) {
                    respond(s.request_id, Ok(cmd.clone()));
                }
            }
        }
        _ => match response_request_id(&cmd) {
            Some(id) => respond(id, Ok(cmd)),
            None => tracing::debug!(addr = %shared.addr, ty = cmd.r#type, "ignoring command"),
        },
    }
}

/// Request id of a response command, if it carries one.
fn response_request_id(cmd: &BaseCommand) -> Option<u64> {
    if let Some(c) = &cmd.success {
        return Some(c.request_id);
    }
    if let Some(c) = &cmd.lookup_topic_response {
        return Some(c.request_id);
    }
    if let Some(c) = &cmd.partition_metadata_response {
        return Some(c.request_id);
    }
    if let Some(c) = &cmd.get_last_message_id_response {
        return Some(c.request_id);
    }
    if let Some(c) = &cmd.consumer_stats_response {
        return Some(c.request_id);
    }
    if let Some(c) = &cmd.get_topics_of_namespace_response {
        return Some(c.request_id);
    }
    if let Some(c) = &cmd.get_schema_response {
        return Some(c.request_id);
    }
    if let Some(c) = &cmd.get_or_create_schema_response {
        return Some(c.request_id);
    }
    if let Some(c) = &cmd.ack_response {
        return c.request_id;
    }
    None
}
