"""One stored item that claims a time far past the clock, on the real Kafka: it must
cost only itself. A burst window recovered from the changelog whose newest report is in
the year 8307 (a damaged entry: no report past ``CITYBRAIN_MAX_FUTURE_SKEW`` is
accepted) set the burst sweep's event time there: every other cell's burst was resolved
as ending in that year (and one claiming a time past 9999 failed every resolution, at
every sweep). The restarted worker must resolve the real burst at its own event time,
leave the damaged window as it is, say so once and count it."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from citybrain.stack import PrometheusServer
from streams.bursts import BurstTracker
from streams.context import burst_key
from streams.events import IncidentReport, format_ts
from tests.integration.test_pipeline import docs
from tests.integration.test_replies import burst_then_killed, docs_status
from tests.services import Pipeline, Worker, scrape_sum

pytestmark = pytest.mark.integration


def far_future_window(t: float) -> bytes:
    """A window of one report at ``t`` in c-mill, whose ``ts`` says the year 8307 (a
    date, so read back; one past the year 9999 is refused at read-back)."""
    report = IncidentReport(t, "odd-1", "Noise", "loud", "app", "c-mill")
    state, _, _ = BurstTracker().observe_all(None, report, "police")
    assert state is not None
    return orjson.dumps({**state, "ts": 2e11})


def test_a_window_from_the_far_future_costs_only_itself_and_bursts_still_resolve(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_BURST_SWEEP_INTERVAL": "3600"})
    worker, opened, t = burst_then_killed(p, "f")
    try:
        topic = f"{p.settings.app_id}-burst-windows-changelog"
        p.producer.send(topic, key=burst_key("c-mill", "Noise"), value=far_future_window(t))
        p.flush()
        worker = Worker({**p.env, "CITYBRAIN_BURST_SWEEP_INTERVAL": "1"}, worker.log_file)
        worker.start()
        alerts = docs(p.read("alerts", lambda m: any(docs_status(m, "resolved")), settle=3))
        [resolved] = [d for d in alerts if d["status"] == "resolved"]
        assert resolved["alert_id"] == opened["alert_id"]
        assert resolved["ended_at"] == format_ts(t + 7200)
        port = p.settings.worker_port
        skipped = 'citybrain_loop_items_skipped_total{loop="burst_sweep"}'
        failing = 'citybrain_loop_items_failing{loop="burst_sweep"}'
        first = scrape_sum(port, skipped)
        assert first >= 1 and scrape_sum(port, failing) == 1
        # More sweeps (one a second): counted at each, said once.
        deadline = time.monotonic() + 60
        while scrape_sum(port, skipped) <= first and time.monotonic() < deadline:
            time.sleep(0.5)
        assert scrape_sum(port, skipped) > first
        log = worker.log()
        said = [line for line in log.splitlines() if "at c-mill was left as it is" in line]
        assert len(said) == 1 and "ahead of the clock" in said[0], said
        assert "Traceback" not in log
    finally:
        worker.stop()
        p.close()
