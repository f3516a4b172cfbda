"""streams/bounds.py: the pure parts of the HTTP servers' bounds."""

from __future__ import annotations

import json

import pytest

from streams.bounds import Bounds, EvictionLog, HeadTracker, answer, busy_answer


def test_bounds_refuse_a_timeout_or_cap_that_bounds_nothing() -> None:
    with pytest.raises(ValueError, match="timeout is 0, expected more than 0 seconds"):
        Bounds(timeout=0)
    with pytest.raises(ValueError, match="max_connections is 0, expected at least 1"):
        Bounds(max_connections=0)


def test_an_answer_is_whole_json_and_closes_its_connection() -> None:
    raw = busy_answer("the worker", 256)
    head, _, data = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    assert {"Connection: close", "Retry-After: 1", f"Content-Length: {len(data)}"} <= set(lines)
    assert json.loads(data) == {
        "error": "the worker serves at most 256 connections at once "
        "(CITYBRAIN_HTTP_MAX_CONNECTIONS) and has that many open; retry in a moment",
        "reason": "busy",
    }
    assert answer(408, "late", "timeout").startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def fed(*chunks: bytes) -> HeadTracker:
    head = HeadTracker()
    for chunk in chunks:
        head.feed(chunk)
    return head


def test_the_tracker_names_the_longest_line_however_the_bytes_are_split() -> None:
    line = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n"
    whole = fed(line)
    split = fed(*(line[i : i + 7] for i in range(0, len(line), 7)))
    for head in (whole, split):
        assert head.too_long(8190, 8190).startswith(
            "the request line is longer than the 8,190 bytes the server reads (it starts 'GET /aaaa"
        )
    assert whole.size == split.size == len(line)
    header = fed(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big", b": " + b"v" * 9000)
    assert header.too_long(8190, 8190) == (
        "header 'X-Big' is longer than the 8,190 bytes the server reads (its name and value)"
    )
    name = fed(b"GET / HTTP/1.1\r\n" + b"N" * 9000)
    assert name.too_long(8190, 100).startswith(
        "a header name is longer than the 100 bytes the server reads (it starts 'NNN"
    )
    # A name past the kept prefix with a long value: the header is too long, not its name
    # (it was called "a header name is longer" since the colon was not in the prefix).
    for chunks in ([b"X-" + b"n" * 118 + b": " + b"v" * 9000], [b"X-" + b"n" * 118, b": v" * 3000]):
        long_name = fed(b"GET / HTTP/1.1\r\nHost: x\r\n", *chunks)
        assert long_name.too_long(8190, 8190) == (
            f"header {'X-' + 'n' * 62!r}... (a 120-byte name) is longer than the 8,190 bytes "
            "the server reads (its name and value)"
        )


def test_the_tracker_keeps_little_whatever_it_is_fed() -> None:
    head = fed(b"x" * 10_000_000, b"\n" * 100_000, b"X-A: 1\r\n" * 10_000)
    assert len(head._lines) <= 256
    assert all(len(prefix) <= 96 for _, prefix, _ in head._lines)
    head.reset()
    assert head.size == 0 and head.too_long(10, 10).startswith("the request line")


def test_evictions_are_said_at_once_then_at_most_once_a_minute_with_their_count() -> None:
    said = EvictionLog(every=60)
    assert said.evicted(100.0) == 1
    assert [said.evicted(100.0 + t) for t in (1, 2, 59)] == [0, 0, 0]
    assert said.evicted(160.0) == 4  # the three untold and this one
    assert said.evicted(170.0) == 0


def test_a_connection_may_lose_its_place_after_a_second_whatever_the_timeout() -> None:
    assert Bounds().evict_after == 1.0
    assert Bounds(timeout=1).evict_after == 1.0
