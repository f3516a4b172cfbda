"""Each start of a service gets a fresh log, the one before kept as ``.1``: appended across
starts, a process that failed before writing anything was explained by the last lines of
the run before it (the demo's worker, Kafka)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from citybrain.stack.process import alive, spawn, tail


def reap(pid: int) -> None:
    """Wait until child ``pid`` has exited and reap it, unless subprocess already has
    (its Popen, dropped by ``spawn``, reaps a child that has exited by then)."""
    while alive(pid):
        time.sleep(0.02)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def run(line: str, log: Path, pid: Path) -> None:
    pid_of = spawn([sys.executable, "-c", f"print({line!r})"], log, pid)
    reap(pid_of)


def test_a_second_start_writes_a_fresh_log_and_keeps_the_first_as_dot_1(tmp_path: Path) -> None:
    log, pid = tmp_path / "logs" / "worker.log", tmp_path / "worker.pid"
    run("first start", log, pid)
    run("second start", log, pid)
    assert log.read_text() == "second start\n"
    assert (tmp_path / "logs" / "worker.log.1").read_text() == "first start\n"
    run("third start", log, pid)
    assert tail(log) == "third start"
    assert (tmp_path / "logs" / "worker.log.1").read_text() == "second start\n"


def test_a_start_that_writes_nothing_shows_nothing_of_the_start_before(tmp_path: Path) -> None:
    log, pid = tmp_path / "kafka.out", tmp_path / "kafka.pid"
    run("ERROR from an earlier start", log, pid)
    pid_of = spawn([sys.executable, "-c", "pass"], log, pid)
    reap(pid_of)
    assert "earlier start" not in tail(log)
    # An empty log is not rotated over the last one that said something.
    pid_of = spawn([sys.executable, "-c", "pass"], log, pid)
    reap(pid_of)
    assert "earlier start" in (tmp_path / "kafka.out.1").read_text()
