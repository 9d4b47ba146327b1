//! One client connection: the handshake, then a loop that decodes commands, hands them to
//! the per-group handlers ([`lookup`], [`producer`], [`consumer`]) and writes replies,
//! receipts and messages. A bad frame costs at most this connection.

mod consumer;
mod hold;
mod lookup;
mod producer;
mod schema;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{SinkExt, StreamExt};
use magnetar_client::wire::proto::{base_command::Type, BaseCommand, ServerError};
use magnetar_client::wire::{
    commands, Frame, Outbound, PulsarCodec, FRAME_PADDING, PROTOCOL_VERSION,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::subscription::{ConnEvent, SubscriptionHandle};
use crate::topic::Topic;

/// SENDs awaiting their receipt beyond which the connection stops reading (backpressure).
const MAX_PENDING_SENDS: usize = 10_000;

/// Room left in a ledger entry for message metadata when a payload has the advertised
/// maximum size (chunking clients cut chunks of exactly that many payload bytes).
const ENTRY_HEADROOM: usize = 16 * 1024;

/// The max message size told to clients: the configured one, lowered if the storage
/// could not hold such a message with its metadata as one entry.
pub fn advertised_max_message_size(broker: &Broker) -> usize {
    let storable = magnetar_bookie::wire::MAX_ENTRY_BYTES.saturating_sub(ENTRY_HEADROOM);
    broker.config.max_message_size.min(storable)
}

/// Server version reported in CONNECTED.
pub const SERVER_VERSION: &str = concat!("Magnetar ", env!("CARGO_PKG_VERSION"));

pub(crate) struct ProducerState {
    topic: Arc<Topic>,
    name: String,
    key: u64,
    /// The schema version announced in PRODUCER_SUCCESS (repeated for a retried PRODUCER).
    schema_version: Option<Vec<u8>>,
}

pub(crate) struct ConsumerState {
    topic: Arc<Topic>,
    sub: Arc<SubscriptionHandle>,
    key: u64,
}

/// State of one connection after CONNECT.
pub(crate) struct Conn {
    broker: Arc<Broker>,
    peer: SocketAddr,
    version: i32,
    out_tx: mpsc::UnboundedSender<ConnEvent>,
    out_rx: mpsc::UnboundedReceiver<ConnEvent>,
    outq: Vec<Outbound>,
    receipts: FuturesOrdered<BoxFuture<'static, Outbound>>,
    producers: HashMap<u64, ProducerState>,
    consumers: HashMap<u64, ConsumerState>,
    holds: hold::ProducerHolds,
}

fn wire_error(e: &BrokerError) -> ServerError {
    ServerError::try_from(e.server_error() as i32).unwrap_or(ServerError::UnknownError)
}

/// Serves one TCP connection until it closes or the broker shuts down.
pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let max_frame = broker.config.max_message_size + FRAME_PADDING;
    let mut framed = Framed::new(stream, PulsarCodec::new(max_frame));
    let Some(version) = handshake(&broker, &mut framed, peer).await else {
        return;
    };
    metrics::gauge!("magnetar_broker_connections_count").increment(1.0);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let mut conn = Conn {
        broker,
        peer,
        version,
        out_tx,
        out_rx,
        outq: Vec::new(),
        receipts: FuturesOrdered::new(),
        producers: HashMap::new(),
        consumers: HashMap::new(),
        holds: hold::ProducerHolds::default(),
    };
    conn.run(&mut framed).await;
    conn.cleanup();
    metrics::gauge!("magnetar_broker_connections_count").decrement(1.0);
    debug!(%peer, "connection closed");
}

async fn handshake(
    broker: &Broker,
    framed: &mut Framed<TcpStream, PulsarCodec>,
    peer: SocketAddr,
) -> Option<i32> {
    let first = tokio::select! {
        r = tokio::time::timeout(broker.config.handshake_timeout(), framed.next()) => r,
        _ = broker.shutdown.cancelled() => return None,
    };
    let frame = match first {
        Ok(Some(Ok(Ok(f)))) => f,
        Ok(Some(Ok(Err(_)))) | Ok(Some(Err(_))) => {
            debug!(%peer, "bad first frame");
            return None;
        }
        Ok(None) => return None,
        Err(_) => {
            debug!(%peer, "handshake timeout");
            return None;
        }
    };
    let Some(connect) = frame
        .command
        .connect
        .as_ref()
        .filter(|_| commands::command_type(&frame.command) == Some(Type::Connect))
    else {
        let _ = framed
            .send(commands::error(
                0,
                ServerError::NotAllowedError,
                "expected CONNECT",
            ))
            .await;
        return None;
    };
    let version = connect
        .protocol_version
        .unwrap_or(0)
        .clamp(0, PROTOCOL_VERSION);
    debug!(%peer, client = %connect.client_version, version, "CONNECT");
    let max = i32::try_from(advertised_max_message_size(broker)).unwrap_or(i32::MAX);
    let reply = commands::connected(SERVER_VERSION, version, max, None);
    framed.send(reply).await.ok()?;
    Some(version)
}

impl Conn {
    async fn run(&mut self, framed: &mut Framed<TcpStream, PulsarCodec>) {
        let ka = self.broker.config.keep_alive();
        let mut ticker = tokio::time::interval(ka);
        ticker.tick().await;
        let mut last_inbound = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        let shutdown = self.broker.shutdown.clone();
        loop {
            tokio::select! {
                frame = framed.next(), if self.receipts.len() < MAX_PENDING_SENDS => {
                    last_inbound = Instant::now();
                    match frame {
                        Some(Ok(Ok(frame))) => {
                            if !self.on_frame(frame).await {
                                let _ = self.flush(framed).await;
                                return;
                            }
                        }
                        Some(Ok(Err(corrupt))) => self.on_corrupt(corrupt.command, corrupt.error.to_string()),
                        Some(Err(e)) => {
                            info!(peer = %self.peer, error = %e, "closing connection after bad frame");
                            return;
                        }
                        None => return,
                    }
                }
                ev = self.out_rx.recv() => {
                    if let Some(ev) = ev {
                        self.on_event(ev);
                    }
                }
                Some(receipt) = self.receipts.next(), if !self.receipts.is_empty() => {
                    self.outq.push(receipt);
                }
                Some((p, res)) = self.holds.next(), if !self.holds.is_empty() => {
                    self.on_hold_done(p, res);
                }
                _ = ticker.tick() => {
                    // PING after `ka` of silence; close if the PING stays unanswered
                    // (no frame at all) for another `ka`.
                    let idle = last_inbound.elapsed();
                    match ping_sent {
                        Some(at) if at > last_inbound && at.elapsed() >= ka => {
                            info!(peer = %self.peer, "client did not answer ping; closing");
                            return;
                        }
                        Some(at) if at > last_inbound => {}
                        _ if idle >= ka => {
                            self.outq.push(commands::ping().into());
                            ping_sent = Some(Instant::now());
                        }
                        _ => {}
                    }
                }
                _ = shutdown.cancelled() => {
                    let _ = self.flush(framed).await;
                    return;
                }
            }
            // Batch whatever else is ready before flushing the socket.
            for _ in 0..256 {
                match self.out_rx.try_recv() {
                    Ok(ev) => self.on_event(ev),
                    Err(_) => break,
                }
            }
            if self.flush(framed).await.is_err() {
                return;
            }
        }
    }

    async fn flush(&mut self, framed: &mut Framed<TcpStream, PulsarCodec>) -> Result<(), ()> {
        if self.outq.is_empty() {
            return Ok(());
        }
        for f in self.outq.drain(..) {
            if let Err(e) = framed.feed(f).await {
                debug!(peer = %self.peer, error = %e, "write failed");
                return Err(());
            }
        }
        SinkExt::<Outbound>::flush(framed).await.map_err(|_| ())
    }

    fn on_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Frame(f) => self.outq.push(*f),
            ConnEvent::ConsumerClosed(id) => {
                if let Some(c) = self.consumers.remove(&id) {
                    // A reader's subscription stays: the broker closed the consumer (a
                    // seek) and the client resubscribes, without a start id after a seek
                    // by time, expecting the position the seek set (as in Pulsar).
                    c.sub.remove_consumer(c.key);
                    self.outq.push(
                        commands::close_consumer(id, commands::BROKER_INITIATED_REQUEST_ID).into(),
                    );
                }
            }
            ConnEvent::ProducerClosed(id) => {
                if self.producers.remove(&id).is_some() {
                    self.outq.push(
                        commands::close_producer(id, commands::BROKER_INITIATED_REQUEST_ID).into(),
                    );
                }
            }
        }
    }

    /// Processes events queued so far (used to order broker-initiated closes before a reply).
    fn drain_events(&mut self) {
        while let Ok(ev) = self.out_rx.try_recv() {
            self.on_event(ev);
        }
    }

    fn reply(&mut self, cmd: BaseCommand) {
        self.outq.push(cmd.into());
    }

    fn on_corrupt(&mut self, cmd: BaseCommand, reason: String) {
        debug!(peer = %self.peer, %reason, "corrupt payload");
        if let Some(send) = cmd.send.as_ref() {
            let code = if reason.to_lowercase().contains("checksum") {
                ServerError::ChecksumError
            } else {
                ServerError::UnknownError
            };
            self.reply(commands::send_error(
                send.producer_id,
                send.sequence_id,
                code,
                reason,
            ));
        } else {
            self.reply(commands::error(0, ServerError::UnknownError, reason));
        }
    }

    /// Handles one frame; false closes the connection.
    async fn on_frame(&mut self, frame: Frame) -> bool {
        let Frame { command, payload } = frame;
        let ty = commands::command_type(&command);
        debug!(peer = %self.peer, ?ty, "command");
        match ty {
            Some(Type::Ping) => self.reply(commands::pong()),
            Some(Type::Pong) => {}
            Some(Type::Connect) => {
                self.reply(commands::error(
                    0,
                    ServerError::NotAllowedError,
                    "already connected",
                ));
            }
            Some(Type::PartitionedMetadata) => self.partitioned_metadata(command).await,
            Some(Type::Lookup) => self.lookup(command).await,
            Some(Type::GetTopicsOfNamespace) => self.topics_of_namespace(command).await,
            Some(Type::GetSchema) => self.get_schema(command).await,
            Some(Type::GetOrCreateSchema) => self.get_or_create_schema(command).await,
            Some(Type::Producer) => self.producer(command).await,
            Some(Type::Send) => self.send(command, payload),
            Some(Type::CloseProducer) => self.close_producer(command),
            Some(Type::Subscribe) => self.subscribe(command).await,
            Some(Type::Flow) => self.flow(command),
            Some(Type::Ack) => self.ack(command),
            Some(Type::RedeliverUnacknowledgedMessages) => self.redeliver(command),
            Some(Type::Seek) => self.seek(command).await,
            Some(Type::GetLastMessageId) => self.last_message_id(command).await,
            Some(Type::Unsubscribe) => self.unsubscribe(command).await,
            Some(Type::CloseConsumer) => self.close_consumer(command).await,
            Some(Type::ConsumerStats) => self.consumer_stats(command).await,
            other => {
                warn!(peer = %self.peer, ?other, "unsupported command");
                self.reply(commands::error(
                    0,
                    ServerError::NotAllowedError,
                    format!("command {other:?} is not supported"),
                ));
            }
        }
        true
    }

    fn cleanup(&mut self) {
        for (_, p) in self.producers.drain() {
            p.topic.remove_producer(p.key);
        }
        for (_, c) in self.consumers.drain() {
            c.sub.remove_consumer(c.key);
            c.topic.drop_if_reader(&c.sub.name);
        }
    }
}
