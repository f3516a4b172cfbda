"""A fast leave-one-category-out loop for detector experiments on NAB (issue 13).

Scores a registered detector on every file of a NAB-layout corpus in parallel processes,
caches each file's scores (``--cache``), and prints the leave-one-category-out score
first, then the optimised one and each category at its own best threshold. A second
run with the same ``--name`` only re-reads the cache, so gate or threshold experiments
on the cached scores cost seconds, not minutes.

    python -m bench.nab_loco --data ../shared/data/nab [--detector tail] [--workers 2]

Benchmarks only (reads ``../shared/data``); the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from citybrain.detect import read_series
from citybrain.nab import Case, category, leave_one_category_out, normalised, score_at
from detectors import DEFAULT_THRESHOLD, DETECTORS


def _score(job: tuple[str, Path]) -> np.ndarray:
    detector, path = job
    _, times, values = read_series(path)
    return DETECTORS[detector]().score_many(np.asarray(values, float), np.asarray(times, float))


def load_cases(data: Path, labels: Path, detector: str, cache: Path, workers: int) -> list[Case]:
    """Every file's scores (computed once, then read from ``cache``) with its windows."""
    windows = json.loads(labels.read_text())
    paths = sorted(data.rglob("*.csv"))
    cache.mkdir(parents=True, exist_ok=True)

    def stored(path: Path) -> Path:
        return cache / (str(path.relative_to(data)).replace("/", "__") + ".npy")

    todo = [p for p in paths if not stored(p).exists()]
    if todo:
        with ProcessPoolExecutor(workers) as pool:
            for path, scores in zip(
                todo, pool.map(_score, [(detector, p) for p in todo]), strict=True
            ):
                np.save(stored(path), scores)
    cases = []
    for path in paths:
        name = str(path.relative_to(data))
        stamps, _, _ = read_series(path)
        rows = {ts: i for i, ts in reversed(list(enumerate(stamps)))}
        spans = [(rows[s.split(".")[0]], rows[e.split(".")[0]]) for s, e in windows.get(name, [])]
        cases.append(Case(name, np.load(stored(path)), spans))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="NAB's root (data/, labels/)")
    parser.add_argument("--detector", default="tail", choices=sorted(DETECTORS))
    parser.add_argument("--name", help="cache name (default: the detector's)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/citybrain-nab-cache"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cases = load_cases(
        args.data / "data",
        args.data / "labels" / "combined_windows.json",
        args.detector,
        args.cache / (args.name or args.detector),
        args.workers,
    )
    loco = leave_one_category_out({"": cases}, "standard")
    optimised = normalised(cases, "standard")
    assert loco is not None and optimised is not None, "the corpus has no windows"
    per = {}
    for cat in sorted({category(c) for c in cases}):
        result = normalised([c for c in cases if category(c) == cat], "standard")
        per[cat] = None if result is None else round(result["score"], 1)
    report = {
        "detector": args.detector,
        "leave_one_category_out": round(float(loco["score"]), 1),  # type: ignore[arg-type]
        "optimised": round(optimised["score"], 1),
        "optimised_threshold": round(optimised["threshold"], 3),
        "categories_at_own_best": per,
    }
    if args.detector == "tail":
        report["at_default_threshold"] = round(
            score_at(cases, DEFAULT_THRESHOLD, "standard") or 0, 1
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
