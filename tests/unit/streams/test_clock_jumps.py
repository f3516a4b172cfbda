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
from streams.detection import (
    CLOCK_JUMP,
    NO_CLOCK,
    NO_HISTORY,
    Incoming,
    SensorDetection,
    read_state,
    state_bytes,
)
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


# -- a sensor's FIRST reading far ahead (t195) ----------------------------------------


@pytest.mark.parametrize("make", HANDLERS)
@pytest.mark.parametrize("stored", [False, True])
@pytest.mark.parametrize("ahead", [YEAR, 281 * YEAR, 2 * 86_400.0])
def test_a_new_sensors_first_reading_far_ahead_of_its_kind_costs_no_later_reading(
    make: Callable[[], SensorDetection], stored: bool, ahead: float
) -> None:
    """Its kind's other sensors at 2019, a new sensor's first reading a year (or to 2300,
    or two days) ahead of them: a jump from no history (``NO_HISTORY``), and its next
    real readings take the clock back, none refused. Before, its first reading set its
    clock: all 40 later readings ``out_of_order`` (fails on the old code)."""
    others = series(40, sensor="gauge-2")
    odd = at(T0 + 300 * 39 + ahead, 0)
    after = [at(T0 + 300 * (40 + i), 1 + i, 2.0 + 0.01 * (i % 3)) for i in range(40)]
    refused, scored, back, states = run(make, [others, [odd], *([i] for i in after)], stored)
    assert refused == []
    assert scored == 81
    assert back == [("gauge-1", odd.reading.ts, after[0].reading.ts)]
    assert states["gauge-1"]["last_ts"] == after[-1].reading.ts
    assert states["gauge-1"].get("jump_from") is None


@pytest.mark.parametrize("make", HANDLERS)
def test_a_new_sensors_pending_first_jump_is_stored_and_moves_no_clock(
    make: Callable[[], SensorDetection],
) -> None:
    """The pending first jump is in the stored state (read back judged) as ``NO_HISTORY``,
    which moves neither the kind's detection clock nor the no-data sweep's; a reading
    after it confirms it, and then it is the sensor's clock as any reading's."""
    h = make()
    r = h.process(series(40, sensor="gauge-2"), {})
    odd = at(T0 + YEAR, 0)
    r2 = h.process([odd], r.states)
    state = read_state(state_bytes(r2.states["gauge-1"]))
    assert state["jump_from"] == NO_HISTORY
    assert h.kind_clock == {"water_level": T0 + 300 * 39}
    newest: dict[Any, float] = {}
    entries = [(b"gauge-1", state, 0), (b"gauge-2", dict(r.states["gauge-2"]), 0)]
    silent_sensors(entries, {"gauge-1": "water_level", "gauge-2": "water_level"}.get, newest, 1)
    assert newest == {(0, "water_level"): T0 + 300 * 39}
    r3 = h.process([at(T0 + YEAR + 300, 1)], {"gauge-1": state})
    assert r3.rejected == [] and r3.clock_back == []
    assert r3.states["gauge-1"].get("jump_from") is None
    # Confirmed, it is its kind's clock: another new sensor's first reading there is none.
    r5 = h.process([at(T0 + YEAR + 600, 0, sensor="gauge-3")], {})
    assert r5.states["gauge-3"].get("jump_from") is None
    # Once confirmed, an older reading is out of order as for any sensor.
    r4 = h.process([at(T0 + 300 * 50, 3)], r3.states)
    assert [code for _, code, _ in r4.rejected] == ["out_of_order"]


@pytest.mark.parametrize("make", HANDLERS)
def test_first_readings_within_a_day_of_their_kind_keep_the_rules(
    make: Callable[[], SensorDetection],
) -> None:
    """Sane data keeps the documented rules: a new sensor's first reading up to a day
    (``CLOCK_JUMP``, the edge included) ahead of its kind sets its clock: an older reading
    is ``out_of_order``."""
    h = make()
    r = h.process(series(40, sensor="gauge-2"), {})
    edge = at(T0 + 300 * 39 + CLOCK_JUMP, 0)
    r2 = h.process([edge, at(T0 + 300 * 41, 1)], r.states)
    assert [(i.offset, code) for i, code, _ in r2.rejected] == [(1, "out_of_order")]


@pytest.mark.parametrize("make", HANDLERS)
@pytest.mark.parametrize("stored", [False, True])
@pytest.mark.parametrize("together", [False, True])
def test_a_kinds_very_first_reading_far_ahead_costs_no_later_reading(
    make: Callable[[], SensorDetection], stored: bool, together: bool
) -> None:
    """A freshly started worker whose very first reading of a kind is a year ahead (a
    gateway's clock, before the worker's own): nothing vouches for it, so it is pending
    (``NO_CLOCK``), and neither its sensor's real readings after it (more than a day
    before it: the clock goes back) nor
    another sensor's are refused; the kind's clock is the first time a sensor's next
    reading confirms. Before, it set its sensor's clock and the kind's: the 40 later real
    readings ``out_of_order`` (fails on the old code), and every other new sensor's first
    reading, a year behind that clock, was taken as its clock as before."""
    odd = at(T0 + YEAR, 0)
    after = series(40, start=1)
    others = series(5, sensor="gauge-2")
    batches = [[odd, *others, *after]] if together else [[odd], others, *([i] for i in after)]
    refused, scored, back, states = run(make, batches, stored)
    assert refused == []
    assert scored == 46
    assert back == [("gauge-1", odd.reading.ts, after[0].reading.ts)]
    assert states["gauge-1"]["last_ts"] == after[-1].reading.ts
    assert states["gauge-1"].get("jump_from") is None
    assert states["gauge-2"].get("jump_from") is None  # confirmed by its second reading


@pytest.mark.parametrize("make", HANDLERS)
def test_a_kinds_first_readings_have_its_clock_once_one_is_confirmed(
    make: Callable[[], SensorDetection],
) -> None:
    """A kind's first reading is pending (``NO_CLOCK``), and moves no clock, until its
    sensor's next one after it; a reading less than a day before it is ``out_of_order``
    as before (a late delivery, not a jump undone). Then the kind has a clock, and a new
    sensor's first reading within a day of it is its clock at once."""
    fresh = make()
    r = fresh.process([at(T0, 0)], {})
    assert read_state(state_bytes(r.states["gauge-1"]))["jump_from"] == NO_CLOCK
    assert fresh.kind_clock == {}
    # Within a day before it, a late delivery: ``out_of_order`` as before, still pending.
    late = fresh.process([at(T0 - 600, 1)], r.states)
    assert [(i.offset, code) for i, code, _ in late.rejected] == [(1, "out_of_order")]
    assert "jump" not in late.rejected[0][2] and late.states["gauge-1"]["jump_from"] == NO_CLOCK
    r2 = fresh.process([at(T0 + 300, 2)], late.states)
    assert r2.states["gauge-1"].get("jump_from") is None
    r3 = fresh.process([at(T0 + 600, 0, sensor="gauge-2"), at(T0, 1, sensor="gauge-2")], {})
    assert [(i.offset, code) for i, code, _ in r3.rejected] == [(1, "out_of_order")]
    assert r3.states["gauge-2"].get("jump_from") is None


@pytest.mark.parametrize("make", HANDLERS)
def test_a_first_jump_inside_a_batch_is_judged_by_the_clock_before_it(
    make: Callable[[], SensorDetection],
) -> None:
    """Both paths read the kind's clock as it was before the batch: a new sensor's jump
    and its real readings in one batch, after or among its kind's, give the one-at-a-time
    result."""
    warmup = series(40, sensor="gauge-2")
    odd = at(T0 + 300 * 39 + YEAR, 0)
    after = [at(T0 + 300 * (40 + i), 1 + i) for i in range(10)]
    whole = run(make, [warmup, [odd, *after]], stored=False)
    one = run(make, [warmup, *([i] for i in [odd, *after])], stored=True)
    assert whole[:3] == one[:3] and whole[0] == []
    mixed = run(make, [warmup, [odd, *series(5, start=40, sensor="gauge-2"), *after]], False)
    assert mixed[0] == [] and mixed[2] == one[2]
