"""A dead letter carries its original record whole: ``original_record`` and the
original headers' share of ``fit_dead_letter`` (helper t81: headers were dropped)."""

from __future__ import annotations

from streams.events import MAX_MESSAGE_BYTES, fit_dead_letter, original_record


def test_the_original_headers_are_kept_in_order_binary_and_namespaced() -> None:
    sent = [("hop", b"a"), ("hop", b"b"), ("bin", b"\x00\xff"), ("nul", None)]
    sent.append(("citybrain.error.reason", b"spoofed"))
    carried = original_record(b"pack-1", b"gauge-1", 1.5, 1, sent)
    assert carried == [
        ("citybrain.original.timestamp", b"1500"),
        ("citybrain.original.timestamp_type", b"LogAppendTime"),
        ("citybrain.original.key", b"pack-1"),
        ("citybrain.original.header.hop", b"a"),
        ("citybrain.original.header.hop", b"b"),
        ("citybrain.original.header.bin", b"\x00\xff"),
        ("citybrain.original.header.nul", None),  # null, not empty
        ("citybrain.original.header.citybrain.error.reason", b"spoofed"),
    ]


def test_the_original_key_is_said_only_when_the_dead_letter_has_another() -> None:
    assert original_record(b"k", b"k", None, None, None) == []
    assert original_record(None, b"gauge-1", None, None, ()) == [
        ("citybrain.original.key_null", b"")
    ]


def test_a_tombstone_is_said_apart_from_an_empty_value() -> None:
    assert original_record(b"k", b"k", None, None, (), tombstone=True) == [
        ("citybrain.original.value_null", b"")
    ]
    assert original_record(b"k", b"k", None, None, ()) == []


def test_headers_too_large_for_one_message_keep_their_first_and_say_so() -> None:
    ours = [("citybrain.error.reason", b"bad_json")]
    carried = [(f"citybrain.original.header.h{i}", b"x" * 10_000) for i in range(200)]
    key, value, headers = fit_dead_letter(b"v" * 900_000, b"k", ours, original=carried)
    size = len(key or b"") + len(value) + sum(len(n) + len(v) for n, v in headers)
    assert size <= MAX_MESSAGE_BYTES
    kept = [h for h in headers if h[0].startswith("citybrain.original.header.")]
    assert kept == carried[: len(kept)] and 0 < len(kept) < 200
    assert dict(headers)["citybrain.error.headers_truncated"] == f"{len(kept)} of 200".encode()
    assert "citybrain.error.truncated" in dict(headers)  # the value made room too
