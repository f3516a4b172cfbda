"""The batch admission gives what ``admit`` gives message by message, whatever the bytes:
the same readings in the same order, the same refusals (reason, field-naming message,
place in the batch and in the pack, dead-letter bytes) for the same messages, and one
message's or packed reading's fault costs no other. Single ``reading/1`` messages and
``readings/1`` packs alike."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citybrain.adapters import write_synthetic_grid
from playbooks.grid import Grid
from playbooks.loader import load_grid
from streams.columns import BatchAdmission
from streams.detection import Admitted, Incoming, Refused, SensorDetection, admit, state_bytes
from streams.events import MAX_PACK_READINGS, EventValidator
from streams.partitioning import sensor_partition
from streams.settings import Settings
from tests.unit.streams.test_detection import outcome
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


def with_extra(doc: dict[str, Any], extra: bytes) -> bytes:
    """``doc`` as JSON with ``extra`` (``"key": value`` bytes) as its last member."""
    return json.dumps(doc)[:-1].encode() + b", " + extra + b"}"


# What msgspec skips unread in a field no reading has, and the validator reads: bytes
# that are not UTF-8 (Latin-1, an overlong encoding, a UTF-8-encoded surrogate, past
# U+10FFFF), in a value or a key, and an integer too long for Python to convert.
SKIPPED = [
    b'"location": "Ca\xf1ada"'.decode("unicode_escape").encode("latin-1"),
    b'"x": "\xc0\xaf"'.decode("unicode_escape").encode("latin-1"),
    b'"x": ["\xed\xa0\x80"]'.decode("unicode_escape").encode("latin-1"),
    b'"x": {"y": "\xf4\x90\x80\x80"}'.decode("unicode_escape").encode("latin-1"),
    b'"\xff": 1'.decode("unicode_escape").encode("latin-1"),
    b'"x": ' + b"7" * 5000,
    b'"x": -' + b"7" * 5000,
]


@pytest.mark.parametrize("extra", SKIPPED)
def test_what_msgspec_skips_is_judged_as_the_validator_judges_it(grid: Grid, extra: bytes) -> None:
    # Trial 19: a Latin-1 byte in a field no reading has passed the fast path (msgspec
    # checks UTF-8 only in the strings it decodes) while admit refused the message as
    # bad_json; an integer of 5,000 digits there was admitted, and refused by admit.
    home = home_of_gauge()
    odd = with_extra({**GOOD, "ts": "2026-11-01T10:30:00Z"}, extra)
    pack = json.dumps({"schema": "readings/1", "readings": [GOOD]})
    odd_pack = pack[:-2].encode() + b", " + with_extra(GOOD, extra)[:-1] + b"}]}"
    for values in ([good(1), odd, good(2)], [odd], [good(1), pack.encode(), odd, odd_pack]):
        assert_batch_agrees(grid, values, [home] * len(values))
    incoming, refused = batched(grid, [good(1), odd, good(2)], [home] * 3)
    if extra.isascii():  # the long integer: an unknown field's, ignored
        assert refused == [] and len(incoming) == 3
    else:
        [(at, code, message, _, _)] = refused
        assert (at, code) == (1, "bad_json") and "is not UTF-8" in message
        assert [i.offset for i in incoming] == [100, 102]


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


def test_a_packs_refused_readings_are_dead_lettered_as_the_producer_wrote_them(
    grid: Grid,
) -> None:
    """Trial 62: a packed reading's dead letter was the parsed reading written again: a
    NaN or 1e999 came out as null, a key given twice as one value, so the dead letter did
    not show what its reason named. Now it is the reading's own bytes, in the batch as
    message by message."""
    first = json.dumps({**GOOD, "ts": "2026-11-01T10:01:00Z"}).encode()
    members = [
        first,
        first.replace(b'"ts": "2026-11-01T10:01:00Z"', b'"ts": "2026-11-01T10:02:00Z"').replace(
            b'"value": 1.5', b'"value": NaN'
        ),
        first.replace(b'"value": 1.5', b'"value": 1e999'),
        first.replace(b'"value": 1.5', b'"value": 1.5, "value": 9999'),
        json.dumps({**SENSORS[1], "ts": "2026-11-01T10:01:00Z", "value": 2.0}).encode(),
    ]
    assert b'"value": 1.5' in first  # the replacements above change something
    pack = b'{"schema": "readings/1", "readings": [\n  ' + b",\n  ".join(members) + b"\n]}"
    partitions = [home_of_gauge()]
    incoming, refused = batched(grid, [pack], partitions)
    expected_in, expected_out = per_message(grid, [pack], partitions)
    assert same(incoming, expected_in) and refused == expected_out
    assert [i.index for i in incoming] == [0]
    assert [(idx, code, raw) for _, code, _, idx, raw in refused] == [
        (1, "not_finite", members[1]),
        (2, "not_finite", members[2]),
        (3, "bad_json", members[3]),
        (4, "wrong_partition", members[4]),
    ]


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


def test_a_pack_of_300000_readings_is_counted_before_it_is_built(
    grid: Grid, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t101: a 44 MB pack (171 kB gzipped: within Kafka's message limit) of 300,000
    readings was decoded whole by the batch path and again by the validator before its
    count was checked, 1.4 s of the worker's loop; now its items are counted first, and
    the batch and the validator refuse it as before, without building a reading."""
    import msgspec

    import streams.columns
    import streams.events

    member = json.dumps({k: v for k, v in GOOD.items() if k != "schema"}).encode()
    huge = b'{"schema": "readings/1", "readings": [' + b",".join([member] * 300_000) + b"]}"
    assert len(huge) > streams.events.PACK_COUNT_FROM_BYTES
    built: list[int] = []
    real = msgspec.json.Decoder

    class Watched:
        """A decoder that records each message it builds into a pack of readings (the
        single reading's decoder skips a pack's list unbuilt, then refuses it)."""

        def __init__(self, kind: Any, **kw: Any) -> None:
            self.inner = real(kind, **kw)
            self.kind = kind

        def decode(self, raw: bytes) -> Any:
            if len(raw) == len(huge) and issubclass(self.kind, streams.columns.WirePack):
                built.append(len(raw))
            return self.inner.decode(raw)

    monkeypatch.setattr(streams.columns.msgspec.json, "Decoder", Watched)
    values, partitions = [huge, good(1)], [home_of_gauge()] * 2
    incoming, refused = batched(grid, values, partitions)
    assert [(i, code, idx) for i, code, _, idx, _ in refused] == [(0, "pack_too_large", None)]
    assert "is 300000: a pack holds at most 10000 readings" in refused[0][2]
    assert [i.offset for i in incoming] == [101]
    assert built == []  # no decoder built its readings
    short = b'{"schema": "readings/1", "readings": [' + b",".join([b"{}"] * 10_001) + b"]}"
    assert streams.events.pack_too_large(short) is None  # short: the parse counts it
    # Not a pack, or not JSON: the parse names what it is.
    assert streams.events.pack_too_large(huge.replace(b"readings/1", b"reading/1", 1)) is None
    assert streams.events.pack_too_large(huge[:-1]) is None
    # t106: after a pack, the pack decoder is tried first: the count still comes first
    # (the old code built the 300,000 readings there, 250-640 ms of the worker's loop).
    small = b'{"schema": "readings/1", "readings": [' + member + b"]}"
    values = [small, huge, good(1)]
    incoming, refused = batched(grid, values, [home_of_gauge()] * 3)
    assert [(i, code, idx) for i, code, _, idx, _ in refused] == [(1, "pack_too_large", None)]
    assert [i.offset for i in incoming] == [100, 102]
    assert built == []


@settings(max_examples=800, deadline=None)
@given(
    st.lists(st.one_of(pack(), pack(), hostile, st.builds(good, st.integers(0, 59))), max_size=6),
    st.lists(st.integers(0, PARTITIONS - 1), min_size=6, max_size=6),
)
def test_a_batch_of_packs_admits_and_refuses_as_admit_does_message_by_message(
    grid: Grid, values: list[bytes], partitions: list[int]
) -> None:
    assert_batch_agrees(grid, values, partitions[: len(values)])


# -- seeded batches: the columnar path and every way out of it -----------------------
# Single messages the seeded batches mix among good readings: each must get the verdict
# ``admit`` gives it alone, whatever its neighbours (a fragment that would be valid JSON
# only when joined with another, odd but valid timestamps, escapes, whitespace, ...).
ODD: list[bytes] = [
    b"",  # a tombstone
    b"1}",
    b'{"a":1},{"b":2}',
    b"[" + json.dumps(GOOD).encode() + b"]",
    json.dumps(GOOD).encode() + b"," + json.dumps(GOOD).encode(),
    json.dumps(GOOD).encode() + b"x",  # a trailing garbage byte
    b" " + json.dumps(GOOD).encode() + b"\n",  # whitespace around a good reading
    json.dumps(GOOD).encode()[:-1],  # cut short
    json.dumps({**GOOD, "value": 9999}).encode(),  # out of range
    json.dumps({**GOOD, "value": -0.0}).encode(),
    json.dumps({**GOOD, "value": 2}).encode(),  # an integer
    json.dumps({**GOOD, "value": "1.5"}).encode(),
    json.dumps({**GOOD, "sensor_id": "ghost"}).encode(),
    json.dumps({**GOOD, "kind": "pm25"}).encode(),
    json.dumps({**GOOD, "unit": "m"}).encode(),
    json.dumps({**GOOD, "grid_cell": "c-mill"}).encode(),
    json.dumps({**GOOD, "schema": "readings/1"}).encode(),
    json.dumps({k: v for k, v in GOOD.items() if k != "schema"}).encode(),
    json.dumps({**GOOD, "extra": [1, {"x": None}]}).encode(),  # unknown fields are ignored
    json.dumps(GOOD).replace('"gauge-1"', '"gauge\\u002d1"').encode(),  # an escape
    with_duplicate(GOOD, "sensor_id", "air-1").encode(),
    with_duplicate(GOOD, "value", "x").encode(),
]
ODD_TS = [
    "2026-11-01T10:00:00",  # no zone
    "2026-11-01t10:00:00z",
    "2026-11-01 10:00:00+01:00",
    "2026-11-01T10:00:00.123456-0530",
    "2026-11-01T10:00+02",
    "2026-11-01T10:00:00,5Z",
    "1989-12-31T23:59:59Z",  # too old
    "2099-01-01T00:00:00Z",  # in the future
    "2026-11-01X10:00:00Z",
    "2026-11-01T10:00:00.000Z",
]


def seeded_batch(seed: int, size: int = 240) -> tuple[list[bytes], list[int]]:
    """A batch of mostly good single readings of the three fixture sensors, on their
    home partitions, sharing a few clock ticks; with probability rising with the seed,
    a message is odd (``ODD``), an odd timestamp, a pack, on the wrong partition."""
    rng = np.random.default_rng(seed)
    bad = [0.0, 0.002, 0.01, 0.05, 0.2, 0.5][seed % 6]
    values: list[bytes] = []
    partitions: list[int] = []
    for n in range(size):
        sensor = SENSORS[int(rng.integers(len(SENSORS)))]
        doc = {
            "schema": "reading/1",
            "ts": f"2026-11-01T10:{n // 60:02d}:00Z",
            **sensor,
            "value": round(float(rng.uniform(0, 20)), 3),
        }
        raw = json.dumps(doc).encode()
        home = sensor_partition(sensor["sensor_id"], PARTITIONS)
        roll = rng.random()
        if roll < bad:
            choice = int(rng.integers(4))
            if choice == 0:
                raw = ODD[int(rng.integers(len(ODD)))]
            elif choice == 1:
                raw = json.dumps({**doc, "ts": ODD_TS[int(rng.integers(len(ODD_TS)))]}).encode()
            elif choice == 2:
                members = [{k: v for k, v in doc.items() if k != "schema"}] * int(
                    rng.integers(1, 4)
                )
                raw = json.dumps({"schema": "readings/1", "readings": members}).encode()
            else:
                home = 1 - home
        values.append(raw)
        partitions.append(home)
    return values, partitions


@pytest.mark.parametrize("seed", range(18))
def test_seeded_batches_admit_as_admit_does_message_by_message(grid: Grid, seed: int) -> None:
    values, partitions = seeded_batch(seed)
    assert_batch_agrees(grid, values, partitions)


@pytest.mark.parametrize("odd", range(len(ODD)))
def test_one_odd_message_among_good_ones_costs_only_itself(grid: Grid, odd: int) -> None:
    # Before, between and after good readings: its verdict is its own, theirs theirs.
    for at in (0, 3, 6):
        values = [good(n) for n in range(6)]
        values.insert(at, ODD[odd])
        partitions = [home_of_gauge()] * len(values)
        assert_batch_agrees(grid, values, partitions)


def test_two_fragments_that_join_into_json_are_each_refused(grid: Grid) -> None:
    # Joined with a comma the three would read as one array of three objects; alone,
    # each is bad JSON and is refused as such.
    head = json.dumps({**GOOD, "note": "x"}).encode()[:-2]  # ... "note": "
    values = [b'{"a":1},{"b":2}', head, b'"}', good(1)]
    partitions = [home_of_gauge()] * len(values)
    assert_batch_agrees(grid, values, partitions)
    _, refused = batched(grid, values, partitions)
    assert [(i, code) for i, code, _, _, _ in refused] == [
        (0, "bad_json"),
        (1, "bad_json"),
        (2, "bad_json"),
    ]


@pytest.mark.parametrize("seed", range(6))
def test_the_admitted_columns_are_their_readings_fields(grid: Grid, seed: int) -> None:
    values, partitions = seeded_batch(seed)
    admission = BatchAdmission(EventValidator(grid), PARTITIONS)
    offsets = [100 + i for i in range(len(values))]
    admitted, _ = admission.admit(values, partitions, offsets, [5.0] * len(values), NOW)
    items = list(admitted)
    assert admitted.sensor_ids == [i.reading.sensor_id for i in items]
    assert admitted.ts.tolist() == [i.reading.ts for i in items]
    assert admitted.values.tolist() == [i.reading.value for i in items]
    assert admitted.offsets.tolist() == [i.offset for i in items]
    assert admitted.in_pack.tolist() == [i.index for i in items]
    assert all(admitted[j] is items[j] for j in range(len(items)))  # built once, kept


def test_an_all_good_batch_carries_the_grids_own_strings(grid: Grid) -> None:
    values = [good(n) for n in range(4)]
    admitted, refused = batched_admitted(grid, values, [home_of_gauge()] * 4)
    assert refused == []
    sensor = grid.sensors["gauge-1"]
    for item in admitted:
        assert item.reading.sensor_id == "gauge-1"
        assert item.reading.kind == sensor.kind and item.reading.grid_cell == sensor.cell


def batched_admitted(
    grid: Grid, values: list[bytes], partitions: list[int]
) -> tuple[Admitted, list[tuple[int, Refused]]]:
    admission = BatchAdmission(EventValidator(grid), PARTITIONS)
    offsets = [100 + i for i in range(len(values))]
    return admission.admit(values, partitions, offsets, [5.0] * len(values), NOW)


CITY_SENSORS = [f"s{i:03d}" for i in range(60)]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Grid:
    """60 traffic sensors over 6 cells (citybrain/adapters.py's synthetic grid)."""
    path = tmp_path_factory.mktemp("city") / "grid.yaml"
    write_synthetic_grid(path, CITY_SENSORS, "traffic_flow", "vehicles/5min", communities=6)
    return load_grid(path)


def readings_stream(seed: int, batches: int) -> list[list[tuple[bytes, int]]]:
    """Batches of good single readings of the city's sensors, each with its home
    partition: most sensors once a batch (the bank's fast path), some twice or not at
    all, a spike now and then (episodes), a repeated tick (a duplicate) or an older one
    (out of order) here and there."""
    rng = np.random.default_rng(seed)
    out: list[list[tuple[bytes, int]]] = []
    for step in range(batches):
        batch = []
        for sensor in CITY_SENSORS:
            for _ in range(int(rng.choice([0, 1, 1, 1, 1, 1, 1, 2]))):
                tick = step + 10 + int(rng.integers(0, 2))
                if rng.random() < 0.03:
                    tick -= 5
                value = 10.0 + float(rng.normal(0, 0.5)) + (300.0 if rng.random() < 0.02 else 0)
                doc = {
                    "schema": "reading/1",
                    "ts": f"2026-11-01T{tick // 60:02d}:{tick % 60:02d}:00Z",
                    "sensor_id": sensor,
                    "kind": "traffic_flow",
                    "value": round(value, 3),
                    "unit": "vehicles/5min",
                    "grid_cell": f"c{int(sensor[1:]) % 6}",
                }
                home = sensor_partition(sensor, PARTITIONS)
                batch.append((json.dumps(doc).encode(), home))
        out.append(batch)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_detection_over_the_columns_gives_what_it_gives_over_the_readings(
    city: Grid, seed: int
) -> None:
    validator = EventValidator(city)
    admission = BatchAdmission(validator, PARTITIONS)
    columns = SensorDetection.from_settings(Settings())
    objects = SensorDetection.from_settings(Settings())
    columns.mark_at = objects.mark_at = 0.1
    columns.follow.add(CITY_SENSORS[3])
    objects.follow.add(CITY_SENSORS[3])
    states_c: dict[str, Any] = {}
    states_o: dict[str, Any] = {}
    offset = 0
    alerts = 0
    for pairs in readings_stream(seed, batches=80):
        batch = [raw for raw, _ in pairs]
        n = len(batch)
        offsets = list(range(offset, offset + n))
        if seed % 2 and offset and rng_redeliver(offset):
            offsets = [o - n // 2 for o in offsets]  # half of the last batch again
        offset += n
        admitted, refused = admission.admit(batch, [p for _, p in pairs], offsets, [1.0] * n, NOW)
        assert refused == [] and len(admitted) == n
        plain = [
            Incoming(validator.reading(raw, NOW), 1.0, o, raw, 0)
            for raw, o in zip(batch, offsets, strict=True)
        ]
        a, b = columns.process(admitted, states_c), objects.process(plain, states_o)
        assert outcome(a) == outcome(b)
        alerts += len(a.alerts)
        states_c.update(a.states)
        states_o.update(b.states)
    assert alerts  # episodes opened (and the per-sensor path taken)
    assert {s: state_bytes(x) for s, x in states_c.items()} == {
        s: state_bytes(x) for s, x in states_o.items()
    }


def rng_redeliver(offset: int) -> bool:
    return offset % 3 == 0


@pytest.mark.parametrize(
    "bad",
    [
        b"{" + b" " * 900_000 + b"}",  # no schema
        b'{"schema": "reading/1", "sensor_id": "' + b"x" * 900_000 + b'"}',  # fields missing
        b"[" * 10 + b" " * 900_000,  # not JSON
    ],
)
def test_a_refused_message_is_freed_at_once_not_by_a_full_collection(
    grid: Grid, bad: bytes
) -> None:
    """Helper t80: 100 refused 900 KB readings kept 175 MB of a worker's RSS until many
    small messages later. A refusal kept its error, whose traceback held the frames that
    raised it, and through their callers (``f_back``) the agent's frame holding the
    refusal: a cycle, freed only by a full collection, which a worker with a large heap
    seldom runs. The error keeps its message and holds no frame now."""
    import gc
    import tracemalloc

    values = [bad] * 5
    gc.collect()
    gc.disable()  # as between a worker's rare full collections
    tracemalloc.start()
    try:
        for _ in range(20):  # 100 refused messages, 90 MB of bytes in all
            _, refused = batched_admitted(grid, [bytes(v) for v in values], [0] * 5)
            assert len(refused) == 5 and all(str(r.error) for _, r in refused)
            assert all(r.error.__traceback__ is None for _, r in refused)
            del refused
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        gc.enable()
    assert held < 5_000_000, f"{held / 1e6:.0f} MB still held by refused messages"


def packed_stream(seed: int, batches: int, size: int = 7) -> list[list[tuple[bytes, int]]]:
    """``readings_stream``'s readings as ``readings/1`` packs of up to ``size``, each of
    one home partition (a gateway's), in batch order within each partition."""
    out: list[list[tuple[bytes, int]]] = []
    for pairs in readings_stream(seed, batches):
        by_home: dict[int, list[dict[str, Any]]] = {}
        for raw, home in pairs:
            doc = json.loads(raw)
            if seed % 2:
                del doc["schema"]  # a packed reading may leave its schema out
            by_home.setdefault(home, []).append(doc)
        batch = []
        for home, docs in sorted(by_home.items()):
            for at in range(0, len(docs), size):
                pack = {"schema": "readings/1", "readings": docs[at : at + size]}
                batch.append((json.dumps(pack).encode(), home))
        out.append(batch)
    return out


def mixed_stream(seed: int, batches: int) -> list[list[tuple[bytes, int]]]:
    """``packed_stream``'s batches with every third pack sent as its readings one per
    message (a topic that gateways and single-reading producers share)."""
    out: list[list[tuple[bytes, int]]] = []
    for pairs in packed_stream(seed, batches):
        batch: list[tuple[bytes, int]] = []
        for n, (raw, home) in enumerate(pairs):
            if n % 3 == 1:
                for doc in json.loads(raw)["readings"]:
                    batch.append((json.dumps({**doc, "schema": "reading/1"}).encode(), home))
            else:
                batch.append((raw, home))
        out.append(batch)
    return out


@pytest.mark.parametrize("layout", [packed_stream, mixed_stream])
@pytest.mark.parametrize("seed", range(4))
def test_detection_over_packed_columns_gives_what_it_gives_over_the_readings(
    city: Grid, seed: int, layout: Callable[[int, int], list[list[tuple[bytes, int]]]]
) -> None:
    """t106: a batch of good packs is admitted as columns (no object per reading, the
    old code built two per reading), and detection over them gives what it gives over
    the readings ``admit`` makes of each message: alerts, refusals, counts, states. So
    is a batch of packs and single readings mixed (it was built reading by reading)."""
    validator = EventValidator(city)
    admission = BatchAdmission(validator, PARTITIONS)
    columns = SensorDetection.from_settings(Settings())
    objects = SensorDetection.from_settings(Settings())
    columns.mark_at = objects.mark_at = 0.1
    states_c: dict[str, Any] = {}
    states_o: dict[str, Any] = {}
    offset = 0
    alerts = 0

    def home(sensor_id: str) -> int:
        return sensor_partition(sensor_id, PARTITIONS)

    for pairs in layout(seed, 60):
        batch, partitions = [raw for raw, _ in pairs], [p for _, p in pairs]
        n = len(batch)
        offsets = list(range(offset, offset + n))
        offset += n
        admitted, refused = admission.admit(batch, partitions, offsets, [1.0] * n, NOW)
        assert refused == []
        assert admitted._given is None and not admitted._made  # columns, nothing built
        plain: list[Incoming] = []
        for raw, partition, o in zip(batch, partitions, offsets, strict=True):
            plain.extend(admit(validator, raw, NOW, partition, home, o, 1.0)[0])
        assert same(list(admitted), plain)
        assert admitted.in_pack.tolist() == [i.index for i in plain]
        a, b = columns.process(admitted, states_c), objects.process(plain, states_o)
        assert outcome(a) == outcome(b)
        alerts += len(a.alerts)
        states_c.update(a.states)
        states_o.update(b.states)
    assert alerts
    assert {s: state_bytes(x) for s, x in states_c.items()} == {
        s: state_bytes(x) for s, x in states_o.items()
    }


def test_a_pack_with_one_bad_reading_leaves_the_columns_for_the_readings_own_verdicts(
    city: Grid,
) -> None:
    """One bad reading in a batch of packs: the bad reading refused with the validator's
    reason, every other reading admitted, and still as columns (no ``Incoming`` built
    for them: pack by pack, the batch ran at about half the rate)."""
    pairs = packed_stream(0, batches=1)[0]
    raw, partition = pairs[1]
    doc = json.loads(raw)
    doc["readings"][2]["value"] = -5.0  # below traffic_flow's plausible range
    pairs[1] = (json.dumps(doc).encode(), partition)
    values, partitions = [r for r, _ in pairs], [p for _, p in pairs]
    incoming, refused = batched(city, values, partitions)
    assert isinstance(incoming, Admitted) and incoming._given is None and not incoming._made
    expected_in, expected_out = per_message(city, values, partitions)
    assert same(incoming, expected_in) and refused == expected_out
    assert [(i, code, idx) for i, code, _, idx, _ in refused] == [(1, "out_of_range", 2)]


def test_bad_readings_in_many_packs_are_each_refused_and_the_rest_stay_columns(
    city: Grid,
) -> None:
    """Bad readings in several packs of a batch, two in one pack, of different faults:
    each refused in its place with the validator's reason and dead-letter bytes, the
    others admitted as columns, as message by message."""
    pairs = packed_stream(1, batches=1)[0]
    faults = {0: {3: ("value", -5.0), 6: ("ts", "2026-11-01T10:00:00")}, 2: {0: ("unit", "m")}}
    for i, changes in faults.items():
        raw, partition = pairs[i]
        doc = json.loads(raw)
        for index, (field, value) in changes.items():
            doc["readings"][index][field] = value
        pairs[i] = (json.dumps(doc).encode(), partition)
    values, partitions = [r for r, _ in pairs], [p for _, p in pairs]
    incoming, refused = batched(city, values, partitions)
    assert isinstance(incoming, Admitted) and incoming._given is None and not incoming._made
    expected_in, expected_out = per_message(city, values, partitions)
    assert same(incoming, expected_in) and refused == expected_out
    assert [(i, idx) for i, _, _, idx, _ in refused] == [(0, 3), (0, 6), (2, 0)]


def test_a_packs_kinds_cells_and_units_are_the_grids_own_strings(city: Grid) -> None:
    """t218: a pack's readings decoded their kind, grid cell and unit as new strings, one
    each per reading, which the fast check then compared character by character with the
    grid's (the largest part of admitting packs, profiled in a catch-up). Now they are
    the grid's own objects, as a single reading's are; a pack with a cell no sensor has
    is still decoded (as plain strings) and only that reading refused."""
    admission = BatchAdmission(EventValidator(city), PARTITIONS)
    pairs = packed_stream(0, batches=1)[0]
    raw, partition = pairs[1]
    doc = json.loads(raw)
    doc["readings"][4]["grid_cell"] = "c-nowhere"  # no sensor's cell
    pairs[1] = (json.dumps(doc).encode(), partition)
    values, partitions = [r for r, _ in pairs], [p for _, p in pairs]
    rows, _ = admission._decoded(values)
    ones = {text: text for reg in admission._regs for text in reg[:3]}  # the grid's own
    for place, row in enumerate(rows):
        assert row is not None
        for reading in cast(Any, row).readings:
            strings = (reading.kind, reading.grid_cell, reading.unit)
            if place == 1:
                continue  # decoded as plain strings (one cell is no sensor's)
            assert all(ones[text] is text for text in strings), strings
    incoming, refused = batched(city, values, partitions)
    assert isinstance(incoming, Admitted) and incoming._given is None and not incoming._made
    expected_in, expected_out = per_message(city, values, partitions)
    assert same(incoming, expected_in) and refused == expected_out
    assert [(i, code, idx) for i, code, _, idx, _ in refused] == [(1, "unknown_cell", 4)]


def test_a_second_grids_admission_is_handed_its_own_strings_too(city: Grid) -> None:
    """``typing`` caches ``Literal[...]`` by equal values: an admission made after another
    grid's with equal names (a reload, another test in the process) had its decoder
    hand back the first grid's strings, equal but not its own, and the identity the fast
    check counts on was lost (the test above failed in a whole unit run, not alone).
    The registrations are interned, so every grid's equal names are one object."""
    first = BatchAdmission(EventValidator(pickle.loads(pickle.dumps(city))), PARTITIONS)
    second = BatchAdmission(EventValidator(pickle.loads(pickle.dumps(city))), PARTITIONS)
    assert first._regs[0][0] is second._regs[0][0]
    values = [raw for raw, _ in packed_stream(0, batches=1)[0]]
    for admission in (first, second):
        ones = {text: text for reg in admission._regs for text in (*reg[:3], reg[6])}
        rows, _ = admission._decoded(values)
        for row in rows:
            for reading in cast(Any, row).readings:
                strings = (reading.kind, reading.grid_cell, reading.unit)
                assert all(ones[text] is text for text in strings), strings


def test_a_bare_array_on_the_readings_topic_is_refused_whole_naming_the_pack(grid: Grid) -> None:
    """t156: a gateway's batch sent to the readings topic as a bare JSON array (the MQTT
    door's array form, docs/ingest.md) was refused "expected a JSON object", naming
    neither what the topic takes nor how to send many readings. Refused whole still --
    the topic's array form is the ``readings/1`` pack, whose envelope names its items --
    now naming it; the messages beside it are read."""
    array = json.dumps([GOOD, {**GOOD, "ts": "2026-11-01T10:01:00Z"}]).encode()
    home = sensor_partition("gauge-1", PARTITIONS)
    for admitted in (batched, per_message):
        incoming, refused = admitted(grid, [array, good(2), b"[]"], [home] * 3)
        assert [i.offset for i in incoming] == [101]  # good(2), between the two arrays
        assert [(i, code) for i, code, *_ in refused] == [(0, "bad_json"), (2, "bad_json")]
        assert refused[0][2] == (
            "a JSON array of 2 items, expected a JSON object: a 'reading/1' document, or a "
            """'readings/1' pack ({"schema": "readings/1", "readings": [...]}) for many """
            "readings in one message"
        )
        assert refused[1][2].startswith("a JSON array of 0 items, expected a JSON object")


def with_tiny_value(n: int, number: str) -> bytes:
    """gauge-1's reading ``n`` minutes into the day with ``value`` written as ``number``."""
    return good(n).replace(b'"value": 1.5', b'"value": ' + number.encode(), 1)


@pytest.mark.parametrize("number", ["-1e-400", "1E-999", "0." + "0" * 400 + "7"])
def test_a_number_below_a_doubles_range_is_refused_naming_it_and_costs_no_other(
    grid: Grid, number: str
) -> None:
    # t183: msgspec and orjson read -1e-400 as -0.0 unsaid, and the reading was scored
    # at a value nobody sent (the fast path and the validator alike). Now not_finite,
    # shown as sent, in a single message and in a pack, its neighbours admitted.
    pack = {
        "schema": "readings/1",
        "readings": [{**GOOD, "ts": f"2026-11-01T10:0{i}:30Z"} for i in (4, 5)],
    }
    packed = json.dumps(pack).encode().replace(b'"value": 1.5', b'"value": ' + number.encode(), 1)
    values = [good(1), with_tiny_value(2, number), good(3), packed, good(6)]
    partitions = [home_of_gauge()] * len(values)
    assert_batch_agrees(grid, values, partitions)
    incoming, refused = batched(grid, values, partitions)
    assert [(i.offset, i.index) for i in incoming] == [(100, 0), (102, 0), (103, 1), (104, 0)]
    assert [(i, code, index) for i, code, _, index, _ in refused] == [
        (1, "not_finite", None),
        (3, "not_finite", 0),
    ]
    said = [message.replace("readings[0].", "") for _, _, message, _, _ in refused]
    # (a long number shown cut, as any long value)
    assert all(m.startswith(f'field "value" is {number[:30]}') for m in said), said
    assert all(": not zero as written, but too small for a double" in m for m in said), said
    # The packed one's dead letter is its bytes as sent.
    assert number.encode() in (refused[1][4] or b"")
