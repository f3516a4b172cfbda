"""t147: `citybrain stack reload` with no part of the stack running said "nothing to
reload" for each part and exited 0, so a script's `citybrain stack reload && …` read it as
the new grid taken. Now it ends in one line saying nothing was reloaded, and status 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.settings import REPO_ROOT
from tests.services import free_port


def test_reload_with_nothing_running_says_so_and_exits_1(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CITYBRAIN_RUN_DIR": str(tmp_path / "run"),
        "CITYBRAIN_PROMETHEUS_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "citybrain", "stack", "reload"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "prometheus  not running: nothing to reload" in done.stdout
    assert "demo worker not running: nothing to reload" in done.stdout
    assert done.stderr.startswith("citybrain: nothing reloaded: the stack is not running (`")
    assert "Traceback" not in done.stderr
