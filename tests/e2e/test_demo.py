"""The main job end to end: ``citybrain demo`` on the committed real data, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from tests.services import TEST_PORTS

pytestmark = pytest.mark.e2e


def test_demo_alerts_on_the_real_events_and_writes_its_summary(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "summary.json"
    env = {**os.environ, **TEST_PORTS, "CITYBRAIN_RUN_DIR": str(run_dir)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "citybrain.cli",
            "demo",
            "--summary",
            str(out),
            "--ack-deadline",
            "3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert summary["readings"] == 32_777  # every reading of the four committed slices
    assert summary["incidents"] == 998
    assert summary["dead_letters"] == 0
    assert summary["anomalies"] > 0 and summary["alerts"] > 0
    # Alerts of one group (a street's gauges, a district's air) share a run; nobody
    # acknowledges in the demo, so every run climbs at least one rung of its ladder.
    assert 0 < summary["runs"] <= summary["alerts"]
    assert summary["escalations"] >= summary["runs"]
    assert summary["prometheus_readings_total"] == summary["readings"]
    assert {e["event"]: e["detected"] for e in summary["known_events"]} == {
        "Dead Run flash flood (Baltimore, 2019-05-11)": True,
        "Spring Festival fireworks (Beijing, 2016-02-08 local)": True,
    }
    first = summary["alert_list"][0]
    assert set(first) == {
        "id",
        "sensor_id",
        "kind",
        "grid_cell",
        "severity",
        "first_event_time",
        "last_event_time",
    }
    assert len({a["id"] for a in summary["alert_list"]}) == summary["alerts"]
    assert "citybrain stack down" in proc.stdout
