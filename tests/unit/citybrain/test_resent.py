"""The worker's rule for re-sent citizen reports, as report and rehearse apply it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from citybrain.rehearse import read_incidents
from citybrain.report import match_files
from citybrain.resent import worker_duplicates
from playbooks.grid import Grid
from streams.bursts import BurstTracker
from streams.events import IncidentReport

T0 = 1_716_778_800.0  # 2024-05-27T03:00:00Z
NOISE = "Noise - Residential"
PARKING = "Illegal Parking"


def test_the_same_id_in_the_same_cell_and_category_within_a_day_is_a_duplicate() -> None:
    reports = [
        (T0, "m-1", NOISE, "c1"),
        (T0 + 60, "m-2", NOISE, "c1"),
        (T0 + 600, "m-1", NOISE, "c1"),  # re-sent: dropped
        (T0 + 660, "m-2", "Illegal Parking", "c1"),  # another category: a new report
        (T0 + 720, "m-2", NOISE, "c2"),  # another cell: a new report
        (T0 + 2 * 86_400, "m-9", NOISE, "c1"),  # two days on: the day's ids are forgotten
        (T0 + 2 * 86_400 + 60, "m-1", NOISE, "c1"),  # so a new report
    ]
    assert worker_duplicates(reports) == [False, False, True, False, False, False, False]


def test_a_re_sent_late_report_is_a_duplicate() -> None:
    """Trial 7: a late report sent twice was two incidents to the worker and ``report``
    and one to ``rehearse``. Duplicates are checked before lateness, and a late report's
    id is remembered: the second copy is a duplicate, whichever copy is the older."""
    reports = [
        (T0 + 7200, "new", NOISE, "c1"),
        (T0, "old", NOISE, "c1"),  # late: counted
        (T0 + 60, "old", NOISE, "c1"),  # late too, but a re-send: a duplicate
        (T0 - 60, "old", NOISE, "c1"),  # an earlier copy: a duplicate as well
        (T0 + 7200, "new", NOISE, "c1"),  # a duplicate
    ]
    assert worker_duplicates(reports) == [False, False, True, True, True]


def test_it_agrees_with_the_tracker_the_worker_runs() -> None:
    """Report by report as the incidents agent decides (streams/ingest.py: dropped, then
    observe), over a mix of repeats, cells and categories."""
    tracker = BurstTracker()
    state: dict[tuple[str, str], object] = {}
    reports = [
        (T0 + (i * 37) % 5000, f"r{i % 7}", NOISE if i % 3 else "Fire", f"c{i % 2}")
        for i in range(120)
    ]
    expected = []
    for ts, rid, category, cell in reports:
        report = IncidentReport(ts, rid, category, "", "app", cell)
        current = state.get((cell, category))
        dropped = tracker.dropped(current, report)  # type: ignore[arg-type]
        expected.append(dropped == "duplicate")
        if dropped != "duplicate":
            state[(cell, category)], _ = tracker.observe(current, report, "")  # type: ignore[arg-type]
    assert worker_duplicates(reports) == expected
    assert any(expected) and not all(expected)


def _lt_rows() -> list[tuple[str, str]]:
    """Trial 7's lt.csv: the newest report of the cell and category at 23:56, then lt-1
    twice (23:00 and 23:01, both late), o-1 twice a day and more earlier (both late)."""
    return [
        ("2024-06-02T23:56:00Z", "n-1"),
        ("2024-06-02T23:00:00Z", "lt-1"),
        ("2024-06-02T23:01:00Z", "lt-1"),
        ("2024-06-01T23:58:00Z", "o-1"),
        ("2024-06-02T00:03:00Z", "o-1"),
    ]


def test_the_worker_report_and_rehearse_agree_on_re_sent_late_reports(
    tmp_path: Path, grid: Grid
) -> None:
    """The worker (the incidents agent's steps: ``dropped``, then ``observe_all`` for all
    but a duplicate), ``report`` (``match_files``) and ``rehearse`` (``read_incidents``)
    over one file, in the order the worker reads it: 3 incidents, 2 duplicates each."""
    cell = sorted(grid.cells)[0]
    rows = _lt_rows()
    # The worker, step by step as streams/ingest.py takes them, in arrival order.
    tracker = BurstTracker()
    state: dict[str, Any] | None = None
    counted, duplicates, late = [], [], []
    for when, rid in rows:
        report = IncidentReport(_epoch(when), rid, PARKING, "x", "inspector", cell)
        reason = tracker.dropped(state, report)
        if reason == "duplicate":
            duplicates.append(rid)
            continue
        if reason == "late":
            late.append(rid)
        counted.append(rid)
        state, _, _ = tracker.observe_all(state, report, "police")
    assert (counted, duplicates, late) == (["n-1", "lt-1", "o-1"], ["lt-1", "o-1"], ["lt-1", "o-1"])
    # report: the topic holds all five (the worker drops duplicates after the topic).
    frame = pd.DataFrame(
        [(_epoch(when), rid, PARKING, cell) for when, rid in rows],
        columns=["ts", "report_id", "category", "grid_cell"],
    )
    replayed = match_files(
        pd.DataFrame({"sensor_id": pd.Series(dtype=str), "ts": pd.Series(dtype=float)}),
        frame,
        pd.DataFrame({"sensor_id": pd.Series(dtype=str), "ts": pd.Series(dtype=float), "file": []}),
        frame.assign(file="lt.csv"),
    )
    assert sorted(replayed.incidents["report_id"]) == sorted(counted)
    assert replayed.repeated_reports == len(duplicates)
    # rehearse: the file itself (replay sends it in event-time order: the same verdicts).
    path = tmp_path / "lt.csv"
    lines = ["timestamp,report_id,category,text,source,grid_cell"]
    lines += [f"{when},{rid},{PARKING},x,inspector,{cell}" for when, rid in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = read_incidents(path, grid.cells, {"police"}, lambda t: ["police"] * len(t), None, grid)
    assert sorted(i.report_id for i in found.incidents) == sorted(counted)
    assert len(found.duplicates) == len(duplicates)


def _epoch(when: str) -> float:
    return datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
