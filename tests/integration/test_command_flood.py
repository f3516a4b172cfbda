"""A flood of operator commands, measured on the real worker and broker (t193): RUNS runs
open (one alert each into its own group), then three commands for each run sent at once
(ack, escalate, resolve, each its own id, in that order per run) and NOOPS acks of one
of them again under new ids (a script re-sending an ack without its id), then a probe: an
ack of another run and another group's alert.

What holds (orders and bounds, not a benchmark): every command applied once, in its
run's order (one ``acknowledged``, one ``escalate`` and one ``resolved`` step id per run,
the escalation at the street level), also with the worker SIGKILLed mid-flood; the
changes of one run read in one batch are one change of it (the commands agent takes a
partition's fetch at a time since t193): bounded below by the number of changelog writes
of the flooded groups, before t193 two per applied command and one per ack that changed
nothing (docs/playbooks.md, "A flood of commands"). The times are printed."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from citybrain.stack import PrometheusServer
from tests.integration.test_group_storm import routed
from tests.integration.test_pipeline import steps_of
from tests.services import Pipeline

pytestmark = pytest.mark.integration

RUNS = 300
NOOPS = 600
ACTIONS = ("ack", "escalate", "resolve")
# Changelog writes of the flooded groups at most: half of one change per command. Each
# run's commands read in one batch are one change (two writes); how many share a batch
# depends on how fast the worker keeps up (953 writes measured steady, 603 after a
# SIGKILL, the backlog read in full batches). Before t193 two per applied command and one
# per ack that changed nothing: 6 * RUNS + NOOPS = 2,400.
MAX_WRITES = (2 * len(ACTIONS) * RUNS + NOOPS) // 2


def command(n: int, action: str, cid: str) -> bytes:
    doc = {"id": cid, "run_id": f"grp-flood-{n}.1", "action": action, "by": "duty"}
    return json.dumps(doc).encode()


def ids_per_run(steps: list[Any], action: str) -> Counter[str]:
    """Run id -> how many distinct ``action`` step ids it has by the operator's hand
    (a step sent again after a kill repeats its id: at-least-once, one change; the
    ladder's own escalations at its deadlines are not counted)."""
    ids = {d["id"]: d["run_id"] for d in steps_of(steps, action) if d.get("actor") == "duty"}
    return Counter(ids.values())


def writes_of(p: Pipeline, keys: set[bytes]) -> int:
    """How many entries the groups changelog holds for ``keys`` (read once to its end)."""
    consumer = KafkaConsumer(
        f"{p.settings.app_id}-groups-changelog",
        bootstrap_servers=p.settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=5000,
    )
    try:
        return sum(1 for m in consumer if m.key in keys)
    finally:
        consumer.close()


@pytest.mark.parametrize("kill", [False, True], ids=["steady", "sigkill-mid-flood"])
def test_a_flood_of_commands_is_applied_once_each_in_a_few_changes(
    stack: PrometheusServer, run_dir: Path, kill: bool
) -> None:
    p = Pipeline(run_dir)
    worker = p.worker().start()
    runs = [f"grp-flood-{n}.1" for n in range(RUNS + 1)]  # the last one: the probe's
    try:
        for n in range(RUNS + 1):
            p.send("routed", f"grp-flood-{n}".encode(), routed(f"al-flood-{n}", 0))
        p.flush()
        p.read("steps", lambda m: len({d["run_id"] for d in steps_of(m, "notify")}) > RUNS)
        keys = {f"grp-flood-{n}".encode() for n in range(RUNS)}
        before = writes_of(p, keys)
        sent_at = time.time()
        for n in range(RUNS):
            for action in ACTIONS:
                p.send("commands", f"grp-flood-{n}".encode(), command(n, action, f"{action}-{n}"))
        for k in range(NOOPS):
            p.send("commands", b"grp-flood-0", command(0, "ack", f"again-{k}"))
        p.send("commands", f"grp-flood-{RUNS}".encode(), command(RUNS, "ack", "probe"))
        p.send("routed", b"grp-after", routed("al-after", 0))
        p.flush()
        if kill:
            p.read("steps", lambda m: bool(steps_of(m, "acknowledged")))
            worker.kill()
            worker = p.worker().start()

        def done(m: list[Any]) -> bool:
            # The probe's run is on a partition of its own pace: its ack may come after
            # the flood's last resolution, so it is waited for too.
            return (
                len(ids_per_run(m, "resolved")) >= RUNS
                and ids_per_run(m, "acknowledged")[runs[RUNS]] >= 1
                and any(d["run_id"] == "grp-after.1" for d in steps_of(m, "notify"))
            )

        steps = p.read("steps", done, timeout=180)
        flooded = runs[:RUNS]
        acked, escalated = ids_per_run(steps, "acknowledged"), ids_per_run(steps, "escalate")
        resolved = ids_per_run(steps, "resolved")
        assert {r: acked[r] for r in flooded} == dict.fromkeys(flooded, 1)
        assert {r: escalated[r] for r in flooded} == dict.fromkeys(flooded, 1)
        assert {r: resolved[r] for r in flooded} == dict.fromkeys(flooded, 1)
        assert acked[runs[RUNS]] == 1  # the probe
        # In each run's order: acknowledged, then escalated to the street, then resolved.
        order: dict[str, list[str]] = {}
        for d in (json.loads(m.value) for m in steps):
            if d["action"] in ("acknowledged", "escalate", "resolved") and d.get("actor") == "duty":
                order.setdefault(d["run_id"], []).append(d["action"])
        for r in flooded:
            firsts = list(dict.fromkeys(order[r]))
            assert firsts == ["acknowledged", "escalate", "resolved"], (r, order[r])
        last = max(m.timestamp / 1000 for m in steps if b'"action":"resolved"' in m.value)
        probe = min(
            m.timestamp / 1000
            for m in steps
            if (d := json.loads(m.value))["action"] == "acknowledged" and d["run_id"] == runs[RUNS]
        )
        writes = writes_of(p, keys) - before
        print(
            f"commands {len(ACTIONS) * RUNS + NOOPS}{' (SIGKILL)' if kill else ''}: last "
            f"resolved +{last - sent_at:.2f} s, probe ack +{probe - sent_at:.2f} s, "
            f"{writes} writes of the flooded groups"
        )
        assert writes <= MAX_WRITES
    finally:
        worker.stop()
        p.close()
