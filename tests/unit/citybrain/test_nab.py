"""The NAB scorer on hand-computed cases (numbers from NAB's README and worked by hand)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from citybrain.detect import DetectInputError
from citybrain.nab import Case, best, load_corpus, normalised, raw_score, sigma


def case(n: int, detections: list[int], windows: list[tuple[int, int]]) -> Case:
    scores = np.zeros(n)
    scores[detections] = 1.0
    return Case("c/f.csv", scores, windows)


def test_sigma_reference_points() -> None:
    assert sigma(-1) == pytest.approx(0.98661, abs=1e-5)
    assert sigma(0) == 0 and sigma(1) == pytest.approx(-0.98661, abs=1e-5)
    assert sigma(3.0001) == -1


def test_readme_worked_example() -> None:
    c = case(4032, [*range(0, 604), 1000, 2800, 3000, 3300], [(2787, 3189)])
    assert c.probation == 604
    assert raw_score([c], 0.5, "standard") == pytest.approx(0.9976 - 0.0658 - 0.11, abs=1e-4)


def test_detection_at_window_start_earns_a_tp_and_late_earns_little() -> None:
    early = case(1000, [500], [(500, 599)])
    late = case(1000, [599], [(500, 599)])
    assert raw_score([early], 0.5, "standard") == pytest.approx(1.0)
    expected_late = sigma(-1 / 100) / sigma(-1)
    assert raw_score([late], 0.5, "standard") == pytest.approx(expected_late)
    assert expected_late == pytest.approx(0.02533, abs=1e-5)  # by hand: 0.024995 / 0.98661


def test_false_positive_just_after_a_window_costs_little_and_before_costs_all() -> None:
    after = case(1000, [500, 600], [(500, 599)])  # first row after the window: y = 1/99
    before = case(1000, [400, 500], [(500, 599)])
    assert raw_score([after], 0.5, "standard") == pytest.approx(1 + 0.11 * sigma(1 / 99))
    assert raw_score([before], 0.5, "standard") == pytest.approx(1 - 0.11)


def test_missed_window_and_probation() -> None:
    missed = case(1000, [10, 20, 149], [(500, 599)])  # only probationary detections
    assert raw_score([missed], 0.5, "standard") == pytest.approx(-1.0)
    assert raw_score([missed], 0.5, "reward_low_FN_rate") == pytest.approx(-2.0)


def test_sweep_matches_the_direct_score_at_its_threshold() -> None:
    rng = np.random.default_rng(3)
    cases = [Case(f"c/{i}.csv", rng.random(800), [(300 + i * 50, 360 + i * 50)]) for i in range(4)]
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        theta, raw = best(cases, profile)
        assert raw == pytest.approx(raw_score(cases, theta, profile))
        for other in np.quantile([s for c in cases for s in c.scores], [0.5, 0.9, 0.99]):
            assert raw >= raw_score(cases, float(other), profile) - 1e-9


def test_null_detector_scores_zero_and_a_perfect_one_hundred() -> None:
    windows = [(400, 449), (700, 749)]
    null = Case("c/f.csv", np.full(1000, 0.5), windows)
    perfect = case(1000, [400, 700], windows)
    assert normalised([null], "standard")["score"] == pytest.approx(0.0)  # type: ignore[index]
    assert normalised([perfect], "standard")["score"] == pytest.approx(100.0)  # type: ignore[index]
    assert normalised([Case("c/g.csv", np.zeros(100), [])], "standard") is None
    assert math.isfinite(best([perfect], "standard")[0])


def test_a_bad_corpus_file_is_a_file_line_error(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    bad = tmp_path / "cat" / "a.csv"
    bad.write_bytes(b"timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,2\xf1\n")
    labels = tmp_path / "labels.json"
    labels.write_text("{}")
    with pytest.raises(DetectInputError, match=rf"^{re.escape(str(bad))}:3: byte 0xf1"):
        load_corpus(tmp_path, labels, lambda t, v: np.zeros_like(v))


def test_leave_one_category_out_is_none_with_one_category() -> None:
    """Trial 5 item 14: one category gave "leave_one_category_out": 0.0, a score for a
    category no other could choose a threshold for; null, like held_out_threshold."""
    from citybrain.nab import PROFILES, report

    rng = np.random.default_rng(3)
    one = [Case(f"c/{i}.csv", rng.random(800), [(300, 360)]) for i in range(2)]
    result = report(one)
    assert all(result[p]["leave_one_category_out"] is None for p in PROFILES)  # type: ignore[index]
    two = [*one, Case("d/0.csv", rng.random(800), [(300, 360)])]
    scores = [report(two)[p]["leave_one_category_out"] for p in PROFILES]  # type: ignore[index]
    assert all(isinstance(s, float) for s in scores)
