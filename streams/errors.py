"""Errors raised while decoding events and replaying feeds."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

# Encoding guesses live with the playbooks, whose YAML files need them too (t121).
from playbooks.encodings import LATIN as LATIN
from playbooks.encodings import legacy_encoding as legacy_encoding
from playbooks.encodings import likely_encoding as likely_encoding
from playbooks.encodings import likely_encodings as likely_encodings
from playbooks.encodings import wide_without_bom as wide_without_bom

# The one "did you mean": kept with the playbooks' errors, which may not import streams
# (the routing checks name the closest label value too, t40); the same function here.
from playbooks.errors import closest as closest


class StreamsError(Exception):
    """Root of every streams error."""


class _Missing:
    """The value of a field an event leaves out (``MISSING``), told apart from JSON null."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: object = _Missing()


class EventError(StreamsError):
    """An event failed validation. ``code`` is a bounded reason for metrics and headers;
    ``value`` is the field's value, ``MISSING`` (or None with ``missing_field``) when the
    event leaves the field out. The message reads ``field "ts" is 'x': reason`` or
    ``field "ts" is missing[: reason]``."""

    def __init__(self, code: str, field: str | None, value: object, reason: str) -> None:
        if field and (value is MISSING or (code == "missing_field" and value is None)):
            said = reason in ("field is missing", "")
            text = f'field "{field}" is missing' + ("" if said else f": {reason}")
        else:
            text = (f'field "{field}" is {show(value)}: ' if field else "") + reason
        super().__init__(text)
        self.code = code
        self.field = field
        self.value = value
        self.reason = reason


def unreadable(exc: BaseException, field: str | None = None) -> EventError:
    """An unexpected exception while decoding or validating one message, as an
    ``EventError`` with the bounded reason ``unreadable`` (the exception's type and text
    say what happened), so it is dead-lettered like any other bad input."""
    where = f"{field}: " if field else ""
    return EventError("unreadable", None, None, f"{where}{type(exc).__name__}: {_clip(str(exc))}")


class FeedError(StreamsError):
    """A replay file has a bad row; the message names file and line."""


class SeriesFileError(FeedError):
    """A replay file is one ``timestamp,value`` series (``citybrain detect``'s input), not
    readings of named sensors; ``path`` is the file, for the command that scores it."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class SettingsError(StreamsError):
    """A setting has an invalid value; the message names the setting, never a secret."""


def shown_path(path: str | Path) -> str:
    """``path`` as a message names it: as written, but a character that is not printable
    (a line feed, an ESC, a bidirectional override, U+2028, a byte that is not UTF-8 kept
    as a lone surrogate) written as its escape, ``\\n``, ``\\x1b``, ``\\udce9``. A file
    found under a folder is named by what its name holds: a line feed in it cut
    ``file:line: reason`` into two lines, an escape sequence was played (t169)."""
    text = str(path)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_LINE_END = re.compile(r"\r\n|\r|\n")


def text_lines(text: str) -> list[str]:
    """The lines of a message or a log's text, cut at its line ends only (LF, CRLF or a
    lone CR), as ``str.splitlines()`` without its other breaks: it also cut a line at a
    U+2028, U+2029, U+0085, \\x1c-\\x1e, \\v or \\f that a value, a file's name or a
    log record may hold, the rest shown as a line of its own (t169). ``[]`` for ``""``;
    a final line end ends the last line, as there."""
    if not text:
        return []
    lines = _LINE_END.split(text)
    return lines[:-1] if lines[-1] == "" else lines


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# A list or object is shown a few levels and items deep, as JSON (trial 8: a dead letter's
# ``{'v': 1}`` was Python's repr of the producer's ``{"v": 1}``): repr() of a JSON array
# nested 1,000 levels deep (under the decoders' 1,024) raised RecursionError, and one of a
# megabyte-long list built the whole text to show 80 characters of it. Only what is shown
# is visited.
_MAX_LEVEL, _MAX_ITEMS, _MAX_STRING = 3, 6, 40


def _scalar(value: object) -> str:
    """One JSON scalar inside a list or object: a string in JSON quotes (cut to
    ``_MAX_STRING`` characters), a number as JSON writes it, null/true/false."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        text = escaped_json(json.dumps(value[:_MAX_STRING], ensure_ascii=False))
        return text if len(value) <= _MAX_STRING else text[:-1] + '..."'
    if type(value) is int or type(value) is float:
        return json.dumps(value)
    return repr(value)  # (an int too long to convert shows its own digits)


def escaped_json(text: str) -> str:
    """JSON text with every character ``repr`` would escape written as its ``\\u``
    escape: JSON escapes only C0 controls, and a string inside a list or object kept a
    right-to-left override (U+202E), a line separator or a C1 control (U+009B, the
    8-bit escape sequence introducer) raw, to reach an operator's terminal in a
    command's warning (helper t52); a string on its own is shown by ``repr``, which
    escapes them. The text is still the same JSON; a JSON line so written stays one line
    to ``str.splitlines()`` too, which breaks at U+2028, U+2029 and U+0085 (t169)."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else "".join(f"\\u{u:04x}" for u in _utf16(c)) for c in text
    )


def _utf16(c: str) -> tuple[int, ...]:
    """The UTF-16 code units of one character, as JSON escapes it (a pair above U+FFFF)."""
    data = c.encode("utf-16-be", "surrogatepass")
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


def _json(value: object, level: int) -> str:
    """``value`` as bounded JSON text: ``[...]``/``{...}`` below ``_MAX_LEVEL`` levels,
    ``...`` after ``_MAX_ITEMS`` items."""
    if isinstance(value, list | tuple):
        if level >= _MAX_LEVEL and value:
            return "[...]"
        items = [_json(v, level + 1) for v in value[:_MAX_ITEMS]]
        return "[" + ", ".join(items + (["..."] if len(value) > _MAX_ITEMS else [])) + "]"
    if isinstance(value, dict):
        if level >= _MAX_LEVEL and value:
            return "{...}"
        pairs = [
            f"{_scalar(str(k))}: {_json(v, level + 1)}"
            for k, v in itertools.islice(value.items(), _MAX_ITEMS)
        ]
        return "{" + ", ".join(pairs + (["..."] if len(value) > _MAX_ITEMS else [])) + "}"
    return _scalar(value)


# Letters of other scripts drawn like Latin a-z (Unicode's confusables: Cyrillic, Greek,
# IPA), and the Latin letter each looks like. A text that mixes them with ASCII letters
# ('g\u0430uge-1') is shown with them escaped: written as they are, the message showed
# "'gаuge-1': sensor is not registered (did you mean 'gauge-1'?)", two identical texts.
LOOKALIKE_LETTERS = (
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u04bb\u04cf"
    "\u051b\u051d\u03b1\u03bf\u03bd\u03b9\u03ba\u03c1\u03c5\u0131\u0261\u0251"
)
LATIN_LOOKS = "aeopcyxijsdhlqwaovikpuiga"
_LOOKALIKES = frozenset(LOOKALIKE_LETTERS)


def unmasked(text: str) -> str:
    """``text`` with each look-alike letter (``LOOKALIKE_LETTERS``) escaped (``\\u0430``)
    when it also holds an ASCII letter, else as it is (a Russian or Greek text is left
    alone). Looks at the first 200 characters (what a message shows)."""
    head = text[:200]
    if head.isascii() or _LOOKALIKES.isdisjoint(head):
        return text
    if not any("a" <= c <= "z" or "A" <= c <= "Z" for c in head):
        return text
    return "".join(f"\\u{ord(c):04x}" if c in _LOOKALIKES else c for c in text)


# A stored or incoming key (a changelog key, a silence or run id) is shown whole up to
# this many characters: every id citybrain writes is shorter (256 at most, events'
# MAX_ID_CHARS).
MAX_SHOWN_KEY = 256


def shown_key(key: str | bytes) -> str:
    """A key as an audit record, log line or dead letter shows it: whole when at most
    ``MAX_SHOWN_KEY`` characters, else its first 100, an ellipsis, its length and the
    first 16 hex digits of its SHA-256 (``'gauge-xxxx...' (1,000,000 characters,
    sha256 1f2e...)``), which tells two long keys with one start apart. Bytes are
    read as UTF-8, a byte that is not shown as U+FFFD. t166: a changelog key of 1 MB
    was put whole into its ``state_unreadable`` audit record, larger than the
    producer sends (1,048,576 bytes), and the failed send cost the alert or batch in
    hand."""
    raw = key if isinstance(key, bytes) else key.encode("utf-8", "surrogatepass")
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    if len(text) <= MAX_SHOWN_KEY:
        return text
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return f"{text[:100]}... ({len(text):,} characters, sha256 {digest})"


def shown_name(name: str) -> str:
    """A field or parameter name as a message shows it: unprintable characters (a NUL, a
    zero-width space) and look-alike letters (``unmasked``) escaped, so ``"n\u043ete"``
    no longer reads as ``"note"`` beside ``did you mean 'note'?``."""
    return unmasked(name if name.isprintable() else ascii(name)[1:-1])


def show(value: object) -> str:
    """A field's value as the producer wrote it, at most 80 characters: JSON's
    null/true/false; a list or object as JSON (``{"v": 1}``), 3 levels and 6 items deep
    at most (``[[[...]]]``, ``[1, 2, 3, 4, 5, 6, ...]``); a string or number as Python
    writes it (``'x'``, ``1e+400``), a string's look-alike letters escaped (``unmasked``)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    try:
        text = _json(value, 0) if isinstance(value, list | dict) else repr(value)
        if isinstance(value, str):
            text = unmasked(text)
    except ValueError:  # an int past sys.get_int_max_str_digits
        text = f"<{type(value).__name__} too long to show>"
    return text if len(text) <= 80 else text[:77] + "..."


# Why a changelog entry cannot be read back (``streams.tables``: recovery drops it, says
# it, counts it and audits it); here, with its error, so that modules reading table
# documents (streams.detection) need no faust.
NOT_DECODABLE = "not_decodable"  # truncated, not UTF-8, not JSON / msgpack, too deep
UNKNOWN_FORMAT = "unknown_format"  # a leading format byte no version wrote
NEWER_FORMAT = "newer_format"  # written by a newer citybrain: refused, never misread
BAD_SHAPE = "bad_shape"  # decodes, but not the table's document (an older schema, a scalar)
TOO_LARGE = "too_large"  # larger than the worker writes: it could not be written back
# A tombstone where the worker never deletes (a run-id floor, ``generations``): skipped.
DELETED = "deleted"
REASONS = (NOT_DECODABLE, UNKNOWN_FORMAT, NEWER_FORMAT, BAD_SHAPE, TOO_LARGE, DELETED)


class UnreadableEntryError(ValueError):
    """A changelog entry that cannot be read back, with its ``reason`` (one of
    ``REASONS``) and a one-line ``detail`` naming the field or byte at fault."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def detach(error: BaseException) -> None:
    """Drop ``error``'s traceback and the exceptions it was raised in or from (and
    theirs), keeping its message: an exception kept past its handler (a refusal, an
    error list) then holds no frame. Its traceback's frames reach, through their
    callers (``f_back``), the frame that keeps it: a cycle, freed only by a full
    collection, holding every local of those frames (a batch's bytes) until then."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        nxt = current.__cause__ or current.__context__
        current.__traceback__ = None
        current.__cause__ = current.__context__ = None
        current = nxt


# A number written with a decimal comma (``1,5``, ``-12,25``), as European locales and
# spreadsheets write it; thousands separators (``1,000``) are not told apart from it.
_DECIMAL_COMMA = re.compile(r"\s*[-+]?[0-9]+,[0-9]+\s*")


# A number followed by a unit (`2.4 ft`, `35ug/m3`, `12 °C`): a newcomer's reading of a
# sensor's display.
# Not an exponent (`1e5x` is no `1` in unit `e5x`).
_WITH_UNIT = re.compile(
    r"\s*([-+]?[0-9]+(?:\.[0-9]+)?)\s*(?![eE][-+]?[0-9])((?:[^\W0-9_]|[°µ%])[\w/°%³²µ.]*)\s*"
)


# A digit of a number's text that makes it not zero as written.
_NONZERO_DIGIT = re.compile(r"[1-9]")


def underflows(text: str, value: float) -> bool:
    """Whether ``text``, a number as written (``-1e-400``, ``0.000…1``), is not zero but
    was read as ``value`` 0.0 or -0.0: too small for a double (under about 4.9e-324),
    as every JSON and CSV reader rounds it (t183)."""
    if value != 0.0:
        return False
    mantissa = text.partition("e")[0].partition("E")[0]
    return _NONZERO_DIGIT.search(mantissa) is not None


def number_hint(text: object) -> str:
    """The hint for text sent where a number is expected, written as people write one:
    a decimal comma (``decimal_comma_hint``) or a number with its unit, `` (a number with
    its unit? send 2.4 alone, the unit in its own field)`` (t143: ``2.4 ft`` got
    "expected a number" alone); else ``""``."""
    comma = decimal_comma_hint(text)
    if comma or not isinstance(text, str) or len(text) > 64:
        # A long text is no display's reading: its number would be shown whole.
        return comma
    found = _WITH_UNIT.fullmatch(text)
    if found is None or found.group(2).lower() in ("e", "inf", "infinity", "nan"):
        return ""
    return f" (a number with its unit? send {found.group(1)} alone, the unit in its own field)"


# A number written with its digits grouped in thousands, as a locale writes it: the
# group separator (",", ".", a space, a no-break or narrow no-break space, an apostrophe)
# between groups of three, then perhaps a decimal mark ("." or ",") and the fraction.
_GROUPED = re.compile(
    r"\s*([-+]?)([0-9]{1,3}(?:([.,\u0020\u00a0\u202f'\u2019])[0-9]{3})(?:\3[0-9]{3})*)"
    r"(?:([.,])([0-9]*))?\s*"
)
_GROUP_NAMES = {
    ",": "','",
    ".": "'.'",
    " ": "a space",
    "\u00a0": "a no-break space",
    "\u202f": "a narrow no-break space",
    "'": "an apostrophe",
    "\u2019": "an apostrophe",
}


def grouped_number_hint(text: str) -> str:
    """`` (digits grouped by '.' and a decimal comma? send 1234.5, no separators, with
    a point)`` for text that is a number written with its thousands grouped as a locale
    writes it (``1.234,5``, ``1,234.5``, ``12 345``, ``1'234.5``), else ``""`` (t183:
    each got "expected a number" alone). Only where the grouping is plain: two groups
    or more, a decimal mark other than the separator, or a separator no number holds
    (``1.234`` alone is a number, ``1,234`` the decimal comma's hint)."""
    found = _GROUPED.fullmatch(text)
    if found is None:
        return ""
    sign, digits, sep, mark, fraction = found.groups()
    groups = digits.count(sep)
    if mark == sep or (groups == 1 and mark is None and sep in ".,"):
        return ""
    # A mark with no fraction after it (``-1,234.`` as a spreadsheet writes it): the
    # whole number alone.
    number = sign + digits.replace(sep, "") + (f".{fraction}" if fraction else "")
    decimal = " and a decimal comma" if mark == "," and fraction else ""
    point = ", with a point" if fraction else ""
    return f" (digits grouped by {_GROUP_NAMES[sep]}{decimal}? send {number}, no separators{point})"


def decimal_comma_hint(text: object) -> str:
    """`` (a decimal comma? send 1.5, with a point)`` for text that is a number written
    with a decimal comma, else ``""`` (t109: ``"1,5"`` got "expected a number" alone);
    one with its digits grouped as a locale writes them, ``grouped_number_hint``."""
    if isinstance(text, str) and len(text) <= 64 and not _DECIMAL_COMMA.fullmatch(text):
        return grouped_number_hint(text)
    if not isinstance(text, str) or not _DECIMAL_COMMA.fullmatch(text):
        return ""
    point, whole = text.strip().replace(",", "."), text.strip().replace(",", "")
    if len(text.strip().rsplit(",", 1)[1]) == 3:  # 1,000: a thousands separator too
        return f" (a decimal comma, {point}, or a thousands separator, {whole}? send it so)"
    return f" (a decimal comma? send {point}, with a point)"


# A dead letter's message is one line (its citybrain.error.message header, the worker's
# log line, `citybrain deadletters`): every control character of the text it was built
# from is written as its escape (a producer's run_id "grp-x.1\nFAKE" wrote a second log
# line not starting "citybrain: ", and a header of two lines, before t211).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(message: str) -> str:
    """``message`` with each control character (C0, DEL, C1, the Unicode line and
    paragraph separators) written as its Python escape (``\\n``, ``\\x00``,
    ``\\u2028``): one line, whatever text it was built from."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], message)
