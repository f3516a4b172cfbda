"""The published-detector bench's reader (synthetic NAB-layout results; no NAB data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.published_nab import ResultsError, published_cases, read_scores, summary
from citybrain.nab import leave_one_category_out

HEADER = "timestamp,value,anomaly_score,label\n"


def _write(root: Path, detector: str, name: str, scores: list[float]) -> None:
    cat, file = name.split("/")
    path = root / detector / cat / f"{detector}_{file}"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"2020-01-01 00:{i // 60:02d}:{i % 60:02d},1.0,{s},0\n" for i, s in enumerate(scores)]
    path.write_text(HEADER + "".join(rows))


def test_published_cases_reads_scores_and_maps_windows_to_rows(tmp_path: Path) -> None:
    scores = [0.0] * 100
    scores[60] = 0.9
    _write(tmp_path, "det", "a/f.csv", scores)
    # NAB's labels carry fractional seconds; rows are matched to the second.
    windows = {"a/f.csv": [["2020-01-01 00:00:50.000000", "2020-01-01 00:01:10.000000"]]}
    (case,) = published_cases(tmp_path, "det", ["a/f.csv"], windows)
    assert case.windows == [(50, 70)]
    assert case.scores[60] == pytest.approx(0.9)
    assert len(case.scores) == 100


def test_summary_scores_loco_first_like_the_project_scorer(tmp_path: Path) -> None:
    windows = {}
    for cat in ("a", "b", "c"):
        scores = [0.0] * 100
        scores[50] = 0.8
        _write(tmp_path, "det", f"{cat}/f.csv", scores)
        windows[f"{cat}/f.csv"] = [["2020-01-01 00:00:50", "2020-01-01 00:01:00"]]
    cases = published_cases(tmp_path, "det", sorted(windows), windows)
    result = summary(cases)
    loco = leave_one_category_out({"": cases}, "standard")
    assert loco is not None
    assert result["leave_one_category_out"] == round(float(loco["score"]), 1)  # type: ignore[arg-type]
    # Every window detected at its start: a perfect score in every view.
    assert result["leave_one_category_out"] == pytest.approx(100.0)
    assert result["optimised_threshold"] == pytest.approx(0.8)


def test_a_bad_score_names_file_line_and_value(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(HEADER + "2020-01-01 00:00:00,1.0,high,0\n")
    with pytest.raises(ResultsError, match=r"r\.csv:2: anomaly_score 'high' is not a number"):
        read_scores(path)


def test_a_missing_file_or_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such results file"):
        read_scores(tmp_path / "absent.csv")
    path = tmp_path / "r.csv"
    path.write_text("timestamp,value\n2020-01-01 00:00:00,1.0\n")
    with pytest.raises(ResultsError, match="no anomaly_score column"):
        read_scores(path)


def test_a_window_outside_the_rows_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "det", "a/f.csv", list(np.zeros(10)))
    windows = {"a/f.csv": [["2021-01-01 00:00:00", "2021-01-01 00:00:05"]]}
    with pytest.raises(ResultsError, match="not in its rows"):
        published_cases(tmp_path, "det", ["a/f.csv"], windows)
