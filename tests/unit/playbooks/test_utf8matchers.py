"""Alertmanager 0.27's UTF-8 matcher reading (playbooks/utf8matchers.py), on the cases
tools/ammatchers (0.27.0's own parser) answered in t113; the differential itself is
tests/integration/test_utf8_matchers_differential.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from playbooks.errors import RoutingConfigError
from playbooks.routing import _compiles, escape, parse_label, parse_matchers
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
    "entry", ['category="a\\tb"', 'kind=~"\\bx"', 'kind=~"a\\x2eb"', 'category="\\u00e9"']
)
def test_entries_read_apart_are_refused_naming_both_readings(entry: str) -> None:
    with pytest.raises(RoutingConfigError, match=r"Alertmanager 0\.27's UTF-8 matchers") as info:
        parse_matchers(entry)
    assert repr(entry) in str(info.value)


@pytest.mark.parametrize(
    "entry", ['category="a\\\\tb"', 'kind=~"a\\tb"', 'kind=~"\\d+"', 'category="back\\slash"']
)
def test_entries_read_alike_are_taken(entry: str) -> None:
    assert parse_matchers(entry)


def test_route_test_labels_read_apart_are_refused_too() -> None:
    # amtool 0.27 reads `config routes test` labels with the same parsers.
    with pytest.raises(RoutingConfigError, match=r"^label 'category=\"a\\\\tb\"' is read as"):
        parse_label('category="a\\tb"')
    assert parse_label('category="a\\\\tb"') == ("category", "a\\tb")


def test_a_route_test_label_with_a_quoted_name_says_utf8() -> None:
    with pytest.raises(RoutingConfigError, match=r"0\.27's UTF-8 matchers read it as kind="):
        parse_label('"kind"=water_level')


@given(st.sampled_from(["=", "!=", "=~", "!~"]), st.text(max_size=12))
@settings(max_examples=400, deadline=None)
def test_a_matcher_written_back_is_never_read_apart(op: str, value: str) -> None:
    # Stored silences keep str(matcher) and are read back through parse_matchers: what
    # citybrain writes must never meet the t113 refusal (a silence would stop silencing).
    if op in ("=~", "!~") and not _compiles(f"^(?:{value})$"):
        return
    try:
        (matcher,) = parse_matchers(f'category{op}"{escape(value)}"')
    except RoutingConfigError as exc:
        assert "UTF-8" not in str(exc), str(exc)
        return
    assert parse_matchers(str(matcher)) == [matcher]
