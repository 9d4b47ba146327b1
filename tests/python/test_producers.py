"""Producer-side rules as in Apache Pulsar: a producer name is unique per topic (a second
producer with the same name gets ProducerBusy), messages up to the advertised max message
size (5 MiB by default) are accepted while larger ones are refused with MessageTooBig, and
unsubscribing deletes a subscription together with its backlog."""

import pulsar
import pytest

from conftest import assert_no_more, receive_n


def test_duplicate_producer_name_rejected(client, topic):
    p1 = client.create_producer(topic, producer_name="unique-name")
    with pytest.raises(pulsar.ProducerBusy):
        client.create_producer(topic, producer_name="unique-name")
    p1.send(b"still-fine")
    p1.close()
    # Once closed, the name is free again.
    client.create_producer(topic, producer_name="unique-name").close()


def test_large_message_accepted_and_too_big_refused(client, topic):
    cons = client.subscribe(topic, "big")
    prod = client.create_producer(topic)
    big = bytes(range(256)) * (4 * 1024 * 4)  # 4 MiB
    prod.send(big)
    got = receive_n(cons, 1, ack=True)
    assert got and got[0].data() == big
    with pytest.raises(pulsar.MessageTooBig):
        prod.send(b"x" * (6 * 1024 * 1024))
    prod.send(b"after")
    assert [m.data() for m in receive_n(cons, 1, ack=True)] == [b"after"]


def test_unsubscribe_drops_subscription_and_backlog(client, topic):
    cons = client.subscribe(topic, "gone")
    prod = client.create_producer(topic)
    for i in range(3):
        prod.send(f"u-{i}".encode())
    cons.unsubscribe()
    cons = client.subscribe(topic, "gone", initial_position=pulsar.InitialPosition.Latest)
    assert_no_more(cons, 1000)
    prod.send(b"fresh")
    assert [m.data() for m in receive_n(cons, 1, ack=True)] == [b"fresh"]
