"""Throughput measurement (not a correctness test; excluded by default, run with `-m perf`).

Publishes 1 KiB messages with batching on through send_async, then consumes them all, and
reports the publish rate and the catch-up consume rate (backlog read after publishing) in msgs/s and MiB/s for docs/performance.md. Bounded by
MAGNETAR_PERF_MESSAGES (default 50,000) and MAGNETAR_PERF_SECONDS (default 60) per phase.
"""

import json
import os
import threading
import time

import pulsar
import pytest

from conftest import make_client

pytestmark = pytest.mark.perf

N = int(os.environ.get("MAGNETAR_PERF_MESSAGES", "50000"))
MAX_S = float(os.environ.get("MAGNETAR_PERF_SECONDS", "60"))
SIZE = 1024


@pytest.mark.timeout(600)
@pytest.mark.parametrize("compression", [pulsar.CompressionType.NONE, pulsar.CompressionType.LZ4],
                         ids=["none", "lz4"])
def test_throughput_batched_1kib(standalone, topic, compression, record_property, capsys):
    client = make_client(standalone.service_url, io_threads=1,
                         logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
    try:
        # The subscription holds the backlog; its consumer is closed so consumption is timed
        # separately afterwards as a catch-up read.
        client.subscribe(topic, "perf").close()
        prod = client.create_producer(
            topic, batching_enabled=True, batching_max_messages=1000,
            batching_max_allowed_size_in_bytes=128 * 1024, batching_max_publish_delay_ms=1,
            block_if_queue_full=True, max_pending_messages=10_000, compression_type=compression,
            send_timeout_millis=60_000)
        payload = os.urandom(SIZE // 2).hex().encode()  # 1 KiB, mildly compressible
        lock = threading.Lock()
        done = [0, 0]  # ok, failed
        all_done = threading.Event()

        def cb(res, _msg_id):
            with lock:
                done[0 if res == pulsar.Result.Ok else 1] += 1
                if done[0] + done[1] == sent_total[0] and stop_sending[0]:
                    all_done.set()

        sent_total = [0]
        stop_sending = [False]
        t0 = time.monotonic()
        while sent_total[0] < N and time.monotonic() - t0 < MAX_S:
            with lock:
                sent_total[0] += 1
            prod.send_async(payload, cb)
        with lock:
            stop_sending[0] = True
            if done[0] + done[1] == sent_total[0]:
                all_done.set()
        prod.flush()
        assert all_done.wait(timeout=MAX_S + 60), f"only {done} of {sent_total[0]} sends completed"
        pub_s = time.monotonic() - t0
        assert done[1] == 0, f"{done[1]} sends failed"

        cons = client.subscribe(topic, "perf", receiver_queue_size=5000)
        t1 = time.monotonic()
        received = 0
        while received < done[0] and time.monotonic() - t1 < MAX_S:
            try:
                m = cons.receive(timeout_millis=1000)
            except pulsar.Timeout:
                continue
            cons.acknowledge(m)
            received += 1
        con_s = time.monotonic() - t1
    finally:
        client.close()

    result = {
        "compression": str(compression),
        "message_bytes": SIZE,
        "published": done[0],
        "publish_msgs_per_s": round(done[0] / pub_s),
        "publish_mib_per_s": round(done[0] * SIZE / pub_s / 2**20, 2),
        "consumed": received,
        "consume_msgs_per_s": round(received / con_s),
        "consume_mib_per_s": round(received * SIZE / con_s / 2**20, 2),
    }
    for k, v in result.items():
        record_property(k, v)
    with capsys.disabled():
        print("\nTHROUGHPUT " + json.dumps(result))
    assert received == done[0], f"consumed {received}/{done[0]}"
