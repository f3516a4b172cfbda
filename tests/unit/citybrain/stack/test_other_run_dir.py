"""t164's walk: a stack started with one run directory (a demo run with
`CITYBRAIN_RUN_DIR=/tmp/demo2 CITYBRAIN_KAFKA_PORT=… make demo`, as the README shows), then
a stack command typed in a shell with the same ports but another run directory (the
variable forgotten, or the default one). `stack down` said each service "was not running"
and exited 0 with the whole stack still running on those ports; `stack reload` said "map
rules reloaded" having written them into its own directory, which the serving
Prometheus never reads; `stack up` said the port was "in use (another Prometheus's, or
another program's)". Each now names the other run directory and the command that acts
on it; `stack down` and `stack reload` exit 1."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import main
from citybrain.demo import DemoFiles
from citybrain.stack import PrometheusServer
from citybrain.stack.process import alive, listening_pid, serving_run_dir, spawn
from streams.settings import Settings
from tests.services import free_ports

# A stand-in for a service: listens on argv[1] and answers every GET and POST with 200,
# as Prometheus' /-/ready and /-/reload do.
SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Ok(BaseHTTPRequestHandler):
    def _ok(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_GET = do_POST = _ok
    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
"""


@pytest.fixture
def first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Free ports and the first run directory, in this process's environment."""
    run = tmp_path / "first run"
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(run))
    monkeypatch.setenv("CITYBRAIN_HOME", str(tmp_path / "home"))
    names = ("KAFKA", "KAFKA_CONTROLLER", "PROMETHEUS", "WORKER", "MQTT")
    for name, port in zip(names, free_ports(len(names)), strict=True):
        monkeypatch.setenv(f"CITYBRAIN_{name}_PORT", str(port))
    return run


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, f"the stand-in never listened on {port}"
        time.sleep(0.05)


@pytest.fixture
def served(first: Path) -> Iterator[list[int]]:
    """The first run directory's Prometheus and demo worker, stand-ins spawned as the
    stack spawns them (their output in its log files) and listening on their ports."""
    settings = Settings()
    prom, files = PrometheusServer(settings), DemoFiles.of(settings)
    prom.dir.mkdir(parents=True)
    files.dir.mkdir(parents=True)
    pids = [
        spawn(
            [sys.executable, "-c", SERVER, str(settings.prometheus_port)],
            prom.log_file,
            prom.pid_file,
        ),
        spawn([sys.executable, "-c", SERVER, str(settings.worker_port)], files.log, files.pid),
    ]
    try:
        _wait_listening(settings.prometheus_port)
        _wait_listening(settings.worker_port)
        yield pids
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def second(tmp_path: Path, served: list[int], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shell with the same ports and another run directory."""
    run = tmp_path / "second"
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(run))
    return run


def test_the_listener_of_a_port_and_its_run_directory_are_found(
    first: Path, served: list[int]
) -> None:
    settings = Settings()
    assert listening_pid(settings.prometheus_port) == served[0]
    prom = PrometheusServer(settings)
    # Its own run directory's service is no other's; another's is named.
    assert serving_run_dir(settings.prometheus_port, prom.log_file, first) is None
    elsewhere = first.parent / "second" / "prometheus" / "prometheus.log"
    assert serving_run_dir(settings.prometheus_port, elsewhere, first.parent / "second") == first
    # Kafka's place is not Prometheus' output: no run directory is made up for it.
    kafka_place = first.parent / "second" / "kafka" / "logs" / "kafka.out"
    assert serving_run_dir(settings.prometheus_port, kafka_place, first.parent / "second") is None
    assert listening_pid(free_ports(1)[0]) is None


def test_stack_down_of_another_run_directory_leaves_the_stack_and_says_so(
    first: Path, second: Path, served: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Fails on the old code: every line "was not running", exit 0."""
    assert main(["stack", "down"]) == 1
    out, err = capsys.readouterr()
    assert "prometheus  was not running here; left running: the Prometheus on port" in out
    assert f"is the stack of run directory {first} (started with" in out, out
    assert "demo worker was not running here; left running: the demo worker" in out, out
    assert err.count("\n") == 1, err
    assert f"not this run directory's ({second}) and was left running" in err, err
    # The command that stops it names the first run directory, quoted for its space.
    assert f"CITYBRAIN_RUN_DIR='{first}'" in err and "stack down` stops it" in err, err
    assert all(alive(pid) for pid in served)


def test_stack_down_with_nothing_on_its_ports_is_done(
    first: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stack", "down"]) == 0
    out, err = capsys.readouterr()
    assert "left running" not in out and err == "", (out, err)


def test_stack_reload_of_another_run_directory_reloads_nothing_and_says_so(
    first: Path, second: Path, served: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Fails on the old code: "map rules reloaded", exit 0, the rules written into the
    second run directory, which the serving Prometheus does not read."""
    assert main(["stack", "reload"]) == 1
    out = capsys.readouterr().out
    assert "map rules reloaded" not in out, out
    assert "prometheus  not reloaded: the Prometheus on port" in out, out
    assert f"run directory {first}" in out and "stack reload` reloads it" in out, out
    assert "demo worker not reloaded: the demo worker on port" in out, out
    assert not (second / "prometheus").exists()


def test_stack_up_names_the_run_directory_whose_service_holds_the_port(
    first: Path, second: Path, served: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Fails on the old code: "already in use (another Prometheus's, or another
    program's)", naming neither the run directory nor how to stop it."""
    assert main(["stack", "up"]) == 3
    err = capsys.readouterr().err
    assert f"is the stack of run directory {first}" in err, err
    assert "stack down` stops it" in err, err


def test_stack_status_says_whose_stack_answers(
    first: Path, second: Path, served: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    main(["stack", "status"])
    out = capsys.readouterr().out
    assert "(the Prometheus on port" in out and f"run directory {first}" in out, out
    assert "but the demo worker on port" in out, out


def test_the_demo_names_the_run_directory_whose_service_holds_the_port(
    first: Path, second: Path, served: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo checks the ports as `stack up` does (fails on the old code: "already in
    use (another Prometheus's, or another program's)")."""
    assert main(["demo"]) == 3
    err = capsys.readouterr().err
    assert f"is the stack of run directory {first}" in err, err
    assert "stack down` stops it, or give this run directory's stack ports" in err, err
    assert all(alive(pid) for pid in served)
