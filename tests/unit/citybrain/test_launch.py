"""Ctrl-C while the command line is still importing (about a second, several under
load) ends ``citybrain`` in the boundary's one line and status 130; it was a
``KeyboardInterrupt`` traceback and status -2 (SIGINT at 0.2, 0.5 and 1.0 s after
``citybrain detect --help`` started)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import NoReturn

import pytest

from citybrain.launch import EXIT_INTERRUPTED, EXIT_SERVICE, main, missing_dependency
from streams.settings import REPO_ROOT


class _Importing:
    """``citybrain.cli`` as it is when Ctrl-C comes in the middle of importing it."""

    def __getattr__(self, name: str) -> NoReturn:
        raise KeyboardInterrupt


def test_ctrl_c_while_importing_is_one_line_and_status_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "citybrain.cli", _Importing())
    assert main() == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "citybrain: interrupted\n"


def test_the_console_script_is_the_guarded_one() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["citybrain"] == "citybrain.launch:main"


def test_the_guard_hands_over_to_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from citybrain import cli

    monkeypatch.setattr(sys, "argv", ["citybrain", "--version"])
    assert main() == 0
    assert capsys.readouterr().out.strip()
    assert cli.EXIT_INTERRUPTED == EXIT_INTERRUPTED


def test_python_dash_m_citybrain_is_the_same_command_line() -> None:
    """``python -m citybrain`` answered "No module named citybrain.__main__" (t147)."""
    done = subprocess.run(
        [sys.executable, "-m", "citybrain", "--version"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("citybrain ")


def test_a_sigterm_while_a_spawned_worker_imports_is_said(tmp_path: Path) -> None:
    """t173 (fails on the old code): the demo and `stack restart-worker` started the
    worker as ``python -m citybrain.cli worker``, which imports the whole command line
    (about a second) before any SIGTERM handler is in: a SIGTERM then (`stack down` right
    after a start) killed it unsaid, status 143. Through the guard it says so, 130. The
    signal is sent as the first of citybrain's own modules is imported (``-X
    importtime`` prints each as it finishes), well inside that second."""
    from citybrain.stack.process import worker_argv

    argv = worker_argv()
    env = {**os.environ, "CITYBRAIN_RUN_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    worker = subprocess.Popen(
        [argv[0], "-X", "importtime", *argv[1:]],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    lines = []
    for line in worker.stderr:
        lines.append(line)
        module = line.rsplit("|", 1)[-1].strip()
        if module.startswith("citybrain.") and module != "citybrain.launch":
            worker.send_signal(signal.SIGTERM)
            break
    rest = worker.stderr.read()
    assert worker.wait(timeout=60) == EXIT_INTERRUPTED, "".join(lines[-5:]) + rest
    assert "citybrain: interrupted" in rest.splitlines()


class _PulledAhead:
    """``citybrain.cli`` as it imports after a pull that added a dependency the virtualenv
    lacks (the checkout's code is the editable install's; its packages are the last
    ``make install``'s)."""

    def __getattr__(self, name: str) -> NoReturn:
        raise ModuleNotFoundError("No module named 'newdep'", name="newdep")


def test_a_dependency_missing_after_a_pull_is_one_line_naming_make_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t174 (fails on the old code: a ModuleNotFoundError traceback, status 1)."""
    monkeypatch.setitem(sys.modules, "citybrain.cli", _PulledAhead())
    assert main() == EXIT_SERVICE == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("citybrain: the Python module 'newdep' is not installed in ")
    assert f"`make install` in {REPO_ROOT}" in err


def test_a_dependency_missing_inside_a_command_is_the_same_line_not_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """t174 (fails on the old code: "unexpected ModuleNotFoundError … This is a bug", 70).
    A command imports some of its libraries when it runs (httpx, faust, sklearn)."""
    from citybrain.cli import main as cli_main

    def pulled(args: object) -> int:
        raise ModuleNotFoundError("No module named 'newdep.sub'", name="newdep.sub")

    monkeypatch.setattr("citybrain.cli.parser.cmd_hash_token", pulled)
    monkeypatch.setattr(sys, "stdin", io.StringIO("tok\n"))
    assert cli_main(["hash-token"]) == EXIT_SERVICE
    err = capsys.readouterr().err
    assert "the Python module 'newdep' is not installed" in err and "bug" not in err


def test_one_of_the_checkouts_own_modules_missing_is_still_a_bug() -> None:
    """Not the virtualenv's doing: `make install` would not help."""
    assert missing_dependency(ModuleNotFoundError("x", name="streams.gone")) is None
    assert missing_dependency(ImportError("cannot import name 'x'")) is None


def test_the_demos_worker_starts_through_the_guard() -> None:
    """t174 (fails on the old code, `-m citybrain.cli`): the demo and restart-worker start
    the worker with `-m citybrain`, so a module missing after a pull is the worker log's
    last line naming `make install` (which the demo shows as why its worker exited), not a
    traceback from importing the `citybrain.cli` package, which `-m citybrain.cli` does
    before any guard."""
    from citybrain.stack.process import worker_argv

    assert [sys.executable, "-m", "citybrain", "worker"] == worker_argv()
    pulled = (
        "import runpy, sys\n"
        "sys.modules['orjson'] = None\n"  # importing it raises ModuleNotFoundError
        "sys.argv = ['citybrain', 'worker']\n"
        "runpy.run_module('citybrain', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", pulled], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == EXIT_SERVICE, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("citybrain: the Python module 'orjson' is not installed in ")
    assert "`make install` in" in last and "Traceback" not in done.stderr
