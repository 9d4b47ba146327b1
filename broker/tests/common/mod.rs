//! A tiny Pulsar protocol client over the wire codec, and a broker harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use magnetar_bookie::mem::MemLedgers;
use magnetar_broker::config::BrokerConfig;
use magnetar_client::wire::commands::{self, IntoCommand};
use magnetar_client::wire::proto::{
    base_command::Type, BaseCommand, CommandSubscribe, MessageMetadata,
};
use magnetar_client::wire::{Frame, Outbound, PulsarCodec};
use magnetar_metadata::MemStore;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// A broker running in this process.
pub struct TestBroker {
    pub pulsar: SocketAddr,
    pub http: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a broker with managed ledgers over in-memory ledgers and metadata.
pub async fn start_broker() -> TestBroker {
    start_broker_on(MemStore::new(), MemLedgers::new()).await
}

/// Starts a broker over the given stores (restart tests share them between brokers).
pub async fn start_broker_on(
    metadata: std::sync::Arc<MemStore>,
    ledgers: std::sync::Arc<MemLedgers>,
) -> TestBroker {
    let config = BrokerConfig {
        handshake_timeout_secs: 2,
        ..BrokerConfig::default()
    };
    start_broker_with(config, metadata, ledgers).await
}

/// Starts a broker with `config` over the given stores.
pub async fn start_broker_with(
    config: BrokerConfig,
    metadata: std::sync::Arc<MemStore>,
    ledgers: std::sync::Arc<MemLedgers>,
) -> TestBroker {
    let pl = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hl = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let pulsar = pl.local_addr().expect("addr");
    let http = hl.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let sd = shutdown.clone();
    let task = tokio::spawn(async move {
        let res = magnetar_broker::service::run(config, pl, hl, metadata, ledgers, sd).await;
        if let Err(e) = res {
            panic!("broker failed: {e}");
        }
    });
    TestBroker {
        pulsar,
        http,
        shutdown,
        task,
    }
}

/// A raw protocol connection.
pub struct Client {
    pub framed: Framed<TcpStream, PulsarCodec>,
    next_request: u64,
}

const WAIT: Duration = Duration::from_secs(10);

impl Client {
    pub async fn connect(addr: SocketAddr, version: i32) -> Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        let mut framed = Framed::new(stream, PulsarCodec::default());
        framed
            .send(commands::connect("test", version, None))
            .await?;
        let mut c = Client {
            framed,
            next_request: 1,
        };
        let f = c.next_frame().await?;
        if commands::command_type(&f.command) != Some(Type::Connected) {
            bail!("expected CONNECTED, got {:?}", f.command);
        }
        Ok(c)
    }

    pub fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    pub async fn send(&mut self, cmd: BaseCommand) -> Result<()> {
        self.framed.send(cmd).await?;
        Ok(())
    }

    pub async fn send_frame(&mut self, f: Outbound) -> Result<()> {
        self.framed.send(f).await?;
        Ok(())
    }

    /// Next frame, skipping PINGs (answered).
    pub async fn next_frame(&mut self) -> Result<Frame> {
        loop {
            let f = tokio::time::timeout(WAIT, self.framed.next())
                .await
                .context("timed out waiting for a frame")?
                .context("connection closed")??
                .map_err(|c| anyhow::anyhow!("corrupt frame: {}", c.error))?;
            if commands::command_type(&f.command) == Some(Type::Ping) {
                self.framed.send(commands::pong()).await?;
                continue;
            }
            return Ok(f);
        }
    }

    /// Next frame of type `ty`, failing on anything else.
    pub async fn expect(&mut self, ty: Type) -> Result<BaseCommand> {
        let f = self.next_frame().await?;
        let got = commands::command_type(&f.command);
        if got != Some(ty) {
            bail!("expected {ty:?}, got {:?}: {:?}", got, f.command);
        }
        Ok(f.command)
    }

    pub async fn create_producer(&mut self, topic: &str, producer_id: u64) -> Result<String> {
        let rid = self.request_id();
        self.send(commands::producer(topic, producer_id, rid, None, 0))
            .await?;
        let r = self.expect(Type::ProducerSuccess).await?;
        Ok(r.producer_success.context("body")?.producer_name)
    }

    pub async fn publish(&mut self, producer_id: u64, seq: u64, body: &[u8]) -> Result<()> {
        let md = MessageMetadata {
            producer_name: "p".into(),
            sequence_id: seq,
            publish_time: 1_700_000_000_000 + seq,
            ..Default::default()
        };
        self.send_frame(Outbound::with_payload(
            commands::send(producer_id, seq, 1),
            &md,
            body,
        ))
        .await
    }

    pub async fn subscribe(
        &mut self,
        topic: &str,
        sub: &str,
        sub_type: i32,
        consumer_id: u64,
    ) -> Result<BaseCommand> {
        self.subscribe_named(topic, sub, sub_type, consumer_id, "")
            .await
    }

    pub async fn subscribe_named(
        &mut self,
        topic: &str,
        sub: &str,
        sub_type: i32,
        consumer_id: u64,
        consumer_name: &str,
    ) -> Result<BaseCommand> {
        let rid = self.request_id();
        self.send(
            CommandSubscribe {
                topic: topic.into(),
                subscription: sub.into(),
                sub_type,
                consumer_id,
                request_id: rid,
                initial_position: Some(1),
                consumer_name: Some(consumer_name.to_string()).filter(|n| !n.is_empty()),
                ..Default::default()
            }
            .into_command(),
        )
        .await?;
        let f = self.next_frame().await?;
        Ok(f.command)
    }
}
