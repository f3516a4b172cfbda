"""`make clean` deletes the virtualenv: refused while a process runs from it (t168)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import REPO_ROOT

CHECK = REPO_ROOT / "tools" / "venv-in-use.sh"


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A stand-in virtualenv: bin/python is this interpreter, by a symlink as venv makes."""
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").symlink_to(sys.executable)
    return tmp_path / "venv"


@pytest.fixture(autouse=True)
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The run directory whose stack the check looks for: this test's own, not the
    machine's default (~/.cache/citybrain/run), where a stack may run."""
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path / "run"))
    return tmp_path / "run"


def _running(argv: list[str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([*argv, "-c", "import time; time.sleep(60)"], cwd=cwd)
    try:
        time.sleep(0.2)  # exec'd: /proc/PID/cmdline is the new program's
        yield process
    finally:
        process.kill()
        process.wait()


def test_make_clean_refuses_while_a_process_runs_from_the_virtualenv(venv: Path) -> None:
    """t168 (fails on the old code): `make clean` while the demo's worker ran (started with
    .venv/bin/python) deleted .venv under it, and `citybrain stack down` with it."""
    for process in _running([str(venv / "bin" / "python")], venv.parent):
        done = subprocess.run(
            ["make", "-s", "clean", f"VENV={venv}"], cwd=REPO_ROOT, capture_output=True, text=True
        )
        assert done.returncode != 0
        lines = done.stderr.splitlines()
        assert lines[0] == (
            f"make clean: refused: these processes run from {venv}, which it would delete "
            "under them:"
        )
        assert lines[1].startswith(f"  pid {process.pid}: {venv}/bin/python -c import time")
        assert lines[2].startswith(
            f"stop them first, then run make clean again: {venv}/bin/citybrain stack down "
            "stops the demo's worker, Kafka, Prometheus and Mosquitto"
        )
        assert (venv / "bin" / "python").is_symlink()


def test_a_process_started_by_a_relative_path_counts_too(venv: Path) -> None:
    """`.venv/bin/python -m citybrain …` typed in the checkout: argv[0] is relative."""
    for process in _running(["venv/bin/python"], venv.parent):
        done = subprocess.run(["sh", str(CHECK), str(venv)], capture_output=True, text=True)
        assert done.returncode == 1
        assert f"  pid {process.pid}: venv/bin/python -c" in done.stderr


def test_nothing_running_or_no_virtualenv_lets_make_clean_go_on(venv: Path) -> None:
    for path in (venv, venv.parent / "missing"):
        done = subprocess.run(["sh", str(CHECK), str(path)], capture_output=True, text=True)
        assert (done.returncode, done.stderr) == (0, "")


def _service(run_dir: Path, name: str, pid: int) -> None:
    (run_dir / name).mkdir(parents=True, exist_ok=True)
    (run_dir / name / f"{name}.pid").write_text(f"{pid}\n")


def test_make_clean_refuses_while_the_local_stack_runs(venv: Path, run_dir: Path) -> None:
    """t174 (fails on the old code): `make clean` with Kafka and Prometheus up deleted
    .venv, and with it `citybrain stack down`; `make stack-down` then reinstalled it."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "prometheus"])
    try:
        time.sleep(0.2)
        _service(run_dir, "prometheus", process.pid)
        done = subprocess.run(["sh", str(CHECK), str(venv)], capture_output=True, text=True)
        assert done.returncode == 1
        lines = done.stderr.splitlines()
        assert lines[0] == (
            f"make clean: refused: the local stack runs, and {venv}, which it would delete, "
            "holds the command that stops it:"
        )
        assert lines[1] == (
            f"  pid {process.pid}: the local stack's prometheus (run directory {run_dir})"
        )
        assert lines[2].startswith(
            f"stop them first, then run make clean again: {venv}/bin/citybrain stack down"
        )
    finally:
        process.kill()
        process.wait()


def test_a_stale_pid_file_of_the_stack_does_not_refuse(venv: Path, run_dir: Path) -> None:
    """A pid file left by a crash, its pid reused by another program, or gone."""
    for process in _running([sys.executable], venv.parent):
        _service(run_dir, "kafka", process.pid)  # not a kafka
        _service(run_dir, "mosquitto", 2**22 + 1)  # no such process
        done = subprocess.run(["sh", str(CHECK), str(venv)], capture_output=True, text=True)
        assert (done.returncode, done.stderr) == (0, "")
