"""t111: two `stack up` at once on one run directory (two terminals; `make stack-up`
beside `make demo`) both started Prometheus: one's pid file named the process that lost
the port, the winner ran on where `stack down` could not stop it, holding the port, and
both commands failed with Prometheus' log; on a fresh run directory the second's Kafka
storage format failed with a Java stack trace. Starts and stops of a run directory's
services now take turns (``stack_lock``), the later one saying whom it waits for."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.cli import EXIT_SERVICE, main
from citybrain.stack.process import stack_lock

HOLD = """
import sys, time
from pathlib import Path
from citybrain.stack.process import stack_lock
with stack_lock(Path(sys.argv[1]), "citybrain stack up"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def held(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the run directory's stack lock for 2 s."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "run"), "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_second_holder_waits_and_says_for_whom(
    tmp_path: Path, held: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.monotonic()
    with stack_lock(tmp_path / "run", "citybrain demo"):
        waited = time.monotonic() - start
        # While held, the lock file names this holder for the next one.
        assert (tmp_path / "run" / "stack.lock").read_text().startswith("`citybrain demo` (pid ")
    assert waited > 1.0
    assert capsys.readouterr().err == (
        f"citybrain: waiting for `citybrain stack up` (pid {held.pid}) to finish with the "
        f"stack of {tmp_path / 'run'} (Ctrl-C stops waiting)\n"
    )


def test_stack_up_starts_nothing_while_another_start_holds_the_run_directory(
    shell: Path,
    held: subprocess.Popen[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No mvn on the PATH: once its turn comes, `stack up` stops at the download."""
    start = time.monotonic()
    assert main(["stack", "up"]) == EXIT_SERVICE
    assert time.monotonic() - start > 1.0  # it waited for the holder's turn to end
    out, err = capsys.readouterr()
    assert err.startswith(f"citybrain: waiting for `citybrain stack up` (pid {held.pid}) "), err
    assert "mvn not found" in err
    assert out.startswith("first run: downloading Kafka"), out


@pytest.mark.parametrize("where", ["missing", "under-a-file"])
def test_stack_down_takes_no_lock_it_cannot_and_creates_no_run_directory(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stopping must work where the lock file cannot be made (a run directory gone
    read-only), and a mistyped CITYBRAIN_RUN_DIR is not created by `stack down`."""
    if where == "under-a-file":
        (tmp_path / "a-file").write_text("")
        run_dir = tmp_path / "a-file" / "run"
    else:
        run_dir = tmp_path / "missing" / "run"
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(run_dir))
    assert main(["stack", "down"]) == 0
    assert capsys.readouterr().out.count("was not running") == 4
    assert not (tmp_path / "missing").exists()
