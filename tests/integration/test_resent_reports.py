"""Re-sent citizen reports on the real Kafka (trial 5: twelve re-sent reports raised
citybrain_incidents_total and then vanished, with no count, step or log line): each is a
duplicate, counted in citybrain_incidents_duplicate_total, said in the worker's log, and
covers nothing twice."""

from __future__ import annotations

import time

import pytest

from streams.events import IncidentReport
from tests.integration.test_pipeline import START, steps_of
from tests.integration.test_replies import send_reports
from tests.services import Pipeline, scrape_sum

pytestmark = pytest.mark.integration


def test_re_sent_reports_are_counted_as_duplicates_and_logged(pipeline: Pipeline) -> None:
    worker = pipeline.worker().start()
    try:
        send_reports(pipeline, 6)  # five make the burst, one follows it
        steps = pipeline.read(
            "steps", lambda m: len(steps_of(m, "report_covered")) == 6, timeout=60
        )
        assert len(steps_of(steps, "run_created")) == 1
        send_reports(pipeline, 6)  # the same six again: the same ids and times
        port = pipeline.settings.worker_port
        deadline = time.monotonic() + 60
        name = "citybrain_incidents_duplicate_total"
        while scrape_sum(port, name) < 6 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert scrape_sum(port, name) == 6
        assert scrape_sum(port, "citybrain_incidents_total") == 6  # the first copies only
        steps = pipeline.read("steps", lambda m: True, settle=2)
        assert len(steps_of(steps, "report_covered")) == 6  # none covered twice
        assert len(steps_of(steps, "run_created")) == 1
        log = worker.log()
        assert "duplicate report(s) not counted towards bursts" in log
        assert "r-0" in log
        # Trial 7: a late report sent twice was two incidents. It is one, and a duplicate;
        # an hour older than the run's opening, it is covered by the open run once.
        send_reports(pipeline, 1, t=START + 3600, tag="lt")
        send_reports(pipeline, 1, t=START + 3660, tag="lt")
        # Two days older than the run's opening: late, not the run's, in no alert.
        send_reports(pipeline, 1, t=START + 7200 - 2 * 86_400, tag="old")
        deadline = time.monotonic() + 60
        while scrape_sum(port, name) < 7 and time.monotonic() < deadline:
            time.sleep(0.5)
        while (
            scrape_sum(port, "citybrain_incidents_unalerted_total") < 1
            and time.monotonic() < deadline
        ):
            time.sleep(0.5)
        assert scrape_sum(port, name) == 7  # the second lt-0
        assert scrape_sum(port, "citybrain_incidents_total") == 8  # lt-0 and old-0 once
        assert scrape_sum(port, "citybrain_incidents_late_total") == 2  # lt-0, old-0
        assert scrape_sum(port, "citybrain_incidents_unalerted_total") == 1  # old-0
        steps = pipeline.read("steps", lambda m: True, settle=2)
        covered = [d["detail"] for d in steps_of(steps, "report_covered")]
        assert len(covered) == 7 and covered.count("lt-0") == 1
        assert "old-0" not in covered
        # t109: another report under r-1 (other text) was dropped as a re-send; it is
        # dead-lettered naming the id, and counts as neither a duplicate nor an incident.
        reused = IncidentReport(
            START + 7230, "r-1", "Noise - Residential", "a burst pipe", "hotline", "c-top"
        )
        pipeline.send("incidents", b"c-top", reused.to_json())
        pipeline.flush()
        dead = pipeline.read("deadletter", lambda m: bool(m), timeout=60)
        [letter] = [m for m in dead if b"a burst pipe" in m.value]
        headers = dict(letter.headers)
        assert headers["citybrain.error.reason"] == b"reused_report_id", headers
        assert b"field \"report_id\" is 'r-1'" in headers["citybrain.error.message"], headers
        assert scrape_sum(port, name) == 7
        assert scrape_sum(port, "citybrain_incidents_total") == 8
    finally:
        worker.stop()
