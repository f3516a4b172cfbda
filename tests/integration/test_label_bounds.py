"""Metric labels bounded whatever the alerts topic carries (t80): an alert's ``kind`` and
its ``department`` label are any non-empty text there, and the worker exported each as
a label value, so every alert with a new one made new series for good (2,000 alerts with
a new department each: 2,000 more citybrain_playbook_runs_total series, and more once
their runs were acknowledged, resolved or closed). A value the grid, the playbooks or the
department classifier do not know is now exported as ``other``."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from streams.events import format_ts
from streams.metrics import OTHER_LABEL
from tests.integration.test_pipeline import START, steps_of
from tests.services import Pipeline

pytestmark = pytest.mark.integration


def series(port: int, name: str) -> list[str]:
    """The series lines of metric ``name`` exactly, as the worker exports them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return [
        line
        for line in text.splitlines()
        if not line.startswith("#") and line.split("{")[0].split(" ")[0] == name
    ]


def alert(i: int) -> dict[str, object]:
    aid, kind = f"al-label-{i}", f"made-up-kind-{i}"
    return {
        "schema": "alert/1",
        "alert_id": aid,
        "status": "firing",
        "kind": kind,
        "grid_cell": "c-top",
        "severity": "major",
        "sensor_id": None,
        "value": 1.0,
        "started_at": format_ts(START),
        "ended_at": None,
        "labels": {
            "alert_id": aid,
            "kind": kind,
            "severity": "major",
            "grid_cell": "c-top",
            "community": "c-top",
            "source": "sensor",
            "department": f"made-up-department-{i}-" + "x" * 10_000,
        },
    }


def test_alerts_with_a_new_kind_and_department_each_add_no_series(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(run_dir)
    worker = p.worker().start()
    port = p.settings.worker_port
    try:
        before = len(series(port, "citybrain_playbook_runs_total"))
        n = 40
        for i in range(n):
            key = f"al-label-{i}".encode()
            p.send("alerts", key, json.dumps(alert(i)).encode())
        p.flush()
        steps = p.read("steps", lambda m: len(steps_of(m, "run_created")) >= n, timeout=90)
        assert len(steps_of(steps, "run_created")) == n  # each its own group and run
        deadline = time.monotonic() + 30
        runs = series(port, "citybrain_playbook_runs_total")
        while not any(f'department="{OTHER_LABEL}"' in s for s in runs):
            assert time.monotonic() < deadline, runs
            time.sleep(0.5)
            runs = series(port, "citybrain_playbook_runs_total")
        assert len(runs) == before + 1  # one "other" series, not one per department
        [other] = [s for s in runs if f'department="{OTHER_LABEL}"' in s]
        assert float(other.rsplit(" ", 1)[1]) == n
        assert not any("made-up" in s for s in runs)
    finally:
        worker.stop()
        p.close()
