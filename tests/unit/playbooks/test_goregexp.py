"""Go's regexp limits that RE2 does not share (playbooks/goregexp.py): parse-tree height
and capture-group names. The levels are those at which Alertmanager 0.25 (Go 1.19.8)
starts refusing each shape, measured with ``amtool check-config`` (trial 12) and
re-checked by tests/integration/test_routing_differential.py."""

from __future__ import annotations

import pytest
import re2

from playbooks.errors import RoutingConfigError
from playbooks.goregexp import (
    GO_CLASS_CHANGES,
    MAX_HEIGHT,
    ClassTables,
    _complement,
    _merge,
    capture_name_refusal,
    wrapped_height,
)
from playbooks.routing import _RE2_OPTIONS, Matcher, new_silence

# (shape, the first nesting level Alertmanager refuses): {} is where the next level goes.
SHAPES = [
    ("({})", 999),
    ("({})*", 500),
    ("(?:{})*", 999),
    ("(a|{})", 500),
    ("(a{})", 500),
    ("[ab]|({})", 500),
    ("({})+?", 500),
    ("((?:x|y)|{})", 500),
    (r"\d({})", 500),
    # Go factors common prefixes: ab|ac… is a(?:b|c…), a level higher per nesting.
    ("(ab|ac{})", 250),
    ("(?:ab|a{})", 501),
    ("(a|b|{})", 500),
]
# Shapes Go flattens, which never nest however deep they are written.
FLAT = ["(?:{})", "(?:a|b|{})", "(?:{}b)", "(?i:{})", "{}c", "(?:{}|)", "(?:ab|ac|{})"]


def nest(shape: str, levels: int, core: str = "a") -> str:
    text = core
    for _ in range(levels):
        text = shape.format(text)
    return text


@pytest.mark.parametrize(("shape", "refused_from"), SHAPES)
def test_height_limit_is_where_alertmanager_refuses(shape: str, refused_from: int) -> None:
    assert wrapped_height(nest(shape, refused_from - 1)) <= MAX_HEIGHT
    assert wrapped_height(nest(shape, refused_from)) > MAX_HEIGHT
    Matcher.build("kind", "=~", nest(shape, refused_from - 1))
    with pytest.raises(RoutingConfigError, match="nests too deeply for Go's regexp"):
        Matcher.build("kind", "=~", nest(shape, refused_from))


@pytest.mark.parametrize("shape", FLAT)
def test_flattened_groups_do_not_count(shape: str) -> None:
    assert wrapped_height(nest(shape, 2000)) <= 3
    Matcher.build("category", "=~", nest(shape, 2000))


def test_empty_groups_and_unbalanced_text_are_measured() -> None:
    assert wrapped_height("(" * 998 + ")" * 998) == MAX_HEIGHT
    assert wrapped_height("(" * 999 + ")" * 999) == MAX_HEIGHT + 1
    assert wrapped_height("(" * 5) > 1  # unbalanced: RE2 refuses it; measured, no error
    assert wrapped_height("") == 2


@pytest.mark.parametrize(
    ("regex", "height"),
    [
        ("ab|ac", 2),
        ("ab|a", 3),
        ("abc|abd|ae", 4),
        ("a|b", 2),
        ("(?:|)", 2),
        ("[ab]x|[ab]y", 2),
        ("([ab]x|[ab]y)", 4),
    ],
)
def test_alternations_are_factored_as_go_factors_them(regex: str, height: int) -> None:
    # ab|ac is a[bc]; ab|a is a(?:b|); abc|abd|ae is a(?:b[cd]|e); [ab]x|[ab]y is
    # [ab][xy] (each then in ^…$, one concat; a capture keeps its own).
    assert wrapped_height(regex) == height


def test_a_ladder_of_prefixes_is_factored_level_by_level() -> None:
    # a|aa|aaa|… is a(?:|a(?:|a(?:…))): two levels a rung; Alertmanager accepts 500 rungs
    # and refuses 501 (measured). Factoring 600 levels deep needs more than Python's
    # default recursion limit: no RecursionError.
    def ladder(rungs: int) -> str:
        return "|".join("a" * i for i in range(1, rungs + 1))

    assert wrapped_height(ladder(500)) == 999
    assert wrapped_height(ladder(501)) == 1001
    assert wrapped_height(ladder(600)) == 1199


def test_deep_nesting_needs_no_recursion() -> None:
    assert wrapped_height(nest("({})", 50_000)) == 50_002


@pytest.mark.parametrize("name", ["n", "N_1", "_", "1a"])
def test_ascii_group_names_are_go_syntax(name: str) -> None:
    assert capture_name_refusal(name) is None
    Matcher.build("kind", "=~", f"(?P<{name}>a)")


@pytest.mark.parametrize("name", ["é", "nå", "ñ1", "名"])
def test_non_ascii_group_names_are_refused(name: str) -> None:
    assert capture_name_refusal(name) is not None
    with pytest.raises(RoutingConfigError, match="is not Go regexp syntax"):
        Matcher.build("kind", "=~", f"(?P<{name}>a)")


# Unicode: characters Unicode 13 (Go 1.19, Alertmanager 0.25) already had, classed or
# folded otherwise by RE2's Unicode 15.1 tables (measured against amtool, trial 16).
@pytest.mark.parametrize(
    ("regex", "value", "expected"),
    [
        (r"\p{Mn}", "\u1734", True),  # Mn in Unicode 13, Mc since 14
        (r"\p{Mc}", "\u1734", False),
        (r"\P{Mn}", "\u1734", False),
        (r"\p{^Mc}", "\u1734", True),
        (r"[\p{Mc}a]", "\u1734", False),
        (r"[^\P{Mn}]", "\u1734", True),
        (r"(?i)\p{Mn}", "\u1734", True),
        (r"\p{Han}", "\U00016fe2", False),  # Common in Unicode 13, Han since 14
        (r"\p{Common}", "\U00016fe3", True),
        (r"(?i)[\P{Han}]", "\U00016fe2", True),
        (r"\p{Mn}", "\u0301", True),  # the rest of the class is RE2's
        (r"\p{Han}", "中", True),
        (r"(?i)(?-i:ﬅ)", "ﬅ", True),
        (r"(?i)[\x{390}-\x{1FE3}]", "ΐ", True),  # both letters of each pair in the class
    ],
)
def test_classes_changed_since_unicode_13_match_as_go(
    regex: str, value: str, expected: bool
) -> None:
    assert Matcher.build("kind", "=~", regex).matches({"kind": value}) is expected


@pytest.mark.parametrize("name", sorted(GO_CLASS_CHANGES))
def test_a_class_changed_since_unicode_13_is_built_once_range_by_range(name: str) -> None:
    # t138: \p{Han} was written out point by point (98,000 of them) at every matcher or
    # silence regex naming it, 0.5-1.3 s of the worker's loop each. Now built from
    # ranges, once: the same ranges as point by point, and the cached answer again.
    tables = ClassTables(lambda text: re2.compile(text, _RE2_OPTIONS))
    add, drop = GO_CLASS_CHANGES[name]
    points = {c for lo, hi in tables.ranges(f"\\p{{{name}}}", False) for c in range(lo, hi + 1)}
    wanted = _merge([(c, c) for c in sorted((points - drop) | add)])
    built = tables.go_class(name, False, False)
    assert built == wanted
    assert tables.go_class(name, False, False) is built
    assert tables.go_class(name, True, False) == _complement(wanted)


@pytest.mark.parametrize(
    "regex",
    [
        "(?i)ﬅ", "(?i)ﬆ", "(?i)ΐ", r"(?i)\x{1FD3}", r"(?i)\Qΰ\E", "(?i:ﬅ)", "(?i)[ά-ώ]",
        "(?i)[^ﬅ]", "(?is)a|ΰ", "a(?i)ﬅ",
    ],
)  # fmt: skip
def test_case_folding_added_in_unicode_15_1_is_refused_by_name(regex: str) -> None:
    with pytest.raises(RoutingConfigError, match="regex Alertmanager matches otherwise: under"):
        Matcher.build("kind", "=~", regex)


@pytest.mark.parametrize(
    ("regex", "value"),
    [("ﬅ", "ﬅ"), ("(?i:a)ﬅ", "Aﬅ"), ("ﬅ(?i)", "ﬅ"), ("(?i)(?-i:ﬅ)", "ﬅ"), ("(?i)[ﬅﬆ]", "ﬆ")],
)
def test_those_letters_without_case_folding_are_accepted(regex: str, value: str) -> None:
    assert Matcher.build("kind", "=~", regex).matches({"kind": value})


# Repetition counts (trial 23, measured with amtool check-config): Go does not look
# inside a group repeated {0} or {0,0} for the nested-repetition bound (RE2 does), and
# refuses a count of ten digits or more (RE2 reads it as text).
ZERO_REPEATED = [
    # (regex Alertmanager accepts, values it matches, values it does not)
    ("((a{2}){0}){1000}", [""], ["a", "aa"]),
    ("((a{2}){0,0}?){1000}", [""], ["aa"]),
    ("((a{2}){0}|b){1000}", ["", "b", "bbb"], ["a"]),
    ("(x(a{2}){0}?){1,1000}", ["x", "xx"], ["", "xaa"]),
    ("(((a{2}){0}){0}){1000}", [""], ["a"]),
    ("(?P<g>(a{2}){0}(?P<g>b)){1000}", ["b" * 1000], ["", "b"]),
    ("([)](a{2}){0}){1000}", [")" * 1000], ["", ")", "a"]),
]
# Refused by Alertmanager: a violation outside the {0}, or inside it on its own.
STILL_REFUSED = [
    "(((a{2}){600}){0}){1000}",
    "((a{2}){0}(){1000}){1000}",
    "((a{2}){00}){1000}",  # {00} is text to Go, not a repetition
    "(a**){0}",
    "((a{2})(b{2}){0}){501}",
    # A repetition stacked on the {0} (t160: rewritten (?:)* and taken, where Go refuses
    # "invalid nested repetition operator: `{0}*`"; a silence of !~"(a){0}*?" then muted
    # every alert with the label).
    "(a){0}*",
    "(a){0}??",
    "(?:a){0,0}{2}",
    "(a){0}?+",
]
LONG_COUNTS = ["a{1000000000}", "a{1,1000000000}", "a{1000000000,}", "(a){9999999999}"]
# Text to both engines: a leading zero, or inside a class or \Q…\E.
COUNTS_AS_TEXT = [
    ("a{01000000000}", "a{01000000000}"),
    ("[a{1000000000}]", "1"),
    (r"\Qa{1000000000}\E", "a{1000000000}"),
    (r"\{1000000000}", "{1000000000}"),
]


@pytest.mark.parametrize(("regex", "matching", "other"), ZERO_REPEATED)
def test_a_group_repeated_zero_times_is_not_counted_as_go_counts(
    regex: str, matching: list[str], other: list[str]
) -> None:
    matcher = Matcher.build("kind", "=~", regex)
    assert [matcher.matches({"kind": v}) for v in matching + other] == [True] * len(matching) + [
        False
    ] * len(other)
    # A silence checks the regex on its own first, as Alertmanager's silences do.
    assert new_silence("s", [f'kind=~"{regex}"', 'severity="major"'], 0, 1, "a", "r")


@pytest.mark.parametrize("regex", STILL_REFUSED)
def test_a_violation_outside_or_inside_on_its_own_is_still_refused(regex: str) -> None:
    with pytest.raises(RoutingConfigError, match="bad regex"):
        Matcher.build("kind", "=~", regex)


@pytest.mark.parametrize("regex", LONG_COUNTS)
def test_a_count_of_ten_digits_is_refused_as_go_refuses_it(regex: str) -> None:
    with pytest.raises(RoutingConfigError, match=r"invalid repeat count \{1?,?[0-9]+,?\}"):
        Matcher.build("kind", "=~", regex)


@pytest.mark.parametrize(("regex", "value"), COUNTS_AS_TEXT)
def test_braces_go_reads_as_text_are_text(regex: str, value: str) -> None:
    assert Matcher.build("kind", "=~", regex).matches({"kind": value})


def test_groups_repeated_zero_times_nested_as_deep_as_go_allows_need_no_recursion() -> None:
    # 998 nested (?:…){0} fit Go's height limit once wrapped; the rewrite walks them
    # innermost first without recursion (a recursive first version overflowed Python's).
    deepest = "(?:" * 998 + "a" + "){0}" * 998
    matcher = Matcher.build("kind", "=~", deepest)
    assert (matcher.matches({"kind": ""}), matcher.matches({"kind": "a"})) == (True, False)
    with pytest.raises(RoutingConfigError, match="nests too deeply"):
        Matcher.build("kind", "=~", "(?:" * 999 + "a" + "){0}" * 999)
