"""A key given twice in one JSON object, on the topics the worker reads.

Before, the ingest edge and the incidents agent refused one, but the readings agent read
it silently as its last value (msgspec and orjson keep the last): ``{"value": 1.5,
"value": 2.5}`` was a reading nobody sent, and a pack with ``"readings"`` given twice
dropped the first list's readings with no dead letter. Commands, alerts and routed
messages took the last of two ``action``s, ``status``es. Now each is ``bad_json`` naming
the key (and, in a pack, only the reading that holds it), on the fast path as on the
validator's."""

from __future__ import annotations

import json

import pytest

from playbooks.grid import Grid
from streams.columns import BatchAdmission
from streams.errors import EventError
from streams.events import EventValidator, PackedError, Reading, duplicate_keys, message_json
from tests.unit.streams.test_columns import (
    PARTITIONS,
    assert_batch_agrees,
    batched,
    good,
    home_of_gauge,
)
from tests.unit.streams.test_poison_pills import GOOD, NOW

# gauge-1's reading with "value" given twice, both plausible: neither was refused.
TWICE = good(1).replace(b'"value": 1.5', b'"value": 1.5, "value": 2.5')
SPELT_WITH_AN_ESCAPE = good(1).replace(b'"value": 1.5', b'"value": 1.5, "v\\u0061lue": 2.5')
TS_TWICE = good(1).replace(b'"value": 1.5', b'"value": 1.5, "ts": "2026-11-01T10:30:00Z"')


def packed(*items: bytes) -> bytes:
    return b'{"schema": "readings/1", "readings": [' + b", ".join(items) + b"]}"


@pytest.mark.parametrize(
    ("raw", "key"), [(TWICE, "value"), (SPELT_WITH_AN_ESCAPE, "value"), (TS_TWICE, "ts")]
)
def test_a_reading_with_a_key_given_twice_is_refused_naming_it(
    grid: Grid, raw: bytes, key: str
) -> None:
    assert b'"value": 1.5' in good(1)  # the replacement above took hold
    with pytest.raises(EventError) as caught:
        EventValidator(grid).readings(raw, NOW)
    assert caught.value.code == "bad_json"
    assert str(caught.value).startswith(f"not valid JSON: key '{key}' is given twice in one object")
    # The batch's fast path refuses it too (it admitted 2.5 before), and the rest go on.
    values = [good(0), raw, good(2)]
    incoming, refused = batched(grid, values, [home_of_gauge()] * 3)
    assert [i.offset for i in incoming] == [100, 102]
    assert [(i, code) for i, code, *_ in refused] == [(1, "bad_json")]
    assert_batch_agrees(grid, values, [home_of_gauge()] * 3)


def test_a_packed_reading_with_a_key_given_twice_costs_only_itself(grid: Grid) -> None:
    bad = good(5).replace(b'"value": 1.5', b'"value": 1.5, "value": 999')
    pack = packed(good(4), bad, good(6))
    is_pack, items = EventValidator(grid).readings(pack, NOW)
    assert is_pack
    assert [type(i) for i in items] == [Reading, PackedError, Reading]
    error = items[1]
    assert isinstance(error, PackedError) and error.error.code == "bad_json"
    assert "key 'value' is given twice in one object (in readings[1])" in str(error.error)
    incoming, refused = batched(grid, [pack], [home_of_gauge()])
    assert [(i.offset, i.index) for i in incoming] == [(100, 0), (100, 2)]
    assert [(code, index) for _, code, _, index, _ in refused] == [("bad_json", 1)]
    assert_batch_agrees(grid, [good(0), pack, good(9)], [home_of_gauge()] * 3)


def test_a_pack_with_readings_given_twice_is_refused_whole_not_half_read(grid: Grid) -> None:
    # The first list (good(4)) was dropped unsaid, the second admitted.
    pack = b'{"schema": "readings/1", "readings": [' + good(4) + b'], "readings": ['
    pack += good(5) + b"]}"
    with pytest.raises(EventError) as caught:
        EventValidator(grid).readings(pack, NOW)
    assert "key 'readings' is given twice in one object:" in str(caught.value)
    values = [good(0), pack, good(9)]
    incoming, refused = batched(grid, values, [home_of_gauge()] * 3)
    assert [i.offset for i in incoming] == [100, 102]
    assert [(i, code, index) for i, code, _, index, _ in refused] == [(1, "bad_json", None)]
    assert_batch_agrees(grid, values, [home_of_gauge()] * 3)


def test_a_schema_given_twice_in_a_packed_reading_is_caught_though_counted_right(
    grid: Grid,
) -> None:
    # Its quotes could pass for a reading with a schema and one without: the count
    # weighs each reading's schema by whether msgspec saw one.
    bad = good(5).replace(b'"schema": "reading/1"', b'"schema": "x/1", "schema": "reading/1"')
    lone = json.dumps({k: v for k, v in GOOD.items() if k != "schema"}).encode()
    pack = packed(good(4), bad, lone)
    incoming, refused = batched(grid, [pack], [home_of_gauge()])
    assert [i.index for i in incoming] == [0, 2]
    assert [(code, index) for _, code, _, index, _ in refused] == [("bad_json", 1)]


@pytest.mark.parametrize(
    "extra",
    [
        b'"note": "a \\"quoted\\" word"',  # quotes escaped inside text
        b'"quality": {"a": 1, "b": [1, 2]}',
        b'"sensor": "\\u0067auge-1"',
        b'"n": 12345678901234567890123',
    ],
)
def test_a_reading_with_other_fields_and_every_key_once_is_still_admitted(
    grid: Grid, extra: bytes
) -> None:
    raw = good(1)[:-1] + b", " + extra + b"}"
    assert EventValidator(grid).readings(raw, NOW)[1][0] == EventValidator(grid).reading(
        good(1), NOW
    )
    incoming, refused = batched(grid, [raw, packed(raw, good(2))], [home_of_gauge()] * 2)
    assert refused == [] and len(incoming) == 3


def test_the_fast_path_counts_without_a_second_parse_when_there_is_nothing_else(
    grid: Grid, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streams.columns

    looked: list[bytes] = []

    def spy(raw: bytes, doc: object) -> list[tuple[str, str]]:
        looked.append(raw)
        return duplicate_keys(raw, doc)

    monkeypatch.setattr(streams.columns, "duplicate_keys", spy)
    lone = json.dumps({k: v for k, v in GOOD.items() if k != "schema"}).encode()
    compact = Reading(1.79e9, "gauge-1", "water_level", 1.5, "ft", "c-bridge").to_json()
    raws = [good(1), packed(good(2), lone, good(3)), compact]
    admission = BatchAdmission(EventValidator(grid), PARTITIONS)
    home = home_of_gauge()
    incoming, refused = admission.admit(raws, [home] * 3, [1, 2, 3], [0.0] * 3, NOW)
    assert refused == [] and len(incoming) == 5
    assert looked == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "c-1", "run_id": "g.1", "action": "ack", "action": "cancel"}',
        b'{"alert_id": "a", "status": "firing", "status": "resolved"}',
        b'{"alert": {"alert_id": "a", "alert_id": "b"}, "route": {}}',
    ],
)
def test_the_worker_s_own_topics_refuse_a_key_given_twice(raw: bytes) -> None:
    with pytest.raises(EventError) as caught:
        message_json(raw)
    assert caught.value.code == "bad_json" and "is given twice in one object" in str(caught.value)
