//! Deleting a topic over the admin API deletes its data, not just its name: every ledger
//! of the topic is deleted on the bookies, its cursors and ledger list leave the metadata
//! service, and a topic created again under the same name starts empty. A terminated topic
//! stays terminated after a broker restart.

mod admin_common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use admin_common::{start_on, Admin};
use magnetar_bookie::mem::MemLedgers;
use magnetar_bookie::LedgerId;
use magnetar_client::PulsarClient;
use magnetar_metadata::{list_all, MemStore, MetadataStore};
use serde_json::Value;

const NS: &str = "/admin/v2/persistent/public/default";

async fn produce(a: &Admin, topic: &str, n: usize) {
    let client = PulsarClient::new(a.service_url()).expect("client");
    let producer = client
        .producer()
        .topic(format!("persistent://public/default/{topic}"))
        .create()
        .await
        .expect("producer");
    for i in 0..n {
        producer
            .send_and_wait(format!("m-{i}").into_bytes())
            .await
            .expect("send");
    }
    producer.close().await.expect("close producer");
    client.close().await;
}

fn ledger_ids(internal_stats: &Value) -> BTreeSet<u64> {
    internal_stats["ledgers"]
        .as_array()
        .expect("ledgers")
        .iter()
        .map(|l| l["ledgerId"].as_u64().expect("ledgerId"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_deletes_its_ledgers_cursors_and_metadata() {
    let metadata: Arc<dyn MetadataStore> = MemStore::new();
    let ledgers = MemLedgers::new();
    let (a, _broker) = start_on(metadata.clone(), ledgers.clone()).await;
    let topic = format!("{NS}/doomed");
    assert_eq!(a.put(&topic, "").await.status, 204);
    let r = a
        .put(&format!("{topic}/subscription/s?messageId=earliest"), "")
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    produce(&a, "doomed", 5).await;
    // A second ledger: unload every bundle (closing the topic's ledger), then write again.
    let r = a
        .call("GET", "/admin/v2/namespaces/public/default/bundles", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let bounds: Vec<&str> = r.body["boundaries"]
        .as_array()
        .expect("boundaries")
        .iter()
        .map(|b| b.as_str().expect("boundary"))
        .collect();
    for w in bounds.windows(2) {
        let r = a
            .call(
                "PUT",
                &format!(
                    "/admin/v2/namespaces/public/default/{}_{}/unload",
                    w[0], w[1]
                ),
                None,
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
    }
    produce(&a, "doomed", 2).await;

    let before = a.get(&format!("{topic}/internalStats")).await;
    assert_eq!(before.status, 200, "{}", before.body);
    let old = ledger_ids(&before.body);
    assert!(!old.is_empty(), "{}", before.body);
    for id in &old {
        assert!(
            ledgers.exists(LedgerId(*id)),
            "ledger {id} missing before delete"
        );
    }
    let ml_key = "/managed-ledgers/public/default/persistent/doomed";
    assert!(metadata.get(ml_key).await.expect("get").is_some());
    let cursors = "/cursors/public/default/persistent/doomed/";
    assert!(!list_all(metadata.as_ref(), cursors)
        .await
        .expect("list")
        .is_empty());

    let r = a.delete(&topic).await;
    assert_eq!(r.status, 204, "{}", r.body);
    for id in &old {
        assert!(
            !ledgers.exists(LedgerId(*id)),
            "ledger {id} survived the topic's deletion"
        );
    }
    assert!(metadata.get(ml_key).await.expect("get").is_none());
    assert!(list_all(metadata.as_ref(), cursors)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(a.get(&format!("{topic}/stats")).await.status, 404);
    assert_eq!(a.get(&format!("{topic}/internalStats")).await.status, 404);

    // The same name again: a new, empty topic with no subscriptions and new ledgers.
    assert_eq!(a.put(&topic, "").await.status, 204);
    let after = a.get(&format!("{topic}/internalStats")).await;
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(after.body["numberOfEntries"], 0, "{}", after.body);
    assert_eq!(
        after.body["cursors"],
        serde_json::json!({}),
        "{}",
        after.body
    );
    assert!(ledger_ids(&after.body).is_disjoint(&old), "{}", after.body);
    let last = a.get(&format!("{topic}/lastMessageId")).await;
    assert_eq!(last.body["entryId"], -1, "{}", last.body);
    assert_eq!(
        a.get(&format!("{topic}/subscriptions")).await.body,
        serde_json::json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_partitioned_topic_deletes_every_partitions_ledgers() {
    let metadata: Arc<dyn MetadataStore> = MemStore::new();
    let ledgers = MemLedgers::new();
    let (a, _broker) = start_on(metadata.clone(), ledgers.clone()).await;
    let topic = format!("{NS}/pdoomed");
    assert_eq!(a.put(&format!("{topic}/partitions"), "3").await.status, 204);
    let r = a.put(&format!("{topic}/subscription/s"), "").await;
    assert_eq!(r.status, 204, "{}", r.body);
    let mut old = BTreeSet::new();
    for i in 0..3 {
        let st = a.get(&format!("{topic}-partition-{i}/internalStats")).await;
        assert_eq!(st.status, 200, "{}", st.body);
        old.extend(ledger_ids(&st.body));
    }
    assert!(!old.is_empty());
    let r = a.delete(&format!("{topic}/partitions")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    for id in &old {
        assert!(!ledgers.exists(LedgerId(*id)), "ledger {id} survived");
    }
    assert!(list_all(
        metadata.as_ref(),
        "/managed-ledgers/public/default/persistent/pdoomed"
    )
    .await
    .expect("list")
    .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_topic_stays_terminated_after_a_broker_restart() {
    let metadata: Arc<dyn MetadataStore> = MemStore::new();
    let ledgers = MemLedgers::new();
    let (a, broker) = start_on(metadata.clone(), ledgers.clone()).await;
    produce(&a, "ended", 2).await;
    let r = a.post(&format!("{NS}/ended/terminate"), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["entryId"], 1, "{}", r.body);
    a.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), broker)
        .await
        .expect("broker stopped in time")
        .expect("broker task");

    let (b, _broker) = start_on(metadata, ledgers).await;
    let client = PulsarClient::new(b.service_url()).expect("client");
    let created = tokio::time::timeout(
        Duration::from_secs(20),
        client
            .producer()
            .topic("persistent://public/default/ended")
            .create(),
    )
    .await
    .expect("producer create answered in time");
    let Err(err) = created else {
        panic!("a terminated topic accepted a producer after restart");
    };
    assert!(
        format!("{err:?}").contains("Terminated") || format!("{err}").contains("terminated"),
        "{err:?}"
    );
    client.close().await;
    // Terminating again answers the same last message.
    let r = b.post(&format!("{NS}/ended/terminate"), "").await;
    assert_eq!(r.body["entryId"], 1, "{}", r.body);
}
