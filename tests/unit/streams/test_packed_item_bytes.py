"""A packed reading whose own bytes cannot be read (a byte that is not UTF-8, a NUL,
nesting past 1,024 levels) costs only itself.

Before (t95's battery), one such reading refused its whole pack as bad_json: every good
reading packed with it went to the dead-letter topic as one message, as the HTTP ingest
lost a whole body for it. Now the reading is refused alone, naming the byte and its
place, and dead-lettered as its producer wrote it; a fault outside every reading still
refuses the pack."""

from __future__ import annotations

import pytest

from playbooks.grid import Grid
from streams.errors import EventError
from streams.events import EventValidator, PackedError, Reading
from tests.unit.streams.test_columns import assert_batch_agrees, batched, good, home_of_gauge
from tests.unit.streams.test_poison_pills import NOW

DEEP = b"[" * 1100 + b"]" * 1100


def pack(*items: bytes, extra: bytes = b"") -> bytes:
    return b'{"schema": "readings/1", "readings": [' + b", ".join(items) + b"]" + extra + b"}"


@pytest.mark.parametrize(
    ("odd", "said"),
    [
        (b'"Ca\xf1ada"', "byte 0xf1 at offset"),
        (b'"a\x00b"', "byte 0x00 (NUL) at offset"),
        (DEEP, "nested deeper than 1024 levels"),
    ],
)
def test_a_packed_reading_whose_bytes_cannot_be_read_costs_only_itself(
    grid: Grid, odd: bytes, said: str
) -> None:
    bad = good(5).replace(b"{", b'{"location": ' + odd + b", ", 1)
    raw = pack(good(4), bad, good(6))
    is_pack, items = EventValidator(grid).readings(raw, NOW)
    assert is_pack and [type(i) for i in items] == [Reading, PackedError, Reading]
    assert isinstance(items[1], PackedError)
    assert items[1].error.code == "bad_json"
    assert said in str(items[1].error) and str(items[1].error).endswith("(in readings[1])")
    incoming, refused = batched(grid, [good(0), raw, good(9)], [home_of_gauge()] * 3)
    assert [(i.offset, i.index) for i in incoming] == [(100, 0), (101, 0), (101, 2), (102, 0)]
    # Dead-lettered as its producer wrote it: its own bytes, odd byte and all.
    assert [(code, index, dead) for _, code, _, index, dead in refused] == [("bad_json", 1, bad)]
    assert_batch_agrees(grid, [good(0), raw, good(9)], [home_of_gauge()] * 3)


@pytest.mark.parametrize("odd", [b'"gw-\xff"', DEEP])
def test_such_bytes_outside_every_reading_refuse_the_pack(grid: Grid, odd: bytes) -> None:
    raw = pack(good(4), good(5), extra=b', "from": ' + odd)
    with pytest.raises(EventError) as caught:
        EventValidator(grid).readings(raw, NOW)
    assert caught.value.code == "bad_json" and "(in readings" not in str(caught.value)
