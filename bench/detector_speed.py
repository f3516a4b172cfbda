"""Detector speed against a baseline measured in the same run, reported as ratios.

Baseline: ``WindowedGaussian`` (NAB's ``windowedGaussian``: rolling mean and standard
deviation) through its vectorised path over the same series. Every registered detector
is timed through ``score_many`` (a fresh detector per series, as ``citybrain detect``
runs it); the default one also one observation at a time. Series: the NAB corpus from
../shared/data/nab when present, else the committed real slices.

    python -m bench.detector_speed --out bench/results-detectors.json
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bench import machine, out_file, run_main
from detectors import DEFAULT_DETECTOR, DETECTORS, Detector

ROOT = Path(__file__).resolve().parent.parent
NAB = ROOT.parent / "shared" / "data" / "nab" / "data"
Series = tuple[np.ndarray, np.ndarray]  # times (s), values


def load_series() -> tuple[str, list[Series]]:
    if NAB.is_dir():
        frames = [pd.read_csv(f) for f in sorted(NAB.rglob("*.csv"))]
        return "NAB corpus", [_series(f["timestamp"], f["value"]) for f in frames]
    frames = [pd.read_csv(f) for f in sorted((ROOT / "datasets").glob("*.csv.gz"))]
    readings = pd.concat([f for f in frames if "value" in f])
    groups = readings.groupby("sensor_id")
    return "committed slices", [_series(g["ts"], g["value"]) for _, g in groups]


def _series(stamps: pd.Series, values: pd.Series) -> Series:
    times = pd.to_datetime(stamps).to_numpy().astype("datetime64[s]").astype(np.int64)
    return times.astype(np.float64), values.to_numpy(np.float64)


def rate(make: Callable[[], Detector], series: list[Series], repeat: int = 3) -> float:
    """Readings per second through ``score_many``, best of ``repeat`` runs."""
    n = sum(len(v) for _, v in series)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for t, v in series:
            make().score_many(v, t)
        best = min(best, time.perf_counter() - start)
    return n / best


def rate_one_at_a_time(make: Callable[[], Detector], series: list[Series]) -> float:
    n = sum(len(v) for _, v in series)
    start = time.perf_counter()
    for times, values in series:
        det = make()
        for t, v in zip(times.tolist(), values.tolist(), strict=True):
            det.score_one(v, t)
            det.learn_one(v, t)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=out_file, default=ROOT / "bench" / "results-detectors.json")
    parser.add_argument(
        "--detectors", nargs="+", choices=sorted(DETECTORS), help="time only these (default: all)"
    )
    args = parser.parse_args()
    corpus, series = load_series()
    n = sum(len(v) for _, v in series)
    baseline = rate(DETECTORS["windowed_gaussian"], series)
    batched = {
        name: rate(make, series, repeat=1 if name == "isolation_forest" else 3)
        for name, make in DETECTORS.items()
        if args.detectors is None or name in args.detectors
    }
    default = DETECTORS[DEFAULT_DETECTOR]
    single = rate_one_at_a_time(default, series[:3])
    tracemalloc.start()
    det = default()
    det.learn_many(np.random.default_rng(0).normal(size=10_000), 300.0 * np.arange(10_000))
    per_sensor = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    results = {
        "corpus": corpus,
        "series": len(series),
        "readings": n,
        "baseline_windowed_gaussian_readings_per_s": round(baseline),
        "score_many_readings_per_s": {k: round(v) for k, v in batched.items()},
        "ratio_score_many_vs_baseline": {k: round(v / baseline, 3) for k, v in batched.items()},
        "default_detector": DEFAULT_DETECTOR,
        "default_score_one_readings_per_s": round(single),
        "default_ratio_score_one_vs_baseline": round(single / baseline, 3),
        "default_state_json_bytes_per_sensor": len(json.dumps(det.get_state())),
        "default_traced_bytes_per_sensor_after_10k_readings": per_sensor,
        **machine(),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    run_main(main)
