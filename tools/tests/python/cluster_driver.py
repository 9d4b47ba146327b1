"""Produce/consume driver for tools/tests/cluster_*.rs, using the official Pulsar client.

  cluster_driver.py produce SERVICE_URL HTTP_URL TOPIC COUNT DEADLINE_SECS [FIRST]
      prints "OWNER <brokerUrl>" (HTTP lookup), then "ACK <i>" for every acknowledged
      message i (in order), "FAIL <i> <error>" for a failed send, and "DONE".
  cluster_driver.py consume SERVICE_URL TOPIC IDLE_SECS DEADLINE_SECS
      prints "MSG <i>" for every message received (subscription from the earliest message)
      until IDLE_SECS pass without one, then "END". "READY" once subscribed.
  cluster_driver.py read SERVICE_URL TOPIC DEADLINE_SECS
      a reader from the earliest message prints "MSG <i>" for every stored message up to
      the end of the topic, then "END" (a storage check: each stored copy shows once).
  cluster_driver.py last-seq SERVICE_URL TOPIC PRODUCER_NAME
      creates a producer named PRODUCER_NAME and prints "LASTSEQ <n>": the last sequence id
      the broker reports for that name (deduplication state).
Every line is flushed at once so the test can act on it (for example kill the owner).
Environment: CLUSTER_DRIVER_SEND_TIMEOUT_MS (30000), CLUSTER_DRIVER_PRODUCER_NAME
(cluster-driver), CLUSTER_DRIVER_WINDOW (0: synchronous sends; N: up to N async sends in
flight, acks printed as they arrive), CLUSTER_DRIVER_SUBSCRIPTION (cluster-check),
CLUSTER_DRIVER_SUB_TYPE (exclusive or shared), CLUSTER_DRIVER_CONSUMER_NAME.
"""
import json
import os
import sys
import threading
import time
import urllib.request

import pulsar


_out_lock = threading.Lock()


def out(line):
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def produce(service_url, http_url, topic, count, deadline_secs, first=0):
    local = topic.split("/")[-1]
    owner = json.load(urllib.request.urlopen(
        f"{http_url}/lookup/v2/topic/persistent/public/default/{local}", timeout=10))
    out(f"OWNER {owner['brokerUrl']}")
    client = pulsar.Client(service_url, operation_timeout_seconds=30)
    producer = client.create_producer(
        f"persistent://public/default/{local}",
        send_timeout_millis=int(os.environ.get("CLUSTER_DRIVER_SEND_TIMEOUT_MS", "30000")),
        batching_enabled=False,
        producer_name=os.environ.get("CLUSTER_DRIVER_PRODUCER_NAME", "cluster-driver"),
    )
    end = time.monotonic() + deadline_secs
    window = int(os.environ.get("CLUSTER_DRIVER_WINDOW", "0"))
    slots = threading.Semaphore(max(window, 1))

    def done(i):
        def callback(res, _msg_id):
            if res == pulsar.Result.Ok:
                out(f"ACK {i}")
            else:
                out(f"FAIL {i} {res}")
            slots.release()
        return callback

    for i in range(first, first + count):
        if time.monotonic() > end:
            out("DEADLINE")
            break
        if window > 0:
            slots.acquire()
            producer.send_async(str(i).encode(), done(i))
        else:
            try:
                producer.send(str(i).encode())
                out(f"ACK {i}")
            except Exception as e:  # noqa: BLE001 - any failure is reported, the run goes on
                out(f"FAIL {i} {type(e).__name__}")
        time.sleep(0.01)
    if window > 0:
        for _ in range(window):
            slots.acquire(timeout=max(end - time.monotonic(), 1))
    producer.close()
    client.close()
    out("DONE")


def consume(service_url, topic, idle_secs, deadline_secs):
    local = topic.split("/")[-1]
    client = pulsar.Client(service_url, operation_timeout_seconds=30)
    shared = os.environ.get("CLUSTER_DRIVER_SUB_TYPE", "exclusive") == "shared"
    kwargs = {}
    if os.environ.get("CLUSTER_DRIVER_CONSUMER_NAME"):
        kwargs["consumer_name"] = os.environ["CLUSTER_DRIVER_CONSUMER_NAME"]
    consumer = client.subscribe(
        f"persistent://public/default/{local}",
        os.environ.get("CLUSTER_DRIVER_SUBSCRIPTION", "cluster-check"),
        consumer_type=pulsar.ConsumerType.Shared if shared else pulsar.ConsumerType.Exclusive,
        initial_position=pulsar.InitialPosition.Earliest,
        **kwargs,
    )
    out("READY")
    end = time.monotonic() + deadline_secs
    while time.monotonic() < end:
        try:
            msg = consumer.receive(timeout_millis=int(idle_secs * 1000))
        except pulsar.Timeout:
            break
        out(f"MSG {msg.data().decode()}")
        consumer.acknowledge(msg)
    consumer.close()
    client.close()
    out("END")


def read(service_url, topic, deadline_secs):
    local = topic.split("/")[-1]
    client = pulsar.Client(service_url, operation_timeout_seconds=30)
    reader = client.create_reader(f"persistent://public/default/{local}", pulsar.MessageId.earliest)
    end = time.monotonic() + deadline_secs
    while time.monotonic() < end and reader.has_message_available():
        try:
            msg = reader.read_next(timeout_millis=10000)
        except pulsar.Timeout:
            break
        out(f"MSG {msg.data().decode()}")
    reader.close()
    client.close()
    out("END")


def last_seq(service_url, topic, name):
    local = topic.split("/")[-1]
    client = pulsar.Client(service_url, operation_timeout_seconds=30)
    producer = client.create_producer(f"persistent://public/default/{local}", producer_name=name)
    out(f"LASTSEQ {producer.last_sequence_id()}")
    producer.close()
    client.close()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "produce":
        first = int(sys.argv[7]) if len(sys.argv) > 7 else 0
        produce(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]), first)
    elif mode == "consume":
        consume(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
    elif mode == "read":
        read(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif mode == "last-seq":
        last_seq(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown mode {mode}")
