"""Features that ride on more of the protocol: multi-topic and regex subscriptions (lookup
per topic, GET_TOPICS_OF_NAMESPACE), chunked messages larger than the max message size
(reassembled by the client; the broker stores and delivers every chunk in order), delayed
delivery on Shared subscriptions, and typed producers/consumers with String and JSON schemas."""

import re
import time
import uuid
from datetime import timedelta

import pulsar
import pytest
from pulsar.schema import JsonSchema, Record, String, Integer, StringSchema

from conftest import assert_no_more, receive_n


def test_subscribe_to_topic_list(client):
    base = f"persistent://public/default/multi-{uuid.uuid4().hex[:8]}"
    topics = [f"{base}-a", f"{base}-b", f"{base}-c"]
    cons = client.subscribe(topics, "multi", initial_position=pulsar.InitialPosition.Earliest)
    sent = set()
    for t in topics:
        p = client.create_producer(t)
        for i in range(3):
            payload = f"{t[-1]}-{i}".encode()
            p.send(payload)
            sent.add(payload)
        p.close()
    got = receive_n(cons, len(sent), ack=True)
    assert {m.data() for m in got} == sent
    assert {m.topic_name() for m in got} == set(topics)


def test_regex_subscription(client):
    prefix = f"rx{uuid.uuid4().hex[:8]}"
    topics = [f"persistent://public/default/{prefix}-{i}" for i in range(2)]
    for t in topics:  # topics must exist before the pattern is resolved
        client.create_producer(t).close()
    other = client.create_producer(f"persistent://public/default/not-{prefix}")
    cons = client.subscribe(re.compile(f"persistent://public/default/{prefix}-.*"), "rx",
                            initial_position=pulsar.InitialPosition.Earliest)
    for i, t in enumerate(topics):
        p = client.create_producer(t)
        p.send(f"m{i}".encode())
        p.close()
    other.send(b"must-not-match")
    got = receive_n(cons, 2, ack=True)
    assert sorted(m.data() for m in got) == [b"m0", b"m1"]
    assert_no_more(cons, 1000)


@pytest.mark.timeout(150)
def test_chunked_message_larger_than_max_size(client, topic):
    """The official C++ client cuts chunks of exactly max_message_size payload bytes, so each
    entry is slightly larger than 5 MiB (metadata); Pulsar accepts that (frame limit is
    max_message_size + 10 KiB padding)."""
    cons = client.subscribe(topic, "chunks")
    prod = client.create_producer(topic, chunking_enabled=True, batching_enabled=False,
                                  send_timeout_millis=20_000)
    big = bytes(range(256)) * (12 * 1024 * 4)  # 12 MiB > 5 MiB max message size
    results = []
    prod.send_async(big, lambda res, mid: results.append(res))
    prod.send_async(b"small-after", lambda res, mid: results.append(res))
    deadline = time.monotonic() + 45
    while len(results) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert results == [pulsar.Result.Ok] * 2, f"chunked send not acknowledged within 45 s: {results}"
    got = receive_n(cons, 2, timeout_s=60, ack=True)
    assert len(got) == 2, f"received {len(got)}/2"
    assert got[0].data() == big, "chunked message not reassembled intact"
    assert got[1].data() == b"small-after"


def test_delayed_delivery_shared(client, topic):
    cons = client.subscribe(topic, "delayed", consumer_type=pulsar.ConsumerType.Shared)
    prod = client.create_producer(topic)
    t0 = time.monotonic()
    prod.send(b"later", deliver_after=timedelta(seconds=2))
    prod.send(b"now")
    first = receive_n(cons, 1, timeout_s=5, ack=True)
    assert [m.data() for m in first] == [b"now"], "delayed message delivered before the immediate one"
    later = receive_n(cons, 1, timeout_s=15, ack=True)
    assert [m.data() for m in later] == [b"later"]
    assert time.monotonic() - t0 >= 1.9, "delayed message delivered too early"


class Reading(Record):
    sensor = String()
    value = Integer()


def test_string_schema_roundtrip(client, topic):
    cons = client.subscribe(topic, "str", schema=StringSchema())
    prod = client.create_producer(topic, schema=StringSchema())
    prod.send("héllo")
    got = receive_n(cons, 1, ack=True)
    assert got and got[0].value() == "héllo"


def test_json_schema_roundtrip(client, topic):
    cons = client.subscribe(topic, "json", schema=JsonSchema(Reading))
    prod = client.create_producer(topic, schema=JsonSchema(Reading))
    prod.send(Reading(sensor="t1", value=42))
    got = receive_n(cons, 1, ack=True)
    assert got, "no message"
    v = got[0].value()
    assert (v.sensor, v.value) == ("t1", 42)


def test_exclusive_producer_access_mode(client, topic):
    p1 = client.create_producer(topic, access_mode=pulsar.ProducerAccessMode.Exclusive)
    with pytest.raises((pulsar.ProducerBusy, pulsar.ProducerFenced)):
        client.create_producer(topic, access_mode=pulsar.ProducerAccessMode.Exclusive)
    with pytest.raises((pulsar.ProducerBusy, pulsar.ProducerFenced)):
        client.create_producer(topic)  # a shared producer is refused too while it exists
    p1.send(b"x")
    p1.close()
    client.create_producer(topic, access_mode=pulsar.ProducerAccessMode.Exclusive).close()
