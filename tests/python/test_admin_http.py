"""The HTTP side of the standalone answers like Pulsar's: the health endpoint returns 200,
/metrics serves Prometheus text, and topic stats use Pulsar's field names with counts that
match what was produced (msgInCounter) and left unacknowledged (msgBacklog)."""

import json

import pulsar

from conftest import http_get, wait_for


def test_health_and_metrics(standalone):
    status, _ = http_get(f"{standalone.http_url}/admin/v2/brokers/health")
    assert status == 200
    status, body = http_get(f"{standalone.http_url}/metrics")
    assert status == 200, f"/metrics answered {status}"
    text = body.decode("utf-8", "replace")
    assert "# TYPE" in text or "magnetar_" in text, f"not Prometheus text: {text[:300]!r}"


def test_topic_stats_counts(standalone, client, topic):
    name = topic.rsplit("/", 1)[-1]
    client.subscribe(topic, "backlog-sub").close()
    prod = client.create_producer(topic)
    for i in range(7):
        prod.send(f"s-{i}".encode())

    def stats():
        status, body = standalone.topic_stats(name)
        if status != 200:
            return None
        st = json.loads(body)
        sub = st.get("subscriptions", {}).get("backlog-sub", {})
        if st.get("msgInCounter") == 7 and sub.get("msgBacklog") == 7:
            return st
        return None

    st = wait_for(stats, 15, "stats showing msgInCounter=7 and msgBacklog=7")
    assert len(st["publishers"]) == 1
    prod.close()

    cons = client.subscribe(topic, "backlog-sub")
    for _ in range(7):
        cons.acknowledge(cons.receive(timeout_millis=5000))
    cons.close()  # flushes acks

    def drained():
        status, body = standalone.topic_stats(name)
        return status == 200 and json.loads(body)["subscriptions"]["backlog-sub"]["msgBacklog"] == 0

    wait_for(drained, 15, "msgBacklog to reach 0 after acking everything")


def test_stats_of_unknown_topic_is_404(standalone):
    status, _ = standalone.topic_stats("no-such-topic-" + "x" * 8)
    assert status == 404


def test_consumer_visible_in_stats(standalone, client, topic):
    name = topic.rsplit("/", 1)[-1]
    cons = client.subscribe(topic, "visible", consumer_type=pulsar.ConsumerType.Shared,
                            consumer_name="watcher")

    def has_consumer():
        status, body = standalone.topic_stats(name)
        if status != 200:
            return False
        consumers = json.loads(body).get("subscriptions", {}).get("visible", {}).get("consumers", [])
        return any(c.get("consumerName") == "watcher" for c in consumers)

    wait_for(has_consumer, 15, "consumer 'watcher' in subscription stats")
    cons.close()


def test_bundle_unload_checks_namespace_and_range(standalone):
    """Unloading a real bundle answers 204; an unknown namespace 404; a range that is not
    one of the namespace's bundles 412 (it used to answer 204 for anything)."""
    from conftest import http_request
    base = f"{standalone.http_url}/admin/v2/namespaces"
    status, body = http_get(f"{base}/public/default/bundles")
    assert status == 200
    bounds = json.loads(body)["boundaries"]
    first = f"{bounds[0]}_{bounds[1]}"
    assert http_request("PUT", f"{base}/public/default/{first}/unload")[0] == 204
    assert http_request("PUT", f"{base}/public/no-such-ns/{first}/unload")[0] == 404
    assert http_request("PUT", f"{base}/public/default/0x00000000_0x00000010/unload")[0] == 412


def test_backlog_and_current_ledger_sizes_are_live(standalone, client, topic):
    """`backlogSize` and the open ledger's `size` reflect what was just written, not the
    last periodic check or the last ledger close."""
    client.subscribe(topic, "sizes")
    prod = client.create_producer(topic, batching_enabled=False)
    for _ in range(3):
        prod.send(b"x" * 1000)
    base = f"{standalone.http_url}/admin/v2/persistent/public/default/{topic.split('/')[-1]}"
    stats = json.loads(http_get(f"{base}/stats")[1])
    assert stats["subscriptions"]["sizes"]["msgBacklog"] == 3
    assert stats["backlogSize"] >= 3000
    internal = json.loads(http_get(f"{base}/internalStats")[1])
    assert internal["currentLedgerSize"] >= 3000
    assert internal["currentLedgerSize"] == internal["ledgers"][-1]["size"]


def test_topic_unload_clients_reconnect_and_continue(standalone, client, topic):
    """`PUT .../{topic}/unload` (pulsar-admin topics unload) closes the topic; connected
    producers and consumers reconnect by themselves and nothing is lost."""
    from conftest import http_request, receive_n
    cons = client.subscribe(topic, "unload-sub")
    prod = client.create_producer(topic, batching_enabled=False)
    prod.send(b"before")
    base = f"{standalone.http_url}/admin/v2/persistent/public/default/{topic.split('/')[-1]}"
    assert http_request("PUT", f"{base}/unload")[0] == 204
    prod.send(b"after")  # the client reconnects and resends as needed
    got = [m.data() for m in receive_n(cons, 2, ack=True)]
    assert got == [b"before", b"after"]
    missing = f"{standalone.http_url}/admin/v2/persistent/public/default/never-created-x"
    assert http_request("PUT", f"{missing}/unload")[0] == 404
