"""Errors raised by the grid, the playbook loader and the run state machine, and how
their messages show a value."""

import difflib
import json
import re
import reprlib
import unicodedata
from collections.abc import Iterable
from datetime import date
from typing import Any

_CLIP = reprlib.Repr()
_CLIP.maxstring = _CLIP.maxother = 60


def quote_hint(value: Any) -> str:
    """For a true or false found where text goes: how YAML came to read it so (t122: a
    step ``id: on``, a department ``NO`` for Norway, were said as "is true, expected
    text", of a value the file never wrote as true), else ""."""
    if not isinstance(value, bool):
        return ""
    return (
        " (YAML reads an unquoted yes, no, on, off, true or false as "
        f"{str(value).lower()}: quote the text, as 'on' or 'NO')"
    )


def shown(value: Any) -> str:
    """A YAML or JSON value as a message shows it, in the file's words, never Python's
    type name ("is a NoneType", "is a int"): ``null`` (an empty file, a key with no
    value), ``true``, ``42``, ``'text'`` (clipped to 60 characters), ``a list``,
    ``a mapping``, a date or time as YAML writes it (``2026-10-01``)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, date):
        # YAML's date or time (2026-10-01): as written, not datetime.date(2026, 10, 1).
        return str(value)
    return _CLIP.repr(value)


# What a character a name may not hold is called, by Unicode category (``name_fault``).
_NOT_IN_NAMES = {
    "Cc": "a control character",  # C0 and C1 controls: ESC, NUL, NEL (U+0085), \x1c-\x1e
    "Cf": "an invisible format character",  # zero-width, BOM, bidi controls (U+202E, U+2066)
    "Zl": "a line separator",  # U+2028
    "Zp": "a paragraph separator",  # U+2029
    "Cs": "a lone surrogate",  # from a JSON escape \ud800 or surrogateescape
}
# Bidirectional controls, named as such: each reorders how the text after it is shown.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def name_fault(text: str) -> str | None:
    """What an operator-written name (a grid id, a playbook's name or step id, a
    department, a token's name: the audit's actor and a silence's author, a routing
    file's time interval; a report's category and id) may not hold, and ``text`` does, as
    ``an invisible format character (U+202E, RIGHT-TO-LEFT OVERRIDE, a bidirectional
    control) at character 3`` or ``a line separator (U+2028) at character 6`` (counted
    from 1, as people count: a name that looks whole is told where to look, t197); None
    when it holds none. The one naming path for such a character: each message says the
    field and the value around it.

    Refused: control characters (NEL among them), format characters (zero-width ones and
    the bidirectional controls, which show the text in another order than it is), the
    line and paragraph separators U+2028 and U+2029 (``str.splitlines()``, JavaScript
    and YAML break lines there: a name holding one cut log lines, the audit's rows and
    `runs show` in two, t186) and lone surrogates. One check for every such name: before
    t186 each place had its own, and U+2028/U+2029 passed them all."""
    for i, c in enumerate(text):
        if unicodedata.category(c) in _NOT_IN_NAMES:
            return character_at(text, i)
    return None


def character_at(text: str, i: int) -> str:
    """``text[i]`` said for a message, with its place counted from 1: ``a control
    character (U+001B) at character 2``, ``an invisible format character (U+200B, ZERO
    WIDTH SPACE) at character 3``, ``a line separator (U+2028) at character 6``. The one
    way a refused character is named (name_fault for names, streams.events.text_control
    for free text), so every message names it alike (t197)."""
    c = text[i]
    category = unicodedata.category(c)
    what = _NOT_IN_NAMES.get(category, "the character")
    # A format character by its Unicode name too (ZERO WIDTH SPACE, SOFT HYPHEN): it
    # shows nothing; a control, separator or surrogate is said by its kind.
    named = f", {unicodedata.name(c, '')}" if category == "Cf" else ""
    bidi = ", a bidirectional control" if c in _BIDI else ""
    return f"{what} (U+{ord(c):04X}{named}{bidi}) at character {i + 1}"


class PlaybookError(Exception):
    """Root of every playbooks error."""


class GridError(PlaybookError):
    """A grid file is invalid, or a lookup names a cell or sensor it does not have.

    ``loc`` is where in the grid document the fault is (``("sensors", 3, "kind")``), so
    the loader can name the file's line."""

    def __init__(
        self,
        message: str,
        loc: tuple[str | int, ...] = (),
        problems: list[tuple[str, tuple[str | int, ...]]] | None = None,
    ) -> None:
        super().__init__(message)
        self.loc = loc
        # Every fault found, (message, loc) each, when a whole file was checked; the
        # message and loc above are the first of them.
        self.problems = problems if problems is not None else [(message, loc)]


class PlaybookConfigError(PlaybookError):
    """A playbook file is invalid; the message names file, entry and reason."""


class InvalidTransitionError(PlaybookError):
    """A run was asked to make a move its state does not allow."""

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"run in state {state!r} cannot take event {event!r}")
        self.state = state
        self.event = event


class InvalidReplyTransitionError(InvalidTransitionError):
    """A citizen report was asked to make a move its reply status does not allow (an
    answer before the closure message, or a second answer to the same closure)."""

    def __init__(self, state: str, event: str) -> None:
        PlaybookError.__init__(self, f"report in state {state!r} cannot take event {event!r}")
        self.state = state
        self.event = event


class ForbiddenActionError(PlaybookError):
    """An action the run's state or the caller's role does not allow (HTTP 409/403)."""


class RoutingConfigError(PlaybookError):
    """A routing file is invalid; the message names file, line and reason."""


class SilenceError(RoutingConfigError):
    """A silence is invalid; ``problem`` says which kind of problem (``field``,
    ``matcher`` or ``matches_empty``, playbooks.routing.SILENCE_PROBLEMS)."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


class BadEventError(PlaybookError):
    """An event for a run (a command, an alert's report list) has a field of the wrong
    type or value; the message names the field and the value."""


def closest(value: object, choices: Iterable[object]) -> object | None:
    """The choice ``value`` most likely misspells (difflib's closest, compared as text
    and ignoring case: ``'Open'`` and ``'opne'`` are ``'open'``; difflib's cutoff, 0.6);
    failing that, the one choice of three letters or more that ``value`` starts with or
    that starts with ``value`` (``'acknowledge'`` is ``'ack'``, ``'esc'`` is
    ``'escalate'``); None when nothing is close. The one "did you mean" of the command
    line's choices, the settings', the operator API's and the routing checks' label values
    (here so that playbooks, which may not import streams, use it too; streams.errors has
    it)."""
    given = _as_text(value)
    if given is None:
        return None
    by_text: dict[str, object] = {}
    for choice in choices:
        by_text.setdefault(str(choice).casefold(), choice)
    text = given.casefold()
    near = difflib.get_close_matches(text, list(by_text), n=1)
    if near:
        return by_text[near[0]]
    # A whole word for its short choice ('acknowledge' for 'ack') or a choice's start
    # ('esc' for 'escalate'): too far apart in length for difflib's ratio.
    if isinstance(value, str) and len(text) >= 3:
        related = [t for t in by_text if len(t) >= 3 and (text.startswith(t) or t.startswith(text))]
        if len(related) == 1:
            return by_text[related[0]]
    return None


def _as_text(value: object) -> str | None:
    """``value`` as the text a misspelling is compared as, or None for what misspells no
    choice: a list, a mapping or any other object, and an integer past 64 bits. ``str``
    of input from the wire raised: an NGSI entity ``type`` nested 1,000 lists deep was a
    RecursionError (HTTP 500, the whole notification lost), and an integer past 4,300
    digits is a ValueError."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and value.bit_length() > 64:  # bool is an int, and short
        return None
    if value is None or isinstance(value, (int, float)):
        return str(value)
    return None


def did_you_mean(value: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'resolved'?)`` for a value near one of ``choices`` (``closest``),
    `` (one choice, not a list: give 'open' or 'resolved')`` for a list of choices where
    one is taken (``open,resolved``, ``open|resolved``), or "": the tail of every
    "expected one of" that lists fixed values.

    t147: the API's ``?status=open,resolved``, a tokens file's ``role: operator,
    coordinator`` or ``CITYBRAIN_DETECTOR=tail,ensemble`` were asked "did you mean" the
    list's last item, as if the list misspelt it (t143 fixed the command line's alone)."""
    choices = list(choices)
    if isinstance(value, str):
        parts = [part.strip() for part in re.split(r"[,|]", value)]
        known = {str(choice) for choice in choices}
        if len(parts) > 1 and all(part in known for part in parts):
            return f" (one choice, not a list: give {' or '.join(map(repr, parts))})"
    near = closest(value, choices)
    return f" (did you mean {str(near)!r}?)" if near is not None else ""
