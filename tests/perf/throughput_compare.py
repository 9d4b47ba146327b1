"""Publish throughput of the official Python client vs `magnetar-perf produce`, against ONE
`magnetar standalone`, in one run, alternating the two so load drift hits both.

Settings for both: 1 KiB payloads, batching on (1000 messages / 128 KiB / 1 ms), no
compression, 10,000 sends in flight, one non-partitioned topic each, as fast as possible for
PHASE_S seconds (then flush and wait for every receipt; the rate counts acked messages over
the whole time including the flush).

    MAGNETAR_BIN=$CARGO_TARGET_DIR/debug/magnetar \
    MAGNETAR_PERF_BIN=$CARGO_TARGET_DIR/debug/magnetar-perf \
    ~/.cache/magnetar-venv/bin/python tests/perf/throughput_compare.py [PHASE_S] [ROUNDS]
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pulsar

PHASE_S = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
SIZE = 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(http_port, proc, timeout_s=60):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"standalone exited with {proc.returncode}")
        try:
            with opener.open(f"http://127.0.0.1:{http_port}/admin/v2/brokers/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("standalone not healthy in time")


def python_phase(url, topic):
    client = pulsar.Client(url, io_threads=1, operation_timeout_seconds=30,
                           logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Error))
    try:
        prod = client.create_producer(
            topic, batching_enabled=True, batching_max_messages=1000,
            batching_max_allowed_size_in_bytes=128 * 1024, batching_max_publish_delay_ms=1,
            block_if_queue_full=True, max_pending_messages=10_000,
            compression_type=pulsar.CompressionType.NONE, send_timeout_millis=60_000)
        payload = os.urandom(SIZE // 2).hex().encode()
        lock = threading.Lock()
        done = [0, 0]

        def cb(res, _id):
            with lock:
                done[0 if res == pulsar.Result.Ok else 1] += 1

        sent = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < PHASE_S:
            prod.send_async(payload, cb)
            sent += 1
        prod.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if done[0] + done[1] == sent:
                    break
            time.sleep(0.01)
        el = time.monotonic() - t0
        return {"acked": done[0], "failed": done[1], "seconds": round(el, 2),
                "msg_per_s": round(done[0] / el)}
    finally:
        client.close()


def perf_phase(perf_bin, url, topic):
    out = subprocess.run(
        [perf_bin, "--service-url", url, "produce", topic, "-r", "0", "--duration", str(int(PHASE_S)),
         "-s", str(SIZE), "--batch-max-messages", "1000", "--batch-max-bytes", str(128 * 1024),
         "--batch-delay-ms", "1", "--max-pending", "10000", "--compression", "none"],
        capture_output=True, text=True, timeout=PHASE_S + 90)
    m = re.search(r"summary: produced (\d+) messages in ([\d.]+)s: ([\d.]+) msg/s.*errors (\d+)",
                  out.stdout)
    if not m:
        raise SystemExit(f"no summary from magnetar-perf:\n{out.stdout}\n{out.stderr}")
    return {"acked": int(m.group(1)), "failed": int(m.group(4)), "seconds": float(m.group(2)),
            "msg_per_s": round(float(m.group(3)))}


def main():
    binary = os.environ["MAGNETAR_BIN"]
    perf_bin = os.environ["MAGNETAR_PERF_BIN"]
    port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "magnetar.log"), "w") as log:
            proc = subprocess.Popen(
                [binary, "standalone", "--data-dir", os.path.join(d, "data"), "--port", str(port),
                 "--http-port", str(http_port), "--bind-address", "127.0.0.1"],
                stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"})
            try:
                wait_healthy(http_port, proc)
                url = f"pulsar://127.0.0.1:{port}"
                results = []
                for r in range(ROUNDS):
                    py = python_phase(url, f"persistent://public/default/py-{r}-{time.time_ns()}")
                    rs = perf_phase(perf_bin, url, f"persistent://public/default/rs-{r}-{time.time_ns()}")
                    row = {"round": r + 1, "python": py, "magnetar_perf": rs,
                           "ratio": round(rs["msg_per_s"] / max(py["msg_per_s"], 1), 2)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
                py_mean = sum(x["python"]["msg_per_s"] for x in results) / len(results)
                rs_mean = sum(x["magnetar_perf"]["msg_per_s"] for x in results) / len(results)
                print(json.dumps({"python_mean": round(py_mean), "magnetar_perf_mean": round(rs_mean),
                                  "ratio_of_means": round(rs_mean / max(py_mean, 1), 2)}))
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
