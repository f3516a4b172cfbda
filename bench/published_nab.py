"""Published NAB detectors scored the way issue 13 scores ours (leave-one-category-out).

NAB's repository (https://github.com/numenta/NAB, MIT licence) keeps every published
detector's raw anomaly scores, one file per data file: ``results/<detector>/<category>/
<detector>_<file>.csv`` with a column ``anomaly_score`` (one row per data row, file
order). This bench reads those scores and scores them with ``citybrain/nab.py``:

1. on every file the checkout holds, optimised threshold: the reproduction check — it must
   agree with NAB's own ``results/final_results.json`` (it does to 0.1 for ten of the
   eleven scoreboard detectors, htmjava 66.1 against 65.5; docs/benchmarks.md), which says
   our scorer is NAB's;
2. on the files under ``--data`` (the 34 files this project has), leave-one-category-out
   first, then optimised, held-out halves and each category at its own best threshold:
   the same protocol as ``bench.nab_loco``, so the leaders and ``tail`` are compared on
   the same files by the same rule.

Only published detectors' scores are read from the checkout: nothing of ours is scored on
its files, so the files kept back from this project stay unseen by our detector.

    git clone https://github.com/numenta/NAB /tmp/NAB
    python -m bench.published_nab --nab /tmp/NAB --data ../shared/data/nab \
        [--detectors ARTime,numenta]

Benchmarks only (reads ``../shared/data``); the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from bench import in_dir, run_main
from citybrain.nab import Case, category, held_out, leave_one_category_out, normalised

# NAB's leaders and the detectors its scoreboard lists (results/README.md).
DEFAULT_DETECTORS = (
    "ARTime",
    "numenta",
    "contextOSE",
    "htmjava",
    "numentaTM",
    "knncad",
    "earthgeckoSkyline",
    "relativeEntropy",
    "randomCutForest",
    "twitterADVec",
    "windowedGaussian",
)


class ResultsError(ValueError):
    """A results file is missing or does not match its data file's rows."""


def read_scores(path: Path) -> tuple[list[str], np.ndarray]:
    """(timestamps, anomaly scores) of one NAB results file. Raises ResultsError naming
    the file when it is missing or has no ``anomaly_score`` column, or a value is not a
    number."""
    if not path.is_file():
        raise ResultsError(f"{path}: no such results file")
    stamps: list[str] = []
    scores: list[float] = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "anomaly_score" not in reader.fieldnames:
            raise ResultsError(f"{path}: no anomaly_score column (has {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            try:
                scores.append(float(row["anomaly_score"]))
            except (TypeError, ValueError):
                raise ResultsError(
                    f"{path}:{line}: anomaly_score {row['anomaly_score']!r} is not a number"
                ) from None
            stamps.append(row["timestamp"])
    return stamps, np.asarray(scores, float)


def published_cases(
    results: Path, detector: str, names: list[str], windows: dict[str, list[list[str]]]
) -> list[Case]:
    """One Case per ``<category>/<file>.csv`` in ``names`` from ``detector``'s results
    under ``results``, its windows as row ranges (NAB's labels; timestamps matched to the
    second, as NAB writes them with fractional seconds)."""
    cases = []
    for name in names:
        cat, file = name.split("/")
        stamps, scores = read_scores(results / detector / cat / f"{detector}_{file}")
        rows = {ts: i for i, ts in reversed(list(enumerate(stamps)))}
        spans = []
        for start, end in windows.get(name, []):
            s, e = start.split(".")[0], end.split(".")[0]
            if s not in rows or e not in rows:
                raise ResultsError(f"{detector} {name}: window {start}..{end} not in its rows")
            spans.append((rows[s], rows[e]))
        cases.append(Case(name, scores, spans))
    return cases


def summary(cases: list[Case]) -> dict[str, object]:
    """LOCO first, then optimised (with its threshold), held-out halves and each
    category with windows at its own best threshold; standard profile, rounded to 0.1."""
    loco = leave_one_category_out({"": cases}, "standard")
    optimised = normalised(cases, "standard")
    halves = held_out(cases, "standard")
    per: dict[str, float] = {}
    for cat in sorted({category(c) for c in cases}):
        result = normalised([c for c in cases if category(c) == cat], "standard")
        if result is not None:
            per[cat] = round(result["score"], 1)
    return {
        "leave_one_category_out": None if loco is None else round(float(loco["score"]), 1),  # type: ignore[arg-type]
        "optimised": None if optimised is None else round(optimised["score"], 1),
        "optimised_threshold": None if optimised is None else optimised["threshold"],
        "held_out_halves": None if halves is None else round(halves, 1),
        "categories_at_own_best": per,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=in_dir, required=True, help="a checkout of numenta/NAB")
    parser.add_argument(
        "--data", type=in_dir, required=True, help="NAB-layout root whose data/ names the files"
    )
    parser.add_argument("--detectors", default=",".join(DEFAULT_DETECTORS))
    args = parser.parse_args()
    labels = args.nab / "labels" / "combined_windows.json"
    final = args.nab / "results" / "final_results.json"
    for needed in (labels, final, args.data / "data"):
        if not needed.exists():
            parser.error(f"{needed}: not found (--nab is a NAB checkout, --data a NAB-layout root)")
    windows = json.loads(labels.read_text())
    published = json.loads(final.read_text())
    ours = sorted(
        str(p.relative_to(args.data / "data")) for p in (args.data / "data").rglob("*.csv")
    )
    out: dict[str, object] = {"files": len(ours), "all_files": len(windows), "detectors": {}}
    for detector in [d for d in args.detectors.split(",") if d]:
        try:
            everything = published_cases(args.nab / "results", detector, sorted(windows), windows)
            subset = published_cases(args.nab / "results", detector, ours, windows)
        except ResultsError as exc:
            print(f"published_nab: error: {exc}", file=sys.stderr)
            sys.exit(2)
        reproduced = normalised(everything, "standard")
        out["detectors"][detector] = {  # type: ignore[index]
            "published_standard": round(
                published.get(detector, {}).get("standard", float("nan")), 1
            ),
            "reproduced_standard": None if reproduced is None else round(reproduced["score"], 1),
            "on_these_files": summary(subset),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    run_main(main)
