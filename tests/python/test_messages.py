"""Message metadata round-trips and acknowledgement semantics.

partition_key, ordering_key, properties, event_timestamp and producer name survive the
broker unchanged; individually acked messages are never redelivered while unacked ones come
back after the consumer reconnects; a cumulative ack covers every earlier message.
"""

import time

import pulsar

from conftest import assert_no_more, receive_n


def test_key_properties_event_time_roundtrip(client, topic):
    cons = client.subscribe(topic, "meta")
    prod = client.create_producer(topic, producer_name=f"prod-{topic[-8:]}")
    before = int(time.time() * 1000)
    props = {"a": "1", "unicode": "héllo ✓", "empty": ""}
    prod.send(b"with-meta", partition_key="pk-1", ordering_key="ok-1", properties=props,
              event_timestamp=1_700_000_000_123)
    prod.send(b"plain")
    after = int(time.time() * 1000)
    m1, m2 = receive_n(cons, 2, ack=True)
    assert m1.data() == b"with-meta"
    assert m1.partition_key() == "pk-1"
    assert m1.ordering_key() == "ok-1"
    assert m1.properties() == props
    assert m1.event_timestamp() == 1_700_000_000_123
    assert before - 1000 <= m1.publish_timestamp() <= after + 1000
    assert m1.producer_name() == f"prod-{topic[-8:]}"
    assert m1.redelivery_count() == 0
    assert m1.topic_name() == topic
    assert m2.data() == b"plain"
    assert m2.partition_key() == ""
    assert m2.properties() == {}
    assert m2.event_timestamp() == 0
    assert m1.message_id() < m2.message_id()


def test_empty_and_binary_payloads(client, topic):
    cons = client.subscribe(topic, "bin")
    prod = client.create_producer(topic)
    payloads = [b"", bytes(range(256)), b"\x00" * 1000, b"x" * (512 * 1024)]
    for p in payloads:
        prod.send(p)
    got = receive_n(cons, len(payloads), ack=True)
    assert [m.data() for m in got] == payloads


def test_individual_ack_unacked_redelivered_after_reconnect(client, topic):
    cons = client.subscribe(topic, "ind", consumer_type=pulsar.ConsumerType.Shared)
    prod = client.create_producer(topic)
    sent = [f"m-{i}".encode() for i in range(10)]
    for p in sent:
        prod.send(p)
    got = receive_n(cons, 10)
    assert [m.data() for m in got] == sent
    for m in got[::2]:
        cons.acknowledge(m)
    cons.close()  # closes without acking the odd ones

    cons = client.subscribe(topic, "ind", consumer_type=pulsar.ConsumerType.Shared)
    again = receive_n(cons, 5)
    assert [m.data() for m in again] == sent[1::2], "unacked not redelivered (or acked ones were)"
    assert_no_more(cons, 1000)
    for m in again:
        cons.acknowledge(m)
    cons.close()

    cons = client.subscribe(topic, "ind", consumer_type=pulsar.ConsumerType.Shared)
    assert_no_more(cons, 1000)


def test_nothing_acked_everything_redelivered(client, topic):
    cons = client.subscribe(topic, "none")
    prod = client.create_producer(topic)
    sent = [f"m-{i}".encode() for i in range(5)]
    for p in sent:
        prod.send(p)
    assert [m.data() for m in receive_n(cons, 5)] == sent
    cons.close()
    cons = client.subscribe(topic, "none")
    assert [m.data() for m in receive_n(cons, 5, ack=True)] == sent
    assert_no_more(cons, 500)


def test_cumulative_ack(client, topic):
    cons = client.subscribe(topic, "cum", consumer_type=pulsar.ConsumerType.Exclusive)
    prod = client.create_producer(topic)
    sent = [f"m-{i}".encode() for i in range(10)]
    for p in sent:
        prod.send(p)
    got = receive_n(cons, 10)
    assert [m.data() for m in got] == sent
    cons.acknowledge_cumulative(got[5])
    cons.close()

    cons = client.subscribe(topic, "cum", consumer_type=pulsar.ConsumerType.Exclusive)
    again = receive_n(cons, 4)
    assert [m.data() for m in again] == sent[6:]
    assert_no_more(cons, 1000)
    cons.acknowledge_cumulative(again[-1])
    cons.close()
    cons = client.subscribe(topic, "cum", consumer_type=pulsar.ConsumerType.Exclusive)
    assert_no_more(cons, 1000)


def test_redeliver_unacknowledged_messages_call(client, topic):
    """redeliver_unacknowledged_messages() on an Exclusive consumer rewinds to the first unacked.

    Nothing is acked before the call: the client groups acks for up to 100 ms, so an ack just
    before the call could legitimately race with it.
    """
    cons = client.subscribe(topic, "redeliver", consumer_type=pulsar.ConsumerType.Exclusive)
    prod = client.create_producer(topic)
    sent = [f"m-{i}".encode() for i in range(5)]
    for p in sent:
        prod.send(p)
    first = receive_n(cons, 5)
    assert [m.data() for m in first] == sent
    cons.redeliver_unacknowledged_messages()
    again = receive_n(cons, 5, ack=True)
    assert [m.data() for m in again] == sent
    assert_no_more(cons, 1000)


def test_subscription_initial_position(client, topic):
    prod = client.create_producer(topic)
    prod.send(b"old")
    latest = client.subscribe(topic, "latest", initial_position=pulsar.InitialPosition.Latest)
    earliest = client.subscribe(topic, "earliest", initial_position=pulsar.InitialPosition.Earliest)
    prod.send(b"new")
    assert [m.data() for m in receive_n(latest, 1, ack=True)] == [b"new"]
    assert_no_more(latest, 500)
    assert [m.data() for m in receive_n(earliest, 2, ack=True)] == [b"old", b"new"]
