"""t111: a pid file left by a crash (or a reboot) whose pid the kernel had since given to
another process: `stack status` showed that stranger as the service "starting", and
`stack down` sent it SIGTERM, then SIGKILL 30 s later (the walk-through's `sleep 1000`
under mosquitto.pid was killed). A process younger than the pid file that names it is
not the process the file was written for."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import main
from citybrain.stack.process import (
    PID_FILE_SLACK,
    process_age,
    read_pid,
    spawn,
    start_file,
    start_ticks,
    stop,
)
from tests.services import free_ports


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A live process the stack never started."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _left_by_a_crash(pid_file: Path, pid: int, hours_ago: float = 1.0) -> None:
    """``pid_file`` as a crash an hour ago left it, naming ``pid`` (since reused)."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(pid))
    at = time.time() - hours_ago * 3600
    os.utime(pid_file, (at, at))


def test_a_pid_file_older_than_its_process_is_stale(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    pid_file = tmp_path / "kafka.pid"
    _left_by_a_crash(pid_file, stranger.pid)
    assert read_pid(pid_file) is None
    # Written after it started (as spawn writes it), the same pid is the service's.
    pid_file.write_text(str(stranger.pid))
    assert read_pid(pid_file) == stranger.pid


def test_a_spawned_service_is_known_by_its_start_time_whatever_the_wall_clock_did(
    tmp_path: Path,
) -> None:
    """A clock stepped forward after the start (NTP, a resumed VM; this machine's clock
    jumps) made the file look an hour older than the process: read as stale, the
    running service was "down" to `stack status` and left running by `stack down`. The
    start time ``spawn`` records beside the pid decides, on the boot clock."""
    pid_file = tmp_path / "kafka.pid"
    pid = spawn(
        [sys.executable, "-c", "import time; time.sleep(120)"], tmp_path / "k.log", pid_file
    )
    try:
        assert start_file(pid_file).read_text() == str(start_ticks(pid))
        at = time.time() - 3600  # the wall clock stepped an hour on since the start
        os.utime(pid_file, (at, at))
        assert read_pid(pid_file) == pid
        # Another process given that pid (its start time differs): not the service.
        start_file(pid_file).write_text(str(int(start_file(pid_file).read_text()) - 1))
        assert read_pid(pid_file) is None
        start_file(pid_file).write_text(str(start_ticks(pid)))
        assert stop(pid_file, timeout=10) is True
        assert not pid_file.exists() and not start_file(pid_file).exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def test_a_process_age_is_read_on_the_boot_clock(stranger: subprocess.Popen[bytes]) -> None:
    age = process_age(stranger.pid)
    assert age is not None and 0 <= age < 60
    mine = process_age(os.getpid())
    assert mine is not None and mine >= age - PID_FILE_SLACK


def test_stack_status_and_down_leave_a_stranger_alone(
    tmp_path: Path,
    stranger: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    names = ("KAFKA", "KAFKA_CONTROLLER", "PROMETHEUS", "MQTT", "WORKER")
    for name, port in zip(names, free_ports(len(names)), strict=True):
        monkeypatch.setenv(f"CITYBRAIN_{name}_PORT", str(port))
    for service in ("kafka", "prometheus", "mosquitto"):
        _left_by_a_crash(tmp_path / service / f"{service}.pid", stranger.pid)
    _left_by_a_crash(tmp_path / "demo" / "worker.pid", stranger.pid)

    main(["stack", "status"])
    out = capsys.readouterr().out
    for service in ("kafka", "prometheus", "mosquitto"):
        line = next(line for line in out.splitlines() if line.startswith(service))
        assert line.split()[1] == "down", line

    assert main(["stack", "down"]) == 0
    out = capsys.readouterr().out
    assert "stopped" not in out.replace("was not running", ""), out
    time.sleep(0.3)
    assert stranger.poll() is None, "stack down killed a process it never started"


@pytest.mark.parametrize(
    "text", ["99999999999999999999999", "-1", "0", "+1", "1_0", "\u0661", "4194305", "1\x00"]
)
def test_a_damaged_pid_file_names_no_process(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
) -> None:
    """t180: a pid file holding a number past a C long (digits run together) made
    `stack status` and `stack down` exit 70, "unexpected OverflowError … This is a bug";
    int() took -1 (every process, to kill), 0 (our own group), +1, 1_0 and Arabic-Indic
    digits as pids. Only ASCII digits from 1 to PID_MAX name one."""
    from citybrain.stack.process import PID_MAX, alive, pid_in

    assert pid_in(text) is None
    assert not any(alive(pid) for pid in (-1, 0, 10**30, PID_MAX + 1))
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path))
    names = ("KAFKA", "KAFKA_CONTROLLER", "PROMETHEUS", "MQTT", "WORKER")
    for name, port in zip(names, free_ports(len(names)), strict=True):
        monkeypatch.setenv(f"CITYBRAIN_{name}_PORT", str(port))
    for service in ("kafka", "prometheus", "mosquitto"):
        (tmp_path / service).mkdir()
        (tmp_path / service / f"{service}.pid").write_text(text)
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "worker.pid").write_text(text)
    assert main(["stack", "status"]) == 1
    assert main(["stack", "down"]) == 0
    assert "unexpected" not in capsys.readouterr().err


def test_a_pid_file_of_digits_names_its_process() -> None:
    from citybrain.stack.process import pid_in

    assert pid_in(" 4242\n") == 4242
    assert pid_in("2") == 2
    # t194: 1 is init, never a service of ours (always older than the file, so one
    # without its start time was taken, and `stack down` signalled init).
    assert pid_in("1") is None
