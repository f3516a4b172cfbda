"""The batch admission gives what ``admit`` gives message by message, whatever the bytes:
the same readings in the same order, the same refusals (reason, field-naming message,
place in the batch and in the pack, dead-letter bytes) for the same messages, and one
message's or packed reading's fault costs no other. Single ``reading/1`` messages and
``readings/1`` packs alike."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playbooks.grid import Grid
from streams.columns import BatchAdmission
from streams.detection import Incoming, admit
from streams.events import MAX_PACK_READINGS, EventValidator
from streams.partitioning import sensor_partition
from tests.unit.streams.test_poison_pills import BIG_INT, GOOD, NOW, hostile, raw_with_value
from tests.unit.streams.test_validation_fuzz import json_values, mutated

PARTITIONS = 2
# The fixture grid's sensors (tests/fixtures/grid.yaml): gauge-1 lives on partition 1 of
# 2, the others on 0, so a pack on either partition holds readings that belong elsewhere.
SENSORS: list[dict[str, Any]] = [
    {"sensor_id": "gauge-1", "kind": "water_level", "unit": "ft", "grid_cell": "c-bridge"},
    {"sensor_id": "gauge-2", "kind": "water_level", "unit": "ft", "grid_cell": "c-mill"},
    {"sensor_id": "air-1", "kind": "pm25", "unit": "ug/m3", "grid_cell": "c-top"},
]
# Right-typed values that break a rule for some sensor (another sensor's kind, unit or
# cell; a time without a zone, too old, in the future; nobody's id).
WRONG: dict[str, list[str]] = {
    "ts": ["2026-11-01T10:00:00", "1989-12-31T23:59:59Z", "2099-01-01T00:00:00Z", ""],
    "sensor_id": ["gauge-1", "gauge-2", "air-1", "ghost"],
    "kind": ["water_level", "pm25", "pm10"],
    "unit": ["ft", "ug/m3", "m"],
    "grid_cell": ["c-bridge", "c-mill", "c-top", "c-nowhere"],
}
Refusal = tuple[int, str, str, int | None, bytes | None]


def good(n: int) -> bytes:
    """A valid reading of gauge-1, ``n`` minutes into the fixture's day."""
    return json.dumps({**GOOD, "ts": f"2026-11-01T10:{n:02d}:00Z"}).encode()


def per_message(
    grid: Grid, values: list[bytes], partitions: list[int]
) -> tuple[list[Incoming], list[Refusal]]:
    validator = EventValidator(grid)

    def home(sensor_id: str) -> int:
        return sensor_partition(sensor_id, PARTITIONS)

    incoming: list[Incoming] = []
    refused: list[Refusal] = []
    for i, (value, partition) in enumerate(zip(values, partitions, strict=True)):
        a, r = admit(validator, value, NOW, partition, home, 100 + i, 5.0 + i)
        incoming.extend(a)
        refused.extend((i, x.error.code, str(x.error), x.index, x.raw) for x in r)
    return incoming, refused


def batched(
    grid: Grid, values: list[bytes], partitions: list[int]
) -> tuple[list[Incoming], list[Refusal]]:
    admission = BatchAdmission(EventValidator(grid), PARTITIONS)
    offsets = [100 + i for i in range(len(values))]
    received = [5.0 + i for i in range(len(values))]
    incoming, refused = admission.admit(values, partitions, offsets, received, NOW)
    return incoming, [(i, r.error.code, str(r.error), r.index, r.raw) for i, r in refused]


def assert_batch_agrees(grid: Grid, values: list[bytes], partitions: list[int]) -> None:
    """The batch admission's readings and refusals equal ``admit``'s message by message."""
    incoming, refused = batched(grid, values, partitions)
    expected_in, expected_out = per_message(grid, values, partitions)
    assert same(incoming, expected_in)
    assert refused == expected_out


def same(a: list[Incoming], b: list[Incoming]) -> bool:
    key: Any = lambda i: (i.reading, i.received_at, i.offset, i.raw, i.index)  # noqa: E731
    return [key(i) for i in a] == [key(i) for i in b]


def home_of_gauge() -> int:
    return sensor_partition(str(GOOD["sensor_id"]), PARTITIONS)


def test_valid_readings_are_admitted_in_order_with_their_positions(grid: Grid) -> None:
    values = [good(n) for n in range(5)]
    partitions = [home_of_gauge()] * 5
    incoming, refused = batched(grid, values, partitions)
    assert refused == []
    assert [i.offset for i in incoming] == [100, 101, 102, 103, 104]
    assert [i.raw for i in incoming] == values
    assert same(incoming, per_message(grid, values, partitions)[0])


def test_poison_messages_cost_only_themselves_with_the_validators_reasons(grid: Grid) -> None:
    deep = raw_with_value("[" * 1100 + "]" * 1100)
    pack = json.dumps({"schema": "readings/1", "readings": [GOOD, {**GOOD, "value": "x"}]})
    values = [
        good(1),
        raw_with_value(BIG_INT),  # the field case: out_of_range, not an overflow
        deep,  # nested deeper than the stack: bad_json
        good(2),
        b"",  # a tombstone
        json.dumps({**GOOD, "value": float("nan")}).encode(),  # bare NaN, Python's json
        json.dumps({**GOOD, "value": True}).encode(),
        pack.encode(),
        good(3),
    ]
    home = home_of_gauge()
    partitions = [home] * len(values)
    incoming, refused = batched(grid, values, partitions)
    expected_in, expected_out = per_message(grid, values, partitions)
    assert same(incoming, expected_in)
    assert refused == expected_out
    codes = {i: code for i, code, _, _, _ in refused}
    assert codes[1] == "out_of_range" and codes[2] == "bad_json" and codes[4] == "bad_json"
    assert codes[5] == "not_finite" and codes[6] == "bad_type"
    assert [(i, idx) for i, _, _, idx, _ in refused if i == 7] == [(7, 1)]
    assert [i.offset for i in incoming] == [100, 103, 107, 108]


def test_a_reading_on_another_partition_is_refused_as_admit_refuses_it(grid: Grid) -> None:
    other = 1 - home_of_gauge()
    incoming, refused = batched(grid, [good(1)], [other])
    assert list(incoming) == []
    assert refused == per_message(grid, [good(1)], [other])[1]
    assert refused[0][1] == "wrong_partition"


@settings(max_examples=800, deadline=None)
@given(
    st.lists(st.one_of(hostile, mutated(), st.builds(good, st.integers(0, 59))), max_size=6),
    st.lists(st.integers(0, PARTITIONS - 1), min_size=6, max_size=6),
)
def test_a_batch_admits_and_refuses_as_admit_does_message_by_message(
    grid: Grid, values: list[bytes], partitions: list[int]
) -> None:
    assert_batch_agrees(grid, values, partitions[: len(values)])


def with_duplicate(doc: dict[str, Any], key: str, value: Any) -> str:
    """``doc`` as JSON text with ``key`` written once more before the rest (JSON parsers
    here keep the last of duplicated keys)."""
    return (
        "{"
        + json.dumps(key)
        + ": "
        + json.dumps(value, allow_nan=True)
        + ", "
        + json.dumps(doc, allow_nan=True)[1:]
    )


@st.composite
def typed_reading(draw: st.DrawFn) -> dict[str, Any]:
    """A packed reading whose fields have the right JSON types (so its pack decodes into
    typed rows) but may break any other rule: schema, sensor, kind, unit, cell, range,
    timestamp, or a sensor homed on another partition."""
    doc: dict[str, Any] = {
        "ts": f"2026-11-01T10:{draw(st.integers(0, 59)):02d}:00Z",
        **draw(st.sampled_from(SENSORS)),
        "value": draw(st.one_of(st.integers(-5, 5), st.floats(-5, 5), st.floats(-2000, 6000))),
    }
    schema = draw(st.sampled_from(["reading/1"] * 3 + [None] * 3 + ["readings/1", ""]))
    if schema is not None:
        doc["schema"] = schema
    if draw(st.integers(0, 2)) == 0:
        field = draw(st.sampled_from(sorted(WRONG)))
        doc[field] = draw(st.one_of(st.sampled_from(WRONG[field]), st.text(max_size=12)))
    return doc


@st.composite
def packed_reading(draw: st.DrawFn) -> str:
    """A packed reading as JSON text: a typed one (good or breaking a rule), one with a
    field of any JSON value or dropped, a duplicated key, or not an object."""
    doc = draw(typed_reading())
    shape = draw(st.integers(0, 15))
    if shape == 0:
        return json.dumps(draw(json_values), allow_nan=True)
    if shape == 1:
        key = draw(st.sampled_from(["value", "sensor_id", "ts", "schema"]))
        return with_duplicate(doc, key, draw(st.one_of(json_values, st.just(doc.get(key)))))
    if shape == 2:
        for field in draw(st.lists(st.sampled_from(sorted(doc)), min_size=1, max_size=2)):
            if draw(st.booleans()):
                doc.pop(field, None)
            else:
                doc[field] = draw(json_values)
    return json.dumps(doc, allow_nan=True)


@st.composite
def pack(draw: st.DrawFn) -> bytes:
    """A ``readings/1`` message: good and bad members, sometimes an empty list, a
    duplicated ``readings`` key, another schema, or cut short."""
    typed = st.builds(json.dumps, typed_reading())
    members = draw(st.lists(draw(st.sampled_from([typed, packed_reading()])), max_size=6))
    body = '"readings": [' + ", ".join(members) + "]"
    schema = draw(st.sampled_from(["readings/1"] * 6 + ["reading/1", "readings/2"]))
    text = "{" + f'"schema": {json.dumps(schema)}, ' + body + "}"
    if draw(st.integers(0, 5)) == 0:  # the last "readings" wins
        text = '{"readings": [' + draw(packed_reading()) + "], " + text[1:]
    raw = text.encode()
    if draw(st.integers(0, 7)) == 0:
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=4))
    return raw


def oversize() -> bytes:
    member = {k: v for k, v in GOOD.items() if k != "schema"}
    return json.dumps(
        {"schema": "readings/1", "readings": [member] * (MAX_PACK_READINGS + 1)}
    ).encode()


def test_a_pack_is_admitted_reading_by_reading_with_its_bad_members_refused(grid: Grid) -> None:
    members = [
        {**GOOD, "ts": "2026-11-01T10:01:00Z"},
        {k: v for k, v in GOOD.items() if k != "schema"},  # packed: schema may be left out
        {**GOOD, "value": "x"},
        {**SENSORS[1], "ts": "2026-11-01T10:01:00Z", "value": 2.0},  # another partition
        {**GOOD, "ts": "2026-11-01T10:03:00Z", "value": 9999},  # out of range
    ]
    values = [json.dumps({"schema": "readings/1", "readings": members}).encode()]
    partitions = [home_of_gauge()]
    incoming, refused = batched(grid, values, partitions)
    expected_in, expected_out = per_message(grid, values, partitions)
    assert same(incoming, expected_in)
    assert refused == expected_out
    assert [i.index for i in incoming] == [0, 1]
    assert [(idx, code) for _, code, _, idx, _ in refused] == [
        (2, "bad_type"),
        (3, "wrong_partition"),
        (4, "out_of_range"),
    ]
    assert 'field "readings[2].value"' in refused[0][2]
    assert refused[1][4] is not None and json.loads(refused[1][4])["sensor_id"] == "gauge-2"


@pytest.mark.parametrize(
    "change",
    [{}, {"schema": "readings/1"}, {"schema": ""}]
    + [{field: wrong} for field, values in sorted(WRONG.items()) for wrong in values]
    + [{"value": v} for v in (-1000, 1000, -1000.5, 1000.5, 7, -0.0)],
)
@pytest.mark.parametrize("partition", range(PARTITIONS))
def test_each_rule_of_the_fast_check_refuses_a_packed_reading_as_the_validator_does(
    grid: Grid, change: dict[str, Any], partition: int
) -> None:
    # One packed reading changed, between two good ones: only it may be refused.
    member = {k: v for k, v in GOOD.items() if k != "schema"}
    members = [member, {**member, **change, "ts": change.get("ts", "2026-11-01T10:05:00Z")}]
    members.append({**member, "ts": "2026-11-01T10:09:00Z"})
    values = [json.dumps({"schema": "readings/1", "readings": members}).encode()]
    incoming, refused = batched(grid, values, [partition])
    expected_in, expected_out = per_message(grid, values, [partition])
    assert same(incoming, expected_in)
    assert refused == expected_out


@pytest.mark.parametrize(
    "change",
    [{}, {"schema": "readings/1"}, {"schema": ""}, {"schema": "reading/2"}]
    + [{field: wrong} for field, values in sorted(WRONG.items()) for wrong in values]
    + [{"value": v} for v in (-1000, 1000, -1000.5, 1000.5, 7, -0.0)],
)
@pytest.mark.parametrize("partition", range(PARTITIONS))
def test_each_rule_of_the_fast_check_refuses_a_single_reading_as_the_validator_does(
    grid: Grid, change: dict[str, Any], partition: int
) -> None:
    # The single-reading path checks the same rules inline: one reading message changed,
    # between two good ones: only it may be refused.
    values = [good(1), json.dumps({**GOOD, **change}).encode(), good(9)]
    incoming, refused = batched(grid, values, [partition] * 3)
    expected_in, expected_out = per_message(grid, values, [partition] * 3)
    assert same(incoming, expected_in)
    assert refused == expected_out


def test_an_oversize_or_empty_pack_is_refused_whole_as_admit_refuses_it(grid: Grid) -> None:
    values = [oversize(), b'{"schema": "readings/1", "readings": []}', good(1)]
    partitions = [home_of_gauge()] * 3
    incoming, refused = batched(grid, values, partitions)
    assert refused == per_message(grid, values, partitions)[1]
    assert [(i, code, idx) for i, code, _, idx, _ in refused] == [
        (0, "pack_too_large", None),
        (1, "bad_type", None),
    ]
    assert [i.offset for i in incoming] == [102]


@settings(max_examples=800, deadline=None)
@given(
    st.lists(st.one_of(pack(), pack(), hostile, st.builds(good, st.integers(0, 59))), max_size=6),
    st.lists(st.integers(0, PARTITIONS - 1), min_size=6, max_size=6),
)
def test_a_batch_of_packs_admits_and_refuses_as_admit_does_message_by_message(
    grid: Grid, values: list[bytes], partitions: list[int]
) -> None:
    assert_batch_agrees(grid, values, partitions[: len(values)])
