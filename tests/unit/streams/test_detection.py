"""Per-batch detection: episodes, deterministic alert ids, delivery and event-time rules."""

from __future__ import annotations

import json

import numpy as np

from detectors import RobustZScore, ScoreThreshold
from streams.detection import Incoming, SensorDetection, alert_id_for
from streams.events import Reading

T0 = 1_700_000_000.0


def handler() -> SensorDetection:
    return SensorDetection(
        RobustZScore(window=48, min_samples=12), ScoreThreshold(0.6), quiet_readings=3
    )


def feed(values: list[float], sensor: str = "gauge-1", start: int = 0) -> list[Incoming]:
    return [
        Incoming(
            Reading(T0 + 300 * (start + i), sensor, "water_level", v, "ft", "c-bridge"),
            received_at=0.0,
            offset=start + i,
        )
        for i, v in enumerate(values)
    ]


def baseline(n: int, seed: int = 1) -> list[float]:
    return (2.0 + np.random.default_rng(seed).normal(0, 0.05, n)).tolist()


def test_one_alert_per_episode_then_resolved() -> None:
    values = [*baseline(40), 9.0, 9.5, 9.2, 8.8, *baseline(10, seed=2)]
    result = handler().process(feed(values), {})
    statuses = [(a.status, a.alert_id) for a in result.alerts]
    assert [s for s, _ in statuses] == ["firing", "resolved"]
    assert statuses[0][1] == statuses[1][1] == alert_id_for("gauge-1", T0 + 300 * 40)
    assert result.anomalies_by_kind == {"water_level": 4}
    assert result.states["gauge-1"]["episode"] is None


def test_same_result_whether_batched_or_streamed_one_by_one() -> None:
    values = [*baseline(40), 9.0, 9.5, *baseline(10, seed=2)]
    whole = handler().process(feed(values), {})
    h, state, alerts = handler(), None, []
    for item in feed(values):
        r = h.process([item], {"gauge-1": state})
        state = json.loads(json.dumps(r.states["gauge-1"]))  # as the faust table stores it
        alerts += r.alerts
    assert [a.to_dict() for a in alerts] == [a.to_dict() for a in whole.alerts]


def test_restored_state_needs_no_second_warm_up() -> None:
    h = handler()
    first = h.process(feed(baseline(40)), {})
    state = json.loads(json.dumps(first.states))
    # A fresh handler (a restarted worker) with the stored state flags the very next spike.
    after = handler().process(feed([9.0], start=40), state)
    assert [a.status for a in after.alerts] == ["firing"]
    without_state = handler().process(feed([9.0], start=40), {})
    assert without_state.alerts == []


def test_redelivered_offsets_are_skipped_without_a_second_alert() -> None:
    values = [*baseline(40), 9.0]
    first = handler().process(feed(values), {})
    assert len(first.alerts) == 1
    again = handler().process(feed(values), json.loads(json.dumps(first.states)))
    assert again.alerts == [] and again.redelivered == len(values) and again.rejected == []


def test_duplicate_event_time_dropped_and_older_dead_lettered() -> None:
    items = feed(baseline(20))
    dup = Incoming(items[-1].reading, 0.0, offset=100)
    old = Incoming(items[3].reading, 0.0, offset=101)
    result = handler().process([*items, dup, old], {})
    assert result.duplicates == 1
    assert [(i.offset, code) for i, code, _ in result.rejected] == [(101, "out_of_order")]
    assert "older than the sensor's last reading" in result.rejected[0][2]
    assert result.scored == 20


def test_sensors_are_independent() -> None:
    items = feed([*baseline(40), 9.0], "gauge-1") + feed(baseline(41, seed=5), "gauge-2")
    result = handler().process(items, {})
    assert {a.sensor_id for a in result.alerts} == {"gauge-1"}
    assert set(result.states) == {"gauge-1", "gauge-2"}
