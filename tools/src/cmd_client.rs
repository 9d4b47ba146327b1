//! `magnetar-client`: produce and consume messages from the command line.
//!
//! ```text
//! magnetar-client produce my-topic -m hello -n 10 -k key
//! magnetar-client consume my-topic -s my-sub -n 10 -t shared -p earliest
//! ```

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use magnetar_client::{InitialPosition, ProducerMessage, PulsarClient, SubType};
use tokio_util::sync::CancellationToken;

/// Arguments of `magnetar-client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Broker service URL (several hosts separated by commas).
    #[arg(
        long,
        alias = "service-url",
        global = true,
        env = "MAGNETAR_SERVICE_URL",
        default_value = "pulsar://127.0.0.1:6650"
    )]
    pub url: String,
    /// What to do.
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// `magnetar-client` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Publish messages.
    Produce(ProduceArgs),
    /// Receive (and acknowledge) messages.
    Consume(ConsumeArgs),
}

/// Arguments of `produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic name.
    pub topic: String,
    /// Message payload; repeat to send several different messages.
    #[arg(short = 'm', long = "message", required = true)]
    pub messages: Vec<String>,
    /// Times to send each message.
    #[arg(short = 'n', long = "num-produce", default_value_t = 1)]
    pub num: u64,
    /// Partition key.
    #[arg(short = 'k', long)]
    pub key: Option<String>,
    /// Properties as key=value.
    #[arg(short = 'p', long = "property")]
    pub properties: Vec<String>,
}

/// Subscription type on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SubTypeArg {
    /// One consumer.
    Exclusive,
    /// Round-robin over consumers.
    Shared,
    /// One active consumer, others on standby.
    Failover,
    /// Messages of one key go to one consumer.
    #[value(alias = "key_shared")]
    KeyShared,
}

impl From<SubTypeArg> for SubType {
    fn from(s: SubTypeArg) -> Self {
        match s {
            SubTypeArg::Exclusive => SubType::Exclusive,
            SubTypeArg::Shared => SubType::Shared,
            SubTypeArg::Failover => SubType::Failover,
            SubTypeArg::KeyShared => SubType::KeyShared,
        }
    }
}

/// Initial position on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PositionArg {
    /// Only messages published after subscribing.
    Latest,
    /// From the oldest retained message.
    Earliest,
}

/// Arguments of `consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic name.
    pub topic: String,
    /// Subscription name.
    #[arg(short = 's', long = "subscription-name")]
    pub subscription: String,
    /// Messages to receive; 0 means until interrupted.
    #[arg(short = 'n', long = "num-messages", default_value_t = 1)]
    pub num: u64,
    /// Subscription type.
    #[arg(
        short = 't',
        long = "subscription-type",
        value_enum,
        ignore_case = true,
        default_value = "exclusive"
    )]
    pub sub_type: SubTypeArg,
    /// Initial position of a new subscription.
    #[arg(
        short = 'p',
        long = "subscription-position",
        value_enum,
        ignore_case = true,
        default_value = "latest"
    )]
    pub position: PositionArg,
    /// Print properties and ids too.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// Runs `magnetar-client`; stops early when `shutdown` fires.
pub async fn run(args: ClientArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = PulsarClient::new(&args.url).context("invalid service URL")?;
    let r = match args.command {
        ClientCommand::Produce(p) => produce(&client, p, shutdown).await,
        ClientCommand::Consume(c) => consume(&client, c, shutdown).await,
    };
    client.close().await;
    r
}

async fn produce(
    client: &PulsarClient,
    args: ProduceArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let producer = client
        .producer()
        .topic(&args.topic)
        .create()
        .await
        .with_context(|| format!("cannot create a producer on {}", args.topic))?;
    let mut props = Vec::new();
    for p in &args.properties {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("property {p:?} is not key=value"))?;
        props.push((k.to_owned(), v.to_owned()));
    }
    let mut pending = Vec::new();
    'outer: for _ in 0..args.num {
        for m in &args.messages {
            if shutdown.is_cancelled() {
                break 'outer;
            }
            let mut msg = ProducerMessage::new(m.clone().into_bytes());
            msg.key = args.key.clone();
            for (k, v) in &props {
                msg.properties.insert(k.clone(), v.clone());
            }
            pending.push(producer.send(msg).await?);
        }
    }
    let mut ok = 0u64;
    for f in pending {
        f.await.context("send failed")?;
        ok += 1;
    }
    producer.close().await?;
    println!("{ok} messages successfully produced");
    Ok(())
}

async fn consume(
    client: &PulsarClient,
    args: ConsumeArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let consumer = client
        .consumer()
        .topic(&args.topic)
        .subscription(&args.subscription)
        .sub_type(args.sub_type.into())
        .initial_position(match args.position {
            PositionArg::Latest => InitialPosition::Latest,
            PositionArg::Earliest => InitialPosition::Earliest,
        })
        .subscribe()
        .await
        .with_context(|| format!("cannot subscribe to {}", args.topic))?;
    let mut n = 0u64;
    while args.num == 0 || n < args.num {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.receive_timeout(Duration::from_secs(1)) => match m? {
                Some(m) => m,
                None => continue,
            },
        };
        if args.verbose {
            // As pulsar-client prints it: `key:[k], properties:[a=1, b=2], content:...`.
            let mut props: Vec<String> = msg
                .properties
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            props.sort();
            println!(
                "----- got message -----\nid: {}\nkey:[{}], properties:[{}], content:{}",
                msg.id,
                msg.key.as_deref().unwrap_or("null"),
                props.join(", "),
                String::from_utf8_lossy(&msg.payload)
            );
        } else {
            println!("{}", String::from_utf8_lossy(&msg.payload));
        }
        consumer.ack(&msg)?;
        n += 1;
    }
    consumer.close().await?;
    eprintln!("{n} messages successfully consumed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ClientArgs,
    }

    #[test]
    fn pulsar_client_spellings_are_accepted() {
        let c = Cli::parse_from([
            "magnetar-client",
            "--service-url",
            "pulsar://h:1",
            "consume",
            "t",
            "-s",
            "sub",
            "-t",
            "Key_Shared",
            "-p",
            "Earliest",
        ]);
        assert_eq!(c.args.url, "pulsar://h:1");
        let ClientCommand::Consume(a) = c.args.command else {
            panic!("expected consume")
        };
        assert!(matches!(a.sub_type, SubTypeArg::KeyShared));
        assert!(matches!(a.position, PositionArg::Earliest));
    }

    #[test]
    fn produce_and_consume_flags_parse() {
        let c = Cli::parse_from([
            "magnetar-client",
            "produce",
            "t",
            "-m",
            "hi",
            "-n",
            "3",
            "-k",
            "k",
        ]);
        match c.args.command {
            ClientCommand::Produce(p) => {
                assert_eq!(
                    (p.topic.as_str(), p.num, p.key.as_deref()),
                    ("t", 3, Some("k"))
                );
                assert_eq!(p.messages, vec!["hi"]);
            }
            ClientCommand::Consume(_) => panic!("expected produce"),
        }
        let c = Cli::parse_from([
            "magnetar-client",
            "--url",
            "pulsar://h:1",
            "consume",
            "t",
            "-s",
            "sub",
            "-t",
            "key-shared",
            "-p",
            "Earliest",
            "-n",
            "0",
        ]);
        assert_eq!(c.args.url, "pulsar://h:1");
        match c.args.command {
            ClientCommand::Consume(a) => {
                assert!(matches!(a.sub_type, SubTypeArg::KeyShared));
                assert!(matches!(a.position, PositionArg::Earliest));
                assert_eq!(a.num, 0);
            }
            ClientCommand::Produce(_) => panic!("expected consume"),
        }
    }
}
