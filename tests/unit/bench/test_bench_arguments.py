"""t111: a benchmark given a value no run can use ended in a traceback (``--readings 0``:
ZeroDivisionError; ``--sensors -1``: StopIteration; ``--rounds 0``: IndexError;
``--data /missing``: FileNotFoundError), ran on (``kernel --rounds -1``), or found an
unwritable ``--out`` only after its whole run, its results lost. Each is now refused by
argparse before the run: exit 2, usage and one line naming the option and the value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# (benchmark, arguments, the option the error names): every count, duration, results
# file and input directory option of the benchmarks, given a value no run can use.
CASES = [
    ("catchup", ["--readings", "-5"], "--readings"),
    ("catchup", ["--sensors", "0"], "--sensors"),
    ("catchup", ["--workers", "0"], "--workers"),
    ("catchup", ["--out", "/nonexistent-t111/r.json"], "--out"),
    ("ceiling", ["--readings", "0"], "--readings"),
    ("ceiling", ["--sensors", "0"], "--sensors"),
    ("ceiling", ["--pack", "-1"], "--pack"),
    ("ceiling", ["--batch", "0"], "--batch"),
    ("ceiling", ["--rounds", "0"], "--rounds"),
    ("ceiling", ["--bad-every", "-1"], "--bad-every"),
    ("ceiling", ["--out", "{tmp}"], "--out"),
    ("fetch_path", ["--records", "0"], "--records"),
    ("fetch_path", ["--batches", "0"], "--batches"),
    ("fetch_path", ["--rounds", "0"], "--rounds"),
    ("kernel", ["--rounds", "-1"], "--rounds"),
    ("kernel", ["--tolerance", "-1"], "--tolerance"),
    ("kernel", ["--out", "{tmp}/missing/k.json"], "--out"),
    ("latency", ["--rates", "2000", "0"], "--rates"),
    ("latency", ["--seconds", "inf"], "--seconds"),
    ("latency", ["--out", "{tmp}"], "--out"),
    ("memory", ["--sensors", "-1"], "--sensors"),
    ("memory", ["--out", "{tmp}/missing/m.json"], "--out"),
    ("mqtt_ingest", ["--messages", "0"], "--messages"),
    ("mqtt_ingest", ["--rates", "-3"], "--rates"),
    ("mqtt_ingest", ["--seconds", "0"], "--seconds"),
    ("nab_loco", ["--data", "{tmp}/missing"], "--data"),
    ("nab_loco", ["--data", "{tmp}", "--workers", "0"], "--workers"),
    ("published_nab", ["--nab", "{tmp}/missing", "--data", "{tmp}"], "--nab"),
    ("sustained", ["--data", "{tmp}/missing"], "--data"),
    ("worker_start", ["--rounds", "0"], "--rounds"),
    ("worker_start", ["--out", "{tmp}/missing/w.json"], "--out"),
    ("recovery", ["--groups", "0"], "--groups"),
    ("recovery", ["--sensors", "-1"], "--sensors"),
    ("recovery", ["--sensor-records", "0"], "--sensor-records"),
    ("recovery", ["--rounds", "0"], "--rounds"),
    ("recovery", ["--tables", "runs"], "--tables"),
    ("recovery", ["--code", "{tmp}/missing"], "--code"),
    ("recovery", ["--out", "{tmp}/missing/r.json"], "--out"),
    ("detector_speed", ["--out", "{tmp}/missing/d.json"], "--out"),
    ("rehearsal", ["--shared", "{tmp}/missing"], "--shared"),
    ("rehearsal", ["--shared", "{tmp}", "--out", "{tmp}"], "--out"),
    ("service_profiles", ["--shared", "{tmp}/missing"], "--shared"),
]


@pytest.mark.parametrize(
    ("name", "args", "option"), CASES, ids=[f"{n} {' '.join(a)}" for n, a, _ in CASES]
)
def test_a_value_no_run_can_use_is_refused_before_the_run(
    name: str, args: list[str], option: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYBRAIN_")}
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *(a.format(tmp=tmp_path) for a in args)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{name}.py: error: argument {option}: "), done.stderr
    assert done.stdout == ""  # nothing ran


def test_a_nab_root_without_nabs_layout_is_refused_naming_what_it_lacks(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.nab_loco", "--data", str(tmp_path)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"nab_loco.py: error: {tmp_path / 'data'}: not found (--data is NAB's root: data/, labels/)"
    )
