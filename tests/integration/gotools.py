"""Building the Go reference programs under tools/ (Alertmanager's own code, run as the
differential tests' oracle): the Go toolchain, and a build with modules from the cache
``.ci/run`` fills outside the clone, never fetched during a test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

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


def ask(binary: Path, requests: list[Any], timeout: float) -> list[Any]:
    """One run of a reference program: ``requests`` as JSON lines on its stdin, its
    answers, one JSON line each, in order (the program's stderr is the assertion's
    message if it fails or answers another number of lines). Split at line feeds only:
    Go's JSON leaves U+0085 and U+2028 unescaped in an answer, and ``splitlines()``
    split there (t118: an answer holding U+0085 failed to read)."""
    done = subprocess.run(
        [str(binary)],
        input="".join(json.dumps(r) + "\n" for r in requests),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.split("\n") if line]
    assert len(lines) == len(requests), done.stderr
    return [json.loads(line) for line in lines]
