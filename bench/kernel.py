"""The tail kernel against another revision's, in one process: same scores, and speed.

Loads ``detectors/tail.py`` as it is at ``--ref`` (default ``main``; ``git show``, into a
temporary directory) beside this checkout's and

1. **checks** that every per-reading score of every NAB file (../shared/data/nab, 34
   files) and of an interleaved catch-up workload (20,000 sensors round-robin, with
   silences long enough to age and to forget a sensor's history) differs by less than
   ``--tolerance`` (1e-9) between the two; exits 1 naming the first file that does not;
2. **times** both kernels (``TailBank.score_learn`` alone, no Python per reading) in
   alternated rounds, best of ``--rounds``: 20,000 sensors round-robin in batches of
   5,000 through warm-up (readings 1-32 of each sensor), in steady state (readings
   33-50, then 51-70) and one sensor's long series (cache-hot).

    python -m bench.kernel [--ref main] [--check-only] [--out bench/results-kernel.json]

Exit status: 0 when the scores agree, 1 when they do not, 2 on a bad argument (argparse).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from bench import amount, count, machine, out_file, run_main
from bench.detector_speed import NAB, _series
from detectors import tail as this_tail

ROOT = Path(__file__).resolve().parent.parent
SENSORS = 20_000
BATCH = 5_000


def load_ref(ref: str, into: Path) -> ModuleType:
    """``detectors/tail.py`` at git revision ``ref`` as module ``tail_ref``."""
    source = subprocess.run(
        ["git", "show", f"{ref}:detectors/tail.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = into / "tail_ref.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("tail_ref", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tail_ref"] = module
    spec.loader.exec_module(module)
    return module


def nab_series() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, times in s, values) of every NAB file."""
    import pandas as pd

    return [
        (str(f.relative_to(NAB)), *_series(frame["timestamp"], frame["value"]))
        for f in sorted(NAB.rglob("*.csv"))
        for frame in [pd.read_csv(f)]
    ]


def interleaved(readings: int, sensors: int, seed: int = 1) -> tuple[np.ndarray, ...]:
    """(slots, values, times): round-robin over ``sensors``, values 10..14 with 0.1 %
    spikes (x20), five minutes a step; every 97th sensor falls silent for 40 steps
    (a restart of its window and an aged history) and every 389th for a year (its
    history forgotten) halfway through."""
    rng = np.random.default_rng(seed)
    slots = np.arange(readings) % sensors
    steps = np.arange(readings) // sensors
    values = 10 + rng.random(readings) * 4
    values[(steps > 30) & (rng.random(readings) < 0.001)] *= 20
    times = 1.7e9 + 300.0 * steps
    half = steps >= steps.max() // 2
    times[half & (slots % 97 == 0)] += 300.0 * 40
    times[half & (slots % 389 == 0)] += 365 * 86_400.0
    return slots, values, times


def scores_of(module: ModuleType, series: list[tuple[str, np.ndarray, np.ndarray]]) -> list:
    out = []
    for _, t, v in series:
        det = module.TailDetector()
        out.append(det.score_many(v, t))
    return out


def bank_scores(module: ModuleType, slots: np.ndarray, values: np.ndarray, times: np.ndarray):
    bank = module.TailBank(capacity=SENSORS)
    for _ in range(SENSORS):
        bank.allocate()
    return np.concatenate(
        [
            bank.score_learn(slots[s : s + BATCH], values[s : s + BATCH], times[s : s + BATCH])
            for s in range(0, slots.size, BATCH)
        ]
    )


def check(ref: ModuleType, tolerance: float) -> dict[str, float | int | str]:
    """The largest score difference over NAB and the interleaved workload; raises
    SystemExit(1) naming the first series over ``tolerance``."""
    series = nab_series()
    worst = 0.0
    readings = 0
    for (name, _, _), a, b in zip(
        series, scores_of(this_tail, series), scores_of(ref, series), strict=True
    ):
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        readings += a.size
        if not diff < tolerance:
            sys.exit(f"scores differ on {name}: by {diff:.3g} (tolerance {tolerance:g})")
        worst = max(worst, diff)
    slots, values, times = interleaved(80 * SENSORS, SENSORS)
    a, b = bank_scores(this_tail, slots, values, times), bank_scores(ref, slots, values, times)
    bank_diff = float(np.max(np.abs(a - b)))
    if not bank_diff < tolerance:
        sys.exit(f"scores differ on the interleaved workload: by {bank_diff:.3g}")
    return {
        "nab_files": len(series),
        "nab_readings": readings,
        "nab_max_abs_score_difference": worst,
        "interleaved_readings": int(slots.size),
        "interleaved_max_abs_score_difference": bank_diff,
        "interleaved_nonzero_scores": int(np.count_nonzero(a)),
    }


def phases(module: ModuleType) -> dict[str, Callable[[], float]]:
    """Per phase, a function timing it once (seconds per reading) on a fresh bank."""
    slots, values, times = interleaved(70 * SENSORS, SENSORS, seed=2)
    long_v = 10 + np.random.default_rng(3).random(200_000) * 4
    long_t = 1.7e9 + 300.0 * np.arange(long_v.size)

    def interleaved_phase(lo: int, hi: int) -> Callable[[], float]:
        def run() -> float:
            bank = module.TailBank(capacity=SENSORS)
            for _ in range(SENSORS):
                bank.allocate()
            for s in range(0, lo * SENSORS, BATCH):  # (the phases before, untimed)
                bank.score_learn(slots[s : s + BATCH], values[s : s + BATCH], times[s : s + BATCH])
            start = time.perf_counter()
            for s in range(lo * SENSORS, hi * SENSORS, BATCH):
                bank.score_learn(slots[s : s + BATCH], values[s : s + BATCH], times[s : s + BATCH])
            return (time.perf_counter() - start) / ((hi - lo) * SENSORS)

        return run

    def single() -> float:
        det = module.TailDetector()
        start = time.perf_counter()
        det.score_many(long_v, long_t)
        return (time.perf_counter() - start) / long_v.size

    return {
        "warmup_readings_1_32": interleaved_phase(0, 32),
        "steady_readings_33_50": interleaved_phase(32, 50),
        "steady_readings_51_70": interleaved_phase(50, 70),
        "one_sensor_200000": single,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", default="main", help="git revision to compare with")
    parser.add_argument("--tolerance", type=amount(above=False), default=1e-9)
    parser.add_argument("--rounds", type=count(), default=3)
    parser.add_argument("--check-only", action="store_true")
    parser.add_argument("--out", type=out_file, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ref = load_ref(args.ref, Path(tmp))
        results: dict[str, object] = {"ref": args.ref, "check": check(ref, args.tolerance)}
        if not args.check_only:
            ours, theirs = phases(this_tail), phases(ref)
            timing: dict[str, dict[str, float]] = {}
            for name in ours:
                best = {"this": float("inf"), "ref": float("inf")}
                for _ in range(args.rounds):  # alternated, so both see the same load
                    best["this"] = min(best["this"], ours[name]())
                    best["ref"] = min(best["ref"], theirs[name]())
                timing[name] = {
                    "this_ns_per_reading": round(best["this"] * 1e9, 1),
                    "ref_ns_per_reading": round(best["ref"] * 1e9, 1),
                    "speed_up": round(best["ref"] / best["this"], 3),
                }
            results["timing"] = timing
    results.update(machine())
    print(json.dumps(results, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    run_main(main)
