"""Wording shared by every command's output."""

from __future__ import annotations

import os
import re
import sys
import unicodedata
import zoneinfo
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from itertools import islice
from typing import Any

from streams.errors import text_lines


def counted(n: int, noun: str, plural: str = "") -> str:
    """``1 row``, ``2 rows``, ``1,234 rows``: a count with its noun in the right number
    (``plural`` for a noun that does not just take an s)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {plural or noun + 's'}"


# How many of a list a message names before it says how many more there are.
NAMED_AT_MOST = 5


def first_named(names: Iterable[str], total: int, at_most: int = NAMED_AT_MOST) -> str:
    """``a, b, c`` or ``a, b, c, d, e and 9,994 more``: the first ``at_most`` of ``names``
    (``total`` in all), read lazily, so a message naming the others of 10,000 items costs
    five names, not 10,000 (t198: each of 10,000 conflicting readings named the other
    9,999, a body of them held the ingest for a minute)."""
    shown = list(islice(names, at_most))
    more = total - len(shown)
    return ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")


def agreeing(n: int, singular: str, plural: str) -> str:
    """The word that agrees with a count of ``n``: ``agreeing(1, "was", "were")`` is
    ``was``, any other count ``were`` (for the verb after ``counted``)."""
    return singular if n == 1 else plural


# A year as Prometheus durations count one (``1y`` is 365 days), for spans past
# DAYS_UP_TO: a `100y` silence then shows "in 100 years", not 99.9 (nor "36500.0 d").
YEAR_SECONDS = 365 * 86_400
DAYS_UP_TO = 2 * YEAR_SECONDS


def duration(seconds: float) -> str:
    """A span of ``seconds`` (negative as 0) as a person reads it, the one way every
    command says one: ``45 s``, ``12 min``, ``5.5 h``, ``3.2 days``, ``100 years``
    (seconds up to 2 min, minutes up to 2 h, hours up to 2 days, days up to 2 years;
    a whole number of years without its ``.0``)."""
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    if seconds < DAYS_UP_TO:
        return f"{seconds / 86_400:.1f} days"
    years = f"{seconds / YEAR_SECONDS:,.1f}".removesuffix(".0")
    return f"{years} years"


def day(when: datetime) -> str:
    """``0001-01-01``: a date with its year in four digits (``%Y`` gives ``1`` for year 1
    on glibc)."""
    return f"{when.year:04d}-{when.month:02d}-{when.day:02d}"


def zone(when: datetime) -> str:
    """The zone of an aware ``when`` as a clock shows it: its abbreviation (``CET``,
    ``IST``, ``+04``), or ``UTC-0500`` when the abbreviation would mislead: a POSIX
    ``TZ=UTC+5`` names its zone "UTC" five hours behind UTC, and "13:08 UTC" stood beside
    a header saying ``UTC-0500`` (trial 20); or when there is none. Under a ``TZ`` the C
    library cannot read (``TZ=Bogus/Zone``: no such zone file, no POSIX offset) the time
    is UTC, and it is labelled ``UTC``, not "Bogus"."""
    name = when.strftime("%Z")
    if not name or (name.upper() in ("UTC", "GMT", "UT", "Z") and when.utcoffset()):
        return when.strftime("UTC%z")
    if not when.utcoffset() and _unreadable_tz(os.environ.get("TZ")):
        return "UTC"
    return name


# A POSIX TZ string: a name (3+ letters, or <quoted>), then an offset (POSIX.1-2017, 8.3).
_POSIX_TZ = re.compile(r"(<[^>]+>|[A-Za-z]{3,})[+-]?\d")


@lru_cache(maxsize=8)
def _unreadable_tz(tz: str | None) -> bool:
    """Whether glibc falls back to UTC for ``tz``, labelling it with the letters ``tz``
    begins with: neither a zone file (a path, or a name under the zoneinfo path) nor a
    POSIX string with an offset."""
    if not tz:
        return False
    tz = tz.removeprefix(":")
    if tz.startswith("/"):
        return not os.path.isfile(tz)
    if _POSIX_TZ.match(tz):
        return False
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return True
    return False


# Characters that change how the text after them is shown: bidirectional overrides,
# embeddings, isolates and marks (a note "\u202egnirts" is shown reversed, the Trojan
# Source trick) and the line and paragraph separators (trial 29).
_SHOWN_AS_ESCAPES = frozenset(
    "\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _hidden(c: str) -> bool:
    # A lone surrogate (Cs: JSON's "\ud800", a byte no UTF-8 decoder took) is no
    # character: printed, it stopped the command with UnicodeEncodeError (t169).
    return unicodedata.category(c) in ("Cc", "Cs") or c in _SHOWN_AS_ESCAPES


def cell(text: str) -> str:
    """``text`` as one table cell: a control character (a newline, a tab in a silence's
    reason, an escape sequence's ESC), a bidirectional or line-separating format
    character or a lone surrogate shown as its escape, ``\\n``, ``\\u202e``, ``\\ud800``,
    so the row stays one line, reads as it was written and can be printed."""
    if not any(_hidden(c) for c in text):
        return text
    return "".join(repr(c)[1:-1] if _hidden(c) else c for c in text)


def shown_lines(text: str) -> str:
    """``text`` (a message, a warning) with each of its own lines (LF, CRLF or CR ends,
    ``streams.errors.text_lines``) shown as a table cell is (``cell``): a value's ESC
    sequence, U+202E or U+2028 written as its escape, so a warning reads as it was
    written and each of its lines stays one (t169)."""
    return "\n".join(cell(line) for line in text_lines(text))


def warn(text: str) -> None:
    """``citybrain: warning: <text>`` on stderr, ``text`` shown as ``shown_lines`` shows it
    (a file's name or a value's ESC sequence, U+202E or U+2028 written as its escape)."""
    print(f"citybrain: warning: {shown_lines(text)}", file=sys.stderr)


def display_width(text: str) -> int:
    """How many terminal columns ``text`` takes: a wide (CJK) or fullwidth character,
    most emoji, two; a combining mark, a zero-width joiner or a variation selector, none;
    any other one (Unicode's East Asian Width, as wcwidth measures, without the table of
    ambiguous ones: those count one). ``len`` counted characters, and a table with a
    matcher ``cell="東京"`` or ``"🔥"`` lost its alignment (trial 8)."""
    columns = 0
    for c in text:
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf"):
            continue
        columns += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return columns


def pad(text: str, columns: int) -> str:
    """``text`` followed by the spaces that bring it to ``columns`` on a terminal
    (``str.ljust`` by display width)."""
    return text + " " * max(0, columns - display_width(text))


def draws_live(console: Any) -> bool:
    """Whether ``console`` (a ``rich.console.Console``) redraws a live view or a bar in
    place: a terminal that can move its cursor. A dumb one (``TERM=dumb``: Emacs' shell,
    a CI's pseudo-terminal) is a terminal too, yet rich draws its live views there only
    once, when they stop, so it gets the plain lines a pipe gets (t164: `make demo` and
    the replay under TERM=dumb said nothing from the replay's start to its end).
    """
    return bool(console.is_interactive)
