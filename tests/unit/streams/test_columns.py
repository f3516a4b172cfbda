"""The batch admission gives what ``admit`` gives message by message, whatever the bytes:
the same readings in the same order, the same refusals (reason, field-naming message,
place) for the same messages, and one message's fault costs no other."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from playbooks.grid import Grid
from streams.columns import BatchAdmission
from streams.detection import Incoming, admit
from streams.events import EventValidator
from streams.partitioning import sensor_partition
from tests.unit.streams.test_poison_pills import BIG_INT, GOOD, NOW, hostile, raw_with_value
from tests.unit.streams.test_validation_fuzz import mutated

PARTITIONS = 2


def good(n: int) -> bytes:
    """A valid reading of gauge-1, ``n`` minutes into the fixture's day."""
    return json.dumps({**GOOD, "ts": f"2026-11-01T10:{n:02d}:00Z"}).encode()


def per_message(
    grid: Grid, values: list[bytes], partitions: list[int]
) -> tuple[list[Incoming], list[tuple[int, str, str, int | None]]]:
    validator = EventValidator(grid)

    def home(sensor_id: str) -> int:
        return sensor_partition(sensor_id, PARTITIONS)

    incoming: list[Incoming] = []
    refused: list[tuple[int, str, str, int | None]] = []
    for i, (value, partition) in enumerate(zip(values, partitions, strict=True)):
        a, r = admit(validator, value, NOW, partition, home, 100 + i, 5.0 + i)
        incoming.extend(a)
        refused.extend((i, x.error.code, str(x.error), x.index) for x in r)
    return incoming, refused


def batched(
    grid: Grid, values: list[bytes], partitions: list[int]
) -> tuple[list[Incoming], list[tuple[int, str, str, int | None]]]:
    admission = BatchAdmission(EventValidator(grid), PARTITIONS)
    offsets = [100 + i for i in range(len(values))]
    received = [5.0 + i for i in range(len(values))]
    incoming, refused = admission.admit(values, partitions, offsets, received, NOW)
    return incoming, [(i, r.error.code, str(r.error), r.index) for i, r in refused]


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
    codes = {i: code for i, code, _, _ in refused}
    assert codes[1] == "out_of_range" and codes[2] == "bad_json" and codes[4] == "bad_json"
    assert codes[5] == "not_finite" and codes[6] == "bad_type"
    assert [(i, idx) for i, _, _, idx in refused if i == 7] == [(7, 1)]
    assert [i.offset for i in incoming] == [100, 103, 107, 108]


def test_a_reading_on_another_partition_is_refused_as_admit_refuses_it(grid: Grid) -> None:
    other = 1 - home_of_gauge()
    incoming, refused = batched(grid, [good(1)], [other])
    assert incoming == []
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
    partitions = partitions[: len(values)]
    incoming, refused = batched(grid, values, partitions)
    expected_in, expected_out = per_message(grid, values, partitions)
    assert same(incoming, expected_in)
    assert refused == expected_out
