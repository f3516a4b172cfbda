"""Live latency: an open-loop producer sends readings at a fixed rate; a spike's latency is
from its *scheduled* send time (so a producer falling behind is charged, not hidden) to
the moment its alert is read back from Kafka. Reports p50, p99 and p99.9 per rate.

    python -m bench.latency [--rates 2000 10000 25000 50000] [--seconds 20]

Needs the local stack (``citybrain stack up``) and the ``bench`` extra (``pip install -e
'.[bench]'``, which ``make bench`` does): one reading per message, the timed sends go
through librdkafka (confluent-kafka), whose ``produce`` is C. kafka-python's ``send`` is
Python (about 35 µs a message here), so on two cores shared with the worker and Kafka the
generator itself fell behind 25,000/s (20,524/s at 20:39 on 2026-12-01), and the
latency charged its lag to the pipeline. Merges its numbers into bench/results.json;
each spike's send time and latency go to ``spikes-<rate>.json`` beside the worker's log in
the run directory's ``latency-<time>/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaConsumer, KafkaProducer

from bench import amount, count, out_file, run_main
from bench.catchup import scrape, start_worker, worker_env
from citybrain.adapters import write_synthetic_grid
from citybrain.detect import rows_to_reach
from citybrain.kafka_read import SafePoller
from citybrain.stack import KafkaBroker
from citybrain.stack.topics import run_topics
from streams.events import MAX_PACK_READINGS, Reading
from streams.feeds import send_packs
from streams.partitioning import ReadingPacker, sensor_partition
from streams.settings import REPO_ROOT, Settings, load_settings

SENSORS = 2000


def subscribed(
    settings: Settings, role: str, offset_reset: str
) -> tuple[KafkaConsumer, Callable[[], KafkaConsumer]]:
    """A consumer (no group) subscribed to ``settings``' topic of ``role``, starting at
    ``offset_reset`` (``earliest``/``latest``), and a maker of fresh ones of the same
    settings, unsubscribed: the two ``SafePoller`` takes (its probes assign one
    partition each)."""

    def make() -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            auto_offset_reset=offset_reset,
            enable_auto_commit=False,
            group_id=None,
            **settings.kafka_python_options(),
        )

    consumer = make()
    consumer.subscribe([settings.topic(role)])
    return consumer, make


def warmup_rounds(detector: str, decisive: float) -> int:
    """Readings per sensor before timing: enough that a spike's score is *decisive* for
    the corroboration stage (``CITYBRAIN_CORROBORATION_DECISIVE``), which forwards such
    an alert at once. A lone alert below it waits, by design, up to
    ``CITYBRAIN_CORROBORATION_GRACE`` (30 s) for a neighbour's mark (streams/
    corroborating.py), and the tail detector caps a young sensor's scores by how little
    it has seen: with 64 readings (this bench until 2026-12-01 night) the spikes scored
    0.31-0.40 and every one waited for a neighbour (p50 3.0 s of that hop alone at
    25,000/s), which measured the policy's hold, not the pipeline. The rounds are
    measured with the real detector (``citybrain.detect.rows_to_reach``: 294 for
    ``tail`` at 0.9), plus a margin; at least 64, past the warm-up's few-data cap."""
    needed = rows_to_reach(detector, decisive, limit=2000)
    return max(64, (needed or 64) + 16)


START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def reading(sensor: int, step: int, value: float) -> Reading:
    return Reading(
        START + 60 * step,
        f"s{sensor:05d}",
        "traffic_flow",
        value,
        "vehicles/5min",
        f"c{sensor % 100}",
    )


class FastProducer:
    """The timed sends of one reading per message, through librdkafka (acks=1, 2 ms
    linger, as the kafka-python producer of the warm-up and of packs). Raises
    ``SystemExit`` naming the extra to install when confluent-kafka is missing."""

    def __init__(self, bootstrap: str) -> None:
        try:
            from confluent_kafka import Producer
        except ImportError:
            raise SystemExit(
                "bench.latency needs confluent-kafka: .venv/bin/pip install -e '.[bench]'"
            ) from None
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 2})
        self._sent = 0

    def send(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        """Queue one message for ``partition`` (delivery reports served every 1,000)."""
        self._producer.produce(topic, value=value, key=key, partition=partition)
        self._sent += 1
        if self._sent % 1000 == 0:
            self._producer.poll(0)

    def flush(self) -> None:
        """Wait until every queued message is acknowledged."""
        self._producer.flush(60)


def measure(rate: int, seconds: float, workdir: Path, pack_ms: float = 0) -> dict[str, Any]:
    """One rate. With ``pack_ms``, the producer is an edge gateway that sends what it has
    gathered as ``readings/1`` packs every ``pack_ms`` milliseconds (the wait is part of
    each reading's latency, which runs from its scheduled time)."""
    run = f"lat{rate}{'p' if pack_ms else ''}-{int(time.time())}"
    settings = load_settings(topic_prefix=run, app_id=run, partitions=2)
    with run_topics(settings):
        grid = write_synthetic_grid(
            workdir / "grid.yaml",
            [f"s{i:05d}" for i in range(SENSORS)],
            "traffic_flow",
            "vehicles/5min",
            communities=100,
        )
        port = settings.worker_port + 3
        env = worker_env(run, grid, port, detector_min_samples="20")
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks=1, linger_ms=2)
        fast = FastProducer(settings.kafka_bootstrap) if not pack_ms else None
        rng = np.random.default_rng(rate)
        rounds = warmup_rounds(settings.detector, settings.corroboration_decisive)
        for step in range(rounds):  # warm every sensor's detector before timing
            for s in range(SENSORS):
                sid = f"s{s:05d}"
                message = reading(s, step, 10 + rng.random()).to_json()
                if fast is not None:
                    fast.send(
                        settings.topic("readings"),
                        sid.encode(),
                        message,
                        sensor_partition(sid, settings.partitions),
                    )
                else:
                    producer.send(settings.topic("readings"), key=sid.encode(), value=message)
        producer.flush()
        if fast is not None:
            fast.flush()
        worker = start_worker(env, workdir / f"worker-{rate}.log")
        try:
            warm = rounds * SENSORS
            while scrape(port, "citybrain_readings_total") < warm:
                time.sleep(0.5)
            scheduled: dict[str, float] = {}  # sensor id -> scheduled send time of its spike
            arrived: dict[str, float] = {}
            # Through SafePoller, as every citybrain reader: kafka-python's poll raises
            # for a record it cannot decode, and then never moves past it.
            poller = SafePoller(*subscribed(settings, "alerts", "latest"))
            poller.poll(timeout_ms=1000)  # join, position at the end before sending

            others: set[str] = set()  # sensors alerting without a spike (false alarms)

            def collect() -> None:
                # Only the spiked sensors' alerts count and end the wait: counting every
                # firing alert let a few false alarms elsewhere end it before the last
                # spikes' alerts came (the "192 of 200" of earlier runs).
                deadline = time.monotonic() + seconds + 60
                while time.monotonic() < deadline:
                    for records in poller.poll(timeout_ms=200).values():
                        now = time.time()
                        for record in records:
                            doc = json.loads(record.value)
                            if doc["status"] != "firing":
                                continue
                            if doc["sensor_id"] in spiked:
                                arrived.setdefault(doc["sensor_id"], now)
                            else:
                                others.add(doc["sensor_id"])
                    if stop.is_set() and len(arrived) >= len(spiked):
                        return

            total = int(rate * seconds)
            # About 200 spikes spread over the run, each on a different sensor: a step coprime
            # with the sensor count (2000 = 2^4 * 5^3) never lands on the same sensor twice.
            spike_every = max(1, total // 200) | 1
            while spike_every % 5 == 0:
                spike_every += 2
            packer = ReadingPacker(settings.partitions, MAX_PACK_READINGS) if pack_ms else None
            topic = settings.topic("readings")

            def flush_packs() -> None:
                send_packs(producer, topic, packer.flush() if packer else [])

            # The run's readings, built before the clock starts: the producer shares two cores
            # with the worker and Kafka, and building each reading (and kafka-python's own
            # partitioner, murmur2 in Python) on the clock held it below 25,000 messages/s,
            # which the latency then charged to the pipeline (docs/benchmarks.md).
            planned: list[tuple[Reading, bytes, bytes, int, bool]] = []
            spiked: set[str] = set()
            sensor_round: dict[str, int] = {}
            for n in range(total):
                sensor = n % SENSORS
                sid = f"s{sensor:05d}"
                spike = n % spike_every == 0 and sid not in spiked
                if spike:
                    spiked.add(sid)
                    sensor_round[sid] = n // SENSORS
                value = 200.0 if spike else 10 + rng.random()
                r = reading(sensor, rounds + n // SENSORS, value)
                partition = sensor_partition(sid, settings.partitions)
                planned.append(
                    (r, sid.encode(), r.to_json() if packer is None else b"", partition, spike)
                )
            stop = threading.Event()
            reader = threading.Thread(target=collect, daemon=True)
            reader.start()
            t0 = time.time()
            if fast is not None:
                # Every message due by now, back to back, then a sleep until the next is due:
                # one clock read per burst rather than per message, so the generator keeps
                # the schedule (each message's latency still runs from its own due time).
                n = 0
                while n < total:
                    now = time.time()
                    due_by_now = min(total, int((now - t0) * rate) + 1)
                    if due_by_now <= n:
                        time.sleep(t0 + n / rate - now)
                        continue
                    for r, key, value_bytes, partition, spike in planned[n:due_by_now]:
                        fast.send(topic, key, value_bytes, partition)
                        if spike:
                            scheduled[r.sensor_id] = t0 + n / rate
                        n += 1
            else:
                assert packer is not None  # one per message goes through ``fast``
                flushed = t0
                for n, (r, _, _, _, spike) in enumerate(planned):
                    due = t0 + n / rate
                    if due - flushed >= pack_ms / 1000:
                        flush_packs()
                        flushed = due
                    now = time.time()
                    if due > now:
                        time.sleep(due - now)
                    packer.add(r)  # never fills: the timer sends the packs
                    if spike:
                        scheduled[r.sensor_id] = due
            flush_packs()
            producer.flush()
            if fast is not None:
                fast.flush()
            achieved = total / (time.time() - t0)
            stop.set()
            reader.join(seconds + 90)
            poller.consumer.close()
            latencies = np.array([arrived[s] - t for s, t in scheduled.items() if s in arrived])
            # Each spike's (scheduled send, seconds into the run; latency, ms) beside the
            # worker's log, to tell a periodic stall (a commit, a collection) from noise.
            (workdir / f"spikes-{rate}{'p' if pack_ms else ''}.json").write_text(
                json.dumps(
                    sorted(
                        (round(t - t0, 4), round((arrived[s] - t) * 1000, 1))
                        for s, t in scheduled.items()
                        if s in arrived
                    )
                )
            )
            result: dict[str, Any] = {
                "rate": rate,
                "pack_ms": pack_ms,
                "achieved_send_rate": round(achieved),
                "producer": "kafka-python" if packer is not None else "confluent-kafka",
                "warmup_readings_per_sensor": rounds,
                "spikes": len(scheduled),
                "alerts": int(latencies.size),
                "other_sensors_alerting": len(others),
                # Each spike that did not alert, as its sensor's reading count at the spike
                # (warm-up readings included): a young sensor's scores are capped.
                "missed_at_reading": sorted(
                    rounds + 1 + int(sensor_round[s]) for s in scheduled if s not in arrived
                ),
            }
            if latencies.size:
                for q, name in ((50, "p50_ms"), (99, "p99_ms"), (99.9, "p999_ms")):
                    result[name] = round(float(np.percentile(latencies, q)) * 1000, 1)
            return result
        finally:
            worker.terminate()
            worker.wait(30)
            producer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", type=count(), nargs="+", default=[2000, 10000, 25000, 50000])
    parser.add_argument("--seconds", type=amount(), default=20.0)
    parser.add_argument("--out", type=out_file, default=REPO_ROOT / "bench" / "results.json")
    parser.add_argument(
        "--pack-ms",
        type=float,
        default=0,
        help="send readings/1 packs every N ms, as an edge gateway does; the results go "
        "under latency_packed in --out",
    )
    args = parser.parse_args()
    settings = load_settings()
    if not KafkaBroker(settings).ready():
        sys.exit("the local stack is not running: citybrain stack up")
    workdir = settings.run_dir / f"latency-{int(time.time())}"
    workdir.mkdir(parents=True, exist_ok=True)
    results = [measure(rate, args.seconds, workdir, args.pack_ms) for rate in args.rates]
    print(json.dumps(results, indent=2))
    merged = json.loads(args.out.read_text()) if args.out.exists() else {}
    suffix = "_packed" if args.pack_ms else ""
    merged[f"latency{suffix}"] = results
    at_25k = next((r for r in results if r["rate"] == 25000), None)
    merged[f"p99_ms_at_25k{suffix}"] = at_25k.get("p99_ms") if at_25k else None
    merged["latency_date"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    run_main(main)
