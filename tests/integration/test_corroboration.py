"""Broken sensor or real event, on the real broker (issue 13 item 5): the two Dead Run
gauges' flood readings of 2019-05-10 come out corroborated and routed as a flood; Sligo
Creek's water-level gauge alone, with one spiking reading, comes out isolated and goes
to the sensor-check playbook.

The grid is the committed datasets/grid.yaml (the USGS sites and their kinds); the
detector is the mechanics tests' robust_zscore (tests/services.py), whose scores on these
inputs are checked first, so the test says which case it exercises.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from citybrain.stack import PrometheusServer
from detectors import RobustZScore
from streams.events import Reading, format_ts, parse_ts
from tests.services import ROOT, Pipeline

pytestmark = pytest.mark.integration

DATASETS = ROOT / "datasets"
DISCHARGE, LEVEL = "usgs-01589330-discharge", "usgs-01589330-water_level"
SLIGO = "usgs-01650800-water_level"
GRACE = 15  # seconds a lone alert waits for a neighbour here (30 by default)
# The decisive bar on robust_zscore's scale here (0.9 by default, on tail's): its scale
# is the gauges' own resolution since t93 (0.01 ft; 5 % of the level before), so the
# water level's first flood reading scores 0.956 (0.899 before) and the discharge's
# 0.991; the bar lies between them, as 0.9 did.
DECISIVE = 0.97


@pytest.fixture
def corroborating(stack: PrometheusServer, run_dir: Path) -> Iterator[Pipeline]:
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_GRID_FILE": str(DATASETS / "grid.yaml"),
            # The real policy (the mechanics tests make every alert decisive), with the
            # agreement bar on robust_zscore's scale: z at half the alert's.
            "CITYBRAIN_CORROBORATION_AGREE": "0.4",
            "CITYBRAIN_CORROBORATION_DECISIVE": str(DECISIVE),
            "CITYBRAIN_CORROBORATION_GRACE": str(GRACE),
        },
    )
    yield p
    p.close()


def slice_of(sensor_id: str, start: str, end: str) -> pd.DataFrame:
    frame = pd.read_csv(DATASETS / "usgs_flood_2019-05.csv.gz")
    rows = frame[frame["sensor_id"] == sensor_id]
    return rows[(rows["timestamp"] >= start) & (rows["timestamp"] < end)]


def readings(rows: pd.DataFrame) -> list[Reading]:
    return [
        Reading(parse_ts(r.timestamp), r.sensor_id, r.kind, float(r.value), r.unit, r.grid_cell)
        for r in rows.itertuples()
    ]


def scores(items: list[Reading]) -> np.ndarray:
    """The worker's detector on these readings (tests/services.py's settings)."""
    detector = RobustZScore(window=48, min_samples=12)
    return detector.score_many(np.array([r.value for r in items]), np.array([r.ts for r in items]))


def send(p: Pipeline, items: list[Reading]) -> None:
    for r in items:
        p.send("readings", r.sensor_id.encode(), r.to_json())
    p.flush()


def docs(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in messages]


def firing_of(messages: list[Any], sensor_id: str) -> list[dict[str, Any]]:
    return [d for d in docs(messages) if d["status"] == "firing" and d["sensor_id"] == sensor_id]


def runs(messages: list[Any]) -> dict[str, str]:
    """alert id -> playbook of every run created."""
    return {d["alert_id"]: d["playbook"] for d in docs(messages) if d["action"] == "run_created"}


def counted(p: Pipeline, *labels: str) -> float:
    """citybrain_alerts_corroboration_total summed over the series with ``labels``."""
    url = f"http://127.0.0.1:{p.settings.worker_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("citybrain_alerts_corroboration_total{")
        and all(label in line for label in labels)
    )


def test_the_dead_run_flood_is_corroborated_and_routed_as_a_flood(
    corroborating: Pipeline,
) -> None:
    p = corroborating
    level = readings(slice_of(LEVEL, "2019-05-10T00:00", "2019-05-11T00:00"))
    discharge = readings(slice_of(DISCHARGE, "2019-05-10T00:00", "2019-05-11T00:00"))
    # The water level's first flood alert is not decisive alone (0.956 at 20:40 UTC):
    # held for a neighbour. The discharge's is (0.991): it goes at once, so it is sent
    # second, when the water level's marks are in its area.
    level_scores, discharge_scores = scores(level), scores(discharge)
    first = int(np.argmax(level_scores >= 0.6))
    assert 0.6 <= level_scores[first] < DECISIVE <= discharge_scores.max()
    worker = p.worker().start()
    try:
        send(p, level)
        p.read(
            "corroboration",
            lambda m: any(
                d.get("type") == "alert" and d["alert"]["sensor_id"] == LEVEL for d in docs(m)
            ),
            timeout=90,
        )
        send(p, discharge)
        p.read(
            "corroboration",
            lambda m: any(
                d.get("type") == "alert" and d["alert"]["sensor_id"] == DISCHARGE for d in docs(m)
            ),
            timeout=90,
        )
        alerts = p.read(
            "alerts",
            lambda m: bool(firing_of(m, LEVEL)) and bool(firing_of(m, DISCHARGE)),
            timeout=90,
            settle=2,
        )
        flood = firing_of(alerts, LEVEL) + firing_of(alerts, DISCHARGE)
        for alert in flood:
            labels = alert["labels"]
            assert labels["corroboration"] == "corroborated", alert
            assert int(labels["neighbours_agreeing"]) >= 1
            assert labels["assessment"] == "event"
        # Released by the discharge's marks, not by the grace period.
        assert len({a["alert_id"] for a in flood}) == len(flood)  # no duplicates
        # One flood run for the street (flash-flood groups by street: the second alert
        # joins it), and nothing sent to sensor maintenance.
        ids = {a["alert_id"] for a in flood}
        steps = p.read("steps", lambda m: bool(ids & set(runs(m))), timeout=60, settle=3)
        assert set(runs(steps).values()) == {"flash-flood"}
        assert {d["playbook"] for d in docs(steps)} == {"flash-flood"}
        assert counted(p, 'label="corroborated"', 'assessment="event"') >= len(flood)
    finally:
        worker.stop()


def spiked_once(quiet: list[Reading], at: int) -> list[Reading]:
    """``quiet`` with reading ``at`` raised half again: one gauge's lone spike."""
    return [
        r if i != at else Reading(r.ts, r.sensor_id, r.kind, r.value * 1.5, r.unit, r.grid_cell)
        for i, r in enumerate(quiet)
    ]


def test_a_lone_spiking_gauge_is_isolated_and_sent_to_sensor_check(
    corroborating: Pipeline,
) -> None:
    p = corroborating
    quiet = readings(slice_of(SLIGO, "2019-05-06T00:00", "2019-05-07T00:00"))
    spike = 150
    faulty = spiked_once(quiet, spike)
    s = scores(faulty)
    # One alert, not decisive; nothing else in the day even leans anomalous.
    assert 0.6 <= s[spike] < DECISIVE and (s >= 0.4).sum() == 1  # (0.848; 0.73 before t93)
    worker = p.worker().start()
    try:
        send(p, faulty)
        alerts = p.read("alerts", lambda m: bool(firing_of(m, SLIGO)), timeout=60 + GRACE)
        (alert,) = firing_of(alerts, SLIGO)
        assert alert["started_at"] == format_ts(faulty[spike].ts)
        assert {k: alert["labels"][k] for k in ("corroboration", "neighbours_agreeing")} == {
            "corroboration": "isolated",
            "neighbours_agreeing": "0",
        }
        assert alert["labels"]["assessment"] == "suspected_sensor_fault"
        # Until its dispatch is read, not its run's creation: the dispatch may come in a
        # later read than the run (t93: seen once in three runs of this file).
        steps = p.read(
            "steps",
            lambda m: any(
                d["action"] == "dispatch" and d["alert_id"] == alert["alert_id"] for d in docs(m)
            ),
            timeout=60,
        )
        assert runs(steps)[alert["alert_id"]] == "sensor-check"
        dispatched = [
            d
            for d in docs(steps)
            if d["action"] == "dispatch" and d["alert_id"] == alert["alert_id"]
        ]
        assert [d["unit"] for d in dispatched] == ["sensor-maintenance"]
        assert counted(p, 'label="isolated"', 'assessment="suspected_sensor_fault"') == 1
    finally:
        worker.stop()


@pytest.fixture
def wide_ranges(stack: PrometheusServer, run_dir: Path) -> Iterator[Pipeline]:
    """``corroborating`` on the committed grid with water levels plausible up to
    DBL_MAX: a grid whose ranges let a sentinel through the door."""
    grid = run_dir / "grid-wide.yaml"
    grid.write_text(
        (DATASETS / "grid.yaml").read_text()
        + "kinds:\n- id: water_level\n  unit: ft\n"
        + "  min: -1.7976931348623157e308\n  max: 1.7976931348623157e308\n"
    )
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_GRID_FILE": str(grid),
            "CITYBRAIN_CORROBORATION_AGREE": "0.4",
            "CITYBRAIN_CORROBORATION_DECISIVE": str(DECISIVE),
            "CITYBRAIN_CORROBORATION_GRACE": str(GRACE),
        },
    )
    yield p
    p.close()


def test_a_lone_sentinel_is_a_suspected_sensor_fault_not_a_flood(wide_ranges: Pipeline) -> None:
    """t175, fails on the old code: a 1e308 sentinel scores 1, above the decisive bar,
    and went on at once as an event to flash-flood. Now its alert carries
    reading=far_glitch, waits for a neighbour, and goes to sensor-check."""
    p = wide_ranges
    quiet = readings(slice_of(SLIGO, "2019-05-06T00:00", "2019-05-07T00:00"))
    at = 150
    r = quiet[at]
    faulty = [*quiet[:at], Reading(r.ts, r.sensor_id, r.kind, 1e308, r.unit, r.grid_cell)]
    faulty += quiet[at + 1 :]
    s = scores(faulty)
    assert s[at] >= DECISIVE and (s >= 0.4).sum() == 1  # decisive by its score alone
    worker = p.worker().start()
    try:
        send(p, faulty)
        alerts = p.read("alerts", lambda m: bool(firing_of(m, SLIGO)), timeout=60 + GRACE)
        (alert,) = firing_of(alerts, SLIGO)
        assert alert["value"] == 1e308
        labels = alert["labels"]
        assert labels["reading"] == "far_glitch"
        assert (labels["corroboration"], labels["assessment"]) == (
            "isolated",
            "suspected_sensor_fault",
        )
        steps = p.read(
            "steps",
            lambda m: any(
                d["action"] == "dispatch" and d["alert_id"] == alert["alert_id"] for d in docs(m)
            ),
            timeout=60,
        )
        assert runs(steps)[alert["alert_id"]] == "sensor-check"
        assert counted(p, 'label="isolated"', 'assessment="suspected_sensor_fault"') == 1
    finally:
        worker.stop()


def committed_to_end(p: Pipeline, role: str) -> bool:
    """Whether the worker group has committed every offset of ``role``'s topic."""
    topic = p.topic(role)
    admin = KafkaAdminClient(bootstrap_servers=p.settings.kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=p.settings.kafka_bootstrap)
    try:
        parts = [TopicPartition(topic, n) for n in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        done = admin.list_group_offsets(p.name)[p.name]
    finally:
        consumer.close()
        admin.close()
    # A partition nothing was sent to has no committed offset to read.
    return bool(parts) and all(
        ends[tp] == 0 or (tp in done and done[tp].offset >= ends[tp]) for tp in parts
    )


def test_marks_recorded_before_a_sigkill_corroborate_an_alert_after_the_restart(
    corroborating: Pipeline,
) -> None:
    """A mark is recorded in its area's stored state and reaches the changelog at the next
    commit, not written through (a busy area rewrote its whole state per mark: issue 14).
    The discharge gauge's day up to the flood, its last two readings 12 % up (a mark,
    no alert: nothing else writes the area's state), is read and committed, the worker
    SIGKILLed; the water level's flood alert after the restart, not decisive alone, is
    corroborated at once by the marks the new owner recovered from the changelog."""
    p = corroborating
    level = readings(slice_of(LEVEL, "2019-05-10T00:00", "2019-05-11T00:00"))
    before = readings(slice_of(DISCHARGE, "2019-05-10T00:00", "2019-05-10T20:40"))
    discharge = [
        r
        if i < len(before) - 2
        else Reading(r.ts, r.sensor_id, r.kind, r.value * 1.12, r.unit, r.grid_cell)
        for i, r in enumerate(before)
    ]
    level_scores, discharge_scores = scores(level), scores(discharge)
    first = int(np.argmax(level_scores >= 0.6))
    assert 0.6 <= level_scores[first] < DECISIVE
    assert (discharge_scores >= 0.4).sum() >= 1 and discharge_scores.max() < 0.6
    worker = p.worker().start()
    try:
        send(p, discharge)
        p.read(
            "corroboration",
            lambda m: any(d.get("type") == "mark" and d["sensor_id"] == DISCHARGE for d in docs(m)),
            timeout=90,
        )
        deadline = time.monotonic() + 90
        while not committed_to_end(p, "corroboration"):
            assert time.monotonic() < deadline, "the corroboration topic was never committed"
            time.sleep(0.5)
        worker.kill()
        worker = p.worker().start()
        send(p, level)
        alerts = p.read("alerts", lambda m: bool(firing_of(m, LEVEL)), timeout=90, settle=2)
        (alert,) = firing_of(alerts, LEVEL)
        assert alert["labels"]["corroboration"] == "corroborated", alert
        assert int(alert["labels"]["neighbours_agreeing"]) >= 1
        assert alert["labels"]["assessment"] == "event"
    finally:
        worker.stop()


def test_an_alert_held_for_its_grace_when_the_worker_is_sigkilled_fires_once_after_it(
    corroborating: Pipeline,
) -> None:
    """t167: a lone gauge's alert is held for the corroboration grace (a neighbour may
    agree) when its worker is SIGKILLed, after the held alert's read was committed: the
    restarted worker holds it still (recovered from the changelog, not read again) and
    releases it once the grace is over, as isolated, to sensor-check: one alert, one run,
    one dispatch."""
    p = corroborating
    quiet = readings(slice_of(SLIGO, "2019-05-06T00:00", "2019-05-07T00:00"))
    spike = 150
    faulty = spiked_once(quiet, spike)
    worker = p.worker().start()
    try:
        send(p, faulty)
        p.read(
            "corroboration",
            lambda m: any(
                d["type"] == "alert" and d["alert"]["sensor_id"] == SLIGO for d in docs(m)
            ),
            timeout=60,
        )
        deadline = time.monotonic() + 60
        while not committed_to_end(p, "corroboration"):
            assert time.monotonic() < deadline, "the corroboration topic was never committed"
            time.sleep(0.3)
        held_since = time.monotonic()
        worker.kill()
        assert not p.end_offsets("alerts") or not any(p.end_offsets("alerts").values())
        worker = p.worker().start()
        alerts = p.read("alerts", lambda m: bool(firing_of(m, SLIGO)), timeout=60 + GRACE)
        (alert,) = firing_of(alerts, SLIGO)
        assert time.monotonic() - held_since >= GRACE - 5  # held, not released at the kill
        assert alert["labels"]["corroboration"] == "isolated", alert
        steps = p.read(
            "steps",
            lambda m: any(
                d["action"] == "dispatch" and d["alert_id"] == alert["alert_id"] for d in docs(m)
            ),
            timeout=60,
            settle=3,
        )
        assert runs(steps) == {alert["alert_id"]: "sensor-check"}
        dispatched = {d["id"] for d in docs(steps) if d["action"] == "dispatch"}
        assert len(dispatched) == 1, docs(steps)
        assert len(firing_of(p.read("alerts", lambda m: True, settle=2), SLIGO)) == 1
    finally:
        worker.stop()


TWIN = "usgs-01650800-water_level-twin"  # the same gauge registered a second time


@pytest.fixture
def twinned(stack: PrometheusServer, run_dir: Path) -> Iterator[Pipeline]:
    """``corroborating`` on the committed grid with Sligo Creek's water-level gauge
    registered twice, under a second id at its site (its readings duplicated)."""
    grid = run_dir / "grid-twin.yaml"
    grid.write_text(
        (DATASETS / "grid.yaml").read_text()
        + f"- id: {TWIN}\n  kind: water_level\n  unit: ft\n  cell: md-gauge-01650800\n"
    )
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_GRID_FILE": str(grid),
            "CITYBRAIN_CORROBORATION_AGREE": "0.4",
            "CITYBRAIN_CORROBORATION_DECISIVE": str(DECISIVE),
            "CITYBRAIN_CORROBORATION_GRACE": str(GRACE),
        },
    )
    yield p
    p.close()


def test_one_gauge_under_two_ids_is_one_witness_not_a_flood(twinned: Pipeline) -> None:
    """t199, fails on the old code: one gauge registered under two ids, its lone spike
    duplicated. Each id's mark corroborated the other's alert: both went on
    ``corroborated``, ``event``, and a street unit was paged for a flood one device saw.
    Now each mark carries its reading's value, and a neighbour whose readings are the
    alert's own is no witness: both alerts go on isolated, to sensor-check."""
    p = twinned
    quiet = readings(slice_of(SLIGO, "2019-05-06T00:00", "2019-05-07T00:00"))
    spike = 150
    faulty = spiked_once(quiet, spike)
    s = scores(faulty)
    assert 0.6 <= s[spike] < DECISIVE and (s >= 0.4).sum() == 1
    twin = [Reading(r.ts, TWIN, r.kind, r.value, r.unit, r.grid_cell) for r in faulty]
    worker = p.worker().start()
    try:
        send(p, [r for pair in zip(faulty, twin, strict=True) for r in pair])
        marks = p.read(
            "corroboration",
            lambda m: (
                {d.get("sensor_id") for d in docs(m) if d.get("type") == "mark"} >= {SLIGO, TWIN}
            ),
            timeout=90,
        )
        alerts = p.read(
            "alerts",
            lambda m: bool(firing_of(m, SLIGO)) and bool(firing_of(m, TWIN)),
            timeout=60 + 2 * GRACE,
            settle=2,
        )
        for sensor_id in (SLIGO, TWIN):
            (alert,) = firing_of(alerts, sensor_id)
            labels = alert["labels"]
            assert (labels["corroboration"], labels["neighbours_agreeing"]) == ("isolated", "0")
            assert labels["assessment"] == "suspected_sensor_fault"
        assert counted(p, 'label="corroborated"') == 0
        assert counted(p, 'label="isolated"', 'assessment="suspected_sensor_fault"') == 2
        values = {d.get("value") for d in docs(marks) if d.get("type") == "mark"}
        assert values == {faulty[spike].value}  # the reading's value crossed the broker
    finally:
        worker.stop()


TURBIDITY = "usgs-01650800-turbidity"


def test_a_probe_isolated_as_a_suspect_is_no_witness_for_its_site_s_gauge(
    corroborating: Pipeline,
) -> None:
    """t199, fails on the old code: Sligo Creek's turbidity probe's day of 2019-05-06
    alerts alone (13:20 and 15:05 UTC, not decisive) and goes on as a suspected sensor
    fault in the turbidity area. The site's water level, raised once at 12:30, is
    assessed in its own area, where the probe's marks (13:15 on) still counted: the
    suspect corroborated the gauge. Now the probe's suspect notes cross the broker to
    the level's area, and the level's alert goes on isolated, to sensor-check."""
    p = corroborating
    probe = readings(slice_of(TURBIDITY, "2019-05-06T00:00", "2019-05-07T00:00"))
    s = scores(probe)
    assert np.flatnonzero(s >= 0.6).tolist() == [160, 161, 181, 182, 183] and s.max() < DECISIVE
    quiet = readings(slice_of(SLIGO, "2019-05-06T00:00", "2019-05-07T00:00"))
    level = spiked_once(quiet, 150)
    assert probe[159].ts - level[150].ts == 2700  # the probe's first mark, 45 min later
    worker = p.worker().start()
    try:
        send(p, probe)
        p.read(
            "alerts",
            lambda m: len(firing_of(m, TURBIDITY)) == 2,
            timeout=90 + GRACE,
        )
        notes = p.read(
            "corroboration",
            lambda m: any(d.get("type") == "suspect" for d in docs(m)),
            timeout=30,
        )
        assert {d["sensor_id"] for d in docs(notes) if d.get("type") == "suspect"} == {TURBIDITY}
        send(p, level)
        alerts = p.read("alerts", lambda m: bool(firing_of(m, SLIGO)), timeout=60 + GRACE)
        (alert,) = firing_of(alerts, SLIGO)
        labels = alert["labels"]
        assert (labels["corroboration"], labels["neighbours_agreeing"]) == ("isolated", "0")
        assert labels["assessment"] == "suspected_sensor_fault"
    finally:
        worker.stop()
