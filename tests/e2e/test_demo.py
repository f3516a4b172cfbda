"""The main job end to end: ``citybrain demo`` on the committed real data, as a user runs
it, and its what-if report rendered in headless Chromium (Debian's package)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from citybrain.stack import PrometheusServer
from tests.services import ROOT, TEST_PORTS

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def demo(
    stack: PrometheusServer, run_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, **TEST_PORTS, "CITYBRAIN_RUN_DIR": str(run_dir)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "citybrain.cli",
            "demo",
            "--summary",
            str(out / "summary.json"),
            "--report",
            str(out / "report.html"),
            "--ack-deadline",
            "3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {
        "summary": json.loads((out / "summary.json").read_text()),
        "report": out / "report.html",
        "stdout": proc.stdout,
        "dir": out,
    }


def test_demo_alerts_on_the_real_events_and_writes_its_summary(demo: dict[str, Any]) -> None:
    summary = demo["summary"]
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
    # Issue 13: the summary reports the alerts outside the dated events per sensor-day.
    outside = summary["alerts_outside_known_events"]
    assert 0 <= outside < summary["alerts"]
    assert summary["false_alarms_per_1000_sensor_days"] >= 0
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
    assert "citybrain stack down" in demo["stdout"]


def test_what_if_report_loads_in_headless_chromium(demo: dict[str, Any]) -> None:
    report: Path = demo["report"]
    page = report.read_text()
    assert "http://" not in page and "https://" not in page  # self-contained
    profile = demo["dir"] / "chromium-profile"
    url = report.resolve().as_uri()
    dom = subprocess.run(
        [
            "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The page's own script ran to the end: no script error stopped it.
    assert 'data-ready="true"' in dom.stdout
    alerts = re.search(r'data-alerts="(\d+)"', dom.stdout)
    assert alerts and int(alerts.group(1)) == demo["summary"]["alerts"]
    assert not re.search(r"Uncaught|SyntaxError|TypeError", dom.stderr)
    assert dom.stdout.count('<figure class="sensor"') >= 10
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "what-if-report.png"
    shot.unlink(missing_ok=True)
    proc = subprocess.run(
        [
            "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1300,2400",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
