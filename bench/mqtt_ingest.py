"""The MQTT ingest: throughput against a bare paho-mqtt subscriber, and publish -> alert
latency at a fixed rate.

Publishers are Debian's ``mosquitto_pub -l -q 1`` (C; one message per stdin line), as
gateways: ``PUBLISHERS`` of them, each on its own gateway topic ``gw/bench-<k>/up`` with
the sensor id in the JSON payload. (A paho-mqtt QoS 1 publisher manages 2-4k messages/s
here: it walks its whole in-flight list on every PUBACK.)

Throughput: the same N readings are published while (1) a bare paho-mqtt subscriber
(MQTT 5, QoS 1, automatic acknowledgements, counting messages: the floor any Python MQTT
consumer pays) and (2) ``citybrain ingest mqtt`` (mapping, validation, packing, Kafka's
acknowledgement before the MQTT one) take them; each rate runs from its first to its
N-th reading (for the ingest, as read back from Kafka).

Latency: a worker (2,000 synthetic traffic sensors, warmed up), the ingest, and an
open-loop feed writing one reading per line into the publishers at ``--rate``; a spike's
latency runs from its scheduled time to the moment its alert is read back from Kafka
(bench/latency.py's method, with MQTT and the ingest in front).

    python -m bench.mqtt_ingest [--messages 200000] [--rates 10000 1000] [--seconds 20]

Needs the local stack with Mosquitto (``citybrain stack up``). Merges its numbers into
bench/results.json under ``mqtt_ingest``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import paho.mqtt.client as mqtt
from kafka import KafkaProducer
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench import amount, count, out_file, run_main
from bench.catchup import scrape, start_worker, worker_env
from bench.latency import SENSORS, reading, subscribed, warmup_rounds
from citybrain.adapters import write_synthetic_grid
from citybrain.kafka_read import SafePoller
from citybrain.stack import KafkaBroker, MosquittoBroker
from citybrain.stack.topics import run_topics
from streams.settings import REPO_ROOT, Settings, load_settings

PUBLISHERS = 4
PATTERN = "gw/{gateway}/up"


def line(sensor: int, step: int, value: float) -> bytes:
    r = reading(sensor, step, value)
    return json.dumps({"sensor_id": r.sensor_id, "value": r.value, "ts": r.ts}).encode() + b"\n"


def publishers(settings: Settings) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [
                "mosquitto_pub",
                "-h",
                settings.mqtt_host,
                "-p",
                str(settings.mqtt_port),
                "-q",
                "1",
                "-V",
                "mqttv5",
                "-M",
                "1000",
                "-t",
                f"gw/bench-{k}/up",
                "-l",
            ],
            stdin=subprocess.PIPE,
        )
        for k in range(PUBLISHERS)
    ]


def close(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.close()
    for p in procs:
        p.wait(300)


def feed_all(settings: Settings, n: int, step0: int) -> float:
    """Publish n readings as fast as the publishers take them; returns messages/s."""
    procs = publishers(settings)
    start = time.perf_counter()
    pipes: list[IO[bytes]] = [p.stdin for p in procs if p.stdin is not None]
    for k, pipe in enumerate(pipes):
        chunk = b"".join(
            line(i % SENSORS, step0 + i // SENSORS, 10.0 + (i % 7) / 10)
            for i in range(k, n, PUBLISHERS)
        )
        threading.Thread(target=pipe.write, args=(chunk,), daemon=True).start()
    time.sleep(0.1)
    close(procs)
    return n / (time.perf_counter() - start)


def bare_subscriber(settings: Settings, n: int) -> dict[str, float]:
    """A bare paho subscriber's receive rate of a live stream of n QoS 1 messages."""
    got = [0]
    times: dict[str, float] = {}
    done, ready = threading.Event(), threading.Event()

    def on_connect(client: Any, *_: Any) -> None:
        client.subscribe("gw/+/up", qos=1)

    def on_subscribe(*_: Any) -> None:
        ready.set()

    def on_message(*_: Any) -> None:
        got[0] += 1
        if got[0] == 1:
            times["first"] = time.perf_counter()
        if got[0] == n:
            times["last"] = time.perf_counter()
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=MQTTProtocolVersion.MQTTv5)
    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = 10_000  # as the ingest's default --inflight
    c.connect(settings.mqtt_host, settings.mqtt_port, properties=props)
    c.loop_start()
    ready.wait(30)
    published = feed_all(settings, n, 0)
    if not done.wait(600):
        raise SystemExit(f"bare subscriber: {got[0]} of {n} messages in 600 s")
    c.disconnect()
    c.loop_stop()
    return {"msgs_per_s": n / (times["last"] - times["first"]), "published_per_s": published}


def ingest_cmd(client_id: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "citybrain",
        "ingest",
        "mqtt",
        "--topic",
        PATTERN,
        "--client-id",
        client_id,
        "--stats-every",
        "5",
        *extra,
    ]


def wait_for_line(log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise SystemExit(f"{log}: no {text!r} in {timeout:.0f} s:\n{log.read_text()[-2000:]}")


def read_back(settings: Settings, n: int, out: dict[str, float], timeout: float = 900) -> None:
    """Times of the first and the n-th packed reading read back from Kafka."""
    # Through SafePoller (bench.latency.subscribed): a record kafka-python cannot decode
    # is skipped with a warning, not raised out of poll for ever after.
    poller = SafePoller(*subscribed(settings, "readings", "earliest"))
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < n and time.monotonic() < deadline:
            for records in poller.poll(timeout_ms=50).values():
                for r in records:
                    if seen == 0:
                        out["first"] = time.perf_counter()
                    seen += len(json.loads(r.value)["readings"])
        out["last"] = time.perf_counter()
        out["seen"] = seen
    finally:
        poller.consumer.close()


def ingest_throughput(
    settings: Settings, env: dict[str, str], n: int, workdir: Path
) -> dict[str, float]:
    log = workdir / "ingest-throughput.log"
    proc = subprocess.Popen(
        ingest_cmd(f"bench-ingest-{int(time.time())}"),
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_line(log, "subscribed to")
        times: dict[str, float] = {}
        reader = threading.Thread(target=read_back, args=(settings, n, times))
        reader.start()
        time.sleep(1.0)  # the consumer has its partitions before the first reading
        published = feed_all(settings, n, 0)
        reader.join()
        if times.get("seen", 0) < n:
            raise SystemExit(f"ingest: {times.get('seen')} of {n} readings on Kafka")
        return {
            "readings_per_s": n / (times["last"] - times["first"]),
            "published_per_s": published,
        }
    finally:
        proc.terminate()
        proc.wait(60)


def latency(
    settings: Settings, env: dict[str, str], rate: int, seconds: float, workdir: Path
) -> dict[str, Any]:
    port = settings.worker_port + 3
    wenv = {**env, "CITYBRAIN_WORKER_PORT": str(port), "CITYBRAIN_DETECTOR_MIN_SAMPLES": "20"}
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks=1, linger_ms=2)
    rng = np.random.default_rng(rate)
    # As bench.latency warms its sensors (a spike decisive for corroboration): this
    # module still imported the fixed WARMUP_ROUNDS latency no longer has (trial 25).
    rounds = warmup_rounds(settings.detector, settings.corroboration_decisive)
    for step in range(rounds):  # warm every sensor's detector before timing
        for s in range(SENSORS):
            r = reading(s, step, 10 + rng.random())
            producer.send(settings.topic("readings"), key=r.sensor_id.encode(), value=r.to_json())
    producer.flush()
    producer.close()
    worker = start_worker(wenv, workdir / "worker.log")
    ilog = workdir / "ingest-latency.log"
    ingest = subprocess.Popen(
        ingest_cmd(f"bench-lat-{int(time.time())}"),
        env=wenv,
        stdout=ilog.open("wb"),
        stderr=subprocess.STDOUT,
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        wait_for_line(ilog, "subscribed to")
        while scrape(port, "citybrain_readings_total") < rounds * SENSORS:
            time.sleep(0.5)
        total = int(rate * seconds)
        # About 200 spikes, each on a different sensor (bench/latency.py's rule).
        spike_every = max(1, total // 200) | 1
        while spike_every % 5 == 0:
            spike_every += 2
        scheduled: dict[str, float] = {}
        arrived: dict[str, float] = {}
        poller = SafePoller(*subscribed(settings, "alerts", "latest"))
        poller.poll(timeout_ms=1000)
        stop = threading.Event()

        def collect() -> None:
            deadline = time.monotonic() + seconds + 120
            while time.monotonic() < deadline and not (
                stop.is_set() and len(arrived) >= len(scheduled)
            ):
                for records in poller.poll(timeout_ms=50).values():
                    now = time.time()
                    for record in records:
                        doc = json.loads(record.value)
                        if doc["status"] == "firing":
                            arrived.setdefault(doc["sensor_id"], now)

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        procs = publishers(settings)
        pipes = [p.stdin for p in procs if p.stdin is not None]
        t0 = time.time() + 0.5
        n = 0
        while n < total:
            # Every millisecond, whatever is due, one line per reading, round robin.
            now = time.time()
            due = min(total, int((now - t0) * rate) + 1) if now >= t0 else 0
            batches: list[list[bytes]] = [[] for _ in pipes]
            while n < due:
                sensor = n % SENSORS
                step = rounds + n // SENSORS
                sid = f"s{sensor:05d}"
                spike = n % spike_every == 0 and sid not in scheduled
                if spike:
                    scheduled[sid] = t0 + n / rate
                batches[n % len(pipes)].append(
                    line(sensor, step, 200.0 if spike else 10 + rng.random())
                )
                n += 1
            for pipe, batch in zip(pipes, batches, strict=True):
                if batch:
                    pipe.write(b"".join(batch))
                    pipe.flush()
            time.sleep(0.001)
        achieved = total / (time.time() - t0)
        close(procs)
        stop.set()
        reader.join(seconds + 150)
        poller.consumer.close()
        lat = np.array([arrived[s] - t for s, t in scheduled.items() if s in arrived])
        out: dict[str, Any] = {
            "rate": rate,
            "achieved_feed_rate": round(achieved),
            "spikes": len(scheduled),
            "alerts": int(lat.size),
        }
        for q, name in ((50, "p50_ms"), (99, "p99_ms")):
            if lat.size:
                out[name] = round(float(np.percentile(lat, q)) * 1000, 1)
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        ingest.terminate()
        ingest.wait(60)
        worker.terminate()
        worker.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=count(), default=200_000)
    parser.add_argument("--rates", type=count(), nargs="+", default=[10_000, 1_000])
    parser.add_argument(
        "--only", choices=["throughput", "latency"], help="one half (the other is kept from --out)"
    )
    parser.add_argument("--seconds", type=amount(), default=20.0)
    parser.add_argument("--out", type=out_file, default=REPO_ROOT / "bench" / "results.json")
    args = parser.parse_args()
    base = load_settings()
    if not (KafkaBroker(base).ready() and MosquittoBroker(base).ready()):
        sys.exit("the local stack is not running: citybrain stack up")
    workdir = base.run_dir / f"mqtt-ingest-{int(time.time())}"
    workdir.mkdir(parents=True, exist_ok=True)
    grid = write_synthetic_grid(
        workdir / "grid.yaml",
        [f"s{i:05d}" for i in range(SENSORS)],
        "traffic_flow",
        "vehicles/5min",
        communities=100,
    )
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
        "messages": args.messages,
    }

    runs = contextlib.ExitStack()

    def fresh(name: str) -> tuple[Settings, dict[str, str]]:
        run = f"{name}{int(time.time())}"
        settings = base.model_copy(update={"topic_prefix": run, "app_id": run})
        runs.enter_context(run_topics(settings))  # deleted when main ends
        return settings, worker_env(run, grid, settings.worker_port, ack_deadline_seconds="3600")

    with runs:
        merged = json.loads(args.out.read_text()) if args.out.exists() else {}
        if args.only == "latency":
            result = merged.get("mqtt_ingest", result)
        else:
            settings, _ = fresh("mqttbare")
            result["bare_paho"] = bare_subscriber(settings, args.messages)
            settings, env = fresh("mqttingest")
            result["ingest"] = ingest_throughput(settings, env, args.messages, workdir)
            result["ingest_vs_bare"] = round(
                result["ingest"]["readings_per_s"] / result["bare_paho"]["msgs_per_s"], 3
            )
            print(json.dumps(result, indent=2), flush=True)
        if args.only != "throughput":
            result["latency"] = []
            for rate in args.rates:
                settings, env = fresh(f"mqttlat{rate}-")
                result["latency"].append(latency(settings, env, rate, args.seconds, workdir))
                print(json.dumps(result["latency"][-1]), flush=True)
            result["latency_date"] = datetime.now(UTC).isoformat(timespec="seconds")
        result["load_average_at_end"] = round(os.getloadavg()[0], 1)
        print(json.dumps(result, indent=2))
        merged["mqtt_ingest"] = result
        args.out.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    run_main(main)
