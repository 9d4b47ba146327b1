"""Topic terminate and delete are durable on a real standalone: a terminated topic stays
terminated across a restart (the official client's producer is refused with
TopicTerminated, a consumer reads what was written and then gets REACHED_END_OF_TOPIC),
and a deleted topic created again under the same name is empty."""

import json
import uuid

import pulsar
import pytest

import pulsar_wire as w
from conftest import http_request, make_client, receive_n

REACHED_END_OF_TOPIC = 27  # BaseCommand.Type


def api(sa, method, path, body=None):
    status, raw = http_request(method, f"{sa.http_url}{path}", body)
    assert status is not None and status < 500, f"{method} {path} -> {status} {raw[:200]!r}"
    return status, (json.loads(raw) if raw else None)


def test_terminated_topic_stays_terminated_after_restart(fresh_standalone):
    name = f"ended-{uuid.uuid4().hex[:10]}"
    topic = f"persistent://public/default/{name}"
    client = make_client(fresh_standalone.service_url)
    prod = client.create_producer(topic)
    for i in range(3):
        prod.send(f"m-{i}".encode())
    prod.close()
    client.close()
    status, last = api(fresh_standalone, "POST", f"/admin/v2/persistent/public/default/{name}/terminate")
    assert status == 200 and last["entryId"] == 2, last

    fresh_standalone.restart()

    client = make_client(fresh_standalone.service_url)
    try:
        with pytest.raises(pulsar.TopicTerminated):
            client.create_producer(topic)
        cons = client.subscribe(topic, "after-restart",
                                initial_position=pulsar.InitialPosition.Earliest)
        got = [m.data() for m in receive_n(cons, 3, timeout_s=20, ack=True)]
        assert got == [b"m-0", b"m-1", b"m-2"]
    finally:
        try:
            client.close()
        except pulsar.NotConnected:
            pass  # the consumer at the end of the terminated topic may be gone already

    # The raw protocol shows the end-of-topic notice once everything was delivered.
    with w.RawConn(fresh_standalone.port) as raw:
        raw.handshake()
        raw.send(w.cmd_subscribe(topic, "raw", consumer_id=1, request_id=1, initial_position=1))
        raw.expect(w.SUCCESS, timeout=10)
        raw.send(w.cmd_flow(1, 100))
        messages = 0
        for _ in range(20):
            t, _sub, _ = raw.read_frame(timeout=10)
            if t == w.MESSAGE:
                messages += 1
            elif t == REACHED_END_OF_TOPIC:
                break
        else:
            pytest.fail("no REACHED_END_OF_TOPIC after the restart")
        assert messages == 3


def test_deleted_topic_recreated_under_the_same_name_is_empty(standalone):
    name = f"gone-{uuid.uuid4().hex[:10]}"
    topic = f"persistent://public/default/{name}"
    base = f"/admin/v2/persistent/public/default/{name}"
    client = make_client(standalone.service_url)
    try:
        cons = client.subscribe(topic, "s", initial_position=pulsar.InitialPosition.Earliest)
        prod = client.create_producer(topic)
        for i in range(4):
            prod.send(f"old-{i}".encode())
        prod.close()
        cons.close()
        status, st = api(standalone, "GET", f"{base}/internalStats")
        assert status == 200 and st["numberOfEntries"] == 4, st
        old_ledgers = {l["ledgerId"] for l in st["ledgers"]}

        status, _ = api(standalone, "DELETE", base)
        assert status == 204
        status, _ = api(standalone, "GET", f"{base}/stats")
        assert status == 404

        status, _ = api(standalone, "PUT", base)
        assert status == 204
        status, st = api(standalone, "GET", f"{base}/internalStats")
        assert status == 200, st
        assert st["numberOfEntries"] == 0 and st["cursors"] == {}, st
        assert not old_ledgers & {l["ledgerId"] for l in st["ledgers"]}, st
        for lid in old_ledgers:
            status, _ = api(standalone, "GET", f"{base}/ledger/{lid}/entry/0")
            assert status == 404
        cons = client.subscribe(topic, "s2", initial_position=pulsar.InitialPosition.Earliest)
        assert receive_n(cons, 1, timeout_s=2) == []
        cons.close()
    finally:
        client.close()
