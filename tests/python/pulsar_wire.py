"""Hand-built Pulsar binary-protocol frames for the raw-socket tests (test_bad_input.py).

Minimal protobuf (proto2) encoding/decoding written here on purpose: the bad-input tests
must be able to produce frames no real client would send. Field numbers follow
PulsarApi.proto (BaseCommand field N carries the command whose Type value is N).
"""

import socket
import struct
import time

# BaseCommand.Type values (== BaseCommand field numbers of the sub-command).
CONNECT = 2
CONNECTED = 3
SUBSCRIBE = 4
PRODUCER = 5
SEND = 6
SEND_RECEIPT = 7
SEND_ERROR = 8
MESSAGE = 9
ACK = 10
FLOW = 11
SUCCESS = 13
ERROR = 14
CLOSE_PRODUCER = 15
CLOSE_CONSUMER = 16
PRODUCER_SUCCESS = 17
PING = 18
PONG = 19
LOOKUP = 23
LOOKUP_RESPONSE = 24

TYPE_NAMES = {v: k for k, v in globals().items() if k.isupper() and isinstance(v, int)}

# ServerError values.
CHECKSUM_ERROR = 9
CONSUMER_BUSY = 5
PRODUCER_BUSY = 16

MAGIC_CRC32C = 0x0E01
MAX_FRAME = 5 * 1024 * 1024


# ---------------------------------------------------------------- protobuf encoding

def varint(n):
    if n < 0:
        n += 1 << 64  # proto2 int32/int64 negatives are 10-byte varints
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field, value):
    return varint(field << 3 | 0) + varint(int(value))


def f_bytes(field, value):
    if isinstance(value, str):
        value = value.encode()
    return varint(field << 3 | 2) + varint(len(value)) + value


def msg(*fields):
    return b"".join(fields)


def base_command(cmd_type, sub=None, field=None):
    """BaseCommand{type, <field>: sub}; field defaults to cmd_type (true for all commands)."""
    out = f_varint(1, cmd_type)
    if sub is not None:
        out += f_bytes(cmd_type if field is None else field, sub)
    return out


# ---------------------------------------------------------------- protobuf decoding

def read_varint(buf, pos):
    shift = 0
    result = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ValueError("varint too long")


def decode(buf):
    """{field_number: [values]}; varints as int, length-delimited as bytes."""
    out = {}
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = read_varint(buf, pos)
        elif wire == 2:
            ln, pos = read_varint(buf, pos)
            val = bytes(buf[pos:pos + ln])
            pos += ln
        elif wire == 1:
            val = bytes(buf[pos:pos + 8])
            pos += 8
        elif wire == 5:
            val = bytes(buf[pos:pos + 4])
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.setdefault(field, []).append(val)
    return out


def first(fields, n, default=None):
    return fields.get(n, [default])[0]


# ---------------------------------------------------------------- crc32c (Castagnoli)

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "crc32c self-check"


# ---------------------------------------------------------------- commands and frames

def cmd_connect(protocol_version=20, client_version="magnetar-raw-test"):
    return base_command(CONNECT, msg(f_bytes(1, client_version), f_varint(4, protocol_version)))


def cmd_ping():
    return base_command(PING, b"")


def cmd_pong():
    return base_command(PONG, b"")


def cmd_lookup(topic, request_id):
    return base_command(LOOKUP, msg(f_bytes(1, topic), f_varint(2, request_id)))


def cmd_producer(topic, producer_id, request_id, producer_name=None):
    body = msg(f_bytes(1, topic), f_varint(2, producer_id), f_varint(3, request_id))
    if producer_name is not None:
        body += f_bytes(4, producer_name)
    return base_command(PRODUCER, body)


def cmd_send(producer_id, sequence_id, num_messages=1):
    return base_command(
        SEND, msg(f_varint(1, producer_id), f_varint(2, sequence_id), f_varint(3, num_messages)))


def cmd_subscribe(topic, subscription, consumer_id, request_id, sub_type=0, initial_position=1):
    return base_command(SUBSCRIBE, msg(
        f_bytes(1, topic), f_bytes(2, subscription), f_varint(3, sub_type),
        f_varint(4, consumer_id), f_varint(5, request_id), f_varint(13, initial_position)))


def cmd_flow(consumer_id, permits):
    return base_command(FLOW, msg(f_varint(1, consumer_id), f_varint(2, permits)))


def cmd_ack(consumer_id, ledger_id, entry_id, ack_type=0):
    mid = msg(f_varint(1, ledger_id), f_varint(2, entry_id))
    return base_command(ACK, msg(f_varint(1, consumer_id), f_varint(2, ack_type), f_bytes(3, mid)))


def message_metadata(producer_name, sequence_id, publish_time_ms=None):
    if publish_time_ms is None:
        publish_time_ms = int(time.time() * 1000)
    return msg(f_bytes(1, producer_name), f_varint(2, sequence_id), f_varint(3, publish_time_ms))


def simple_frame(command):
    return struct.pack(">II", 4 + len(command), len(command)) + command


def payload_frame(command, metadata, payload, checksum=None):
    """[total][cmdSize][cmd][0x0e01][crc32c][metaSize][meta][payload]; checksum overrides the crc."""
    covered = struct.pack(">I", len(metadata)) + metadata + payload
    crc = crc32c(covered) if checksum is None else checksum
    rest = struct.pack(">HI", MAGIC_CRC32C, crc) + covered
    total = 4 + len(command) + len(rest)
    return struct.pack(">II", total, len(command)) + command + rest


# ---------------------------------------------------------------- connection

class Closed(Exception):
    """The broker closed (or reset) the connection."""


class RawConn:
    """A raw TCP connection speaking hand-made Pulsar frames."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = bytearray()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:  # reset/pipe: the broker already gave up on us
            raise Closed(str(e)) from e

    def send(self, command):
        self.send_raw(simple_frame(command))

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete frame within deadline ({len(self.buf)} bytes buffered)")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout as e:
                raise TimeoutError("no complete frame within deadline") from e
            except OSError as e:
                raise Closed(str(e)) from e
            if not chunk:
                raise Closed("EOF")
            self.buf += chunk

    def read_frame(self, timeout=5.0):
        """Next frame as (type, sub-command fields, raw frame). PINGs are answered and skipped.

        Raises Closed on EOF/reset and TimeoutError when nothing complete arrives in time.
        """
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            self._fill(4, deadline)
            (total,) = struct.unpack(">I", self.buf[:4])
            if total > MAX_FRAME + 64 * 1024:
                raise ValueError(f"broker sent an implausible frame size {total}")
            self._fill(4 + total, deadline)
            frame = bytes(self.buf[4:4 + total])
            del self.buf[:4 + total]
            (cmd_size,) = struct.unpack(">I", frame[:4])
            base = decode(frame[4:4 + cmd_size])
            cmd_type = first(base, 1)
            sub = decode(first(base, cmd_type, b"")) if cmd_type in base else {}
            if cmd_type == PING:
                self.send(cmd_pong())
                continue
            return cmd_type, sub, frame
        raise RuntimeError("too many PINGs")

    def expect(self, wanted, timeout=5.0, skip=()):
        """Read frames until one of type `wanted` (skipping types in `skip`); returns its fields."""
        deadline = time.monotonic() + timeout
        for _ in range(100):
            t, sub, _ = self.read_frame(timeout=max(0.01, deadline - time.monotonic()))
            if t == wanted:
                return sub
            if t not in skip:
                raise AssertionError(f"expected {TYPE_NAMES.get(wanted, wanted)}, got "
                                     f"{TYPE_NAMES.get(t, t)} {describe(t, sub)}")
        raise AssertionError("too many skipped frames")

    def handshake(self, protocol_version=20):
        self.send(cmd_connect(protocol_version))
        return self.expect(CONNECTED, timeout=10.0)

    def outcome(self, timeout=5.0):
        """What the broker does next: ('closed', None), ('timeout', None) or (type, fields)."""
        try:
            t, sub, _ = self.read_frame(timeout=timeout)
            return t, sub
        except Closed:
            return "closed", None
        except TimeoutError:
            return "timeout", None


def describe(cmd_type, sub):
    """Readable summary of a decoded sub-command for assertion messages."""
    if not sub:
        return "{}"
    parts = []
    for k, vs in sorted(sub.items()):
        for v in vs:
            if isinstance(v, bytes):
                try:
                    v = v.decode()
                except UnicodeDecodeError:
                    v = v.hex()
            parts.append(f"{k}={v}")
    return "{" + ", ".join(parts) + "}"
