"""A fast leave-one-category-out loop for detector experiments on NAB (issue 13).

Scores a registered detector on every file of a NAB-layout corpus in parallel processes,
caches each file's scores (``--cache``), and prints the leave-one-category-out score
first, then the optimised one and each category at its own best threshold. A second
run with the same ``--name`` only re-reads the cache, so gate or threshold experiments
on the cached scores cost seconds, not minutes.

    python -m bench.nab_loco --data ../shared/data/nab [--detector tail] [--workers 2]

With ``--nested NAME,NAME,...`` (caches of earlier runs, one per variant) it prints the
nested leave-one-category-out score for having picked among those variants: each
category scored with the variant and threshold best on the other four. With
``--false-alarms`` it classifies the run's false alarms at its optimised threshold; with
``--losses``, where the points are lost at that threshold (per window, and the false
alarms' cost per category, in NAB points). With ``--compare-scores DIR`` (another
detector's per-file scores in NAB's results layout, ``DIR/<category>/<name>_<file>.csv``
with a column ``anomaly_score``, ``<name>`` the directory's own name: NAB's
``results/ARTime``), it compares the two per window and per false alarm, each at its own
optimised threshold on these files: which windows the other finds earlier or at all,
which false alarms only one of them raises, and the points each difference is worth.

Benchmarks only (reads ``../shared/data``); the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import InvalidStateError, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench import count as whole_count
from bench import in_dir, run_main
from citybrain.detect import read_series
from citybrain.nab import (
    PROFILES,
    Case,
    category,
    detections,
    leave_one_category_out,
    normalised,
    score_at,
)
from detectors import DEFAULT_THRESHOLD, DETECTORS


def _quiet_cancelled_race(args: threading.ExceptHookArgs) -> None:
    """``threading.excepthook`` while a pool is being stopped: Python 3.11's pool manager
    thread, finding its workers ended, sets an exception on every pending future, and
    raises ``InvalidStateError`` on those the interrupted ``map`` had cancelled (a CI run
    printed its traceback after "interrupted"; 3.12 skips them, ``terminate_broken``).
    Anything else goes to the default hook."""
    if not isinstance(args.exc_value, InvalidStateError):
        threading.__excepthook__(args)


def _score(job: tuple[str, Path]) -> np.ndarray:
    detector, path = job
    _, times, values = read_series(path)
    return DETECTORS[detector]().score_many(np.asarray(values, float), np.asarray(times, float))


def _parent_handles_interrupts() -> None:
    """A scoring worker ignores SIGINT (Ctrl-C reaches the whole process group) and dies
    of SIGTERM at once: the parent stops the pool and ends the workers itself (a worker
    forked with the parent's SIGTERM-as-Ctrl-C handler ran on inside compiled code)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def save_scores(path: Path, scores: np.ndarray) -> None:
    """Write a file's scores to the cache ``path`` (``.npy``) whole or not at all: a
    file cut short by an interrupt would be taken as cached by the next run and fail
    in ``np.load``."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        np.save(out, scores)
    os.replace(partial, path)


def load_cases(data: Path, labels: Path, detector: str, cache: Path, workers: int) -> list[Case]:
    """Every file's scores (computed once, then read from ``cache``) with its windows."""
    windows = json.loads(labels.read_text())
    paths = sorted(data.rglob("*.csv"))
    cache.mkdir(parents=True, exist_ok=True)

    def stored(path: Path) -> Path:
        return cache / (str(path.relative_to(data)).replace("/", "__") + ".npy")

    todo = [p for p in paths if not stored(p).exists()]
    if todo:
        # Ctrl-C is the parent's to handle: the pool's ``with`` waited for every file
        # still queued (minutes, both cores busy) and each worker printed a traceback.
        pool = ProcessPoolExecutor(workers, initializer=_parent_handles_interrupts)
        try:
            for path, scores in zip(
                todo, pool.map(_score, [(detector, p) for p in todo]), strict=True
            ):
                save_scores(stored(path), scores)
        except BaseException:
            threading.excepthook = _quiet_cancelled_race
            pool.shutdown(wait=False, cancel_futures=True)
            for child in multiprocessing.active_children():
                child.terminate()  # the files being scored now: their work is lost anyway
            raise
        pool.shutdown()
    cases = []
    for path in paths:
        name = str(path.relative_to(data))
        stamps, _, _ = read_series(path)
        rows = {ts: i for i, ts in reversed(list(enumerate(stamps)))}
        spans = [(rows[s.split(".")[0]], rows[e.split(".")[0]]) for s, e in windows.get(name, [])]
        cases.append(Case(name, np.load(stored(path)), spans))
    return cases


def nested(candidates: dict[str, list[Case]]) -> dict[str, object]:
    """Nested leave-one-category-out over variants (``{name: cases}``, the same files in
    the same order): the honest score for having picked one of them. Returns the score
    and, per held-out category, the variant and threshold its fold chose."""
    result = leave_one_category_out(candidates, "standard")
    if result is None:
        raise ValueError("the corpus has no windows")
    return {"nested": round(float(result["score"]), 1), "chosen": result["chosen"]}  # type: ignore[arg-type]


FOLLOW_UP = "follow-up within an hour of a detection"
DAY_AFTER = "about a day after a detection"
LEVEL_SHIFT = "level shift"
TRANSIENT = "transient"


def false_alarm_kinds(
    case: Case, times: Sequence[float], values: Sequence[float], theta: float
) -> Counter[str]:
    """The false alarms of ``case`` at ``theta`` (detections outside every window, after
    probation), each classified once, in this order: within an hour (``times`` in
    seconds) of the file's previous detection; 24 h ± 2 h after an earlier one; a level
    shift (the median of the day after it, from the twelfth reading on, more than three
    median absolute deviations off the median of the day before, days counted as 288
    readings); otherwise a transient."""
    ts = np.asarray(times, float)
    xs = np.asarray(values, float)
    detected = [r for r in range(case.probation, len(case.scores)) if case.scores[r] >= theta]
    kinds: Counter[str] = Counter()
    for i, r in enumerate(detected):
        if case.window_of(r) is not None:
            continue
        before = detected[:i]
        if before and ts[r] - ts[before[-1]] <= 3600.0:
            kinds[FOLLOW_UP] += 1
        elif any(abs(ts[r] - ts[q] - 86_400.0) < 7200.0 for q in before):
            kinds[DAY_AFTER] += 1
        else:
            day = xs[max(0, r - 288) : r]
            after = xs[r + 12 : r + 300]
            median = float(np.median(day)) if day.size else float(xs[r])
            mad = float(np.median(np.abs(day - median))) if day.size else 0.0
            shifted = after.size and abs(float(np.median(after)) - median) > 3.0 * mad + 1e-9
            kinds[LEVEL_SHIFT if shifted else TRANSIENT] += 1
    return kinds


# A detection within this fraction of a window of its centre (where NAB's windows put
# the labelled anomaly) is "at the anomaly": earlier only by anticipating it.
CENTRE_TOLERANCE = 0.02


@dataclass(frozen=True)
class WindowLoss:
    """One window at one threshold: ``earned`` its raw score (``-A_FN`` when missed),
    ``first`` where its first detection lies (fraction of the window from its start;
    None when missed), ``at_start`` what a detection at its first row would earn,
    ``lost`` the difference in NAB points (the normalised 0–100 scale)."""

    name: str
    window: int
    earned: float
    first: float | None
    at_start: float
    lost: float


def losses(
    cases: Sequence[Case], theta: float, profile: str = "standard"
) -> tuple[list[WindowLoss], dict[str, float], Counter[str]]:
    """Where ``cases`` lose NAB points at ``theta``: every window's ``WindowLoss``, and
    the false alarms' cost (points) and count per category (NAB's scaled sigmoid: a
    false alarm soon after a window costs less than one far from any). Raises
    ValueError when the corpus has no windows."""
    a_tp, a_fp, a_fn = PROFILES[profile]
    n_windows = sum(len(case.windows) for case in cases)
    if n_windows == 0:
        raise ValueError("the corpus has no windows")
    per_raw = 100.0 / ((a_tp + a_fn) * n_windows)  # points per unit of raw score
    windows: list[WindowLoss] = []
    cost: dict[str, float] = {}
    count: Counter[str] = Counter()
    for case in cases:
        first, outside = detections(case, theta)
        if outside:
            cat = category(case)
            cost[cat] = cost.get(cat, 0.0) - sum(case.fp_cost(r, a_fp) for r in outside) * per_raw
            count[cat] += len(outside)
        for k, (start, end) in enumerate(case.windows):
            best = case.tp_credit(start, k, a_tp)
            earned = case.tp_credit(first[k], k, a_tp) if k in first else -a_fn
            where = (first[k] - start) / (end - start + 1) if k in first else None
            windows.append(WindowLoss(case.name, k, earned, where, best, (best - earned) * per_raw))
    return windows, cost, count


def loss_summary(windows: Sequence[WindowLoss]) -> dict[str, dict[str, float]]:
    """Windows' lost points grouped: missed, detected before the window's centre (the
    labelled anomaly), at it (within CENTRE_TOLERANCE), after it."""
    groups: dict[str, dict[str, float]] = {}
    for w in windows:
        if w.first is None:
            key = "missed"
        elif w.first < 0.5 - CENTRE_TOLERANCE:
            key = "before the centre"
        elif w.first <= 0.5 + CENTRE_TOLERANCE:
            key = "at the centre"
        else:
            key = "after the centre"
        group = groups.setdefault(key, {"windows": 0, "points": 0.0})
        group["windows"] += 1
        group["points"] = round(group["points"] + w.lost, 2)
    return groups


# Two detectors' false alarms within this many seconds of each other are "the same".
SAME_ALARM = 3600.0


@dataclass(frozen=True)
class WindowDiff:
    """One window as two detectors see it at their thresholds: each one's first
    detection (fraction of the window; None when missed) and ``gain`` the points the
    other earns there beyond ours (negative: ours earns more)."""

    name: str
    window: int
    ours: float | None
    theirs: float | None
    gain: float


def _alone(rows: list[int], others: list[int], t: np.ndarray) -> list[int]:
    """The ``rows`` with none of ``others`` within SAME_ALARM seconds (``t`` by row)."""
    near = t[others] if others else np.empty(0)
    return [r for r in rows if not np.any(np.abs(near - t[r]) <= SAME_ALARM)]


def compare(
    ours: Sequence[Case],
    theirs: Sequence[Case],
    theta_ours: float,
    theta_theirs: float,
    times: Sequence[Sequence[float]],
    profile: str = "standard",
) -> dict[str, object]:
    """Where two detectors' scores on the same files (same order, same windows) differ
    at their own thresholds, in NAB points: every window whose first detection differs
    (``WindowDiff``), and per file the false alarms only one of them raises (none of the
    other's within ``SAME_ALARM`` seconds; ``times`` the files' readings in seconds) with
    their cost; and per category the windows' and the false alarms' points for each.
    Raises ValueError when the files differ or the corpus has no windows."""
    if [c.name for c in ours] != [c.name for c in theirs] or any(
        a.windows != b.windows or len(a.scores) != len(b.scores)
        for a, b in zip(ours, theirs, strict=True)
    ):
        raise ValueError("the two corpora must hold the same files, rows and windows")
    mine, my_cost, _ = losses(ours, theta_ours, profile)
    other, other_cost, _ = losses(theirs, theta_theirs, profile)
    a_tp, a_fp, a_fn = PROFILES[profile]
    per_raw = 100.0 / ((a_tp + a_fn) * len(mine))
    windows = [
        WindowDiff(m.name, m.window, m.first, o.first, (o.earned - m.earned) * per_raw)
        for m, o in zip(mine, other, strict=True)
        if m.first != o.first
    ]
    keys = ("windows_ours", "windows_theirs", "fa_ours", "fa_theirs")
    categories = {category(c): dict.fromkeys(keys, 0.0) for c in ours}
    for m, o in zip(mine, other, strict=True):
        cat = m.name.split("/")[0]
        categories[cat]["windows_ours"] += m.earned * per_raw
        categories[cat]["windows_theirs"] += o.earned * per_raw
    for cat, cost in my_cost.items():
        categories[cat]["fa_ours"] = cost
    for cat, cost in other_cost.items():
        categories[cat]["fa_theirs"] = cost
    files = []
    for case_o, case_t, ts in zip(ours, theirs, times, strict=True):
        _, out_o = detections(case_o, theta_ours)
        _, out_t = detections(case_t, theta_theirs)
        t = np.asarray(ts, float)
        only_o, only_t = _alone(out_o, out_t, t), _alone(out_t, out_o, t)
        if only_o or only_t:
            files.append(
                {
                    "name": case_o.name,
                    "ours_only": only_o,
                    "theirs_only": only_t,
                    "ours_only_points": round(
                        -sum(case_o.fp_cost(r, a_fp) for r in only_o) * per_raw, 2
                    ),
                    "theirs_only_points": round(
                        -sum(case_t.fp_cost(r, a_fp) for r in only_t) * per_raw, 2
                    ),
                }
            )
    return {
        "categories": {
            cat: {k: round(v, 2) for k, v in row.items()} for cat, row in sorted(categories.items())
        },
        "windows": sorted(windows, key=lambda w: -abs(w.gain)),
        "false_alarms": files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=in_dir, required=True, help="NAB's root (data/, labels/)")
    parser.add_argument("--detector", default="tail", choices=sorted(DETECTORS))
    parser.add_argument("--name", help="cache name (default: the detector's)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/citybrain-nab-cache"))
    parser.add_argument("--workers", type=whole_count(), default=2)
    parser.add_argument(
        "--nested",
        metavar="NAME,NAME,...",
        help="print the nested LOCO over these cached variants (earlier runs' --name)",
    )
    parser.add_argument(
        "--false-alarms",
        action="store_true",
        help="also classify the false alarms at the optimised threshold, per category",
    )
    parser.add_argument(
        "--losses",
        action="store_true",
        help="also list where the points are lost at the optimised threshold",
    )
    parser.add_argument(
        "--compare-scores",
        metavar="DIR",
        type=Path,
        help="compare with another detector's per-file scores (NAB results layout: "
        "DIR/<category>/<DIR name>_<file>.csv, column anomaly_score), each at its own "
        "optimised threshold: per window and per false alarm",
    )
    args = parser.parse_args()
    # As published_nab does: a --data without NAB's layout was a FileNotFoundError (t111).
    for needed in (args.data / "data", args.data / "labels" / "combined_windows.json"):
        if not needed.exists():
            parser.error(f"{needed}: not found (--data is NAB's root: data/, labels/)")
    if args.compare_scores is not None and not args.compare_scores.is_dir():
        parser.error(f"--compare-scores {args.compare_scores}: no such directory")
    if args.nested:
        names = [n for n in args.nested.split(",") if n]
        missing = [n for n in names if not (args.cache / n).is_dir()]
        if missing:
            parser.error(f"--nested: no cache for {', '.join(missing)} under {args.cache}")
        variants = {
            n: load_cases(
                args.data / "data",
                args.data / "labels" / "combined_windows.json",
                args.detector,
                args.cache / n,
                args.workers,
            )
            for n in names
        }
        print(json.dumps(nested(variants), indent=2))
        return
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
    if args.false_alarms:
        kinds: dict[str, Counter[str]] = {}
        for case in cases:
            _, times, values = read_series(args.data / "data" / case.name)
            found = false_alarm_kinds(case, times, values, optimised["threshold"])
            kinds.setdefault(category(case), Counter()).update(found)
        report["false_alarms_at_optimised"] = {cat: dict(k) for cat, k in kinds.items() if k}
    if args.losses:
        windows, cost, count = losses(cases, optimised["threshold"])
        report["losses_at_optimised"] = {
            "windows": loss_summary(windows),
            "false_alarm_points": {cat: round(v, 2) for cat, v in sorted(cost.items())},
            "false_alarms": dict(sorted(count.items())),
            "per_window": [
                {**asdict(w), "earned": round(w.earned, 3), "lost": round(w.lost, 2)}
                | ({"first": round(w.first, 3)} if w.first is not None else {})
                for w in sorted(windows, key=lambda w: -w.lost)
            ],
        }
    if args.compare_scores:
        from bench.published_nab import ResultsError, published_cases

        windows_json = json.loads((args.data / "labels" / "combined_windows.json").read_text())
        try:
            theirs = published_cases(
                args.compare_scores.parent,
                args.compare_scores.name,
                [c.name for c in cases],
                windows_json,
            )
            theirs_best = normalised(theirs, "standard")
            assert theirs_best is not None  # (the same windows as ours)
            times = [read_series(args.data / "data" / c.name)[1] for c in cases]
            diff = compare(cases, theirs, optimised["threshold"], theirs_best["threshold"], times)
        except (ResultsError, ValueError) as exc:
            parser.error(f"--compare-scores {args.compare_scores}: {exc}")
        report["compared_with"] = {
            "detector": args.compare_scores.name,
            "optimised": round(theirs_best["score"], 1),
            "optimised_threshold": theirs_best["threshold"],
            "categories": diff["categories"],
            "windows": [
                {**asdict(w), "gain": round(w.gain, 2)}
                | {k: round(v, 3) for k in ("ours", "theirs") if (v := getattr(w, k)) is not None}
                for w in diff["windows"]  # type: ignore[attr-defined]
            ],
            "false_alarms": diff["false_alarms"],
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    run_main(main)
