"""t111: the directories the stack writes (CITYBRAIN_RUN_DIR, CITYBRAIN_HOME). One that
could not be written was found part-way through a start, after "kafka starting" or
"first run: downloading Kafka" had been printed, and said as "cannot use PATH: Read-only
file system", naming neither the setting nor what to do; a full disk killed Kafka right
after "kafka ready", and `stack up`, `stack status` and every command then said "start
the local stack with `stack up`"."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from citybrain.cli import EXIT_USAGE, main
from citybrain.stack.dirs import MIN_FREE_MB


def _not_a_directory(tmp_path: Path) -> Path:
    """A directory path that cannot be created, for root too (a regular file is in the
    way): what a read-only mount is to a user, without needing one."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return blocker / "dir"


COMMANDS = [["stack", "up"], ["demo"], ["stack", "restart-worker"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_run_directory_that_cannot_be_written_is_named_before_anything_is_said(
    argv: list[str],
    shell: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir = _not_a_directory(shell)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(run_dir))
    assert main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""  # no "kafka starting", no download notice, no demo's first line
    assert err == (
        f"citybrain: CITYBRAIN_RUN_DIR {run_dir} cannot be written (Not a directory): "
        "point CITYBRAIN_RUN_DIR at a directory you can write\n"
    )


@pytest.mark.parametrize("argv", COMMANDS[:2], ids=" ".join)
def test_a_home_that_cannot_take_kafkas_jars_is_named_before_the_download_notice(
    argv: list[str],
    shell: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = _not_a_directory(shell)
    monkeypatch.setenv("CITYBRAIN_HOME", str(home))
    assert main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"citybrain: CITYBRAIN_HOME {home} cannot be written (Not a directory): "
        "point CITYBRAIN_HOME at a directory you can write\n"
    )


def test_the_default_run_directory_is_named_as_the_homes(
    shell: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Jars present (no download, so home itself is not needed), the run directory
    CITYBRAIN_HOME/run: the user set CITYBRAIN_HOME, so that is what to change."""
    home = shell / "home"
    (home / "kafka-4.0.2").mkdir(parents=True)
    (home / "kafka-4.0.2" / ".complete").touch()
    (home / "run").write_text("")  # a file where the run directory would be
    monkeypatch.delenv("CITYBRAIN_RUN_DIR")
    assert main(["stack", "up"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        f"citybrain: CITYBRAIN_HOME's run directory {home / 'run'} cannot be written ("
    ), err
    assert err.endswith(
        ": point CITYBRAIN_HOME (or CITYBRAIN_RUN_DIR for the run directory alone) at a "
        "directory you can write\n"
    ), err


def test_a_full_disk_is_refused_before_kafka_starts(
    shell: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run directory's disk as statvfs reports a full one (a real full disk needs a
    mount: the walk-through used a 64 KiB tmpfs, on which Kafka said "ready" and died)."""
    real = os.statvfs

    class Full:
        def __init__(self, path: str) -> None:
            self.f_frsize = real(path).f_frsize
            self.f_bavail = 16

    monkeypatch.setattr(os, "statvfs", Full)
    assert main(["stack", "up"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    run_dir = shell / "run"
    assert err.startswith(f"citybrain: CITYBRAIN_RUN_DIR {run_dir} is on a disk too full ("), err
    assert f"the stack needs at least {MIN_FREE_MB} MB): free space there, or point" in err
    assert err.count("\n") == 1


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    ("log", "said"),
    [
        (
            "ERROR Error while writing to checkpoint file\n"
            "java.io.IOException: No space left on device\n",
            "the local stack's Kafka has exited: CITYBRAIN_RUN_DIR {run} cannot be written "
            "(No space left on device): free space there, or point CITYBRAIN_RUN_DIR at a "
            "directory on another disk (its log {log} says so)",
        ),
        (
            "ERROR Encountered fatal fault\n",
            "the local stack's Kafka has exited (its log: {log}); `",
        ),
    ],
    ids=["disk full", "other"],
)
def test_a_kafka_that_died_is_not_told_to_be_started(
    log: str,
    said: str,
    shell: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Its pid file left behind, naming a process that is gone: `stack status` says it
    exited, and why when its log says, rather than "start the local stack"."""
    kafka_dir = shell / "run" / "kafka"
    (kafka_dir / "logs").mkdir(parents=True)
    (kafka_dir / "kafka.pid").write_text(str(_dead_pid()))
    server_log = kafka_dir / "logs" / "server.log"
    server_log.write_text(log)
    assert main(["stack", "status"]) == 1
    err = capsys.readouterr().err
    assert said.format(run=shell / "run", log=server_log) in err
    assert "start the local stack" not in err
    if "disk" not in said:
        # `stack up` alone starts it again (the walk-through: 15 s after a kill -9).
        assert err.rstrip().endswith(" stack up` starts it again"), err


def test_a_write_refused_under_the_run_directory_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any command's OSError on a file in the run directory (the demo's token files,
    a worker's crash file) names the setting, not only the path."""
    from citybrain.cli.main import _describe

    monkeypatch.delenv("CITYBRAIN_RUN_DIR", raising=False)
    monkeypatch.setenv("CITYBRAIN_HOME", str(tmp_path))
    run = tmp_path / "run"
    exc = OSError(errno.EROFS, "Read-only file system", str(run / "demo" / "operator-token"))
    status, message = _describe(exc)
    assert status == EXIT_USAGE
    assert message.startswith(f"CITYBRAIN_HOME's run directory {run} cannot be written ("), message
    assert message.endswith("at a directory you can write")
    # A file elsewhere keeps the plain words: no setting chose it.
    status, message = _describe(OSError(errno.EROFS, "Read-only file system", "/elsewhere/x"))
    assert message == "cannot use /elsewhere/x: Read-only file system"


@pytest.mark.parametrize("argv", [["stack", "status"], ["deadletters"]], ids=" ".join)
def test_a_run_directory_that_cannot_be_written_is_named_instead_of_stack_up(
    argv: list[str],
    shell: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t123's walk: with the run directory on a read-only disk, `stack status` and the
    commands that need Kafka said "start the local stack with `stack up`", which then
    refused the directory; they name it, and say what to do, first."""
    from tests.services import free_ports

    (kafka,) = free_ports(1)
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", str(kafka))
    run_dir = _not_a_directory(shell)
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(run_dir))
    assert main(argv) in (1, 3)
    err = capsys.readouterr().err
    assert (
        f"CITYBRAIN_RUN_DIR {run_dir} cannot be written (Not a directory): point "
        "CITYBRAIN_RUN_DIR at a directory you can write, then start the local stack there"
    ) in err, err
    assert not (shell / "a-file").is_dir()  # nothing was created to find it out
