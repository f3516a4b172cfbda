"""t141: what parsing stored silences costs, counted in RE2 compilations and matcher
parses (not time), and that what is kept gives the same answers. Before, 10,000 stored
regex silences took 6-15 s to parse after a worker's start: each silence's regex was
compiled four times (0.27's reading, Go's wrapping twice, the regex alone) and each
matcher parsed twice; an entry many silences share (``kind="pm25"``) was parsed again
for each. And an unreadable silence read first by a listing or a flush was never
reported (audited, counted): the route agent found it already read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import re2

from playbooks import routing
from playbooks.errors import SilenceError
from playbooks.routing import (
    Matcher,
    Silence,
    SilenceBook,
    new_silence,
    parse_silence_matchers,
    read_apart_warnings,
)

NOW = 1_000_000.0
KEPT = ("_compiled", "_parsed_matcher", "_silence_entry")


@pytest.fixture(autouse=True)
def cold() -> Iterator[None]:
    """Each test starts with the parse caches empty, as a worker starts."""
    for name in KEPT:
        kept = getattr(routing, name, None)  # (none before t141)
        if kept is not None:
            kept.cache_clear()
    yield


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts RE2 compiled while the test runs."""
    texts: list[str] = []
    compile_ = re2.compile

    def counted(text: Any, *args: Any, **kwargs: Any) -> Any:
        texts.append(text)
        return compile_(text, *args, **kwargs)

    monkeypatch.setattr(re2, "compile", counted)
    return texts


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The matcher texts Matcher.parse read while the test runs."""
    texts: list[str] = []
    parse = Matcher.parse.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Matcher], text: str) -> Matcher:
        texts.append(text)
        return parse(cls, text)  # type: ignore[no-any-return]

    monkeypatch.setattr(Matcher, "parse", classmethod(counted))
    return texts


def stored(i: int) -> dict[str, Any]:
    return {
        "id": f"s{i}",
        "matchers": [f'sensor_id=~"sensor-{i}(-.*)?"', 'kind="pm25"'],
        "starts_at": NOW - 10,
        "ends_at": NOW + 3600,
        "author": "op",
        "reason": "maintenance",
    }


def test_a_new_regex_silence_compiles_its_regex_once_as_wrapped_and_once_alone(
    compiled: list[str], parsed: list[str]
) -> None:
    silence = Silence.from_dict(stored(7))
    assert silence.matchers[0].matches({"sensor_id": "sensor-7-b"})
    assert sorted(compiled) == ["^(?:sensor-7(-.*)?)$", "sensor-7(-.*)?"]  # before: 4
    assert sorted(parsed) == ['kind="pm25"', 'sensor_id=~"sensor-7(-.*)?"']  # before: 2 each


def test_an_entry_many_silences_share_is_parsed_once(parsed: list[str]) -> None:
    silences = [Silence.from_dict(stored(i)) for i in range(100)]
    assert parsed.count('kind="pm25"') == 1  # before: 200
    assert all(s.matchers[1] == Matcher("kind", "=", "pm25") for s in silences)


def test_kept_readings_give_the_same_matchers_errors_and_warnings() -> None:
    entries = [
        'kind="pm25"',
        'sensor_id=~"sensor-1(-.*)?", kind!~"no2|so2"',
        '{category="noise", severity!="minor"}',
        'category="a\\tb"',  # read apart by Alertmanager 0.27's UTF-8 matchers
    ]
    first = [parse_silence_matchers(text) for text in entries]
    with read_apart_warnings() as warned_first:
        parse_silence_matchers(entries[3])
    routing._silence_entry.cache_clear()
    with read_apart_warnings() as warned_again:
        parse_silence_matchers(entries[3])  # parsed now, kept
        parse_silence_matchers(entries[3])  # the kept reading: warned all the same
    assert len(warned_first) == 1 and warned_again == warned_first * 2
    again = [parse_silence_matchers(text) for text in entries]
    assert again == first
    for was, now in zip(first, again, strict=True):
        for a, b in zip(was, now, strict=True):
            assert (a.pattern is None) == (b.pattern is None)
            if a.pattern is not None:
                assert a.pattern.pattern == b.pattern.pattern
    # A refused entry is refused each time with the same message (errors are not kept).
    for bad in ('sensor_id=~"a)|(b"', "category=noise,kind=pm25", 'kind=~"("'):
        messages = []
        for _ in range(2):
            with pytest.raises(SilenceError) as exc:
                new_silence("s", [bad], NOW, NOW + 60, "op", "r")
            messages.append(str(exc.value))
        assert messages[0] == messages[1], messages


def test_the_parse_caches_are_bounded() -> None:
    caches = [getattr(routing, name) for name in KEPT]
    for kept in caches:
        assert kept.cache_info().maxsize == routing.PARSE_CACHE
    for i in range(routing.PARSE_CACHE + 10):
        parse_silence_matchers(f'sensor_id=~"s-{i}.*"')
    for kept in caches:
        assert kept.cache_info().currsize == routing.PARSE_CACHE


def unreadable_table() -> list[tuple[str, Any]]:
    bad = {**stored(1), "matchers": ['kind=~"("']}
    return [("s0", stored(0)), ("s1", bad)]


def test_an_unreadable_silence_read_first_by_a_listing_is_reported_by_the_route_agent() -> None:
    book = SilenceBook()
    table = unreadable_table()
    silences, bad = book.read(table, NOW, 1, report=False)  # a listing or a flush
    assert [s.id for s in silences] == ["s0"] and bad == []
    silences, bad = book.read(table, NOW, 1)  # the route agent, the table unchanged
    assert [b.key for b in bad] == ["s1"] and bad[0].problem == "matcher"
    assert book.read(table, NOW, 1)[1] == []  # reported once
    assert book.read(table, NOW, 2)[1] == []  # also when the table is walked again


def test_an_unreported_silence_gone_or_rewritten_is_reported_as_it_now_is() -> None:
    book = SilenceBook()
    table = unreadable_table()
    book.read(table, NOW, 1, report=False)
    assert book.read(table[:1], NOW, 2)[1] == []  # deleted: nothing to report
    book.read(table, NOW, 3, report=False)
    rewritten = {**stored(1), "matchers": ['kind="pm25"', "author"]}
    silences, bad = book.read([table[0], ("s1", rewritten)], NOW, 4)
    assert [b.key for b in bad] == ["s1"] and "author" in bad[0].message
    assert [s.id for s in silences] == ["s0"]
