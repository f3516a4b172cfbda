"""The demo's lifecycle on the real stack, as a newcomer meets it (t36): a second demo
refuses while one runs and leaves it alone; a running demo stopped from another shell
(as `stack down` stops it) says by what; a stopped demo worker restarts, as `stack
status` says, tracked by the stack; `report` and `campaign report` on a quiet demo name
its running worker and prefix. The pure parts: tests/unit/citybrain/test_demo_lifecycle.py."""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from citybrain.demo import (
    DEMO_DATA,
    DemoFiles,
    demo_worker,
    running_demo,
    stop_demo_worker,
    stop_running_demo,
    topic_prefixes,
)
from citybrain.ports import can_bind
from citybrain.stack import PrometheusServer
from citybrain.stack.process import alive, read_pid
from tests.services import TEST_PORTS, stack_settings

pytestmark = pytest.mark.e2e
NYC311 = next(p for p in DEMO_DATA if p.name.startswith("nyc311"))


def _env(run_dir: Path) -> dict[str, str]:
    env = {**os.environ, **TEST_PORTS, "CITYBRAIN_RUN_DIR": str(run_dir)}
    env.pop("CITYBRAIN_API_TOKEN", None)
    return env


def _cli(env: dict[str, str], *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "citybrain.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def quiet_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four quiet days of two Dead Run gauges (the flood comes later): no alert."""
    path = tmp_path_factory.mktemp("quiet") / "quiet.csv"
    with gzip.open(next(p for p in DEMO_DATA if p.name.startswith("usgs")), "rt") as fh:
        lines = [next(fh) for _ in range(301)]
    path.write_text("".join(lines))
    return path


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _taken(url: str) -> bool:
    """Whether the worker serving ``url`` (its /metrics) has taken an event of the
    demo's replay: interrupted before that, a demo made no run to restart (t209)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return False
    return any(
        line.startswith(("citybrain_incidents_total", "citybrain_readings_total"))
        and float(line.rsplit(" ", 1)[1]) > 0
        for line in text.splitlines()
    )


def test_a_second_demo_refuses_and_a_demo_stopped_from_another_shell_says_by_what(
    stack: PrometheusServer, run_dir: Path, quiet_data: Path, tmp_path: Path
) -> None:
    """Fault 1: the second demo stopped the first one's worker and deleted its topics, and
    the first then ended with "a service did not answer ... start the local stack"."""
    settings = stack_settings(run_dir)
    files = DemoFiles.of(settings)
    env = _env(run_dir)
    out, err = (tmp_path / "first.out").open("w"), (tmp_path / "first.err").open("w")
    # Runs wait 600 s for a person: the first demo is still running while we look.
    first = subprocess.Popen(
        [sys.executable, "-m", "citybrain.cli", "demo", "--data", str(NYC311),
         "--ack-deadline", "600"],
        env=env, stdout=out, stderr=err,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        url = f"http://127.0.0.1:{settings.worker_port}/metrics"
        while not (
            (demo := running_demo(settings)) is not None
            and demo.pid == first.pid
            and read_pid(files.pid) is not None
            and _serving(url)
        ):
            assert first.poll() is None, (tmp_path / "first.err").read_text()
            assert time.monotonic() < deadline, "the first demo's worker did not start"
            time.sleep(0.5)
        worker = read_pid(files.pid)
        prefix = demo.prefix
        assert prefix in topic_prefixes(settings)

        second = _cli(env, "demo", "--data", str(quiet_data))
        assert second.returncode == 3, second.stdout + second.stderr
        assert second.stderr.startswith(
            f"citybrain: another demo is running on this stack (pid {first.pid}, started "
        )
        assert f"topic prefix {prefix}" in second.stderr and f"`kill {first.pid}`" in second.stderr
        assert "deleted the topics" not in second.stdout
        # The first demo is left as it was: its worker, its topics, its progress.
        assert read_pid(files.pid) == worker and prefix in topic_prefixes(settings)
        assert first.poll() is None

        status = _cli(env, "stack", "status")
        assert f"demo        running  pid {first.pid}, topic prefix {prefix}" in status.stdout

        # What `stack down` does first: stop the demo and wait until it has ended.
        stopped = stop_running_demo(settings, "citybrain stack down")
        assert stopped is not None and stopped.pid == first.pid
        assert first.wait(timeout=60) == 130
        said = (tmp_path / "first.err").read_text()
        assert re.search(
            r"^citybrain: stopped: `citybrain stack down` \(pid \d+\) in another shell stopped "
            r"this demo and its worker",
            said,
            re.M,
        ), said
        assert "start the local stack" not in said
        assert worker is not None and not alive(worker)  # the demo stopped its worker
    finally:
        first.kill()
        first.wait()
        out.close()
        err.close()
        stop_demo_worker(settings)


@pytest.fixture(scope="module")
def quiet_demo(
    stack: PrometheusServer, run_dir: Path, quiet_data: Path
) -> Iterator[dict[str, Any]]:
    """A demo that raised no alert (exit 1), its worker left running."""
    env = _env(run_dir)
    proc = _cli(env, "demo", "--data", str(quiet_data), "--ack-deadline", "3", timeout=300)
    settings = stack_settings(run_dir)
    try:
        assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "the demo raised no alert" in proc.stderr
        state, doc = demo_worker(settings)
        assert state == "running" and doc is not None
        yield {"env": env, "settings": settings, "prefix": doc["topic_prefix"], "doc": doc}
    finally:
        stop_demo_worker(settings)


def test_report_and_campaign_report_of_a_quiet_demo_name_its_running_worker(
    quiet_demo: dict[str, Any], quiet_data: Path, tmp_path: Path
) -> None:
    """Fault 3: `report` advised starting a worker while the demo's was running (one
    started as advised failed on its port); `campaign report` without --prefix read the
    default prefix, unsaid."""
    env, prefix = quiet_demo["env"], quiet_demo["prefix"]
    report = _cli(
        env, "report", "--prefix", prefix, "--data", str(quiet_data),
        "--out", str(tmp_path / "r.html"),
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    url = quiet_demo["doc"]["worker_url"]
    assert (
        f"citybrain: warning: prefix {prefix!r} has no alerts and no steps: the demo's "
        f"worker, running on {url}, reads it and raised no alert"
    ) in report.stderr
    assert "start one" not in report.stderr and " worker\n" not in report.stderr
    # Without --prefix: the warnings name the running demo's prefix, the one read (t46:
    # "under prefix None").
    unsent = _cli(
        env, "report", "--data", str(quiet_data), str(NYC311), "--out", str(tmp_path / "u.html")
    )
    assert unsent.returncode == 0, unsent.stderr
    assert (
        f"citybrain: warning: --data {NYC311.name}: the topics of prefix {prefix!r} hold none"
    ) in unsent.stderr
    assert "None" not in unsent.stderr
    today = datetime.now(UTC).date()
    campaign = _cli(
        env, "campaign", "report", "--from", f"{today}", "--to", f"{today + timedelta(days=1)}"
    )
    assert campaign.returncode in (1, 2), campaign.stderr
    assert campaign.stderr.startswith(
        f"(the running demo's prefix {prefix}; --prefix reads another)\n"
    )
    assert f"the running demo's prefix {prefix!r} (no --prefix given)" in campaign.stderr


def test_stack_reload_puts_an_edited_grid_on_the_map_and_reloads_the_demo_worker(
    quiet_demo: dict[str, Any], tmp_path: Path
) -> None:
    """The stack's Prometheus read the grid's cell positions at `stack up` only: a cell
    added to the grid (and reloaded into the worker by SIGHUP) stayed off the map until
    the stack was restarted. `stack reload` writes them again and reloads Prometheus, and
    sends the demo's worker SIGHUP, saying how each went."""
    from tests.services import FIXTURES, prometheus_query

    env, settings = quiet_demo["env"], quiet_demo["settings"]
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        (FIXTURES / "grid.yaml")
        .read_text()
        .replace(
            "sensors:",
            "  - {id: c-new, level: community, parent: s-hill, name: New, unit: new station, "
            "lat: 39.34, lon: -76.68}\nsensors:",
        )
    )
    url = f"http://127.0.0.1:{settings.prometheus_port}"

    def placed(cell: str) -> bool:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if prometheus_query(url, f'citybrain:cell_location{{community="{cell}"}}'):
                return True
            time.sleep(0.5)
        return False

    try:
        reloaded = _cli({**env, "CITYBRAIN_GRID_FILE": str(grid)}, "stack", "reload")
        assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
        said = reloaded.stdout
        assert f"prometheus  map rules reloaded from {grid} (4 placed community cells)" in said
        pid = read_pid(DemoFiles.of(settings).pid)
        assert f"demo worker reloaded (pid {pid}): configuration reloaded: " in said, said
        assert "ingests     not the stack's: send each one you started SIGHUP" in said
        assert placed("c-new")
        # A grid with an error changes nothing: exit 2, naming the file and line.
        broken = tmp_path / "broken.yaml"
        broken.write_text(grid.read_text().replace("level: community, parent: s-hill", "level: x"))
        refused = _cli({**env, "CITYBRAIN_GRID_FILE": str(broken)}, "stack", "reload")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert str(broken) in refused.stderr and "Traceback" not in refused.stderr
        assert refused.stdout == ""
    finally:
        restored = _cli(
            {**env, "CITYBRAIN_GRID_FILE": str(FIXTURES / "grid.yaml")}, "stack", "reload"
        )
        assert restored.returncode == 0, restored.stdout + restored.stderr


def test_a_stopped_demo_worker_restarts_as_status_says_and_is_tracked(
    quiet_demo: dict[str, Any],
) -> None:
    """Fault 2: the restart line `stack status` printed started a worker the stack did
    not track: status still said stopped, `stack down` left it running, and the next
    demo failed on its port."""
    env, settings = quiet_demo["env"], quiet_demo["settings"]
    files = DemoFiles.of(settings)
    worker = read_pid(files.pid)
    assert worker is not None
    os.kill(worker, signal.SIGKILL)  # crashed or killed: its pid file stays
    while alive(worker):
        time.sleep(0.1)
    status = _cli(env, "stack", "status")
    assert "demo worker stopped" in status.stdout, status.stdout
    # t83: a crashed demo worker is a failing status (it was exit 0), said on stderr.
    assert status.returncode == 1, status.stdout + status.stderr
    assert status.stderr.startswith(
        "citybrain: the demo's worker exited without a `stack down` (crashed or killed)"
    ), status.stderr
    assert status.stderr.count("\n") == 1 and "restart-worker" in status.stderr
    line = re.search(r"start it again, as the demo ran it: (.+)$", status.stdout, re.M)
    assert line, status.stdout
    # As typed in a fresh shell: no CITYBRAIN_* variable but what the line carries.
    fresh = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    restarted = subprocess.run(
        ["bash", "-c", line.group(1)], env=fresh, capture_output=True, text=True, timeout=150
    )
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    again = read_pid(files.pid)
    assert again is not None and again != worker
    assert f"demo worker started (pid {again})" in restarted.stdout
    status = _cli(env, "stack", "status")
    assert f"(pid {again})" in status.stdout and "demo worker running" in status.stdout
    assert "something answers" not in status.stdout
    assert (status.returncode, status.stderr) == (0, "")
    # What `stack down` does with it: stopped, and its port free for the next demo.
    assert stop_demo_worker(settings)
    assert not alive(again)
    assert can_bind("127.0.0.1", settings.worker_port)
    assert demo_worker(settings)[0] == "none"


def test_an_interrupted_demos_worker_comes_back_with_restart_worker_as_it_says(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path
) -> None:
    """t46: after Ctrl-C in `make demo`, nothing pointed to `stack restart-worker`:
    status said `demo worker down (optional)`, and `runs list` to start one with `make
    demo` (which deletes the interrupted demo's topics)."""
    settings = stack_settings(run_dir)
    files = DemoFiles.of(settings)
    env = _env(run_dir)
    err_path = tmp_path / "demo.err"
    with (tmp_path / "demo.out").open("w") as out, err_path.open("w") as err:
        demo = subprocess.Popen(
            [sys.executable, "-m", "citybrain.cli", "demo", "--data", str(NYC311),
             "--ack-deadline", "600"],
            env=env, stdout=out, stderr=err,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            url = f"http://127.0.0.1:{settings.worker_port}/metrics"
            # Its own worker (a module fixture's demo may have left one serving).
            while not (
                (running := running_demo(settings)) is not None
                and running.pid == demo.pid
                and (demo_worker(settings)[1] or {}).get("topic_prefix") == running.prefix
                and read_pid(files.pid) is not None
                and _serving(url)
                # Its replay begun (a run to come back to): interrupted before, the demo
                # says it sent nothing and offers no restart (t209).
                and _taken(url)
            ):
                assert demo.poll() is None, err_path.read_text()
                assert time.monotonic() < deadline, "the demo's worker did not start"
                time.sleep(0.5)
            prefix = running.prefix
            demo.send_signal(signal.SIGINT)  # Ctrl-C
            assert demo.wait(timeout=60) == 130
        finally:
            demo.kill()
            demo.wait()
    said = err_path.read_text()
    assert re.search(
        rf"the demo did not finish \(its worker was stopped; `CITYBRAIN_\S+.*"
        rf"CITYBRAIN_RUN_DIR={re.escape(str(run_dir))}[^`]* \S*citybrain stack restart-worker` "
        "starts it again on the runs it made",
        said,
    ), said
    status = _cli(env, "stack", "status")
    assert "demo worker down" in status.stdout, status.stdout
    # Down on purpose (the demo interrupted): no failure of the stack (t83).
    assert (status.returncode, status.stderr) == (0, ""), status.stderr
    line = re.search(
        rf"the last demo's \(prefix {prefix}\); start it again, as the demo ran it: (.+)$",
        status.stdout,
        re.M,
    )
    assert line, status.stdout
    runs = _cli(
        env, "runs", "list", "--token", "x", "--url", f"http://127.0.0.1:{settings.worker_port}"
    )
    assert f"the last demo's worker (prefix {prefix}) is not running" in runs.stderr, runs.stderr
    assert "make demo" not in runs.stderr
    # As typed in a fresh shell: no CITYBRAIN_* variable but what the line carries.
    fresh = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    try:
        restarted = subprocess.run(
            ["bash", "-c", line.group(1)], env=fresh, capture_output=True, text=True, timeout=150
        )
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert f"topic prefix {prefix}" in restarted.stdout
        # t60: it waited for the worker without a word.
        assert "starting the demo's stream worker (about 30 s" in restarted.stdout
        assert prefix in topic_prefixes(settings)
    finally:
        stop_demo_worker(settings)
