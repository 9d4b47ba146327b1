"""The admin API keeps the promises of its own OpenAPI description: schemathesis generates
requests for every operation of /admin/v2/openapi.json (deterministically, a bounded number
per operation) against a real standalone, and no answer is a 5xx, an undocumented status
code or content type, or a body that contradicts the documented response schema.

Known resources (public/default, my-topic with my-subscription and messages, a partitioned
topic) are seeded first, and path parameters mostly take those names, so most requests reach
the handlers' logic rather than stopping at 404.
"""

import os
import subprocess
import sys

import pytest

from conftest import http_request, make_client

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
])
MAX_EXAMPLES = 10  # per operation and phase; ~100 operations
MAX_TIME_S = 100  # schemathesis's own budget for the run (it stops generating then)
TIMEOUT_S = 160  # hard stop for the subprocess, well under 3 minutes

# Path parameters mostly take the names of seeded resources (schemathesis dictionaries).
CONFIG = """
[dictionaries.tenants]
values = ["public"]
[dictionaries.namespaces]
values = ["default"]
[dictionaries.topics]
values = ["my-topic", "my-partitioned", "my-partitioned-partition-0"]
[dictionaries.subscriptions]
values = ["my-subscription"]
[dictionaries.clusters]
values = ["standalone"]

[parameters]
"path.tenant" = { dictionary = "tenants", probability = 0.8 }
"path.namespace" = { dictionary = "namespaces", probability = 0.8 }
"path.topic" = { dictionary = "topics", probability = 0.7 }
"path.subscription" = { dictionary = "subscriptions", probability = 0.7 }
"path.cluster" = { dictionary = "clusters", probability = 0.5 }
"""


def _schemathesis_cli():
    st = os.path.join(os.path.dirname(sys.executable), "st")
    if not os.path.exists(st):
        pytest.fail(f"schemathesis is not installed in this venv ({st}); run scripts/python-venv.sh",
                    pytrace=False)
    return st


def _seed(server):
    """Resources the generated requests can find: a topic with a subscription and messages,
    and a partitioned topic with messages."""
    base = f"{server.http_url}/admin/v2/persistent/public/default"
    status, body = http_request("PUT", f"{base}/my-topic")
    assert status == 204, body
    status, body = http_request(
        "PUT", f"{base}/my-topic/subscription/my-subscription?messageId=earliest")
    assert status == 204, body
    status, body = http_request("PUT", f"{base}/my-partitioned/partitions", body="2")
    assert status == 204, body
    client = make_client(server.service_url)
    try:
        for topic, n in (("my-topic", 5), ("my-partitioned", 4)):
            prod = client.create_producer(f"persistent://public/default/{topic}")
            for i in range(n):
                prod.send(f"{topic}-{i}".encode())
            prod.close()
    finally:
        client.close()


def test_admin_api_conforms_to_its_openapi_description(standalone, tmp_path):
    st = _schemathesis_cli()
    _seed(standalone)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    cmd = [
        st, "--no-color", "--config-file", str(config), "run",
        f"{standalone.http_url}/admin/v2/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--max-time", str(MAX_TIME_S),
        "--request-timeout", "15",
        "--workers", "1",
    ]
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"schemathesis found problems:\n{out[-20000:]}"
    assert "passed" in out and " generated" in out, out[-3000:]
