"""`non-persistent://` topics, as in Pulsar: messages reach the consumers connected when
they are published, in order, through every subscription type; nothing is stored (a
consumer that subscribes later sees none of the earlier messages, and nothing survives a
restart); an invalid request gets a clear, non-retried error instead of a client timeout.
"""

import uuid

import pulsar
import pytest

from conftest import assert_no_more, make_client, receive_n


def np_topic():
    return f"non-persistent://public/default/np-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("sub_type", [pulsar.ConsumerType.Exclusive, pulsar.ConsumerType.Shared,
                                      pulsar.ConsumerType.Failover, pulsar.ConsumerType.KeyShared])
def test_connected_consumers_receive_in_order(client, sub_type):
    topic = np_topic()
    cons = client.subscribe(topic, "s", consumer_type=sub_type)
    prod = client.create_producer(topic)
    for i in range(200):
        prod.send_async(f"m-{i}".encode(), None, partition_key=f"k{i % 4}")
    prod.flush()
    got = [m.data().decode() for m in receive_n(cons, 200, ack=True)]
    assert got == [f"m-{i}" for i in range(200)]


def test_every_subscription_gets_its_own_copy(client):
    topic = np_topic()
    a = client.subscribe(topic, "a")
    b = client.subscribe(topic, "b")
    prod = client.create_producer(topic)
    for i in range(10):
        prod.send(f"{i}".encode())
    assert [m.data() for m in receive_n(a, 10, ack=True)] == [f"{i}".encode() for i in range(10)]
    assert [m.data() for m in receive_n(b, 10, ack=True)] == [f"{i}".encode() for i in range(10)]


def test_messages_published_before_subscribing_are_not_kept(client):
    topic = np_topic()
    prod = client.create_producer(topic)
    for i in range(5):
        prod.send(b"early")
    cons = client.subscribe(topic, "late", initial_position=pulsar.InitialPosition.Earliest)
    assert_no_more(cons, wait_ms=500)
    prod.send(b"now")
    assert [m.data() for m in receive_n(cons, 1, ack=True)] == [b"now"]


def test_nothing_survives_a_restart(fresh_standalone):
    topic = np_topic()
    c = make_client(fresh_standalone.service_url)
    cons = c.subscribe(topic, "s")
    prod = c.create_producer(topic)
    prod.send(b"before")
    assert [m.data() for m in receive_n(cons, 1)] == [b"before"]  # delivered, not acked
    c.close()
    fresh_standalone.restart()
    c = make_client(fresh_standalone.service_url)
    try:
        cons = c.subscribe(topic, "s", initial_position=pulsar.InitialPosition.Earliest)
        assert_no_more(cons, wait_ms=1000)
    finally:
        c.close()
