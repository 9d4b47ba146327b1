"""Fixtures that run a real `magnetar standalone` process for the official-client tests.

The binary comes from the MAGNETAR_BIN environment variable (required: the suite fails
loudly without it). Each standalone gets free loopback ports (bind port 0, release), its
own temporary data dir and a log file there; readiness is polled with a deadline (HTTP
health endpoint + Pulsar port), never a fixed sleep. On a test failure the tail of the
server log is attached to the report.
"""

import atexit
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pulsar
import pytest

START_TIMEOUT_S = float(os.environ.get("MAGNETAR_START_TIMEOUT", "60"))
STOP_TIMEOUT_S = float(os.environ.get("MAGNETAR_STOP_TIMEOUT", "30"))
LOG_TAIL_LINES = 80
BOOKIES = os.environ.get("MAGNETAR_BOOKIES")  # e.g. 3 to run the suite with --bookies 3

# Loopback only: never route test HTTP through a proxy from the environment.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Every server process we started; killed at interpreter exit if a crash skipped teardown.
_STARTED = []


@atexit.register
def _kill_leftovers():
    for proc in _STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def free_port():
    """A loopback port that was free a moment ago (bind port 0, then release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5.0):
    """(status, body bytes); status is None when the connection itself failed."""
    try:
        with _HTTP.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return None, b""


def http_request(method, url, body=None, content_type="application/json", timeout=10.0):
    """(status, body bytes) for an arbitrary method; raises on connection failure."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with _HTTP.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Standalone:
    """One `magnetar standalone` process; restartable on the same data dir and ports."""

    def __init__(self, binary, data_dir, bookies=None, cluster_name=None):
        self.binary = binary
        self.data_dir = str(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = free_port()
        self.http_port = next(p for p in (free_port() for _ in range(100)) if p != self.port)
        self.bookies = bookies
        self.cluster_name = cluster_name
        self.log_path = os.path.join(os.path.dirname(self.data_dir), "magnetar.log")
        self.proc = None
        self.starts = 0

    @property
    def service_url(self):
        return f"pulsar://127.0.0.1:{self.port}"

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self.http_port}"

    def command(self):
        cmd = [
            self.binary, "standalone",
            "--data-dir", self.data_dir,
            "--port", str(self.port),
            "--http-port", str(self.http_port),
        ]
        if self.bookies is not None:
            cmd += ["--bookies", str(self.bookies)]
        if self.cluster_name is not None:
            cmd += ["--cluster-name", self.cluster_name]
        return cmd

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("MAGNETAR_BIND_ADDRESS", "127.0.0.1")  # loopback only (if supported)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            )
        _STARTED.append(self.proc)
        self.wait_ready()

    def wait_ready(self, timeout=START_TIMEOUT_S):
        """Poll health endpoint and Pulsar port until both answer, or fail with the log tail."""
        deadline = time.monotonic() + timeout
        health = f"{self.http_url}/admin/v2/brokers/health"
        last = "not polled yet"
        delay = 0.02
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(
                    f"magnetar standalone exited with code {rc} during startup\n"
                    f"command: {' '.join(self.command())}\n{self.log_tail()}",
                    pytrace=False,
                )
            status, body = http_get(health, timeout=2.0)
            if status == 200:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=2.0):
                        return
                except OSError as e:
                    last = f"health 200 but Pulsar port {self.port}: {e}"
            else:
                last = f"health endpoint answered {status}: {body[:200]!r}"
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        pytest.fail(
            f"magnetar standalone not ready within {timeout}s ({last})\n"
            f"command: {' '.join(self.command())}\n{self.log_tail()}",
            pytrace=False,
        )

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL the process (no chance to flush anything) and reap it."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, wait for a clean exit; returns the exit code (SIGKILL after timeout)."""
        if self.proc is None:
            return None
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=timeout)
                pytest.fail(
                    f"magnetar standalone ignored SIGTERM for {timeout}s\n{self.log_tail()}",
                    pytrace=False,
                )
        return self.proc.returncode

    def restart(self):
        """Stop if still running (SIGTERM), then start again on the same data dir and ports."""
        if self.running():
            self.stop()
        self.start()

    def log_tail(self, lines=LOG_TAIL_LINES):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError as e:
            return f"(no log: {e})"
        tail = data.decode("utf-8", "replace").splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def topic_stats(self, topic, tenant="public", namespace="default"):
        name = topic.rsplit("/", 1)[-1]
        return http_get(f"{self.http_url}/admin/v2/persistent/{tenant}/{namespace}/{name}/stats")

    def create_partitioned_topic(self, name, partitions, tenant="public", namespace="default"):
        return http_request(
            "PUT",
            f"{self.http_url}/admin/v2/persistent/{tenant}/{namespace}/{name}/partitions",
            body=str(partitions),
        )


def magnetar_bin():
    path = os.environ.get("MAGNETAR_BIN")
    if not path:
        pytest.fail(
            "MAGNETAR_BIN is not set: point it at the magnetar binary, e.g. "
            "MAGNETAR_BIN=$HOME/.cache/magnetar-target/debug/magnetar",
            pytrace=False,
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"MAGNETAR_BIN={path} is not an executable file", pytrace=False)
    return path


def _launch(tmp_path_factory, name):
    root = tmp_path_factory.mktemp(name)
    server = Standalone(magnetar_bin(), root / "data", bookies=BOOKIES)
    server.start()
    return server


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A standalone shared by the tests of one module (use unique topic names)."""
    server = _launch(tmp_path_factory, "standalone")
    yield server
    server.stop()


@pytest.fixture
def fresh_standalone(tmp_path_factory):
    """A standalone owned by one test, which may kill9()/stop()/restart() it."""
    server = _launch(tmp_path_factory, "fresh")
    yield server
    if server.running():
        server.kill9()


def make_client(service_url, **kw):
    kw.setdefault("operation_timeout_seconds", 15)
    kw.setdefault("connection_timeout_ms", 5000)
    level = getattr(pulsar.LoggerLevel, os.environ.get("MAGNETAR_PY_CLIENT_LOG", "Info"))
    kw.setdefault("logger", pulsar.ConsoleLogger(level))
    return pulsar.Client(service_url, **kw)


@pytest.fixture
def client(standalone):
    if not standalone.running():
        pytest.fail(f"the shared standalone died earlier (exit {standalone.proc.returncode})\n"
                    + standalone.log_tail(), pytrace=False)
    c = make_client(standalone.service_url)
    yield c
    c.close()


@pytest.fixture
def topic():
    """A unique persistent topic name in public/default."""
    return f"persistent://public/default/t-{uuid.uuid4().hex[:12]}"


def receive_n(consumer, n, timeout_s=20.0, ack=False):
    """Receive up to n messages within timeout_s (each receive bounded); returns the list."""
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        remaining_ms = max(1, int((deadline - time.monotonic()) * 1000))
        try:
            msg = consumer.receive(timeout_millis=min(1000, remaining_ms))
        except pulsar.Timeout:
            continue
        if ack:
            consumer.acknowledge(msg)
        out.append(msg)
    return out


def assert_no_more(consumer, wait_ms=1000):
    """Assert that nothing (more) is delivered within wait_ms."""
    try:
        msg = consumer.receive(timeout_millis=wait_ms)
    except pulsar.Timeout:
        return
    pytest.fail(f"unexpected extra message {msg.data()!r} id={msg.message_id()}")


def wait_for(cond, timeout_s=10.0, what="condition"):
    """Poll cond() with backoff until truthy or fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


def roundtrip(service_url, n=3):
    """A normal produce/consume round-trip with the official client; proves the broker still serves."""
    t = f"persistent://public/default/rt-{uuid.uuid4().hex[:12]}"
    c = make_client(service_url)
    try:
        cons = c.subscribe(t, "rt", initial_position=pulsar.InitialPosition.Earliest)
        prod = c.create_producer(t)
        sent = [f"rt-{i}".encode() for i in range(n)]
        for p in sent:
            prod.send(p)
        got = [m.data() for m in receive_n(cons, n, timeout_s=15, ack=True)]
        assert got == sent, f"round-trip after bad input: got {got}"
    finally:
        c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name in ("standalone", "fresh_standalone"):
            server = getattr(item, "funcargs", {}).get(name)
            if isinstance(server, Standalone):
                report.sections.append((f"magnetar log ({name})", server.log_tail()))
