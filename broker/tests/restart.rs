//! A graceful broker restart on the same metadata and ledgers keeps every acknowledged
//! message and each subscription's position: acked messages are not redelivered, unacked
//! ones are, with the same message ids.

mod common;

use std::time::Duration;

use common::{start_broker_on, Client};
use magnetar_bookie::mem::MemLedgers;
use magnetar_client::wire::commands;
use magnetar_client::wire::proto::{base_command::Type, command_ack::AckType};
use magnetar_metadata::MemStore;

#[tokio::test]
async fn graceful_restart_keeps_messages_and_positions() -> anyhow::Result<()> {
    let meta = MemStore::new();
    let ledgers = MemLedgers::new();
    let topic = "persistent://public/default/restart";
    let mut ids = Vec::new();
    {
        let mut b = start_broker_on(meta.clone(), ledgers.clone()).await;
        let mut c = Client::connect(b.pulsar, 20).await?;
        c.create_producer(topic, 1).await?;
        c.subscribe(topic, "s", 0, 1).await?;
        for i in 0..10 {
            c.publish(1, i, format!("m{i}").as_bytes()).await?;
            let r = c.expect(Type::SendReceipt).await?;
            ids.push(r.send_receipt.expect("r").message_id.expect("id"));
        }
        c.send(commands::flow(1, 100)).await?;
        for _ in 0..10 {
            c.expect(Type::Message).await?;
        }
        c.send(commands::ack(1, AckType::Cumulative, vec![ids[4].clone()]))
            .await?;
        c.send(commands::ack(1, AckType::Individual, vec![ids[7].clone()]))
            .await?;
        // A round trip makes sure the acks were processed before shutdown.
        let rid = c.request_id();
        c.send(commands::get_last_message_id(1, rid)).await?;
        c.expect(Type::GetLastMessageIdResponse).await?;
        b.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), &mut b.task).await??;
    }
    let b = start_broker_on(meta, ledgers).await;
    let mut c = Client::connect(b.pulsar, 20).await?;
    c.subscribe(topic, "s", 0, 1).await?;
    c.send(commands::flow(1, 100)).await?;
    for want in [5usize, 6, 8, 9] {
        let f = c.next_frame().await?;
        let m = f.command.message.expect("MESSAGE");
        assert_eq!(m.message_id.ledger_id, ids[want].ledger_id);
        assert_eq!(m.message_id.entry_id, ids[want].entry_id);
        assert_eq!(
            &f.payload.expect("payload").body[..],
            format!("m{want}").as_bytes()
        );
    }
    // New writes are accepted after the restart.
    c.create_producer(topic, 2).await?;
    c.publish(2, 0, b"after").await?;
    c.expect(Type::SendReceipt).await?;
    let f = c.next_frame().await?;
    assert_eq!(&f.payload.expect("payload").body[..], b"after");
    Ok(())
}
