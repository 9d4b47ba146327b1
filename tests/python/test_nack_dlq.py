"""Negative acknowledgement and the client-side dead-letter policy.

A negatively acked message comes back after negative_ack_redelivery_delay_ms with a
redelivery_count that grows by one each time (the broker counts redeliveries); with a
ConsumerDeadLetterPolicy on a Shared subscription, a message nacked past
max_redeliver_count is published to the dead-letter topic and not delivered again.
"""

import time

import pulsar

from conftest import assert_no_more, receive_n


def test_negative_ack_redelivery_count_increases(client, topic):
    cons = client.subscribe(topic, "nack", consumer_type=pulsar.ConsumerType.Shared,
                            negative_ack_redelivery_delay_ms=200)
    prod = client.create_producer(topic)
    prod.send(b"retry-me")
    prod.send(b"fine")

    counts = []
    for _ in range(3):
        deadline = time.monotonic() + 15
        msg = None
        while time.monotonic() < deadline:
            m = receive_n(cons, 1, timeout_s=1)
            if not m:
                continue
            if m[0].data() == b"fine":
                cons.acknowledge(m[0])
                continue
            msg = m[0]
            break
        assert msg is not None, f"nacked message not redelivered (counts so far {counts})"
        counts.append(msg.redelivery_count())
        cons.negative_acknowledge(msg)
    assert counts == [0, 1, 2], f"redelivery_count sequence {counts}"

    last = receive_n(cons, 1, timeout_s=15)
    assert last and last[0].data() == b"retry-me"
    assert last[0].redelivery_count() == 3
    cons.acknowledge(last[0])
    assert_no_more(cons, 1000)


def test_dead_letter_policy_moves_message_to_dlq(client, topic):
    dlq = topic + "-DLQ"
    dlq_cons = client.subscribe(dlq, "dlq-watch", initial_position=pulsar.InitialPosition.Earliest)
    cons = client.subscribe(
        topic, "dlq-sub",
        consumer_type=pulsar.ConsumerType.Shared,
        negative_ack_redelivery_delay_ms=200,
        dead_letter_policy=pulsar.ConsumerDeadLetterPolicy(max_redeliver_count=2,
                                                           dead_letter_topic=dlq),
    )
    prod = client.create_producer(topic)
    prod.send(b"poison", properties={"kind": "poison"})
    prod.send(b"good")

    deliveries = []
    good_seen = False
    deadline = time.monotonic() + 30
    dead = None
    while time.monotonic() < deadline and len(deliveries) < 10:
        got = receive_n(cons, 1, timeout_s=0.5)
        if got:
            m = got[0]
            if m.data() == b"good":
                good_seen = True
                cons.acknowledge(m)
            else:
                deliveries.append(m.redelivery_count())
                cons.negative_acknowledge(m)
        dl = receive_n(dlq_cons, 1, timeout_s=0.2)
        if dl:
            dead = dl[0]
            break
    assert good_seen, "the good message was not delivered"
    assert dead is not None, f"poison message never reached the DLQ; deliveries={deliveries}"
    assert dead.data() == b"poison"
    assert dead.properties().get("kind") == "poison"
    dlq_cons.acknowledge(dead)
    assert deliveries == [0, 1, 2], f"redelivery counts before dead-lettering: {deliveries}"
    # Dead-lettered means acked on the original subscription: never delivered again.
    assert_no_more(cons, 1500)
