"""Alertmanager 0.27's UTF-8 matcher reading (playbooks/utf8matchers.py), on the cases
tools/ammatchers (0.27.0's own parser) answered in t113; the differential itself is
tests/integration/test_utf8_matchers_differential.py."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playbooks.errors import RoutingConfigError
from playbooks.routing import (
    _compiles,
    _log_once,
    escape,
    parse_label,
    parse_matchers,
    parse_silence_matchers,
    read_apart_warnings,
)
from playbooks.utf8matchers import go_unquote, regex_form, utf8_reading


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('"a\\tb"', "a\tb"),
        ('"\\x41\\101\\u00e9\\U0001F30A"', "AAé🌊"),
        ('"\\xc3\\xa9"', "é"),  # two bytes making one UTF-8 character
        ('"\\\\\\""', '\\"'),
        ('"\\a\\b\\f\\v\\r\\n"', "\a\b\f\v\r\n"),
    ],
)
def test_go_string_literals_read_as_go_reads_them(text: str, value: str) -> None:
    assert go_unquote(text) == value


@pytest.mark.parametrize(
    "text",
    ['"\\d"', '"\\\'"', '"\\x4"', '"\\400"', '"\\ud800"', '"\\U00110000"', '"\\xff"', '"a\nb"'],
)
def test_go_refuses_these_literals(text: str) -> None:
    with pytest.raises(ValueError):
        go_unquote(text)


@pytest.mark.parametrize(
    ("entry", "reading"),
    [
        ('kind="a"', [("kind", "=", "a")]),
        ('{"service.name"=~"a\\tb",}', [("service.name", "=~", "a\tb")]),
        ("kind=a b", None),  # an unquoted value ends at a space
        ('kind=~"\\d"', None),  # not a Go string literal
        ('kind=~"\\x28"', None),  # "(" does not compile
        ("{}", []),
        ("}", None),
    ],
)
def test_utf8_reading(entry: str, reading: list[tuple[str, str, str]] | None) -> None:
    assert utf8_reading(entry, _compiles) == reading


def test_regex_form_keeps_metacharacters_escaped() -> None:
    assert regex_form("\\t\\x41") == "\tA"
    assert regex_form("\\x2e") == "\\."
    assert regex_form("\\b\\\\t") == "\\b\\\\t"


@pytest.mark.parametrize(
    ("entry", "ours", "theirs"),
    [
        ('category="a\\tb"', [("category", "=", "a\\tb")], 'category="a\\tb"'),
        ('kind=~"\\bx"', [("kind", "=~", "\\bx")], 'kind=~"\\bx"'),
        ('kind=~"a\\x2eb"', [("kind", "=~", "a\\x2eb")], 'kind=~"a.b"'),
        ('category="\\u00e9"', [("category", "=", "\\u00e9")], 'category="é"'),
        ("category!=\u2028é", [("category", "!=", "\u2028é")], 'category!="é"'),
    ],
)
def test_entries_read_apart_are_taken_as_0_25_reads_them_with_a_warning(
    entry: str,
    ours: list[tuple[str, str, str]],
    theirs: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # t115: Alertmanager 0.25 (citybrain's reference) and 0.27's default mode take these
    # entries their classic way; t113 refused them, a disagreement with the real binary.
    _log_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="playbooks.routing"):
        got = parse_matchers(entry)
    assert [(m.name, m.op, m.value) for m in got] == ours
    (record,) = caplog.records
    assert record.name == "playbooks.routing" and record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith(f"matcher {entry!r} is read as ")
    assert f"but as {theirs} by Alertmanager 0.27's UTF-8 matchers" in message
    assert "quote the value and write the character itself" in message


def test_the_warning_is_logged_once_per_entry(caplog: pytest.LogCaptureFixture) -> None:
    # A flood of silences through the API repeating one entry must not flood the log.
    _log_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="playbooks.routing"):
        for _ in range(50):
            parse_matchers('category="a\\tb"')
            parse_silence_matchers('category="a\\tb", kind="pm25"')
    assert len(caplog.records) == 2
    assert _log_once.cache_info().maxsize is not None  # bounded memory


def test_collected_warnings_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    _log_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="playbooks.routing"):
        for _ in range(2):  # collected each time, also once logged
            with read_apart_warnings() as found:
                parse_matchers('kind=~"\\bx"')
            assert len(found) == 1 and 'kind=~"\\\\bx"' in found[0], found
    assert caplog.records == []


@pytest.mark.parametrize(
    "entry", ['category="a\\\\tb"', 'kind=~"a\\tb"', 'kind=~"\\d+"', 'category="back\\slash"']
)
def test_entries_read_alike_are_taken_without_a_word(
    entry: str, caplog: pytest.LogCaptureFixture
) -> None:
    _log_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="playbooks.routing"):
        assert parse_matchers(entry)
    assert caplog.records == []


def test_route_test_labels_read_apart_are_taken_with_a_warning_too() -> None:
    # amtool 0.27 reads `config routes test` labels with the same parsers.
    with read_apart_warnings() as found:
        assert parse_label('category="a\\tb"') == ("category", "a\\tb")
    assert len(found) == 1 and found[0].startswith("label 'category=\"a\\\\tb\"' is read as")
    with read_apart_warnings() as found:
        assert parse_label('category="a\\\\tb"') == ("category", "a\\tb")
    assert found == []


@pytest.mark.parametrize("entry", ['"kind"="water_level"', "kind.x=a", '{"category"="a"}'])
def test_utf8_label_names_are_still_refused(entry: str) -> None:
    # 0.25 refuses them too (amtool check-config 0.25, checked in t115).
    with pytest.raises(RoutingConfigError, match=r"written for Alertmanager 0\.27's UTF-8"):
        parse_matchers(entry)


def test_a_route_test_label_with_a_quoted_name_says_utf8() -> None:
    with pytest.raises(RoutingConfigError, match=r"0\.27's UTF-8 matchers read it as kind="):
        parse_label('"kind"=water_level')


@given(st.sampled_from(["=", "!=", "=~", "!~"]), st.text(max_size=12))
@settings(max_examples=400, deadline=None)
def test_a_matcher_written_back_is_never_read_apart(op: str, value: str) -> None:
    # Stored silences keep str(matcher) and are read back through parse_matchers: what
    # citybrain writes must never be read apart by 0.27 (t113; t115 warns of such entries).
    if op in ("=~", "!~") and not _compiles(f"^(?:{value})$"):
        return
    try:
        (matcher,) = parse_matchers(f'category{op}"{escape(value)}"')
    except RoutingConfigError as exc:
        assert "UTF-8" not in str(exc), str(exc)
        return
    with read_apart_warnings() as found:
        assert parse_matchers(str(matcher)) == [matcher]
    assert found == [], found
