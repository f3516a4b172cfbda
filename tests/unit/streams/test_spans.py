"""Where each item of a body's list lies in its bytes (streams/spans.py)."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest

from streams.errors import EventError
from streams.events import MAX_DEPTH, PINNED_DEPTH, TOO_DEEP, dead_letter_key, decode_json
from streams.spans import item_spans, max_depth


def items(raw: bytes, key: str | None = None) -> list[bytes] | None:
    spans = item_spans(raw, key)
    return None if spans is None else [raw[a:b] for a, b in spans]


def test_items_of_a_list_are_its_bytes_as_written() -> None:
    raw = b'\xef\xbb\xbf [1 , {"a": [1, 2], "b": "x,]}\\"{"} ,\n "s" , NaN,-Infinity, 1e999 ]'
    assert items(raw) == [
        b"1",
        b'{"a": [1, 2], "b": "x,]}\\"{"}',
        b'"s"',
        b"NaN",
        b"-Infinity",
        b"1e999",
    ]
    assert items(b"[]") == [] and items(b" [ ] ") == []
    # An object with no list or object in it is read whole, brackets in its text too.
    flat = b'{"s": "]}{[,\\"", "t": 1, "u": null}'
    assert items(b"[" + flat + b"," + flat + b", {}]") == [flat, flat, b"{}"]


def test_the_list_under_a_top_level_key_not_one_nested_deeper() -> None:
    raw = b'{"x": {"readings": [0]}, "r\\u0065adings": [ {"v": 1}, [2] ], "z": []}'
    assert items(raw, "readings") == [b'{"v": 1}', b"[2]"]
    assert items(b'{"data": [3, 4]}', "data") == [b"3", b"4"]


def test_nesting_of_any_depth_costs_no_recursion() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    assert items(b"[" + deep + b", 3]") == [deep, b"3"]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b"5", None),  # not a list
        (b'{"data": [1]}', None),  # an object where the list is the body
        (b"[1, 2]", "data"),  # a list where an object holds it
        (b'{"data": "x"}', "data"),
        (b'{"readings": [1]}', "data"),
        (b"[1,,2]", None),  # a stray comma
        (b"[1, 2", None),  # unterminated
        (b'[1, "2]', None),
        (b"[1, {]", None),  # brackets that do not match
    ],
)
def test_no_spans_where_the_list_is_not_found_whole(raw: bytes, key: str | None) -> None:
    assert item_spans(raw, key) is None


def test_a_dead_letter_as_sent_is_keyed_by_its_sensor() -> None:
    """An HTTP dead letter is the item's own bytes (NaN, 1e999 as written): still keyed
    by its sensor, as the written-again one was."""
    for value in (b"NaN", b"-Infinity", b"1e999"):
        raw = b'{"sensor_id": "gauge-1", "value": ' + value + b"}"
        assert dead_letter_key(raw, b"fallback") == b"gauge-1"
    assert dead_letter_key(b"[" * 2000 + b"]" * 2000, b"fallback") == b"fallback"


def test_max_depth_counts_brackets_outside_strings() -> None:
    assert max_depth(b'[1, {"a": "[[[{{{"}, [[2]]]') == 3
    assert max_depth(b'{"a": 1}') == 1
    assert max_depth(b"5") == 0


@pytest.mark.parametrize("limit", [None, 20_000])
def test_a_body_too_deep_is_too_deep_whatever_the_recursion_limit(limit: int | None) -> None:
    # A NaN makes orjson refuse the body before it sees the depth; the lenient parser got
    # through 1,100 levels when the process's recursion limit was high (CI, after other
    # tests raised it), and the deep item was read: one message, two answers.
    deep = b"[" * (MAX_DEPTH + 76) + b"]" * (MAX_DEPTH + 76)
    body = b'[{"value": NaN}, {"note": ' + deep + b"}]"
    before = sys.getrecursionlimit()
    if limit is not None:
        sys.setrecursionlimit(limit)
    try:
        with pytest.raises(EventError) as caught:
            decode_json(body)
    finally:
        sys.setrecursionlimit(before)
    assert caught.value.reason == TOO_DEEP


@pytest.mark.parametrize("limit", [None, 1_000, 20_000])
@pytest.mark.parametrize("frames", [0, 600])
def test_a_body_within_the_depth_is_read_whatever_the_recursion_limit_and_stack(
    limit: int | None, frames: int
) -> None:
    # Behind a NaN (orjson refusing first) json.loads read a body 1,000 levels deep in a
    # process with a high recursion limit and said "unexpected character … column 11"
    # at the default limit, or lower in a deeper stack (a worker's): one body, two
    # answers. Within MAX_DEPTH it is now read (its NaN then named by its field).
    depth = MAX_DEPTH - 1  # the outer object is one more level
    body = b'{"value": NaN, "note": ' + b"[" * depth + b"]" * depth + b"}"

    def at_depth(n: int) -> Any:
        return decode_json(body) if n == 0 else at_depth(n - 1)

    before = sys.getrecursionlimit()
    if limit is not None:
        sys.setrecursionlimit(limit)
    try:
        doc = at_depth(frames)
    finally:
        sys.setrecursionlimit(before)
    assert math.isnan(doc["value"])
    note, levels = doc["note"], 1
    while note:
        note, levels = note[0], levels + 1
    assert levels == depth


def test_counting_stops_past_the_depth_asked_about() -> None:
    # A megabyte of "{" on the readings topic was a Python loop over a million tokens
    # (1-3 s of the worker's event loop, its timers and API waiting; t99): the answer
    # "deeper than 1,024" is known at the 1,025th.
    raw = b"{" * 1_000_000
    assert max_depth(raw, past=1024) == 1025
    assert max_depth(b"[[[]]]", past=1024) == 3  # shallower: counted whole
    assert max_depth(b"[" * 2000 + b"]" * 2000) == 2000


def test_spans_are_not_looked_for_past_a_nesting_outside_the_list() -> None:
    deep = b'{"a":' + b"{" * 2000
    assert item_spans(deep, "readings", outside=1024) is None
    ok = b'{"a":{"b":{}},"readings":[1,' + b"[" * 2000 + b"]" * 2000 + b"]}"
    assert item_spans(ok, "readings", outside=1024) == [(26, 27), (28, 4028)]


def test_an_item_deeper_than_within_ends_the_scan() -> None:
    """A list's item nested past ``within`` levels: None at once, not after scanning the
    rest of the message (t99: a pack whose item was a megabyte of ``[`` held the worker's
    loop 0.6 s to find the item never closed). Shallower items are found as before."""
    deep = b"[" * 5000 + b"]" * 5000
    raw = b"[1, " + deep + b", 3]"
    assert item_spans(raw, within=4096) is None
    assert item_spans(raw) is not None  # no bound asked: found, however deep
    fine = b"[" * 2000 + b"]" * 2000
    spans = item_spans(b"[1, " + fine + b", 3]", within=4096)
    assert spans is not None and len(spans) == 3
    # The bound items_read_alone asks for keeps the battery's 10,000-level items alone.
    assert PINNED_DEPTH > 10_000
    spans = item_spans(b"[1, " + b"[" * 10_000 + b"]" * 10_000 + b", 3]", within=PINNED_DEPTH)
    assert spans is not None and len(spans) == 3


def test_a_pack_whose_item_never_closes_is_refused_whole() -> None:
    """The pack of t99's case is one bad_json dead letter naming the nesting."""
    import time

    from playbooks.loader import load_grid
    from streams.events import EventValidator
    from tests.unit.streams.test_group_flushes import FIXTURES

    validator = EventValidator(load_grid(FIXTURES / "grid.yaml"))
    raw = b'{"schema":"readings/1","readings":[' + b"[" * 1_000_000
    with pytest.raises(EventError) as caught:
        validator.readings(raw, time.time())
    assert caught.value.reason == "not valid JSON: nested deeper than 1024 levels"
