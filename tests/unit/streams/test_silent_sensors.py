"""The no-data sweep's rule (``streams.ingest.silent_sensors``): a sensor is silent in its
episode once the sensors of its kind on its own readings partition have reported the
timeout past its last reading. One clock per kind across partitions resolved, in a
catch-up, the alerts of a lagging partition's sensors whose readings were still waiting
there (a partition read hours of event time ahead of the other)."""

from __future__ import annotations

from typing import Any

from streams.ingest import silent_sensors

HOUR = 3600.0
T = 1_800_000_000.0
KINDS = {"gauge-a": "water_level", "gauge-b": "water_level", "gauge-c": "water_level"}
KINDS |= {"air-1": "pm25"}


def state(last: float, episode: bool = False) -> dict[str, Any]:
    return {"last_ts": last, "episode": {"alert_id": "x"} if episode else None}


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
