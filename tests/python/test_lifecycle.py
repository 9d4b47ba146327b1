"""Message lifecycle with the official client (issue #8): deduplication survives restarts,
delayed messages are never early (nor much late, restarts included), TTL expires backlog,
backlog quotas block producers or evict backlog, and retention deletes consumed ledgers
while never deleting unacknowledged data.

The standalones here run with short lifecycle intervals and small ledgers, set through the
MAGNETAR_* environment overrides of the broker config.
"""

import datetime
import json
import os
import random
import re
import threading
import time
import uuid

import pulsar
import pytest

from conftest import (
    Standalone,
    assert_no_more,
    http_get,
    http_request,
    magnetar_bin,
    make_client,
    receive_n,
    wait_for,
)

LIFECYCLE_ENV = {
    "MAGNETAR_LIFECYCLE_CHECK_INTERVAL_MS": "200",
    "MAGNETAR_MESSAGE_EXPIRY_CHECK_INTERVAL_SECS": "1",
    "MAGNETAR_MIN_LEDGER_ROLLOVER_SECS": "0",
    "MAGNETAR_MAX_ENTRIES_PER_LEDGER": "10",
    "MAGNETAR_BACKLOG_QUOTA_HOLD_TIMEOUT_MS": "1000",
}


class LifecycleStandalone(Standalone):
    """A standalone started with `env` (default LIFECYCLE_ENV) on top of the test environment."""

    env = LIFECYCLE_ENV

    def start(self):
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            super().start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _launch(tmp_path_factory, name, env=None):
    root = tmp_path_factory.mktemp(name)
    server = LifecycleStandalone(magnetar_bin(), root / "data",
                                 bookies=os.environ.get("MAGNETAR_BOOKIES"))
    if env is not None:
        server.env = env
    server.start()
    return server


@pytest.fixture(scope="module")
def lc_server(tmp_path_factory):
    server = _launch(tmp_path_factory, "lifecycle")
    yield server
    server.stop()


@pytest.fixture
def lc_fresh(tmp_path_factory):
    # Normal ledger sizes: restarts, not rollovers, are under test here.
    env = {k: v for k, v in LIFECYCLE_ENV.items() if k != "MAGNETAR_MAX_ENTRIES_PER_LEDGER"}
    server = _launch(tmp_path_factory, "lifecycle-fresh", env)
    yield server
    if server.running():
        server.kill9()


def new_namespace(server, **policies):
    """A fresh namespace in tenant public with the given policies set through admin REST."""
    ns = f"lc-{uuid.uuid4().hex[:10]}"
    base = f"{server.http_url}/admin/v2/namespaces/public/{ns}"
    status, body = http_request("PUT", base)
    assert status in (200, 204), f"create namespace: {status} {body!r}"
    for path, value, query in policies.values():
        url = f"{base}/{path}" + (f"?{query}" if query else "")
        status, body = http_request("POST", url, body=json.dumps(value))
        assert status in (200, 204), f"set {path}: {status} {body!r}"
    return ns


def topic_in(ns):
    return f"persistent://public/{ns}/t-{uuid.uuid4().hex[:10]}"


def stats(server, topic):
    _, ns, name = topic.split("://", 1)[1].split("/")
    status, body = http_get(f"{server.http_url}/admin/v2/persistent/public/{ns}/{name}/stats")
    assert status == 200, f"stats: {status} {body!r}"
    return json.loads(body)


def internal_stats(server, topic):
    _, ns, name = topic.split("://", 1)[1].split("/")
    status, body = http_get(
        f"{server.http_url}/admin/v2/persistent/public/{ns}/{name}/internalStats")
    assert status == 200, f"internalStats: {status} {body!r}"
    return json.loads(body)


def now_ms():
    return int(time.time() * 1000)


# ---------------------------------------------------------------- deduplication


@pytest.mark.parametrize("how", ["graceful", "kill9"])
def test_dedup_resent_sequence_ids_across_restart_are_stored_once(lc_fresh, how):
    ns = new_namespace(lc_fresh, dedup=("deduplication", True, None))
    topic = topic_in(ns)
    client = make_client(lc_fresh.service_url)
    try:
        sub = client.subscribe(topic, "s", consumer_type=pulsar.ConsumerType.Shared)
        sub.close()
        prod = client.create_producer(topic, producer_name="dedup-producer")
        for i in range(10):
            prod.send(f"m-{i}".encode(), sequence_id=i)
        # In-session duplicates are acknowledged but not stored.
        for i in range(5, 10):
            prod.send(f"m-{i}".encode(), sequence_id=i)
        prod.close()
    finally:
        client.close()

    if how == "graceful":
        lc_fresh.restart()
    else:
        lc_fresh.kill9()
        lc_fresh.start()

    client = make_client(lc_fresh.service_url)
    try:
        prod = client.create_producer(topic, producer_name="dedup-producer")
        assert prod.last_sequence_id() == 9, "PRODUCER_SUCCESS carries the last sequence id"
        for i in range(5, 15):
            prod.send(f"m-{i}".encode(), sequence_id=i)
        cons = client.subscribe(topic, "s", consumer_type=pulsar.ConsumerType.Shared)
        got = [m.data().decode() for m in receive_n(cons, 15, timeout_s=20, ack=True)]
        assert sorted(got, key=lambda s: int(s[2:])) == [f"m-{i}" for i in range(15)]
        assert_no_more(cons, wait_ms=1000)
        st = stats(lc_fresh, topic)
        assert st["subscriptions"]["s"]["msgBacklog"] == 0
    finally:
        client.close()


def test_dedup_batched_resend_after_kill9_is_stored_once(lc_fresh):
    topic = f"persistent://public/default/dedup-batch-{uuid.uuid4().hex[:10]}"

    def send_groups(prod, ids):
        for start in range(ids.start, ids.stop, 10):
            for i in range(start, start + 10):
                prod.send_async(f"b-{i}".encode(), None, sequence_id=i)
            prod.flush()

    client = make_client(lc_fresh.service_url)
    try:
        client.subscribe(topic, "s").close()
        prod = client.create_producer(topic, producer_name="batcher", batching_enabled=True,
                                      batching_max_messages=10,
                                      batching_max_publish_delay_ms=50)
        send_groups(prod, range(0, 100))
    finally:
        client.close()
    lc_fresh.kill9()
    lc_fresh.start()
    client = make_client(lc_fresh.service_url)
    try:
        prod = client.create_producer(topic, producer_name="batcher", batching_enabled=True,
                                      batching_max_messages=10,
                                      batching_max_publish_delay_ms=50)
        assert prod.last_sequence_id() == 99
        send_groups(prod, range(50, 150))
        cons = client.subscribe(topic, "s")
        got = [m.data().decode() for m in receive_n(cons, 150, timeout_s=20, ack=True)]
        assert sorted(got, key=lambda s: int(s[2:])) == [f"b-{i}" for i in range(150)]
        assert_no_more(cons, wait_ms=1000)
    finally:
        client.close()


# ---------------------------------------------------------------- delayed delivery


def test_delayed_10k_messages_never_early_nor_late_across_restart(lc_fresh):
    """10,000 messages with random delays up to 5 s on a Shared subscription, with a
    graceful standalone restart while most of them are still waiting.

    Every message must arrive, none before its `deliver_at` (5 ms clock slack), and none
    more than 500 ms after it became deliverable. Lateness rule: a message becomes
    deliverable at max(deliver_at, stored_at), where `stored_at` is when its send was
    acknowledged (it cannot be delivered before the broker has it). The outage starts when
    the first consumer is closed, just before the broker is stopped; a message not
    received by then whose deliverable time was less than 500 ms before the outage, or
    during it, becomes deliverable at max(deliver_at, stored_at, ready), where `ready` is
    when the restarted standalone answered its health check and Pulsar port (it cannot be
    on time). A message deliverable earlier than that must have arrived before the outage
    (else it is late). The consumer
    subscribes again right at `ready` with a fresh client, so the official client's
    reconnect backoff (which can reach seconds) does not count as broker lateness; the
    broker must load the topic, rebuild the delayed index from the backlog and release
    everything already due within the 500 ms. Receive times are taken in a message
    listener, so they are not delayed by the test's own send loop.
    """
    topic = f"persistent://public/default/delayed-{uuid.uuid4().hex[:10]}"
    n = 10_000
    max_delay_ms = 5000
    bound_ms = 500
    received = {}
    due = {}
    stored_at = {}
    errors = []
    rnd = random.Random(8)

    def on_message(consumer, msg):
        received.setdefault(int(msg.data()), now_ms())
        consumer.acknowledge(msg)

    def subscribe(client):
        return client.subscribe(topic, "shared", consumer_type=pulsar.ConsumerType.Shared,
                                receiver_queue_size=1000, message_listener=on_message)

    client = make_client(lc_fresh.service_url)
    try:
        subscribe(client)
        prod = client.create_producer(topic, block_if_queue_full=True,
                                      max_pending_messages=2000)
        send_start = now_ms()

        def on_sent(i):
            def cb(res, _id):
                if res != pulsar.Result.Ok:
                    errors.append(res)
                stored_at[i] = now_ms()
            return cb

        for i in range(n):
            at = now_ms() + rnd.randint(0, max_delay_ms)
            due[i] = at
            prod.send_async(f"{i}".encode(), on_sent(i), deliver_at=at)
        prod.flush()
        sent_done = now_ms()
        assert not errors, f"send errors: {errors[:5]}"
        assert len(stored_at) == n
        # Consume for a while, then restart with most messages still delayed.
        time.sleep(0.5)
        before_restart = len(received)
    finally:
        down_at = now_ms()
        client.close()
    received_before = set(received)
    lc_fresh.restart()
    ready = now_ms()
    client = make_client(lc_fresh.service_url)
    try:
        subscribe(client)
        subscribed = now_ms()
        deadline = time.monotonic() + max_delay_ms / 1000 + 30
        while len(received) < n and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.close()

    print(f"sent in {sent_done - send_start} ms; {before_restart} received before the "
          f"restart; broker down {ready - down_at} ms; subscribed {subscribed - ready} ms "
          f"after ready")
    assert len(received) == n, f"only {len(received)} of {n} delayed messages arrived"
    early = [(i, due[i] - t) for i, t in received.items() if t < due[i] - 5]
    assert not early, f"delivered early (id, ms early): {early[:10]}"
    lateness = {}
    for i, t in received.items():
        deliverable = max(due[i], stored_at[i])
        if i not in received_before and deliverable >= down_at - bound_ms:
            deliverable = max(deliverable, ready)
        lateness[i] = t - deliverable
    worst = sorted(lateness.items(), key=lambda kv: -kv[1])
    print(f"max lateness {worst[0][1]} ms; p99 {sorted(lateness.values())[int(n * 0.99)]} ms")
    late = [(i, ms, due[i] - ready, received[i] - ready) for i, ms in worst if ms > bound_ms]
    assert not late, (f"{len(late)} delivered late (id, ms late, due and received relative "
                      f"to ready): {late[:10]}")


def test_delayed_index_over_memory_budget_loses_nothing(tmp_path_factory):
    env = {k: v for k, v in LIFECYCLE_ENV.items() if k != "MAGNETAR_MAX_ENTRIES_PER_LEDGER"}
    env["MAGNETAR_DELAYED_INDEX_MAX_ENTRIES"] = "50"
    server = _launch(tmp_path_factory, "lifecycle-budget", env)
    topic = f"persistent://public/default/delayed-budget-{uuid.uuid4().hex[:10]}"
    n = 400
    client = make_client(server.service_url)
    try:
        cons = client.subscribe(topic, "ks", consumer_type=pulsar.ConsumerType.KeyShared)
        prod = client.create_producer(topic)
        due = {}
        rnd = random.Random(4)
        for i in range(n):
            at = now_ms() + 500 + rnd.randint(0, 2500)
            due[i] = at
            prod.send_async(f"{i}".encode(), None, deliver_at=at, partition_key=f"k{i % 7}")
        prod.flush()
        sent_done = now_ms()
        received = {}
        deadline = time.monotonic() + 30
        while len(received) < n and time.monotonic() < deadline:
            try:
                m = cons.receive(timeout_millis=200)
            except pulsar.Timeout:
                continue
            received.setdefault(int(m.data()), now_ms())
            cons.acknowledge(m)
        assert len(received) == n, f"only {len(received)} of {n} arrived"
        early = [i for i, t in received.items() if t < due[i] - 5]
        assert not early, f"delivered early: {early[:10]}"
        late = [(i, t - max(due[i], sent_done)) for i, t in received.items()
                if t > max(due[i], sent_done) + 1000]
        assert not late, f"delivered late (id, ms): {late[:10]}"
    finally:
        client.close()
        server.stop()


def test_delayed_messages_on_exclusive_subscription_arrive_at_once(lc_server):
    topic = f"persistent://public/default/delayed-ex-{uuid.uuid4().hex[:10]}"
    client = make_client(lc_server.service_url)
    try:
        cons = client.subscribe(topic, "ex", consumer_type=pulsar.ConsumerType.Exclusive)
        prod = client.create_producer(topic)
        start = time.monotonic()
        prod.send(b"later", deliver_after=datetime.timedelta(seconds=30))
        msg = cons.receive(timeout_millis=5000)
        assert msg.data() == b"later"
        assert time.monotonic() - start < 5
    finally:
        client.close()


def test_delayed_delivery_policy_off_delivers_at_once(lc_server):
    ns = new_namespace(lc_server, delayed=("delayedDelivery", {"active": False}, None))
    topic = topic_in(ns)
    client = make_client(lc_server.service_url)
    try:
        cons = client.subscribe(topic, "sh", consumer_type=pulsar.ConsumerType.Shared)
        prod = client.create_producer(topic)
        start = time.monotonic()
        prod.send(b"not-delayed", deliver_after=datetime.timedelta(seconds=30))
        msg = cons.receive(timeout_millis=5000)
        assert msg.data() == b"not-delayed"
        assert time.monotonic() - start < 5
    finally:
        client.close()


# ---------------------------------------------------------------- TTL


def test_messages_past_ttl_expire_from_subscription(lc_server):
    ns = new_namespace(lc_server, ttl=("messageTTL", 1, None))
    topic = topic_in(ns)
    client = make_client(lc_server.service_url)
    try:
        client.subscribe(topic, "idle").close()
        prod = client.create_producer(topic)
        for i in range(20):
            prod.send(f"old-{i}".encode())
        assert stats(lc_server, topic)["subscriptions"]["idle"]["msgBacklog"] == 20
        wait_for(lambda: stats(lc_server, topic)["subscriptions"]["idle"]["msgBacklog"] == 0,
                 timeout_s=15, what="TTL to expire the backlog")
        prod.send(b"fresh")
        cons = client.subscribe(topic, "idle")
        msg = cons.receive(timeout_millis=5000)
        assert msg.data() == b"fresh", "only the message sent after expiry remains"
    finally:
        client.close()


def test_admin_expire_messages_counts_them_and_keeps_consumers(lc_server):
    """`expireMessages` acknowledges what is older than the given age through the same path
    as TTL: the backlog drops, stats count the expired messages, consumers stay."""
    topic = topic_in(new_namespace(lc_server))
    _, ns, name = topic.split("://", 1)[1].split("/")
    client = make_client(lc_server.service_url)
    try:
        cons = client.subscribe(topic, "s", receiver_queue_size=1)
        prod = client.create_producer(topic)
        for i in range(20):
            prod.send(f"e-{i}".encode())
        wait_for(lambda: stats(lc_server, topic)["subscriptions"]["s"]["msgBacklog"] == 20,
                 timeout_s=10, what="the backlog")
        status, body = http_request(
            "POST", f"{lc_server.http_url}/admin/v2/persistent/public/{ns}/{name}"
            "/subscription/s/expireMessages/0")
        assert status in (200, 204), f"expireMessages: {status} {body!r}"
        st = stats(lc_server, topic)
        sub = st["subscriptions"]["s"]
        assert sub["msgBacklog"] == 0, sub
        assert st["msgExpired"] == 20 and sub["totalMsgExpired"] == 20, st
        assert len(sub["consumers"]) == 1, "the consumer stays connected"
        prod.send(b"fresh")
        deadline = time.monotonic() + 10
        seen = []
        while time.monotonic() < deadline:
            m = cons.receive(timeout_millis=5000)
            cons.acknowledge(m)
            seen.append(m.data())
            if m.data() == b"fresh":
                break
        assert seen[-1] == b"fresh", seen
    finally:
        client.close()


# ---------------------------------------------------------------- backlog quotas


def test_backlog_quota_producer_exception_blocks_new_producers(lc_server):
    ns = new_namespace(lc_server)
    topic = topic_in(ns)
    client = make_client(lc_server.service_url)
    try:
        client.subscribe(topic, "slow").close()
        prod = client.create_producer(topic)
        for i in range(40):
            prod.send(b"x" * 100)
        # The backlog (~4 KiB) is now over a 1 KiB quota.
        quota = {"limitSize": 1024, "limitTime": -1, "policy": "producer_exception"}
        status, body = http_request(
            "POST",
            f"{lc_server.http_url}/admin/v2/namespaces/public/{ns}/backlogQuota"
            "?backlogQuotaType=destination_storage",
            body=json.dumps(quota))
        assert status in (200, 204), f"set quota: {status} {body!r}"
        with pytest.raises(pulsar.ProducerBlockedQuotaExceededException):
            client.create_producer(topic)
        # Draining the backlog lifts the block.
        cons = client.subscribe(topic, "slow")
        got = receive_n(cons, 40, timeout_s=20, ack=True)
        assert len(got) == 40

        def can_create():
            try:
                client.create_producer(topic).close()
                return True
            except pulsar.ProducerBlockedQuotaExceededException:
                return False
        wait_for(can_create, timeout_s=15, what="producer allowed again")
    finally:
        client.close()


def test_backlog_quota_hold_makes_producer_wait_then_fail(lc_server):
    ns = new_namespace(lc_server)
    topic = topic_in(ns)
    client = make_client(lc_server.service_url)
    try:
        client.subscribe(topic, "slow").close()
        prod = client.create_producer(topic)
        for i in range(40):
            prod.send(b"h" * 100)
        quota = {"limitSize": 1024, "limitTime": -1, "policy": "producer_request_hold"}
        status, body = http_request(
            "POST", f"{lc_server.http_url}/admin/v2/namespaces/public/{ns}/backlogQuota",
            body=json.dumps(quota))
        assert status in (200, 204), f"set quota: {status} {body!r}"
        start = time.monotonic()
        with pytest.raises(pulsar.ProducerBlockedQuotaExceededError):
            client.create_producer(topic)
        # The broker held the request for its hold timeout (1 s here) before refusing.
        assert time.monotonic() - start >= 0.8
    finally:
        client.close()


def test_backlog_quota_hold_does_not_block_the_connection(lc_server):
    """While a producer creation is held by producer_request_hold, other producers on the
    same connection (the client shares one per broker) keep sending without delay."""
    ns = new_namespace(lc_server)
    held_topic, other_topic = topic_in(ns), topic_in(ns)
    client = make_client(lc_server.service_url)
    try:
        client.subscribe(held_topic, "slow").close()
        prod = client.create_producer(held_topic)
        for _ in range(40):
            prod.send(b"h" * 100)
        other = client.create_producer(other_topic)  # no subscription: no backlog
        other.send(b"warm-up")
        quota = {"limitSize": 1024, "limitTime": -1, "policy": "producer_request_hold"}
        status, body = http_request(
            "POST", f"{lc_server.http_url}/admin/v2/namespaces/public/{ns}/backlogQuota",
            body=json.dumps(quota))
        assert status in (200, 204), f"set quota: {status} {body!r}"
        outcome = {}

        def create_held():
            start = time.monotonic()
            try:
                client.create_producer(held_topic)
                outcome["result"] = "created"
            except pulsar.ProducerBlockedQuotaExceededError:
                outcome["result"] = "blocked"
            outcome["seconds"] = time.monotonic() - start

        holder = threading.Thread(target=create_held)
        holder.start()
        worst, sends = 0.0, 0
        deadline = time.monotonic() + 10
        while holder.is_alive() and time.monotonic() < deadline:
            start = time.monotonic()
            other.send(b"while-held")
            worst = max(worst, time.monotonic() - start)
            sends += 1
        holder.join(timeout=10)
        assert outcome.get("result") == "blocked", outcome
        assert outcome["seconds"] >= 0.8, "the request was held for the hold timeout"
        assert sends >= 5, f"only {sends} sends completed during a {outcome['seconds']:.1f}s hold"
        assert worst < 0.4, f"a send on the same connection took {worst:.2f}s during the hold"
    finally:
        client.close()


def test_backlog_quota_by_age_blocks_producers(lc_server):
    ns = new_namespace(lc_server)
    topic = topic_in(ns)
    client = make_client(lc_server.service_url)
    try:
        client.subscribe(topic, "slow").close()
        prod = client.create_producer(topic)
        prod.send(b"aging")
        quota = {"limitSize": -1, "limitTime": 1, "policy": "producer_exception"}
        status, body = http_request(
            "POST", f"{lc_server.http_url}/admin/v2/namespaces/public/{ns}/backlogQuota"
            "?backlogQuotaType=message_age", body=json.dumps(quota))
        assert status in (200, 204), f"set quota: {status} {body!r}"

        def blocked():
            try:
                client.create_producer(topic).close()
                return False
            except pulsar.ProducerBlockedQuotaExceededException:
                return True
        wait_for(blocked, timeout_s=15, what="the age quota to block producers")
    finally:
        client.close()


def test_backlog_quota_eviction_advances_slowest_subscription(lc_server):
    quota = {"limitSize": 2000, "limitTime": -1, "policy": "consumer_backlog_eviction"}
    ns = new_namespace(lc_server, quota=("backlogQuota", quota, None))
    topic = topic_in(ns)
    client = make_client(lc_server.service_url)
    try:
        client.subscribe(topic, "slow").close()
        prod = client.create_producer(topic)
        for i in range(60):
            prod.send(f"{i:03d}".encode() + b"y" * 100)
        # Producers are never blocked by eviction.
        client.create_producer(topic).close()
        wait_for(lambda: stats(lc_server, topic)["subscriptions"]["slow"]["msgBacklog"] < 60,
                 timeout_s=15, what="backlog eviction")
        cons = client.subscribe(topic, "slow")
        first = cons.receive(timeout_millis=5000)
        assert int(first.data()[:3]) > 0, "the oldest messages were evicted"
    finally:
        client.close()


# ---------------------------------------------------------------- retention


def test_retention_deletes_consumed_ledgers_but_never_unacked_ones(lc_server):
    retention = {"retentionTimeInMinutes": 0, "retentionSizeInMB": 0}
    ns = new_namespace(lc_server, retention=("retention", retention, None))
    topic = topic_in(ns)
    client = make_client(lc_server.service_url)
    try:
        fast = client.subscribe(topic, "fast")
        client.subscribe(topic, "slow").close()
        prod = client.create_producer(topic)
        for i in range(60):
            prod.send(f"r-{i}".encode())
        assert len(receive_n(fast, 60, timeout_s=20, ack=True)) == 60
        def stored():
            ls = internal_stats(lc_server, topic)["ledgers"]
            return len(ls), sum(int(l["entries"] or 0) for l in ls), min(l["ledgerId"] for l in ls)

        count, entries, first = stored()
        assert count >= 5, f"expected several small ledgers, got {count}"
        assert entries == 60
        # "slow" has consumed nothing: no ledger may go.
        watch_until = time.monotonic() + 2.0  # several lifecycle checks and trim rounds
        while time.monotonic() < watch_until:
            _, e, f = stored()
            assert (e, f) == (entries, first), "unacknowledged data was trimmed"
        slow = client.subscribe(topic, "slow")
        got = receive_n(slow, 60, timeout_s=20, ack=True)
        assert [m.data() for m in got] == [f"r-{i}".encode() for i in range(60)]
        wait_for(lambda: len(internal_stats(lc_server, topic)["ledgers"]) <= 2,
                 timeout_s=20, what="consumed ledgers to be trimmed")
    finally:
        client.close()


def _dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass  # RocksDB deleted it meanwhile
    return total


def _bookie_disk_gauge(server):
    """Sum of magnetar_bookie_disk_used_bytes over the standalone's bookies (None if absent)."""
    status, body = http_get(f"{server.http_url}/metrics")
    if status != 200:
        return None
    text = body.decode() if isinstance(body, bytes) else body
    values = re.findall(r'^magnetar_bookie_disk_used_bytes\{[^}]*\} ([0-9.e+]+)$', text, re.M)
    return sum(float(v) for v in values) if values else None


def test_retention_gives_bookie_disk_space_back(tmp_path_factory):
    """Data past retention leaves the bookie's disk: after ~30 MB are written to small
    ledgers and consumed, retention deletes the ledgers and the bookie's data directory
    (sum of its files, and the magnetar_bookie_disk_used_bytes gauge; summed over bookies
    when there are several) shrinks to under a quarter of its size."""
    env = dict(LIFECYCLE_ENV)
    env["MAGNETAR_MAX_ENTRIES_PER_LEDGER"] = "40"
    env["MAGNETAR_RETENTION_CHECK_INTERVAL_SECS"] = "1"
    server = _launch(tmp_path_factory, "lifecycle-disk", env)
    bookie_dirs = [os.path.join(server.data_dir, d) for d in os.listdir(server.data_dir)
                   if d.startswith("bookie-")]
    assert bookie_dirs, f"no bookie directory under {server.data_dir}"
    retention = {"retentionTimeInMinutes": 0, "retentionSizeInMB": 0}
    try:
        ns = new_namespace(server, retention=("retention", retention, None))
        topic = topic_in(ns)
        n, size = 300, 100 * 1024
        client = make_client(server.service_url)
        try:
            cons = client.subscribe(topic, "s", receiver_queue_size=100)
            prod = client.create_producer(topic, block_if_queue_full=True,
                                          max_pending_messages=50)
            rnd = random.Random(30)
            for i in range(n):
                prod.send_async(rnd.randbytes(size), None)
            prod.flush()
            full = sum(_dir_bytes(d) for d in bookie_dirs)
            assert full >= n * size * 0.8, f"only {full} bytes on the bookie after writing"
            got = receive_n(cons, n, timeout_s=60, ack=True)
            assert len(got) == n
            shrunk = {}

            def small():
                shrunk["dir"] = sum(_dir_bytes(d) for d in bookie_dirs)
                return shrunk["dir"] < full / 4
            wait_for(small, timeout_s=30, what="the bookie's data directory to shrink")
            wait_for(lambda: (_bookie_disk_gauge(server) or full) < full / 4, timeout_s=15,
                     what="magnetar_bookie_disk_used_bytes to follow")
            print(f"bookie data dirs: {full} bytes after writing, {shrunk['dir']} after "
                  f"retention; gauge {_bookie_disk_gauge(server)}")
            # What is kept is still readable: a fresh message after the trim arrives.
            prod.send(b"after-trim")
            assert cons.receive(timeout_millis=5000).data() == b"after-trim"
        finally:
            client.close()
    finally:
        server.stop()
