"""The worker's rule for re-sent citizen reports, as report and rehearse apply it."""

from __future__ import annotations

from citybrain.resent import worker_duplicates
from streams.bursts import BurstTracker
from streams.events import IncidentReport

T0 = 1_716_778_800.0  # 2024-05-27T03:00:00Z
NOISE = "Noise - Residential"


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


def test_a_late_report_is_counted_but_remembered_by_no_one() -> None:
    """The worker counts a late report (older than the window) yet does not remember
    its id: sent again, it is not a duplicate either."""
    reports = [
        (T0 + 7200, "new", NOISE, "c1"),
        (T0, "old", NOISE, "c1"),  # late
        (T0, "old", NOISE, "c1"),  # late again, not a duplicate
        (T0 + 7200, "new", NOISE, "c1"),  # a duplicate
    ]
    assert worker_duplicates(reports) == [False, False, False, True]


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
