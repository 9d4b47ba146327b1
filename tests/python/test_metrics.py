"""`/metrics` serves Prometheus text with the broker's own `magnetar_*` metrics and, per
loaded topic, Apache Pulsar's metric names (`pulsar_in_messages_total`,
`pulsar_msg_backlog`, `pulsar_subscription_back_log`, ...) labelled with cluster, namespace,
topic and subscription, so dashboards built for Pulsar keep working."""

import re

from conftest import http_get, receive_n, wait_for


def metric(text, name, **labels):
    """The value of the first sample of `name` whose labels include `labels`."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def scrape(standalone):
    status, body = http_get(f"{standalone.http_url}/metrics")
    assert status == 200
    return body.decode()


def test_per_topic_metrics_use_pulsar_names(client, standalone, topic):
    cons = client.subscribe(topic, "metrics-sub")
    prod = client.create_producer(topic, batching_enabled=False)
    for i in range(10):
        prod.send(b"x" * 100)
    receive_n(cons, 4, ack=True)  # 6 left unacknowledged

    def sampled():
        text = scrape(standalone)
        return (metric(text, "pulsar_in_messages_total", topic=topic) == 10
                and metric(text, "pulsar_subscription_back_log", topic=topic,
                           subscription="metrics-sub") == 6)
    wait_for(sampled, what="per-topic metrics")
    text = scrape(standalone)
    assert metric(text, "pulsar_in_bytes_total", topic=topic) >= 1000  # with metadata, as Pulsar
    assert metric(text, "pulsar_producers_count", topic=topic) == 1
    assert metric(text, "pulsar_consumers_count", topic=topic) == 1
    assert metric(text, "pulsar_subscriptions_count", topic=topic) == 1
    assert metric(text, "pulsar_msg_backlog", topic=topic, namespace="public/default") == 6
    assert metric(text, "pulsar_storage_size", topic=topic) > 0
    assert "# TYPE pulsar_in_messages_total counter" in text
    # The broker's own metrics are there too.
    assert re.search(r"^magnetar_broker_messages_in_total", text, re.M)
