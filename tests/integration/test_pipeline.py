"""The foundation loop on the real local Kafka: detection, alerts, dead letters, restarts,
escalation, and Prometheus scraping the worker.

The baseline is real: Sligo Creek's water level from the committed USGS slice, replayed as
sensor ``gauge-1`` of the test grid, with a spike injected where the test needs one.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from citybrain.stack import PrometheusServer
from streams.events import Reading, format_ts
from streams.partitioning import ReadingPacker, key_partition, pack_key
from tests.services import ROOT, Pipeline, prometheus_query, scrape_sum, start_of_hour

pytestmark = pytest.mark.integration

START = start_of_hour(10)  # inside the sanity bounds


def real_levels(n: int) -> list[float]:
    frame = pd.read_csv(ROOT / "datasets" / "usgs_flood_2019-05.csv.gz")
    series = frame[frame["sensor_id"] == "usgs-01650800-water_level"]["value"]
    return [float(v) for v in series.head(n)]


# The test grid's sensors (tests/fixtures/grid.yaml): kind, unit, cell.
SENSORS = {
    "gauge-1": ("water_level", "ft", "c-bridge"),
    "gauge-2": ("water_level", "ft", "c-mill"),
    "air-1": ("pm25", "ug/m3", "c-top"),
}


def reading(i: int, value: float, sensor: str = "gauge-1") -> Reading:
    kind, unit, cell = SENSORS[sensor]
    return Reading(START + 300 * i, sensor, kind, value, unit, cell)


def send_readings(
    p: Pipeline, values: list[float], start: int = 0, sensor: str = "gauge-1"
) -> None:
    for i, v in enumerate(values, start=start):
        p.send("readings", sensor.encode(), reading(i, v, sensor).to_json())
    p.flush()


def docs(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in messages]


def firing(messages: list[Any]) -> list[dict[str, Any]]:
    return [d for d in docs(messages) if d["status"] == "firing"]


def steps_of(messages: list[Any], action: str) -> list[dict[str, Any]]:
    return [d for d in docs(messages) if d["action"] == action]


def test_injected_spike_gives_exactly_one_alert_and_one_run(pipeline: Pipeline) -> None:
    worker = pipeline.worker().start()
    try:
        base = real_levels(60)
        send_readings(pipeline, [*base, base[-1] * 8, base[-1] * 9, base[-1] * 8.5, *base[:10]])
        alerts = pipeline.read("alerts", lambda m: len(m) >= 2, settle=3)
        assert [d["status"] for d in docs(alerts)] == ["firing", "resolved"]
        alert = firing(alerts)[0]
        assert (alert["sensor_id"], alert["grid_cell"]) == ("gauge-1", "c-bridge")
        assert alert["started_at"] == format_ts(START + 300 * 60)
        steps = pipeline.read("steps", lambda m: len(steps_of(m, "notify")) >= 1, settle=1)
        notify = steps_of(steps, "notify")
        assert len(notify) == 1
        assert (notify[0]["alert_id"], notify[0]["unit"]) == (
            alert["alert_id"],
            "bridge community station",
        )
    finally:
        worker.stop()


MALFORMED: list[tuple[bytes, str]] = [
    (b"{not json", "bad_json"),
    (json.dumps({"schema": "reading/1", "sensor_id": "gauge-1"}).encode(), "missing_field"),
    (reading(1, 1.0).to_json().replace(b'"value":1.0', b'"value":"high"'), "bad_type"),
    (reading(1, 1.0).to_json().replace(b'"value":1.0', b'"value":NaN'), "not_finite"),
    (reading(1, 1.0).to_json().replace(b"water_level", b"lava_flow"), "unknown_kind"),
    (reading(1, 1.0).to_json().replace(b"c-bridge", b"c-atlantis"), "unknown_cell"),
    (reading(1, 1.0).to_json().replace(b"gauge-1", b"gauge-99"), "unknown_sensor"),
    (
        Reading(time.time() + 86400, "gauge-1", "water_level", 1.0, "ft", "c-bridge").to_json(),
        "in_future",
    ),
    (Reading(0.0, "gauge-1", "water_level", 1.0, "ft", "c-bridge").to_json(), "too_old"),
]


def test_malformed_events_land_on_the_dead_letter_topic_with_reasons(pipeline: Pipeline) -> None:
    worker = pipeline.worker().start()
    try:
        for raw, _ in MALFORMED:
            pipeline.send("readings", b"gauge-1", raw)
        pipeline.send("incidents", b"c-bridge", b'{"schema": "incident/1"}')
        pipeline.flush()
        # An out-of-order reading after two good ones, then a good one: the worker goes on.
        send_readings(pipeline, [1.0, 1.1], start=100)
        send_readings(pipeline, [1.05], start=50)
        # The last reading again (a duplicate: dropped), then at its time another value
        # (conflicting: refused, where it was dropped as a duplicate and lost).
        send_readings(pipeline, [1.1], start=101)
        send_readings(pipeline, [7.7], start=101)
        dead = pipeline.read("deadletter", lambda m: len(m) >= len(MALFORMED) + 3, settle=2)
        by_stream: dict[str, list[Any]] = {}
        for m in dead:
            by_stream.setdefault(dict(m.headers)["citybrain.error.stream"].decode(), []).append(m)
        readings = by_stream["readings"]
        headers = [dict(m.headers) for m in readings]
        reasons = [h["citybrain.error.reason"].decode() for h in headers]
        assert reasons == [code for _, code in MALFORMED] + ["out_of_order", "conflicting_reading"]
        assert "already with the value 1.1" in headers[-1]["citybrain.error.message"].decode()
        [incident] = by_stream["incidents"]
        assert dict(incident.headers)["citybrain.error.reason"] == b"missing_field"
        # The original bytes are kept, and the message names the field and value.
        assert [m.value for m in readings[: len(MALFORMED)]] == [raw for raw, _ in MALFORMED]
        assert "field \"value\" is 'high'" in headers[2]["citybrain.error.message"].decode()
        assert headers[0]["citybrain.error.origin"].decode().startswith(pipeline.topic("readings"))
        # Every dead letter carries the four documented headers, detection's out_of_order too.
        documented = {f"citybrain.error.{h}" for h in ("stream", "reason", "message", "origin")}
        assert all(documented <= set(dict(m.headers)) for m in dead)
        assert worker.alive()
    finally:
        worker.stop()


def test_packed_readings_alert_like_single_ones_and_bad_ones_go_alone(
    pipeline: Pipeline,
) -> None:
    """Edge-gateway packs (readings/1): each sensor's spike alerts once; a bad reading and
    one on the wrong partition are dead-lettered with their place, the rest of the pack
    is processed."""
    worker = pipeline.worker().start()
    try:
        base = real_levels(60)
        values = [*base, base[-1] * 8]
        readings = [reading(i, v, s) for i, v in enumerate(values) for s in ("gauge-1", "gauge-2")]
        packer = ReadingPacker(pipeline.settings.partitions, 25)
        messages = list(packer.pack_all(readings))
        home = key_partition(b"gauge-1", pipeline.settings.partitions)
        # gauge-2 lives on the other partition: in gauge-1's pack it is refused.
        assert key_partition(b"gauge-2", pipeline.settings.partitions) != home
        mixed = {
            "schema": "readings/1",
            "readings": [
                {**json.loads(reading(70, base[0]).to_json()), "value": "high"},
                json.loads(reading(70, base[0], "gauge-2").to_json()),
                json.loads(reading(71, base[0]).to_json()),
            ],
        }
        messages.append((home, pack_key(home, 2), json.dumps(mixed).encode()))
        for partition, key, value in messages:
            pipeline.producer.send(
                pipeline.topic("readings"), key=key, value=value, partition=partition
            )
        pipeline.flush()
        alerts = pipeline.read("alerts", lambda m: len(firing(m)) >= 2, settle=2)
        fired = sorted((d["sensor_id"], d["started_at"]) for d in firing(alerts))
        assert fired == [(s, format_ts(START + 300 * 60)) for s in ("gauge-1", "gauge-2")]
        # Keyed by sensor id, the two land on different partitions of the dead-letter
        # topic: read in the order of their place in the pack, not of arrival.
        dead = pipeline.read("deadletter", lambda m: len(m) >= 2, settle=2)
        dead.sort(key=lambda m: dict(m.headers)["citybrain.error.origin"])
        headers = [dict(m.headers) for m in dead]
        assert [h["citybrain.error.reason"] for h in headers] == [b"bad_type", b"wrong_partition"]
        origins = [h["citybrain.error.origin"].decode() for h in headers]
        assert [o.rsplit("#", 1)[1] for o in origins] == ["0", "1"]
        assert "readings[0].value" in headers[0]["citybrain.error.message"].decode()
        assert json.loads(dead[1].value)["sensor_id"] == "gauge-2"
        # Every good reading was scored, the pack's third one too.
        expected = len(readings) + 1
        port = int(pipeline.env["CITYBRAIN_WORKER_PORT"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            total = scrape_sum(port, "citybrain_readings_total")
            if total >= expected:
                break
            time.sleep(0.5)
        assert total == expected
    finally:
        worker.stop()


def test_sigkill_and_restart_keep_detector_state_and_raise_no_duplicate(
    pipeline: Pipeline,
) -> None:
    base = real_levels(80)
    worker = pipeline.worker().start()
    send_readings(pipeline, base[:40])
    send_readings(pipeline, [base[39] * 8], start=40)
    pipeline.read("steps", lambda m: len(steps_of(m, "notify")) == 1)
    # SIGKILL right after the alert, before faust's periodic offset commit.
    worker.kill()
    worker = pipeline.worker().start()
    try:
        # Right after the restart (no second warm-up) a new spike on a calmer stretch is
        # detected: impossible for a detector that lost its 41 readings of history.
        send_readings(pipeline, base[41:50], start=41)
        send_readings(pipeline, [base[49] * 9], start=50)
        alerts = pipeline.read("alerts", lambda m: len(firing(m)) >= 2, settle=4)
        # Alerts are keyed by id over two partitions: order them by event time.
        ids = [d["alert_id"] for d in sorted(firing(alerts), key=lambda d: d["started_at"])]
        assert len(ids) == len(set(ids)) == 2
        # Same sensor, same street: the second alert joins the open flash-flood run.
        steps = pipeline.read("steps", lambda m: bool(steps_of(m, "alert_joined")), settle=2)
        # One run. Steps are delivered before the run's state is stored, so a kill inside
        # that produce round trip re-emits the run's first steps under the same ids
        # (docs/operations.md, delivery guarantees): count ids, not messages.
        created = steps_of(steps, "run_created")
        assert len({(d["run_id"], d["id"]) for d in created}) == 1
        assert [d["detail"] for d in steps_of(steps, "alert_joined")] == [ids[1]]
    finally:
        worker.stop()


def test_deadline_fires_exactly_once_after_sigkill_during_the_wait(
    run_dir: Path, stack: PrometheusServer
) -> None:
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_ACK_DEADLINE_SECONDS": "8"})
    try:
        worker = p.worker().start()
        base = real_levels(40)
        send_readings(p, [*base, base[-1] * 8])
        p.read("steps", lambda m: bool(steps_of(m, "wait_ack")), settle=1)
        worker.kill()  # mid-wait: the deadline lives only in the changelog-backed table
        worker = p.worker().start()
        try:
            steps = p.read("steps", lambda m: bool(steps_of(m, "escalate")), timeout=40, settle=4)
            assert len(steps_of(steps, "escalate")) == 1
            assert len(steps_of(steps, "timeout")) == 1
        finally:
            worker.stop()
    finally:
        p.close()


def test_prometheus_scrapes_the_workers_domain_metrics(
    pipeline: Pipeline, stack: PrometheusServer
) -> None:
    worker = pipeline.worker().start()
    try:
        base = real_levels(40)
        send_readings(pipeline, [*base, base[-1] * 8])
        pipeline.send("readings", b"gauge-1", b"garbage")
        pipeline.flush()
        pipeline.read("alerts", lambda m: bool(firing(m)))
        job = f'job="citybrain-worker",instance="127.0.0.1:{pipeline.settings.worker_port}"'
        queries = {
            f"sum(citybrain_readings_total{{{job}}})": 41,
            f"sum(citybrain_anomalies_total{{{job}}})": 1,
            f'sum(citybrain_alerts_total{{{job},level="community"}})': 1,
            f'sum(citybrain_dead_letters_total{{{job},reason="bad_json"}})': 1,
            f"sum(citybrain_playbook_runs_total{{{job}}})": 1,
            f"sum(citybrain_event_to_alert_seconds_count{{{job}}})": 1,
            f"sum(faust_messages_received_total{{{job}}})": 42,
        }
        deadline = time.monotonic() + 30
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            for q in queries:
                result = prometheus_query(stack.url, q)
                seen[q] = float(result[0]["value"][1]) if result else 0.0
            if all(seen[q] >= want for q, want in queries.items()):
                break
            time.sleep(0.2)  # Prometheus scrapes each second; polling as often overshot it
        assert {q: seen[q] >= want for q, want in queries.items()} == dict.fromkeys(
            queries, True
        ), seen
        # The page filtered by name[] (as client_python's is; bench/catchup.py asks so)
        # holds those samples alone, as the whole page has them.
        url = f"http://127.0.0.1:{pipeline.settings.worker_port}/metrics"
        names = ("citybrain_readings_total", "citybrain_dead_letters_total")
        query = urllib.parse.urlencode([("name[]", name) for name in names])
        pages = []
        for page in (url, f"{url}?{query}"):
            with urllib.request.urlopen(page, timeout=5) as resp:
                lines = resp.read().decode().splitlines()
            pages.append(sorted(x for x in lines if x.startswith(names)))
        whole, filtered = pages
        assert len(filtered) >= 2 and filtered == whole
        with urllib.request.urlopen(f"{url}?{query}", timeout=5) as resp:
            samples = [x for x in resp.read().decode().splitlines() if not x.startswith("#")]
        assert sorted(samples) == filtered
    finally:
        worker.stop()
