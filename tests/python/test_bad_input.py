"""Malformed and hostile Pulsar-protocol input never takes the broker down.

Hand-built frames over a raw socket: garbage bytes, truncated frames, oversized frame
headers (rejected without allocating the claimed size), commands before CONNECT, a SEND with
a bad checksum (rejected and NOT stored), unknown producer/consumer ids, a duplicate
producer id, and unknown command types. The broker answers with an error or closes that one
connection; afterwards it still serves a normal pulsar-client produce/consume round-trip.
"""

import random
import struct
import uuid

import pulsar
import pytest

import pulsar_wire as w
from conftest import assert_no_more, make_client, receive_n, roundtrip

REJECTED = ("closed", w.ERROR)


def show(kind, sub):
    """'closed' / 'timeout' / 'ERROR {1=.., 2=..}' for assertion messages."""
    if isinstance(kind, str):
        return kind
    return f"{w.TYPE_NAMES.get(kind, kind)} {w.describe(kind, sub)}"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def unique_topic():
    return f"persistent://public/default/raw-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def raw(standalone):
    conn = w.RawConn(standalone.port)
    yield conn
    conn.close()


@pytest.fixture(autouse=True)
def broker_still_serves(standalone):
    """After every test here: the process is alive and a normal client round-trip works."""
    yield
    assert standalone.running(), "broker process died\n" + standalone.log_tail()
    roundtrip(standalone.service_url)


def open_producer(conn, topic, producer_id=1, request_id=1):
    conn.send(w.cmd_lookup(topic, request_id + 1000))
    conn.expect(w.LOOKUP_RESPONSE, timeout=10)
    conn.send(w.cmd_producer(topic, producer_id, request_id))
    ok = conn.expect(w.PRODUCER_SUCCESS, timeout=10)
    assert w.first(ok, 1) == request_id
    return w.first(ok, 2).decode()


def raw_send(conn, producer_id, producer_name, seq, payload, checksum=None):
    conn.send_raw(w.payload_frame(
        w.cmd_send(producer_id, seq), w.message_metadata(producer_name, seq), payload,
        checksum=checksum))


# ----------------------------------------------------------------- controls

def test_control_handshake_and_ping(raw):
    connected = raw.handshake()
    assert w.first(connected, 1), "CONNECTED without server_version"
    raw.send(w.cmd_ping())
    raw.expect(w.PONG)


def test_control_raw_send_is_stored(standalone, raw):
    """Proves the hand-built SEND framing and crc32c are right (basis for the checksum test)."""
    topic = unique_topic()
    raw.handshake()
    name = open_producer(raw, topic)
    raw_send(raw, 1, name, 0, b"raw-good")
    receipt = raw.expect(w.SEND_RECEIPT, timeout=10)
    assert w.first(receipt, 2) == 0
    c = make_client(standalone.service_url)
    try:
        cons = c.subscribe(topic, "s", initial_position=pulsar.InitialPosition.Earliest)
        assert [m.data() for m in receive_n(cons, 1, ack=True)] == [b"raw-good"]
    finally:
        c.close()


# ----------------------------------------------------------------- garbage and framing

def test_garbage_bytes(raw):
    rnd = random.Random(1234)
    junk = bytes(rnd.randrange(256) for _ in range(252))
    # A complete frame (totalSize matches) whose commandSize is nonsense.
    raw.send_raw(struct.pack(">II", 252, 0xFFFF0000) + junk[4:])
    kind, sub = raw.outcome(timeout=10)
    assert kind in REJECTED, f"garbage frame: expected close or ERROR, got {show(kind, sub)}"


def test_garbage_protobuf(raw):
    raw.handshake()
    bogus = b"\xff\xff\xff\xff\x0f" + b"\x07" * 20  # invalid tag / wire type 7
    raw.send_raw(w.simple_frame(bogus))
    kind, sub = raw.outcome(timeout=10)
    assert kind in REJECTED, f"unparsable BaseCommand: expected close or ERROR, got {show(kind, sub)}"


def test_random_bytes_stream(standalone):
    rnd = random.Random(99)
    for _ in range(5):
        with w.RawConn(standalone.port) as conn:
            try:
                conn.send_raw(bytes(rnd.randrange(256) for _ in range(4096)))
            except w.Closed:
                continue
            kind, _ = conn.outcome(timeout=5)
            assert kind in REJECTED + ("timeout",)


def test_truncated_frame_then_close(standalone):
    for cut in (1, 3, 6, 20):
        with w.RawConn(standalone.port) as conn:
            frame = w.simple_frame(w.cmd_connect())
            conn.send_raw(frame[:cut])
    with w.RawConn(standalone.port) as conn:
        conn.handshake()
        frame = w.simple_frame(w.cmd_ping())
        conn.send_raw(frame[:len(frame) - 2])


@pytest.mark.parametrize("total", [5 * 1024 * 1024 + 64 * 1024, 64 * 1024 * 1024, 0x7FFFFFFF,
                                   0xFFFFFFFF])
def test_oversized_frame_rejected_without_allocation(standalone, total):
    before = rss_kib(standalone.proc.pid)
    with w.RawConn(standalone.port) as conn:
        conn.handshake()
        conn.send_raw(struct.pack(">II", total, 16))  # header only; body never comes
        kind, sub = conn.outcome(timeout=10)
        assert kind in REJECTED, (
            f"frame of {total} bytes announced: expected close or ERROR, got {show(kind, sub)} "
            "(is the broker waiting to read it?)")
    grown_mib = (rss_kib(standalone.proc.pid) - before) / 1024
    assert grown_mib < 64, f"RSS grew by {grown_mib:.0f} MiB after an announced {total}-byte frame"


def test_oversized_frame_before_connect(raw):
    raw.send_raw(struct.pack(">II", 0xFFFFFFF0, 0xFFFFFFEC))
    kind, sub = raw.outcome(timeout=10)
    assert kind in REJECTED, f"got {show(kind, sub)}"


def test_zero_and_inconsistent_sizes(standalone):
    for header in (struct.pack(">II", 4, 0), struct.pack(">II", 4, 100), struct.pack(">I", 0)):
        with w.RawConn(standalone.port) as conn:
            conn.send_raw(header)
            kind, sub = conn.outcome(timeout=10)
            assert kind in REJECTED, (
                f"frame header {header.hex()} (too small to hold a command): expected close or "
                f"ERROR, got {show(kind, sub)}")


# ----------------------------------------------------------------- protocol state

def test_command_before_connect(raw):
    raw.send(w.cmd_producer(unique_topic(), 1, 1))
    kind, sub = raw.outcome(timeout=10)
    assert kind in REJECTED, f"PRODUCER before CONNECT: expected close or ERROR, got {show(kind, sub)}"


def test_send_before_connect(raw):
    raw.send_raw(w.payload_frame(w.cmd_send(1, 0), w.message_metadata("x", 0), b"nope"))
    kind, sub = raw.outcome(timeout=10)
    assert kind in REJECTED + (w.SEND_ERROR,), f"SEND before CONNECT: got {show(kind, sub)}"


def test_second_connect(raw):
    raw.handshake()
    raw.send(w.cmd_connect())
    kind, sub = raw.outcome(timeout=5)
    # Pulsar rejects a second CONNECT; accept an error, a close, or (lenient) a new CONNECTED.
    assert kind in REJECTED + (w.CONNECTED,), f"second CONNECT: got {show(kind, sub)}"


def test_bad_checksum_send_rejected_and_not_stored(standalone, raw):
    topic = unique_topic()
    raw.handshake()
    name = open_producer(raw, topic)
    raw_send(raw, 1, name, 0, b"good-before")
    assert w.first(raw.expect(w.SEND_RECEIPT, timeout=10), 2) == 0

    meta = w.message_metadata(name, 1)
    real = w.crc32c(struct.pack(">I", len(meta)) + meta + b"corrupted")
    raw.send_raw(w.payload_frame(w.cmd_send(1, 1), meta, b"corrupted", checksum=real ^ 0xDEADBEEF))
    kind, sub = raw.outcome(timeout=10)
    if kind == w.SEND_ERROR:
        assert w.first(sub, 2) == 1, f"SEND_ERROR for the wrong sequence: {w.describe(kind, sub)}"
        assert w.first(sub, 3) == w.CHECKSUM_ERROR, f"SEND_ERROR code {w.describe(kind, sub)}"
    else:
        assert kind in REJECTED, f"bad checksum: expected SEND_ERROR/close, got {show(kind, sub)}"

    c = make_client(standalone.service_url)
    try:
        cons = c.subscribe(topic, "check", initial_position=pulsar.InitialPosition.Earliest)
        got = [m.data() for m in receive_n(cons, 1, ack=True)]
        assert got == [b"good-before"]
        assert_no_more(cons, 1500)  # the corrupted message must not have been stored
    finally:
        c.close()


def test_send_unknown_producer_id(raw):
    raw.handshake()
    raw_send(raw, 424242, "ghost", 0, b"nobody-owns-me")
    kind, sub = raw.outcome(timeout=5)
    assert kind != w.SEND_RECEIPT, "SEND on an unknown producer id was acknowledged"
    assert kind in REJECTED + (w.SEND_ERROR, "timeout"), f"got {show(kind, sub)}"


def test_flow_and_ack_unknown_consumer_id(raw):
    raw.handshake()
    raw.send(w.cmd_flow(777, 1000))
    raw.send(w.cmd_ack(777, 1, 1))
    raw.send(w.cmd_ack(778, 1, 1, ack_type=1))
    kind, sub = raw.outcome(timeout=2)
    assert kind in REJECTED + ("timeout",), f"FLOW/ACK unknown consumer: got {show(kind, sub)}"
    if kind == "timeout":
        raw.send(w.cmd_ping())
        raw.expect(w.PONG, skip=(w.ERROR,))


def test_duplicate_producer_id(raw):
    topic = unique_topic()
    raw.handshake()
    name = open_producer(raw, topic, producer_id=1, request_id=1)
    raw.send(w.cmd_producer(unique_topic(), 1, 2))
    kind, sub = raw.outcome(timeout=10)
    if kind == w.PRODUCER_SUCCESS:
        # Pulsar answers idempotently with the existing producer; it must not be a new one.
        assert w.first(sub, 2).decode() == name, f"duplicate id created a second producer {sub}"
    else:
        assert kind in REJECTED, f"duplicate producer id: got {show(kind, sub)}"
    if kind != "closed":
        raw_send(raw, 1, name, 0, b"still-works")
        assert w.first(raw.expect(w.SEND_RECEIPT, timeout=10, skip=(w.ERROR,)), 2) == 0


@pytest.mark.parametrize("cmd_type", [999, 1, 0, 69, 120])
def test_unknown_command_type(raw, cmd_type):
    raw.handshake()
    raw.send(w.f_varint(1, cmd_type))
    kind, sub = raw.outcome(timeout=3)
    assert kind in REJECTED + ("timeout",), f"unknown type {cmd_type}: got {show(kind, sub)}"
    if kind == "timeout":
        raw.send(w.cmd_ping())
        raw.expect(w.PONG, skip=(w.ERROR,))


def test_type_without_its_command(raw):
    raw.handshake()
    raw.send(w.base_command(w.SEND))  # type=SEND but no `send` field
    raw.send(w.base_command(w.PRODUCER))
    kind, sub = raw.outcome(timeout=3)
    assert kind in REJECTED + ("timeout",), f"got {show(kind, sub)}"


def test_many_connections_opened_and_dropped(standalone):
    rnd = random.Random(7)
    for _ in range(50):
        conn = w.RawConn(standalone.port)
        if rnd.random() < 0.5:
            conn.send_raw(w.simple_frame(w.cmd_connect()))
        conn.close()
