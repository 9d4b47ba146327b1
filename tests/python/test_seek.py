"""Consumer seek resets the subscription: seeking to a message id redelivers from that
position in order (the broker resets the cursor *to* the id; the official client then skips
the id itself unless start_message_id_inclusive=True, as with Apache Pulsar), seeking to
MessageId.earliest replays everything, and seeking to a publish timestamp redelivers exactly
the messages published at or after it."""

import time

import pulsar
from pulsar import MessageId

from conftest import assert_no_more, receive_n, wait_for


def produce(prod, n, prefix):
    sent, ids = [], []
    for i in range(n):
        p = f"{prefix}-{i}".encode()
        ids.append(prod.send(p))
        sent.append(p)
    return sent, ids


def test_seek_by_message_id(client, topic):
    cons = client.subscribe(topic, "seek-id", consumer_type=pulsar.ConsumerType.Exclusive)
    prod = client.create_producer(topic)
    sent, ids = produce(prod, 10, "s")
    assert [m.data() for m in receive_n(cons, 10, ack=True)] == sent

    cons.seek(ids[3])
    again = receive_n(cons, 6, ack=True)
    assert [m.data() for m in again] == sent[4:], "seek(id) did not restart right after that message"
    assert_no_more(cons, 1000)

    cons.seek(MessageId.earliest)
    assert [m.data() for m in receive_n(cons, 10, ack=True)] == sent
    assert_no_more(cons, 1000)


def test_seek_by_message_id_inclusive(client, topic):
    cons = client.subscribe(topic, "seek-incl", consumer_type=pulsar.ConsumerType.Exclusive,
                            start_message_id_inclusive=True)
    prod = client.create_producer(topic)
    sent, ids = produce(prod, 10, "s")
    assert [m.data() for m in receive_n(cons, 10, ack=True)] == sent
    cons.seek(ids[3])
    again = receive_n(cons, 7, ack=True)
    assert [m.data() for m in again] == sent[3:], "broker did not reset the cursor to the id itself"
    assert_no_more(cons, 1000)


def test_seek_persists_for_new_consumer(client, topic):
    cons = client.subscribe(topic, "seek-persist")
    prod = client.create_producer(topic)
    sent, ids = produce(prod, 6, "p")
    receive_n(cons, 6, ack=True)
    cons.seek(ids[2])
    cons.close()
    # A new consumer has no client-side start id: it sees the broker's reset position (inclusive).
    cons = client.subscribe(topic, "seek-persist")
    assert [m.data() for m in receive_n(cons, 4, ack=True)] == sent[2:]


def test_seek_by_timestamp(client, topic):
    cons = client.subscribe(topic, "seek-ts", consumer_type=pulsar.ConsumerType.Exclusive)
    prod = client.create_producer(topic)
    early, _ = produce(prod, 5, "early")
    got_early = receive_n(cons, 5, ack=True)
    assert [m.data() for m in got_early] == early
    last_early_ts = got_early[-1].publish_timestamp()

    # Wait (bounded, polled) until the clock is strictly past the last early publish time.
    wait_for(lambda: int(time.time() * 1000) > last_early_ts + 2, 5, "clock to advance")
    boundary = int(time.time() * 1000)
    late, _ = produce(prod, 5, "late")
    got_late = receive_n(cons, 5, ack=True)
    assert [m.data() for m in got_late] == late
    assert all(m.publish_timestamp() >= boundary for m in got_late)

    cons.seek(boundary)
    again = receive_n(cons, 5, ack=True)
    assert [m.data() for m in again] == late, "seek(timestamp) did not land on the first later message"
    assert_no_more(cons, 1000)

    cons.seek(0)  # before everything
    assert [m.data() for m in receive_n(cons, 10, ack=True)] == early + late
