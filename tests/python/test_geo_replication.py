"""Geo-replication between two standalones (clusters `a` and `b`) with the official client.

Guarantee under test: in a namespace replicated to both clusters, every message produced in
one cluster is stored exactly once, in order, with key, properties and event time intact, in
the other cluster too; replicated messages never loop back; a remote outage only delays
replication (the backlog drains once the remote is back, with nothing lost or duplicated).
"""

import json
import os
import subprocess
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

TENANT = "geo"
NS = "repl"
N = 1000


def _ok(status_body, what):
    status, body = status_body
    assert status is not None and 200 <= status < 300, f"{what}: {status} {body[:300]!r}"


def _configure(server, peer):
    """Make `server` know `peer`, create the tenant and the namespace replicated to both."""
    base = server.http_url
    _ok(http_request("PUT", f"{base}/admin/v2/clusters/{peer.cluster_name}", json.dumps({
        "serviceUrl": peer.http_url, "brokerServiceUrl": peer.service_url})), "create cluster")
    _ok(http_request("PUT", f"{base}/admin/v2/tenants/{TENANT}", json.dumps({
        "adminRoles": [], "allowedClusters": ["a", "b"]})), "create tenant")
    _ok(http_request("PUT", f"{base}/admin/v2/namespaces/{TENANT}/{NS}"), "create namespace")
    _ok(http_request("POST", f"{base}/admin/v2/namespaces/{TENANT}/{NS}/replication",
                     json.dumps(["a", "b"])), "set replication clusters")


def _admin(server, *args):
    """Runs `magnetar-admin` (next to MAGNETAR_BIN) against `server`; returns stdout."""
    binary = os.path.join(os.path.dirname(magnetar_bin()), "magnetar-admin")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} missing: cargo build -p magnetar-tools --bin magnetar-admin",
                    pytrace=False)
    out = subprocess.run([binary, "--admin-url", server.http_url, *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"magnetar-admin {' '.join(args)}: {out.stderr}"
    return out.stdout


def _configure_with_cli(server, peer):
    """Same as `_configure`, with the CLI commands docs/geo-replication.md shows."""
    _admin(server, "clusters", "create", peer.cluster_name,
           "--url", peer.http_url, "--broker-url", peer.service_url)
    _admin(server, "tenants", "create", TENANT, "--allowed-clusters", "a,b")
    _admin(server, "namespaces", "create", f"{TENANT}/{NS}")
    _admin(server, "namespaces", "set-clusters", f"{TENANT}/{NS}", "--clusters", "a,b")


@pytest.fixture
def clusters(tmp_path):
    servers = []
    try:
        for name in ("a", "b"):
            s = Standalone(magnetar_bin(), tmp_path / name / "data", cluster_name=name)
            s.start()
            servers.append(s)
        a, b = servers
        _configure(a, b)
        _configure_with_cli(b, a)
        yield a, b
    finally:
        for s in servers:
            if s.running():
                s.kill9()


def _stats(server, topic):
    status, body = http_get(
        f"{server.http_url}/admin/v2/persistent/{TENANT}/{NS}/{topic.rsplit('/', 1)[-1]}/stats")
    return json.loads(body) if status == 200 else None


def _replication(server, topic, remote):
    s = _stats(server, topic)
    return (s or {}).get("replication", {}).get(remote)


def _topic():
    return f"persistent://{TENANT}/{NS}/t-{uuid.uuid4().hex[:10]}"


def _by_origin(msgs):
    out = {}
    for m in msgs:
        out.setdefault(m.data().split(b"-")[0], []).append(m)
    return out


def test_messages_from_each_cluster_arrive_once_in_order_on_both(clusters):
    a, b = clusters
    topic = _topic()
    ca, cb = make_client(a.service_url), make_client(b.service_url)
    try:
        subs = {
            "a": ca.subscribe(topic, "s", initial_position=pulsar.InitialPosition.Earliest),
            "b": cb.subscribe(topic, "s", initial_position=pulsar.InitialPosition.Earliest),
        }
        for name, c in (("a", ca), ("b", cb)):
            # b's producer batches: batch entries replicate as they are.
            p = c.create_producer(topic, block_if_queue_full=True,
                                  batching_enabled=(name == "b"), batching_max_messages=50)
            for i in range(N):
                p.send_async(f"{name}-{i}".encode(), lambda res, mid: None, partition_key=f"k{i % 7}",
                             properties={"origin": name, "i": str(i)}, event_timestamp=1000 + i)
            p.flush()
            p.close()
        expected = {o: [f"{o}-{i}".encode() for i in range(N)] for o in ("a", "b")}
        received = {}
        for name, cons in subs.items():
            msgs = receive_n(cons, 2 * N, timeout_s=90, ack=True)
            groups = _by_origin(msgs)
            for origin in ("a", "b"):
                got = [m.data() for m in groups.get(origin.encode(), [])]
                assert got == expected[origin], (
                    f"consumer on {name}: {len(got)} messages from {origin}, "
                    f"first differences {[x for x in got if x not in expected[origin]][:5]}")
            received[name] = groups
        for cons in subs.values():
            assert_no_more(cons, wait_ms=2000)  # nothing loops back
        # Keys, properties, event time and publish time survive replication.
        for origin, other in (("a", "b"), ("b", "a")):
            local = received[origin][origin.encode()]
            remote = received[other][origin.encode()]
            for lm, rm in zip(local, remote):
                assert rm.partition_key() == lm.partition_key()
                assert rm.properties() == lm.properties()
                assert rm.event_timestamp() == lm.event_timestamp()
                assert rm.publish_timestamp() == lm.publish_timestamp()
        for server, remote in ((a, "b"), (b, "a")):
            r = wait_for(lambda: (lambda x: x if x and x.get("replicationBacklog") == 0 else None)(
                _replication(server, topic, remote)), timeout_s=20, what="replication stats")
            assert r["connected"] is True
            assert "msgRateOut" in r
            cli = json.loads(_admin(server, "topics", "stats", topic))
            shown = cli["replication"][remote]
            assert shown["replicationBacklog"] == 0
            assert shown["connected"] is True
            assert shown["msgOutCounter"] == N
            assert {"msgRateOut", "replicationDelayInSeconds"} <= shown.keys()
    finally:
        ca.close()
        cb.close()


@pytest.mark.parametrize("how", ["stop", "kill9"])
def test_remote_outage_delays_but_neither_loses_nor_duplicates(clusters, how):
    a, b = clusters
    topic = _topic()
    ca = make_client(a.service_url)
    try:
        # The topic exists on b and its replicator to a is running before the outage.
        cb = make_client(b.service_url)
        cb.subscribe(topic, "s", initial_position=pulsar.InitialPosition.Earliest).close()
        cb.close()
        p = ca.create_producer(topic, block_if_queue_full=True, batching_enabled=False)
        sent = [f"a-{i}".encode() for i in range(N)]
        for m in sent[:300]:
            p.send(m)
        wait_for(lambda: (lambda x: x and x["msgOutCounter"] == 300
                          and x["replicationBacklog"] == 0)(_replication(a, topic, "b")),
                 timeout_s=30, what="first messages replicated")
        b.stop() if how == "stop" else b.kill9()
        for m in sent[300:700]:
            p.send(m)
        r = wait_for(lambda: (lambda x: x if x and not x["connected"]
                              and x["replicationBacklog"] > 0 else None)(
            _replication(a, topic, "b")), timeout_s=30, what="backlog while b is down")
        # Only what was produced during the outage is pending (the first 300 were
        # acknowledged by b before it went down, and the cursor is durable).
        assert r["replicationBacklog"] <= 400, f"backlog while b is down: {r}"
        b.start()
        for m in sent[700:]:
            p.send(m)
        p.close()
        wait_for(lambda: (lambda x: x and x["connected"] and x["replicationBacklog"] == 0)(
            _replication(a, topic, "b")), timeout_s=60, what="backlog drained after b returned")
        # Everything b stored, read from the start by a fresh subscription: once, in order.
        cb = make_client(b.service_url)
        try:
            cons = cb.subscribe(topic, f"check-{uuid.uuid4().hex[:6]}",
                                initial_position=pulsar.InitialPosition.Earliest)
            got = [m.data() for m in receive_n(cons, N, timeout_s=60, ack=True)]
            assert got == sent, f"b stored {len(got)} messages; first {got[:3]}, last {got[-3:]}"
            assert_no_more(cons, wait_ms=2000)
        finally:
            cb.close()
        # And nothing came back to a: its own log holds exactly what was produced there.
        cons = ca.subscribe(topic, "check-a", initial_position=pulsar.InitialPosition.Earliest)
        got = [m.data() for m in receive_n(cons, N, timeout_s=60, ack=True)]
        assert got == sent
        assert_no_more(cons, wait_ms=1000)
    finally:
        ca.close()


def test_remote_killed_while_replicating_stores_each_message_once(clusters):
    a, b = clusters
    topic = _topic()
    ca = make_client(a.service_url)
    try:
        cb = make_client(b.service_url)
        cb.subscribe(topic, "s", initial_position=pulsar.InitialPosition.Earliest).close()
        cb.close()
        p = ca.create_producer(topic, block_if_queue_full=True, batching_enabled=False)
        sent = [f"a-{i}".encode() for i in range(N)]
        for m in sent[:700]:
            p.send_async(m, lambda res, mid: None)
        # Kill b as soon as replication is under way, likely with sends in flight: they are
        # resent after the restart and b's deduplication drops what it had stored.
        wait_for(lambda: (_replication(a, topic, "b") or {}).get("msgOutCounter", 0) > 0,
                 timeout_s=30, what="replication under way")
        b.kill9()
        p.flush()
        b.start()
        for m in sent[700:]:
            p.send_async(m, lambda res, mid: None)
        p.flush()
        p.close()
        wait_for(lambda: (lambda x: x and x["connected"] and x["replicationBacklog"] == 0)(
            _replication(a, topic, "b")), timeout_s=60, what="backlog drained after b returned")
        cb = make_client(b.service_url)
        try:
            cons = cb.subscribe(topic, "check", initial_position=pulsar.InitialPosition.Earliest)
            got = [m.data() for m in receive_n(cons, N, timeout_s=60, ack=True)]
            assert got == sent, f"b stored {len(got)} messages; first {got[:3]}, last {got[-3:]}"
            assert_no_more(cons, wait_ms=2000)
        finally:
            cb.close()
    finally:
        ca.close()


def test_replicate_to_and_disable_replication_keep_messages_local(clusters):
    a, b = clusters
    topic = _topic()
    ca, cb = make_client(a.service_url), make_client(b.service_url)
    try:
        on_a = ca.subscribe(topic, "s", initial_position=pulsar.InitialPosition.Earliest)
        on_b = cb.subscribe(topic, "s", initial_position=pulsar.InitialPosition.Earliest)
        p = ca.create_producer(topic, batching_enabled=False)
        p.send(b"local-only", disable_replication=True)
        p.send(b"to-a-only", replication_clusters=["a"])
        p.send(b"to-b", replication_clusters=["b"])
        p.send(b"everywhere")
        p.close()
        got_a = [m.data() for m in receive_n(on_a, 4, timeout_s=20, ack=True)]
        assert got_a == [b"local-only", b"to-a-only", b"to-b", b"everywhere"]
        got_b = [m.data() for m in receive_n(on_b, 2, timeout_s=30, ack=True)]
        assert got_b == [b"to-b", b"everywhere"]
        assert_no_more(on_b, wait_ms=1500)
        assert_no_more(on_a, wait_ms=500)
    finally:
        ca.close()
        cb.close()


def test_partitioned_topic_replicates_partition_by_partition(clusters):
    a, b = clusters
    name = f"p-{uuid.uuid4().hex[:8]}"
    topic = f"persistent://{TENANT}/{NS}/{name}"
    for server in (a, b):
        _ok(http_request("PUT", f"{server.http_url}/admin/v2/persistent/{TENANT}/{NS}/{name}"
                         "/partitions", "3"), "create partitioned topic")
    ca, cb = make_client(a.service_url), make_client(b.service_url)
    try:
        on_b = cb.subscribe(topic, "s", initial_position=pulsar.InitialPosition.Earliest)
        p = ca.create_producer(topic, batching_enabled=False)
        for i in range(90):
            p.send(f"m-{i}".encode(), partition_key=f"k{i % 9}")
        p.close()
        got = receive_n(on_b, 90, timeout_s=60, ack=True)
        assert sorted(m.data() for m in got) == sorted(f"m-{i}".encode() for i in range(90))
        per_key = {}
        for m in got:  # one key lives in one partition: its order is kept
            per_key.setdefault(m.partition_key(), []).append(int(m.data()[2:]))
        assert all(v == sorted(v) for v in per_key.values())
        assert_no_more(on_b, wait_ms=1500)
        url = f"{a.http_url}/admin/v2/persistent/{TENANT}/{NS}/{name}/partitioned-stats"

        def replicated():
            status, body = http_get(url)
            r = json.loads(body).get("replication", {}).get("b") if status == 200 else None
            return r if r and r["msgOutCounter"] == 90 and r["replicationBacklog"] == 0 else None
        wait_for(replicated, timeout_s=20, what="partitioned replication stats")
    finally:
        ca.close()
        cb.close()


def test_replication_clusters_must_be_allowed_for_the_tenant(tmp_path):
    """As in Pulsar: a namespace replicates only to clusters its tenant is allowed on
    (403 otherwise, via the REST API, namespace creation with policies, and the CLI)."""
    a = Standalone(magnetar_bin(), tmp_path / "a" / "data", cluster_name="a")
    a.start()
    try:
        base = a.http_url
        for name in ("b", "c"):
            _ok(http_request("PUT", f"{base}/admin/v2/clusters/{name}", json.dumps({
                "serviceUrl": "http://127.0.0.1:1", "brokerServiceUrl": "pulsar://127.0.0.1:1"})),
                f"create cluster {name}")
        _ok(http_request("PUT", f"{base}/admin/v2/tenants/{TENANT}", json.dumps({
            "adminRoles": [], "allowedClusters": ["a", "b"]})), "create tenant")
        _ok(http_request("PUT", f"{base}/admin/v2/namespaces/{TENANT}/{NS}"), "create namespace")
        url = f"{base}/admin/v2/namespaces/{TENANT}/{NS}/replication"
        status, body = http_request("POST", url, json.dumps(["a", "c"]))
        assert status == 403, (status, body)
        assert b"not in the list of allowed clusters" in body
        status, body = http_request("POST", url, json.dumps(["a", "nosuch"]))
        assert 400 <= status < 500, (status, body)
        status, body = http_get(url)
        assert status == 200 and json.loads(body) == ["a"], body
        status, body = http_request("PUT", f"{base}/admin/v2/namespaces/{TENANT}/other",
                                    json.dumps({"replication_clusters": ["a", "c"]}))
        assert status == 403, (status, body)
        assert http_get(f"{base}/admin/v2/namespaces/{TENANT}/other/replication")[0] == 404
        binary = os.path.join(os.path.dirname(magnetar_bin()), "magnetar-admin")
        out = subprocess.run([binary, "--admin-url", base, "namespaces", "set-clusters",
                              f"{TENANT}/{NS}", "--clusters", "a,c"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode != 0, out.stdout
        assert "allowed clusters" in out.stderr, out.stderr
        # Allowed clusters may be used.
        _ok(http_request("POST", url, json.dumps(["a", "b"])), "replication to an allowed cluster")
        _ok(http_request("POST", f"{base}/admin/v2/tenants/{TENANT}", json.dumps({
            "adminRoles": [], "allowedClusters": ["a", "b", "c"]})), "update tenant")
        _admin(a, "namespaces", "set-clusters", f"{TENANT}/{NS}", "--clusters", "a,c")
        status, body = http_get(url)
        assert json.loads(body) == ["a", "c"], body
    finally:
        a.kill9()
