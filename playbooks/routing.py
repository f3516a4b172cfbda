"""Alert routing after Alertmanager: a tree of routes with matchers and ``continue``,
inherited grouping settings, inhibition rules and silences. Pure: no files, no clock.

Semantics (as in Alertmanager): a route matches when all its matchers match; its children
are tried in order and the first match wins unless that child says ``continue: true``;
a matching route whose children all fail is itself the result.

Matchers are parsed, escaped and matched as Alertmanager 0.25 does
(``pkg/labels/parse.go``, ``pkg/labels/matcher.go``): values may be quoted or not, inside
a value ``\\"`` is a quote, ``\\n`` a line feed and ``\\\\`` a backslash; regexes are RE2
(the ``google-re2`` package, the engine Go's ``regexp`` follows), wrapped as
``^(?:…)$`` exactly as Alertmanager wraps them. ``str(matcher)`` escapes the value again,
so a matcher parsed from its own text is the same matcher.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import reprlib
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

import re2

from playbooks.encodings import blank
from playbooks.errors import (
    RoutingConfigError,
    SilenceError,
    closest,
    did_you_mean,
    name_fault,
    shown,
)
from playbooks.goregexp import (
    ClassTables,
    capture_name_refusal,
    go_unicode,
    nesting_refusal,
    repeat_count_refusal,
    without_empty_repeats,
)
from playbooks.grid import LEVELS, RESERVED_KINDS, Grid
from playbooks.time_intervals import TimeInterval, time_mute
from playbooks.utf8matchers import Reading, same_reading, utf8_reading

# The labels an alert carries (docs/playbooks.md); matchers on anything else are typos.
LABELS = frozenset(
    {
        "alert_id",
        "kind",
        "severity",
        "sensor_id",
        "grid_cell",
        "community",
        "street",
        "district",
        "city",
        "source",
        "department",
        "category",
        # Neighbour corroboration of sensor alerts (docs/detectors.md).
        "corroboration",
        "neighbours_agreeing",
        "assessment",
        # A sensor alert whose episode opened on a far glitch (a 1e308 sentinel, no
        # measurement): reading="far_glitch" (streams/detection.py).
        "reading",
    }
)
ALL_LABELS = "..."  # group_by: [...] puts every alert in a group of its own
# The values the worker gives the labels with a fixed set of them (severity mildest
# first; streams/detection.py takes its severities from here); the grid defines the
# others'.
LABEL_VALUES: dict[str, tuple[str, ...]] = {
    "severity": ("minor", "major", "critical"),
    "source": ("sensor", "citizen"),
    "corroboration": ("corroborated", "isolated"),
    "assessment": ("event", "suspected_sensor_fault"),
    "reading": ("far_glitch",),
}
OPS = ("=", "!=", "=~", "!~")


def label_values(grid: Grid | None) -> dict[str, tuple[str, ...]]:
    """Every value an alert can give each label that has a closed set of them: those of
    LABEL_VALUES and, with a grid, ``kind`` (its kinds and RESERVED_KINDS), each level
    (``community``, ``street``, ``district``, ``city``: the ids of its cells there),
    ``grid_cell`` (every cell id: a citizen report may name a cell at any level) and
    ``sensor_id`` (the registered sensors: the worker refuses a reading from any other)."""
    values = dict(LABEL_VALUES)
    if grid is not None:
        values["kind"] = tuple(sorted({*grid.kinds, *RESERVED_KINDS}))
        for level in LEVELS:
            values[level] = tuple(sorted(c.id for c in grid.cells.values() if c.level == level))
        values["grid_cell"] = tuple(sorted(grid.cells))
        values["sensor_id"] = tuple(sorted(grid.sensors))
    return values


# Up to this many values an "expected one of" list is shown whole; past it (a grid's
# cells and sensors run to hundreds) the message says how many and where they are listed.
SHOWN_VALUES = 30
# Where the grid file lists each label's values, for a list too long to show.
_LISTED = {
    "grid_cell": "the ids under cells:",
    "sensor_id": "the ids under sensors:",
    **{level: f"the ids under cells: with level: {level}" for level in LEVELS},
}


def expected_values(name: str, known: tuple[str, ...], value: str = "", where: str = "") -> str:
    """``expected one of a, b, c`` naming every value of ``known`` (label ``name``'s, from
    label_values) when there are at most SHOWN_VALUES; else how many there are and where
    the grid file lists them; for ``value`` given, then `` (did you mean 'pm25'?)``, the
    closest (``closest``; t40: `kind=water_levl` and `kind="pm2.5"` got every kind and no
    answer), when one is close. ``where`` (`` (the grid's cells)``) follows the list."""
    # A list of values (`kind=pm25,pm10`) is said as one, not as a misspelling of its
    # first item (t147); else the closest.
    hint = did_you_mean(value, known) if value else ""
    if len(known) <= SHOWN_VALUES:
        return f"expected one of {', '.join(sorted(known))}{where}{hint}"
    listed = _LISTED.get(name, f"the {name} values")
    return f"expected one of {len(known)} values ({listed} in the grid file){where}{hint}"


def impossible_value(matcher: Matcher, values: Mapping[str, tuple[str, ...]]) -> str:
    """Why ``matcher`` tests its label for a value no alert can carry (``kind="road_ice"``
    on a grid without that kind, ``severity!="urgent"``, ``kind=~"road_.*"`` that none of
    the kinds match, ``kind!~".*"`` that all do), or "" when it can tell alerts apart.
    ``values``: label_values."""
    known = values.get(matcher.name)
    if not known:
        return ""
    if matcher.op in ("=", "!=") and matcher.value not in known:
        never = "never matches" if matcher.op == "=" else "matches every alert"
        parts = [part.strip() for part in matcher.value.split(",")]
        if len(parts) > 1 and all(part in known for part in parts):
            # `kind="pm25,pm10"`: a list, which a regex matcher writes (t147).
            op = "=~" if matcher.op == "=" else "!~"
            return (
                f"{matcher.name} is never {matcher.value!r}, so this matcher {never}: one "
                f"value, not a list: {any_of(matcher.name, parts, op)} tests for any of them"
            )
        return (
            f"{matcher.name} is never {matcher.value!r}, so this matcher {never}: "
            f"{expected_values(matcher.name, known, matcher.value)}"
        )
    if matcher.op == "=~" and not any(matcher.pattern.search(v) for v in known):
        return (
            f"{matcher.value!r} matches no {matcher.name} an alert can have, so this matcher "
            f"never matches: {expected_values(matcher.name, known)}"
        )
    if matcher.op == "!~":
        # As != is above; an alert without the label is "" here, which the regex must
        # match too for none to pass (t151: kind!~".*" was taken without a word).
        hits = sum(1 for v in known if matcher.pattern.search(v))
        empty = matcher.matches_empty()  # True when "" does NOT match the regex
        if hits == len(known) and not empty:
            return (
                f"{matcher.value!r} matches every {matcher.name} an alert can have, so this "
                f"matcher never matches: {expected_values(matcher.name, known)}"
            )
        if hits == 0 and empty:
            return (
                f"{matcher.value!r} matches no {matcher.name} an alert can have, so this "
                f"matcher matches every alert: {expected_values(matcher.name, known)}"
            )
    return ""


# Labels every alert citybrain raises carries, never empty (streams/detection.py's sensor
# alerts, streams/ingest.py's report bursts): a matcher on one is never asked about an
# alert without it. (Another tool's alert on the alerts topic may lack them: it is said.)
CARRIED_LABELS = ("alert_id", "kind", "severity", "source", "grid_cell")
# Values a label with no closed set of values may hold (a category, a department, an
# alert id): every printable ASCII character alone and all of them together, and letters
# beyond ASCII. A regex matching each of them and the empty string is taken to match
# every value (`.*`, `|.+`, `(?s).*`); `[^z]*`, `\S*` or `\w*` are not.
_ANY_VALUES = (
    "",
    *(c for c in "".join(chr(i) for i in range(0x20, 0x7F))),
    "".join(chr(i) for i in range(0x20, 0x7F)),
    "é",
    "Ⅻ",
    "中文",
    "\U0001f600",
    "a b",
    # A combining mark, and format characters (U+202E, the right-to-left override;
    # U+200B): `\PC+` or `[\pL\pN]+` match none of them, so they match not every alert
    # id (t203: `alert_id=~"\PC+"` was warned of as muting every alert).
    "e\u0301",
    "\u202eab",
    "a\u200bb",
)


def _matches_at_most(pattern: Any, allowed: str | None) -> bool:
    """Whether every text the compiled, fully anchored ``pattern`` matches is
    ``allowed`` (None: whether it matches no text at all). Exact where RE2's
    PossibleMatchRange pins the matches to one text (``^$``, ``()``, ``a{0}``, ``\\b``:
    the empty one; ``x^``, ``a\\bb``, ``[^\\s\\S]``: one the regex then fails on, so none);
    False, "it may match more", wherever it does not (``(?i)x^``, ``a^|b^``)."""
    try:
        low, high = pattern.possiblematchrange(16)
        only = high.decode("utf-8") if low == high else None
    except (re2.error, UnicodeError, AttributeError):
        return False
    if only is None:
        return False
    return only == allowed or pattern.search(only) is None


def every_alert(matcher: Matcher, values: Mapping[str, tuple[str, ...]]) -> str:
    """Why ``matcher`` matches every alert, or "" when it tells some apart: it matches
    an alert without its label (the empty string, as Alertmanager reads a missing label;
    not asked of CARRIED_LABELS) and every value the label can have: each of ``values``
    (label_values) for a label with a closed set of them, else a regex (``=~``) that
    matches any text (``_ANY_VALUES``), a ``!~`` regex that matches no text
    (``category!~"x^"``), or on a carried label ``!=""`` and a ``!~`` regex that
    matches no text but the empty one (``alert_id!~"^$"``, ``!~"()"``, ``!~"a{0}"``:
    ``!=""`` written as a regex; t203, taken without a word before). Other ``!=`` and
    ``!~`` matchers on a label without a closed set are never said to
    (``category!="noise"`` passes every value but one). "Every alert" is every alert
    citybrain raises, whose values hold no control character: ``.*`` does not match a
    line feed, in Alertmanager as here. ``category=~".*"``,
    ``severity=~"minor|major|critical"`` or ``alert_id!=""`` filter nothing in a route or
    an inhibit rule (t197): Alertmanager takes them without a word, as it takes ``{}``."""
    name = matcher.name
    carried = name in CARRIED_LABELS
    if not carried and not matcher.matches_empty():
        return ""
    known = values.get(name)
    without = "" if carried else f" and an alert without {name}"
    if known:
        if all(matcher.matches({name: v}) for v in known):
            shown_known = ", ".join(known) if len(known) <= 6 else f"all {len(known)} of them"
            return f"every {name} an alert can have ({shown_known}){without}"
        return ""
    texts = _ANY_VALUES[1:] if carried else _ANY_VALUES  # (a carried label is never "")
    if matcher.op == "=~" and all(matcher.pattern.search(v) for v in texts):
        return f"any {name}{without}"
    if matcher.op == "!~" and _matches_at_most(matcher.pattern, None):
        # (`category!~"x^"`: the regex matches nothing, so the matcher passes anything.)
        return f"any {name}{without} ({matcher.value!r} matches no text)"
    if carried and (
        (matcher.op == "!=" and matcher.value == "")
        or (matcher.op == "!~" and _matches_at_most(matcher.pattern, ""))
    ):
        # (`!~""`, `!~"^$"` pass every value but the empty one, as `!=""` does.)
        return f"any {name}, and every alert citybrain raises has one"
    return ""


def silence_matches_every_alert(
    matchers: Iterable[Matcher], values: Mapping[str, tuple[str, ...]]
) -> str:
    """A warning for a silence whose ``matchers`` each match every alert (every_alert)
    though none matches the empty string, so the silence is taken (Alertmanager takes it:
    ``severity=~"minor|major|critical"``, ``alert_id=~".+"``) and mutes every alert, or
    "" (t197: the route and inhibit rule check's sibling)."""
    found = list(matchers)
    reasons = [every_alert(m, values) for m in found]
    if not found or not all(reasons):
        return ""
    said = "; ".join(f"{str(m)!r} matches {why}" for m, why in zip(found, reasons, strict=True))
    return (
        f"this silence matches every alert ({said}), so it mutes every alert, critical floods "
        "included: add a matcher that tells the alerts to mute apart"
    )


# Values from outside (an alert's labels, a stored silence) shown in a message: a few
# levels and items deep, so a list nested 1,000 levels or a megabyte long is named in a
# line instead of raising RecursionError or filling the log.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxdict = 3, 6, 6
_BRIEF.maxstring = _BRIEF.maxother = 60


def brief(value: Any) -> str:
    """``value`` in a one-line message: a few levels and items deep, never raising."""
    try:
        return _BRIEF.repr(value)
    except (RecursionError, ValueError):
        return f"<{type(value).__name__}>"


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad regex is our error message, not a line on stderr
# RE2's default memory bound, kept deliberately: a silence's regex comes through the API,
# and a bound of this size compiles in milliseconds. Alertmanager's Go regexp accepts
# larger ones (\pL{1000}); citybrain refuses those, saying so (docs/playbooks.md).
_RE2_OPTIONS.max_mem = 8 << 20

# RE2's classes as ranges, to write out the few Go's Unicode 13 tables class otherwise.
_TABLES = ClassTables(lambda text: re2.compile(text, _RE2_OPTIONS))

# Alertmanager's own matcher grammar (pkg/labels/parse.go), run by RE2 as in Go, where
# \s is [\t\n\f\r ] and $ is the end of the text.
_MATCHER = re2.compile(
    r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*((?s).*?)\s*$", _RE2_OPTIONS
)


# Go's unicode.IsSpace, which strings.TrimSpace uses (Python's str.strip also strips
# \x1c-\x1f, which Go keeps).
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)


def escape(value: str) -> str:
    """OpenMetrics escaping, as Alertmanager's ``openMetricsEscape``: ``\\`` -> ``\\\\``,
    line feed -> ``\\n``, ``"`` -> ``\\"``."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _unescape(text: str, raw: str) -> str:
    """The value of a matcher from its raw third token (Alertmanager's ParseMatcher):
    an optional pair of quotes, ``\\"``, ``\\n`` and ``\\\\`` unescaped, any other
    backslash literal. Raises RoutingConfigError on an unescaped quote inside."""
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    out: list[str] = []
    escaped = False
    last = len(raw) - 1
    for i, char in enumerate(raw):
        if escaped:
            escaped = False
            if char == "n":
                out.append("\n")
            elif char in '"\\':
                out.append(char)
            else:  # a spurious escape: the backslash is literal
                out.append("\\" + char)
            continue
        if char == "\\":
            if i < last:
                escaped = True
                continue
            out.append("\\")  # a backslash as the last character is literal
        elif char == '"':
            if not quoted or i < last:
                raise RoutingConfigError(
                    f"matcher {text!r}: the value has an unescaped double quote "
                    f'(write \\" inside a quoted value)'
                )
            quoted = False
        else:
            out.append(char)
    if quoted:
        raise RoutingConfigError(f"matcher {text!r}: the value's closing double quote is missing")
    return "".join(out)


# Unicode scripts newer than Unicode 13, the tables of the Go regexp that Alertmanager
# 0.25 was built with (Go 1.19/1.20); RE2 knows them, Alertmanager refuses them.
_NEWER_SCRIPTS = frozenset(
    {"Cypro_Minoan", "Old_Uyghur", "Tangsa", "Toto", "Vithkuqi", "Kawi", "Nag_Mundari"}
)


def _go_refusal(value: str) -> str | None:
    """Why Go's regexp (Alertmanager) refuses a regex RE2 accepts, or None: ``\\C``
    (any byte), ``(?<name>…)`` groups, a ``(?P<name>…)`` name that is not ASCII, Unicode
    scripts newer than its tables, and nesting deeper than its parse-tree limit."""
    i, n, in_class = 0, len(value), False
    while i < n:
        char = value[i]
        if char == "\\" and i + 1 < n:
            following = value[i + 1]
            if following == "Q":  # \Q…\E is literal text
                end = value.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            if following == "C":
                return "\\C (any byte) is RE2-only; Go's regexp refuses it"
            if following in "pP" and value.startswith("{", i + 2):
                end = value.find("}", i + 3)
                name = value[i + 3 : end].lstrip("^") if end > 0 else ""
                if name in _NEWER_SCRIPTS:
                    return f"the Unicode script {name} is newer than Go's regexp tables"
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            i += 1
            i += value.startswith("^", i)
            i += value.startswith("]", i)  # a ] first in a class is literal
            continue
        elif value.startswith("(?<", i) and not value.startswith(("(?<=", "(?<!"), i):
            return "(?<name>…) is not Go regexp syntax; write (?P<name>…)"
        elif value.startswith("(?P<", i):
            end = value.find(">", i + 4)
            refusal = capture_name_refusal(value[i + 4 : end]) if end > 0 else None
            if refusal is not None:
                return refusal
        i += 1
    return repeat_count_refusal(value) or nesting_refusal(value)


# Entries of each parse cache below. Bounded (a cache of compiled regexes holds RE2
# programs); sized for the texts that repeat: one silence's regex compiled by each of
# its checks (0.27's reading, Go's wrapping, the regex alone), and entries many silences
# share (kind="pm25"). Before, 10,000 stored regex silences took 6-15 s to parse, each
# regex compiled four times and each matcher parsed twice (docs/benchmarks.md).
PARSE_CACHE = 4096


@functools.lru_cache(maxsize=PARSE_CACHE)
def _compiled(text: str) -> Any:
    """RE2's program for ``text`` (``_RE2_OPTIONS``), or the exception RE2 raised for it
    (re2.error, TypeError or UnicodeError), kept without its traceback."""
    try:
        return re2.compile(text, _RE2_OPTIONS)
    except (re2.error, TypeError, UnicodeError) as exc:
        return exc.with_traceback(None)


def _compiles(text: str) -> bool:
    return not isinstance(_compiled(text), Exception)


def _compile_error(text: str) -> str | None:
    """RE2's reason for refusing ``text`` on its own, or None when it compiles."""
    found = _compiled(text)
    if isinstance(found, re2.error):
        reason = found.args[0] if found.args else found
        return reason.decode() if isinstance(reason, bytes) else str(reason)
    return None


def re2_text(value: str) -> str:
    """``value`` as RE2 is given it, so that it accepts what Go's regexp accepts: a group
    repeated ``{0}`` written ``(?:)`` (goregexp.without_empty_repeats); the same matches."""
    return without_empty_repeats(value, _compiles)


def legacy_regex(value: str) -> str:
    """The value of the matcher a ``match_re:`` value (Alertmanager's deprecated map)
    becomes: its config compiles ``^(?:value)$``, then builds the route's matcher from
    that compiled text (dispatch/route.go, ``lv.String()``), which the matcher wraps
    again. The matcher's value is that wrapped text, as ``amtool config routes show``
    prints it (``kind=~"^(?:x|y)$"``) and as it stands in the route's ``Route.Key()``,
    which a route's matcher path (``matchers_text``) follows: t149, before which the
    value was ``value`` itself, so a ``match_re: {kind: x}`` route had the path of
    ``matchers: ['kind=~"x"']`` (two Keys in Alertmanager) and not that of
    ``matchers: ['kind=~"^(?:x)$"']`` (one). Wrapping twice matches what wrapping once
    does unless ``value`` is valid only once wrapped (``a)|(b``: a matcher reads
    ``^(?:a)|(b)$``, a ``match_re`` only ``a`` or ``b``)."""
    return f"^(?:{value})$"


def _said(text: str) -> str:
    """``text`` (a regex, or RE2's words quoting part of one) with each character that
    does not print written as its escape, as repr writes it (a line feed ``\\n``, an ESC
    ``\\x1b``, U+2028 ``\\u2028``): a refusal stays one line and shows what was typed
    (t203: ``category=~"(\\x1b[31m\\n"`` said "missing ]: [31m" and a line break, the
    ESC left for the terminal to act on)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def compile_regex(value: str, where: str) -> Any:
    """``value`` as Alertmanager compiles it: RE2, ``^(?:value)$`` (searched, as Go's
    MatchString does). Raises RoutingConfigError naming ``where`` (when not empty) and
    the regex as written on a bad regex, and on the few regexes RE2 accepts and Go's
    regexp does not (``_go_refusal``)."""
    head = f"{where}: " if where else ""
    refusal = _go_refusal(value)
    if refusal is not None:
        raise RoutingConfigError(f"{head}bad regex (Alertmanager's Go syntax): {refusal}")
    anchored = f"^(?:{re2_text(value)})$"
    pattern = _compiled(anchored)
    if isinstance(pattern, (TypeError, UnicodeError)):
        raise RoutingConfigError(f"{head}bad regex: {pattern}") from None
    if isinstance(pattern, re2.error):
        exc = pattern
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        if _compiles(re2_text(value)):
            # Valid alone, broken only by the wrapping (a \Q never ended by \E quotes
            # the closing ")" too): Alertmanager's silences check the regex alone, take
            # it, and then fail every silence query (t50). "missing ): \Qabc" said
            # nothing of the ")" it meant.
            hint = (
                ": its \\Q is not ended by \\E, so it quotes the wrapping's ')' too; end it "
                "with \\E"
                if "\\Q" in value
                else ""
            )
            problem = str(reason).replace(f": {anchored}", "")
            raise RoutingConfigError(
                f"{head}bad regex: valid alone, but Alertmanager matches it wrapped, as "
                f"^(?:{_said(value)})$, and that is not valid ({_said(problem)}){hint}"
            ) from None
        # RE2 quotes the text it compiled; the user wrote the value (trial 7: "missing
        # ): ^(?:()$" for "(").
        reason = str(reason).replace(anchored, value)
        alone = _compile_error(re2_text(value))
        if alone is not None:
            # The regex's own fault, not the wrapping's: a trailing backslash escapes the
            # wrapping's ")", so the wrapped error said "missing ): a\" (as Alertmanager's
            # silence API does, say "trailing \").
            if alone == "trailing \\":  # RE2 quotes nothing here: name the regex, as for others
                alone = f"trailing backslash at end of expression: {value}"
            reason = alone
        if "pattern too large" in reason:
            # Not a syntax error, and one Alertmanager does not make (Go's limits are far
            # larger: \pL{1000} compiles there): citybrain's deliberate bound (trial 12).
            raise RoutingConfigError(
                f"{head}regex too large: compiled, it needs more than citybrain's "
                f"{_RE2_OPTIONS.max_mem >> 20} MiB RE2 budget (Alertmanager accepts larger "
                "ones); use a smaller repeat count or a narrower class"
            ) from None
        raise RoutingConfigError(f"{head}bad regex (RE2 syntax): {_said(reason)}") from None
    # Where RE2's Unicode tables (15.1) class or fold a character Unicode 13 already had
    # otherwise than Go's (Alertmanager's): a class is written out as Go's, a folding
    # refused (playbooks/goregexp.py, GO_CLASS_CHANGES and FOLDS_SINCE_GO).
    translated, refusal = go_unicode(anchored, _TABLES)
    if refusal is not None:
        raise RoutingConfigError(f"{head}regex Alertmanager matches otherwise: {refusal}")
    if translated == anchored:
        return pattern
    try:
        return re2.compile(translated, _RE2_OPTIONS)
    except re2.error:
        # Go's ranges written out compile larger than the class they stand for.
        raise RoutingConfigError(
            f"{head}regex too large: compiled, it needs more than citybrain's "
            f"{_RE2_OPTIONS.max_mem >> 20} MiB RE2 budget (Alertmanager accepts larger "
            "ones); use a smaller repeat count or a narrower class"
        ) from None


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher: ``name`` (a label of LABELS), ``op`` (one of OPS), ``value``
    (unescaped; a regex for ``=~``/``!~``). Equal matchers compare equal."""

    name: str
    op: str
    value: str
    pattern: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """One matcher from its text, as Alertmanager's ParseMatcher reads it:
        ``name="v"``, ``name!="v"``, ``name=~"re"``, ``name!~"re"``, the value quoted
        or not. Raises RoutingConfigError naming the text and the reason."""
        if not isinstance(text, str):
            raise RoutingConfigError(f"matcher {shown(text)} is not text")
        try:
            text.encode("utf-8")
        except UnicodeError:
            # The character named, and where, as every name's (errors.name_fault, t197).
            raise RoutingConfigError(
                f"matcher {text!r} holds {name_fault(text)}, which is not valid UTF-8"
            ) from None
        m = _MATCHER.search(text)
        if not m:
            raise RoutingConfigError(
                f'matcher {text!r} is not name="value", name!="value", '
                f'name=~"regex" or name!~"regex"'
            )
        name, op, raw = m.group(1), m.group(2), m.group(3)
        if op in ("=", "!=") and raw.startswith('="'):
            # `kind=="pm25"` (a programmer's equality): Alertmanager refuses it too, as
            # an unescaped quote in the unquoted value `="pm25"`; name the operator.
            raise RoutingConfigError(
                f"matcher {text!r}: operator {op + '='!r} is not one, expected one of "
                f"{', '.join(OPS)}: write {name}{op}{raw[1:]}"
            )
        if op == "=" and raw.startswith("!") and raw[1:].lstrip().startswith('"'):
            # `kind=!"pm25"` (!= reversed): Alertmanager refuses it too, as an unescaped
            # quote in the unquoted value `!"pm25"`, which said nothing of the operator
            # (t94's corner generator); name it. `kind=!pm25` is `kind="!pm25"` in both.
            raise RoutingConfigError(
                f"matcher {text!r}: operator '=!' is not one, expected one of "
                f"{', '.join(OPS)} (did you mean '!='?): write {name}!={raw[1:].lstrip()}"
            )
        value = _unescape(text, raw)
        return cls.build(name, op, value, where=f"matcher {text!r}")

    @classmethod
    def build(cls, name: str, op: str, value: str, where: str | None = None) -> Matcher:
        """A matcher from its parts; raises RoutingConfigError for an unknown label,
        operator or a bad regex, its message starting ``where: `` (by default ``matcher
        name=~'value'``; ``""`` for none, when the caller's location already names it)."""
        where = f"matcher {name}{op}{value!r}" if where is None else where
        head = f"{where}: " if where else ""
        if name not in LABELS:
            close = closest(name, sorted(LABELS))
            hint = f": did you mean {close!r}?" if close is not None else ""
            raise RoutingConfigError(
                f"{head}unknown label {name!r}, expected one of {', '.join(sorted(LABELS))}{hint}"
            )
        if op not in OPS:
            # An operator written backwards (~=, =!) is closer than any spelling says.
            hint = f" (did you mean {op[::-1]!r}?)" if op[::-1] in OPS else did_you_mean(op, OPS)
            raise RoutingConfigError(
                f"{head}operator {op!r}, expected one of {', '.join(OPS)}{hint}"
            )
        pattern = compile_regex(value, where) if op in ("=~", "!~") else None
        return cls(name, op, value, pattern)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the label set matches; a missing label is the empty string."""
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self.pattern.search(actual) is not None
        return found if self.op == "=~" else not found

    def matches_empty(self) -> bool:
        """Whether an alert without this label matches (Alertmanager asks this of a
        silence's ``=`` and ``=~`` matchers; citybrain asks it of all four)."""
        return self.matches({})

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{escape(self.value)}"'


@functools.lru_cache(maxsize=PARSE_CACHE)
def _parsed_matcher(text: str) -> Matcher:
    """``Matcher.parse(text)``, kept: a silence entry's one matcher is parsed both as a
    comma-separated entry and as amtool reads it (``parse_silence_matchers``)."""
    return Matcher.parse(text)


def parse_matchers(text: str) -> list[Matcher]:
    """Comma-separated matchers in one string, optionally in braces, as Alertmanager's
    ParseMatchers reads a ``matchers:`` entry: ``{a="1", b=~"x|y"}``. Commas inside
    quotes do not separate; a trailing comma is allowed. Raises RoutingConfigError. An
    entry Alertmanager 0.27's UTF-8 matchers read otherwise is taken as 0.25 reads it,
    with a warning (read_apart): logged once per entry, or collected by
    read_apart_warnings."""
    found, utf8 = _read_matchers(text)
    _warn_read_apart(text, found, utf8, "matcher")
    return found


def _read_matchers(text: str) -> tuple[list[Matcher], Reading | None]:
    """``parse_matchers(text)`` without its warning: (the matchers, Alertmanager 0.27's
    UTF-8 reading of ``text`` or None, as ``utf8_reading`` gives it)."""
    if not isinstance(text, str):
        raise RoutingConfigError(f"matcher {shown(text)} is not text")
    body = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside = escaped = False
    for char in body:
        if char == ",":
            if not inside:
                tokens.append("".join(token))
                token = []
                continue
            # Inside quotes a comma leaves the escape as it was (Go's switch has a case
            # for it): `a="x\\,", b="y"` is then one token, and refused, as Alertmanager does.
        elif char == '"':
            if not escaped:
                inside = not inside
            else:
                escaped = False
        elif char == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(char)
    last = "".join(token).strip(_GO_SPACE)
    if last:
        tokens.append(last)
    if not tokens:
        raise RoutingConfigError(f"matcher {text!r} has no matcher in it")
    utf8 = utf8_reading(text, _compiles)
    try:
        found = []
        for index, token_text in enumerate(tokens):
            try:
                found.append(_parsed_matcher(token_text))
            except RoutingConfigError as exc:
                listed = _listed_values(found, tokens[index:])
                if utf8 is None and listed:
                    raise RoutingConfigError(f"{exc}{listed}") from None
                raise
    except RoutingConfigError as exc:
        if utf8 is None or " is not name=" not in str(exc):
            raise
        # Alertmanager 0.27's UTF-8 syntax (a quoted or dotted label name): say so, not
        # only that the text is no matcher.
        raise RoutingConfigError(
            f"matcher {text!r} is written for Alertmanager 0.27's UTF-8 matchers (read there "
            f"as {_shown(utf8)}); citybrain reads matchers as Alertmanager 0.25 does: "
            'a label name unquoted, letters, digits and _ (e.g. kind="water_level")'
        ) from None
    return found, utf8


def _listed_values(found: list[Matcher], rest: list[str]) -> str:
    """`` (a list of kind's values? kind=~"pm25|pm10" matches either)`` when the matcher
    before ``rest`` is ``name="value"`` and ``rest`` starts with bare words: values of the
    same label written as a list (``kind=pm25,pm10``), which Alertmanager reads as two
    matchers, the second no matcher at all (t147: said only "matcher 'pm10' is not
    name=…"); else ""."""
    words = []
    for token_text in rest:
        word = token_text.strip(_GO_SPACE)
        if not word or any(c in word for c in '=!~"{}'):
            break
        words.append(word)
    if not found or found[-1].op != "=" or not words:
        return ""
    name = found[-1].name
    # Each bare word read as Alertmanager reads a bare value (``\\`` a backslash).
    values = [found[-1].value, *(_unescape(word, word) for word in words)]
    either = "either" if len(values) == 2 else "any of them"
    return f" (a list of {name}'s values? {any_of(name, values)} matches {either})"


# Go's regexp.QuoteMeta: the characters a regex reads as other than themselves.
_REGEX_SPECIALS = frozenset("\\.+*?()|[]{}^$")


def any_of(name: str, values: Iterable[str], op: str = "=~") -> str:
    """The matcher text ``name=~"…"`` (or ``op``, ``!~``) that matches exactly ``values``:
    each quoted as Go's regexp.QuoteMeta quotes it, then escaped as a quoted matcher
    value is (``escape``), so that it reads back, in Alertmanager as here, to a regex
    matching each value and nothing else. t214: the hint for
    ``category=Noise,Graffiti (Commercial)`` wrote ``category=~"Noise|Graffiti
    (Commercial)"``, which matches "Graffiti Commercial" and not the value meant, ``c+d``
    a regex matching "ccd", and ``x\\y`` one Alertmanager refuses (``\\y``, an invalid
    escape)."""
    pattern = "|".join("".join("\\" + c if c in _REGEX_SPECIALS else c for c in v) for v in values)
    return f'{name}{op}"{escape(pattern)}"'


log = logging.getLogger(__name__)

# Where read_apart_warnings() collects the warnings of the entries parsed inside it
# (a user-facing check prints them); None: they are logged.
_COLLECTED: ContextVar[list[str] | None] = ContextVar("utf8_read_apart", default=None)


@contextmanager
def read_apart_warnings() -> Iterator[list[str]]:
    """Collect, instead of logging, the warning of each entry parsed inside the block
    that Alertmanager 0.27's UTF-8 matchers read otherwise than 0.25 (read_apart):
    ``playbooks check``, ``route-test`` and ``silences add`` print them as warning lines.
    Every such entry's warning is collected, also one already logged."""
    collected: list[str] = []
    token = _COLLECTED.set(collected)
    try:
        yield collected
    finally:
        _COLLECTED.reset(token)


def read_apart(
    text: str, found: list[Matcher], utf8: list[tuple[str, str, str]] | None, what: str
) -> str | None:
    """The warning for an entry ``text`` (a ``what``: "matcher" or "label") that
    citybrain read as Alertmanager 0.25 does (``found``) and 0.27's UTF-8 matchers read
    otherwise (``utf8``; None when they refuse it), or None when they read it alike. The
    entry is taken with 0.25's reading, as 0.27's default mode takes it (it logs
    "Matchers input has disagreement"); only its utf8-strict-mode reads it otherwise."""
    classic = [(m.name, m.op, m.value) for m in found]
    if utf8 is None or same_reading(utf8, classic):
        return None
    return (
        f"{what} {text!r} is read as {_shown(classic)}, as Alertmanager 0.25 (which "
        "citybrain follows) and 0.27's default mode read it, but as "
        f"{_shown(utf8)} by Alertmanager 0.27's UTF-8 matchers (utf8-strict-mode: a "
        "quoted value is a Go string literal there, \\t a tab, \\x41 an A, \\b a "
        "backspace; a bare value starts after any Unicode space): to be read alike by "
        "both, quote the value and write the character itself, or its backslash doubled "
        "if you mean a backslash"
    )


def _warn_read_apart(
    text: str, found: list[Matcher], utf8: list[tuple[str, str, str]] | None, what: str
) -> None:
    # Taken as 0.25 reads it (t115; t113 refused it): a warning, collected or logged.
    message = read_apart(text, found, utf8, what)
    if message is None:
        return
    collected = _COLLECTED.get()
    if collected is not None:
        collected.append(message)
    else:
        _log_once(message)


@functools.lru_cache(maxsize=1024)
def _log_once(message: str) -> None:
    # Once per distinct entry per process, in bounded memory: a flood of silences
    # through the API repeating one entry logs it once (a message names its entry).
    log.warning("%s", message)


def _shown(reading: list[tuple[str, str, str]]) -> str:
    # JSON-quoted: a tab, a backspace or a no-break space is shown as \\t, \\b or
    # \\u00a0, not as itself.
    def quoted(value: str) -> str:
        text = json.dumps(value, ensure_ascii=False)
        return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)

    return ", ".join(f"{name}{op}{quoted(value)}" for name, op, value in reading)


def parse_label(text: str) -> tuple[str, str]:
    """One ``name=value`` label as ``amtool config routes test`` takes it (the value
    quoted or not, escaped as in a matcher). Raises RoutingConfigError for any other
    operator or an unknown label; warns as parse_matchers does of a label 0.27's UTF-8
    matchers read otherwise."""
    # Only name=value is a label, so only that form is suggested (the matcher parser's
    # own message would offer !=, =~ and !~, which a label refuses).
    expected = 'expected name=value or name="quoted value", e.g. kind=water_level'
    if "=" not in text and "!~" not in text:
        raise RoutingConfigError(f"label {text!r} has no '=': {expected}")
    try:
        matcher = Matcher.parse(text)
    except RoutingConfigError as exc:
        if f"matcher {text!r} is not " in str(exc):
            utf8 = utf8_reading(text, _compiles)
            if utf8 is not None:  # a quoted or dotted name: 0.27's UTF-8 syntax (t113)
                expected += f" (Alertmanager 0.27's UTF-8 matchers read it as {_shown(utf8)})"
            raise RoutingConfigError(f"label {text!r}: {expected}") from None
        message = str(exc).replace(f"matcher {text!r}", f"label {text!r}", 1)
        raise RoutingConfigError(message) from None
    if matcher.op != "=":
        raise RoutingConfigError(
            f"label {text!r}: {matcher.op} is a matcher operator, not a label: {expected}"
        )
    # amtool 0.27 reads route-test labels with its matcher parsers too (cli/test_routing.go):
    # taken as 0.25 reads them, with a warning where 0.27's UTF-8 matchers read otherwise.
    _warn_read_apart(text, [matcher], utf8_reading(text, _compiles), "label")
    return matcher.name, matcher.value


def label_name_ok(name: str) -> bool:
    """Whether ``name`` is a label name Alertmanager 0.25 takes in an alert (prometheus
    common's ``LabelName.IsValid``): an ASCII letter or ``_``, then ASCII letters,
    digits or ``_``."""
    return (
        bool(name)
        and name.isascii()
        and (name[0].isalpha() or name[0] == "_")
        and (name.replace("_", "a").isalnum())
    )


def label_set(value: Any, *, need_one: bool = True) -> dict[str, str]:
    """An alert's labels, checked: a mapping of label names to text, as Alertmanager's
    label sets are, each name with a value one Alertmanager's API takes (``label_name_ok``;
    a label whose value is empty is no label there, dropped before the check, whatever its
    name). Raises RoutingConfigError naming the first bad entry: before t127 a name such
    as ``'kind '`` or ``'a b'``, which Alertmanager refuses ("invalid label set"), was
    routed, the label unseen by every matcher (``kind="pm25"`` does not see ``'kind '``).
    A set with no label of a non-empty value (``{}``, ``{"kind": ""}``) is refused as
    Alertmanager 0.25's API refuses it (``model.Alert.Validate``, after dropping the empty
    ones: "at least one label pair required"); before t138 it was routed to the root.
    ``need_one=False`` reads back what an earlier worker stored or sent on (the firing and
    muted tables, an alert inside a routed or corroboration message, which gains its
    corroboration labels later): readable state is not dropped for this rule."""
    if not isinstance(value, Mapping):
        raise RoutingConfigError(f"labels are {shown(value)}, expected a mapping")
    for name, text in value.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise RoutingConfigError(f"label {brief(name)} is {brief(text)}, expected text")
        if text and not label_name_ok(name):
            close = closest(name, sorted(LABELS))
            hint = f" (did you mean {close!r}?)" if close is not None and close != name else ""
            raise RoutingConfigError(
                f"label {brief(name)} (value {brief(text)}): not a label name Alertmanager "
                f"takes (an ASCII letter or _ first, then ASCII letters, digits or _){hint}"
            )
    if need_one and not any(value.values()):
        # Alertmanager checks the names first, then this: the same order here.
        raise RoutingConfigError(
            "no label has a non-empty value (Alertmanager's API refuses such an alert: "
            '"at least one label pair required")'
        )
    return dict(value)


def _is_label_set(value: Any) -> bool:
    try:
        label_set(value, need_one=False)
    except RoutingConfigError:
        return False
    return True


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True, slots=True)
class Route:
    """A route with its inherited settings resolved."""

    id: str  # position in the tree: "root", "root.0", "root.0.1", ... (for people and logs)
    matchers: tuple[Matcher, ...]
    playbook: str
    continue_: bool
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    routes: tuple[Route, ...] = field(default=())
    # Names of the routing file's time intervals (``Router.time_intervals``): the route's
    # notifications are held while one of ``mute_time_intervals`` holds, or while none of
    # ``active_time_intervals`` does (given). A route's own, not inherited (Alertmanager's
    # dispatch/route.go).
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    # Its matcher path (``with_paths`` fills it in, as the loader does), from which its
    # group keys are made: "" until then.
    path: str = ""

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes an alert takes, in tree order (Alertmanager's ``Route.Match``): a
        matching route's children are tried in order, the first that matches ends the
        search unless it says ``continue``; a matching route none of whose children
        match is itself the result. Iterative: a tree as deep as a routing file can be
        (about 1,000 levels) is walked without recursion, however deep the caller's stack."""
        if not matches_all(self.matchers, labels):
            return []
        # One frame per matched route on the way down: (route, next child, routes found).
        stack: list[tuple[Route, int, list[Route]]] = [(self, 0, [])]
        while True:
            route, index, found = stack[-1]
            if index < len(route.routes):
                child = route.routes[index]
                stack[-1] = (route, index + 1, found)
                if matches_all(child.matchers, labels):
                    stack.append((child, 0, []))
                continue
            stack.pop()
            hits = found or [route]
            if not stack:
                return hits
            parent, index, parent_found = stack[-1]
            parent_found.extend(hits)
            if not route.continue_:  # the first match ends the search
                stack[-1] = (parent, len(parent.routes), parent_found)

    def playbooks_reachable(self, labels: Mapping[str, str]) -> set[str]:
        """The playbooks of every route an alert with ``labels`` may reach, whatever its
        other labels: a matcher on a label ``labels`` gives must hold, one on any other
        label is taken as possibly holding (an over-estimate: an earlier sibling may
        always match first). E.g. ``{"source": "citizen"}``: the playbooks whose runs
        may cover citizen reports and take their department."""
        found: set[str] = set()
        stack: list[Route] = [self]
        while stack:
            route = stack.pop()
            if all(m.matches(labels) for m in route.matchers if m.name in labels):
                found.add(route.playbook)
                stack.extend(route.routes)
        return found

    def group_values(self, labels: Mapping[str, str]) -> list[tuple[str, str]]:
        """The ``(label, value)`` pairs of its ``group_by`` labels in ``labels`` (a missing
        label is ""; every label, sorted, for ``...``): what tells its groups apart."""
        if ALL_LABELS in self.group_by:
            return sorted(labels.items())
        return [(name, labels.get(name, "")) for name in self.group_by]

    def group_key(self, labels: Mapping[str, str]) -> str:
        """Alerts with the same key share one run: ``grp-`` and 16 hex digits, a stable
        hash of the route's matcher path (``path``, as Alertmanager's ``Route.Key()``: not
        its position, so a route added, removed or moved elsewhere in the tree leaves its
        keys as they were) and the values of its ``group_by`` labels (a missing label is
        ""), equal exactly when those are equal, as Alertmanager's groups are (t44, t126).
        Under ``group_by: [...]`` a label with the empty value is no label: Alertmanager's
        API drops it before grouping, so ``{kind: a, district: ""}`` and ``{kind: a}``
        share a key (before t127 they had two, and the same alert re-sent with an empty
        label opened a second run). Raises ValueError for a route without its path (built
        by hand, not loaded)."""
        if not self.path:
            raise ValueError(f"route {self.id} has no matcher path: build it with with_paths")
        # Sorted: Alertmanager's group_by is a set, its group labels a label set, so
        # `group_by: [street, kind]` and `[kind, street]` make the same groups.
        values = sorted(self.group_values(labels))
        if ALL_LABELS in self.group_by:
            values = [(name, value) for name, value in values if value]
        text = "path|" + json.dumps([self.path, values], ensure_ascii=True)
        return "grp-" + hashlib.sha1(text.encode()).hexdigest()[:16]

    def legacy_group_key(self, labels: Mapping[str, str]) -> str:
        """The key citybrain before t126 gave this group (the route's position ``id``
        instead of its path): what runs opened then are stored under, for the response
        stage to find them (``streams.response``, the group key migration)."""
        values = self.group_values(labels)
        if any("|" in v for _, v in values):
            # Joined with "|", district="a|severity=b", severity="" and district="a",
            # severity="b|severity=" made one text (t44): such values were written as JSON.
            text = self.id + "||" + json.dumps(values, ensure_ascii=True)
        else:
            text = self.id + "|" + "|".join(f"{k}={v}" for k, v in values)
        return "grp-" + hashlib.sha1(text.encode()).hexdigest()[:16]


def matchers_text(matchers: Iterable[Matcher]) -> str:
    """A route's own matchers as one canonical text, ``{a="1",b=~"x"}``: sorted by label,
    value and operator as Alertmanager sorts them (``labels.Matchers.Less``), so the order
    they are written in, and whether ``match``/``match_re`` or ``matchers`` wrote them,
    changes nothing; ``{}`` for none."""
    ordered = sorted(matchers, key=lambda m: (m.name, m.value, _MATCH_TYPE[m.op]))
    return "{" + ",".join(str(m) for m in ordered) + "}"


# Alertmanager's MatchType order (``pkg/labels/matcher.go``: MatchEqual, MatchNotEqual,
# MatchRegexp, MatchNotRegexp), the last key of ``Matchers.Less``: two matchers of one
# label and value sort so, not by their text (t157: ``!=`` sorted before ``=`` here, so
# ``{kind="a",kind!="a"}`` was ``{kind!="a",kind="a"}``, another Route.Key() text).
_MATCH_TYPE = {"=": 0, "!=": 1, "=~": 2, "!~": 3}


def with_paths(root: Route) -> Route:
    """``root``'s tree with every route's ``path`` filled in: its parent's path, ``/`` and
    its own ``matchers_text`` (the root's is ``{}``), as Alertmanager's ``Route.Key()``.
    Siblings with the same matchers have the same ``Key()`` there, yet separate groups
    (Alertmanager keeps groups per route object); here the second of them and later add
    ``#2``, ``#3``… (their order among those siblings only), so they keep separate runs
    and a sibling with other matchers added or moved beside them changes no path.
    Iterative: a tree 1,000 levels deep needs no deep stack."""
    # Children first (post-order), each rebuilt once its children are.
    paths: dict[int, str] = {id(root): matchers_text(root.matchers)}
    order: list[Route] = []
    stack = [root]
    while stack:
        route = stack.pop()
        order.append(route)
        seen: dict[str, int] = {}
        for child in route.routes:
            own = matchers_text(child.matchers)
            seen[own] = seen.get(own, 0) + 1
            suffix = f"#{seen[own]}" if seen[own] > 1 else ""
            paths[id(child)] = f"{paths[id(route)]}/{own}{suffix}"
            stack.append(child)
    built: dict[int, Route] = {}
    for route in reversed(order):
        built[id(route)] = replace(
            route,
            path=paths[id(route)],
            routes=tuple(built[id(c)] for c in route.routes),
        )
    return built[id(root)]


def same_alert(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    """Whether two label sets are one alert's by their ``alert_id``: both carry the same
    one, not empty. Label sets without one (a caller's, a test's) are told apart by their
    labels alone, as Alertmanager tells alerts apart by their fingerprint: before t127
    two label sets that both lacked ``alert_id`` were taken for one alert (``None ==
    None``), so neither could inhibit the other. Identical label sets need no check:
    an inhibit rule never lets an alert inhibit one with its own labels."""
    found = a.get("alert_id")
    return bool(found) and found == b.get("alert_id")


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def inhibits(self, target: Mapping[str, str], source: Mapping[str, str]) -> bool:
        """Whether the firing ``source`` alert mutes ``target``. As Alertmanager since
        0.13 (``inhibit/inhibit.go``, ``hasEqual``): when ``target`` matches both sides
        of the rule, sources that also match both sides do not count, so two alerts
        matching both sides never inhibit each other."""
        if not (matches_all(self.target, target) and matches_all(self.source, source)):
            return False
        if any(target.get(name, "") != source.get(name, "") for name in self.equal):
            return False
        return not (matches_all(self.source, target) and matches_all(self.target, source))


# Why a stored silence is not used; bounded, a label of citybrain_silences_invalid_total.
SILENCE_PROBLEMS = ("field", "matcher", "matches_empty")


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    author: str
    reason: str

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def silences(self, labels: Mapping[str, str], now: float) -> bool:
        return self.active(now) and matches_all(self.matchers, labels)

    def to_dict(self) -> dict[str, object]:
        """The stored form; ``from_dict`` reads it back to an equal silence."""
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "author": self.author,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Silence:
        """A stored silence, checked as a new one. Raises SilenceError naming the field."""
        if not isinstance(data, Mapping):
            raise SilenceError(f"a stored silence is {shown(data)}, expected a mapping", "field")

        def get(name: str, kinds: tuple[type, ...], expected: str) -> Any:
            value = data.get(name)
            if not isinstance(value, kinds) or isinstance(value, bool):
                raise SilenceError(
                    f"silence field {name!r} is {brief(value)}, expected {expected}", "field"
                )
            return value

        def seconds(name: str) -> float:
            value = get(name, (int, float), "epoch seconds")
            try:
                return float(value)
            except OverflowError:  # an integer past any float: no time, not a crash
                raise SilenceError(
                    f"silence field {name!r} is {brief(value)}, expected epoch seconds "
                    "(this integer is past any date)",
                    "field",
                ) from None

        matchers = get("matchers", (list,), "a list")
        if not all(isinstance(m, str) for m in matchers):
            raise SilenceError(f"silence matchers {brief(matchers)} are not all text", "field")
        # The API's bounds, for a silence that came another way (the changelog, written by
        # another tool or a citybrain before trial 8): 10,000 regex matchers were ~8 s of
        # parsing in one go, the worker frozen, and were walked for every alert.
        if len(matchers) > MAX_SILENCE_MATCHERS:
            raise SilenceError(
                f"silence matchers: {len(matchers):,} entries, at most {MAX_SILENCE_MATCHERS} "
                "(as the API takes them)",
                "field",
            )
        for i, text in enumerate(matchers):
            if len(text) > MAX_MATCHER_CHARS:
                raise SilenceError(
                    f"silence matchers[{i}]: {len(text):,} characters, at most "
                    f"{MAX_MATCHER_CHARS:,} (as the API takes them)",
                    "field",
                )
        silence_id = get("id", (str,), "text")
        if len(silence_id) > MAX_SILENCE_ID_CHARS:
            # t154: the id goes with every alert it mutes (its muted entry's ``by``, the
            # ``alert_silenced`` audit, the re-check's ``alert_unmuted`` id): one of
            # 1,000,000 characters from another tool's changelog entry (the topic takes
            # 1,048,588 bytes) made each of those larger than the producer's 1,000,000
            # bytes, for every alert it matched (all of them, for kind=~".+").
            raise SilenceError(
                f"silence field 'id' is {len(silence_id):,} characters, at most "
                f"{MAX_SILENCE_ID_CHARS} (the API writes 12)",
                "field",
            )
        author = get("author", (str,), "text")
        reason = get("reason", (str,), "text")
        for name, text, limit, writer in (
            (
                "author",
                author,
                MAX_SILENCE_AUTHOR_CHARS,
                "a token's name, as the tokens file bounds it",
            ),
            ("reason", reason, MAX_SILENCE_REASON_CHARS, "as the API takes it"),
        ):
            if len(text) > limit:
                # t156: the id's siblings. Every listing of the silences (the API's, the
                # CLI's table) carries both whole; one of 1,000,000 characters from
                # another tool's changelog entry made each listing a megabyte.
                raise SilenceError(
                    f"silence field {name!r} is {len(text):,} characters, at most "
                    f"{limit:,} ({writer})",
                    "field",
                )
        return new_silence(
            silence_id, matchers, seconds("starts_at"), seconds("ends_at"), author, reason
        )


# A silence is one message on the silences changelog, read by every worker: bounded
# (trial 8: a 1 MB reason crashed the worker's producer; 10,000 matchers were accepted);
# the API refuses more, and a stored silence with more is read as unreadable.
MAX_SILENCE_MATCHERS = 64
MAX_MATCHER_CHARS = 1024
# A stored silence's id, as an alert's (streams.events.MAX_ID_CHARS): the API writes 12
# hex digits, Alertmanager a 36-character UUID.
MAX_SILENCE_ID_CHARS = 256
# A stored silence's author (``createdBy``: the API writes its token's name, at most
# this long in the tokens file) and reason (``comment``: the API takes at most
# playbooks.engine.MAX_NOTE characters, a run action's note's bound).
MAX_SILENCE_AUTHOR_CHARS = 256
MAX_SILENCE_REASON_CHARS = 2000

# 9999-12-31T23:59:59Z, the last second a date can name (Python's datetime, RFC 3339).
LATEST_SILENCE_TIME = 253_402_300_799.0
# The longest silence the operator API adds (its request-time horizon): the CLI checks
# it before asking, so one limit is said by both.
MAX_SILENCE_SECONDS = 100 * 365.25 * 86400.0


def new_silence(
    silence_id: str, matchers: list[str], starts_at: float, ends_at: float, author: str, reason: str
) -> Silence:
    """A checked silence; every problem is a SilenceError naming it (matcher, times,
    author, reason). Each entry of ``matchers`` may hold several comma-separated
    matchers. As Alertmanager (``silence/silence.go``), a silence whose matchers all
    match the empty string is refused; unlike it, ``!=`` and ``!~`` count too, since
    ``category!~"noise.+"`` alone silences every alert without a category."""
    if not matchers:
        raise SilenceError("a silence needs at least one matcher", "field")
    try:
        parsed = tuple(m for text in matchers for m in parse_silence_matchers(text))
    except RoutingConfigError as exc:
        raise SilenceError(str(exc), "matcher") from None
    # The bounds read-back holds the stored form to (from_dict), held here to what is
    # stored: each matcher on its own, quoted, its backslashes, quotes and line feeds
    # escaped. t160: the API bounded what a request gives, 64 entries of 1,024
    # characters, and an entry may hold several matchers and grow when stored: 64
    # entries of two matchers, an unquoted value of 1,015 characters, or a regex of 500
    # `\.` were answered 201 and stored past the bounds: unreadable, never in force.
    if len(parsed) > MAX_SILENCE_MATCHERS:
        raise SilenceError(
            f"silence matchers: {len(parsed):,} matchers in {len(matchers)} entries, at "
            f"most {MAX_SILENCE_MATCHERS} (each matcher of an entry is stored on its own)",
            "field",
        )
    for matcher in parsed:
        stored = str(matcher)
        if len(stored) > MAX_MATCHER_CHARS:
            raise SilenceError(
                f"silence matcher {brief(stored)}: {len(stored):,} characters as stored "
                f"(quoted, each backslash, double quote and line feed escaped), at most "
                f"{MAX_MATCHER_CHARS:,}",
                "field",
            )
    if all(m.matches_empty() for m in parsed):
        raise SilenceError(
            f"silence {[str(m) for m in parsed]}: at least one matcher must not match the "
            f"empty string (each of these also matches an alert without that label, so "
            f"the silence would mute every alert, critical floods included)",
            "matches_empty",
        )
    if not (math.isfinite(starts_at) and math.isfinite(ends_at)):
        # A stored infinity is written as JSON's null by some encoders: unreadable later.
        raise SilenceError(
            f"silence times must be finite: starts_at {starts_at!r}, ends_at {ends_at!r}",
            "field",
        )
    for name, at in (("starts_at", starts_at), ("ends_at", ends_at)):
        if at > LATEST_SILENCE_TIME:
            # A time past year 9999 is no date at all, most often milliseconds written as
            # seconds (1.7e12 is year 55,800): eternal in effect, so refused, not obeyed.
            raise SilenceError(
                f"silence {name} is {at:g} epoch seconds, after 9999-12-31: a time in "
                f"milliseconds? ({at / 1000:g} s would be {_utc(at / 1000)})",
                "field",
            )
    if not ends_at > starts_at:  # also refuses NaN
        raise SilenceError(
            f"silence ends_at ({_utc(ends_at)}) is not after starts_at ({_utc(starts_at)}): "
            "give a duration above 0 (Alertmanager: start time must be before end time)",
            "field",
        )
    if blank(author):  # (only characters that show nothing is blank too, t137)
        raise SilenceError("a silence needs an author", "field")
    if blank(reason):
        raise SilenceError("a silence needs a reason", "field")
    return Silence(silence_id, parsed, starts_at, ends_at, author, reason)


# Alertmanager's API v2 matcher object (``api/v2/models/matcher.go``): name, value and
# isRegex required, isEqual true unless given.
_API_MATCHER_KEYS = ("name", "value", "isRegex", "isEqual")


def api_matcher(item: Any, where: str) -> str:
    """A silence matcher given as Alertmanager's API v2 takes it, ``{"name": "category",
    "value": "noise", "isRegex": false, "isEqual": true}`` (the value as it is, no quoting
    or escapes; ``isEqual`` true when left out), as matcher text (``category="noise"``),
    which reads back to the same matcher. Raises SilenceError naming ``where`` (the
    request field, ``matchers[2]``) and the key for a missing, unknown or mistyped key."""
    if not isinstance(item, Mapping):
        raise SilenceError(
            f'{where} is {shown(item)}, expected matcher text (category="noise") or an '
            'object {"name", "value", "isRegex", "isEqual"}',
            "field",
        )
    unknown = sorted(str(k) for k in item if k not in _API_MATCHER_KEYS)
    if unknown:
        close = closest(unknown[0], _API_MATCHER_KEYS)
        hint = f": did you mean {close!r}?" if close is not None else ""
        raise SilenceError(
            f"{where}: unknown key {unknown[0]!r}, expected {list(_API_MATCHER_KEYS)}{hint}",
            "field",
        )
    for key, kind in (("name", str), ("value", str), ("isRegex", bool), ("isEqual", bool)):
        if key not in item and key == "isEqual":
            continue
        if key not in item:
            raise SilenceError(f"{where}: {key!r} is missing (required)", "field")
        if not isinstance(item[key], kind):
            expected = "text" if kind is str else "true or false"
            # In JSON's words (null, true): the request was JSON (t44: "is None").
            raise SilenceError(
                f"{where}: {key!r} is {shown(item[key])}, expected {expected}", "field"
            )
    regex, equal = item["isRegex"], item.get("isEqual", True)
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
    try:
        matcher = Matcher.build(item["name"], op[(regex, equal)], item["value"], where=where)
    except RoutingConfigError as exc:
        raise SilenceError(str(exc), "matcher") from None
    return str(matcher)


def parse_silence_matchers(text: str) -> list[Matcher]:
    """The matchers of one silence entry (several, comma-separated, as a route's). Raises
    RoutingConfigError for a bad matcher, for a regex valid only once wrapped (see
    _standalone) and for an entry that ``amtool silence add`` reads as one other
    matcher: ``category=noise,kind=pm25`` is one matcher there (the value
    ``noise,kind=pm25``, a silence of nothing), two here (a silence of every pm25 noise
    alert), and ``kind=pm25,`` is ``kind="pm25,"`` there; an operator's amtool habit must
    not silence more than it meant. An entry is parsed once per PARSE_CACHE distinct
    entries (its warning, if any, given each time)."""
    found, utf8 = _silence_entry(text)
    _warn_read_apart(text, list(found), utf8, "matcher")
    return list(found)


@functools.lru_cache(maxsize=PARSE_CACHE)
def _silence_entry(text: str) -> tuple[tuple[Matcher, ...], Reading | None]:
    """``parse_silence_matchers(text)`` without its warning, kept (an entry that raises
    is not): (the matchers, 0.27's UTF-8 reading of ``text``). Matchers are immutable,
    so a kept one may be shared by many silences."""
    try:
        single: Matcher | None = _parsed_matcher(text)
    except RoutingConfigError:
        single = None  # amtool refuses it: no other reading to be confused with
    try:
        found, utf8 = _read_matchers(text)
    except RoutingConfigError as exc:
        if single is None:
            raise
        # t181: amtool reads it as one matcher; the list's own error ("matcher '' is
        # not name=…" for kind!=x\\,,, "trailing backslash" for severity!~a\\,b) said
        # nothing of that reading, nor why the entry was cut where it was.
        raise RoutingConfigError(
            f"matcher {text!r} is ambiguous: amtool silence add reads it as one matcher, "
            f"{str(single)!r}; here {_cut_as_list(text)}, and so it is no list of "
            f"matchers ({exc}): write {str(single)!r} if that one matcher is meant"
        ) from None
    if single is not None and found != [single]:
        raise RoutingConfigError(
            f"matcher {text!r} is ambiguous: amtool silence add reads it as one matcher, "
            f"{str(single)!r}; here {_cut_as_list(text)}, and it would be "
            f"{', '.join(repr(str(m)) for m in found)}: write {str(single)!r} if that one "
            "matcher is meant, or give each matcher on its own"
        )
    for matcher in found:
        if matcher.op in ("=~", "!~"):
            _standalone(matcher)
    return tuple(found), utf8


def _cut_as_list(text: str) -> str:
    """Why an entry read as a list of matchers (``_read_matchers``) is not the one
    matcher amtool reads: the words after "here" in the ambiguity refusal. A comma
    outside quotes, a brace at either end, or Go's Unicode white space at the end
    (``strings.TrimSpace``: U+0085, U+00A0, U+2028, ...; amtool's own pattern trims
    only ``[\\t\\n\\f\\r ]`` and keeps them in a bare value): t181, the refusal said
    "quote the value if the comma is part of it" of ``category=}`` and
    ``severity=\\x85``, which hold no comma."""
    reasons = []
    inside = escaped = False
    for char in text.removeprefix("{").removesuffix("}"):
        if char == ",":  # Go's splitter, case by case (_read_matchers)
            if not inside:
                reasons.append("it is read as a list of matchers, cut at each comma outside quotes")
                break
        elif char == '"':
            inside, escaped = (not inside, False) if not escaped else (inside, False)
        elif char == "\\":
            escaped = not escaped
        else:
            escaped = False
    if text.startswith("{") or text.endswith("}"):
        reasons.append("a list's enclosing braces are taken off its ends")
    if not reasons:
        reasons.append(
            "the end of a list is cut at Go's Unicode white space (U+0085, U+00A0, "
            "U+2028, ...), which amtool keeps in a bare value"
        )
    return "; ".join(reasons)


def silence_read_apart(entries: Iterable[object]) -> list[str]:
    """The warnings for a silence request's ``matchers`` (text entries and API v2
    objects, already accepted by new_silence): one ``matchers[i]: matcher '...' is read
    as ...`` line per text entry that Alertmanager 0.25 and 0.27's UTF-8 matchers read
    apart (read_apart), in order; [] when none is. An object is no text to read apart:
    its value is taken as it is by both, and its stored text escapes every backslash."""
    warnings: list[str] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            with read_apart_warnings() as found:
                parse_silence_matchers(entry)
            warnings += [f"matchers[{i}]: {line}" for line in found]
    return warnings


def _standalone(matcher: Matcher) -> None:
    """Alertmanager's silences check a regex on its own before wrapping it
    (``silence.ValidateMatcher``: ``regexp.Compile(pattern)``), so ``a)|(b``, which a
    route accepts as ``^(?:a)|(b)$`` (anything starting with a or ending with b), is an
    invalid silence there. Raises SilenceError ("matcher") for such a regex."""
    exc = _compiled(re2_text(matcher.value))
    if isinstance(exc, re2.error):
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise SilenceError(
            f"silence matcher {str(matcher)!r}: the regex is not valid on its own "
            f"({_said(str(reason))}); Alertmanager refuses it in a silence (wrapped it reads "
            f"^(?:{_said(matcher.value)})$, which matches more than it says)",
            "matcher",
        ) from None


def _utc(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC for a message a person reads (the number itself when
    it is no time at all)."""
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return f"{ts:g}"


def silence_window(
    starts_at: Any, ends_at: Any, duration: float | None, now: float
) -> tuple[float, float]:
    """A new silence's (starts_at, ends_at) in epoch seconds from an API request: starts
    now unless given; ends at ``ends_at`` or ``duration`` seconds after the start given
    (amtool's ``--start`` with ``--duration``). A start in the past is moved to ``now``, as
    Alertmanager's ``Silences.Set`` moves it: a silence mutes nothing before it is made,
    so it is not stored, listed and audited as in force since then. Raises SilenceError
    naming the field for a time that is not a finite number (text and true/false
    included) and, as Alertmanager's API does, for an end in the past."""

    def seconds(name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SilenceError(
                f"silence field {name!r} is {brief(value)}, expected epoch seconds", "field"
            )
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise SilenceError(
                f"silence field {name!r} is {brief(value)}, expected finite epoch seconds", "field"
            )
        return number

    starts = now if starts_at is None else seconds("starts_at", starts_at)
    if ends_at is not None:
        ends = seconds("ends_at", ends_at)
    elif duration is not None:
        ends = starts + duration
    else:
        raise SilenceError("a silence needs ends_at or a duration", "field")
    if starts_at is not None and ends_at is not None and not ends > starts:
        # Alertmanager's order (api/v2 postSilencesHandler): the times as given first,
        # then the end against the clock, so that both say the same of a window that is
        # reversed and past (t146).
        raise SilenceError(
            f"silence ends_at ({_utc(ends)}) is not after starts_at ({_utc(starts)}): "
            "give a duration above 0 (Alertmanager: start time must be before end time)",
            "field",
        )
    if ends <= now:
        raise SilenceError(
            f"silence ends_at ({_utc(ends)}) is not in the future (now {_utc(now)}): it would "
            "never silence anything (Alertmanager: end time can't be in the past)",
            "field",
        )
    # t73: starts_at 2020 was stored and listed as given; Alertmanager 0.25 answers
    # startsAt = the time it was made (checked on the binary).
    return max(starts, now), ends


@dataclass(frozen=True, slots=True)
class BadSilence:
    """A stored silence that cannot be used: its key, why (one of SILENCE_PROBLEMS) and
    the message."""

    key: str
    problem: str
    message: str


# Regex silences of one label are matched together, in RE2 sets: each silence goes to one
# of REGEX_BUCKETS by its id (a CRC-32), so a silence added or gone recompiles only its
# bucket's set (kept between readings of the table, ``RegexSets``), not every set: all of
# them, for 10,000 regex silences, took ~0.3 s. Each set has its own memory budget.
REGEX_BUCKETS = 64
_SET_OPTIONS = re2.Options()
_SET_OPTIONS.log_errors = False
_SET_OPTIONS.max_mem = 64 << 20

# The compiled sets by (label, the anchored regexes in order); None: would not compile.
RegexSets = dict[tuple[str, tuple[str, ...]], Any]

# One bucket: its RE2 set (None: each regex tried on its own) and its silences' positions
# in the list, in the set's order.
_RegexChunk = tuple[Any, list[int]]


def _compiled_set(regexes: tuple[str, ...]) -> Any:
    regex_set: Any = re2.Set.SearchSet(_SET_OPTIONS)
    try:
        for regex in regexes:
            regex_set.Add(regex)
        regex_set.Compile()
    except re2.error:
        return None  # too large together: each is matched on its own
    return regex_set


def _regex_chunks(
    name: str, picks: list[tuple[int, Silence, Matcher]], cache: RegexSets, used: RegexSets
) -> list[_RegexChunk]:
    """``picks`` (a silence's position, the silence, its ``=~`` matcher on ``name``) as
    RE2 sets, one per bucket; sets are taken from ``cache`` when one holds the same
    regexes, and each set used is put in ``used``."""
    buckets: dict[int, list[tuple[int, Matcher]]] = {}
    for i, silence, matcher in picks:
        bucket = zlib.crc32(silence.id.encode(errors="replace")) % REGEX_BUCKETS
        buckets.setdefault(bucket, []).append((i, matcher))
    chunks: list[_RegexChunk] = []
    for part in buckets.values():
        regexes = tuple(m.pattern.pattern for _, m in part)  # anchored ^(?:…)$, compiled
        key = (name, regexes)
        regex_set = used[key] = cache[key] if key in cache else _compiled_set(regexes)
        chunks.append((regex_set, [i for i, _ in part]))
    return chunks


def _index_pick(silence: Silence) -> tuple[str, Matcher | None]:
    """The matcher ``SilenceList`` files ``silence`` under: ``("=", m)`` an ``=`` matcher
    on a non-empty value, else ``("=~", m)`` an ``=~`` matcher whose regex does not match
    the empty string, else ``("", None)``: checked for every alert."""
    pick = next((m for m in silence.matchers if m.op == "=" and m.value), None)
    if pick is not None:
        return "=", pick
    for m in silence.matchers:
        if m.op == "=~" and m.pattern is not None and not m.matches_empty():
            return "=~", m
    return "", None


class SilenceList(list[Silence]):
    """The silences ``SilenceBook.read`` gives, in stored order, with an index built once
    per list: ``candidates`` are the silences that can match a label set, ``by_id`` one
    silence. Before, every alert was checked against every silence (10,000 allowed), and
    every muted alert re-checked each tick looked its silence up by walking them all:
    10,000 muted alerts under the 10,000th silence were 10^8 steps a tick."""

    def __init__(
        self,
        silences: Iterable[Silence] = (),
        regex_sets: RegexSets | None = None,
        picks: dict[str, tuple[Silence, str, Matcher | None]] | None = None,
    ) -> None:
        """``regex_sets``: compiled sets kept from an earlier list (``SilenceBook``'s),
        reused where the regexes are the same, and left holding this list's only; ``picks``
        likewise each silence's matcher the index files it under (``_index_pick``)."""
        super().__init__(silences)
        self._regex_sets, self._picks = regex_sets, picks
        self._index: (
            tuple[dict[tuple[str, str], list[int]], dict[str, list[_RegexChunk]], list[int]] | None
        ) = None
        self._ids: dict[str, Silence] | None = None

    def _built(
        self,
    ) -> tuple[dict[tuple[str, str], list[int]], dict[str, list[_RegexChunk]], list[int]]:
        if self._index is None:
            # A silence with an `=` matcher on a non-empty value matches only alerts with
            # that label value: bucketed under it. One with an `=~` matcher whose regex
            # does not match the empty string matches only alerts whose value of that
            # label the regex matches: those regexes are matched together, an RE2 set
            # per label (before, every regex silence was tried for every alert: 10,000
            # of them, the API's limit, cost 41 ms an alert, 100,000 from the changelog
            # 0.67 s). The others (negations only) are checked for every alert.
            buckets: dict[tuple[str, str], list[int]] = {}
            regex_picks: dict[str, list[tuple[int, Silence, Matcher]]] = {}
            general: list[int] = []
            picks = self._picks if self._picks is not None else {}
            kept: dict[str, tuple[Silence, str, Matcher | None]] = {}
            for i, silence in enumerate(self):
                earlier = picks.get(silence.id)
                way, pick = (
                    earlier[1:]
                    if earlier is not None and earlier[0] is silence
                    else _index_pick(silence)
                )
                kept[silence.id] = (silence, way, pick)
                if way == "=" and pick is not None:
                    buckets.setdefault((pick.name, pick.value), []).append(i)
                elif way == "=~" and pick is not None:
                    regex_picks.setdefault(pick.name, []).append((i, silence, pick))
                else:
                    general.append(i)
            picks.clear()
            picks.update(kept)
            cache = self._regex_sets if self._regex_sets is not None else {}
            used: RegexSets = {}
            regexes = {
                name: _regex_chunks(name, found, cache, used) for name, found in regex_picks.items()
            }
            cache.clear()
            cache.update(used)
            self._index = (buckets, regexes, general)
        return self._index

    def candidates(self, labels: Mapping[str, str]) -> list[Silence]:
        """The silences that may match ``labels`` (every one that does, maybe others),
        in stored order, so the first that matches is the one a full walk finds."""
        buckets, regexes, general = self._built()
        found = list(general)
        for item in labels.items():
            found += buckets.get(item, ())
        for name, chunks in regexes.items():
            value = labels.get(name, "")
            if not value:
                continue  # the picked regexes do not match the empty string
            for regex_set, places in chunks:
                if regex_set is None:
                    found += places
                    continue
                try:
                    hits = regex_set.Match(value) or ()
                except re2.error:
                    hits = range(len(places))  # RE2 gave up: each is tried on its own
                found += (places[k] for k in hits)
        if len(found) > len(general):
            found.sort()
        return [self[i] for i in found]

    def by_id(self, silence_id: str) -> Silence | None:
        if self._ids is None:
            self._ids = {}
            for silence in self:
                self._ids.setdefault(silence.id, silence)
        return self._ids.get(silence_id)


# Silences parsed between two yields of ``SilenceBook.reading`` (~0.1-0.2 s of parsing
# regex silences on a busy 2-core machine).
PARSE_STEP = 256


class SilenceBook:
    """Reads the stored silences for the route agent: each stored version is parsed once;
    expired ones are skipped unread; one that cannot be read is skipped and reported
    once (to be audited and counted), never raised. Given the table's ``version`` (a
    value that changes whenever the table does), an unchanged table is not walked again
    until half the silences it gave have ended: walking 60,000 stored silences (expired
    ones included) took ~75 ms, once for every alert. An ended silence left in the list
    mutes nothing (``Silence.silences`` asks ``active``); read again at each end, 10,000
    silences ending a second apart cost every alert a walk and a new index (~0.4 s)."""

    def __init__(self) -> None:
        # Per key, the stored document as it was read (a copy) and what it read as.
        self._read: dict[str, tuple[Any, Silence | BadSilence]] = {}
        self._version: object = None
        self._last = SilenceList()
        # Epoch s: when half the silences of ``_last`` have ended.
        self._until = -math.inf
        self._regex_sets: RegexSets = {}  # the RE2 sets of ``_last``'s index
        self._picks: dict[str, tuple[Silence, str, Matcher | None]] = {}  # and its picks
        # Unreadable ones found by a reading that does not report (a listing, a flush),
        # for the next that does: each is reported once, whoever read it first.
        self._unreported: list[BadSilence] = []

    def read(
        self,
        stored: Iterable[tuple[str, Any]],
        now: float,
        version: object = None,
        report: bool = True,
    ) -> tuple[SilenceList, list[BadSilence]]:
        """(silences not yet expired when the table was last walked, stored silences found
        unreadable and not yet reported); ``version``: the table's change count, None
        when unknown (then read always); ``report``: False for a caller that does not
        report unreadable ones (they are kept for the next that does, [] given)."""
        steps = self.reading(stored, now, version, report)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return cast(tuple[SilenceList, list[BadSilence]], done.value)

    def reading_of(self, key: str, doc: Any) -> Silence | BadSilence:
        """What the stored ``doc`` under ``key`` reads as: the book's own reading when it
        last read this very document, else parsed now (and not kept)."""
        earlier = self._read.get(key)
        if earlier is not None and earlier[0] == doc:
            return earlier[1]
        return read_stored(key, doc)

    def reading(
        self,
        stored: Iterable[tuple[str, Any]],
        now: float,
        version: object = None,
        report: bool = True,
    ) -> Generator[None, None, tuple[SilenceList, list[BadSilence]]]:
        """``read`` in steps: yields after every PARSE_STEP silences it parses (none when
        each was read before), returns what ``read`` returns. An async caller yields to
        its event loop at each: 100,000 silences first read from the changelog took
        8-45 s of parsing, during which the worker routed nothing, answered no API call
        and sent Kafka no heartbeat."""
        if version is not None and version == self._version and now < self._until:
            return self._last, self._reported([], report)
        parsed = 0
        silences = SilenceList(regex_sets=self._regex_sets, picks=self._picks)
        fresh: list[BadSilence] = []
        read: dict[str, tuple[Any, Silence | BadSilence]] = {}
        for key, doc in stored:
            ends = doc.get("ends_at") if isinstance(doc, Mapping) else None
            if isinstance(ends, int | float) and not isinstance(ends, bool) and ends <= now:
                continue  # expired: not evaluated, not even parsed
            # Read again whenever any field changed, not only ends_at: a silence written
            # again under its id with other matchers or times (another worker's or an
            # older citybrain's changelog entry, Alertmanager's update by id) kept its
            # first reading here until a restart, which then read the new one: workers
            # disagreed on what was silenced.
            earlier = self._read.get(key)
            if earlier is not None and earlier[0] == doc:
                found = earlier[1]
            else:
                parsed += 1
                if parsed % PARSE_STEP == 0:
                    yield
                found = read_stored(key, doc)
                if isinstance(found, BadSilence):
                    fresh.append(found)
            read[key] = (
                earlier[0] if earlier is not None and found is earlier[1] else _snapshot(doc),
                found,
            )
            if isinstance(found, Silence):
                silences.append(found)
        self._read = read
        self._version, self._last = version, silences
        ends = sorted(s.ends_at for s in silences)
        self._until = ends[len(ends) // 2] if ends else math.inf
        # One found earlier and not reported is still to be if it is still stored as
        # it was read (else it is gone, expired, or was read again just now).
        self._unreported = [
            bad for bad in self._unreported if read.get(bad.key, (None, None))[1] is bad
        ]
        return silences, self._reported(fresh, report)

    def _reported(self, fresh: list[BadSilence], report: bool) -> list[BadSilence]:
        """The unreadable silences a reading gives: with ``report``, those kept unreported
        and ``fresh``; else none, ``fresh`` kept for the next that reports."""
        if not report:
            self._unreported += fresh
            return []
        found, self._unreported = self._unreported + fresh, []
        return found


def read_stored(key: str, doc: Any) -> Silence | BadSilence:
    """The silence stored under ``key`` (the table's key: what ``DELETE /silences/ID``
    and ``silences expire`` take), or why it cannot be used. Its ``id`` must be its key,
    as Alertmanager keys each silence by its id: before t160 an entry whose ``id`` was
    another (another tool's changelog entry) muted alerts under that id, was listed
    under it, and ``silences expire`` of the listed id answered "no silence", so nothing
    could end it; and its id could be one a silence of the API's has, whose expiry then
    left alerts "silenced by" it (the re-check found the other by that id)."""
    try:
        silence = Silence.from_dict(doc)
    except SilenceError as exc:
        return BadSilence(key, exc.problem, str(exc))
    if silence.id != key:
        return BadSilence(
            key,
            "field",
            f"silence field 'id' is {brief(silence.id)}, but it is stored under the key "
            f"{brief(key)}: a silence's id is its key (expire it by the key)",
        )
    return silence


def _snapshot(doc: Any) -> Any:
    """A stored silence copied deep enough that changing the stored one in place (its
    ``matchers`` list, a field) leaves the copy as it was read."""
    if not isinstance(doc, Mapping):
        return doc
    return {k: list(v) if isinstance(v, list) else v for k, v in doc.items()}


class SourceIndex:
    """The firing alerts that can inhibit, kept per inhibit rule as they fire and resolve
    (``put``, ``drop``): under each rule, those matching its source side, by their
    values of its ``equal`` labels, as Alertmanager keeps a cache of each rule's sources
    (``inhibit/inhibit.go``). Before, every alert an inhibit rule targeted walked every
    firing alert, three matcher evaluations each: with 10,000 firing, ~85 ms an alert,
    so an alert storm's routing cost grew with the square of its size."""

    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self.rules = tuple(rules)
        self._by_rule: list[dict[tuple[str, ...], dict[Any, Mapping[str, str]]]] = [
            {} for _ in self.rules
        ]
        self._where: dict[Any, list[tuple[int, tuple[str, ...]]]] = {}

    def put(self, key: Any, labels: Any) -> None:
        """``key``'s firing alert now has ``labels`` (any stored value: one that is not
        a label set inhibits nothing)."""
        self.drop(key)
        if not _is_label_set(labels):
            return
        places = []
        for i, rule in enumerate(self.rules):
            if matches_all(rule.source, labels):
                values = tuple(labels.get(name, "") for name in rule.equal)
                self._by_rule[i].setdefault(values, {})[key] = labels
                places.append((i, values))
        if places:
            self._where[key] = places

    def drop(self, key: Any) -> None:
        """``key``'s alert no longer fires."""
        for i, values in self._where.pop(key, ()):
            bucket = self._by_rule[i][values]
            del bucket[key]
            if not bucket:
                del self._by_rule[i][values]

    def clear(self) -> None:
        self._by_rule = [{} for _ in self.rules]
        self._where.clear()

    def sources(
        self, rule: int, labels: Mapping[str, str]
    ) -> Iterable[tuple[Any, Mapping[str, str]]]:
        """``(key, labels)`` of the firing alerts that match rule ``rule``'s source side
        and have ``labels``' values of its ``equal`` labels."""
        values = tuple(labels.get(name, "") for name in self.rules[rule].equal)
        return self._by_rule[rule].get(values, {}).items()


class IndexedFiring:
    """The firing alerts but ``key``'s, for ``Router.decide``: walked in full when
    iterated (``walk``), or looked up in ``index`` (kept from the same table)."""

    def __init__(
        self, index: SourceIndex, key: Any, walk: Callable[[], Iterable[Mapping[str, str]]]
    ) -> None:
        self.index, self.key, self._walk = index, key, walk

    def __iter__(self) -> Iterator[Mapping[str, str]]:
        return iter(self._walk())


# Why a firing alert is kept from its receivers (a Decision's ``mute``); bounded, a label
# of citybrain_alerts_unmuted_total. citybrain has no time-based mutes.
MUTES = ("silenced", "inhibited")


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an alert goes: the matched routes, or why it goes nowhere: the silence that
    mutes it, or the inhibit rule and the id of the firing source alert (``inhibiting``)."""

    routes: tuple[Route, ...]
    silenced_by: Silence | None = None
    inhibited_by: InhibitRule | None = None
    inhibiting: str = ""

    @property
    def mute(self) -> str | None:
        """``"silenced"``, ``"inhibited"`` (one of MUTES) or None: the alert is routed."""
        if self.silenced_by is not None:
            return "silenced"
        return "inhibited" if self.inhibited_by is not None else None

    @property
    def muted_by(self) -> str:
        """The id of what mutes the alert: the silence's, or the inhibiting alert's;
        "" when it is not muted."""
        if self.silenced_by is not None:
            return self.silenced_by.id
        return self.inhibiting


@dataclass(frozen=True, slots=True)
class Router:
    root: Route
    inhibit_rules: tuple[InhibitRule, ...] = ()
    # The routing file's named time intervals (``time_intervals:`` and the deprecated
    # ``mute_time_intervals:``): name -> its intervals.
    time_intervals: Mapping[str, tuple[TimeInterval, ...]] = field(default_factory=dict)

    def time_muted(self, mute: Iterable[str], active: Iterable[str], now: float) -> str:
        """Why a route with these ``mute_time_intervals`` and ``active_time_intervals``
        (names) sends nothing at ``now`` (epoch s), or "" when it may notify: see
        ``time_intervals.time_mute``. A name this router does not define (a group routed
        before the routing file changed) mutes nothing and activates nothing."""
        return time_mute(mute, active, self.time_intervals, datetime.fromtimestamp(now, UTC))

    def decide(
        self,
        labels: Mapping[str, str],
        firing: Iterable[Mapping[str, str]],
        silences: Iterable[Silence],
        now: float,
    ) -> Decision:
        routes = tuple(self.root.match(labels))
        if isinstance(silences, SilenceList):
            silences = silences.candidates(labels)
        for silence in silences:
            if silence.silences(labels, now):
                return Decision(routes, silenced_by=silence)
        # Only rules whose target side the alert matches can inhibit it: with none, the
        # firing alerts are not walked at all.
        targeted = [i for i, r in enumerate(self.inhibit_rules) if matches_all(r.target, labels)]
        if not targeted:
            return Decision(routes)
        rules = [self.inhibit_rules[i] for i in targeted]
        if isinstance(firing, IndexedFiring) and firing.index.rules == self.inhibit_rules:
            for i in targeted:
                rule = self.inhibit_rules[i]
                for key, source in firing.index.sources(i, labels):
                    if key == firing.key or same_alert(source, labels):
                        continue  # an alert never inhibits itself
                    if rule.inhibits(labels, source):
                        return Decision(
                            routes, inhibited_by=rule, inhibiting=source.get("alert_id", "")
                        )
            return Decision(routes)
        for source in firing:
            if not _is_label_set(source):
                continue  # a stored alert that cannot be read inhibits nothing
            if same_alert(source, labels):
                continue  # an alert never inhibits itself
            for rule in rules:
                if rule.inhibits(labels, source):
                    return Decision(
                        routes, inhibited_by=rule, inhibiting=source.get("alert_id", "")
                    )
        return Decision(routes)

    def recheck(
        self,
        labels: Mapping[str, str],
        mute: str,
        muted_by: str,
        source: Mapping[str, str] | None,
        firing: Iterable[Mapping[str, str]],
        silences: Iterable[Silence],
        now: float,
    ) -> Decision:
        """``decide`` again for a firing alert that an earlier decision muted (``mute``,
        one of MUTES, by ``muted_by``: that Decision's ``mute`` and ``muted_by``), as
        Alertmanager re-applies silences and inhibition at every flush of a group. Muted
        or not, the answer is ``decide``'s; while the same silence, or the same firing
        source alert (``source``: the labels stored now under ``muted_by`` in the firing
        alerts, None when it no longer fires), still mutes it, that is found without
        walking ``firing``. Epoch seconds ``now``."""
        if not isinstance(silences, SilenceList):
            silences = SilenceList(silences)
        if mute == "silenced":
            silence = silences.by_id(muted_by)
            if silence is not None and silence.silences(labels, now):
                return Decision(tuple(self.root.match(labels)), silenced_by=silence)
        elif (
            mute == "inhibited"
            and source is not None
            and _is_label_set(source)
            and not same_alert(source, labels)
            and not any(s.silences(labels, now) for s in silences.candidates(labels))
        ):
            for rule in self.inhibit_rules:
                if rule.inhibits(labels, source):
                    routes = tuple(self.root.match(labels))
                    return Decision(routes, inhibited_by=rule, inhibiting=muted_by)
        return self.decide(labels, firing, silences, now)


def _routes_by_path(route: Route, above: tuple[str, ...] = ()) -> Iterator[tuple[Route, str]]:
    """Every route of the tree with its matchers written for people (``a="1" / b="2"``,
    "(every alert)" for the root)."""
    here = (*above, ", ".join(str(m) for m in route.matchers))
    yield route, " / ".join(p for p in here if p) or "(every alert)"
    for child in route.routes:
        yield from _routes_by_path(child, here)


def regrouped_routes(old: Router, new: Router) -> list[str]:
    """What a reload from ``old`` to ``new`` does to the open groups of each route, one
    line per route it changes (empty when none). A group's key is its route's matcher
    path (``Route.path``) and its ``group_by`` values (``Route.group_key``), as
    Alertmanager's: a route added, removed or moved among its siblings regroups no other
    route; a route whose path is gone (its matchers or a parent's edited, it or a parent
    removed; a second of two siblings with the same matchers becoming the first) or
    given another ``group_by`` makes new alerts of its open groups open new groups, and
    new runs, beside the open ones; a route given another playbook keeps its open
    groups, whose new alerts join their runs of the old playbook."""
    after = {r.path: r for r, _ in _routes_by_path(new.root)}
    said: list[str] = []
    gone = "new alerts of its open groups open new groups and runs beside the open ones"
    for was, written in _routes_by_path(old.root):
        now = after.get(was.path)
        if now is None:
            said.append(
                f"route {was.id} ({written}, {was.playbook}) is gone (no route has its "
                f"matchers there now: its matchers or a parent's changed, or it was "
                f"removed): {gone}"
            )
        elif sorted(now.group_by) != sorted(was.group_by):  # a set, as Alertmanager's
            said.append(
                f"route {now.id} ({written}) groups by [{', '.join(now.group_by)}], was "
                f"[{', '.join(was.group_by)}]: {gone}"
            )
        elif now.playbook != was.playbook:
            said.append(
                f"route {now.id} ({written}) opens {now.playbook} runs, was {was.playbook}: new "
                f"alerts of its open groups join their open {was.playbook} runs"
            )
    return said
