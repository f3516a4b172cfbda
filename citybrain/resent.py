"""Re-sent citizen reports, told apart by the worker's own rule: for the commands that
read reports without a worker (``report``, ``rehearse``), so they leave out exactly the
reports the worker leaves out.

The rule is ``streams.bursts.BurstTracker.dropped`` (docs/events.md, "Incident reports"):
a report whose ``report_id`` was already counted or found late in its grid cell and
category, with an event time within a day of this one's (the last 200 ids there), is a
duplicate; duplicates are checked before lateness, so a re-sent late report is a
duplicate too. The same id in another cell or category is a new report. This
module runs the tracker itself over the reports in the order the worker sees them, so a
change to the rule there is a change here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.bursts import BurstTracker
from streams.events import IncidentReport


def worker_duplicates(
    reports: Iterable[tuple[float, str, str, str]], bucket_seconds: float = 1800.0
) -> list[bool]:
    """Per report, in the order given, whether the worker drops it as a re-sent one.

    ``reports``: (ts in epoch s, report_id, category, grid_cell), in the order the worker
    reads them: a cell's reports in their topic's offset order (``replay`` sends them in
    event-time order, ties in file order). ``bucket_seconds`` is the worker's
    ``CITYBRAIN_BURST_BUCKET_SECONDS`` (the rule counts a day in its sub-buckets).
    Returns a list as long as ``reports``; raises nothing for any strings or times."""
    tracker = BurstTracker(bucket_seconds=bucket_seconds)
    states: dict[tuple[str, str], dict[str, Any] | None] = {}
    out = []
    for ts, report_id, category, cell in reports:
        report = IncidentReport(float(ts), str(report_id), str(category), "", "app", str(cell))
        key = (report.grid_cell, report.category)
        state = states.get(key)
        # (Without texts here, a reused id, which the worker dead-letters, reads as
        # a duplicate: left out either way.)
        duplicate = tracker.dropped(state, report) in ("duplicate", "reused_id")
        out.append(duplicate)
        if not duplicate:
            # As the worker does: a late report is counted and only its id remembered
            # (observe does that itself); the department only names a burst's alert.
            states[key], _ = tracker.observe(state, report, "")
    return out
