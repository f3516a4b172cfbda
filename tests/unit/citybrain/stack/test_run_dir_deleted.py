"""t123's walk: the run directory deleted under a running stack (`rm -rf` of
~/.cache/citybrain/run, its pid files with it). `stack down` said each service "was not
running" and left Prometheus and the demo's worker running on their ports; `stack
status` took the worker for "a server the stack did not start". The stack's processes
are found by their output, a log file in the deleted folder, and stopped."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import main
from citybrain.demo import DemoFiles
from citybrain.stack import PrometheusServer
from citybrain.stack.process import alive, read_pid, spawn
from streams.settings import Settings
from tests.services import free_ports

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    run = tmp_path / "run"
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(run))
    for name, port in zip(
        ("KAFKA", "KAFKA_CONTROLLER", "PROMETHEUS", "WORKER", "MQTT"), free_ports(5), strict=True
    ):
        monkeypatch.setenv(f"CITYBRAIN_{name}_PORT", str(port))
    return Settings()


@pytest.fixture
def spawned(settings: Settings) -> Iterator[list[int]]:
    """Stand-ins for Prometheus and the demo's worker, spawned as the stack spawns them."""
    prom, files = PrometheusServer(settings), DemoFiles.of(settings)
    prom.dir.mkdir(parents=True)
    files.dir.mkdir(parents=True)
    pids = [
        spawn(SLEEPER, prom.log_file, prom.pid_file),
        spawn(SLEEPER, files.log, files.pid),
    ]
    try:
        yield pids
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_service_whose_pid_file_went_with_its_folder_is_found_and_stopped(
    settings: Settings, spawned: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    prom, files = PrometheusServer(settings), DemoFiles.of(settings)
    shutil.rmtree(settings.run_dir)
    assert [read_pid(prom.pid_file), read_pid(files.pid)] == spawned
    assert main(["stack", "down"]) == 0
    out = capsys.readouterr().out
    assert "prometheus  stopped" in out, out
    assert "demo worker stopped" in out, out
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in spawned):
        assert time.monotonic() < deadline, f"left running: {spawned}"
        time.sleep(0.1)


def test_a_process_writing_elsewhere_is_no_service_of_the_folder(
    settings: Settings, spawned: list[int], tmp_path: Path
) -> None:
    """Only output into the pid file's own folder (or its logs/) counts: another run
    directory's service, or any process, is not taken for this one's."""
    from citybrain.stack.process import stray_pid

    other = tmp_path / "other" / "prometheus"
    assert stray_pid(other / "prometheus.pid") is None
    assert stray_pid(PrometheusServer(settings).dir / "sub" / "prometheus.pid") is None
