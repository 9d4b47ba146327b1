"""Schema registry with the official client (JSON, Avro, String schemas): typed producers and
consumers register their schema (first one = version 0, identical = same version, same type
with a new definition = next version), a different type fails with IncompatibleSchema,
schema-less (bytes) clients are still allowed, the registry survives a restart, and the
admin API / GET_SCHEMA command show what producers registered."""

import json
import os
import struct
import subprocess
import uuid

import pulsar
import pytest
from pulsar.schema import AvroSchema, Integer, JsonSchema, Record, String, StringSchema

import pulsar_wire as w
from conftest import http_get, http_request, make_client, receive_n


class Reading(Record):
    sensor = String()
    value = Integer()


def sensor_v1():
    class Sensor(Record):
        name = String()
    return Sensor


def sensor_v2():
    # The same record with an added optional field (Avro-compatible evolution).
    class Sensor(Record):
        name = String()
        unit = String()
    return Sensor


def version_bytes(v):
    return struct.pack(">q", v)


def schema_version(msg):
    """The message's schema version as bytes (the client returns the raw 8 bytes as str)."""
    v = msg.schema_version()
    return v.encode("latin-1") if isinstance(v, str) else v


def local(topic):
    return topic.rsplit("/", 1)[-1]


def schema_url(server, topic, suffix="schema"):
    return f"{server.http_url}/admin/v2/schemas/public/default/{local(topic)}/{suffix}"


def get_json(url):
    status, body = http_get(url)
    return status, (json.loads(body) if body else None)


def test_json_schema_roundtrip_and_admin_shows_the_producers_schema(standalone, client, topic):
    cons = client.subscribe(topic, "json", schema=JsonSchema(Reading))
    prod = client.create_producer(topic, schema=JsonSchema(Reading))
    for i in range(3):
        prod.send(Reading(sensor=f"s{i}", value=i))
    got = receive_n(cons, 3, ack=True)
    assert [(m.value().sensor, m.value().value) for m in got] == [("s0", 0), ("s1", 1), ("s2", 2)]
    assert schema_version(got[0]) == version_bytes(0)

    status, schema = get_json(schema_url(standalone, topic))
    assert status == 200, schema
    assert schema["type"] == "JSON" and schema["version"] == 0
    definition = json.loads(schema["data"])
    assert definition["name"] == "Reading"
    assert {f["name"] for f in definition["fields"]} == {"sensor", "value"}
    assert isinstance(schema["timestamp"], int) and schema["timestamp"] > 0
    status, one = get_json(schema_url(standalone, topic, "schema/0"))
    assert status == 200 and one == schema


def test_string_schema_roundtrip(standalone, client, topic):
    prod = client.create_producer(topic, schema=StringSchema())
    cons = client.subscribe(topic, "str", schema=StringSchema(),
                            initial_position=pulsar.InitialPosition.Earliest)
    prod.send("hello")
    prod.send("schema")
    assert [m.value() for m in receive_n(cons, 2, ack=True)] == ["hello", "schema"]
    status, schema = get_json(schema_url(standalone, topic))
    assert status == 200 and (schema["type"], schema["version"]) == ("STRING", 0)


def test_avro_schema_roundtrip_and_json_producer_is_incompatible(standalone, client, topic):
    cons = client.subscribe(topic, "avro", schema=AvroSchema(Reading))
    prod = client.create_producer(topic, schema=AvroSchema(Reading))
    prod.send(Reading(sensor="x", value=7))
    prod.send(Reading(sensor="y", value=8))
    got = receive_n(cons, 2, ack=True)
    assert [(m.value().sensor, m.value().value) for m in got] == [("x", 7), ("y", 8)]
    status, schema = get_json(schema_url(standalone, topic))
    assert status == 200 and (schema["type"], schema["version"]) == ("AVRO", 0)
    assert json.loads(schema["data"])["type"] == "record"
    with pytest.raises(pulsar.IncompatibleSchema):
        client.create_producer(topic, schema=JsonSchema(Reading))


def test_other_schema_type_is_incompatible(standalone, client, topic):
    client.create_producer(topic, schema=JsonSchema(Reading)).send(Reading(sensor="a", value=1))
    with pytest.raises(pulsar.IncompatibleSchema):
        client.create_producer(topic, schema=StringSchema())
    with pytest.raises(pulsar.IncompatibleSchema):
        client.subscribe(topic, "wrong-type", schema=StringSchema())
    # Clients without a schema are allowed on a topic with one (schemaValidationEnforced=false).
    raw = client.create_producer(topic)
    raw.send(b'{"sensor": "raw", "value": 2}')
    cons = client.subscribe(topic, "bytes", initial_position=pulsar.InitialPosition.Earliest)
    assert len(receive_n(cons, 2, ack=True)) == 2
    status, all_versions = get_json(schema_url(standalone, topic, "schemas"))
    assert status == 200 and [s["version"] for s in all_versions["getSchemaResponses"]] == [0]


def test_schema_evolution_adds_a_version_and_both_producers_work(standalone, client, topic):
    v1, v2 = sensor_v1(), sensor_v2()
    cons = client.subscribe(topic, "evolve")  # bytes: reads both shapes
    old = client.create_producer(topic, schema=JsonSchema(v1))
    new = client.create_producer(topic, schema=JsonSchema(v2))
    old.send(v1(name="old"))
    new.send(v2(name="new", unit="C"))
    old.send(v1(name="old-again"))
    got = receive_n(cons, 3, ack=True)
    assert [json.loads(m.data())["name"] for m in got] == ["old", "new", "old-again"]
    assert [schema_version(m) for m in got] == [version_bytes(v) for v in (0, 1, 0)]
    status, all_versions = get_json(schema_url(standalone, topic, "schemas"))
    assert status == 200
    versions = all_versions["getSchemaResponses"]
    assert [s["version"] for s in versions] == [0, 1]
    assert "unit" in versions[1]["data"] and "unit" not in versions[0]["data"]
    # A third producer with the first definition maps to version 0 again: no new version.
    client.create_producer(topic, schema=JsonSchema(v1)).close()
    assert len(get_json(schema_url(standalone, topic, "schemas"))[1]["getSchemaResponses"]) == 2


def test_partitions_share_the_partitioned_topics_schema(standalone, client):
    name = f"parts-{uuid.uuid4().hex[:8]}"
    status, body = standalone.create_partitioned_topic(name, 3)
    assert status in (200, 204), body
    topic = f"persistent://public/default/{name}"
    prod = client.create_producer(topic, schema=JsonSchema(Reading),
                                  message_routing_mode=pulsar.PartitionsRoutingMode.RoundRobinDistribution,
                                  batching_enabled=False)
    for i in range(3):
        prod.send(Reading(sensor=f"p{i}", value=i))
    status, all_versions = get_json(schema_url(standalone, topic, "schemas"))
    assert status == 200 and [s["version"] for s in all_versions["getSchemaResponses"]] == [0]
    with pytest.raises(pulsar.IncompatibleSchema):
        client.create_producer(f"{topic}-partition-1", schema=StringSchema())


def test_get_schema_command_answers_latest_requested_or_not_found(standalone, client, topic):
    client.create_producer(topic, schema=JsonSchema(Reading)).close()
    with w.RawConn(standalone.port) as conn:
        conn.handshake()
        get_schema = 34
        conn.send(w.base_command(get_schema, w.msg(w.f_varint(1, 7), w.f_bytes(2, topic))))
        resp = conn.expect(get_schema + 1)
        assert w.first(resp, 1) == 7 and 2 not in resp, resp
        schema = w.decode(w.first(resp, 4))
        assert w.first(schema, 4) == 2  # JSON
        assert b"Reading" in w.first(schema, 3)
        assert w.first(resp, 5) == version_bytes(0)

        missing = w.msg(w.f_varint(1, 8), w.f_bytes(2, topic), w.f_bytes(3, version_bytes(5)))
        conn.send(w.base_command(get_schema, missing))
        resp = conn.expect(get_schema + 1)
        assert w.first(resp, 2) == 11  # TopicNotFound, as Pulsar answers
        assert b"no-schema" in w.first(resp, 3)

        other = f"persistent://public/default/none-{uuid.uuid4().hex[:8]}"
        conn.send(w.base_command(get_schema, w.msg(w.f_varint(1, 9), w.f_bytes(2, other))))
        assert w.first(conn.expect(get_schema + 1), 2) == 11


def test_admin_upload_get_and_delete(standalone, client, topic):
    definition = json.dumps({"type": "record", "name": "Reading", "fields": [
        {"name": "sensor", "type": ["null", "string"]},
        {"name": "value", "type": ["null", "int"]}]})
    body = json.dumps({"type": "JSON", "schema": definition, "properties": {"owner": "ops"}})
    status, resp = http_request("POST", schema_url(standalone, topic), body)
    assert status == 200 and json.loads(resp) == {"version": {"version": 0}}, resp
    status, schema = get_json(schema_url(standalone, topic))
    assert status == 200 and schema["data"] == definition and schema["properties"] == {"owner": "ops"}

    status, resp = http_request("POST", schema_url(standalone, topic),
                                json.dumps({"type": "STRING", "schema": ""}))
    assert status == 409, resp
    status, resp = http_request("POST", schema_url(standalone, topic), json.dumps({"type": "NOPE"}))
    assert status == 400, resp
    status, resp = http_request("POST", schema_url(standalone, "bad,name"),
                                json.dumps({"type": "STRING"}))
    assert status == 400, resp

    status, resp = http_request("DELETE", schema_url(standalone, topic))
    assert status == 200 and json.loads(resp) == {"version": 1}, resp
    status, resp = get_json(schema_url(standalone, topic))
    assert status == 404 and "deleted" in resp["reason"]
    assert get_json(schema_url(standalone, topic, "schemas")) == (200, {"getSchemaResponses": []})
    assert get_json(schema_url(standalone, topic, "schema/7"))[0] == 404

    # After the delete any type may register, as the next version.
    prod = client.create_producer(topic, schema=StringSchema())
    prod.send("after delete")
    status, schema = get_json(schema_url(standalone, topic))
    assert status == 200 and (schema["type"], schema["version"]) == ("STRING", 2)
    assert http_request("DELETE", schema_url(standalone, "never-had-one"))[0] == 200


def test_magnetar_admin_schemas_commands(standalone, client, topic, tmp_path):
    admin_bin = os.path.join(os.path.dirname(os.environ["MAGNETAR_BIN"]), "magnetar-admin")

    def admin(*args):
        out = subprocess.run([admin_bin, "--admin-url", standalone.http_url, "schemas", *args],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if out.stdout.strip() else None

    f = tmp_path / "schema.json"
    f.write_text(json.dumps({"type": "STRING", "schema": "", "properties": {}}))
    assert admin("upload", topic, "-f", str(f)) == {"version": {"version": 0}}
    assert admin("get", topic)["type"] == "STRING"
    assert len(admin("get", topic, "--all-versions")["getSchemaResponses"]) == 1
    assert admin("delete", topic) == {"version": 1}


@pytest.mark.timeout(180)
def test_schema_survives_restart(fresh_standalone):
    topic = f"persistent://public/default/restart-{uuid.uuid4().hex[:8]}"
    c = make_client(fresh_standalone.service_url)
    try:
        c.create_producer(topic, schema=JsonSchema(Reading)).send(Reading(sensor="a", value=1))
    finally:
        c.close()
    fresh_standalone.restart()
    status, schema = get_json(schema_url(fresh_standalone, topic))
    assert status == 200 and (schema["type"], schema["version"]) == ("JSON", 0)
    c = make_client(fresh_standalone.service_url)
    try:
        with pytest.raises(pulsar.IncompatibleSchema):
            c.create_producer(topic, schema=StringSchema())
        cons = c.subscribe(topic, "after-restart", schema=JsonSchema(Reading),
                           initial_position=pulsar.InitialPosition.Earliest)
        c.create_producer(topic, schema=JsonSchema(Reading)).send(Reading(sensor="b", value=2))
        got = receive_n(cons, 2, ack=True)
        assert [m.value().sensor for m in got] == ["a", "b"]
        assert all(schema_version(m) == version_bytes(0) for m in got)
    finally:
        c.close()
