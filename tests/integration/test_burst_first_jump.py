"""A new burst window's first report far ahead of the city's clock (t206), on the real
Kafka: reports of one cell set the burst sweep's clock; a new cell and category's first
report is dated ten days ahead (before the worker's clock, so not ``in_future``): held
aside in a window of no slot yet, stored on the changelog as such and read back by a
restarted worker; the cell's real burst after it alerts, without it, and its run covers
the real reports, none late (the odd one reaches the run as any report of its group in
no alert does, offered). Before, that first report opened its window ten days ahead: every
later report of the cell and category late, no burst, no run."""

from __future__ import annotations

import json
import time

import pytest

from streams.events import IncidentReport
from tests.integration.test_pipeline import steps_of
from tests.integration.test_replies import send_reports
from tests.services import Pipeline, scrape_sum, start_of_hour

pytestmark = pytest.mark.integration

START = start_of_hour(30)  # a month back: ten days ahead of it is still in the past


def wait_counted(p: Pipeline, n: int) -> None:
    port = p.settings.worker_port
    deadline = time.monotonic() + 60
    while scrape_sum(port, "citybrain_incidents_total") < n:
        assert time.monotonic() < deadline, f"fewer than {n} reports counted"
        time.sleep(0.5)


def test_a_new_windows_first_report_ten_days_ahead_costs_its_cell_no_burst(
    pipeline: Pipeline,
) -> None:
    worker = pipeline.worker().start()
    try:
        # The city's clock: a report in another cell.
        mill = IncidentReport(
            START, "m-0", "Noise - Residential", "Noise - Residential: Loud", "app", "c-mill"
        )
        pipeline.send("incidents", b"c-mill", mill.to_json())
        odd = IncidentReport(
            START + 10 * 86_400,
            "odd",
            "Noise - Residential",
            "Noise - Residential: Loud Music/Party",
            "app",
            "c-top",
        )
        pipeline.flush()
        wait_counted(pipeline, 1)
        pipeline.send("incidents", b"c-top", odd.to_json())
        pipeline.flush()
        wait_counted(pipeline, 2)
    finally:
        worker.stop()  # the held report's window on the changelog
    worker = pipeline.worker().start()
    try:
        send_reports(pipeline, 6, t=START + 600)
        steps = pipeline.read(
            "steps", lambda m: len(steps_of(m, "report_covered")) >= 5, timeout=60, settle=2
        )
        assert len(steps_of(steps, "run_created")) == 1
        covered = {d["detail"] for d in steps_of(steps, "report_covered")}
        assert {f"r-{i}" for i in range(5)} <= covered
        alerts = pipeline.read("alerts", lambda m: True, timeout=10, settle=1)
        bursts = [
            d
            for d in (json.loads(m.value) for m in alerts)
            if d.get("kind") == "incident_burst" and d.get("status") == "firing"
        ]
        # One burst (its opening and follow-ups). The odd report is in none of them: it
        # reaches the run, if at all, as any report of its group in no alert does.
        assert len({d["alert_id"] for d in bursts}) == 1
        in_bursts = {r["report_id"] for d in bursts for r in d["reports"]}
        assert {f"r-{i}" for i in range(5)} <= in_bursts and "odd" not in in_bursts
        port = pipeline.settings.worker_port
        assert scrape_sum(port, "citybrain_incidents_late_total") == 0
    finally:
        worker.stop()
