"""Pipelined publishing: 10,000 small messages sent with send_async (many in flight, no
batching) are all acknowledged with strictly increasing message ids in send order, and a
consumer receives all of them exactly once, in order."""

import threading

import pulsar
import pytest

from conftest import assert_no_more, receive_n, wait_for

N = 10_000


@pytest.mark.timeout(300)
def test_send_async_pipelining_10k(client, topic):
    cons = client.subscribe(topic, "pipe", receiver_queue_size=1000)
    prod = client.create_producer(topic, batching_enabled=False, block_if_queue_full=True,
                                  max_pending_messages=1000, send_timeout_millis=60_000)
    results = [None] * N
    lock = threading.Lock()
    order = []

    def cb_for(i):
        def cb(res, msg_id):
            with lock:
                results[i] = (res, msg_id)
                order.append(i)
        return cb

    sent = [f"{i:06d}".encode() for i in range(N)]
    for i, p in enumerate(sent):
        prod.send_async(p, cb_for(i))
    prod.flush()
    wait_for(lambda: len(order) == N, 60, f"{N} send callbacks")

    bad = [(i, r[0]) for i, r in enumerate(results) if r[0] != pulsar.Result.Ok]
    assert not bad, f"{len(bad)} failed sends, first: {bad[:5]}"
    assert order == sorted(order), "send callbacks completed out of order"
    ids = [r[1] for r in results]
    out_of_order = [i for i in range(1, N) if not ids[i - 1] < ids[i]]
    assert not out_of_order, f"message ids not increasing at {out_of_order[:5]}"

    got = receive_n(cons, N, timeout_s=120, ack=True)
    assert len(got) == N, f"received {len(got)}/{N}"
    payloads = [m.data() for m in got]
    if payloads != sent:
        first_bad = next(i for i, (a, b) in enumerate(zip(payloads, sent)) if a != b)
        pytest.fail(f"out of order/corrupt at {first_bad}: got {payloads[first_bad]!r} want {sent[first_bad]!r}")
    assert [m.message_id() for m in got] == ids
    assert_no_more(cons, 500)
