"""t192: a worker frozen (SIGSTOP) past its session while it held sensor states staged
for its next commit, another worker taking its partitions meanwhile, reading the
changelogs and writing newer states; then the frozen worker woken (SIGCONT). Before, the
woken worker's revocation flushed its staged states to the changelog after the new
owner's newer ones: the changelog's last entry of each sensor was the older state, the
one a restart (or the next rebalance) recovers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from citybrain.stack import PrometheusServer
from streams.detection import read_state
from tests.integration.test_pipeline import SENSORS, docs, real_levels, send_readings
from tests.services import Pipeline, Worker, shifted_port

pytestmark = pytest.mark.integration

SESSION = 6.0  # the least CITYBRAIN_SESSION_TIMEOUT allows: the freeze outlasts it soon


def changelog(p: Pipeline, table: str) -> list[tuple[bytes, bytes | None, int, int]]:
    """Every entry of a table's changelog, in each partition's order: key, value,
    partition, offset."""
    topic = f"{p.settings.app_id}-{table}-changelog"
    consumer = KafkaConsumer(
        bootstrap_servers=p.settings.kafka_bootstrap, group_id=None, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(topic, i) for i in range(p.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        entries: list[tuple[bytes, bytes | None, int, int]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, (topic, ends)
            for records in consumer.poll(timeout_ms=200).values():
                entries.extend((r.key, r.value, r.partition, r.offset) for r in records)
        return sorted(entries, key=lambda e: (e[2], e[3]))
    finally:
        consumer.close()


def last_offsets(p: Pipeline) -> dict[str, list[int]]:
    """Per sensor, the ``last_offset`` (the reading it had processed last) of each of its
    changelog entries, in the log's order."""
    seen: dict[str, list[int]] = {}
    for key, value, _, _ in changelog(p, "sensor-state"):
        if value is not None:
            seen.setdefault(key.decode(), []).append(read_state(value)["last_offset"])
    return seen


def test_a_worker_woken_after_its_session_writes_no_stale_state_over_the_new_owners(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_SESSION_TIMEOUT": str(SESSION),
            # a stages its states and writes none before its freeze: its next commit
            # is far off (only its revocation, or its stop, would write them).
            "CITYBRAIN_COMMIT_INTERVAL": "600",
        },
    )
    a = p.worker().start()
    b = Worker(
        {
            **p.env,
            "CITYBRAIN_WORKER_PORT": str(shifted_port(26067)),
            "CITYBRAIN_COMMIT_INTERVAL": "1",
        },
        run_dir / f"{p.name}-worker-b.log",
    )
    c = Worker({**p.env, "CITYBRAIN_COMMIT_INTERVAL": "1"}, run_dir / f"{p.name}-worker-c.log")
    levels = real_levels(60)
    try:
        for sensor in SENSORS:  # on either partition: no spike, so nothing is written through
            send_readings(p, levels[:20], sensor=sensor)
        time.sleep(4)  # a has read and staged them
        assert last_offsets(p) == {}, "a wrote before its commit"
        a.freeze()
        b.start()  # joins once a's session has run out, takes every partition
        for sensor in SENSORS:  # b reads these and the first 20 again: newer states
            send_readings(p, levels[20:40], start=20, sensor=sensor)
        deadline = time.monotonic() + 60
        while len(last_offsets(p)) < len(SENSORS):
            assert time.monotonic() < deadline, p.worker_logs(30)
            time.sleep(0.5)
        newest = {sensor: max(offsets) for sensor, offsets in last_offsets(p).items()}
        a.thaw_until_rejoined(20)  # a's revocation, rejoin and read-back
        assert a.alive() and b.alive()
        a.stop()
        b.stop()
        after = last_offsets(p)
        # Each sensor's last entry is the newest state any worker wrote for it, never
        # one written after a newer one.
        stale = {s: o for s, o in after.items() if o[-1] < max(o) or o[-1] < newest[s]}
        assert not stale, (stale, p.worker_logs(40))
        assert "the group dropped this worker" in a.log()
        # A third worker recovers those states: the readings after them are scored on,
        # no reading processed again, nothing dead-lettered.
        c.start()
        for sensor in SENSORS:
            send_readings(p, levels[40:60], start=40, sensor=sensor)
        deadline = time.monotonic() + 60
        while True:
            latest = {s: o[-1] for s, o in last_offsets(p).items()}
            if all(latest[s] > newest[s] for s in SENSORS):
                break
            assert time.monotonic() < deadline, (latest, newest, p.worker_logs(30))
            time.sleep(0.5)
        c.stop()
        ordered = last_offsets(p)
        assert all(o == sorted(o) for o in ordered.values()), ordered
        assert not docs(p.read("alerts", lambda m: True, timeout=5, settle=0)), "no spike sent"
        for log in (a.log(), b.log(), c.log()):
            assert "Traceback" not in log
    finally:
        a.stop()
        b.stop()
        c.stop()
        p.close()
