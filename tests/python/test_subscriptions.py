"""Subscription types behave as in Apache Pulsar for the official Python client.

Exclusive rejects a second consumer; Shared spreads messages over consumers with none lost
or duplicated; Failover delivers only to the active consumer and hands over without loss
when it closes; Key_Shared sends every key to a single consumer and keeps per-key order.
"""

import time

import pulsar
import pytest

from conftest import assert_no_more, receive_n


def drain(consumers, total, timeout_s=30.0, ack=True):
    """Round-robin receive over consumers until `total` messages or the deadline.

    Returns a list per consumer of (payload, msg). Each receive is bounded.
    """
    got = [[] for _ in consumers]
    deadline = time.monotonic() + timeout_s
    while sum(map(len, got)) < total and time.monotonic() < deadline:
        for i, c in enumerate(consumers):
            try:
                m = c.receive(timeout_millis=100)
            except pulsar.Timeout:
                continue
            if ack:
                c.acknowledge(m)
            got[i].append((m.data(), m))
    return got


def produce(client, topic, n, prefix="m", **send_kw):
    prod = client.create_producer(topic)
    sent = []
    for i in range(n):
        p = f"{prefix}-{i}".encode()
        prod.send(p, **send_kw)
        sent.append(p)
    prod.close()
    return sent


def test_exclusive_rejects_second_consumer(client, topic):
    c1 = client.subscribe(topic, "excl", consumer_type=pulsar.ConsumerType.Exclusive)
    with pytest.raises(pulsar.ConsumerBusy):
        client.subscribe(topic, "excl", consumer_type=pulsar.ConsumerType.Exclusive)
    # The first consumer is unaffected.
    sent = produce(client, topic, 5)
    assert [m.data() for m in receive_n(c1, 5, ack=True)] == sent
    # A different subscription name on the same topic is fine.
    other = client.subscribe(topic, "excl-other", consumer_type=pulsar.ConsumerType.Exclusive)
    other.close()
    c1.close()


def test_exclusive_subscription_free_after_close(client, topic):
    c1 = client.subscribe(topic, "excl", consumer_type=pulsar.ConsumerType.Exclusive)
    c1.close()
    c2 = client.subscribe(topic, "excl", consumer_type=pulsar.ConsumerType.Exclusive)
    c2.close()


def test_shared_spreads_without_loss_or_duplicates(client, topic):
    kw = dict(consumer_type=pulsar.ConsumerType.Shared, receiver_queue_size=10)
    c1 = client.subscribe(topic, "shared", consumer_name="c1", **kw)
    c2 = client.subscribe(topic, "shared", consumer_name="c2", **kw)
    sent = produce(client, topic, 200)
    got = drain([c1, c2], len(sent))
    all_payloads = [p for per in got for p, _ in per]
    assert len(all_payloads) == len(sent), f"received {len(all_payloads)}/{len(sent)}"
    assert sorted(all_payloads) == sorted(sent), "lost or duplicated messages"
    assert got[0] and got[1], f"not spread: c1={len(got[0])} c2={len(got[1])}"
    assert_no_more(c1, 500)
    assert_no_more(c2, 500)


def test_failover_active_consumer_only_then_takeover(client, topic):
    kw = dict(consumer_type=pulsar.ConsumerType.Failover, receiver_queue_size=5)
    a = client.subscribe(topic, "fo", consumer_name="a", **kw)
    b = client.subscribe(topic, "fo", consumer_name="b", **kw)
    sent = produce(client, topic, 20)

    # Find the active consumer: the only one that gets anything.
    first = drain([a, b], 1, timeout_s=15, ack=False)
    assert sum(map(len, first)) == 1, (
        f"expected exactly one (active) consumer to receive: a={len(first[0])} b={len(first[1])}")
    active, standby = (a, b) if first[0] else (b, a)
    first_msg = (first[0] or first[1])[0][1]
    assert first_msg.data() == sent[0]

    # The active one gets the first 10 in order, the standby nothing meanwhile.
    rest = receive_n(active, 9)
    msgs = [first_msg] + rest
    assert [m.data() for m in msgs] == sent[:10]
    for m in msgs:
        active.acknowledge(m)
    assert_no_more(standby, 1000)

    # Closing the active consumer hands over to the standby, which gets the rest (no loss).
    active.close()
    taken = receive_n(standby, 10, timeout_s=30, ack=True)
    assert [m.data() for m in taken] == sent[10:], "standby did not take over all unacked messages in order"
    assert_no_more(standby, 1000)


def test_key_shared_key_affinity_and_order(client, topic):
    kw = dict(consumer_type=pulsar.ConsumerType.KeyShared, receiver_queue_size=50)
    c1 = client.subscribe(topic, "ks", consumer_name="k1", **kw)
    c2 = client.subscribe(topic, "ks", consumer_name="k2", **kw)
    prod = client.create_producer(topic)
    keys = [f"key-{k}" for k in range(32)]
    n = 320
    sent = []
    for i in range(n):
        key = keys[i % len(keys)]
        p = f"{key}:{i}".encode()
        prod.send(p, partition_key=key)
        sent.append(p)
    prod.close()

    got = drain([c1, c2], n)
    total = sum(map(len, got))
    assert total == n, f"received {total}/{n}"
    owner = {}
    per_key = {}
    for idx, per in enumerate(got):
        for p, m in per:
            key = m.partition_key()
            assert p.decode().startswith(key + ":"), f"key mismatch {key} vs {p}"
            assert owner.setdefault(key, idx) == idx, f"key {key} delivered to both consumers"
            per_key.setdefault(key, []).append(int(p.decode().split(":")[1]))
    for key, seqs in per_key.items():
        assert seqs == sorted(seqs), f"order broken for {key}: {seqs}"
    assert sorted(p for per in got for p, _ in per) == sorted(sent)
    assert got[0] and got[1], "all 32 keys went to one consumer (hash ranges not split?)"
