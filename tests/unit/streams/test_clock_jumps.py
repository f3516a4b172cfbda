"""Odd times in one sensor's stream (t185): a reading far ahead of its sensor's clock (a
year ahead in a replay of old data, a gateway's clock, epoch milliseconds read as
seconds and still before the worker's clock) is a clock jump (``CLOCK_JUMP``, a day):
taken, since a sensor may resume after years of silence, but the sensor keeps the time it
jumped from until a later reading confirms the jump, and a reading between the two takes
the sensor's clock back. Before, the one odd reading made every later real reading of
its sensor ``out_of_order``, for good, and set its kind's no-data clock there."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detectors import DEFAULT_THRESHOLD, RobustZScore, ScoreThreshold, TailDetector
from streams.detection import CLOCK_JUMP, Incoming, SensorDetection, read_state, state_bytes
from streams.events import Reading, format_ts
from streams.ingest import silent_sensors
from streams.tables import UnreadableEntryError

from .test_batch_faults import T0 as BATCH_T0
from .test_batch_faults import Worker, reading, warm

T0 = 1_550_000_000.0  # 2019-02-12
YEAR = 365 * 86_400.0


def per_sensor() -> SensorDetection:
    return SensorDetection(
        RobustZScore(window=48, min_samples=12), ScoreThreshold(0.6), quiet_readings=3
    )


def bank() -> SensorDetection:
    return SensorDetection(TailDetector(), ScoreThreshold(DEFAULT_THRESHOLD), quiet_readings=3)


HANDLERS = [per_sensor, bank]


def at(ts: float, offset: int, value: float = 2.0, sensor: str = "gauge-1") -> Incoming:
    reading = Reading(ts, sensor, "water_level", value, "ft", "c-bridge")
    return Incoming(reading, received_at=0.0, offset=offset)


def series(n: int, start: int = 0, sensor: str = "gauge-1") -> list[Incoming]:
    """``n`` readings five minutes apart from ``T0``, values near 2 ft."""
    rng = np.random.default_rng(start + 1)
    return [
        at(T0 + 300 * i, i, 2.0 + float(rng.normal(0, 0.05)), sensor)
        for i in range(start, start + n)
    ]


def run(
    make: Callable[[], SensorDetection], batches: list[list[Incoming]], stored: bool
) -> tuple[list[tuple[int, str]], int, list[Any], dict[str, Any]]:
    """(refusals (offset, code), readings scored, clock_back, last states) over
    ``batches``, the state through the changelog between batches when ``stored``."""
    h, states = make(), {}
    refused: list[tuple[int, str]] = []
    scored = 0
    back: list[Any] = []
    for batch in batches:
        r = h.process(batch, states)
        refused += [(item.offset, code) for item, code, _ in r.rejected]
        scored += r.scored
        back += r.clock_back
        states = {**states, **r.states}
        if stored:
            states = {sid: read_state(state_bytes(st)) for sid, st in states.items()}
    return refused, scored, back, states


@pytest.mark.parametrize("make", HANDLERS)
@pytest.mark.parametrize("stored", [False, True])
@pytest.mark.parametrize("ahead", [YEAR, 281 * YEAR, 2 * 86_400.0])
def test_one_reading_far_ahead_costs_no_later_reading(
    make: Callable[[], SensorDetection], stored: bool, ahead: float
) -> None:
    """One reading a year (or to the year 2300 from 2019, or two days) ahead among
    five-minute readings: the next real reading takes the clock back, none is refused."""
    before = series(40)
    odd = at(T0 + 300 * 39 + ahead, 40)
    after = series(40, start=41)
    one_by_one = [[item] for item in [*before, odd, *after]]
    refused, scored, back, states = run(make, one_by_one, stored)
    assert refused == []  # (before: the 40 later readings all out_of_order)
    assert scored == 81
    assert back == [("gauge-1", odd.reading.ts, after[0].reading.ts)]
    assert states["gauge-1"]["last_ts"] == after[-1].reading.ts
    assert states["gauge-1"].get("jump_from") is None


@pytest.mark.parametrize("make", HANDLERS)
def test_an_odd_time_inside_one_batch_is_taken_as_one_reading_at_a_time(
    make: Callable[[], SensorDetection],
) -> None:
    """The bank path's array admission (one reading a sensor, several) gives the
    per-sensor rules' result for a jump in the middle of a batch."""
    items = [*series(40), at(T0 + 300 * 39 + YEAR, 40), *series(40, start=41)]
    whole = run(make, [items], stored=False)
    one = run(make, [[item] for item in items], stored=False)
    assert whole[:3] == one[:3] and whole[0] == []
    packed = run(make, [items[:20], items[20:45], items[45:]], stored=True)
    assert packed[:3] == one[:3]


@pytest.mark.parametrize("make", HANDLERS)
def test_a_sensor_silent_for_two_years_resumes_and_its_old_readings_stay_refused(
    make: Callable[[], SensorDetection],
) -> None:
    """A jump the next reading confirms is the sensor's clock from then on: a reading
    from before it is out of order, as any older reading."""
    before = series(40)
    resumed = [at(T0 + 2 * YEAR + 300 * i, 40 + i) for i in range(20)]
    stale = at(T0 + 300 * 45, 60)  # between the old readings and the jump, after confirming
    refused, scored, back, states = run(make, [[i] for i in [*before, *resumed, stale]], True)
    assert refused == [(60, "out_of_order")]
    assert scored == 60 and back == []
    assert states["gauge-1"]["last_ts"] == resumed[-1].reading.ts


@pytest.mark.parametrize("make", HANDLERS)
def test_a_reading_going_back_a_year_is_out_of_order_and_costs_nothing(
    make: Callable[[], SensorDetection],
) -> None:
    items = [*series(40), at(T0 - YEAR, 40), *series(10, start=41)]
    refused, scored, back, _ = run(make, [[i] for i in items], stored=True)
    assert refused == [(40, "out_of_order")] and scored == 50 and back == []


@pytest.mark.parametrize("make", HANDLERS)
def test_a_reading_older_than_the_time_jumped_from_is_still_out_of_order(
    make: Callable[[], SensorDetection],
) -> None:
    items = [*series(40), at(T0 + YEAR, 40), at(T0 + 300 * 10, 41)]
    h = make()
    r = h.process(items, {})
    assert [(i.offset, code) for i, code, _ in r.rejected] == [(41, "out_of_order")]
    why = r.rejected[0][2]
    assert why.endswith("last reading 2019-02-12T22:48:20Z before its jump to 2020-02-12T19:33:20Z")


def test_a_jump_of_a_day_or_less_is_the_sensors_clock_at_once() -> None:
    """The rule's edge: a reading exactly ``CLOCK_JUMP`` ahead is no jump (a daily
    reading), and one older than it is out of order as before."""
    items = [*series(40), at(T0 + 300 * 39 + CLOCK_JUMP, 40), at(T0 + 300 * 41, 41)]
    refused, _, back, _ = run(bank, [[i] for i in items], stored=False)
    assert refused == [(41, "out_of_order")] and back == []


@pytest.mark.parametrize("bad", [float("nan"), 1e300, "x", True, T0 + 300 * 40])
def test_a_stored_jump_that_is_no_time_before_the_last_reading_is_unreadable(bad: Any) -> None:
    h = per_sensor()
    state = dict(h.process(series(40), {}).states["gauge-1"])
    entry = state_bytes({**state, "jump_from": bad})
    with pytest.raises(UnreadableEntryError, match="jump_from"):
        read_state(entry)
    assert read_state(state_bytes({**state, "jump_from": None}))["last_ts"] == state["last_ts"]


def test_a_pending_clock_jump_moves_no_sensors_no_data_clock() -> None:
    """One sensor's reading a year ahead (not yet confirmed) among a replay's: its kind's
    clock stays at its time before the jump, so no other sensor's open episode is
    resolved for no data (before: at once, and every later episode of the kind on the
    partition again, the clock never going back)."""
    h = bank()
    r = h.process([*series(40, sensor="gauge-2"), *series(40)], {})
    r2 = h.process([at(T0 + 300 * 39 + YEAR, 40)], r.states)
    states = {**r.states, **r2.states}
    assert states["gauge-1"]["jump_from"] == T0 + 300 * 39
    entries = [
        (b"gauge-1", states["gauge-1"], 0),
        (b"gauge-2", {**states["gauge-2"], "episode": {"alert_id": "x"}}, 0),
    ]
    newest: dict[Any, float] = {}
    kinds = {"gauge-1": "water_level", "gauge-2": "water_level"}
    assert silent_sensors(entries, kinds.get, newest, 3600.0) == []
    assert newest == {(0, "water_level"): T0 + 300 * 39}


def test_the_worker_takes_the_clock_back_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """On a real app's readings stage: one reading 30 days ahead (before the worker's
    clock, so not ``in_future``), then the gauge's next real readings: none
    dead-lettered, the clock going back said once at WARNING (before: every later
    reading dead-lettered ``out_of_order``)."""
    worker = Worker(tmp_path, monkeypatch)
    warm(worker)
    odd = {**reading(100, 2.0), "ts": format_ts(BATCH_T0 + 30 * 86_400)}
    worker.run(worker.batch(odd))
    with caplog.at_level(logging.WARNING, logger="streams.ingest"):
        worker.run(worker.batch(reading(101, 2.01), reading(102, 2.02)))
        worker.run(worker.batch(reading(103, 2.0)))
    assert worker.dead == []
    said = [r.getMessage() for r in caplog.records if "went back" in r.getMessage()]
    assert said == [
        f"citybrain: readings: sensor gauge-1 jumped to {format_ts(BATCH_T0 + 30 * 86_400)} and its next "
        f"reading went back to {format_ts(BATCH_T0 + 60 * 101)}: the jump was one reading's "
        "odd time (a gateway's clock, a unit mistake?), the sensor's clock goes back"
    ]
