"""How long a restarted worker takes to read its tables back, by changelog length (t155).

    python -m bench.recovery [--groups 20000] [--sensors 20000] [--sensor-records 5]
                             [--rounds 2] [--code DIR ...] [--compacted] [--out FILE]

Against the local stack (``citybrain stack up``, the ``CITYBRAIN_*`` ports of the shell).
First a **capture**: a real worker (the committed grid and playbooks, its own topics,
``CITYBRAIN_GROUP_RETENTION=0``) routes ``SAMPLE`` alert groups, each an alert that fires
and resolves within its group wait (its run opened, withdrawn and the group forgotten, as
``tests/integration/test_group_retention.py`` drives it), and takes a few hundred
readings of the five USGS sensors over several commits; it is stopped and its ``groups``
and ``sensor-state`` changelogs are read back, record by record, with their keys.

Then each **case** fills a fresh prefix's changelog with those records, as the worker
wrote them, for many keys: ``groups``, each sample group's records (its run's write-ahead
writes, then its tombstone) copied for ``--groups`` keys (the group key renamed in the
bytes, same length, so every entry reads back); ``sensor-state``, the last
``--sensor-records`` entries of a sample sensor for each of ``--sensors`` sensors. A
worker is then started on that prefix: the clock runs from just before the process is
spawned to "Worker ready" in its log (faust says it once every table's changelog is read
back). The same start on a prefix with empty tables is the **base** (joining the group,
the web server, no recovery): recovery's share is the difference, and records/s is the
changelog's records over it.

``--code DIR`` (repeatable): the worker runs with ``PYTHONPATH=DIR``, so an old checkout
(``git archive main | tar -x -C /tmp/old``) and this one are timed in the same sitting,
alternated within each round. ``--compacted``: the changelog topics are created with the
segment settings of ``streams.settings`` (``changelog_topic_configs``) and the run waits
for Kafka's cleaner before the start, to show what compaction leaves; by default they are
created as before t155 (``cleanup.policy=compact`` only, nothing compacted within a run).
``--profile DIR``: each worker runs under ``cProfile`` (its stats written at its stop to
DIR). Besides the wall clock, each start's CPU seconds (user + system, from ``/proc``) to
ready: on a shared machine the code's cost, less swayed by the others' load. Prints one
line per start; ``--out`` merges the results into a JSON file
(``recovery``). Run it niced (``nice -n 19``) on a shared machine."""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from bench import count, in_dir, machine, out_file, run_main, worker_metric
from bench.catchup import worker_env
from citybrain.stack.topics import run_topics
from streams.events import Reading
from streams.partitioning import key_partition
from streams.settings import REPO_ROOT, Settings, load_settings

SAMPLE = 20  # alert groups the capture routes
SAMPLE_READINGS = 240  # readings per USGS sensor in the capture, over several commits
GROUP_WAIT = 30.0  # the capture's group wait: every resolution is read well within it


def key_of(i: int, n: int) -> bytes:
    """The group key of copy ``n`` of sample group ``i``: all of one length, so a key
    renamed inside an entry's bytes (its run id, step ids) leaves the entry valid."""
    return f"grp-{i:02d}-{n:06d}".encode()


def routed(alert_id: str, status: str) -> bytes:
    """A routed alert as the alerts stage sends it (``test_group_retention``'s, on a
    cell of the committed grid)."""
    alert: dict[str, Any] = {
        "schema": "alert/1",
        "alert_id": alert_id,
        "status": status,
        "sensor_id": "usgs-01650800-water_level",
        "kind": "water_level",
        "grid_cell": "md-gauge-01650800",
        "severity": "major",
        "score": 0.9,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "labels": {"alert_id": alert_id, "kind": "water_level", "source": "sensor"},
    }
    route = {
        "id": "root.2",
        "playbook": "flash-flood",
        "group_wait": GROUP_WAIT,
        "group_interval": 1,
        "repeat_interval": 3600,
    }
    return json.dumps({"alert": alert, "route": route}).encode()


def read_topic(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """Every record of ``topic``: (partition, key, value), in each partition's order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[tuple[int, bytes, bytes | None]] = []
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise SystemExit(f"could not read {topic} to its end within 120 s")
            for tp, records in consumer.poll(timeout_ms=500).items():
                out.extend((tp.partition, r.key, r.value) for r in records)
        return out
    finally:
        consumer.close()


def start_worker(
    env: dict[str, str], log: Path, profile: Path | None = None
) -> subprocess.Popen[bytes]:
    """A ``citybrain worker`` logging at info, optionally under cProfile; run in the
    directory of its code (``PYTHONPATH``): ``python -m`` puts the working directory
    first on the path, so from this checkout an old tree's worker ran this one's code."""
    head = [sys.executable]
    if profile is not None:
        head += ["-m", "cProfile", "-o", str(profile)]
    with log.open("wb") as out:
        return subprocess.Popen(
            [*head, "-m", "citybrain", "worker", "--loglevel", "info"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=env.get("PYTHONPATH") or None,
        )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def until_ready(proc: subprocess.Popen[bytes], log: Path, timeout: float = 1800.0) -> float:
    """Monotonic time at which "Worker ready" showed in ``log``."""
    deadline = time.monotonic() + timeout
    while True:
        if b"Worker ready" in log.read_bytes():
            return time.monotonic()
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker was not ready (exit status {proc.poll()}); see {log}")
        time.sleep(0.05)


def bench_env(run: str, settings: Settings, code: str | None) -> dict[str, str]:
    env = worker_env(run, settings.grid_file, settings.worker_port, group_retention="0")
    if code is not None:
        env["PYTHONPATH"] = code
    return env


def capture(workdir: Path) -> dict[str, list[tuple[int, bytes, bytes | None]]]:
    """A real worker's ``groups`` and ``sensor-state`` changelog records (module doc)."""
    run = f"rcap-{uuid.uuid4().hex[:8]}"
    settings = load_settings().model_copy(update={"topic_prefix": run, "app_id": run})
    port = settings.worker_port
    frame = pd.read_csv(REPO_ROOT / "datasets" / "usgs_flood_2019-05.csv.gz")
    frame = frame.groupby("sensor_id").head(SAMPLE_READINGS)
    with run_topics(settings):
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        proc = start_worker(bench_env(run, settings, None), workdir / f"{run}.log")
        try:
            until_ready(proc, workdir / f"{run}.log", timeout=300)
            for i in range(SAMPLE):
                key = key_of(i, 0)
                for status in ("firing", "resolved"):
                    value = routed(f"al-{i:02d}-000000", status)
                    producer.send(settings.topic("routed"), key=key, value=value)
            # The readings in four slices a few commits apart: each sensor's state reaches
            # the changelog once per commit it changed in, as in a live feed.
            rows = list(frame.itertuples(index=False))
            # Recent event times (ten days back), as worker_start's: the worker's bounds
            # on event time are for live feeds.
            shift = time.time() - 10 * 86400 - pd.Timestamp(rows[0].timestamp).timestamp()
            for part in range(4):
                for row in rows[part::4]:
                    ts = pd.Timestamp(row.timestamp).timestamp() + shift
                    r = Reading(ts, row.sensor_id, row.kind, row.value, row.unit, row.grid_cell)
                    producer.send(
                        settings.topic("readings"), key=row.sensor_id.encode(), value=r.to_json()
                    )
                producer.flush()
                time.sleep(3 * settings.commit_interval)
            deadline = time.monotonic() + GROUP_WAIT + 300
            while worker_metric(port, "citybrain_groups_forgotten_total") < SAMPLE:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"the capture's groups were not forgotten; see {run}.log")
                time.sleep(0.5)
        finally:
            stop(proc)
            producer.close()
        return {
            name: read_topic(settings.kafka_bootstrap, f"{run}-{name}-changelog")
            for name in ("groups", "sensor-state")
        }


def fill(
    settings: Settings,
    table: str,
    sample: list[tuple[int, bytes, bytes | None]],
    keys: int,
    per_key: int,
) -> int:
    """Write ``table``'s changelog of a fresh prefix as the worker would have (module
    doc); returns the records written."""
    topic = f"{settings.app_id}-{table}-changelog"
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks=1,
        linger_ms=20,
        batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
    )
    written = 0
    try:
        if table == "groups":
            by_key: dict[bytes, list[bytes | None]] = defaultdict(list)
            for _, key, value in sample:
                by_key[key].append(value)
            groups = [by_key[key_of(i, 0)] for i in range(SAMPLE) if key_of(i, 0) in by_key]
            for n in range(keys):
                i = n % len(groups)
                old, new = key_of(i, 0), key_of(i, n + 1)
                part = key_partition(new, settings.partitions)
                for value in groups[i]:
                    v = None if value is None else value.replace(old, new)
                    producer.send(topic, key=new, value=v, partition=part)
                    written += 1
        else:
            states: dict[bytes, list[bytes | None]] = defaultdict(list)
            for _, key, value in sample:
                states[key].append(value)
            chains = [v[-per_key:] for v in states.values() if all(x is not None for x in v)]
            # The sensors' commits interleave on the changelog, as a live worker's do.
            for round_ in range(per_key):
                for n in range(keys):
                    chain = chains[n % len(chains)]
                    key = f"sensor-{n:06d}".encode()
                    producer.send(
                        topic,
                        key=key,
                        value=chain[round_ % len(chain)],
                        partition=key_partition(key, settings.partitions),
                    )
                    written += 1
        producer.flush()
    finally:
        producer.close()
    return written


def changelog_records(settings: Settings, table: str) -> int:
    """The records a recovery reads now (after compaction the offsets have gaps: the
    records really there are counted)."""
    return len(read_topic(settings.kafka_bootstrap, f"{settings.app_id}-{table}-changelog"))


def create_changelog(settings: Settings, table: str, compacted: bool) -> None:
    """The table's changelog topic, before the worker makes it: as this checkout's
    ``changelog_topic_configs`` with ``compacted``, else ``cleanup.policy=compact`` only."""
    configs = {"cleanup.policy": "compact"}
    if compacted:
        from streams.settings import changelog_topic_configs

        configs = changelog_topic_configs(settings)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        name = f"{settings.app_id}-{table}-changelog"
        admin.create_topics([NewTopic(name, settings.partitions, 1, topic_configs=configs)])
    finally:
        admin.close()


def one_start(
    workdir: Path,
    table: str | None,
    sample: list[tuple[int, bytes, bytes | None]],
    keys: int,
    per_key: int,
    code: str | None,
    compacted: bool,
    profile: Path | None,
) -> dict[str, Any]:
    """One fill (unless ``table`` is None: the base) and one timed start."""
    run = f"rrec-{uuid.uuid4().hex[:8]}"
    settings = load_settings().model_copy(update={"topic_prefix": run, "app_id": run})
    out: dict[str, Any] = {"table": table or "base", "code": code or "(this checkout)"}
    if table is not None:
        create_changelog(settings, table, compacted)
    with run_topics(settings):
        if table is not None:
            out["written"] = fill(settings, table, sample, keys, per_key)
            if compacted:
                # The cleaner runs every 15 s (Kafka's log.cleaner.backoff.ms) on segments
                # rolled; give it a few rounds, then count what a recovery reads.
                time.sleep(90)
            out["records"] = changelog_records(settings, table)
        log = workdir / f"{run}.log"
        prof = None if profile is None else profile / f"{run}.prof"
        t0 = time.monotonic()
        proc = start_worker(bench_env(run, settings, code), log, prof)
        try:
            out["ready_s"] = until_ready(proc, log) - t0
            # CPU seconds the worker spent to be ready (user + system, its threads'):
            # what the code costs, less swayed than the wall clock by a shared machine.
            out["cpu_s"] = cpu_seconds(proc.pid)
        finally:
            stop(proc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=count(), default=20_000)
    parser.add_argument("--sensors", type=count(), default=20_000)
    parser.add_argument("--sensor-records", type=count(), default=5)
    parser.add_argument("--rounds", type=count(), default=2)
    tables = ["groups", "sensor-state"]
    parser.add_argument("--tables", nargs="+", choices=tables, default=tables)
    parser.add_argument("--code", type=in_dir, action="append", default=[])
    parser.add_argument("--compacted", action="store_true")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--out", type=out_file)
    args = parser.parse_args()
    workdir = load_settings().run_dir / "bench-recovery"
    workdir.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    samples = capture(workdir)
    for name, records in samples.items():
        print(f"capture: {name}: {len(records)} records, {len({k for _, k, _ in records})} keys")
    # Absolute: the worker runs in its code's directory (``start_worker``).
    codes: list[str | None] = [str(c.resolve()) for c in args.code] or [None]
    starts: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for table in [None, *args.tables]:
            # Alternated old/new within the round, each on its own fill.
            for code in codes if r % 2 == 0 else codes[::-1]:
                keys = args.groups if table == "groups" else args.sensors
                one = one_start(
                    workdir,
                    table,
                    samples.get(table or "", []),
                    keys,
                    args.sensor_records,
                    code,
                    args.compacted,
                    args.profile,
                )
                one["round"] = r + 1
                starts.append(one)
                print(json.dumps(one), flush=True)
    summary: dict[str, dict[str, float]] = {}
    for code in codes:
        label = code or "(this checkout)"
        base = statistics.median(
            s["ready_s"] for s in starts if s["code"] == label and s["table"] == "base"
        )
        for table in args.tables:
            mine = [s for s in starts if s["code"] == label and s["table"] == table]
            ready = statistics.median(s["ready_s"] for s in mine)
            records = statistics.median(s["records"] for s in mine)
            cpu = statistics.median(s["cpu_s"] for s in mine)
            base_cpu = statistics.median(
                s["cpu_s"] for s in starts if s["code"] == label and s["table"] == "base"
            )
            summary[f"{label} {table}"] = {
                "records": records,
                "ready_s": round(ready, 2),
                "base_s": round(base, 2),
                "records_per_s": round(records / max(ready - base, 0.01)),
                "cpu_s": round(cpu, 2),
                "base_cpu_s": round(base_cpu, 2),
                "records_per_cpu_s": round(records / max(cpu - base_cpu, 0.01)),
            }
    for name, row in summary.items():
        print(f"median: {name}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    if args.out:
        merged = json.loads(args.out.read_text()) if args.out.exists() else {}
        merged["recovery"] = {**machine(), "starts": starts, "median": summary}
        args.out.write_text(json.dumps(merged, indent=2) + "\n")
    os.sync()


if __name__ == "__main__":
    run_main(main)
