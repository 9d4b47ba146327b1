"""Partitioned topics: a topic created with N partitions through the HTTP admin API is seen
by the official client as N partitions; keyed messages are routed by key (one partition per
key), and a consumer of the partitioned topic receives every message, in order per key."""

import json
import uuid

import pulsar

from conftest import assert_no_more, receive_n


def test_partitioned_topic_created_via_admin(standalone, client):
    name = f"part-{uuid.uuid4().hex[:10]}"
    topic = f"persistent://public/default/{name}"
    status, body = standalone.create_partitioned_topic(name, 4)
    assert status in (200, 204), f"PUT partitions answered {status}: {body[:300]!r}"

    parts = client.get_topic_partitions(topic)
    assert parts == [f"{topic}-partition-{i}" for i in range(4)]

    cons = client.subscribe(topic, "all", consumer_type=pulsar.ConsumerType.Shared,
                            initial_position=pulsar.InitialPosition.Earliest)
    prod = client.create_producer(topic)
    keys = [f"key-{k}" for k in range(16)]
    n = 400
    sent = []
    for i in range(n):
        key = keys[i % len(keys)]
        p = f"{key}:{i}".encode()
        prod.send(p, partition_key=key)
        sent.append(p)
    prod.close()

    got = receive_n(cons, n, timeout_s=60, ack=True)
    assert len(got) == n, f"received {len(got)}/{n}"
    assert sorted(m.data() for m in got) == sorted(sent), "lost or duplicated messages"
    assert_no_more(cons, 1000)

    partition_of_key = {}
    per_key = {}
    for m in got:
        key = m.partition_key()
        part = m.topic_name()
        assert part.startswith(f"{topic}-partition-"), f"message from {part}"
        assert partition_of_key.setdefault(key, part) == part, f"key {key} spread over partitions"
        per_key.setdefault(key, []).append(int(m.data().decode().split(":")[1]))
    for key, seqs in per_key.items():
        assert seqs == sorted(seqs), f"order broken for {key}"
    assert len(set(partition_of_key.values())) > 1, "all keys landed on one partition"
    cons.close()

    # Per-partition stats are served with Pulsar field names.
    used = sorted(set(partition_of_key.values()))[0].rsplit("/", 1)[-1]
    status, body = standalone.topic_stats(used)
    assert status == 200, f"stats for {used}: {status} {body[:300]!r}"
    stats = json.loads(body)
    for field in ("msgInCounter", "subscriptions", "publishers"):
        assert field in stats, f"stats lack {field}: {sorted(stats)}"
    assert stats["msgInCounter"] > 0


def test_partitioned_round_robin_without_keys(standalone, client):
    name = f"part-rr-{uuid.uuid4().hex[:10]}"
    topic = f"persistent://public/default/{name}"
    status, body = standalone.create_partitioned_topic(name, 3)
    assert status in (200, 204), f"PUT partitions answered {status}: {body[:300]!r}"
    cons = client.subscribe(topic, "rr", initial_position=pulsar.InitialPosition.Earliest)
    prod = client.create_producer(
        topic, message_routing_mode=pulsar.PartitionsRoutingMode.RoundRobinDistribution)
    sent = [f"rr-{i}".encode() for i in range(30)]
    for p in sent:
        prod.send(p)
    got = receive_n(cons, 30, ack=True)
    assert sorted(m.data() for m in got) == sorted(sent)
    assert len({m.topic_name() for m in got}) == 3, "round-robin did not use all partitions"


def test_partitions_exist_before_first_use(standalone):
    """As in Pulsar, the partitions of a partitioned topic exist once it is created: their
    stats are served before any client used them; an index past the count is unknown."""
    from conftest import http_get
    name = f"unused-{uuid.uuid4().hex[:8]}"
    standalone.create_partitioned_topic(name, 2)
    base = f"{standalone.http_url}/admin/v2/persistent/public/default/{name}"
    for i in range(2):
        status, body = http_get(f"{base}-partition-{i}/stats")
        assert status == 200, body
        assert json.loads(body)["msgInCounter"] == 0
    status, _ = http_get(f"{base}-partition-2/stats")
    assert status == 404
