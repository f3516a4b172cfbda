"""A sensor that dies in the middle of an episode (a gauge swept away by the flood it
reports) never sends the readings that would end it: its alert stayed firing, its group
and run open for good, and the group retention never applied. Now, once the worker's
other sensors have reported ``CITYBRAIN_NO_DATA_TIMEOUT`` seconds of event time past its
last reading, the alert is resolved with ``resolved_by: no_data`` and an annotation that
says the sensor is silent, audited and counted; a restarted worker does it from its
changelog, and does it once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from tests.integration.test_pipeline import docs, real_levels, send_readings
from tests.services import OPERATOR_TOKEN, Pipeline, Worker

pytestmark = pytest.mark.integration
TIMEOUT = 1200  # event-time seconds: four of the test readings' 300-second steps


@pytest.fixture
def pipeline(stack: PrometheusServer, run_dir: Path) -> Iterator[Pipeline]:
    # One readings partition: the rule compares a sensor with the sensors of its kind on
    # its own partition (streams.ingest.silent_sensors), and with two the test grid's
    # gauges would sit on different ones.
    p = Pipeline(
        run_dir,
        partitions=1,
        extra_env={
            "CITYBRAIN_ACK_DEADLINE_SECONDS": "3",
            "CITYBRAIN_NO_DATA_TIMEOUT": str(TIMEOUT),
            "CITYBRAIN_BURST_SWEEP_INTERVAL": "1",
        },
    )
    yield p
    p.close()


def no_data(messages: list[object]) -> list[dict[str, object]]:
    return [d for d in docs(messages) if d.get("resolved_by") == "no_data"]


def test_a_sensor_silent_in_an_episode_has_its_alert_resolved_for_no_data_once(
    pipeline: Pipeline,
) -> None:
    base = real_levels(60)
    # A worker that never resolves for no data (the timeout off) sees gauge-1 spike and
    # fall silent while gauge-2 goes on reporting for 5 hours of event time.
    log = pipeline.run_dir / f"{pipeline.name}-worker-off.log"
    worker = Worker({**pipeline.env, "CITYBRAIN_NO_DATA_TIMEOUT": "0"}, log).start()
    try:
        send_readings(pipeline, [*base[:40], base[39] * 8], sensor="gauge-1")
        send_readings(pipeline, base, sensor="gauge-2")
        alerts = pipeline.read("alerts", lambda m: any(d["status"] == "firing" for d in docs(m)))
        [fired] = [d for d in docs(alerts) if d["status"] == "firing"]
        assert fired["sensor_id"] == "gauge-1"
        pipeline.read("steps", lambda m: any(d["action"] == "run_created" for d in docs(m)))
    finally:
        worker.stop()
    # The worker restarted with the timeout: no new reading comes, the changelog says
    # gauge-2 reported 19 steps past gauge-1's last reading.
    worker = pipeline.worker().start()
    try:
        alerts = pipeline.read("alerts", lambda m: bool(no_data(m)))
        [resolved] = no_data(alerts)
        assert (resolved["alert_id"], resolved["status"]) == (fired["alert_id"], "resolved")
        assert "sensor gauge-1 sent no reading since " in str(resolved["annotation"])
        assert "the sensor is silent" in str(resolved["annotation"])
        audit = pipeline.read(
            "audit", lambda m: any(d.get("action") == "alert_resolved_no_data" for d in docs(m))
        )
        [said] = [d for d in docs(audit) if d.get("action") == "alert_resolved_no_data"]
        assert said["alert_id"] == fired["alert_id"]
        # The run's group sees its alert ended: the alerts API no longer lists it firing.
        status, body = pipeline.api_until(
            "/alerts", OPERATOR_TOKEN, lambda s, b: s == 200 and not b.get("firing")
        )
        assert (status, body["firing"]) == (200, [])
        # More readings of gauge-2: later sweeps find no open episode to resolve again.
        send_readings(pipeline, base[:10], start=60, sensor="gauge-2")
        alerts = pipeline.read("alerts", lambda m: bool(no_data(m)))
    finally:
        worker.stop()
    # A second restart: gauge-1's episode is closed in the changelog, not resolved again.
    # gauge-1 comes back, spikes again and falls silent again while gauge-2 reports on:
    # that new episode's resolution shows the sweeps have run. air-1 (another kind, on a
    # clock of its own: no pm25 sensor reports past it) stays firing.
    worker = pipeline.worker().start()
    try:
        send_readings(pipeline, [*base[:30], base[29] * 9], sensor="air-1")
        send_readings(pipeline, [*base[:20], base[19] * 20], start=41, sensor="gauge-1")
        send_readings(pipeline, base[:30], start=80, sensor="gauge-2")
        alerts = pipeline.read("alerts", lambda m: len(no_data(m)) >= 2)
        # Until the routing stage has taken gauge-1's second resolution too: the first
        # answer with anything firing could come between the two.
        status, body = pipeline.api_until(
            "/alerts",
            OPERATOR_TOKEN,
            lambda s, b: s == 200 and [a["sensor_id"] for a in b.get("firing", [])] == ["air-1"],
        )
    finally:
        worker.stop()
    again = no_data(alerts)
    assert [d["sensor_id"] for d in again] == ["gauge-1", "gauge-1"]
    assert again[0]["alert_id"] == fired["alert_id"] != again[1]["alert_id"]
    assert [a["sensor_id"] for a in body["firing"]] == ["air-1"]
