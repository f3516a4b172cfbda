"""`citybrain deadletters` shows each dead letter as a table row or a JSON line (the
reading of the topic itself is in tests/integration/test_deadletters.py)."""

from __future__ import annotations

import argparse
import base64
import json
import os
from pathlib import Path

import pytest

from citybrain.cli import CliError
from citybrain.cli.prefixes import chosen_prefix
from citybrain.deadletters import COLUMNS, MAX_MESSAGE, DeadLetter, json_line, row, widths
from citybrain.demo import DemoFiles
from citybrain.text import display_width
from streams.settings import Settings

HEADERS = {
    "stream": "readings",
    "reason": "bad_type",
    "message": 'field "readings[1].value" is {"v": 1}: expected a number',
    "origin": "t.readings/0/7#1",
}


def letter(**kw: object) -> DeadLetter:
    base: dict[str, object] = {
        "partition": 0,
        "offset": 7,
        "timestamp": 1_796_151_479.25,
        "key": b"gauge-1",
        "value": b'{"value": {"v": 1}}',
        "headers": dict(HEADERS),
    }
    return DeadLetter(**{**base, **kw})  # type: ignore[arg-type]


def test_a_row_has_the_headers_and_the_key() -> None:
    cells = row(letter())
    assert len(cells) == len(COLUMNS)
    assert cells[0] == "0:7"  # its own place, what --replay takes (t151)
    assert cells[2:] == ("readings", "bad_type", "gauge-1", "t.readings/0/7#1", HEADERS["message"])


def test_a_row_tells_no_key_from_an_empty_one() -> None:
    assert row(letter(key=None))[4] == "-"
    assert row(letter(key=b""))[4] == '""'


def test_a_tombstones_json_value_is_null_and_a_null_header_value_null() -> None:
    dead = letter(
        value=b"",
        original=(("citybrain.original.value_null", b""), ("citybrain.original.header.n", None)),
    )
    doc = json.loads(json_line(dead, "t.deadletter"))
    assert doc["value"] is None
    assert doc["original"]["headers"] == [{"name": "n", "value": None}]
    assert json.loads(json_line(letter(value=b""), "t.deadletter"))["value"] == ""


def test_a_row_is_one_line_however_odd_its_cells() -> None:
    odd = letter(
        key=b"\xff\n" + b"k" * 200,
        headers={**HEADERS, "message": "two\nlines " + "m" * 500, "truncated": "5000000"},
    )
    cells = row(odd)
    assert all("\n" not in c for c in cells)
    assert cells[4].startswith("\\xff\\n") and len(cells[4]) == 60  # cut in the middle
    assert cells[6].endswith("… (cut: the original was 5000000 bytes)")
    assert len(cells[6]) == MAX_MESSAGE + len(" (cut: the original was 5000000 bytes)")
    cut = row(letter(headers={**HEADERS, "truncated": "5000000"}))[6]
    assert cut.endswith("(cut: the original was 5000000 bytes)")
    key_cut = row(letter(headers={**HEADERS, "key_truncated": "999900"}))[6]
    assert key_cut.endswith("(key cut: it was 999900 bytes)")  # trial 19
    assert widths([cells])[4] == display_width(cells[4])


def test_a_json_line_holds_everything_and_the_value_as_text_or_base64() -> None:
    doc = json.loads(json_line(letter(), "t.deadletter"))
    assert doc == {
        "topic": "t.deadletter",
        "partition": 0,
        "offset": 7,
        "time": "2026-12-01T18:57:59.250Z",
        "key": "gauge-1",
        "headers": HEADERS,
        "original": {"headers": []},
        "value": '{"value": {"v": 1}}',
    }
    raw = json.loads(json_line(letter(value=b"\xff\xfe", key=None), "t.deadletter"))
    assert raw["key"] is None and "value" not in raw
    assert base64.b64decode(raw["value_base64"]) == b"\xff\xfe"


def _args(prefix: str | None) -> argparse.Namespace:
    return argparse.Namespace(prefix=prefix)


def test_the_prefix_is_the_option_the_setting_or_the_running_demos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CITYBRAIN_TOPIC_PREFIX", raising=False)
    settings = Settings(run_dir_override=tmp_path)
    assert chosen_prefix(_args(None), settings) == ("citybrain", "")
    files = DemoFiles.of(settings)
    files.dir.mkdir(parents=True)
    files.pid.write_text(str(os.getpid()))  # this process stands in for the demo's worker
    files.state.write_text(json.dumps({"topic_prefix": "demo-1"}))
    assert chosen_prefix(_args(None), settings) == (
        "demo-1",
        "(the running demo's prefix demo-1; --prefix reads another)",
    )
    assert chosen_prefix(_args("mine"), settings) == ("mine", "")
    chosen = Settings(run_dir_override=tmp_path, topic_prefix="set")
    assert chosen_prefix(_args(None), chosen) == ("set", "")
    with pytest.raises(CliError, match="--prefix is empty"):
        chosen_prefix(_args(" "), settings)


def test_the_examples_placeholder_prefix_is_named_with_the_running_demos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t91: the README's `report --prefix demo-… --data … --out …` and `campaign report
    --prefix demo-…`, typed as printed, were "no events under it" (the same words as a
    prefix that never ran), not that the prefix is the example's placeholder; every
    command reading topics (deadletters, report, campaign report) chooses it here."""
    monkeypatch.delenv("CITYBRAIN_TOPIC_PREFIX", raising=False)
    settings = Settings(run_dir_override=tmp_path)
    with pytest.raises(CliError) as no_demo:
        chosen_prefix(_args("demo-…"), settings)
    assert str(no_demo.value) == (
        "--prefix 'demo-…' is the placeholder the examples print: give a topic prefix; "
        "the demo prints its own (`demo-` and its start time)"
    )
    files = DemoFiles.of(settings)
    files.dir.mkdir(parents=True)
    files.pid.write_text(str(os.getpid()))  # this process stands in for the demo's worker
    files.state.write_text(json.dumps({"topic_prefix": "demo-20261205021750"}))
    with pytest.raises(CliError) as demo:
        chosen_prefix(_args("demo-…"), settings)
    assert str(demo.value) == (
        "--prefix 'demo-…' is the placeholder the examples print: give a topic prefix; "
        "the running demo's is demo-20261205021750 (--prefix left out reads it)"
    )


def test_a_foreign_dead_letter_s_headers_are_read_whatever_their_bytes() -> None:
    """The demo's summary and ``report`` read dead letters' reasons and origins through
    ``DeadLetter.of`` too (twenty-first session: their own ``.decode()`` of the reason
    header raised on a foreign dead letter whose header was not UTF-8, and a header
    with no value raised AttributeError: the summary exited 70)."""
    from types import SimpleNamespace

    message = SimpleNamespace(
        partition=0,
        offset=3,
        timestamp=1_800_000_000_000,
        key=None,
        value=None,
        headers=[
            ("citybrain.error.reason", b"bad\xff"),
            ("citybrain.error.origin", None),
            ("other", b"\xfe"),
        ],
    )
    letter = DeadLetter.of(message)
    assert letter.headers == {"reason": "bad\\xff"}
    assert letter.headers.get("origin", "") == "" and letter.value == b""
    assert DeadLetter.of(SimpleNamespace(**{**vars(message), "headers": None})).headers == {}


def test_a_kafka_timestamp_no_date_can_show_is_shown_as_it_is() -> None:
    """Helper t52: a producer sets a record's timestamp; one past the year 9999 on the
    dead-letter topic made every listing "unexpected ValueError" (exit 70)."""
    for ms in (253_402_300_800_000, 9_223_372_036_854_775_807, -62_135_596_801_000):
        odd = letter(timestamp=ms / 1000)
        assert row(odd)[1].endswith(" ms (not a date)")
        assert json.loads(json_line(odd, "t.deadletter"))["time"].endswith(" ms (not a date)")
    assert row(letter())[1].startswith("2026-")


def test_a_json_line_stays_one_line_and_shows_no_raw_separator_or_control() -> None:
    """t169: --json wrote a value's U+2028, U+2029 and U+0085 raw (ensure_ascii=False),
    so a reader splitting its output with str.splitlines() read one dead letter as
    several lines, none of them JSON; a U+202E or the 8-bit CSI (U+009B) reached the
    terminal raw. Now each is its \\u escape: the same JSON, printable. Fails on the
    old code."""
    value = '{"text": "a\u2028b\u2029c\x85d \u202eevil \x9b2J 東京 é"}'.encode()
    odd = letter(value=value, key="k\u2028ey".encode(), headers={**HEADERS, "message": "m\x85"})
    line = json_line(odd, "t.deadletter")
    assert line.splitlines() == [line] and line.isprintable()
    doc = json.loads(line)
    assert doc["value"].encode() == value and doc["key"] == "k\u2028ey"
    assert doc["headers"]["message"] == "m\x85"
    assert "東京 é" in line  # printable text stays as written
