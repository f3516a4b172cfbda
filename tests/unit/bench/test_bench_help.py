"""Every benchmark run as `python -m bench.NAME` (docs/benchmarks.md and the other docs
name them) answers `--help` with its usage and runs nothing (trial 25:
`python -m bench.department_accuracy --help` ran the whole benchmark)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
# Started by bench.catchup in Quix Streams' own virtualenv, with positional arguments.
NOT_A_COMMAND = {"quix_candidate"}
COMMANDS = sorted(
    f.stem
    for f in BENCH.glob("*.py")
    if 'if __name__ == "__main__":' in f.read_text() and f.stem not in NOT_A_COMMAND
)


@pytest.mark.parametrize("name", COMMANDS)
def test_help_describes_the_benchmark_and_runs_nothing(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--help"],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: "), done.stdout[:500]
    assert "held_out" not in done.stdout  # department_accuracy's results
