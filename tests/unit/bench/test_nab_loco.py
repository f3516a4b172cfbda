"""The LOCO loop's helpers: nested leave-one-category-out over variants, the
classification of false alarms, the loss analysis and the comparison with another
detector's scores (synthetic cases; no NAB data)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.nab_loco import (
    DAY_AFTER,
    FOLLOW_UP,
    LEVEL_SHIFT,
    TRANSIENT,
    compare,
    false_alarm_kinds,
    loss_summary,
    losses,
    nested,
)
from citybrain.nab import Case, leave_one_category_out, raw_score

STEP = 300.0  # five-minute readings


def _case(name: str, n: int, window: tuple[int, int], hits: dict[int, float]) -> Case:
    scores = np.zeros(n)
    for row, score in hits.items():
        scores[row] = score
    return Case(name, scores, [window])


def test_nested_takes_each_fold_variant_and_equals_plain_loco_for_one_variant() -> None:
    # Variant "early" detects every window at its start, "late" at its end and with a
    # false alarm: every fold prefers "early", so nested equals its own LOCO.
    cats = ["a", "b", "c"]
    early = [_case(f"{c}/f.csv", 1000, (400, 500), {400: 0.9}) for c in cats]
    late = [_case(f"{c}/f.csv", 1000, (400, 500), {500: 0.9, 200: 0.9}) for c in cats]
    result = nested({"early": early, "late": late})
    plain = leave_one_category_out({"": early}, "standard")
    assert plain is not None
    assert result["nested"] == round(float(plain["score"]), 1)  # type: ignore[arg-type]
    chosen = result["chosen"]
    assert isinstance(chosen, dict)
    assert {fold["candidate"] for fold in chosen.values()} == {"early"}


def test_nested_charges_a_pick_that_does_not_carry_to_the_held_out_category() -> None:
    # "a_only" is perfect on category a and misses b and c; "b_c" the reverse. The fold
    # holding out a picks "b_c" (best on b and c), which misses a's window.
    cats = ["a", "b", "c"]
    a_only = [_case(f"{c}/f.csv", 1000, (400, 500), {400: 0.9} if c == "a" else {}) for c in cats]
    b_c = [_case(f"{c}/f.csv", 1000, (400, 500), {} if c == "a" else {400: 0.9}) for c in cats]
    each = [leave_one_category_out({"": v}, "standard") for v in (a_only, b_c)]
    result = nested({"a_only": a_only, "b_c": b_c})
    chosen = result["chosen"]
    assert isinstance(chosen, dict)
    assert chosen["a"]["candidate"] == "b_c"
    assert all(r is not None for r in each)
    # Nested scores a fold with the variant chosen elsewhere: a's window is missed.
    assert result["nested"] < max(round(float(r["score"]), 1) for r in each if r)  # type: ignore[arg-type]


def test_false_alarms_are_classified_once_each_in_order() -> None:
    n = 2000
    times = np.arange(n) * STEP
    values = np.ones(n)
    values[1700:] = 50.0  # a level shift from row 1700 on
    hits = {
        600: 0.9,  # transient: the level is back the next day
        605: 0.9,  # 25 minutes later: a follow-up
        888: 0.9,  # 288 readings (a day) after row 600: a daily recurrence
        1700: 0.9,  # the shift's first reading: the next day's median is 49 off
        1850: 0.9,  # inside the window: not a false alarm
        100: 0.9,  # in probation (the first 15 %: 300 rows): not scored
    }
    case = _case("a/f.csv", n, (1800, 1900), hits)
    kinds = false_alarm_kinds(case, times, values, 0.5)
    assert kinds == {TRANSIENT: 1, FOLLOW_UP: 1, DAY_AFTER: 1, LEVEL_SHIFT: 1}
    assert false_alarm_kinds(case, times, values, 0.95) == {}


def test_losses_add_up_to_what_the_score_lacks() -> None:
    # Category a: one window found at its start, one at its end, one false alarm soon
    # after the second; category b: its window missed, a false alarm before any window.
    cases = [
        Case("a/f.csv", np.zeros(2000), [(400, 499), (1000, 1099)]),
        _case("b/g.csv", 2000, (1500, 1599), {600: 0.9}),
    ]
    cases[0].scores[[400, 1099, 1120]] = 0.9
    windows, cost, count = losses(cases, 0.5)
    assert [(w.name, w.window, w.first) for w in windows] == [
        ("a/f.csv", 0, 0.0),
        ("a/f.csv", 1, 0.99),
        ("b/g.csv", 0, None),
    ]
    assert windows[0].lost == 0.0 and windows[0].at_start == 1.0
    assert windows[2].earned == -1.0
    assert dict(count) == {"a": 1, "b": 1}
    # 100 points span 2 raw units a window (standard profile): a missed window loses
    # 2 / (2 * 3) of them, an unanchored false alarm 0.11 / 6.
    assert abs(windows[2].lost - 100.0 / 3.0) < 1e-9
    assert abs(cost["b"] - 100.0 * 0.11 / 6.0) < 1e-9
    assert 0.0 < cost["a"] < cost["b"]  # after a window the sigmoid charges less
    lacking = sum(w.lost for w in windows) + sum(cost.values())
    assert abs(100.0 - lacking - 100.0 * (raw_score(cases, 0.5, "standard") + 3) / 6) < 1e-9
    groups = loss_summary(windows)
    assert groups["missed"]["windows"] == 1
    assert groups["before the centre"]["windows"] == 1
    assert groups["after the centre"]["windows"] == 1


def test_compare_names_the_windows_and_false_alarms_where_two_detectors_differ() -> None:
    # Ours finds a's window at its end and b's not at all, with a lone false alarm at
    # row 600 and one at 1200 that theirs shares (40 minutes apart: the same alarm);
    # theirs finds both windows at their start, with a lone false alarm at row 1600.
    n = 2000
    times = [np.arange(n) * STEP, np.arange(n) * STEP]
    ours = [
        _case("a/f.csv", n, (400, 499), {499: 0.9, 600: 0.9, 1200: 0.9}),
        _case("b/g.csv", n, (400, 499), {}),
    ]
    theirs = [
        _case("a/f.csv", n, (400, 499), {400: 0.4, 1208: 0.4, 1600: 0.4}),
        _case("b/g.csv", n, (400, 499), {400: 0.4}),
    ]
    result = compare(ours, theirs, 0.5, 0.3, times)
    windows = result["windows"]
    assert isinstance(windows, list)
    # 100 points span 2 raw units a window, 4 in all: a missed window found at its start
    # gains 2 raw units (50 points), one found at its end rather than its start less.
    assert [(w.name, w.ours, w.theirs) for w in windows] == [
        ("b/g.csv", None, 0.0),
        ("a/f.csv", 0.99, 0.0),
    ]
    assert abs(windows[0].gain - 50.0) < 1e-9
    assert 0.0 < windows[1].gain < 50.0
    assert result["false_alarms"] == [
        {
            "name": "a/f.csv",
            "ours_only": [600],
            "theirs_only": [1600],
            "ours_only_points": round(-100.0 / 4 * ours[0].fp_cost(600, 0.11), 2),
            "theirs_only_points": round(-100.0 / 4 * theirs[0].fp_cost(1600, 0.11), 2),
        }
    ]
    categories = result["categories"]
    assert isinstance(categories, dict)
    assert categories["b"] == {
        "windows_ours": -25.0,
        "windows_theirs": 25.0,
        "fa_ours": 0.0,
        "fa_theirs": 0.0,
    }
    # The same scores compared with themselves: no window and no false alarm differ.
    same = compare(ours, ours, 0.5, 0.5, times)
    assert same["windows"] == [] and same["false_alarms"] == []


def test_compare_refuses_corpora_of_different_files() -> None:
    ours = [_case("a/f.csv", 1000, (400, 499), {})]
    theirs = [_case("a/f.csv", 1000, (300, 399), {})]
    with pytest.raises(ValueError, match="same files, rows and windows"):
        compare(ours, theirs, 0.5, 0.5, [np.arange(1000) * STEP])
