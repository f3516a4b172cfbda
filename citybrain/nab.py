"""The Numenta Anomaly Benchmark scorer, written from the rules in NAB's README
(../shared/data/nab/README.md), and a runner that scores a detector on a NAB-layout corpus.

Pure functions over arrays: ``raw_score`` for one threshold, ``best`` for the corpus-wide
threshold sweep (one pass over the rows sorted by score), ``normalised`` for NAB's
0 (null detector) to 100 (perfect) scale.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from citybrain.detect import read_series
from citybrain.errors import InputError, json_error_at, utf8_text
from playbooks.errors import did_you_mean, shown
from streams.events import duplicate_keys, json_int
from streams.inputs import not_a_regular_file

PROFILES: dict[str, tuple[float, float, float]] = {  # A_TP, A_FP, A_FN
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}


def sigma(x: float) -> float:
    return -1.0 if x > 3 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


@dataclass
class Case:
    """One file: its scores (one per row, file order) and its windows as row ranges."""

    name: str
    scores: np.ndarray
    windows: list[tuple[int, int]] = field(default_factory=list)

    @property
    def probation(self) -> int:
        return min(math.floor(0.15 * len(self.scores)), 750)

    def window_of(self, row: int) -> int | None:
        for k, (s, e) in enumerate(self.windows):
            if s <= row <= e:
                return k
        return None

    def fp_cost(self, row: int, a_fp: float) -> float:
        """Cost of a detection at ``row`` outside every window."""
        ended = [(s, e) for s, e in self.windows if e < row]
        if not ended:
            return -a_fp
        s, e = ended[-1]
        return a_fp * sigma((row - e) / (e - s + 1 - 1))

    def tp_credit(self, row: int, k: int, a_tp: float) -> float:
        s, e = self.windows[k]
        return a_tp * sigma(-(e - row + 1) / (e - s + 1)) / sigma(-1.0)


def detections(case: Case, theta: float) -> tuple[dict[int, int], list[int]]:
    """``case``'s detections at ``theta`` past probation: each detected window's first
    row (window index -> row), and the rows outside every window (false alarms)."""
    first: dict[int, int] = {}
    outside: list[int] = []
    for row in range(case.probation, len(case.scores)):
        if case.scores[row] < theta:
            continue
        k = case.window_of(row)
        if k is None:
            outside.append(row)
        else:
            first.setdefault(k, row)
    return first, outside


def raw_score(cases: Sequence[Case], theta: float, profile: str) -> float:
    """Rule 6 at one threshold, directly (the reference the sweep is tested against)."""
    a_tp, a_fp, a_fn = PROFILES[profile]
    total = 0.0
    for case in cases:
        first, outside = detections(case, theta)
        total += sum(case.fp_cost(row, a_fp) for row in outside)
        for k in range(len(case.windows)):
            total += case.tp_credit(first[k], k, a_tp) if k in first else -a_fn
    return total


def best(cases: Sequence[Case], profile: str) -> tuple[float, float]:
    """(threshold, raw score) maximising the corpus raw score; ties take the highest
    threshold. One pass: rows sorted by score, highest first, added a group at a time."""
    a_tp, a_fp, a_fn = PROFILES[profile]
    rows: list[tuple[float, int, int]] = []
    for c, case in enumerate(cases):
        rows += [(float(case.scores[r]), c, r) for r in range(case.probation, len(case.scores))]
    rows.sort(key=lambda t: -t[0])
    n_windows = sum(len(case.windows) for case in cases)
    earliest: dict[tuple[int, int], int] = {}
    window_sum = -a_fn * n_windows
    fp_sum = 0.0
    best_theta, best_raw = math.inf, window_sum  # "above every score": nothing detected
    i = 0
    while i < len(rows):
        theta = rows[i][0]
        while i < len(rows) and rows[i][0] == theta:
            _, c, r = rows[i]
            case = cases[c]
            k = case.window_of(r)
            if k is None:
                fp_sum += case.fp_cost(r, a_fp)
            else:
                old = earliest.get((c, k))
                if old is None or r < old:
                    window_sum -= -a_fn if old is None else case.tp_credit(old, k, a_tp)
                    window_sum += case.tp_credit(r, k, a_tp)
                    earliest[(c, k)] = r
            i += 1
        if window_sum + fp_sum > best_raw + 1e-12:
            best_theta, best_raw = theta, window_sum + fp_sum
    return best_theta, best_raw


def normalised(cases: Sequence[Case], profile: str) -> dict[str, float] | None:
    """NAB's reported score, or None for a corpus without windows."""
    a_tp, _, a_fn = PROFILES[profile]
    n_windows = sum(len(case.windows) for case in cases)
    if n_windows == 0:
        return None
    theta, raw = best(cases, profile)
    perfect, null = a_tp * n_windows, -a_fn * n_windows
    return {"score": 100.0 * (raw - null) / (perfect - null), "threshold": theta, "raw": raw}


def held_out(cases: Sequence[Case], profile: str) -> float | None:
    """The normalised score when no file's own labels pick its threshold: files split in
    two alternating halves, each scored at the threshold that is best on the other half.
    The honest number for a detector that must run unattended (NAB's README, "Things that
    are easy to get wrong")."""
    a_tp, _, a_fn = PROFILES[profile]
    n_windows = sum(len(case.windows) for case in cases)
    halves = [list(cases[0::2]), list(cases[1::2])]
    if n_windows == 0 or not all(any(c.windows for c in h) for h in halves):
        return None
    raw = sum(
        raw_score(half, best(other, profile)[0], profile) for half, other in (halves, halves[::-1])
    )
    perfect, null = a_tp * n_windows, -a_fn * n_windows
    return 100.0 * (raw - null) / (perfect - null)


def category(case: Case) -> str:
    return case.name.split("/")[0]


def score_at(cases: Sequence[Case], theta: float, profile: str) -> float | None:
    """The normalised score of ``cases`` at a fixed threshold (no sweep)."""
    a_tp, _, a_fn = PROFILES[profile]
    n_windows = sum(len(case.windows) for case in cases)
    if n_windows == 0:
        return None
    perfect, null = a_tp * n_windows, -a_fn * n_windows
    return 100.0 * (raw_score(cases, theta, profile) - null) / (perfect - null)


def leave_one_category_out(
    candidates: dict[str, Sequence[Case]], profile: str
) -> dict[str, object] | None:
    """Leave-one-category-out: each category is scored at the threshold, and with the
    candidate (a knob setting: one corpus of cases per setting, same files in the same
    order), that are best on the *other* categories; the raw scores of the held-out
    categories are summed and normalised over all windows. No file's own labels choose
    anything it is scored with (issue 13: the honest number for unseen sensors). None
    without windows, or with one category: nothing would choose its threshold, which
    scored it at "above every score", the null detector's 0.0."""
    names = list(candidates)
    first = list(candidates[names[0]])
    a_tp, _, a_fn = PROFILES[profile]
    n_windows = sum(len(case.windows) for case in first)
    cats = sorted({category(c) for c in first})
    if n_windows == 0 or len(cats) < 2:
        return None
    total = 0.0
    chosen: dict[str, object] = {}
    for held in cats:
        best_name, best_theta, best_raw = names[0], math.inf, -math.inf
        for name in names:
            others = [c for c in candidates[name] if category(c) != held]
            theta, raw = best(others, profile)
            if raw > best_raw + 1e-12:
                best_name, best_theta, best_raw = name, theta, raw
        held_cases = [c for c in candidates[best_name] if category(c) == held]
        total += raw_score(held_cases, best_theta, profile)
        chosen[held] = {"candidate": best_name, "threshold": best_theta}
    perfect, null = a_tp * n_windows, -a_fn * n_windows
    return {"score": 100.0 * (total - null) / (perfect - null), "chosen": chosen}


def load_corpus(
    data: Path,
    labels: Path,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    unmatched: list[str] | None = None,
) -> list[Case]:
    """Score every ``<category>/<file>.csv`` under ``data`` (``score(times, values)``, times
    in seconds) and attach its windows. Raises InputError for a corpus without a CSV
    file. Each labelled file that is not under ``data`` is appended to ``unmatched`` (its
    windows count nowhere), with the closest file that is: `` (did you mean …?)``."""
    windows = read_windows(labels)
    cases = []
    for path in sorted(data.rglob("*.csv")):
        if path.is_dir():  # a folder named x.csv is walked into, not read (t121)
            continue
        if not path.is_file():  # a pipe named x.csv was waited on for ever (t121)
            raise InputError(f"{path}{not_a_regular_file(path)}")
        name = str(path.relative_to(data))
        # The reader of ``citybrain detect``: a bad file is a file:line error, not a traceback.
        stamps, times, values = read_series(path)
        rows = {ts: i for i, ts in reversed(list(enumerate(stamps)))}
        spans = []
        for i, (start, end) in enumerate(windows.get(name, [])):
            missing = [t for t in (start, end) if t.split(".")[0] not in rows]
            if missing:
                raise InputError(
                    f"{labels}: {name!r} window {i}: {missing[0]!r} is no timestamp of "
                    f"{path} (a window starts and ends at rows of its file)"
                )
            spans.append((rows[start.split(".")[0]], rows[end.split(".")[0]]))
        cases.append(Case(name, score(times, values), spans))
    if not cases:
        # An empty corpus was scored: exit 0, every score null (t121).
        raise InputError(
            f"--data {str(data)!r}: no .csv files under it (NAB's layout: "
            "data/<category>/<file>.csv)"
        )
    if unmatched is not None:
        # A labelled file missing from the corpus (misspelt, or left out) lost its windows
        # unsaid: a run on it scored as if it had no anomaly windows (t121).
        names = [c.name for c in cases]
        unmatched.extend(
            f"{key!r}{did_you_mean(key, names)}" for key in windows if key not in set(names)
        )
    return cases


def read_windows(labels: Path) -> dict[str, list[tuple[str, str]]]:
    """NAB's ``combined_windows.json``: ``{"<category>/<file>.csv": [[start, end], …]}``,
    times as the files write them (``2014-04-10 07:15:00.000000``). Raises InputError
    naming the file and what is wrong (each was a traceback, exit 70, in trial 20: an
    empty file, a list, a window that is not a pair, a time no row has)."""
    try:
        # As every file read whole: the line, and the encoding it seems to be (t121: a
        # byte offset, and UTF-16 was said as a bad byte or as no JSON).
        text = utf8_text(labels)
    except OSError as exc:
        raise InputError(f"{labels}: cannot read: {exc.strerror}") from None
    try:
        # An integer past 4,300 digits (int()'s limit) was a ValueError, exit 70 (t66).
        doc = json.loads(text, parse_int=json_int)
    except json.JSONDecodeError as exc:
        json_line, json_end = json_error_at(exc)
        raise InputError(f"{labels}:{json_line}: not JSON: {exc.msg}{json_end}") from None
    except RecursionError:
        raise InputError(f"{labels}: not JSON: nested too deeply") from None
    for key, at in duplicate_keys(text.encode("utf-8"), doc)[:1]:
        # json.loads kept the last: a file's windows given twice lost the first list (t54).
        where = f" (in {at})" if at else ""
        raise InputError(f"{labels}: key {key[:60]!r} is given twice{where}: which is meant?")
    expected = 'expected {"<category>/<file>.csv": [[start, end], ...]} (NAB\'s layout)'
    if not isinstance(doc, dict):
        raise InputError(f"{labels}: is {shown(doc)}, {expected}")
    windows: dict[str, list[tuple[str, str]]] = {}
    for name, spans in doc.items():
        if not isinstance(spans, list):
            raise InputError(f"{labels}: {name!r} is {shown(spans)}, {expected}")
        for i, span in enumerate(spans):
            if not (
                isinstance(span, list) and len(span) == 2 and all(isinstance(t, str) for t in span)
            ):
                raise InputError(
                    f"{labels}: {name!r} window {i} is {json.dumps(span)[:60]}, "
                    "expected a pair of times [start, end]"
                )
        windows[name] = [(start, end) for start, end in spans]
    return windows


def report(cases: Sequence[Case], threshold: float | None = None) -> dict[str, object]:
    """All three profiles on the whole corpus and per category: leave-one-category-out
    first, the ordinary (optimised threshold) score, and the score at the detector's
    fixed default ``threshold`` when given."""
    categories = sorted({c.name.split("/")[0] for c in cases})
    out: dict[str, object] = {"files": len(cases), "windows": sum(len(c.windows) for c in cases)}
    for profile in PROFILES:
        result = normalised(cases, profile)
        per = {
            cat: normalised([c for c in cases if c.name.startswith(cat + "/")], profile)
            for cat in categories
        }
        out[profile] = {
            "leave_one_category_out": (loco := leave_one_category_out({"": cases}, profile))
            and loco["score"],
            "corpus": result,
            "at_default_threshold": None
            if threshold is None
            else score_at(cases, threshold, profile),
            "held_out_threshold": held_out(cases, profile),
            "categories": {k: v["score"] if v else None for k, v in per.items()},
        }
    return out
