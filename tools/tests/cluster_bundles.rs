//! Bundle administration across two broker processes: both brokers agree on every owner,
//! partitions of a partitioned topic spread over both brokers,
//! split cuts a bundle in two, unload on a non-owner redirects (307) to the owner, and a
//! gracefully stopped broker hands its bundles over at once (well before its session TTL).

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::{http, http_get, wait_until, LocalCluster};
use magnetar_broker::cluster::bundles::{topic_hash, NamespaceBundles};

fn bundles(port: u16) -> Vec<String> {
    let (status, body) =
        http_get(port, "/admin/v2/namespaces/public/default/bundles").expect("GET bundles");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["boundaries"]
        .as_array()
        .expect("boundaries")
        .iter()
        .map(|b| b.as_str().expect("string").to_string())
        .collect()
}

/// The bundle (`lo_hi`) holding `topic` under `bounds`, computed with the broker's own
/// bundle code.
fn bundle_of(bounds: &[String], topic: &str) -> String {
    let nb = NamespaceBundles {
        boundaries: bounds.to_vec(),
        num_bundles: bounds.len() - 1,
    };
    let h = topic_hash(&format!("persistent://public/default/{topic}"));
    nb.find(h).expect("a bundle holds every hash").to_string()
}

fn http_put_json(port: u16, path: &str, body: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "PUT {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        buf.split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string(),
    ))
}

#[test]
fn split_unload_redirect_and_graceful_handover() {
    // A long TTL: a hand-over within it proves the stopped broker released its bundles.
    let cluster = LocalCluster::start(2, 2, 30_000);
    let (b0, b1) = (cluster.brokers[0].clone(), cluster.brokers[1].clone());
    let before = bundles(b0.http_port);
    assert_eq!(before.len(), 5, "4 bundles by default: {before:?}");

    // Partitions of a partitioned topic land in different bundles and on both brokers.
    // (A topic admin request may be redirected to the broker the name hashes to.)
    let path = "/admin/v2/persistent/public/default/spread/partitions";
    let (mut status, mut body) = http_put_json(b0.http_port, path, "8").expect("create");
    if status == 307 {
        (status, body) = http_put_json(b1.http_port, path, "8").expect("create");
    }
    assert!(
        status == 204 || status == 200,
        "create partitioned: {status} {body}"
    );
    let mut partition_owners = std::collections::BTreeSet::new();
    for i in 0..8 {
        let p = format!("spread-partition-{i}");
        let o = cluster.lookup(&b0, &p).expect("lookup partition");
        assert_eq!(cluster.lookup(&b1, &p).as_deref(), Some(o.as_str()));
        partition_owners.insert(o);
    }
    assert_eq!(partition_owners.len(), 2, "8 partitions all on one broker");

    let topic = "bundle-admin";
    let owner_url = cluster.lookup(&b0, topic).expect("lookup");
    assert_eq!(
        cluster.lookup(&b1, topic).as_deref(),
        Some(owner_url.as_str())
    );
    let owner = if b0.url() == owner_url {
        b0.clone()
    } else {
        b1.clone()
    };
    let other = if owner.name == b0.name {
        b1.clone()
    } else {
        b0.clone()
    };

    // Split the topic's bundle on its owner.
    let bundle = bundle_of(&before, topic);
    let path = format!("/admin/v2/namespaces/public/default/{bundle}/split");
    let (status, body) = http(owner.http_port, "PUT", &path).expect("split");
    assert_eq!(status, 204, "split: {body}");
    let after = bundles(other.http_port);
    assert_eq!(after.len(), 6, "split adds one boundary: {after:?}");

    // The topic is assigned again; both brokers still agree.
    let new_owner = cluster.lookup(&b0, topic).expect("lookup after split");
    assert_eq!(
        cluster.lookup(&b1, topic).as_deref(),
        Some(new_owner.as_str())
    );
    let owner = if b0.url() == new_owner {
        b0.clone()
    } else {
        b1.clone()
    };
    let other = if owner.name == b0.name {
        b1.clone()
    } else {
        b0.clone()
    };

    // Unload through the non-owner is redirected to the owner.
    let bundle = bundle_of(&after, topic);
    let path = format!("/admin/v2/namespaces/public/default/{bundle}/unload");
    let (status, _) = http(other.http_port, "PUT", &path).expect("unload");
    assert_eq!(status, 307, "unload on a non-owner redirects");
    let (status, body) = http(owner.http_port, "PUT", &path).expect("unload");
    assert_eq!(status, 204, "unload: {body}");

    // Graceful stop of the owner: the other broker serves the topic long before 30 s.
    let owner_url = cluster.lookup(&other, topic).expect("lookup");
    let owner = if b0.url() == owner_url {
        b0.clone()
    } else {
        b1.clone()
    };
    let survivor = if owner.name == b0.name {
        b1.clone()
    } else {
        b0.clone()
    };
    let stopped_at = Instant::now();
    cluster.signal(&owner.name, "TERM");
    let moved = wait_until(Duration::from_secs(15), || {
        cluster.lookup(&survivor, topic).as_deref() == Some(survivor.url().as_str())
    });
    assert!(moved, "bundles were not released on graceful shutdown");
    eprintln!("handed over {:?} after SIGTERM", stopped_at.elapsed());
    assert!(cluster
        .log(&owner.name)
        .contains("released bundle ownership"));
}
