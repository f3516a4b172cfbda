"""The no-data sweep's rule (``streams.ingest.silent_sensors``): a sensor is silent in its
episode once the sensors of its kind on its own readings partition have reported the
timeout past its last reading. One clock per kind across partitions resolved, in a
catch-up, the alerts of a lagging partition's sensors whose readings were still waiting
there (a partition read hours of event time ahead of the other)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from detectors.tail import TailDetector, mean_interval
from streams.ingest import NO_DATA_MISSED, ahead_of, silent_sensors

HOUR = 3600.0
T = 1_800_000_000.0
KINDS = {"gauge-a": "water_level", "gauge-b": "water_level", "gauge-c": "water_level"}
KINDS |= {"air-1": "pm25"}


def state(last: float, episode: bool = False, detector: Any = None) -> dict[str, Any]:
    return {
        "detector": detector,
        "last_ts": last,
        "episode": {"alert_id": "x"} if episode else None,
    }


def hourly(last: float, readings: int = 48) -> TailDetector:
    """A tail detector that learned ``readings`` hourly readings up to ``last``."""
    detector = TailDetector()
    times = last - HOUR * np.arange(readings)[::-1]
    detector.learn_many(np.sin(np.arange(readings) / 5.0) + 10.0, times)
    return detector


def due(entries: list[tuple[str, dict[str, Any], int]], newest: dict[Any, float]) -> list[str]:
    states = [(sid.encode(), st, part) for sid, st, part in entries]
    return [k.decode() for k in silent_sensors(states, KINDS.get, newest, HOUR)]


def test_a_partition_read_ahead_does_not_make_another_partitions_sensor_silent() -> None:
    entries = [("gauge-a", state(T, episode=True), 1), ("gauge-b", state(T + 5 * HOUR), 0)]
    assert due(entries, {}) == []


def test_its_own_partitions_sensors_of_its_kind_do() -> None:
    entries = [
        ("gauge-a", state(T, episode=True), 1),
        ("gauge-c", state(T + HOUR), 1),
        ("air-1", state(T + 9 * HOUR), 1),  # another kind keeps no clock for it
    ]
    assert due(entries, {}) == ["gauge-a"]
    assert due([entries[0], ("gauge-c", state(T + HOUR - 1), 1)], {}) == []


def test_a_clock_never_goes_back_and_an_unknown_sensor_is_left_alone() -> None:
    newest: dict[Any, float] = {}
    assert due([("gauge-c", state(T + 2 * HOUR), 1)], newest) == []
    assert newest == {(1, "water_level"): T + 2 * HOUR}
    # The states later read (a rebalance moved gauge-c away): the clock stays.
    assert due([("gauge-a", state(T, episode=True), 1)], newest) == ["gauge-a"]
    assert due([("ghost", state(T, episode=True), 1)], newest) == []


def test_an_hourly_station_one_reading_behind_its_neighbours_is_not_silent() -> None:
    """Beijing's stations report hourly; at the default timeout (1 h) a station whose
    reading came a minute after its neighbours' was an hour behind them and resolved
    for no data. Silent only once it has missed two of its own intervals."""
    a, b = hourly(T), hourly(T + HOUR)
    assert mean_interval(a) == HOUR
    kinds = {"air-1": "pm25", "air-2": "pm25"}

    def silent(last_neighbour: float, detector: Any) -> list[bytes]:
        entries = [
            (b"air-1", state(T, episode=True, detector=detector), 0),
            (b"air-2", state(last_neighbour, detector=b), 0),
        ]
        return silent_sensors(entries, kinds.get, {}, HOUR)

    assert silent(T + HOUR, a) == []
    assert silent(T + NO_DATA_MISSED * HOUR - 1, a) == []
    assert silent(T + NO_DATA_MISSED * HOUR, a) == [b"air-1"]
    # Its state as the changelog holds it (a record, base64 or bytes) says the same.
    record = a.get_state()
    assert silent(T + HOUR, record) == []
    assert silent(T + HOUR, {**record, "row": base64.b64decode(record["row"])}) == []
    # No interval known (no times, another detector, an older record): the timeout alone.
    assert silent(T + HOUR, None) == [b"air-1"]
    assert silent(T + HOUR, {**record, "v": 2}) == [b"air-1"]


def test_a_sensor_faster_than_the_timeout_is_silent_at_the_timeout() -> None:
    every_5_min = TailDetector()
    times = T - 300.0 * np.arange(100)[::-1]
    every_5_min.learn_many(np.cos(np.arange(100) / 7.0), times)
    assert mean_interval(every_5_min) == 300.0
    entries = [
        (b"gauge-a", state(T, episode=True, detector=every_5_min), 1),
        (b"gauge-c", state(T + HOUR), 1),
    ]
    assert silent_sensors(entries, KINDS.get, {}, HOUR) == [b"gauge-a"]


def test_a_state_claiming_a_reading_past_the_horizon_moves_no_clock_and_is_named() -> None:
    """A damaged sensor state whose last reading is in the far future (no reading past
    the clock's skew is accepted) set its kind's clock there for good: every sensor of
    the kind on its partition in an episode was resolved for no data, at once and at
    each later episode. It is now left out (``ahead_of`` names it for the sweep to say
    and count); the others' clock is theirs."""
    horizon = T + 300.0
    entries = [
        ("gauge-a", state(T - 60, episode=True), 1),
        ("gauge-b", state(1e12), 1),  # the year 33658
        ("gauge-c", state(T), 1),
    ]
    states = [(sid.encode(), st, part) for sid, st, part in entries]
    newest: dict[Any, float] = {}
    assert silent_sensors(states, KINDS.get, newest, HOUR, horizon) == []
    assert newest == {(1, "water_level"): T}
    assert ahead_of(states, horizon) == [(b"gauge-b", 1e12)]
    # Without the horizon (before), gauge-a was resolved for no data.
    assert silent_sensors(states, KINDS.get, {}, HOUR) == [b"gauge-a"]
