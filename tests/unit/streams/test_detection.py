"""Per-batch detection: episodes, deterministic alert ids, delivery and event-time rules."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import numpy as np
import orjson
import pytest

from detectors import DEFAULT_THRESHOLD, RobustZScore, ScoreThreshold, TailDetector
from detectors.base import pack_floats, unpack_floats
from detectors.tail import TailBank
from playbooks.grid import Grid
from streams.corroboration import checked_message
from streams.detection import (
    STATE_FORMAT,
    BankState,
    Incoming,
    SensorDetection,
    admit,
    alert_id_for,
    read_state,
    state_bytes,
    state_document,
)
from streams.events import MAX_ID_CHARS, MAX_PACK_READINGS, EventValidator, Reading, format_ts
from streams.tables import (
    BAD_SHAPE,
    NEWER_FORMAT,
    NOT_DECODABLE,
    UNKNOWN_FORMAT,
    Unreadable,
    UnreadableEntryError,
    guarded,
)

T0 = 1_700_000_000.0
NOW = 1_800_000_000.0  # 2027-01-15


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


def stored(state: dict[str, Any]) -> dict[str, Any]:
    """A state as read back from the changelog (the entry the worker writes)."""
    return read_state(state_bytes(state))


def stored_as_json(state: dict[str, Any]) -> dict[str, Any]:
    """A state as read back from a JSON changelog entry (written before the binary one)."""
    return read_state(json.dumps(state_document(state)).encode())


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
        # as the faust table's changelog holds it
        state = stored(r.states["gauge-1"])
        alerts += r.alerts
    assert [a.to_dict() for a in alerts] == [a.to_dict() for a in whole.alerts]


def test_restored_state_needs_no_second_warm_up() -> None:
    h = handler()
    first = h.process(feed(baseline(40)), {})
    state = {sid: stored(st) for sid, st in first.states.items()}
    # A fresh handler (a restarted worker) with the stored state flags the very next spike.
    after = handler().process(feed([9.0], start=40), state)
    assert [a.status for a in after.alerts] == ["firing"]
    without_state = handler().process(feed([9.0], start=40), {})
    assert without_state.alerts == []


def test_redelivered_offsets_are_skipped_without_a_second_alert() -> None:
    values = [*baseline(40), 9.0]
    first = handler().process(feed(values), {})
    assert len(first.alerts) == 1
    again = handler().process(feed(values), {"gauge-1": stored(first.states["gauge-1"])})
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


def conflicts(result: Any) -> list[tuple[int, str, str]]:
    return [(i.offset, code, why) for i, code, why in result.rejected]


def test_a_reading_at_the_last_time_with_another_value_is_refused_not_dropped_as_a_duplicate() -> (
    None
):
    # Before: a second message for one sensor at one time with another value (a gateway's
    # correction, a clash of two sources) was dropped and counted as a duplicate: the
    # value was lost without a word. Every path: one reading a batch (the bank's columns),
    # several (packs), the per-sensor path (another detector), and across a restart.
    base = feed(baseline(40))
    last = base[-1].reading
    same = Incoming(last, 0.0, offset=100)
    other = Incoming(Reading(last.ts, "gauge-1", "water_level", 9.5, "ft", "c-bridge"), 0.0, 101)
    why = (
        f'field "value" is 9.5: the sensor\'s reading at {format_ts(last.ts)} was taken '
        f"already with the value {last.value!r}: which is meant? (send a correction at a new "
        "time)"
    )
    for make in (tail_handler, handler):
        h = make()
        first = h.process(base, {})
        live = first.states
        for states in (live, {"gauge-1": stored(live["gauge-1"])}):
            alone = make().process([other], states)  # one reading: the columns' path
            assert conflicts(alone) == [(101, "conflicting_reading", why)], make
            assert alone.duplicates == 0
            both = make().process([same, other], states)  # several: the per-sensor path
            assert conflicts(both) == [(101, "conflicting_reading", why)], make
            assert both.duplicates == 1
        # Within one batch too: the value taken is the batch's own.
        inside = make().process([*base, other], {})
        assert conflicts(inside) == [(101, "conflicting_reading", why)], make
        assert inside.scored == 40


def test_a_state_without_its_last_value_keeps_dropping_repeats_as_duplicates() -> None:
    # States written before ``last_value`` was kept: the value at the last time is not
    # known, so a reading there is a duplicate whatever its value (as it was).
    # (Read back as the table does: ``read_state`` makes an unknown value NaN, once.)
    first = tail_handler().process(feed(baseline(40)), {})
    old = stored(first.states["gauge-1"])
    del old["last_value"]
    old = read_state(state_bytes(old))
    as_json = stored_as_json(first.states["gauge-1"])
    as_json["last_value"] = None  # NaN as JSON writes it
    as_json = read_state(json.dumps(as_json).encode())
    last = first.states["gauge-1"]["last_ts"]
    other = Incoming(Reading(last, "gauge-1", "water_level", 9.5, "ft", "c-bridge"), 0.0, 101)
    for state in (old, as_json):
        result = tail_handler().process([other], {"gauge-1": state})
        assert result.duplicates == 1 and result.rejected == []
        another = Incoming(Reading(last, "gauge-1", "water_level", 7.5, "ft", "c-bridge"), 0.0, 102)
        again = tail_handler().process([other, another], {"gauge-1": state})
        assert again.duplicates == 2 and again.rejected == []


def test_sensors_are_independent() -> None:
    items = feed([*baseline(40), 9.0], "gauge-1") + feed(baseline(41, seed=5), "gauge-2")
    result = handler().process(items, {})
    assert {a.sensor_id for a in result.alerts} == {"gauge-1"}
    assert set(result.states) == {"gauge-1", "gauge-2"}


def test_live_state_and_changelog_state_give_the_same_result() -> None:
    h = handler()
    first = h.process(feed(baseline(40)), {})
    live = first.states
    restored = {sid: stored(st) for sid, st in live.items()}
    tail = feed([*baseline(5, seed=3), 9.0], start=40)
    a = h.process(tail, live)  # the worker that wrote the state goes on in place
    b = handler().process(tail, restored)  # a new owner starts from the changelog
    assert [x.to_dict() for x in a.alerts] == [x.to_dict() for x in b.alerts] != []
    assert state_document(a.states["gauge-1"]) == state_document(b.states["gauge-1"])


def test_packed_readings_are_ordered_by_offset_then_place_in_the_pack() -> None:
    values = [*baseline(40), 9.0]
    # Two packs (offsets 7 and 8), each sensor's readings at increasing places.
    items = [
        Incoming(i.reading, 0.0, offset=7 if n < 20 else 8, index=n if n < 20 else n - 20)
        for n, i in enumerate(feed(values))
    ]
    first = handler().process(items, {})
    assert len(first.alerts) == 1
    state = stored(first.states["gauge-1"])
    assert (state["last_offset"], state["last_index"]) == (8, 20)
    again = handler().process(items, {"gauge-1": state})  # the whole batch redelivered
    assert again.alerts == [] and again.redelivered == len(values)


def packed(*readings: dict[str, Any]) -> bytes:
    return json.dumps({"schema": "readings/1", "readings": list(readings)}).encode()


def doc(sensor: str = "gauge-1", **over: Any) -> dict[str, Any]:
    cell = {"gauge-1": "c-bridge", "gauge-2": "c-mill"}[sensor]
    return {
        "ts": "2026-11-01T10:00:00Z",
        "sensor_id": sensor,
        "kind": "water_level",
        "value": 1.5,
        "unit": "ft",
        "grid_cell": cell,
        **over,
    }


def test_admit_takes_a_pack_and_refuses_its_bad_readings_alone(grid: Grid) -> None:
    home = {"gauge-1": 0, "gauge-2": 1}.__getitem__
    raw = packed(doc(), doc(value="abc"), doc("gauge-2"), doc(ts="2026-11-01T10:05:00Z"))
    admitted, refused = admit(EventValidator(grid), raw, NOW, 0, home, 41, 5.0)
    assert [(i.reading.sensor_id, i.offset, i.index) for i in admitted] == [
        ("gauge-1", 41, 0),
        ("gauge-1", 41, 3),
    ]
    assert [(r.index, r.error.code) for r in refused] == [(1, "bad_type"), (2, "wrong_partition")]
    assert str(refused[0].error) == "field \"readings[1].value\" is 'abc': expected a number"
    assert "belong on partition 1, this message is on 0" in str(refused[1].error)
    assert refused[1].raw is not None and json.loads(refused[1].raw)["sensor_id"] == "gauge-2"


def test_admit_refuses_a_whole_message_once(grid: Grid) -> None:
    home = {"gauge-1": 0}.__getitem__
    for raw, code in [
        (b"{oops", "bad_json"),
        (json.dumps({"schema": "readings/1", "readings": []}).encode(), "bad_type"),
        (packed(*[doc()] * (MAX_PACK_READINGS + 1)), "pack_too_large"),
    ]:
        admitted, refused = admit(EventValidator(grid), raw, NOW, 0, home, 1, 0.0)
        assert admitted == [] and [(r.index, r.raw, r.error.code) for r in refused] == [
            (None, None, code)
        ]
    # A single reading on the wrong partition: the message itself is dead-lettered.
    single = json.dumps({"schema": "reading/1", **doc()}).encode()
    admitted, refused = admit(EventValidator(grid), single, NOW, 1, home, 1, 0.0)
    assert admitted == [] and [(r.index, r.error.code) for r in refused] == [
        (None, "wrong_partition")
    ]
    admitted, refused = admit(EventValidator(grid), single, NOW, 0, home, 1, 0.0)
    assert refused == [] and admitted[0].raw == single and admitted[0].index == 0


# -- the default: the tail detector's shared bank (issue 13) ----------------------------
def tail_handler() -> SensorDetection:
    return SensorDetection(TailDetector(), ScoreThreshold(DEFAULT_THRESHOLD), quiet_readings=3)


def interleaved() -> list[Incoming]:
    """Three gauges' readings interleaved in time, one with a flood-like jump."""
    items = []
    for i in range(120):
        for k, sensor in enumerate(("gauge-1", "gauge-2", "gauge-3")):
            value = 2.0 + 0.05 * np.sin(i / 3 + k) + 0.01 * ((i * 7 + k) % 5)
            if sensor == "gauge-2" and i >= 100:
                value += 6.0
            reading = Reading(T0 + 300 * i, sensor, "water_level", value, "ft", "c-bridge")
            items.append(Incoming(reading, 0.0, offset=3 * i + k))
    return items


def test_the_bank_path_scores_every_sensor_of_a_batch_as_one_at_a_time() -> None:
    items = interleaved()
    whole = tail_handler().process(items, {})
    assert [(a.status, a.sensor_id) for a in whole.alerts][:1] == [("firing", "gauge-2")]
    h, states, alerts = tail_handler(), {}, []
    for item in items:  # one reading per batch, the state through the changelog each time
        r = h.process([item], states)
        states = {**states, **{sid: stored(st) for sid, st in r.states.items()}}
        alerts += r.alerts
    assert [a.to_dict() for a in alerts] == [a.to_dict() for a in whole.alerts]
    assert whole.scored == len(items) == 360


def mixed_batches(seed: int) -> list[list[Incoming]]:
    """Batches over 12 sensors as a worker sees them: most sensors once a batch, some
    several times (a pack, a burst), with duplicates, out-of-order readings,
    redeliveries of an earlier batch and runs of high readings."""
    rng = np.random.default_rng(seed)
    last_ts: dict[str, float] = {}
    high: dict[str, int] = {}  # readings left in a sensor's run of high ones
    sent: list[Incoming] = []
    batches: list[list[Incoming]] = []
    offset = 0
    for _ in range(300):
        batch: list[Incoming] = []
        for _ in range(int(rng.integers(3, 25))):
            sensor = f"s{int(rng.integers(0, 12)):02d}"
            roll = rng.random()
            if roll < 0.05 and sent:  # a redelivery of something already sent
                batch.append(sent[int(rng.integers(0, len(sent)))])
                continue
            ts = last_ts.get(sensor, T0) + 300.0
            if roll < 0.09 and sensor in last_ts:
                ts = last_ts[sensor]  # a duplicate event time
            elif roll < 0.12 and sensor in last_ts:
                ts = last_ts[sensor] - 600.0  # out of order
            else:
                last_ts[sensor] = ts
            if rng.random() < 0.01:
                high[sensor] = 5
            value = 10.0 + rng.normal(0.0, 1.0) + (40.0 if high.get(sensor, 0) > 0 else 0.0)
            high[sensor] = high.get(sensor, 0) - 1
            reading = Reading(ts, sensor, "traffic_flow", value, "vehicles/5min", "c-bridge")
            offset += 1
            item = Incoming(reading, 0.0, offset, index=int(rng.integers(0, 3)))
            batch.append(item)
            sent.append(item)
        batches.append(batch)
    return batches


def outcome(result: Any) -> tuple[Any, ...]:
    return (
        [a.to_dict() for a in result.alerts],
        [(i.offset, i.index, code, why) for i, code, why in result.rejected],
        result.scored,
        result.duplicates,
        result.redelivered,
        result.anomalies_by_kind,
        result.scored_by_kind,
        result.scored_by_cell,
        result.last,
        result.marks,
        {sid: state_document(st) for sid, st in result.states.items()},
    )


def test_the_bank_fast_path_gives_the_per_sensor_rules_result() -> None:
    # ``_process_bank`` takes a sensor with one reading in the batch and a live state
    # inline, and the quiet sensors' counts without ``_record``; a handler without the
    # bank takes the per-sensor path (``_admit_sensor``, the detector called per sensor,
    # ``_record`` for every sensor). Same batches, same results, every field of them;
    # some states go through the changelog between batches (restored, not live).
    for seed in range(4):
        fast, slow = tail_handler(), tail_handler()
        fast.mark_at = slow.mark_at = DEFAULT_THRESHOLD
        slow.bank = None
        fast_states: dict[str, Any] = {}
        slow_states: dict[str, Any] = {}
        alerts = 0
        for n, batch in enumerate(mixed_batches(seed)):
            a, b = fast.process(batch, fast_states), slow.process(batch, slow_states)
            assert outcome(a) == outcome(b)
            alerts += len(a.alerts)
            fast_states, slow_states = {**fast_states, **a.states}, {**slow_states, **b.states}
            if n % 4 == 3:
                fast_states = {sid: stored(st) for sid, st in fast_states.items()}
        assert alerts > 0


def test_new_sensors_are_born_into_the_bank_and_admitted_as_arrays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t106: a sensor with no state took the per-sensor path (``_admit_sensor`` and a
    loop over its readings): 20,000 new sensors in packs were three quarters of the
    in-process ceiling's detection. Now it is born with no history in the bank and
    admitted with the live ones, with the per-sensor path's result, every field."""
    real = SensorDetection._admit_sensor
    calls: list[int] = []

    def counted(self: SensorDetection, *args: Any) -> Any:
        calls.append(1)
        return real(self, *args)

    for seed in range(3):
        slow, slow_too = tail_handler(), tail_handler()
        slow.bank = slow_too.bank = None
        # (each on a handler of its own: one that has a kind's clock judges a first
        # reading otherwise than one with none yet, t206)
        expected = [slow.process(fresh(seed), {}), slow_too.process(mixed_batches(seed)[0], {})]
        fast = tail_handler()
        with monkeypatch.context() as patched:
            patched.setattr(SensorDetection, "_admit_sensor", counted)
            # Fresh sensors, several ordered readings each: no per-sensor admission.
            got = fast.process(fresh(seed), {})
            assert calls == []
        assert got.scored == len(fresh(seed))
        assert outcome(got) == outcome(expected[0])
        # New sensors with duplicates, out-of-order readings and redeliveries.
        assert outcome(tail_handler().process(mixed_batches(seed)[0], {})) == outcome(expected[1])


def test_a_batch_of_live_sensors_compares_no_state_by_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t106: looking for sensors with no state as ``None in got`` compared every
    ``BankState`` of the batch with ``None`` through ``Mapping.__eq__`` (Python, an ABC
    check each: 9 % of a batch of known sensors). States are looked at by identity."""
    handler, states = tail_handler(), {}
    batches = mixed_batches(1)
    for batch in batches[:5]:
        states.update(handler.process(batch, states).states)

    def compared(self: object, other: object) -> bool:
        raise AssertionError(f"a sensor state compared with {other!r}")

    monkeypatch.setattr(BankState, "__eq__", compared)
    for batch in batches[5:10]:
        states.update(handler.process(batch, states).states)


def fresh(seed: int) -> list[Incoming]:
    """Six new sensors, three ordered readings each, interleaved."""
    out = []
    for k in range(3):
        for s in range(6):
            ts = T0 + 300.0 * k
            reading = Reading(
                ts, f"n{seed}-{s}", "traffic_flow", 10.0 + s, "vehicles/5min", "c-bridge"
            )
            out.append(Incoming(reading, 0.0, 1 + 6 * k + s, index=0))
    return out


def test_live_and_changelog_tail_states_give_the_same_result() -> None:
    items = interleaved()
    h = tail_handler()
    first = h.process(items[:270], {})
    restored = {sid: stored(st) for sid, st in first.states.items()}
    a = h.process(items[270:], first.states)
    b = tail_handler().process(items[270:], restored)
    assert [x.to_dict() for x in a.alerts] == [x.to_dict() for x in b.alerts] != []
    for sid in a.states:
        assert state_document(a.states[sid]) == state_document(b.states[sid])


def test_binary_and_json_changelog_entries_restore_the_same_tail_state() -> None:
    items = interleaved()
    first = tail_handler().process(items[:270], {})
    entry = state_bytes(first.states["gauge-1"])
    json_entry = json.dumps(state_document(first.states["gauge-1"])).encode()
    # The format byte, then msgpack with the row's raw float64 bytes: no base64, no JSON.
    assert entry[:1] == STATE_FORMAT and json_entry[:1] == b"{"
    assert len(entry) < 0.8 * len(json_entry)
    binary = {sid: stored(st) for sid, st in first.states.items()}
    as_json = {sid: stored_as_json(st) for sid, st in first.states.items()}
    a = tail_handler().process(items[270:], binary)
    b = tail_handler().process(items[270:], as_json)
    assert [x.to_dict() for x in a.alerts] == [x.to_dict() for x in b.alerts] != []
    for sid in a.states:
        assert state_document(a.states[sid]) == state_document(b.states[sid])


def test_a_restored_state_not_yet_scored_is_written_back_unchanged() -> None:
    # A sensor restored from JSON and not read since keeps its document as it was.
    first = tail_handler().process(interleaved()[:270], {})
    restored = stored_as_json(first.states["gauge-1"])
    assert read_state(state_bytes(restored)) == restored
    robust = stored(handler().process(feed(baseline(40)), {}).states["gauge-1"])
    assert read_state(state_bytes(robust)) == robust


def test_an_unreadable_changelog_entry_is_refused_with_why() -> None:
    good = read_state(
        state_bytes(stored(handler().process(feed(baseline(40)), {}).states["gauge-1"]))
    )
    for entry, reason, why in (
        (b"", UNKNOWN_FORMAT, "leading byte"),
        (b"\x01\xc1", NOT_DECODABLE, "sensor state"),
        (b"{not json", NOT_DECODABLE, "not JSON"),
        (b"[1, 2]", UNKNOWN_FORMAT, "leading byte"),
        (STATE_FORMAT + b"\x93\x01\x02\x03", BAD_SHAPE, "is a list"),
        (state_bytes(good)[:40], NOT_DECODABLE, "truncated"),
        (b"\x02" + state_bytes(good)[1:], NEWER_FORMAT, "format byte 0x02"),
        (b"\xc3\x00", UNKNOWN_FORMAT, "leading byte"),
        # An older or damaged envelope: a field missing, or of another type.
        (state_bytes({k: v for k, v in good.items() if k != "last_ts"}), BAD_SHAPE, "'last_ts'"),
        (state_bytes({**good, "last_offset": "7"}), BAD_SHAPE, "'last_offset' is '7'"),
        (state_bytes({**good, "episode": [1]}), BAD_SHAPE, "'episode'"),
        (state_bytes({**good, "detector": None}), BAD_SHAPE, "'detector'"),
        (orjson.dumps({**good, "last_ts": True}), BAD_SHAPE, "'last_ts' is True"),
        (
            state_bytes({**good, "detector": {"v": 4, "window": 32, "row": b""}}),
            NEWER_FORMAT,
            "tail detector state version 4",
        ),
    ):
        with pytest.raises(UnreadableEntryError) as refused:
            read_state(entry)
        assert refused.value.reason == reason, entry
        assert why in str(refused.value), (entry, str(refused.value))
    # States written before packs have no last_index: still read.
    no_index = {k: v for k, v in good.items() if k != "last_index"}
    assert read_state(state_bytes(no_index)) == no_index


def test_last_value_last_ts_and_the_open_episode_are_judged_at_read_back() -> None:
    # Judged once, when the entry is read back: a field of another type is refused
    # there (bad_shape, counted and audited; the sensor warms up again), not met at
    # every later batch.
    h = handler()
    values = [*baseline(40), baseline(1)[0] * 8]  # a spike: an episode is open
    live = h.process(feed(values), {}).states["gauge-1"]
    good = stored(live)
    assert good["episode"] is not None
    # Missing or null: unknown (NaN); a whole number: a float.
    for entry in (
        state_bytes({k: v for k, v in good.items() if k != "last_value"}),
        state_bytes({**good, "last_value": None}),
        orjson.dumps({**state_document(live), "last_value": None}),
    ):
        got = read_state(entry)["last_value"]
        assert type(got) is float and got != got
    assert read_state(state_bytes({**good, "last_value": 7}))["last_value"] == 7.0
    assert type(read_state(state_bytes({**good, "last_value": 7}))["last_value"]) is float
    assert type(read_state(state_bytes({**good, "last_ts": int(T0)}))["last_ts"]) is float
    episode = good["episode"]
    for bad, why in (
        ({**good, "last_value": "9.5"}, "'last_value' is '9.5'"),
        ({**good, "last_value": True}, "'last_value' is True"),
        ({**good, "last_value": [1.0]}, "'last_value' is [1.0]"),
        ({**good, "last_value": {"v": 1}}, "'last_value' is {'v': 1}"),
        ({**good, "last_value": float("inf")}, "'last_value' is inf"),
        ({**good, "last_ts": float("nan")}, "'last_ts' is nan"),
        ({**good, "last_ts": float("inf")}, "'last_ts' is inf"),
        ({**good, "last_ts": float("-inf")}, "'last_ts' is -inf"),
        ({**good, "last_ts": 1e300}, "'last_ts' is 1e+300"),
        ({**good, "episode": {**episode, "quiet": "2"}}, "episode field 'quiet' is '2'"),
        ({**good, "episode": {**episode, "quiet": -1}}, "episode field 'quiet' is -1"),
        ({**good, "episode": {**episode, "quiet": True}}, "episode field 'quiet' is True"),
        ({**good, "episode": {**episode, "peak_score": None}}, "'peak_score' is None"),
        ({**good, "episode": {**episode, "peak_value": "high"}}, "'peak_value' is 'high'"),
        # t163: a detector's score, from 0 to 1; its resolution carried it to the doors
        # that refuse any other, and its run stayed open.
        ({**good, "episode": {**episode, "peak_score": 1.5}}, "'peak_score' is 1.5"),
        ({**good, "episode": {**episode, "peak_score": -0.0001}}, "'peak_score' is -0.0001"),
        ({**good, "episode": {**episode, "peak_score": 1e300}}, "'peak_score' is 1e+300"),
        ({**good, "episode": {**episode, "started_at": float("nan")}}, "'started_at' is nan"),
        # t154: finite, but no date: written as one when the episode's alert goes out.
        ({**good, "episode": {**episode, "started_at": 1e300}}, "'started_at' is 1e+300"),
        ({**good, "episode": {**episode, "last_anomalous_at": 1e300}}, "'last_anomalous_at'"),
        ({**good, "episode": {**episode, "alert_id": 5}}, "'alert_id' is 5"),
        (
            {**good, "episode": {k: v for k, v in episode.items() if k != "last_anomalous_at"}},
            "'last_anomalous_at' is None",
        ),
    ):
        with pytest.raises(UnreadableEntryError) as refused:
            read_state(state_bytes(bad))
        assert refused.value.reason == BAD_SHAPE
        assert why in str(refused.value), (why, str(refused.value))


def test_a_state_read_back_whole_goes_on_with_its_episode() -> None:
    # The episode that passed read-back is the one the next batch closes.
    h = handler()
    values = [*baseline(40), baseline(1)[0] * 8]
    first = h.process(feed(values), {})
    back = {sid: read_state(state_bytes(st)) for sid, st in first.states.items()}
    quiet = handler().process(feed(baseline(10, seed=3), start=41), back)
    assert [a.status for a in quiet.alerts] == ["resolved"]
    assert quiet.alerts[0].alert_id == first.alerts[0].alert_id


def test_a_resolution_never_ends_before_its_episode_started() -> None:
    """t139: Alertmanager's API refuses an alert whose ``endsAt`` is before its
    ``startsAt`` ("start time must be before end time"), and so does the alerts agent. A
    sensor's readings are taken in event-time order, so its episode's last anomalous
    reading is never before its first; a state read back damaged (or written otherwise)
    could still say so, and its resolution, refused, would leave the run open for ever.
    It ends at the episode's start instead."""
    h = handler()
    values = [*baseline(40), baseline(1)[0] * 8]
    first = h.process(feed(values), {})
    state = stored(first.states["gauge-1"])
    episode = state["episode"]
    damaged = {**episode, "last_anomalous_at": episode["started_at"] - 600.0}
    back = read_state(state_bytes({**state, "episode": damaged}))
    quiet = handler().process(feed(baseline(10, seed=3), start=41), {"gauge-1": back})
    [resolved] = quiet.alerts
    doc = resolved.to_dict()
    assert (doc["status"], doc["started_at"]) == ("resolved", format_ts(episode["started_at"]))
    assert doc["ended_at"] == doc["started_at"]
    # The usual case keeps the last anomalous reading's time.
    ok = handler().process(feed(baseline(10, seed=3), start=41), {"gauge-1": state})
    assert ok.alerts[0].to_dict()["ended_at"] == format_ts(episode["last_anomalous_at"])


def test_a_state_written_by_another_detector_starts_the_detector_over() -> None:
    # The default changed between deployments: robust_zscore's changelog documents must
    # not stop the new default; positions and episodes stand.
    old = handler().process(feed(baseline(40)), {})
    restored = {sid: stored(st) for sid, st in old.states.items()}
    result = tail_handler().process(feed(baseline(5), start=40), restored)
    assert result.scored == 5 and result.redelivered == 0
    assert state_document(result.states["gauge-1"])["detector"]["window"] == 32


# -- the bank path's bookkeeping as columns (BankState) ----------------------------------
def column_batches(seed: int) -> list[list[Incoming]]:
    """Like ``mixed_batches``, over sensors that appear as the stream goes on (new ones
    in every stretch) and readings without a Kafka position (offset -1)."""
    rng = np.random.default_rng(seed)
    last_ts: dict[str, float] = {}
    high: dict[str, int] = {}
    sent: list[Incoming] = []
    batches: list[list[Incoming]] = []
    offset = 0
    for b in range(300):
        batch: list[Incoming] = []
        known = 3 + b // 30  # 3 sensors at first, 12 by the end
        for _ in range(int(rng.integers(2, 30))):
            sensor = f"s{int(rng.integers(0, known)):02d}"
            roll = rng.random()
            if roll < 0.06 and sent:  # a redelivery, from this batch or an earlier one
                pool = batch if batch and rng.random() < 0.3 else sent
                batch.append(pool[int(rng.integers(0, len(pool)))])
                continue
            ts = last_ts.get(sensor, T0) + 300.0
            if roll < 0.10 and sensor in last_ts:
                ts = last_ts[sensor]
            elif roll < 0.13 and sensor in last_ts:
                ts = last_ts[sensor] - 300.0 * int(rng.integers(1, 4))
            else:
                last_ts[sensor] = ts
            if rng.random() < 0.01:
                high[sensor] = int(rng.integers(1, 9))
            value = 10.0 + rng.normal(0.0, 1.0) + (40.0 if high.get(sensor, 0) > 0 else 0.0)
            high[sensor] = high.get(sensor, 0) - 1
            reading = Reading(ts, sensor, "traffic_flow", value, "vehicles/5min", f"c-{sensor}")
            offset += 1
            where = -1 if rng.random() < 0.02 else offset
            item = Incoming(reading, 0.0, where, index=int(rng.integers(0, 3)))
            batch.append(item)
            sent.append(item)
        batches.append(batch)
    return batches


def test_the_column_path_gives_the_per_sensor_rules_result() -> None:
    # The columns' path (``BankState``: one reading per sensor admitted and counted as
    # arrays) against the per-sensor path, field by field, over batches with new sensors,
    # redeliveries within and across batches, duplicates, out-of-order readings, open
    # episodes, readings without an offset, marks below the threshold, followed sensors, a detector fault on one sensor, and states going
    # through the changelog or forgotten (a rebalance) and coming back.
    def fragile(h: SensorDetection) -> None:
        episodes = h._episodes

        def maybe_fail(items: list[Incoming], *rest: Any) -> Any:
            sensor = items[0].reading.sensor_id
            if sensor[-1] in "37" and sensor in singles and items[0].offset % 2:
                raise FloatingPointError("detector bug")
            return episodes(items, *rest)

        h._episodes = maybe_fail  # type: ignore[method-assign]

    # The fault strikes only sensors with one reading in the batch: there the two paths
    # agree; with several, the per-sensor path also relabels the sensor's refused ones
    # (admission runs inside ``_isolated`` there, before it on the bank path, as before).
    singles: set[str] = set()
    seen = {"alerts": 0, "marks": 0, "fast": 0, "errors": 0}
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        fast, slow = tail_handler(), tail_handler()
        fast.mark_at = slow.mark_at = DEFAULT_THRESHOLD - 0.15  # below, as corroboration's
        fast.follow = {"s01", "s05"}
        slow.follow = {"s01", "s05"}
        slow.bank = None
        fragile(fast)
        fragile(slow)
        fast_states: dict[str, Any] = {}
        slow_states: dict[str, Any] = {}
        failed: list[Incoming] = []
        for n, batch in enumerate(column_batches(seed)):
            # A detector's failed readings come again (their state was not advanced).
            batch = failed + batch
            counts = Counter(i.reading.sensor_id for i in batch)
            singles.clear()
            singles.update(sid for sid, k in counts.items() if k == 1)
            a, b = fast.process(batch, fast_states), slow.process(batch, slow_states)
            assert outcome(a) == outcome(b), (seed, n)
            failed = [i for i, code, _ in a.rejected if code == "detector_error"]
            seen["alerts"] += len(a.alerts)
            seen["marks"] += len(a.marks)
            seen["errors"] += sum(code == "detector_error" for _, code, _ in a.rejected)
            seen["fast"] += sum(type(st) is BankState for st in a.states.values())
            fast_states, slow_states = {**fast_states, **a.states}, {**slow_states, **b.states}
            # Every stored state, touched or not (a fast sensor's is updated in place).
            assert {sid: stored(st) for sid, st in fast_states.items()} == {
                sid: stored(st) for sid, st in slow_states.items()
            }
            # Both workers read the same sensors back (a restart reads every state of a
            # partition back): a state read back from the changelog is not advanced by a
            # batch that failed on it, a live one is (the stored object itself learned),
            # so reading back only one side compared a restart with no restart.
            if n % 5 == 4:  # some states read back from the changelog (a restart)
                for sid in list(fast_states):
                    if rng.random() < 0.4:
                        fast_states[sid] = stored(fast_states[sid])
                        slow_states[sid] = stored(slow_states[sid])
            if n % 9 == 8:  # a lost partition's sensors: gone, or back from the changelog
                for sid in list(fast_states):
                    roll = rng.random()
                    if roll < 0.15:
                        del fast_states[sid], slow_states[sid]
                    elif roll < 0.3:
                        fast_states[sid] = stored(fast_states[sid])
                        slow_states[sid] = stored(slow_states[sid])
    assert all(seen.values()), seen


def test_a_bank_state_writes_the_changelog_entry_of_its_dict() -> None:
    h = tail_handler()
    first = h.process(interleaved()[:270], {})
    state = first.states["gauge-2"]
    assert type(state) is BankState
    as_dict = state.as_dict()
    assert dict(state) == as_dict and state["last_offset"] == as_dict["last_offset"] == 268
    assert state_bytes(state) == state_bytes(as_dict)  # the changelog format, unchanged
    assert state_document(state) == state_document(as_dict)
    assert (
        read_state(state_bytes(state))["detector"]["row"]
        == as_dict["detector"].bank.record(as_dict["detector"].slot, raw=True)["row"]
    )


def test_a_bank_state_is_updated_in_place_and_one_left_behind_is_not_used() -> None:
    h = tail_handler()
    items = interleaved()
    first = h.process(items[:150], {})
    state = first.states["gauge-1"]
    second = h.process(items[150:153], first.states)
    assert second.states["gauge-1"] is state and state["last_offset"] == 150
    # Two readings of each sensor: the per-sensor way, written back into the same state.
    third = h.process(items[153:159], second.states)
    assert third.states["gauge-1"] is state and state["last_offset"] == 156
    # Another detection's state (a table it never wrote) goes the per-sensor way there:
    # its own numbers, not the columns of the slot it names.
    other = tail_handler()
    held = other.process(feed([1.0], "gauge-0"), {})  # (kept: its slots are not h's)
    again = other.process(items[153:156], {sid: stored(st) for sid, st in first.states.items()})
    foreign = h.process(items[156:159], again.states)
    reference = tail_handler().process(
        items[156:159], {sid: stored(st) for sid, st in again.states.items()}
    )
    assert outcome(foreign)[:-1] == outcome(reference)[:-1] and held.scored == 1
    assert {s: state_document(v) for s, v in foreign.states.items()} == {
        s: state_document(v) for s, v in reference.states.items()
    }


def test_a_value_the_bank_refuses_costs_only_its_sensors_accepted_readings() -> None:
    # The bank refuses the whole batch (an infinite value): it is scored sensor by
    # sensor, the sensor with the bad value loses its accepted readings of the batch
    # (detector_error) and keeps its stored state; every other sensor, whichever path
    # it takes, ends as in the same batch without that sensor.
    items = interleaved()
    h, clean = tail_handler(), tail_handler()
    first = h.process(items[:270], {})
    base = clean.process(items[:270], {})
    bad = Incoming(
        Reading(items[270].reading.ts, "gauge-1", "water_level", float("inf"), "ft", "c-bridge"),
        0.0,
        offset=270,
    )
    before = first.states["gauge-1"].as_dict()
    batch = [bad, *items[271:300]]
    result = h.process(batch, dict(first.states))
    reference = clean.process([i for i in batch if i.reading.sensor_id != "gauge-1"], base.states)
    refused = [(i.offset, code) for i, code, _ in result.rejected]
    assert refused == [
        (i.offset, "detector_error") for i in batch if i.reading.sensor_id == "gauge-1"
    ]
    assert "gauge-1" not in result.states
    assert {k: v for k, v in first.states["gauge-1"].as_dict().items() if k != "detector"} == {
        k: v for k, v in before.items() if k != "detector"
    }
    assert [a.to_dict() for a in result.alerts] == [a.to_dict() for a in reference.alerts]
    assert result.scored == reference.scored
    assert {s: state_document(v) for s, v in result.states.items()} == {
        s: state_document(v) for s, v in reference.states.items()
    }


def test_marks_and_alerts_keep_the_order_of_the_batch_across_both_paths() -> None:
    # Every reading marked (mark_at 0): quiet sensors' marks (counted as arrays) and a
    # flagged sensor's (the per-sensor way) come out in batch order, as one at a time.
    items = interleaved()
    fast, slow = tail_handler(), tail_handler()
    fast.mark_at = slow.mark_at = 0.0
    slow.bank = None
    fast_states: dict[str, Any] = {}
    slow_states: dict[str, Any] = {}
    for tick in range(0, len(items), 3):
        batch = items[tick : tick + 3]
        a, b = fast.process(batch, fast_states), slow.process(batch, slow_states)
        assert outcome(a) == outcome(b)
        assert [m[0] for m in a.marks] == [i.reading.sensor_id for i in batch]
        fast_states, slow_states = {**fast_states, **a.states}, {**slow_states, **b.states}


def test_a_fault_on_a_sensor_with_several_readings_keeps_its_stored_state() -> None:
    # Twenty readings of each gauge in one batch (their bookkeeping admitted as arrays);
    # gauge-2's jump is flagged and its episode walk fails: only its readings are
    # dead-lettered, its stored state stays where it was, the others move on.
    items = interleaved()
    h = tail_handler()
    first = h.process(items[:270], {})
    states = dict(first.states)
    kept = {k: v for k, v in states["gauge-2"].as_dict().items() if k != "detector"}
    episodes = h._episodes

    def failing(its: list[Incoming], *rest: Any) -> Any:
        if its[0].reading.sensor_id == "gauge-2":
            raise FloatingPointError("detector bug")
        return episodes(its, *rest)

    h._episodes = failing  # type: ignore[method-assign]
    batch = items[270:330]
    result = h.process(batch, states)
    mine = [i for i in batch if i.reading.sensor_id == "gauge-2"]
    assert [(i.offset, code) for i, code, _ in result.rejected] == [
        (i.offset, "detector_error") for i in mine
    ]
    assert "gauge-2" not in result.states and result.alerts == []
    assert {k: v for k, v in states["gauge-2"].as_dict().items() if k != "detector"} == kept
    assert result.states["gauge-1"]["last_offset"] == 327 and result.scored == 40


def test_after_a_log_reset_newer_readings_are_taken_and_older_ones_stay_redeliveries() -> None:
    # Trial 10: the readings topic deleted and re-created starts again at offset 0; each
    # sensor's stored position was far past it, so every new reading was skipped as a
    # redelivery. A reading before the stored position but newer in event time cannot be
    # one (everything processed there was at or before the last event time).
    for make in (handler, tail_handler):
        for per_batch in (1, 3):  # one reading of a sensor per batch, and several
            h = make()
            first = h.process(feed(baseline(60), start=1000), {})
            state: Any = stored(first.states["gauge-1"])
            reset = feed(baseline(6, seed=4), start=1060)  # newer event times ...
            for i, item in enumerate(reset):
                item.offset = i  # ... at the new log's offsets 0, 1, 2, ...
            old = feed(baseline(2, seed=5), start=1058)  # at or before the last event time
            for i, item in enumerate(old):
                item.offset = i
            scored = redelivered = 0
            for items in (old, *(reset[k : k + per_batch] for k in range(0, 6, per_batch))):
                r = make().process(items, {"gauge-1": state})
                state = stored(r.states["gauge-1"])
                scored, redelivered = scored + r.scored, redelivered + r.redelivered
                assert r.rejected == []
            assert (scored, redelivered) == (6, 2), (make, per_batch)
            assert state["last_offset"] == 5
            # And the new log's readings are redeliveries of themselves from there on.
            again = make().process(reset[-2:], {"gauge-1": state})
            assert (again.scored, again.redelivered) == (0, 2)


# -- extreme values across the bank's interleaved sensors (t78) -------------------------
SENSORS_AT_SCALE = 2000
STEPS = 60


def _at_scale_series() -> tuple[np.ndarray, np.ndarray]:
    """Every sensor's values and times (sensors x steps): gauges at their own levels,
    five-minute readings, each sensor's clock offset by a few seconds."""
    rng = np.random.default_rng(78)
    levels = rng.uniform(0.5, 50.0, (SENSORS_AT_SCALE, 1))
    values = levels + rng.normal(0.0, 0.05, (SENSORS_AT_SCALE, STEPS)) * levels
    offsets = rng.uniform(0.0, 60.0, (SENSORS_AT_SCALE, 1))
    times = T0 + offsets + 300.0 * np.arange(STEPS)[None, :]
    return values, times


def _special(values: np.ndarray, times: np.ndarray) -> dict[int, str]:
    """Put the cases into a few sensors (sensor -> case): a sentinel as the first reading,
    in warm-up, after a constant run, after a three-hour silence, after warm-up; -1e300;
    a sensor at 0.0 sending -0.0, one of subnormals, one at 1e-308."""
    dbl_max = float(np.finfo(np.float64).max)
    cases = {
        11: "first",
        222: "warm_up",
        333: "after_constant",
        444: "after_silence",
        555: "after_warm_up",
        666: "minus_1e300",
        777: "signed_zeros",
        888: "subnormals",
        999: "tiny",
    }
    values[11, 0] = dbl_max
    # (At steps that come in a batch of one step: ``_run_at_scale`` reports their scores.)
    values[222, 6] = -dbl_max
    values[333, :51] = 20.0
    values[333, 51] = 1e308
    times[444, 41:] += 3 * 3600.0
    values[444, 41] = dbl_max
    values[555, 46] = 1e308
    values[666, 47] = -1e300
    values[777] = np.where(np.arange(STEPS) % 3 == 0, -0.0, 0.0)
    values[888] = np.tile([5e-324, 0.0, -5e-324, 1e-320], STEPS // 4)
    values[999] = 1e-308 * (1.0 + 0.01 * np.sin(np.arange(STEPS)))
    return cases


def _run_at_scale(
    values: np.ndarray, times: np.ndarray, sensors: np.ndarray
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[tuple[str, int], float]]:
    """Feed ``sensors`` interleaved (each time step's readings in a shuffled order; every
    fifth batch two steps at once, so a sensor has two readings in it) through the bank
    path: (each sensor's final state document, the alerts, each single-step reading's
    score as the batch reports it for a followed sensor)."""
    h = tail_handler()
    h.follow = {f"g-{s}" for s in sensors.tolist()}
    rng = np.random.default_rng(5)
    states: dict[str, Any] = {}
    alerts: list[dict[str, Any]] = []
    scores: dict[tuple[str, int], float] = {}
    step = 0
    while step < STEPS:
        span = 2 if step % 5 == 4 and step + 1 < STEPS else 1
        batch = []
        for r in range(step, step + span):
            for s in rng.permutation(sensors).tolist():
                reading = Reading(
                    float(times[s, r]), f"g-{s}", "water_level", float(values[s, r]), "ft", "c"
                )
                batch.append(Incoming(reading, 0.0, offset=r * SENSORS_AT_SCALE + s))
        result = h.process(batch, states)
        assert result.rejected == []
        states = {**states, **result.states}
        alerts += [a.to_dict() for a in result.alerts]
        if span == 1:
            for sid, last in result.last.items():
                scores[(sid, step)] = last[4]
        step += span
    return {s: state_document(v) for s, v in states.items()}, alerts, scores


def test_a_sentinel_among_thousands_of_interleaved_sensors_scores_as_that_sensor_alone() -> None:
    # The stream scores a batch across sensors at once (one TailBank): a sensor sending a
    # far glitch -- first, in warm-up, after a constant run or a silence -- or signed
    # zeros, subnormals or values near 1e-308 scores exactly as alone, its sentinel 1,
    # and changes no other sensor's scores, alerts or state.
    values, times = _at_scale_series()
    clean_values = values.copy()
    cases = _special(values, times)
    everyone = np.arange(SENSORS_AT_SCALE)
    states, alerts, scores = _run_at_scale(values, times, everyone)
    # Every sensor, special or not, ends in the state it reaches alone (the same
    # readings through the single-series detector), and scored each reading as alone.
    for s in [*cases, 0, 1, 1234, SENSORS_AT_SCALE - 1]:
        alone = TailDetector()
        expected = alone.score_many(values[s], times[s])
        assert states[f"g-{s}"]["detector"] == alone.get_state(), cases.get(s, s)
        got = [scores.get((f"g-{s}", r)) for r in range(STEPS)]
        assert sum(score is not None for score in got) == 38  # (the one-step batches')
        for r, score in enumerate(got):
            if score is not None:
                assert score == expected[r], (cases.get(s, s), r)
    sentinel_at = {"first": 0, "warm_up": 6, "after_constant": 51, "after_silence": 41}
    sentinel_at |= {"after_warm_up": 46, "minus_1e300": 47}
    for s, case in cases.items():
        if case in sentinel_at:
            assert scores[(f"g-{s}", sentinel_at[case])] == 1.0, case
            assert any(a["sensor_id"] == f"g-{s}" and a["score"] == 1.0 for a in alerts), case
    # No other sensor notices: the run without the special sensors gives the rest the
    # same states and alerts.
    others = np.setdiff1d(everyone, list(cases))
    clean_states, clean_alerts, _ = _run_at_scale(clean_values, times, others)
    special = {f"g-{s}" for s in cases}
    assert {k: v for k, v in states.items() if k not in special} == clean_states
    assert [a for a in alerts if a["sensor_id"] not in special] == clean_alerts


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_value_among_thousands_of_sensors_costs_only_its_sensor(bad: float) -> None:
    # The validator dead-letters NaN and +-inf (not_finite, docs/events.md) before any
    # detector; one that reaches the bank anyway (a state or a caller bypassing it) is
    # refused for its sensor's readings alone, with the reason, and every other sensor of
    # the batch is scored as without it.
    values, times = _at_scale_series()
    everyone = np.arange(SENSORS_AT_SCALE)

    def batch(step: int, poisoned: bool) -> list[Incoming]:
        out = []
        for s in everyone.tolist():
            value = bad if poisoned and s == 42 else float(values[s, step])
            reading = Reading(float(times[s, step]), f"g-{s}", "water_level", value, "ft", "c")
            out.append(Incoming(reading, 0.0, offset=step * SENSORS_AT_SCALE + s))
        return out

    h, clean = tail_handler(), tail_handler()
    states: dict[str, Any] = {}
    clean_states: dict[str, Any] = {}
    for step in range(40):
        states = {**states, **h.process(batch(step, False), states).states}
        clean_states = {**clean_states, **clean.process(batch(step, False), clean_states).states}
    result = h.process(batch(40, True), states)
    reference = clean.process(
        [i for i in batch(40, False) if i.reading.sensor_id != "g-42"], clean_states
    )
    assert [(i.reading.sensor_id, code) for i, code, _ in result.rejected] == [
        ("g-42", "detector_error")
    ]
    assert "g-42" not in result.states
    assert {s: state_document(v) for s, v in result.states.items()} == {
        s: state_document(v) for s, v in reference.states.items()
    }


def test_a_state_whose_last_reading_is_past_the_year_9999_costs_no_other_sensor() -> None:
    """t154: a stored ``last_ts`` of 1e300 (finite: a damaged entry) passed read-back.
    Every reading of its sensor was then out of order, and its refusal, showing 1e300
    as a date, raised OverflowError: on the bank path (the default) the whole batch
    failed, every other sensor's readings in it too, at each batch that held one of its
    readings. Now recovery refuses the entry (bad_shape, counted and audited) and the
    sensor warms up again; the batch is scored whole."""
    states = tail_handler().process([*feed(baseline(20)), *feed(baseline(20), "gauge-2")], {})
    entry = state_bytes({**stored(states.states["gauge-1"]), "last_ts": 1e300})
    got = guarded(read_state)(entry)  # as table recovery reads it
    assert type(got) is Unreadable and got.reason == BAD_SHAPE
    assert "'last_ts' is 1e+300" in got.detail
    # Recovery drops an Unreadable entry: gauge-1 has no state, gauge-2 its own.
    kept = {"gauge-2": stored(states.states["gauge-2"])}
    batch = [*feed(baseline(3), start=20), *feed(baseline(3), "gauge-2", start=20)]
    result = tail_handler().process(batch, kept)
    assert result.scored == 6 and result.rejected == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("last_offset", 2**63),
        ("last_offset", 2**64 - 1),
        ("last_index", 2**63),
    ],
)
def test_a_stored_position_no_int64_holds_costs_no_other_sensor(field: str, value: int) -> None:
    """t156: msgpack reads whole numbers up to 2**64 - 1, and a ``last_offset`` or
    ``last_index`` past int64 passed read-back. The bank path keeps positions in int64
    columns: a redelivered reading of the sensor (older, so the stored position stays)
    wrote it back and raised OverflowError out of the whole batch, every other sensor's
    readings with it. Now read-back refuses the entry (bad_shape, naming the field and
    value) and the sensor warms up again; the batch is scored whole."""
    states = tail_handler().process([*feed(baseline(40)), *feed(baseline(40), "gauge-2")], {})
    good = stored(states.states["gauge-1"])
    entry = state_bytes({**good, "last_ts": T0 + 1e6, field: value})
    got = guarded(read_state)(entry)  # as table recovery reads it
    assert type(got) is Unreadable and got.reason == BAD_SHAPE
    assert f"field {field!r} is {value}" in got.detail
    # The edges themselves read back.
    for edge in (-(2**63), 2**63 - 1):
        assert read_state(state_bytes({**good, field: edge}))[field] == edge
    # Recovery drops the Unreadable entry: gauge-1 starts over, gauge-2 goes on.
    kept = {"gauge-2": stored(states.states["gauge-2"])}
    batch = [*feed(baseline(3), start=10), *feed(baseline(3), "gauge-2", start=40)]
    result = tail_handler().process(batch, kept)
    assert result.scored == 6 and result.rejected == []


def test_a_stored_episode_whose_alert_id_no_alert_can_carry_is_unreadable() -> None:
    """t156: an open episode's ``alert_id`` was judged non-empty text, of any length.
    Its resolution carries it to the corroboration and alerts topics, whose doors refuse
    an id past MAX_ID_CHARS; one of 1,000,000 characters made the alert larger than one
    Kafka message, and the send failed the whole readings batch at every batch that
    resolved it. The sibling of the silence id's bound (t154)."""
    h = handler()
    live = h.process(feed([*baseline(40), baseline(1)[0] * 8]), {}).states["gauge-1"]
    good = stored(live)
    assert good["episode"] is not None
    for chars in (MAX_ID_CHARS + 1, 1_000_000):
        bad = {**good, "episode": {**good["episode"], "alert_id": "a" * chars}}
        with pytest.raises(UnreadableEntryError) as refused:
            read_state(state_bytes(bad))
        assert refused.value.reason == BAD_SHAPE
        assert f"({chars:,} characters), expected at most {MAX_ID_CHARS}" in str(refused.value)
    edge = {**good, "episode": {**good["episode"], "alert_id": "a" * MAX_ID_CHARS}}
    assert read_state(state_bytes(edge))["episode"]["alert_id"] == "a" * MAX_ID_CHARS


def test_a_stored_state_that_raises_while_made_live_starts_its_detector_over_on_the_bank_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t156: the bank path (the default) made a sensor's stored state live and applied
    the delivery rules (``_admit_sensor``) outside the per-sensor guard that the
    per-sensor path runs them under: a state read back that raised there (here the
    bank's ``load`` raising what no state check foresaw) failed the whole batch, every
    other sensor's readings with it. t156 then dead-lettered only its sensor's readings
    and kept the stored state, so every later batch of the sensor failed alike, for good
    (t163): a detector document its detector cannot take, whatever it raises, now starts
    that sensor's detector over, as one written by another detector does, said in
    ``BatchResult.restarted``; its positions stand, and a retry is all redeliveries."""
    first = tail_handler().process([*feed(baseline(40)), *feed(baseline(40), "gauge-2")], {})
    odd = {**stored(first.states["gauge-1"]), "detector": {"odd": True}}
    kept = {"gauge-1": odd, "gauge-2": stored(first.states["gauge-2"])}
    real_load = TailBank.load

    def load(self: TailBank, slot: int, document: dict[str, Any]) -> None:
        if document.get("odd"):
            raise OverflowError("a state no check foresaw")
        real_load(self, slot, document)

    monkeypatch.setattr(TailBank, "load", load)
    batch = [*feed(baseline(3), start=40), *feed(baseline(3), "gauge-2", start=40)]
    h = tail_handler()
    result = h.process(batch, kept)
    assert result.scored == 6 and result.rejected == []
    assert result.restarted == [("gauge-1", "OverflowError: a state no check foresaw")]
    assert set(result.states) == {"gauge-1", "gauge-2"}
    # The batch read again (a retry): every reading a redelivery, neither lost nor taken
    # twice.
    again = h.process(batch, dict(result.states))
    assert again.scored == 0 and again.redelivered == 6 and again.rejected == []


# -- a detector state read back that its own detector cannot use ----------------------
# (sibling of the extreme-value-detector and unreadable-state kinds: the envelope was
# judged at read-back, the detector's own document was not). Each poisoned the sensor for
# good: set_state raised what no caller caught, or took the document and every batch then
# raised (all the sensor's readings dead-lettered, the stored state kept) or scored NaN.
def _poisoned(name: str, path: tuple[str, ...], bad: Any) -> tuple[SensorDetection, dict]:
    from detectors import DETECTORS, default_threshold

    detection = SensorDetection(
        DETECTORS[name](), ScoreThreshold(default_threshold(name)), quiet_readings=3
    )
    first = detection.process(feed(baseline(100)), {})
    doc = stored(first.states["gauge-1"])
    where = doc["detector"]
    for key in path[:-1]:
        where = where[key]
    where[path[-1]] = bad(where[path[-1]])
    return detection, stored(doc)


UNUSABLE_STATES = {
    "windowed_gaussian NaN window (scores NaN)": (
        "windowed_gaussian",
        ("values",),
        lambda v: [math.nan] * len(v),
    ),
    "ewma_cusum negative variance (ValueError at each score)": (
        "ewma_cusum",
        ("var",),
        lambda v: -1.0,
    ),
    "ewma_cusum infinite high sum (scores NaN)": ("ewma_cusum", ("high",), lambda v: math.inf),
    "ewma_cusum empty far run (IndexError in set_state)": ("ewma_cusum", ("run",), lambda v: []),
    "ensemble count of inf (OverflowError in set_state)": (
        "ensemble",
        ("in_block",),
        lambda v: math.inf,
    ),
    "ensemble count of 1e30 (ValueError at each score)": (
        "ensemble",
        ("in_block",),
        lambda v: 1e30,
    ),
    "stuck interval as text (TypeError at each score)": ("stuck", ("interval",), lambda v: "1"),
    "ewma_cusum NaN mean (every later reading scored 0)": (
        "ewma_cusum",
        ("mean",),
        lambda v: math.nan,
    ),
    "robust_zscore packed NaN window (scores NaN)": (
        "robust_zscore",
        ("window",),
        lambda v: pack_floats([math.nan] * len(unpack_floats(v))),
    ),
}


@pytest.mark.parametrize("case", sorted(UNUSABLE_STATES))
def test_a_detector_state_read_back_that_its_detector_cannot_use_starts_it_over(
    case: str,
) -> None:
    name, path, bad = UNUSABLE_STATES[case]
    detection, state = _poisoned(name, path, bad)
    first = detection.process(feed(baseline(5, seed=2), start=100), {"gauge-1": state})
    # Scored by a fresh detector, not dead-lettered; positions stand; said once.
    assert first.rejected == [] and first.scored == 5
    assert [sid for sid, _ in first.restarted] == ["gauge-1"]
    state = stored(first.states["gauge-1"])
    assert state["last_offset"] == 104
    detection.follow = {"gauge-1"}  # (its last score reported)
    later = detection.process(feed(baseline(200, seed=3), start=105), {"gauge-1": state})
    assert later.rejected == [] and later.scored == 200 and later.restarted == []
    assert 0.0 <= later.last["gauge-1"][4] <= 1.0
    # The detector learned again: a clear spike scores as an anomaly (the stuck-sensor
    # detector judges flat runs, not values).
    spike = detection.process(feed([40.0], start=305), {"gauge-1": later.states["gauge-1"]})
    if name != "stuck":
        assert spike.last["gauge-1"][4] >= detection.threshold.threshold, case


def test_a_live_detectors_score_out_of_0_1_is_dead_lettered_not_passed_on() -> None:
    class Broken(RobustZScore):
        def score_one(self, x: float, t: float | None = None) -> float:
            return math.nan if x == 666.0 else super().score_one(x, t)

        def clone(self) -> Broken:
            return Broken(window=48, min_samples=12)

    detection = SensorDetection(Broken(window=48, min_samples=12), ScoreThreshold(0.6), 3)
    first = detection.process(feed(baseline(20)), {})
    result = detection.process(feed([2.0, 666.0], start=20), first.states)
    assert [(i.reading.value, code) for i, code, _ in result.rejected] == [
        (2.0, "detector_error"),
        (666.0, "detector_error"),
    ]
    assert "score nan of reading 1 is not in [0, 1]" in result.rejected[0][2]
    assert result.restarted == []


@pytest.mark.parametrize("value", [math.nan, 1e300])
def test_a_tail_record_read_back_with_a_count_it_never_writes_starts_the_detector_over(
    value: float,
) -> None:
    # The default detector's row was taken as any bytes of the right length: a count of
    # readings of NaN or 1e300 left its sensor blind for good (t163; a spike 300
    # readings later scored 0, nothing said). Its detector starts over now.
    first = tail_handler().process(feed(baseline(200)), {})
    doc = stored(first.states["gauge-1"])
    row = np.frombuffer(doc["detector"]["row"], dtype="<f8").copy()
    row[0] = value
    doc["detector"]["row"] = row.tobytes()
    h = tail_handler()
    h.follow = {"gauge-1"}
    later = h.process(feed(baseline(300, seed=4), start=200), {"gauge-1": stored(doc)})
    assert later.scored == 300 and later.rejected == []
    [(sensor, why)] = later.restarted
    assert sensor == "gauge-1" and f"value {value!r} at 0 is no value" in why
    spike = h.process(feed([40.0], start=500), dict(later.states))
    assert spike.last["gauge-1"][4] >= DEFAULT_THRESHOLD
    assert [a.status for a in spike.alerts] == ["firing"]


def test_an_episodes_resolution_passes_the_corroboration_door_after_read_back() -> None:
    # The resolution of an episode read back carries its peak score to the corroboration
    # topic, whose door refuses a score outside [0, 1] (bad_alert): read back with a peak
    # score of 1.5 (t163), the resolution was dead-lettered and its run never resolved.
    h = handler()
    first = h.process(feed([*baseline(40), baseline(1)[0] * 8]), {})
    state = stored(first.states["gauge-1"])
    assert state["episode"] is not None
    for peak in (1.5, 0.97):
        damaged = {**state, "episode": {**state["episode"], "peak_score": peak}}
        try:
            back = read_state(state_bytes(damaged))
        except UnreadableEntryError:
            assert peak == 1.5
            continue
        quiet = handler().process(feed(baseline(10, seed=3), start=41), {"gauge-1": back})
        [resolved] = quiet.alerts
        checked_message({"type": "alert", "alert": resolved.to_dict()}, NOW, 300.0)
