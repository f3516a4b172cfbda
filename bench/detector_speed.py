"""Detector speed against a baseline measured in the same run, reported as ratios.

Baseline: a windowed Gaussian z-score (rolling mean and standard deviation, as in NAB's
``windowedGaussian`` detector) computed with pandas over the same series. Series: the NAB
corpus from ../shared/data/nab when present, else the committed real slices.

    python -m bench.detector_speed --out bench/results-detectors.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from detectors import RobustZScore

ROOT = Path(__file__).resolve().parent.parent
NAB = ROOT.parent / "shared" / "data" / "nab" / "data"


def load_series() -> tuple[str, list[np.ndarray]]:
    if NAB.is_dir():
        files = sorted(NAB.rglob("*.csv"))
        return "NAB corpus", [pd.read_csv(f)["value"].to_numpy(np.float64) for f in files]
    frames = [pd.read_csv(f) for f in sorted((ROOT / "datasets").glob("*.csv.gz"))]
    readings = pd.concat([f for f in frames if "value" in f])
    groups = readings.groupby("sensor_id")["value"]
    return "committed slices", [g.to_numpy(np.float64) for _, g in groups]


def windowed_gaussian(x: np.ndarray, window: int = 288) -> np.ndarray:
    s = pd.Series(x)
    mean = s.rolling(window, min_periods=24).mean().shift(1)
    std = s.rolling(window, min_periods=24).std().shift(1)
    return ((s - mean).abs() / std).fillna(0).to_numpy()


def rate(fn, series: list[np.ndarray], repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    n = sum(len(s) for s in series)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for s in series:
            fn(s)
        best = min(best, time.perf_counter() - start)
    return n / best


def one_at_a_time(x: np.ndarray) -> None:
    det = RobustZScore()
    for v in x.tolist():
        det.score_one(v)
        det.learn_one(v)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-detectors.json")
    args = parser.parse_args()
    corpus, series = load_series()
    n = sum(len(s) for s in series)
    baseline = rate(windowed_gaussian, series)
    batched = rate(lambda s: RobustZScore().score_many(s), series)
    single = rate(one_at_a_time, series[:5], repeat=1)
    tracemalloc.start()
    det = RobustZScore()
    det.learn_many(np.random.default_rng(0).normal(size=10_000))
    per_sensor = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    results = {
        "corpus": corpus,
        "series": len(series),
        "readings": n,
        "baseline_windowed_gaussian_readings_per_s": round(baseline),
        "robust_zscore_score_many_readings_per_s": round(batched),
        "robust_zscore_score_one_readings_per_s": round(single),
        "ratio_score_many_vs_baseline": round(batched / baseline, 3),
        "ratio_score_one_vs_baseline": round(single / baseline, 3),
        "state_json_bytes_per_sensor": len(json.dumps(det.get_state())),
        "traced_bytes_per_sensor_after_10k_readings": per_sensor,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
