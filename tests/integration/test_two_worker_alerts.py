"""Alerts keyed otherwise than by their id, with two workers in one consumer group, on the
real broker (t205, the poison-pill-batch kind: a record whose key and value disagree).

The ``muted`` table keeps a silenced alert under its id, on its id's partition, whose
owner re-checks it and routes it once its silence ends. An alert its producer keyed by
something else (a sensor, a cell, nothing) arrives on another partition: the worker
that read it stored its entry on the changelog partition of the other worker, which
never saw it, and re-checked only its own partitions' entries, so the alert was never
routed (no run, nothing dead-lettered, nothing said). It is now passed on to its id's
partition, keyed by its id, as a command is to its run's (t61)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from streams.partitioning import key_partition
from tests.integration.test_pipeline import steps_of
from tests.integration.test_silences import burst_alert, mute_pipeline
from tests.integration.test_two_worker_commands import own_runs
from tests.services import OPERATOR_TOKEN, Pipeline, Worker, shifted_port

pytestmark = pytest.mark.integration


def on_partition(prefix: str, partition: int, partitions: int = 2) -> str:
    """The first ``<prefix>-<n>`` that Kafka's default partitioner puts on ``partition``."""
    n = 0
    while key_partition(f"{prefix}-{n}".encode(), partitions) != partition:
        n += 1
    return f"{prefix}-{n}"


@pytest.mark.parametrize("kill", [False, True])
def test_a_silenced_alert_keyed_off_its_id_is_routed_once_its_silence_ends(
    stack: PrometheusServer, run_dir: Path, kill: bool
) -> None:
    """``kill``: worker a is SIGKILLed once both workers have passed their astray alert
    on (before its commit, as likely as not, so it is read and passed on again by
    whoever takes its partition), and started again: still every alert's run once."""
    p = mute_pipeline(Pipeline(run_dir))
    pa, pb = p.settings.worker_port, shifted_port(26067)
    a = p.worker().start()
    b = Worker({**p.env, "CITYBRAIN_WORKER_PORT": str(pb)}, p.run_dir / f"{p.name}-b.log")
    b.start()
    try:
        # Both workers in the group, each owning one partition: probes on both
        # partitions each open a run, and each worker holds one (a run moves with its
        # partition), also after the rebalance b's start brings.
        probes = [on_partition("al-probe", n) for n in (0, 1)]
        for probe in probes:
            p.send("alerts", probe.encode(), burst_alert(probe, "Graffiti", "c-bridge"))
        p.flush()
        deadline = time.monotonic() + 120
        while not (own_runs(p, pa, busy=set()) and own_runs(p, pb, busy=set())):
            assert time.monotonic() < deadline, p.worker_logs(40)
            time.sleep(1)

        status, made = p.api(
            "POST",
            "/silences",
            OPERATOR_TOKEN,
            {"matchers": ['category="Noise - Vehicle"'], "duration": "8s", "reason": "t205"},
        )
        assert status == 201, made
        ends_at = made["silence"]["ends_at"]
        # Two alerts each keyed onto the other partition than its id's (one read by
        # each worker), and one keyed by its id.
        astray = {on_partition("al-astray", n): n for n in (0, 1)}
        for alert_id, home in astray.items():
            key = on_partition("gauge", 1 - home).encode()  # keyed by its sensor, say
            p.send("alerts", key, burst_alert(alert_id, "Noise - Vehicle", "c-mill"))
        placed = on_partition("al-placed", 0)
        p.send("alerts", placed.encode(), burst_alert(placed, "Noise - Vehicle", "c-top"))
        p.flush()
        if kill:
            said = "is not on its alert_id's partition"
            deadline = time.monotonic() + 60
            while not (said in a.log() and said in b.log()):
                assert time.monotonic() < deadline, p.worker_logs(40)
                time.sleep(0.05)
            a.kill()
            a = p.worker().start()
        wanted = {*probes, *astray, placed}
        steps = p.read(
            "steps",
            lambda m: {s["alert_id"] for s in steps_of(m, "run_created")} >= wanted,
            timeout=90,
            settle=4,
        )
        runs = Counter(s["alert_id"] for s in steps_of(steps, "run_created"))
        assert runs == Counter(wanted), (runs, p.worker_logs(30))  # every one, once
        later = [s for s in steps_of(steps, "run_created") if s["alert_id"] not in probes]
        assert all(s["at"] >= ends_at for s in later), later  # none while silenced
        dead = p.read("deadletter", lambda m: True, timeout=5, settle=1)
        assert [m.value[:200] for m in dead] == []
        logs = p.worker_logs(400)
        assert "is not on its alert_id's partition" in logs, logs
    finally:
        a.stop()
        b.stop()
        p.close()
