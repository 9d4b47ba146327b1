"""Batched and compressed publishing round-trips: a producer with batching enabled and
LZ4 or ZSTD compression publishes 1,000 messages; a consumer gets every one, intact and in
order, and the message ids show that messages really were batched (batch_index >= 0)."""

import threading

import pulsar
import pytest

from conftest import assert_no_more, receive_n, wait_for

N = 1000


@pytest.mark.parametrize("compression", [
    pulsar.CompressionType.LZ4,
    pulsar.CompressionType.ZSTD,
    pulsar.CompressionType.ZLib,
    pulsar.CompressionType.SNAPPY,
    pulsar.CompressionType.NONE,
], ids=["lz4", "zstd", "zlib", "snappy", "none"])
def test_batched_compressed_roundtrip(client, topic, compression):
    cons = client.subscribe(topic, "batch", receiver_queue_size=1000)
    prod = client.create_producer(
        topic,
        batching_enabled=True,
        batching_max_messages=100,
        batching_max_publish_delay_ms=5,
        compression_type=compression,
        block_if_queue_full=True,
    )
    # Compressible but distinct payloads.
    sent = [(f"message-{i:05d}-" + "abcdefgh" * 16).encode() for i in range(N)]
    results = [None] * N
    done = threading.Semaphore(0)

    def cb_for(i):
        def cb(res, msg_id):
            results[i] = (res, msg_id)
            done.release()
        return cb

    for i, p in enumerate(sent):
        prod.send_async(p, cb_for(i), properties={"i": str(i)})
    prod.flush()
    wait_for(lambda: all(r is not None for r in results), 30, "all send callbacks")
    bad = [(i, r[0]) for i, r in enumerate(results) if r[0] != pulsar.Result.Ok]
    assert not bad, f"failed sends: {bad[:5]}"
    ids = [r[1] for r in results]
    assert any(mid.batch_index() >= 0 for mid in ids), "no message id carries a batch index"

    got = receive_n(cons, N, timeout_s=60, ack=True)
    assert len(got) == N, f"received {len(got)}/{N}"
    assert [m.data() for m in got] == sent
    assert [m.properties()["i"] for m in got] == [str(i) for i in range(N)]
    assert [m.message_id() for m in got] == ids, "received ids differ from send receipts"
    assert_no_more(cons, 500)
    prod.close()
    cons.close()


def test_batched_partial_ack_redelivers_unacked(client, topic):
    """Acking half of a batch individually, then reconnecting: every unacked message returns.

    (Whether the acked half of the batch is filtered depends on batch-index acks, as in Pulsar;
    only "no unacked message is lost" is asserted.)
    """
    prod = client.create_producer(topic, batching_enabled=True, batching_max_messages=10,
                                  batching_max_publish_delay_ms=50)
    cons = client.subscribe(topic, "partial", batch_index_ack_enabled=True)
    sent = [f"b-{i}".encode() for i in range(10)]
    for p in sent:
        prod.send_async(p, lambda res, mid: None)
    prod.flush()
    got = receive_n(cons, 10)
    assert [m.data() for m in got] == sent
    for m in got[::2]:
        cons.acknowledge(m)
    cons.close()
    cons = client.subscribe(topic, "partial", batch_index_ack_enabled=True)
    again = [m.data() for m in receive_n(cons, 10, timeout_s=5, ack=True)]
    assert set(sent[1::2]) <= set(again), f"unacked messages lost: got {again}"
    assert set(again) <= set(sent)
