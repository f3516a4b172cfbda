"""Catch-up throughput: readings preloaded into Kafka, then drained by the whole citybrain
pipeline and, in the same run, by two floors -- a bare aiokafka consume-and-decode loop and
Kafka's own ConsumerPerformance -- and by a minimal Quix Streams pipeline doing the same
detection (bench/quix_candidate.py), whose firing alerts must equal citybrain's. Reported
as readings/s and ratios.

    python -m bench.catchup [--readings 1000000] [--sensors 20000]

Needs the local stack (``citybrain stack up``). Writes bench/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError

from bench import count, machine, out_file, run_main
from citybrain.adapters import write_synthetic_grid
from citybrain.errors import KafkaStoppedError
from citybrain.kafka_read import bounded
from citybrain.stack import KafkaBroker
from citybrain.stack.topics import run_topics
from streams.corroborating import ROLE as CORROBORATION
from streams.events import Reading
from streams.feeds import send_packs
from streams.partitioning import ReadingPacker, sensor_partition
from streams.settings import REPO_ROOT, Settings, load_settings

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
# Seconds the preload's last sends may take to reach Kafka (as `citybrain replay`'s).
FLUSH_SECONDS = 150.0
# Seconds the aiokafka floor waits for its next records before Kafka is said to have
# stopped answering (a preloaded topic is read at tens of thousands of records a second).
FLOOR_IDLE_SECONDS = 60.0


def write_grid(path: Path, sensors: int) -> None:
    ids = [f"s{i:05d}" for i in range(sensors)]
    write_synthetic_grid(path, ids, "traffic_flow", "vehicles/5min", communities=100)


def catchup_readings(readings: int, sensors: int, seed: int = 1) -> Iterator[Reading]:
    """About 250-byte JSON readings, round-robin over sensors, 0.1 % of them spikes
    (value x20); the same sequence for the same arguments."""
    rng = random.Random(seed)
    for n in range(readings):
        sensor = n % sensors
        step = n // sensors
        value = 10 + rng.random() * 4
        if step > 30 and rng.random() < 0.001:
            value *= 20
        yield Reading(
            START + 300 * step,
            f"s{sensor:05d}",
            "traffic_flow",
            round(value, 3),
            "vehicles/5min",
            f"c{sensor % 100}",
        )


def is_spike(reading: Reading) -> bool:
    return reading.value > 100  # normal values are 10..14, spikes x20


def catchup_messages(
    source: Iterable[Reading], pack: int = 0, partitions: int = 2
) -> Iterator[tuple[int, bytes, bytes]]:
    """Readings as Kafka messages (partition, key, value): one reading each, or
    ``readings/1`` packs of ``pack`` (an edge gateway's batches)."""
    if pack:
        yield from ReadingPacker(partitions, pack).pack_all(source)
        return
    for r in source:
        yield sensor_partition(r.sensor_id, partitions), r.sensor_id.encode(), r.to_json()


def preload(
    bootstrap: str, topic: str, readings: int, sensors: int, pack: int = 0
) -> tuple[int, int]:
    """Sends the catch-up's messages; returns (spikes, messages)."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=20,
        batch_size=512 * 1024,
        compression_type=None,
    )
    spikes = 0

    def counted() -> Iterator[Reading]:
        nonlocal spikes
        for reading in catchup_readings(readings, sensors):
            spikes += is_spike(reading)
            yield reading

    messages = send_packs(producer, topic, catchup_messages(counted(), pack))
    try:
        producer.flush(timeout=FLUSH_SECONDS)
    except KafkaTimeoutError:
        raise KafkaStoppedError(
            f"Kafka at {bootstrap} did not take the preloaded readings within "
            f"{FLUSH_SECONDS:g} s (a broker frozen or overloaded?)"
        ) from None
    finally:
        producer.close(timeout=5)
    return spikes, messages


def changelog_logs(data: Path, run: str) -> tuple[list[TopicPartition], int]:
    """The partitions of the run's table changelogs found in the broker's data directory
    ``data`` (a directory ``<topic>-<partition>`` each), and the bytes of their log
    segments: what the worker wrote, batch headers included (no compression; a segment
    is compacted only once rolled, at 1 GB, so nothing written is gone yet)."""
    dirs = sorted(d for d in data.glob(f"{run}-*-changelog-*") if d.is_dir())
    parts = [TopicPartition(*_topic_partition(d.name)) for d in dirs]
    return parts, sum(f.stat().st_size for d in dirs for f in d.glob("*.log"))


def _topic_partition(name: str) -> tuple[str, int]:
    topic, partition = name.rsplit("-", 1)
    return topic, int(partition)


def changelog_written(broker: KafkaBroker, run: str) -> tuple[int, int]:
    """(entries, bytes) the run's worker wrote to its tables' changelogs. Raises
    ``KafkaStoppedError`` when Kafka does not answer within ``METADATA_SECONDS``."""
    from kafka import KafkaConsumer

    parts, size = changelog_logs(broker.dir / "data", run)
    settings = broker.settings
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        starts = bounded(
            settings,
            "reading the changelogs' first offsets",
            lambda: consumer.beginning_offsets(parts),
        )
        ends = bounded(
            settings, "reading the changelogs' end offsets", lambda: consumer.end_offsets(parts)
        )
    finally:
        consumer.close(autocommit=False, timeout_ms=5000)
    return sum(ends[p] - starts[p] for p in parts), size


def samples(port: int, *names: str) -> list[float] | None:
    """The worker's samples of ``names`` (None while it does not answer), asked with
    Prometheus' ``name[]`` filter: the whole page costs the worker tens of milliseconds
    of its event loop, the filtered one a fraction of one."""
    query = urllib.parse.urlencode([("name[]", name) for name in names])
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics?{query}", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(names) and not line.startswith("#")
    ]


def scrape(port: int, *names: str) -> float:
    """The sum of the worker's samples of ``names`` (-1 while it does not answer)."""
    found = samples(port, *names)
    return -1.0 if found is None else sum(found)


def last_counted_at(port: int) -> float | None:
    """Wall time (epoch s) the worker on ``port`` counted its last batch of readings
    (``citybrain_feed_last_reading_timestamp_seconds``, set with the count), or None."""
    found = samples(port, "citybrain_feed_last_reading_timestamp_seconds")
    return max(found) if found else None


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
            [sys.executable, "-m", "citybrain", "worker", "--loglevel", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


class CommitWatch:
    """Whether a consumer group has committed every offset of a preloaded topic; one admin
    connection for the whole run, the topic's end offsets read once (nothing is added).
    Each question to Kafka is bounded (``kafka_read.bounded``: kafka-python's
    ``partitions_for_topic`` and the admin's take no timeout); one not answered within
    ``METADATA_SECONDS`` raises ``KafkaStoppedError`` naming Kafka and the question."""

    def __init__(self, group: str, topic: str, settings: Settings) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        self.group, self.topic, self.settings = group, topic, settings
        self._reader: Any = None  # caught_up's consumer, made at its first use
        bootstrap = settings.kafka_bootstrap
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        try:
            found = bounded(
                settings,
                f"listing the partitions of {topic}",
                lambda: consumer.partitions_for_topic(topic),
            )
            parts = [TopicPartition(topic, p) for p in found or ()]
            self.ends: dict[TopicPartition, int] = bounded(
                settings, f"reading the end offsets of {topic}", lambda: consumer.end_offsets(parts)
            )
        finally:
            consumer.close(autocommit=False, timeout_ms=5000)

    def _committed(self) -> dict[TopicPartition, Any]:
        return bounded(
            self.settings,
            f"listing the offsets group {self.group} committed",
            lambda: self.admin.list_group_offsets(self.group)[self.group],
        )

    def drained(self) -> bool:
        committed = self._committed()
        return all(tp in committed and committed[tp].offset >= end for tp, end in self.ends.items())

    def caught_up(self, topic: str) -> bool:
        """Whether the group has committed every record ``topic`` holds now (its end
        offsets read afresh: the workers still write to it; one reader for the run)."""
        from kafka import KafkaConsumer

        if self._reader is None:
            self._reader = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap)
        reader = self._reader
        found = bounded(
            self.settings,
            f"listing the partitions of {topic}",
            lambda: reader.partitions_for_topic(topic),
        )
        parts = [TopicPartition(topic, p) for p in found or ()]
        ends = bounded(
            self.settings, f"reading the end offsets of {topic}", lambda: reader.end_offsets(parts)
        )
        committed = self._committed()
        return all(
            end == 0 or (tp in committed and committed[tp].offset >= end)
            for tp, end in ends.items()
        )

    def close(self) -> None:
        self.admin.close()
        if self._reader is not None:
            self._reader.close(autocommit=False, timeout_ms=5000)


def run_pipeline(
    env: dict[str, str],
    port: int,
    readings: int,
    log: Path,
    topic: str,
    settings: Settings,
    workers: int = 1,
) -> float:
    """Readings/s of ``workers`` citybrain workers in one consumer group draining the
    preloaded topic, from the first reading counted to the last (one worker) or to the
    group's last commit (several: a rebalance hands readings a worker had processed but
    not committed to another, which counts them again)."""
    ports = [port + i for i in range(workers)]
    procs = [
        start_worker({**env, "CITYBRAIN_WORKER_PORT": str(p)}, log.with_suffix(f".{p}.log"))
        for p in ports
    ]

    def done() -> float:
        counted = (
            "citybrain_readings_total",
            "citybrain_dead_letters_total",
            "citybrain_readings_redelivered_total",
        )
        return sum(max(0.0, scrape(p, *counted)) for p in ports)

    watch = CommitWatch(env["CITYBRAIN_APP_ID"], topic, settings)
    try:
        while any(scrape(p, "citybrain_readings_total") < 0 for p in ports):
            time.sleep(0.2)
        # The clock starts at the last look that found nothing counted yet (the first
        # readings may have been taken just after it: at most one look's interval early).
        start = time.monotonic()
        while (counted := done()) == 0:
            start = time.monotonic()
            time.sleep(POLL)
        last = (start, 0.0)
        checks = 0
        # One worker: looked at seldom while it drains (each look is work on the loop
        # being measured; 20 a second cost it about 3 %), its end read from the worker.
        every = DRAIN_POLL if workers == 1 else POLL
        while True:
            now, counted = time.monotonic(), done()
            if workers == 1 and counted >= readings:
                # The moment the worker counted its last batch, by its own clock (the
                # wall time it set with the count, moved onto this monotonic clock);
                # without it, by linear interpolation between the two looks.
                at = last_counted_at(port)
                counted_at = None if at is None else time.monotonic() - (time.time() - at)
                rate = readings / (drain_end(last, (now, counted), readings, counted_at) - start)
                break
            # Committed offsets are the broker's business, asked less often.
            if checks % 5 == 4 and watch.drained():
                rate = readings / (time.monotonic() - start)
                break
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError(f"a worker died; see {log.parent}")
            last = (now, counted)
            time.sleep(every)
            checks += 1
        # Untimed: a lone alert is held for CORROBORATION_GRACE (set short by main)
        # before it reaches the alerts topic; stopping the worker at once dropped the
        # alerts of the run's last seconds from the comparison.
        settle_alerts(ports, lambda: watch.caught_up(settings.topic(CORROBORATION)))
        return rate
    finally:
        watch.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def drain_end(
    last: tuple[float, float], now: tuple[float, float], readings: int, counted_at: float | None
) -> float:
    """When one worker counted its ``readings``-th reading, on the monotonic clock (s):
    ``counted_at``, the worker's own time of its last counted batch, when it falls
    between the look ``last`` (time, count below ``readings``) and the look ``now``
    (time, count at or past it); otherwise (not exported, or a clock that moved) by
    linear interpolation between the two looks (a whole-page look once a second put up
    to a second on a five-second run, which made runs fall in two groups)."""
    (then, before), (at, counted) = last, now
    if counted_at is not None and then <= counted_at <= at:
        return counted_at
    return then + (at - then) * (readings - before) / max(counted - before, 1.0)


def settle_alerts(ports: list[int], caught_up: Callable[[], bool] = lambda: True) -> None:
    """Wait until the workers on ``ports`` have nothing left on the way to the alerts
    topic (see SETTLE_QUIET) and ``caught_up()`` holds (the group committed the whole
    corroboration topic: the consumer lag gauge counts records fetched into faust's
    buffers as read, and a run on a loaded machine was stopped with 88 of its 143 alerts
    still there); a warning on stderr when SETTLE_MAX passes first, since the alert count
    may then be short."""
    moving = ("citybrain_alerts_total", "citybrain_anomalies_total")
    pending = ("citybrain_corroboration_held", "citybrain_consumer_lag")
    start = quiet_since = time.monotonic()
    last: list[float] = []
    while (now := time.monotonic()) - start < SETTLE_MAX:
        counts = [scrape(p, *moving) for p in ports]
        busy = any(scrape(p, *pending) != 0 for p in ports) or not caught_up()
        if busy or counts != last:
            quiet_since, last = now, counts
        elif now - quiet_since >= SETTLE_QUIET:
            return
        time.sleep(0.25)
    print(
        f"catchup: the workers' alert stages were still busy {SETTLE_MAX:.0f} s after "
        "the drain; the alert count may be short",
        file=sys.stderr,
    )


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
    last = time.monotonic()
    try:
        while seen < readings:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if batches:
                last = time.monotonic()
            elif time.monotonic() - last > FLOOR_IDLE_SECONDS:
                # getmany waits and retries for ever on a broker that stopped answering.
                raise KafkaStoppedError(
                    f"Kafka at {bootstrap} sent none of {topic}'s records for "
                    f"{FLOOR_IDLE_SECONDS:g} s with {seen:,} of {readings:,} read (a broker "
                    "frozen or gone?): `citybrain stack status` says whether it answers"
                )
            start = start or time.monotonic()
            for records in batches.values():
                for record in records:
                    doc = orjson.loads(record.value)
                    # A pack counts its readings; decoding it decodes them all.
                    seen += len(doc["readings"]) if "readings" in doc else 1
    finally:
        await consumer.stop()
    return readings / (time.monotonic() - (start or time.monotonic()))


QUIX_VENV = Path.home() / ".cache" / "citybrain" / "quix-venv"
# Pinned so reruns compare like with like; its own venv because Quix pins pydantic and
# confluent-kafka versions of its own.
QUIX_REQUIREMENTS = [
    "quixstreams==3.28.1",
    "numpy",
    "pandas",
    "scipy",
    "orjson",
    "msgspec",  # streams.events' Reading
    "numba",  # the tail detector's kernel (detectors/tail.py)
    "google-re2",  # playbooks.routing's matchers, imported by the grid loader
    "pyyaml",
    "pydantic-settings",
]


def quix_python() -> Path:
    """The Quix candidate's interpreter, building its virtualenv on first use."""
    python = QUIX_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(QUIX_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *QUIX_REQUIREMENTS], check=True)
    return python


def run_quix(bootstrap: str, topic: str, grid: Path, readings: int, work: Path) -> dict[str, Any]:
    """Readings/s and firing alert ids of the Quix Streams candidate."""
    out = subprocess.run(
        [
            str(quix_python()),
            "-W",
            "ignore",
            str(REPO_ROOT / "bench" / "quix_candidate.py"),
            bootstrap,
            topic,
            f"{topic}.quix-alerts",
            str(grid),
            str(readings),
            str(work / "quix-state"),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def firing_alert_ids(bootstrap: str, topic: str) -> list[str]:
    """Ids of the firing alerts on ``topic``, read from the beginning until it is idle."""
    from kafka import KafkaConsumer

    from citybrain.kafka_read import SafePoller

    def make() -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )

    # Through SafePoller (iterating the consumer raised out of the loop at a record
    # kafka-python cannot decode, and never moved past it).
    consumer = make()
    consumer.subscribe([topic])
    poller = SafePoller(consumer, make)
    ids = []
    idle_until = time.monotonic() + 5.0
    try:
        while time.monotonic() < idle_until:
            for records in poller.poll(timeout_ms=500).values():
                idle_until = time.monotonic() + 5.0
                for record in records:
                    doc = orjson.loads(record.value)
                    if doc.get("status") == "firing":
                        ids.append(doc["alert_id"])
    finally:
        consumer.close()
    return sorted(ids)


def consumer_performance(broker: KafkaBroker, topic: str, messages: int) -> float | None:
    """Messages/s of Kafka's own consumer benchmark over the topic."""
    cmd = broker._java(
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        broker.settings.kafka_bootstrap,
        "--topic",
        topic,
        "--messages",
        str(messages),
        "--timeout",
        "60000",
    )
    out = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if re.match(r"^\d{4}-", line)]
    if out.returncode != 0 or not lines:
        return None
    fields = [f.strip() for f in lines[-1].split(",")]
    return float(fields[5])  # nMsg.sec


CANDIDATES = ["citybrain", "aiokafka", "consumer-perf", "quix"]
# A lone sensor alert waits this long for a neighbour before it goes on (the default 30 s
# of wall clock would outlast the run); the Quix candidate has no such stage.
CORROBORATION_GRACE = "1"
# After the timed drain the workers run on until their alert stages are idle: nothing
# held for corroboration, no consumer lag, the alert and anomaly counts unchanged for
# SETTLE_QUIET seconds (the grace and its release timer's tick, at least 0.5 s), at most
# SETTLE_MAX. A fixed 4 s hold counted 17 of the 36 alerts on a loaded machine
# (2026-12-04), the rest still on their way through the anomalies topic.
SETTLE_QUIET = 2.0
SETTLE_MAX = 180.0
# Seconds between two looks at the workers' counters before the first reading is
# counted, and while several workers drain (filtered scrapes).
POLL = 0.05
# Seconds between two looks at one worker's counters while it drains: its end is read
# from the worker (``last_counted_at``), so the looks need not be frequent.
DRAIN_POLL = 0.5


def _round(rate: float | None) -> int | None:
    return None if rate is None else round(rate)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=count(), default=1_000_000)
    parser.add_argument("--sensors", type=count(), default=20_000)
    parser.add_argument("--out", type=out_file, default=REPO_ROOT / "bench" / "results.json")
    parser.add_argument(
        "--workers", type=count(), default=1, help="citybrain workers in the group (default 1)"
    )
    parser.add_argument(
        "--pack",
        type=int,
        default=0,
        metavar="N",
        help="preload readings/1 packs of N readings (edge-gateway batches); the results "
        "then go under 'packed' in --out, beside the one-reading-per-message run",
    )
    parser.add_argument(
        "--drain",
        choices=["batch", "per_message", "stock"],
        default="batch",
        help="how the worker's faust hands messages to agents (CITYBRAIN_FAUST_DRAIN; "
        "the levers of docs/benchmarks.md); results of a non-default drain go under "
        "'drain_levers' in --out",
    )
    parser.add_argument(
        "--commit-interval",
        type=float,
        metavar="S",
        help="the worker's CITYBRAIN_COMMIT_INTERVAL (default: the worker's own); results "
        "of another interval go under 'commit_interval_levers' in --out",
    )
    parser.add_argument(
        "--commit-every",
        type=int,
        metavar="N",
        help="the worker's CITYBRAIN_COMMIT_EVERY (default: the worker's own)",
    )
    parser.add_argument(
        "--fetch-max-wait",
        type=float,
        metavar="S",
        help="the worker's CITYBRAIN_FETCH_MAX_WAIT (default: the worker's own; 1.5 is "
        "faust's); results of another value go under 'fetch_wait_levers' in --out",
    )
    parser.add_argument(
        "--candidates",
        default=",".join(CANDIDATES),
        help=f"comma-separated subset of {','.join(CANDIDATES)} (all by default)",
    )
    args = parser.parse_args()
    chosen = set(args.candidates.split(","))
    if not chosen <= set(CANDIDATES):
        sys.exit(f"--candidates: {sorted(chosen - set(CANDIDATES))} not among {CANDIDATES}")
    run = f"bench{int(time.time())}"
    settings = load_settings(topic_prefix=run, app_id=run, partitions=2)
    broker = KafkaBroker(settings)
    if not broker.ready():
        sys.exit("the local stack is not running: citybrain stack up")
    with run_topics(settings):
        work = settings.run_dir / run
        work.mkdir(parents=True, exist_ok=True)
        grid = work / "grid.yaml"
        write_grid(grid, args.sensors)
        topic = settings.topic("readings")
        t0 = time.monotonic()
        spikes, messages = preload(
            settings.kafka_bootstrap, topic, args.readings, args.sensors, args.pack
        )
        print(
            f"preloaded {args.readings:,} readings in {messages:,} messages ({spikes} spikes) "
            f"in {time.monotonic() - t0:.1f}s"
        )
        rates: dict[str, float | None] = dict.fromkeys(CANDIDATES)
        if "aiokafka" in chosen:
            rates["aiokafka"] = asyncio.run(
                aiokafka_floor(settings.kafka_bootstrap, topic, args.readings)
            )
        if "consumer-perf" in chosen:
            per_s = consumer_performance(broker, topic, messages)
            # In readings/s, like the other candidates (the same for unpacked readings).
            rates["consumer-perf"] = per_s and per_s * args.readings / messages
        ours: list[str] | None = None
        changelog: tuple[int, int] | None = None
        if "citybrain" in chosen:
            port = settings.worker_port + 3
            # Tuned for a backlog: bigger fetches give each sensor more readings per batch.
            env = worker_env(
                run,
                grid,
                port,
                batch_size="5000",
                faust_drain=args.drain,
                corroboration_grace=CORROBORATION_GRACE,
                **({"commit_interval": str(args.commit_interval)} if args.commit_interval else {}),
                **({"commit_every": str(args.commit_every)} if args.commit_every else {}),
                **({"fetch_max_wait": str(args.fetch_max_wait)} if args.fetch_max_wait else {}),
            )
            rates["citybrain"] = run_pipeline(
                env,
                port,
                args.readings,
                work / "worker.log",
                topic,
                settings,
                args.workers,
            )
            ours = firing_alert_ids(settings.kafka_bootstrap, settings.topic("alerts"))
            changelog = changelog_written(broker, run)
        theirs: list[str] | None = None
        if "quix" in chosen:
            quix = run_quix(settings.kafka_bootstrap, topic, grid, args.readings, work)
            rates["quix"], theirs = quix["readings_per_s"], quix["firing"]
        for name, rate in rates.items():
            print(f"{name}: {'not run' if rate is None else f'{rate:,.0f} readings/s'}")
        same = None if ours is None or theirs is None else ours == theirs
        print(f"firing alerts: citybrain {ours and len(ours)}, Quix {theirs and len(theirs)}")
        if changelog is not None:
            print(
                f"changelogs: {changelog[0]:,} entries, {changelog[1]:,} bytes "
                f"({changelog[1] / args.readings:,.1f} a reading)"
            )

        def ratio(other: str) -> float | None:
            mine, base = rates["citybrain"], rates[other]
            return None if mine is None or not base else round(mine / base, 3)

        results: dict[str, Any] = {
            "catchup_readings_per_s": _round(rates["citybrain"]),
            "aiokafka_readings_per_s": _round(rates["aiokafka"]),
            "consumer_perf_readings_per_s": _round(rates["consumer-perf"]),
            "quix_readings_per_s": _round(rates["quix"]),
            "ratio_vs_aiokafka": ratio("aiokafka"),
            "ratio_vs_consumer_perf": ratio("consumer-perf"),
            "ratio_vs_quix": ratio("quix"),
            "firing_alerts": None if ours is None else len(ours),
            # What the worker wrote to its tables' changelogs (sensor states, episodes,
            # runs), over the whole run (the drain and the few seconds after it).
            "changelog_entries": None if changelog is None else changelog[0],
            "changelog_bytes_per_reading": None
            if changelog is None
            else round(changelog[1] / args.readings, 1),
            "same_alerts_as_quix": same,
            "citybrain_workers": args.workers,
            "faust_drain": args.drain,
            "commit_interval_s": args.commit_interval,
            "commit_every": args.commit_every,
            "fetch_max_wait_s": args.fetch_max_wait,
            "readings": args.readings,
            "readings_per_message": round(args.readings / messages, 1),
            "sensors": args.sensors,
            "partitions": 2,
            "injected_spikes": spikes,
            **machine(),
        }
        print(json.dumps(results, indent=2))
        # The other benchmarks' numbers in --out stay (make bench runs them all afresh).
        merged = json.loads(args.out.read_text()) if args.out.exists() else {}
        layout = f"pack{args.pack}" if args.pack else "one_per_message"
        if args.commit_interval or args.commit_every:
            interval, every = args.commit_interval or "default", args.commit_every or "default"
            lever = f"{interval}s_every_{every}_{layout}_{args.sensors}_sensors"
            merged.setdefault("commit_interval_levers", {})[lever] = results
        elif args.fetch_max_wait:
            lever = f"{args.fetch_max_wait}s_{layout}_{args.sensors}_sensors"
            merged.setdefault("fetch_wait_levers", {})[lever] = results
        elif args.drain != "batch":
            merged.setdefault("drain_levers", {})[f"{args.drain}_{layout}"] = results
        elif args.pack:
            merged["packed"] = results
            merged["catchup_packed_readings_per_s"] = results["catchup_readings_per_s"]
        else:
            merged.update(results)
        args.out.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    run_main(main)
