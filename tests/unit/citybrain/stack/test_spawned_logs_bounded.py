"""The logs ``spawn`` writes into the run directory (the demo's worker.log,
prometheus.log, mosquitto.log, Kafka's kafka.out) are rolled by size while their process
runs, as Kafka's server.log is (t176); before t186 they grew without bound for as long as
the process ran."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from citybrain.stack import process
from citybrain.stack.process import alive, spawn


def reap(pid: int) -> None:
    """Wait until child ``pid`` has exited and reap it, unless subprocess already has
    (its Popen, dropped by ``spawn``, reaps a child that has exited by then)."""
    while alive(pid):
        time.sleep(0.02)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


# Writes 60 lines of 1,000 bytes, one every 60 ms (3.6 s in all), then stays up 1.5 s so
# the roller polls it once more.
CHATTY = (
    "import sys, time\n"
    "for i in range(60):\n"
    "    print(f'{i:04d} ' + 'x' * 994, flush=True)\n"
    "    time.sleep(0.06)\n"
    "time.sleep(1.5)\n"
)


def test_a_spawned_processs_log_is_rolled_by_size_and_bounded(tmp_path: Path) -> None:
    log, pid = tmp_path / "demo" / "worker.log", tmp_path / "worker.pid"
    pid_of = spawn([sys.executable, "-c", CHATTY], log, pid, max_bytes=8_000, files=2)
    reap(pid_of)
    time.sleep(process_poll() + 0.5)  # the roller's last look, after the process
    rolled = sorted(p.name for p in log.parent.iterdir())
    assert rolled == ["worker.log", "worker.log.1", "worker.log.2"]
    sizes = {p.name: p.stat().st_size for p in log.parent.iterdir()}
    # Each at most the bound plus a poll's writing (about 17 lines a second here).
    assert all(size <= 8_000 + 20_000 for size in sizes.values()), sizes
    assert sum(sizes.values()) < 60_000  # 60,000 written: the oldest were dropped
    # The newest lines are in the log and .1, in order, whole.
    lines = (log.parent / "worker.log.1").read_text().splitlines() + log.read_text().splitlines()
    assert lines and all(len(line) == 999 for line in lines)
    numbers = [int(line[:4]) for line in lines]
    assert numbers == sorted(numbers) and numbers[-1] == 59


def test_the_roller_ends_with_its_process(tmp_path: Path) -> None:
    log, pid = tmp_path / "prometheus.log", tmp_path / "prometheus.pid"
    pid_of = spawn([sys.executable, "-c", "print('up')"], log, pid)
    reap(pid_of)
    deadline = time.monotonic() + process_poll() + 3
    while rollers(log) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not rollers(log)
    assert log.read_text() == "up\n"


def test_a_start_keeps_the_rolled_files_of_the_start_before(tmp_path: Path) -> None:
    log = tmp_path / "kafka.out"
    for name, text in (("kafka.out", "c"), ("kafka.out.1", "b"), ("kafka.out.2", "a")):
        (tmp_path / name).write_text(text)
    process.fresh_log(log, files=3)
    assert not log.exists()
    texts = [(tmp_path / f"kafka.out.{i}").read_text() for i in (1, 2, 3)]
    assert texts == ["c", "b", "a"]
    (tmp_path / "kafka.out").write_text("d")
    process.fresh_log(log, files=3)
    texts = [(tmp_path / f"kafka.out.{i}").read_text() for i in (1, 2, 3)]
    assert texts == ["d", "c", "b"]  # the oldest dropped


def process_poll() -> float:
    from citybrain.stack.logroll import POLL_SECONDS

    return POLL_SECONDS


def rollers(log: Path) -> list[int]:
    """The pids of logroll.py processes watching ``log``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"logroll.py") for a in argv) and str(log).encode() in argv:
            found.append(int(entry.name))
    return found
