"""A worker restarted with another CITYBRAIN_BURST_BUCKET_SECONDS reads the burst windows
the last one stored (t148): a window counts its slots in sub-buckets of the setting it was
written with, and read as the new worker's own, a longer window made every report of the
cell and category late for hours. On the real Kafka: four reports held below the
threshold by a worker with 30-minute windows, a fifth after the restart with one-hour
windows makes the burst, whose run covers all five."""

from __future__ import annotations

import time

import pytest

from streams.events import IncidentReport
from tests.integration.test_pipeline import START, steps_of
from tests.integration.test_replies import send_reports
from tests.services import Pipeline, scrape_sum

pytestmark = pytest.mark.integration


def test_a_window_stored_under_30_minute_buckets_is_read_by_a_worker_with_an_hour(
    pipeline: Pipeline,
) -> None:
    t = START + 7200
    worker = pipeline.worker().start()
    try:
        send_reports(pipeline, 4, t=t)  # below the threshold of 5: held in the window
        port = pipeline.settings.worker_port
        deadline = time.monotonic() + 60
        while scrape_sum(port, "citybrain_incidents_total") < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert scrape_sum(port, "citybrain_incidents_total") == 4
    finally:
        worker.stop()  # its window on the changelog, its offsets committed
    pipeline.env["CITYBRAIN_BURST_BUCKET_SECONDS"] = "3600"
    worker = pipeline.worker().start()
    try:
        fifth = IncidentReport(
            t + 120,
            "r-4",
            "Noise - Residential",
            "Noise - Residential: Loud Music/Party",
            "app",
            "c-top",
        )
        pipeline.send("incidents", b"c-top", fifth.to_json())
        pipeline.flush()
        steps = pipeline.read(
            "steps", lambda m: len(steps_of(m, "report_covered")) == 5, timeout=60
        )
        assert len(steps_of(steps, "run_created")) == 1
        covered = sorted(d["detail"] for d in steps_of(steps, "report_covered"))
        assert covered == [f"r-{i}" for i in range(5)]
        port = pipeline.settings.worker_port
        assert scrape_sum(port, "citybrain_incidents_late_total") == 0
    finally:
        worker.stop()
