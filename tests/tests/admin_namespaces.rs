//! Namespace administration: namespaces are created, listed and deleted (412 while they
//! hold topics), and every namespace policy round-trips through GET/POST/DELETE in
//! Pulsar's JSON shapes, persisted in the one `Policies` document; junk input is 400.

mod admin_common;

use admin_common::{start, Admin};
use serde_json::json;

const NS: &str = "/admin/v2/namespaces/public/pol";

async fn with_ns() -> Admin {
    let a = start().await;
    assert_eq!(a.put(NS, "").await.status, 204);
    a
}

#[tokio::test]
async fn namespaces_are_listed_and_non_empty_ones_cannot_be_deleted() {
    let a = with_ns().await;
    assert_eq!(a.put(NS, "").await.status, 409);
    let list = a.get("/admin/v2/namespaces/public").await.body;
    let list = list.as_array().expect("list");
    assert!(list.iter().any(|n| n == "public/pol"), "{list:?}");
    assert!(list.iter().any(|n| n == "public/default"), "{list:?}");
    assert_eq!(a.get("/admin/v2/namespaces/nobody").await.status, 404);
    assert_eq!(a.put("/admin/v2/namespaces/nobody/x", "").await.status, 404);

    let topic = "/admin/v2/persistent/public/pol/t1";
    assert_eq!(a.put(topic, "").await.status, 204);
    let topics = a.get(&format!("{NS}/topics")).await.body;
    assert_eq!(topics, json!(["persistent://public/pol/t1"]));
    let r = a.delete(NS).await;
    assert_eq!(r.status, 412, "{}", r.body);
    assert!(!r.reason().is_empty());
    assert_eq!(a.delete(topic).await.status, 204);
    assert_eq!(a.put(&format!("{topic}/partitions"), "2").await.status, 204);
    assert_eq!(
        a.put("/admin/v2/persistent/public/pol/t2", "").await.status,
        204
    );
    assert_eq!(a.delete(NS).await.status, 412);
    assert_eq!(
        a.call("DELETE", &format!("{NS}?force=true"), None)
            .await
            .status,
        204
    );
    assert_eq!(a.get(NS).await.status, 404);
    assert_eq!(a.put(NS, "").await.status, 204);
    assert_eq!(a.get(&format!("{NS}/topics")).await.body, json!([]));
    assert_eq!(a.delete(NS).await.status, 204);
    assert_eq!(a.get(NS).await.status, 404);
    assert_eq!(a.delete(NS).await.status, 404);
}

#[tokio::test]
async fn every_namespace_policy_round_trips() {
    let a = with_ns().await;
    let cluster = a.get("/admin/v2/clusters").await.body[0].clone();
    let cases = [
        (
            "retention",
            json!({"retentionTimeInMinutes": 60, "retentionSizeInMB": 512}),
        ),
        ("messageTTL", json!(120)),
        ("deduplication", json!(true)),
        ("delayedDelivery", json!({"active": false, "tickTime": 500})),
        (
            "autoTopicCreation",
            json!({"allowAutoTopicCreation": true, "topicType": "partitioned", "defaultNumPartitions": 3}),
        ),
        ("maxProducersPerTopic", json!(4)),
        ("maxConsumersPerTopic", json!(7)),
        ("replication", json!([cluster])),
        (
            "publishRate",
            json!({"publishThrottlingRateInMsg": 100, "publishThrottlingRateInByte": 2048}),
        ),
        (
            "dispatchRate",
            json!({"dispatchThrottlingRateInMsg": 10, "dispatchThrottlingRateInByte": -1,
                   "relativeToPublishRate": false, "ratePeriodInSecond": 1}),
        ),
    ];
    for (path, value) in &cases {
        let url = format!("{NS}/{path}");
        let r = a.post(&url, &value.to_string()).await;
        assert_eq!(r.status, 204, "set {path}: {}", r.body);
        let got = a.get(&url).await;
        assert_eq!(got.status, 200);
        assert_eq!(&got.body, value, "{path} read back");
    }
    let policies = a.get(&format!("{NS}/policies")).await.body;
    assert_eq!(policies["message_ttl_in_seconds"], 120);
    assert_eq!(policies["retention_policies"]["retentionSizeInMB"], 512);
    assert_eq!(policies["deduplicationEnabled"], true);
    assert_eq!(policies["max_producers_per_topic"], 4);
    assert_eq!(
        policies["autoTopicCreationOverride"]["defaultNumPartitions"],
        3
    );

    for (path, _) in &cases {
        let url = format!("{NS}/{path}");
        assert_eq!(a.delete(&url).await.status, 204, "delete {path}");
    }
    assert!(a.get(&format!("{NS}/messageTTL")).await.body.is_null());
    assert!(a.get(&format!("{NS}/retention")).await.body.is_null());
    assert_eq!(a.get(&format!("{NS}/replication")).await.body, json!([]));
}

#[tokio::test]
async fn backlog_quotas_are_set_per_type_and_removed() {
    let a = with_ns().await;
    let q = r#"{"limitSize": 1048576, "limitTime": -1, "policy": "producer_exception"}"#;
    assert_eq!(a.post(&format!("{NS}/backlogQuota"), q).await.status, 204);
    let age = r#"{"limitTime": 3600, "policy": "consumer_backlog_eviction"}"#;
    let r = a
        .post(
            &format!("{NS}/backlogQuota?backlogQuotaType=message_age"),
            age,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let map = a.get(&format!("{NS}/backlogQuotaMap")).await.body;
    assert_eq!(map["destination_storage"]["limitSize"], 1048576);
    assert_eq!(map["destination_storage"]["policy"], "producer_exception");
    assert_eq!(map["message_age"]["limitTime"], 3600);
    assert_eq!(map["message_age"]["policy"], "consumer_backlog_eviction");
    assert_eq!(a.delete(&format!("{NS}/backlogQuota")).await.status, 204);
    let map = a.get(&format!("{NS}/backlogQuotaMap")).await.body;
    assert!(map.get("destination_storage").is_none(), "{map}");
    assert!(map.get("message_age").is_some());

    let bad = r#"{"limitSize": 1, "policy": "drop_everything"}"#;
    assert_eq!(a.post(&format!("{NS}/backlogQuota"), bad).await.status, 400);
    let bad_type = a
        .post(&format!("{NS}/backlogQuota?backlogQuotaType=nope"), q)
        .await;
    assert_eq!(bad_type.status, 400);
}

#[tokio::test]
async fn junk_policy_input_is_400_and_unknown_namespace_404() {
    let a = with_ns().await;
    for (path, body) in [
        ("retention", "{"),
        (
            "retention",
            r#"{"retentionTimeInMinutes": -5, "retentionSizeInMB": 1}"#,
        ),
        ("messageTTL", "\"ten\""),
        ("messageTTL", "-1"),
        ("messageTTL", "99999999999"),
        ("deduplication", "maybe"),
        ("delayedDelivery", r#"{"active": true, "tickTime": 0}"#),
        (
            "autoTopicCreation",
            r#"{"allowAutoTopicCreation": true, "topicType": "weird"}"#,
        ),
        (
            "autoTopicCreation",
            r#"{"allowAutoTopicCreation": true, "topicType": "partitioned"}"#,
        ),
        ("maxProducersPerTopic", "[]"),
        ("replication", "\"solo\""),
        ("publishRate", "12"),
        ("messageTTL", ""),
    ] {
        let r = a.post(&format!("{NS}/{path}"), body).await;
        assert_eq!(r.status, 400, "{path} with {body:?}: {}", r.body);
        assert!(!r.reason().is_empty());
    }
    let r = a.post(&format!("{NS}/replication"), r#"["mars"]"#).await;
    assert_eq!(r.status, 412);
    let r = a
        .post("/admin/v2/namespaces/public/ghost/messageTTL", "10")
        .await;
    assert_eq!(r.status, 404);
    let r = a.get("/admin/v2/namespaces/public/ghost/retention").await;
    assert_eq!(r.status, 404);
    let r = a.get("/admin/v2/namespaces/bad%20t/x/retention").await;
    assert_eq!(r.status, 400);
}
