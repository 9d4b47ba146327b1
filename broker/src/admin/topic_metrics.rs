//! Per-topic Prometheus metrics under Apache Pulsar's names (`pulsar_in_messages_total`,
//! `pulsar_msg_backlog`, `pulsar_subscription_back_log`, ...), rendered at scrape time from
//! the topics loaded on this broker, so dashboards built for Pulsar keep working.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::broker::Broker;

/// One metric family: name, type, help.
const FAMILIES: &[(&str, &str, &str)] = &[
    ("pulsar_in_messages_total", "counter", "Messages published"),
    (
        "pulsar_in_bytes_total",
        "counter",
        "Payload bytes published",
    ),
    (
        "pulsar_out_messages_total",
        "counter",
        "Messages dispatched",
    ),
    (
        "pulsar_out_bytes_total",
        "counter",
        "Payload bytes dispatched",
    ),
    ("pulsar_producers_count", "gauge", "Connected producers"),
    ("pulsar_consumers_count", "gauge", "Connected consumers"),
    ("pulsar_subscriptions_count", "gauge", "Subscriptions"),
    ("pulsar_storage_size", "gauge", "Bytes stored for the topic"),
    (
        "pulsar_msg_backlog",
        "gauge",
        "Unacknowledged entries over all subscriptions",
    ),
];

/// `label="value"` with Prometheus escaping.
fn label(out: &mut String, k: &str, v: &str) {
    let v = v
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    let _ = write!(out, "{k}=\"{v}\"");
}

/// The per-topic section of `/metrics`.
pub async fn render(broker: &Broker) -> String {
    let mut rows: Vec<(String, [f64; 9])> = Vec::new();
    let mut sub_rows: Vec<(String, String, f64)> = Vec::new();
    for topic in broker.loaded_topics() {
        let mut labels = String::new();
        label(&mut labels, "cluster", &broker.config.cluster_name);
        labels.push(',');
        label(
            &mut labels,
            "namespace",
            &format!("{}/{}", topic.name.tenant, topic.name.namespace),
        );
        labels.push(',');
        label(&mut labels, "topic", &topic.name.to_string());
        let subs = topic.subscriptions();
        let (mut out_msgs, mut out_bytes, mut consumers, mut backlog) = (0u64, 0u64, 0usize, 0u64);
        for s in &subs {
            out_msgs += s.counters.msg_out.load(Ordering::Relaxed);
            out_bytes += s.counters.bytes_out.load(Ordering::Relaxed);
            if let Some(snap) = s.stats().await {
                consumers += snap.consumers.len();
                backlog += snap.backlog;
                let mut l = labels.clone();
                l.push(',');
                label(&mut l, "subscription", &s.name);
                sub_rows.push((l, s.name.clone(), snap.backlog as f64));
            }
        }
        rows.push((
            labels,
            [
                topic.counters.msg_in.load(Ordering::Relaxed) as f64,
                topic.counters.bytes_in.load(Ordering::Relaxed) as f64,
                out_msgs as f64,
                out_bytes as f64,
                topic.producers().len() as f64,
                consumers as f64,
                subs.len() as f64,
                topic.log.size_bytes() as f64,
                backlog as f64,
            ],
        ));
    }
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    for (i, (name, kind, help)) in FAMILIES.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, values) in &rows {
            let _ = writeln!(out, "{name}{{{labels}}} {}", values[i]);
        }
    }
    if !sub_rows.is_empty() {
        let name = "pulsar_subscription_back_log";
        let _ = writeln!(
            out,
            "# HELP {name} Unacknowledged entries of the subscription\n# TYPE {name} gauge"
        );
        for (labels, _, v) in &sub_rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        label(&mut s, "topic", "a\"b\\c\nd");
        assert_eq!(s, r#"topic="a\"b\\c\nd""#);
    }
}
