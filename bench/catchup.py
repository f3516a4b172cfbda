"""Catch-up throughput: readings preloaded into Kafka, then drained by the whole citybrain
pipeline and, in the same run, by two floors: a bare aiokafka consume-and-decode loop and
Kafka's own ConsumerPerformance. Reported as readings/s and ratios.

    python -m bench.catchup [--readings 1000000] [--sensors 20000]

Needs the local stack (``citybrain stack up``). Writes bench/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

from citybrain.adapters import write_synthetic_grid
from citybrain.stack import KafkaBroker
from citybrain.stack.topics import create_topics
from streams.events import Reading
from streams.settings import REPO_ROOT, load_settings

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def write_grid(path: Path, sensors: int) -> None:
    ids = [f"s{i:05d}" for i in range(sensors)]
    write_synthetic_grid(path, ids, "traffic_flow", "vehicles/5min", communities=100)


def preload(bootstrap: str, topic: str, readings: int, sensors: int, seed: int = 1) -> int:
    """About 250-byte JSON readings, round-robin over sensors, 0.1 % of them spikes."""
    rng = random.Random(seed)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=20,
        batch_size=512 * 1024,
        compression_type=None,
    )
    spikes = 0
    for n in range(readings):
        sensor = n % sensors
        step = n // sensors
        value = 10 + rng.random() * 4
        if step > 30 and rng.random() < 0.001:
            value *= 20
            spikes += 1
        r = Reading(
            START + 300 * step,
            f"s{sensor:05d}",
            "traffic_flow",
            round(value, 3),
            "vehicles/5min",
            f"c{sensor % 100}",
        )
        producer.send(topic, key=r.sensor_id.encode(), value=r.to_json())
    producer.flush()
    producer.close()
    return spikes


def scrape(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return -1.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def worker_env(run: str, grid: Path, port: int, **settings: str) -> dict[str, str]:
    """The environment of a benchmark worker: its own topics, group, grid and port, and
    acknowledgement deadlines long enough that no run escalates during the measurement."""
    extra = {f"CITYBRAIN_{name.upper()}": value for name, value in settings.items()}
    return {
        **os.environ,
        "CITYBRAIN_TOPIC_PREFIX": run,
        "CITYBRAIN_APP_ID": run,
        "CITYBRAIN_GRID_FILE": str(grid),
        "CITYBRAIN_WORKER_PORT": str(port),
        "CITYBRAIN_ACK_DEADLINE_SECONDS": "3600",
        **extra,
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A ``citybrain worker`` in its own process, quiet but for warnings."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "citybrain.cli", "worker", "--loglevel", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def run_pipeline(env: dict[str, str], port: int, readings: int, log: Path) -> float:
    proc = start_worker(env, log)
    try:
        while scrape(port, "citybrain_readings_total") < 0:
            time.sleep(0.2)
        start = time.monotonic()
        while True:
            done = scrape(port, "citybrain_readings_total") + scrape(
                port, "citybrain_dead_letters_total"
            )
            if done >= readings:
                return readings / (time.monotonic() - start)
            if proc.poll() is not None:
                raise RuntimeError(f"worker died; see {log}")
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(30)


async def aiokafka_floor(bootstrap: str, topic: str, readings: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    start = None
    try:
        while seen < readings:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            start = start or time.monotonic()
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
    finally:
        await consumer.stop()
    return readings / (time.monotonic() - (start or time.monotonic()))


def consumer_performance(broker: KafkaBroker, topic: str, readings: int) -> float | None:
    cmd = broker._java(
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        broker.settings.kafka_bootstrap,
        "--topic",
        topic,
        "--messages",
        str(readings),
        "--timeout",
        "60000",
    )
    out = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if re.match(r"^\d{4}-", line)]
    if out.returncode != 0 or not lines:
        return None
    fields = [f.strip() for f in lines[-1].split(",")]
    return float(fields[5])  # nMsg.sec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--sensors", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results.json")
    args = parser.parse_args()
    run = f"bench{int(time.time())}"
    settings = load_settings(topic_prefix=run, app_id=run, partitions=2)
    broker = KafkaBroker(settings)
    if not broker.ready():
        sys.exit("the local stack is not running: citybrain stack up")
    create_topics(settings)
    work = settings.run_dir / run
    work.mkdir(parents=True, exist_ok=True)
    grid = work / "grid.yaml"
    write_grid(grid, args.sensors)
    topic = settings.topic("readings")
    t0 = time.monotonic()
    spikes = preload(settings.kafka_bootstrap, topic, args.readings, args.sensors)
    print(f"preloaded {args.readings:,} readings ({spikes} spikes) in {time.monotonic() - t0:.1f}s")
    port = settings.worker_port + 3
    env = worker_env(run, grid, port, batch_size="5000")
    floor = asyncio.run(aiokafka_floor(settings.kafka_bootstrap, topic, args.readings))
    print(f"aiokafka consume+decode: {floor:,.0f} readings/s")
    perf = consumer_performance(broker, topic, args.readings)
    print(f"ConsumerPerformance: {perf if perf is None else f'{perf:,.0f}'} messages/s")
    pipeline = run_pipeline(env, port, args.readings, work / "worker.log")
    print(f"citybrain pipeline: {pipeline:,.0f} readings/s")
    results: dict[str, Any] = {
        "catchup_readings_per_s": round(pipeline),
        "aiokafka_readings_per_s": round(floor),
        "consumer_perf_messages_per_s": None if perf is None else round(perf),
        "ratio_vs_aiokafka": round(pipeline / floor, 3),
        "ratio_vs_consumer_perf": None if perf is None else round(pipeline / perf, 3),
        "ratio_vs_quix": None,  # not measured yet (Quix Streams candidate not built)
        "p99_ms_at_25k": None,  # not measured yet (open-loop latency bench not built)
        "readings": args.readings,
        "sensors": args.sensors,
        "partitions": 2,
        "injected_spikes": spikes,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
