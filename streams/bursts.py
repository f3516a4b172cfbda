"""Bursts of citizen reports: many reports of one category in one grid cell, against
that cell's own baseline. Pure; the incidents agent keeps the state in a faust table.

Reports are counted in event-time buckets (default 30 min). A bucket's count is compared
with the cell and category's baseline, an exponentially weighted mean of past buckets
(empty buckets count as zero): it is a burst when the count reaches
``max(min_reports, baseline * factor + 3 * sqrt(baseline))``. One alert per bucket.

Every report keeps its id and channel: the alert carries the bucket's reports so far
(``Burst.reports``), and a report that arrives in a bucket that already alerted comes back
as a follow-up (``first`` False) carrying only itself, so the run that covers the alert
covers it too and its reporter hears the closure (playbooks.engine ``ReportsCovered``).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from streams.events import IncidentReport


@dataclass(slots=True)
class Burst:
    alert_id: str
    grid_cell: str
    category: str
    department: str
    count: int
    baseline: float
    bucket_start: float
    severity: str
    reports: list[tuple[str, str]] = field(default_factory=list)  # (report id, channel)
    first: bool = True  # False: a follow-up report of a bucket that already alerted

    def reports_doc(self) -> list[dict[str, str]]:
        """The reports as the alert document's ``reports`` list."""
        return [{"report_id": rid, "channel": ch} for rid, ch in self.reports]


@dataclass
class BurstTracker:
    bucket_seconds: float = 1800.0
    min_reports: int = 5
    factor: float = 3.0
    alpha: float = 0.1  # weight of the newest bucket in the baseline
    max_idle_buckets: int = 96  # after this many empty buckets the baseline is ~0 anyway
    max_held_reports: int = 200  # report ids a bucket holds until it alerts
    departments: Counter[str] = field(default_factory=Counter)

    def observe(
        self, state: dict[str, Any] | None, report: IncidentReport, department: str
    ) -> tuple[dict[str, Any], Burst | None]:
        """Fold one report into its (cell, category) state; a Burst when it tips over."""
        bucket = math.floor(report.ts / self.bucket_seconds) * self.bucket_seconds
        if state is None:
            state = {
                "bucket": bucket,
                "count": 0,
                "baseline": 0.0,
                "alerted": False,
                "departments": {},
            }
        if bucket > state["bucket"]:
            # Close the finished bucket and any empty ones after it.
            gap = min(int((bucket - state["bucket"]) / self.bucket_seconds), self.max_idle_buckets)
            baseline = state["baseline"]
            for i in range(gap):
                count = state["count"] if i == 0 else 0
                baseline = (1 - self.alpha) * baseline + self.alpha * count
            state = {
                "bucket": bucket,
                "count": 0,
                "baseline": baseline,
                "alerted": False,
                "departments": {},
                "reports": [],
            }
        elif bucket < state["bucket"]:
            return state, None  # a late report of a closed bucket: counted nowhere
        state["count"] += 1
        state["departments"][department] = state["departments"].get(department, 0) + 1
        baseline = state["baseline"]
        threshold = max(self.min_reports, baseline * self.factor + 3 * math.sqrt(baseline))
        top = max(state["departments"].items(), key=lambda kv: (kv[1], kv[0]))[0]
        ratio = state["count"] / max(threshold, 1.0)
        severity = "critical" if ratio >= 3 else "major" if ratio >= 1.5 else "minor"
        key = f"{report.grid_cell}|{report.category}|{bucket:.0f}"
        alert_id = "al-" + hashlib.sha1(key.encode()).hexdigest()[:16]
        mine = (report.report_id, report.source)
        first = not state["alerted"]
        if first:
            held = state.setdefault("reports", [])
            if len(held) < self.max_held_reports:
                held.append(list(mine))
            if state["count"] < threshold:
                return state, None
            state["alerted"] = True
            reports = [(str(r[0]), str(r[1])) for r in held]
            state["reports"] = []  # they travel with the alert now
        else:
            # The bucket already alerted: this report follows the alert to its run.
            reports = [mine]
        return state, Burst(
            alert_id,
            report.grid_cell,
            report.category,
            top,
            state["count"],
            baseline,
            bucket,
            severity,
            reports,
            first=first,
        )
