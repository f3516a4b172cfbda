"""The readings agent's counts per batch (``Ingest._count_readings``) from detection's
results: readings by kind and by cell, and the per-sensor value and score series, kept
for watched sensors and sensors in an alert episode and removed when the episode ends
(detection reports only those sensors' last readings: ``SensorDetection.follow``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from detectors import DEFAULT_THRESHOLD, ScoreThreshold, TailDetector
from playbooks.grid import Grid
from streams.detection import Incoming, SensorDetection
from streams.events import Reading
from streams.ingest import FeedClock, Ingest
from streams.metrics import CELL_READINGS, READINGS, SENSOR_VALUE, Metrics
from streams.partitioning import sensor_partition

T0 = 1_700_000_000.0


def counting_ingest(grid: Grid, watch: set[str]) -> tuple[Any, CollectorRegistry]:
    """An ``Ingest`` with only what ``_count_readings`` reads (no app, no Kafka)."""
    registry = CollectorRegistry()
    ingest: Any = Ingest.__new__(Ingest)
    ingest.grid, ingest.metrics = grid, Metrics.create(registry)
    ingest.detection = SensorDetection(
        TailDetector(), ScoreThreshold(DEFAULT_THRESHOLD), quiet_readings=3
    )
    ingest.ctx = SimpleNamespace(cell_path=lambda cell, grid=None: ("d", "s", cell))
    ingest._watch, ingest._exported = set(watch), {}
    ingest._partitions = 2
    ingest.feeds = FeedClock()  # read by _count_readings since de3cd5a (CitybrainFeedSilent)
    ingest.detection.follow.update(watch)
    return ingest, registry


def test_series_follow_episodes_and_watched_sensors_and_counts_add_up(grid: Grid) -> None:
    ingest, registry = counting_ingest(grid, {"gauge-2"})
    states: dict[str, Any] = {}
    exported_while: list[bool] = []
    fired = resolved = 0
    for i in range(140):
        batch = []
        for k, (sensor, cell) in enumerate((("gauge-1", "c-bridge"), ("gauge-2", "c-mill"))):
            value = 2.0 + 0.05 * np.sin(i / 3 + k) + 0.01 * ((i * 7 + k) % 5)
            if sensor == "gauge-1" and 100 <= i < 103:
                value += 6.0
            reading = Reading(T0 + 300 * i, sensor, "water_level", value, "ft", cell)
            batch.append(Incoming(reading, 0.0, offset=2 * i + k))
        result = ingest.detection.process(batch, states)
        states.update(result.states)
        ingest._count_readings([None] * len(batch), result, 0.0, grid)
        fired += sum(a.status == "firing" for a in result.alerts)
        resolved += sum(a.status == "resolved" for a in result.alerts)
        value_of = registry.get_sample_value(
            SENSOR_VALUE, {"sensor_id": "gauge-1", "kind": "water_level"}
        )
        exported_while.append(value_of is not None)
        # The watched sensor's series is there from its first reading on.
        assert registry.get_sample_value(
            SENSOR_VALUE, {"sensor_id": "gauge-2", "kind": "water_level"}
        ) == float(batch[1].reading.value)
    assert fired == resolved == 1
    # gauge-1's series: absent before its episode, present during it, removed after.
    start = exported_while.index(True)
    stop = start + exported_while[start:].index(False)
    assert 100 <= start < 103 and stop < 140 and not any(exported_while[stop:])
    assert "gauge-1" not in ingest.detection.follow and "gauge-2" in ingest.detection.follow
    assert registry.get_sample_value(READINGS, {"kind": "water_level"}) == 280
    for cell in ("c-bridge", "c-mill"):
        labels = {"district": "d", "street": "s", "community": cell}
        assert registry.get_sample_value(CELL_READINGS, labels) == 140


def test_a_sensor_forgotten_with_its_partition_is_no_longer_followed(grid: Grid) -> None:
    ingest, _ = counting_ingest(grid, {"gauge-2"})
    ingest._exported.update({"gauge-1": "water_level", "gauge-2": "water_level"})
    ingest.detection.follow.add("gauge-1")
    lost = {sensor_partition("gauge-1", 2), sensor_partition("gauge-2", 2)}
    assert ingest.forget_sensors(lost) == 2
    # The watched sensor stays followed (its readings may come back here).
    assert ingest.detection.follow == {"gauge-2"} and ingest._exported == {}
