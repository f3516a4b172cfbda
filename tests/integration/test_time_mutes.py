"""Time intervals on the real Kafka (t97): a route muted by its time intervals opens its
group's run but notifies nobody, says so once in a ``notification_held`` step, and keeps
that across a worker restart (one run, still held); a route beside it notifies at once.
When a mute ends is tested with a clock of the test's own in
tests/unit/streams/test_time_mutes.py (here, an interval that always holds and a
named interval with no intervals, which never does, keep the test free of the hour)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_pipeline import docs, steps_of
from tests.integration.test_silences import burst_alert, runs_by_alert
from tests.services import Pipeline

pytestmark = pytest.mark.integration

ROUTING = """version: 1
route:
  playbook: sensor-anomaly
  group_by: [alert_id]
  group_wait: 0s
  routes:
    - matchers: ['category="Noise - Vehicle"']
      playbook: citizen-report-burst
      mute_time_intervals: [always]
    - matchers: ['category="Graffiti"']
      playbook: citizen-report-burst
      active_time_intervals: [never]
    - matchers: ['source="citizen"']
      playbook: citizen-report-burst
time_intervals:
  - name: always
    time_intervals: [{}]
  - name: never
"""


def held(messages: list[Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for step in steps_of(messages, "notification_held"):
        found.setdefault(step["alert_id"], []).append(step["detail"])
    return found


def notified(messages: list[Any]) -> set[str]:
    return {d["alert_id"] for d in docs(messages) if d.get("action") == "notify"}


def test_a_time_muted_route_opens_its_run_held_and_keeps_it_held_over_a_restart(
    pipeline: Pipeline,
) -> None:
    routing = pipeline.run_dir / f"{pipeline.name}-routing.yaml"
    routing.write_text(ROUTING)
    pipeline.env["CITYBRAIN_ROUTING_FILE"] = str(routing)
    p = pipeline
    worker = p.worker().start()
    try:
        p.send("alerts", b"al-noise", burst_alert("al-noise", "Noise - Vehicle", "c-mill"))
        p.send("alerts", b"al-graffiti", burst_alert("al-graffiti", "Graffiti", "c-top"))
        p.send("alerts", b"al-park", burst_alert("al-park", "Illegal Parking", "c-bridge"))
        p.flush()
        steps = p.read(
            "steps",
            lambda m: len(held(m)) == 2 and "al-park" in notified(m),
            settle=4,
        )
        assert held(steps) == {
            "al-noise": ["route root.0 is in its mute time interval 'always'"],
            "al-graffiti": ["route root.1 is outside its active time intervals 'never'"],
        }
        assert notified(steps) == {"al-park"}
        assert sorted(runs_by_alert(steps)) == ["al-graffiti", "al-noise", "al-park"]
    finally:
        worker.stop()
    # Restarted: the held runs are read back held; no second run, no notification.
    worker = p.worker().start()
    try:
        p.send("alerts", b"al-after", burst_alert("al-after", "Illegal Parking", "c-top"))
        p.flush()
        steps = p.read("steps", lambda m: "al-after" in notified(m), settle=4)
        assert notified(steps) == {"al-park", "al-after"}
        assert all(len(r) == 1 for r in runs_by_alert(steps).values())
        assert "Crashed" not in worker.log() and "Traceback" not in worker.log()
    finally:
        worker.stop()
