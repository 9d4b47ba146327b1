"""Readers position themselves exactly: from MessageId.earliest a reader sees every message
in order, from a saved id it starts right after it (or at it when inclusive), from latest it
sees only new messages, and has_message_available tells the truth at each step."""

import time

import pulsar
from pulsar import MessageId

from conftest import assert_no_more, wait_for


def read_n(reader, n, timeout_ms=5000):
    out = []
    for _ in range(n):
        out.append(reader.read_next(timeout_millis=timeout_ms))
    return out


def produce(client, topic, n, prefix="r"):
    prod = client.create_producer(topic)
    ids = []
    sent = []
    for i in range(n):
        p = f"{prefix}-{i}".encode()
        ids.append(prod.send(p))
        sent.append(p)
    prod.close()
    return sent, ids


def test_reader_from_earliest(client, topic):
    sent, ids = produce(client, topic, 10)
    reader = client.create_reader(topic, MessageId.earliest)
    got = read_n(reader, 10)
    assert [m.data() for m in got] == sent
    assert [m.message_id() for m in got] == ids
    assert_no_more(reader_as_consumer(reader), 500)
    reader.close()


def test_reader_from_saved_message_id(client, topic):
    sent, ids = produce(client, topic, 10)
    # Round-trip the id through its serialized form, as an application would store it.
    saved = MessageId.deserialize(ids[3].serialize())
    reader = client.create_reader(topic, saved)
    assert [m.data() for m in read_n(reader, 6)] == sent[4:]
    assert_no_more(reader_as_consumer(reader), 500)
    reader.close()

    inclusive = client.create_reader(topic, saved, start_message_id_inclusive=True)
    assert [m.data() for m in read_n(inclusive, 7)] == sent[3:]
    inclusive.close()


def test_reader_from_latest_sees_only_new(client, topic):
    produce(client, topic, 3, prefix="old")
    reader = client.create_reader(topic, MessageId.latest)
    assert not reader.has_message_available()
    sent, _ = produce(client, topic, 2, prefix="new")
    assert [m.data() for m in read_n(reader, 2)] == sent
    reader.close()


def test_has_message_available(client, topic):
    empty = client.create_reader(topic, MessageId.earliest)
    assert not empty.has_message_available(), "empty topic reports a message"
    empty.close()

    produce(client, topic, 3)
    reader = client.create_reader(topic, MessageId.earliest)
    assert reader.has_message_available()
    read_n(reader, 3)
    assert not reader.has_message_available(), "reader at the end reports a message"
    produce(client, topic, 1, prefix="more")
    wait_for(reader.has_message_available, 10, "has_message_available after a new message")
    assert read_n(reader, 1)[0].data() == b"more-0"
    assert not reader.has_message_available()
    reader.close()


def test_reader_leaves_no_durable_subscription(standalone, client, topic):
    produce(client, topic, 2)
    reader = client.create_reader(topic, MessageId.earliest)
    read_n(reader, 2)
    reader.close()
    # A durable subscription created now at Earliest still sees both (the reader consumed nothing).
    cons = client.subscribe(topic, "after-reader", initial_position=pulsar.InitialPosition.Earliest)
    assert cons.receive(timeout_millis=5000).data() == b"r-0"
    cons.close()


class reader_as_consumer:
    """Adapter so assert_no_more() works on a Reader."""

    def __init__(self, reader):
        self.reader = reader

    def receive(self, timeout_millis):
        return self.reader.read_next(timeout_millis=timeout_millis)


def test_reader_seek_by_time_and_by_id(client, topic):
    """A reader's seek resets its (non-durable) subscription; the client reconnects without a
    start id after a seek by time and must resume where the seek put it."""
    prod = client.create_producer(topic, batching_enabled=False)
    ids = [prod.send(b"old-%d" % i) for i in range(3)]
    time.sleep(0.05)
    boundary = int(time.time() * 1000)
    time.sleep(0.05)
    for i in range(3):
        prod.send(b"new-%d" % i)
    reader = client.create_reader(topic, pulsar.MessageId.earliest)
    assert reader.read_next(5000).data() == b"old-0"
    reader.seek(boundary)
    assert [reader.read_next(5000).data() for _ in range(3)] == [b"new-0", b"new-1", b"new-2"]
    reader.seek(ids[1])
    got = reader.read_next(5000).data()
    assert got in (b"old-1", b"old-2")  # exclusive start by default in the C++ client
    reader.seek(pulsar.MessageId.earliest)
    assert reader.read_next(5000).data() == b"old-0"
    reader.close()
