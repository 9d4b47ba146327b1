"""The admin REST API works alongside the official client: a partitioned topic created over
REST takes messages and its partitioned stats count them, namespace policies (TTL,
retention, backlog quota) persist across a broker restart, subscription operations over REST
change what a consumer receives, peek returns payload and metadata headers, terminate stops
producers, and junk input gets 4xx with a JSON reason."""

import json
import uuid

import pulsar
import pytest

from conftest import http_get, http_request, make_client, receive_n, wait_for


def api(sa, method, path, body=None):
    """(status, parsed JSON or raw bytes) for a call to the standalone's admin API."""
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    status, raw = http_request(method, f"{sa.http_url}{path}", body)
    assert status is not None and status < 500, f"{method} {path} -> {status} {raw[:200]!r}"
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_partitioned_topic_created_over_rest_takes_messages(standalone, client):
    name = unique("pt")
    status, _ = api(standalone, "PUT", f"/admin/v2/persistent/public/default/{name}/partitions", "3")
    assert status == 204
    status, meta = api(standalone, "GET", f"/admin/v2/persistent/public/default/{name}/partitions")
    assert meta["partitions"] == 3
    topic = f"persistent://public/default/{name}"
    prod = client.create_producer(topic)
    for i in range(9):
        prod.send(f"p-{i}".encode())
    prod.close()

    def counted():
        status, st = api(standalone, "GET", f"/admin/v2/persistent/public/default/{name}/partitioned-stats")
        return status == 200 and st["msgInCounter"] == 9 and st
    st = wait_for(counted, 15, "partitioned-stats msgInCounter == 9")
    assert st["metadata"]["partitions"] == 3
    _, listed = api(standalone, "GET", "/admin/v2/persistent/public/default/partitioned")
    assert topic in listed


def test_namespace_policies_survive_restart(fresh_standalone):
    sa = fresh_standalone
    ns = unique("ns")
    base = f"/admin/v2/namespaces/public/{ns}"
    assert api(sa, "PUT", base, "")[0] == 204
    assert api(sa, "POST", f"{base}/messageTTL", "300")[0] == 204
    retention = {"retentionTimeInMinutes": 120, "retentionSizeInMB": 64}
    assert api(sa, "POST", f"{base}/retention", retention)[0] == 204
    quota = {"limitSize": 1048576, "limitTime": -1, "policy": "producer_request_hold"}
    assert api(sa, "POST", f"{base}/backlogQuota", quota)[0] == 204
    sa.restart()
    assert api(sa, "GET", f"{base}/messageTTL") == (200, 300)
    assert api(sa, "GET", f"{base}/retention") == (200, retention)
    _, quotas = api(sa, "GET", f"{base}/backlogQuotaMap")
    assert quotas["destination_storage"]["policy"] == "producer_request_hold"
    _, policies = api(sa, "GET", f"{base}/policies")
    assert policies["message_ttl_in_seconds"] == 300
    assert api(sa, "DELETE", f"{base}/messageTTL")[0] == 204
    assert api(sa, "GET", f"{base}/messageTTL") == (200, None)


def test_subscription_operations_change_what_consumers_get(standalone, client, topic):
    name = topic.rsplit("/", 1)[-1]
    path = f"/admin/v2/persistent/public/default/{name}"
    prod = client.create_producer(topic)
    for i in range(6):
        prod.send(f"m-{i}".encode(), properties={"k": f"v{i}"})
    prod.close()
    assert api(standalone, "PUT", f"{path}/subscription/admin-sub?messageId=earliest")[0] == 204
    _, subs = api(standalone, "GET", f"{path}/subscriptions")
    assert subs == ["admin-sub"]

    status, raw = http_get(f"{standalone.http_url}{path}/subscription/admin-sub/position/1")
    assert status == 200 and raw == b"m-0"

    assert api(standalone, "POST", f"{path}/subscription/admin-sub/skip/2")[0] == 204
    cons = client.subscribe(topic, "admin-sub")
    got = [m.data() for m in receive_n(cons, 4, ack=True)]
    assert got == [f"m-{i}".encode() for i in range(2, 6)]
    cons.close()

    assert api(standalone, "POST", f"{path}/subscription/admin-sub/resetcursor/0")[0] == 204
    cons = client.subscribe(topic, "admin-sub")
    got = [m.data() for m in receive_n(cons, 6)]
    assert got == [f"m-{i}".encode() for i in range(6)]
    cons.close()

    assert api(standalone, "POST", f"{path}/subscription/admin-sub/skip_all")[0] == 204
    _, st = api(standalone, "GET", f"{path}/stats")
    wait_for(lambda: api(standalone, "GET", f"{path}/stats")[1]["subscriptions"]["admin-sub"]["msgBacklog"] == 0,
             10, "backlog cleared")
    assert api(standalone, "DELETE", f"{path}/subscription/admin-sub")[0] == 204
    assert api(standalone, "DELETE", f"{path}/subscription/admin-sub")[0] == 404


def test_peek_returns_metadata_headers(standalone, client, topic):
    name = topic.rsplit("/", 1)[-1]
    path = f"/admin/v2/persistent/public/default/{name}"
    client.subscribe(topic, "peek").close()
    prod = client.create_producer(topic, producer_name=unique("pk"), batching_enabled=False)
    prod.send(b"hello", properties={"color": "blue"})
    prod.close()
    import urllib.request
    with urllib.request.urlopen(f"{standalone.http_url}{path}/subscription/peek/position/1", timeout=10) as r:
        assert r.read() == b"hello"
        headers = {k.lower(): v for k, v in r.headers.items()}
    assert headers.get("x-pulsar-property-color") == "blue"
    assert headers.get("x-pulsar-publish-time", "").endswith("+0000")
    assert headers.get("x-pulsar-producer-name", "").startswith("pk-")


def test_terminate_stops_producers(standalone, client, topic):
    name = topic.rsplit("/", 1)[-1]
    prod = client.create_producer(topic)
    prod.send(b"before")
    status, last = api(standalone, "POST", f"/admin/v2/persistent/public/default/{name}/terminate")
    assert status == 200 and last["entryId"] == 0
    with pytest.raises(Exception):
        prod.send(b"after")
    with pytest.raises(Exception):
        client.create_producer(topic)


def test_junk_input_gets_4xx_with_reason(standalone):
    for method, path, body, want in [
        ("PUT", "/admin/v2/tenants/t%20bad", "{}", 400),
        ("POST", "/admin/v2/namespaces/public/default/retention", "{not json", 400),
        ("POST", "/admin/v2/namespaces/public/default/messageTTL", "\"x\"", 400),
        ("GET", "/admin/v2/namespaces/public/nosuchns/policies", None, 404),
        ("GET", "/admin/v2/persistent/public/default/nosuchtopic/internalStats", None, 404),
        ("PUT", "/admin/v2/clusters/standalone", {"serviceUrl": "http://x"}, 409),
        ("DELETE", "/admin/v2/tenants/public", None, 409),
    ]:
        status, resp = api(standalone, method, path, body)
        assert status == want, f"{method} {path}: {status} {resp}"
        assert isinstance(resp, dict) and resp.get("reason"), f"{method} {path}: no reason in {resp!r}"


def test_magnetar_admin_cli_against_standalone(standalone):
    """The `magnetar-admin` binary next to MAGNETAR_BIN drives the same API."""
    import os
    import subprocess
    admin_bin = os.path.join(os.path.dirname(os.environ["MAGNETAR_BIN"]), "magnetar-admin")
    if not os.path.exists(admin_bin):
        pytest.skip(f"{admin_bin} not built (cargo build -p magnetar-tools)")

    def run(*args):
        return subprocess.run([admin_bin, "--admin-url", standalone.http_url, *args],
                              capture_output=True, text=True, timeout=60)

    ns = f"public/{unique('cli')}"
    assert run("namespaces", "create", ns).returncode == 0
    r = run("namespaces", "set-message-ttl", ns, "--ttl", "2m")
    assert r.returncode == 0, r.stderr
    assert api(standalone, "GET", f"/admin/v2/namespaces/{ns}/messageTTL") == (200, 120)
    r = run("namespaces", "policies", ns)
    assert json.loads(r.stdout)["message_ttl_in_seconds"] == 120
    r = run("namespaces", "delete", "public/does-not-exist")
    assert r.returncode != 0 and "does not exist" in r.stderr
