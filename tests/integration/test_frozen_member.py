"""t184: a worker frozen (SIGSTOP) past its session while another worker takes its
partitions and escalates its runs, then woken (SIGCONT). Before, the woken worker
escalated a run again at once, its deadline timer acting on what it held before it
heard it was out of the group: a second step under the first one's id with another
time, a second page to the street unit."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from citybrain.stack import PrometheusServer
from tests.integration.test_pipeline import SENSORS, docs, steps_of
from tests.integration.test_response import spike
from tests.services import Pipeline, Worker, shifted_port

pytestmark = pytest.mark.integration

DEADLINE = 20.0  # seconds to acknowledge before the run escalates
SESSION = 6.0  # the least CITYBRAIN_SESSION_TIMEOUT allows: the freeze outlasts it soon


def test_a_worker_woken_after_its_session_repeats_no_escalation(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_ACK_DEADLINE_SECONDS": str(DEADLINE),
            "CITYBRAIN_SESSION_TIMEOUT": str(SESSION),
            # The woken worker's timer runs before the group's answer more often.
            "CITYBRAIN_DEADLINE_CHECK_INTERVAL": "0.1",
        },
    )
    a = p.worker().start()
    b = Worker(
        {**p.env, "CITYBRAIN_WORKER_PORT": str(shifted_port(26067))},
        run_dir / f"{p.name}-worker-b.log",
    )
    try:
        for sensor in SENSORS:  # two runs (the gauges share a group), on either partition
            spike(p, sensor=sensor)
        created = steps_of(
            p.read(
                "steps",
                lambda m: len({d["run_id"] for d in steps_of(m, "run_created")}) >= 2,
                settle=2,
            ),
            "run_created",
        )
        runs = {d["run_id"] for d in created}
        a.freeze()  # the runs' deadlines fall due while it is frozen
        b.start()  # joins once a's session has run out, takes every partition
        p.read(
            "steps", lambda m: {d["run_id"] for d in steps_of(m, "escalate")} == runs, timeout=90
        )
        # Until a has rejoined and read back what it took (at most 15 s), then 3 s more:
        # all well within the next level's deadline.
        a.thaw_until_rejoined(15)
        assert a.alive() and b.alive()
        steps = docs(p.read("steps", lambda m: True, settle=1))
        contents = defaultdict(set)
        for step in steps:
            contents[step["id"]].add(repr(sorted(step.items())))
        repeated = {i: c for i, c in contents.items() if len(c) > 1}
        assert not repeated, (repeated, p.worker_logs(30))
        escalations = [d["id"] for d in steps_of_docs(steps, "escalate")]
        assert len(set(escalations)) == len(runs), escalations  # one each, no level more
        assert "stood still for" in a.log()  # said by the woken worker
    finally:
        a.stop()
        b.stop()
        p.close()


def steps_of_docs(steps: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [d for d in steps if d["action"] == action]
