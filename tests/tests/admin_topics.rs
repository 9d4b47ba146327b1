//! Topic and subscription administration against a live broker: topics are created
//! (partitioned or not), grown, listed, inspected (stats, internalStats, partitioned-stats),
//! terminated and deleted; subscriptions are created at a position, skipped, cleared,
//! reset, expired, peeked and deleted, and the backlog the broker reports follows each
//! step. Junk input is 400/404/409/412, never 5xx.

mod admin_common;

use std::time::Duration;

use admin_common::{start, Admin};
use magnetar_client::PulsarClient;
use serde_json::{json, Value};

const NS: &str = "/admin/v2/persistent/public/default";

async fn produce(a: &Admin, topic: &str, n: usize) -> Vec<magnetar_client::MessageId> {
    let client = PulsarClient::new(a.service_url()).expect("client");
    let producer = client
        .producer()
        .topic(format!("persistent://public/default/{topic}"))
        .create()
        .await
        .expect("producer");
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            producer
                .send_and_wait(format!("m-{i}").into_bytes())
                .await
                .expect("send"),
        );
    }
    producer.close().await.expect("close producer");
    client.close().await;
    ids
}

fn backlog_is(n: u64) -> impl Fn(&Value) -> bool {
    move |st: &Value| st["subscriptions"]["s"]["msgBacklog"] == n
}

#[tokio::test]
async fn topics_are_created_grown_listed_and_deleted() {
    let a = start().await;
    assert_eq!(a.put(&format!("{NS}/plain"), "").await.status, 204);
    assert_eq!(a.put(&format!("{NS}/plain"), "").await.status, 409);
    let list = a.get(NS).await.body;
    assert!(
        list.as_array()
            .expect("list")
            .iter()
            .any(|t| t == "persistent://public/default/plain"),
        "{list}"
    );

    assert_eq!(
        a.put(&format!("{NS}/parts/partitions"), "3").await.status,
        204
    );
    assert_eq!(
        a.put(&format!("{NS}/parts/partitions"), "3").await.status,
        409
    );
    assert_eq!(a.put(&format!("{NS}/parts"), "").await.status, 409);
    let parted = a.get(&format!("{NS}/partitioned")).await.body;
    assert!(parted
        .as_array()
        .expect("list")
        .iter()
        .any(|t| t == "persistent://public/default/parts"));
    assert_eq!(
        a.post(&format!("{NS}/parts/partitions"), "5").await.status,
        204
    );
    assert_eq!(
        a.get(&format!("{NS}/parts/partitions")).await.body["partitions"],
        5
    );
    assert_eq!(
        a.post(&format!("{NS}/parts/partitions"), "2").await.status,
        409
    );
    assert_eq!(
        a.post(&format!("{NS}/parts/partitions"), "x").await.status,
        400
    );
    assert_eq!(
        a.post(&format!("{NS}/ghost/partitions"), "4").await.status,
        404
    );

    assert_eq!(
        a.delete(&format!("{NS}/parts/partitions")).await.status,
        204
    );
    assert_eq!(
        a.get(&format!("{NS}/parts/partitions")).await.body["partitions"],
        0
    );
    assert_eq!(a.delete(&format!("{NS}/plain")).await.status, 204);
    assert_eq!(a.delete(&format!("{NS}/plain")).await.status, 404);
    assert_eq!(
        a.get(&format!("{NS}/plain/internalStats")).await.status,
        404
    );
    assert_eq!(
        a.put("/admin/v2/persistent/public/nons/t", "").await.status,
        404
    );
    assert_eq!(
        a.put("/admin/v2/persistent/bad%20x/default/t", "")
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn stats_and_internal_stats_reflect_produced_messages() {
    let a = start().await;
    produce(&a, "st", 5).await;
    let st = a
        .wait_json(&format!("{NS}/st/stats"), |s| s["msgInCounter"] == 5)
        .await;
    assert!(st["bytesInCounter"].as_u64().unwrap_or(0) > 0);
    for k in [
        "msgRateIn",
        "msgThroughputIn",
        "msgRateOut",
        "msgThroughputOut",
        "storageSize",
        "backlogSize",
        "publishers",
        "subscriptions",
    ] {
        assert!(st.get(k).is_some(), "stats lack {k}: {st}");
    }
    let internal = a.get(&format!("{NS}/st/internalStats")).await;
    assert_eq!(internal.status, 200);
    let ledgers = internal.body["ledgers"].as_array().expect("ledgers");
    assert!(!ledgers.is_empty(), "{}", internal.body);
    let entries: u64 = ledgers.iter().filter_map(|l| l["entries"].as_u64()).sum();
    assert_eq!(entries, 5, "{}", internal.body);
    assert!(ledgers[0]["ledgerId"].is_u64());

    assert_eq!(
        a.put(&format!("{NS}/pst/partitions"), "2").await.status,
        204
    );
    produce(&a, "pst", 6).await;
    let ps = a
        .wait_json(&format!("{NS}/pst/partitioned-stats"), |s| {
            s["msgInCounter"] == 6
        })
        .await;
    assert_eq!(ps["metadata"]["partitions"], 2);
    let r = a
        .put(&format!("{NS}/pst/subscription/all?messageId=earliest"), "")
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        a.get(&format!("{NS}/pst/subscriptions")).await.body,
        json!(["all"])
    );
    let ps = a
        .wait_json(&format!("{NS}/pst/partitioned-stats"), |s| {
            s["subscriptions"]["all"]["msgBacklog"] == 6
        })
        .await;
    assert_eq!(ps["msgInCounter"], 6);
    assert_eq!(
        ps["partitions"].as_object().map(|m| m.len()),
        Some(2),
        "{ps}"
    );
    assert_eq!(
        a.get(&format!("{NS}/st/partitioned-stats")).await.status,
        404
    );
}

#[tokio::test]
async fn subscription_cursor_operations_move_the_backlog() {
    let a = start().await;
    let ids = produce(&a, "cur", 5).await;
    let sub = format!("{NS}/cur/subscription/s");
    assert_eq!(
        a.put(&format!("{sub}?messageId=earliest"), "").await.status,
        204
    );
    assert_eq!(
        a.put(&format!("{sub}?messageId=earliest"), "").await.status,
        409
    );
    assert_eq!(
        a.get(&format!("{NS}/cur/subscriptions")).await.body,
        json!(["s"])
    );
    let stats = format!("{NS}/cur/stats");
    a.wait_json(&stats, backlog_is(5)).await;

    let peek = a
        .http
        .get(format!("{}{sub}/position/1", a.base))
        .send()
        .await
        .expect("peek");
    assert_eq!(peek.status(), 200);
    assert!(peek.headers().contains_key("x-pulsar-message-id"));
    assert!(peek.headers().contains_key("x-pulsar-publish-time"));
    assert_eq!(&peek.bytes().await.expect("body")[..], b"m-0");

    assert_eq!(a.post(&format!("{sub}/skip/2"), "").await.status, 204);
    a.wait_json(&stats, backlog_is(3)).await;
    let peek = a
        .http
        .get(format!("{}{sub}/position/1", a.base))
        .send()
        .await
        .expect("peek");
    assert_eq!(&peek.bytes().await.expect("body")[..], b"m-2");

    assert_eq!(a.post(&format!("{sub}/skip_all"), "").await.status, 204);
    a.wait_json(&stats, backlog_is(0)).await;
    assert_eq!(a.get(&format!("{sub}/position/1")).await.status, 404);

    let last = a.get(&format!("{NS}/cur/lastMessageId")).await.body;
    assert_eq!(last["ledgerId"], ids[4].ledger_id, "{last}");
    assert_eq!(last["entryId"], ids[4].entry_id, "{last}");
    let by_id = a
        .http
        .get(format!(
            "{}{NS}/cur/ledger/{}/entry/{}",
            a.base, ids[3].ledger_id, ids[3].entry_id
        ))
        .send()
        .await
        .expect("get by id");
    assert_eq!(by_id.status(), 200);
    assert_eq!(&by_id.bytes().await.expect("body")[..], b"m-3");
    let missing = format!("{NS}/cur/ledger/{}/entry/999", ids[0].ledger_id);
    assert_eq!(a.get(&missing).await.status, 404);
    assert_eq!(
        a.get(&format!("{NS}/cur/ledger/x/entry/1")).await.status,
        400
    );
    let first = json!({"ledgerId": ids[0].ledger_id, "entryId": ids[0].entry_id});
    assert_eq!(
        a.post(&format!("{sub}/resetcursor"), &first.to_string())
            .await
            .status,
        204
    );
    a.wait_json(&stats, backlog_is(5)).await;
    assert_eq!(a.post(&format!("{sub}/skip_all"), "").await.status, 204);
    a.wait_json(&stats, backlog_is(0)).await;
    assert_eq!(
        a.post(&format!("{sub}/resetcursor/0"), "").await.status,
        204
    );
    a.wait_json(&stats, backlog_is(5)).await;

    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        a.post(&format!("{sub}/expireMessages/3600"), "")
            .await
            .status,
        204
    );
    a.wait_json(&stats, backlog_is(5)).await;
    assert_eq!(
        a.post(&format!("{NS}/cur/all_subscription/expireMessages/0"), "")
            .await
            .status,
        204
    );
    a.wait_json(&stats, backlog_is(0)).await;

    let internal = a.get(&format!("{NS}/cur/internalStats")).await.body;
    assert!(
        internal["cursors"]["s"]["markDeletePosition"].is_string(),
        "{internal}"
    );

    assert_eq!(a.delete(&sub).await.status, 204);
    assert_eq!(a.delete(&sub).await.status, 404);
    assert_eq!(
        a.get(&format!("{NS}/cur/subscriptions")).await.body,
        json!([])
    );

    for bad in [
        "skip/abc",
        "resetcursor/-4",
        "expireMessages/x",
        "position/0",
    ] {
        let method = if bad.starts_with("position") {
            "GET"
        } else {
            "POST"
        };
        let r = a
            .call(method, &format!("{NS}/cur/subscription/s/{bad}"), None)
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    assert_eq!(
        a.post(&format!("{NS}/cur/subscription/none/skip/1"), "")
            .await
            .status,
        404
    );
    assert_eq!(
        a.post(&format!("{sub}/resetcursor"), "{garbage")
            .await
            .status,
        400
    );
    assert_eq!(
        a.put(&format!("{sub}?messageId=sideways"), "").await.status,
        400
    );
    assert_eq!(
        a.get(&format!("{NS}/nothere/subscriptions")).await.status,
        404
    );
}

#[tokio::test]
async fn terminated_topic_refuses_producers_and_busy_topic_needs_force() {
    let a = start().await;
    produce(&a, "term", 2).await;
    let client = PulsarClient::new(a.service_url()).expect("client");
    let producer = client
        .producer()
        .topic("persistent://public/default/term")
        .create()
        .await
        .expect("producer");
    let r = a.delete(&format!("{NS}/term")).await;
    assert_eq!(r.status, 412, "{}", r.body);

    let r = a.post(&format!("{NS}/term/terminate"), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["entryId"], 1, "{}", r.body);
    let sent = tokio::time::timeout(
        Duration::from_secs(20),
        producer.send_and_wait(b"late".to_vec()),
    )
    .await;
    assert!(
        !matches!(sent, Ok(Ok(_))),
        "a terminated topic accepted a message"
    );

    assert_eq!(
        a.call("DELETE", &format!("{NS}/term?force=true"), None)
            .await
            .status,
        204
    );
    assert_eq!(a.get(&format!("{NS}/term/stats")).await.status, 404);
    client.close().await;
}

#[tokio::test]
async fn topic_policy_overrides_round_trip() {
    let a = start().await;
    assert_eq!(a.put(&format!("{NS}/tp"), "").await.status, 204);
    let base = format!("{NS}/tp");
    let cases = [
        (
            "retention",
            json!({"retentionTimeInMinutes": 5, "retentionSizeInMB": 6}),
        ),
        ("messageTTL", json!(30)),
        ("deduplicationEnabled", json!(true)),
        ("maxProducers", json!(2)),
        ("maxConsumers", json!(3)),
        ("delayedDelivery", json!({"active": true, "tickTime": 100})),
    ];
    for (p, v) in &cases {
        let url = format!("{base}/{p}");
        assert_eq!(a.post(&url, &v.to_string()).await.status, 204, "{p}");
        assert_eq!(&a.get(&url).await.body, v, "{p}");
        assert_eq!(a.delete(&url).await.status, 204);
        assert!(a.get(&url).await.body.is_null(), "{p} not removed");
    }
    assert_eq!(
        a.call("POST", &format!("{base}/messageTTL?messageTTL=9"), None)
            .await
            .status,
        204
    );
    assert_eq!(a.get(&format!("{base}/messageTTL")).await.body, json!(9));
    let q = r#"{"limitSize": 10, "limitTime": -1, "policy": "producer_request_hold"}"#;
    assert_eq!(a.post(&format!("{base}/backlogQuota"), q).await.status, 204);
    assert_eq!(
        a.get(&format!("{base}/backlogQuotaMap")).await.body["destination_storage"]["policy"],
        "producer_request_hold"
    );
    assert_eq!(
        a.post(&format!("{base}/messageTTL"), "soon").await.status,
        400
    );
    assert_eq!(
        a.post(&format!("{NS}/ghost/messageTTL"), "5").await.status,
        404
    );
}

#[tokio::test]
async fn stats_rates_follow_the_counters() {
    let a = start().await;
    assert_eq!(a.put(&format!("{NS}/rt"), "").await.status, 204);
    let first = a.get(&format!("{NS}/rt/stats")).await.body;
    assert_eq!(first["msgRateIn"], 0.0, "{first}");
    produce(&a, "rt", 20).await;
    // Rates are computed over windows of at least a second after the first sample.
    let st = a
        .wait_json(&format!("{NS}/rt/stats"), |s| {
            s["msgRateIn"].as_f64().unwrap_or(0.0) > 0.0
        })
        .await;
    assert!(st["msgThroughputIn"].as_f64().unwrap_or(0.0) > 0.0, "{st}");
}
