"""The main job end to end: ``citybrain demo`` on the committed real data, as a user runs
it, and its what-if report rendered in headless Chromium (Debian's package)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citybrain.demo import DemoFiles, stop_demo_worker
from citybrain.stack import PrometheusServer
from tests.services import ROOT, TEST_PORTS, prometheus_query, stack_settings

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
) -> Iterator[dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, **TEST_PORTS, "CITYBRAIN_RUN_DIR": str(run_dir)}
    env.pop("CITYBRAIN_API_TOKEN", None)
    started = time.time()
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
    settings = stack_settings(run_dir)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "demo-output.txt").write_text(proc.stdout + proc.stderr)
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        yield {
            "summary": json.loads((out / "summary.json").read_text()),
            "report": out / "report.html",
            "stdout": proc.stdout,
            "dir": out,
            "env": env,
            "files": DemoFiles.of(settings),
            "started": started,
            "prometheus": stack.url,
        }
    finally:
        # The demo leaves its worker serving its runs; the next tests need the port.
        stop_demo_worker(settings)


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
        "Dead Run flash flood (Baltimore, 2019-05-10 22:25 local, EDT)": True,
        "Spring Festival fireworks (Beijing, 2016-02-08 00:00 local, CST)": True,
    }
    # Issue 13: the summary reports the alerts outside the dated events per sensor-day.
    outside = summary["alerts_outside_known_events"]
    assert 0 <= outside < summary["alerts"]
    assert summary["false_alarms_per_1000_sensor_days"] >= 0
    first = summary["alert_list"][0]
    assert set(first) == {
        "id",
        "subject",
        "sensor_id",
        "category",
        "kind",
        "grid_cell",
        "cell_name",
        "severity",
        "first_event_time",
        "last_event_time",
        "playbook",
        "run_id",
    }
    assert len({a["id"] for a in summary["alert_list"]}) == summary["alerts"]
    # Every alert says which playbook and run it went to (none is silenced in the demo).
    assert all(a["playbook"] and a["run_id"] for a in summary["alert_list"])
    assert len({a["run_id"] for a in summary["alert_list"]}) == summary["runs"]
    bursts = [a for a in summary["alert_list"] if a["kind"] == "incident_burst"]
    assert bursts and all(a["category"] and a["subject"] for a in bursts)
    assert all(a["subject"] == f"{a['grid_cell']} {a['category']}" for a in bursts)
    assert all(a["cell_name"] for a in summary["alert_list"])


def test_prometheus_scraped_the_demos_worker_before_its_first_event(
    demo: dict[str, Any],
) -> None:
    """t123's walk: the demo replayed as soon as its worker served, and Prometheus' first
    scrape of it came after it had counted 6,801 readings and 5 alerts; increase() never
    counts a series' first sample, so after the demo the map and the alert panels showed
    38 of the summary's 43 alerts. Each counter's first sample is now 0, and the
    dashboards' increase() over the demo counts every reading and alert."""
    window = f"{int(time.time() - demo['started']) + 1}s"
    worker = f'job="citybrain-worker", instance="127.0.0.1:{TEST_PORTS["CITYBRAIN_WORKER_PORT"]}"'
    summary = demo["summary"]
    for name, total in (
        ("citybrain_readings_total", summary["readings"]),
        ("citybrain_alerts_total", summary["alerts"]),
    ):
        first = prometheus_query(demo["prometheus"], f"min_over_time({name}{{{worker}}}[{window}])")
        assert first, f"Prometheus holds no {name} of the demo's worker"
        counted = {json.dumps(r["metric"], sort_keys=True): r["value"][1] for r in first}
        assert set(counted.values()) == {"0"}, {k: v for k, v in counted.items() if v != "0"}
        (seen,) = prometheus_query(
            demo["prometheus"], f"sum(increase({name}{{{worker}}}[{window}]))"
        )
        # increase() extrapolates to the window's end: a little over, never under.
        assert total <= float(seen["value"][1]) < total * 1.1, (name, total, seen)


def test_demo_output_is_plain_lines_when_not_a_terminal(demo: dict[str, Any]) -> None:
    out: str = demo["stdout"]
    assert "\x1b[" not in out  # no live-table redraws or colours into a pipe or a log
    # Every message on its own line: nothing broken at the 80 columns of a non-terminal.
    assert re.search(r"^kafka \S+ \| prometheus \S+ \| 33,775 events from 4 files$", out, re.M)
    progress = re.findall(
        r"^\[\s*\d+ s\] (replaying|replay sent[^:]*|replay done[^:]*): ([\d,]+) of ([\d,]+) "
        r"events processed \(\d+ %\), [\d,]+ readings/s(?: on average)?; ",
        out,
        re.M,
    )
    assert progress, out[:3000]
    # t60: 30-50 s of silence before the first progress line while the worker started.
    starting = re.search(
        r"^starting its stream worker \(about 30 s .*log: \S+worker\.log\)", out, re.M
    )
    assert starting and starting.start() < out.index("events processed"), out[:3000]
    # The last progress line comes after the replay, with everything processed.
    phase, done, total = progress[-1]
    assert phase.startswith("replay done") and done == total == "33,775"
    # Each alert is listed with its playbook and run.
    assert re.search(
        r"^event time \(UTC\)\s+severity\s+kind\s+what\s+cell\s+playbook\s+run", out, re.M
    )
    assert "detected Dead Run flash flood" in out


def test_demo_says_how_to_reach_its_runs_and_stop_everything(demo: dict[str, Any]) -> None:
    out: str = demo["stdout"]
    files: DemoFiles = demo["files"]
    assert f"export CITYBRAIN_API_TOKEN=$(cat {files.token})" in out
    # t66: the README's HTTP example after the demo got only 401s (no gateway token).
    assert f"export GATEWAY_TOKEN=$(cat {files.gateway_token})" in out
    assert f"CITYBRAIN_API_TOKENS_FILE={files.tokens} " in out and " ingest http\n" in out
    # The stop line works from any directory (trial 9: `make stack-down` needed the
    # checkout): the absolute citybrain, with the demo's settings before it.
    stop = re.search(r"(\S+/citybrain) stack down\s*$", out, re.M)
    assert stop, out[-2000:]
    assert Path(stop.group(1)).is_absolute() and Path(stop.group(1)).exists()
    assert (files.token.stat().st_mode & 0o777) == 0o600
    # The report line writes the report the demo wrote, by absolute path (t51: a
    # relative demo-report.html, not the --report given, landed wherever it was typed).
    assert f" --out {demo['report']}\n" in out
    # As the printed lines say: the demo token lists the demo's runs after the demo ended.
    env = {**demo["env"], "CITYBRAIN_API_TOKEN": files.token.read_text().strip()}
    listed = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "runs", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert {r["run_id"] for r in runs} <= {a["run_id"] for a in demo["summary"]["alert_list"]}
    assert runs
    table = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "runs", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[1].split()[:3] == ["RUN", "PLAYBOOK", "CELL"]
    assert runs[0]["run_id"] in table.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "runs", "list", "--token", "not-the-token"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 1
    assert "HTTP 401: unknown bearer token" in wrong.stderr
    # t116: the alerts have a command, printed with the others, and it works as printed.
    assert re.search(r"\S+/citybrain alerts list   # the alerts firing now", out), out[-3000:]
    alerts = subprocess.run(
        [sys.executable, "-m", "citybrain.cli", "alerts", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert alerts.returncode == 0, alerts.stderr
    assert " firing now (an alert that ended is listed no more" in alerts.stdout.splitlines()[0]
    # The demo writes an operator and a coordinator token.
    assert "operator API open on /api/v1 with 2 token(s)" in files.log.read_text()


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
    # The map (issue 15, item 12): a figure per city with coordinates, drawn from the
    # grid without tiles; alerted sensors and cells carry their severity.
    cities = set(re.findall(r'<figure class="map" data-city="([^"]+)"', dom.stdout))
    assert {"Aarhus", "Maryland urban streams", "New York City"} <= cities
    mapped = re.search(r'data-mapped="(\d+)"', dom.stdout)
    assert mapped and int(mapped.group(1)) >= 5
    assert "detected: Dead Run flash flood" in dom.stdout
    assert "A what-if replay feeds recorded history" in dom.stdout
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
