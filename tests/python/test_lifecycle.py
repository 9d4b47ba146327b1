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


def test_delayed_messages_never_early_nor_late_across_restart(lc_fresh):
    topic = f"persistent://public/default/delayed-{uuid.uuid4().hex[:10]}"
    n = 1000
    max_delay_ms = 5000
    client = make_client(lc_fresh.service_url)
    received = {}
    restart_window = [None, None]
    try:
        cons = client.subscribe(topic, "shared", consumer_type=pulsar.ConsumerType.Shared,
                                receiver_queue_size=1000)
        prod = client.create_producer(topic, block_if_queue_full=True)
        due = {}
        stored_at = {}
        rnd = random.Random(8)
        errors = []

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
        assert not errors, f"send errors: {errors[:5]}"

        def drain(deadline):
            while len(received) < n and time.monotonic() < deadline:
                try:
                    m = cons.receive(timeout_millis=200)
                except pulsar.Timeout:
                    continue
                received.setdefault(int(m.data()), now_ms())
                cons.acknowledge(m)

        drain(time.monotonic() + 1.5)
        restart_window[0] = now_ms()
        lc_fresh.restart()
        restart_window[1] = now_ms()
        drain(time.monotonic() + max_delay_ms / 1000 + 30)
    finally:
        client.close()

    assert len(received) == n, f"only {len(received)} of {n} delayed messages arrived"
    early = [(i, due[i] - t) for i, t in received.items() if t < due[i] - 5]
    assert not early, f"delivered early (id, ms early): {early[:10]}"
    late = []
    for i, t in received.items():
        # A message cannot be delivered before it is stored.
        visible = max(due[i], stored_at.get(i, due[i]))
        allowed = visible + 500
        if restart_window[0] - 500 <= visible <= restart_window[1] + 500:
            # Due while the broker restarted: the consumer has to reconnect first.
            allowed = restart_window[1] + 5000
        if t > allowed:
            late.append((i, t - due[i]))
    assert not late, f"delivered late (id, ms after due): {late[:10]}"


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
