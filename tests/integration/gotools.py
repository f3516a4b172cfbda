"""Building the Go reference programs under tools/ (Alertmanager's own code, run as the
differential tests' oracle): the Go toolchain, and a build with modules from the cache
``.ci/run`` fills outside the clone, never fetched during a test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def go() -> str:
    """The ``go`` binary: on PATH, else Go's own install under /usr/local/go."""
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    assert found is not None, "the Go toolchain is missing (.ci/run installs golang-go when absent)"
    return found


def build(tool: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The program in ``tool`` (a directory with its go.mod) built into a fresh temporary
    directory; the build's stderr is the assertion's message if it fails."""
    cache = Path.home() / ".cache" / "citybrain-go"
    binary = tmp_path_factory.mktemp(tool.name) / tool.name
    env = {
        **os.environ,
        "GOPATH": str(cache),
        "GOMODCACHE": str(cache / "mod"),
        "GOCACHE": str(cache / "build"),
        "GOFLAGS": "-mod=readonly -buildvcs=false",
        "GOTOOLCHAIN": "local",
    }
    built = subprocess.run(
        [go(), "build", "-o", str(binary), "."],
        cwd=tool,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return binary
