"""Errors raised while decoding events and replaying feeds."""

from __future__ import annotations

import codecs
import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

import charset_normalizer

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
        text = _escaped(json.dumps(value[:_MAX_STRING], ensure_ascii=False))
        return text if len(value) <= _MAX_STRING else text[:-1] + '..."'
    if type(value) is int or type(value) is float:
        return json.dumps(value)
    return repr(value)  # (an int too long to convert shows its own digits)


def _escaped(text: str) -> str:
    """JSON text with every character ``repr`` would escape written as its ``\\u``
    escape: JSON escapes only C0 controls, and a string inside a list or object kept a
    right-to-left override (U+202E), a line separator or a C1 control (U+009B, the
    8-bit escape sequence introducer) raw, to reach an operator's terminal in a
    command's warning (helper t52); a string on its own is shown by ``repr``, which
    escapes them."""
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
REASONS = (NOT_DECODABLE, UNKNOWN_FORMAT, NEWER_FORMAT, BAD_SHAPE)


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


# Legacy encodings a city's files and gateways still write, each with the test that its
# text is plausible: (codec, name said, whether a decoded character is common text of
# that script in that encoding). Strict decoding alone proves little: most byte strings
# past ASCII decode as GBK, and Latin-1 decodes everything.
def _common_in(codec: str, leads: tuple[tuple[int, int], ...]) -> Callable[[str], bool]:
    def common(c: str) -> bool:
        try:
            lead = c.encode(codec)[0]
        except UnicodeEncodeError:
            return False
        return any(lo <= lead <= hi for lo, hi in leads)

    return common


_CJK_PUNCT = (0xA1, 0xA3)  # full-width punctuation and symbols, in each EUC-style table
_LEGACY: tuple[tuple[str, str, Callable[[str], bool]], ...] = (
    # GB2312's punctuation rows and its 3,755 level-1 hanzi (rows 16-55).
    (
        "gb18030",
        "GBK/GB18030 (Simplified Chinese)",
        _common_in("gb2312", (_CJK_PUNCT, (0xB0, 0xD7))),
    ),
    # Big5's symbols and its 5,401 frequently used characters (0xA440-0xC67E).
    (
        "big5",
        "Big5 (Traditional Chinese: Taiwan, Hong Kong)",
        _common_in("big5", ((0xA1, 0xA3), (0xA4, 0xC6))),
    ),
    # Shift_JIS's symbols, kana and JIS level-1 kanji; not half-width katakana (one byte
    # each, 0xA1-0xDF: any Latin text past ASCII reads as them).
    ("cp932", "Shift_JIS (Japanese)", _common_in("shift_jis", ((0x81, 0x83), (0x88, 0x98)))),
    # EUC-KR's symbols and its 2,350 Hangul syllables (rows 16-40).
    ("cp949", "EUC-KR (Korean)", _common_in("euc_kr", (_CJK_PUNCT, (0xB0, 0xC8)))),
)
LATIN = "Latin-1 or Windows-1252"
# From this many bytes past ASCII (about eight characters) on, a text's language is told
# by its character frequencies; below it, two scripts' common characters are not.
_TELL_APART_BYTES = 16
# Past this many bytes only the start is looked at: the guess is for a message, never work.
_GUESS_BYTES = 64 * 1024


def wide_without_bom(data: bytes) -> str | None:
    """UTF-16 or UTF-32 without a byte order mark, told by its NULs (ASCII in UTF-16LE
    is a NUL after each byte; in UTF-16BE before it), or None."""
    head = data[:_GUESS_BYTES]
    if len(head) < 4 or head.count(0) * 4 < len(head):
        return None
    quarter = len(head) // 4 * 4
    if quarter and all(head[i:quarter:4].count(0) * 5 >= quarter for i in (1, 2)):
        order = "LE" if head[0:quarter:4].count(0) * 5 < quarter else "BE"
        return f"UTF-32{order} without a byte order mark"
    odd, even = head[1::2].count(0), head[0::2].count(0)
    if max(odd, even) * 10 >= len(head) * 4:  # most of one half is NUL, little of the other
        return (
            "UTF-16LE without a byte order mark"
            if odd > even
            else "UTF-16BE without a byte order mark"
        )
    return None


def _latin_words(data: bytes) -> bool:
    """Whether every byte past ASCII reads in Windows-1252 as a letter beside an ASCII
    letter, or as its typographic punctuation (``Z\xfcrich``, ``caf\xe9``, ``\x93q\x94``):
    Latin-1 text, not a stray byte of binary data."""
    high = [i for i, b in enumerate(data) if b >= 0x80]
    for i in high:
        c = data[i : i + 1].decode("cp1252", "replace")
        if c in "\u2018\u2019\u201c\u201d\u2013\u2014\u20ac\u00b0\u00a0":
            continue
        if not c.isalpha():
            return False
        near = data[max(0, i - 1) : i] + data[i + 1 : i + 2]
        if not any(chr(b).isalpha() or b >= 0x80 for b in near):
            return False
    return bool(high)


def likely_encodings(data: bytes) -> list[str]:
    """The legacy encodings bytes that are not UTF-8 were most plausibly written in,
    best first (several when the bytes cannot tell them apart: two Hangul syllables in
    EUC-KR are two common hanzi in GBK), or ``[]`` when none fits (a stray byte of binary
    data). UTF-16 or UTF-32 without a byte order mark (NULs), GBK/GB18030, Big5,
    Shift_JIS, EUC-KR (every character past ASCII a common one of its script), else
    Latin-1/Windows-1252 (letters inside words). Looks at the first 64 KiB only."""
    head = data[:_GUESS_BYTES]
    wide = wide_without_bom(head)
    if wide is not None:
        return [wide]
    found: dict[str, str] = {}  # codec -> name, in _LEGACY's order
    for codec, name, common in _LEGACY:
        decoder = codecs.getincrementaldecoder(codec)("strict")
        try:
            text = decoder.decode(head, final=len(head) == len(data))
        except UnicodeDecodeError:
            continue
        past = [c for c in text if ord(c) >= 0x80]
        if past and all(map(common, past)):
            found[codec] = name
    if len(found) > 1 and sum(b >= 0x80 for b in head) >= _TELL_APART_BYTES:
        # Each reads as common text of its script: which language it reads as is
        # charset_normalizer's to judge (character frequencies per language); a short
        # text stays ambiguous, every candidate named.
        best = charset_normalizer.from_bytes(head, cp_isolation=list(found)).best()
        if best is not None and best.encoding in found:
            return [found[best.encoding]]
    if found:
        return list(found.values())
    return [LATIN] if _latin_words(head) else []


def legacy_encoding(data: bytes) -> str:
    """The encoding bytes that are not UTF-8 were most likely written in, for the hint
    ``(a … file? save it as UTF-8)``: ``likely_encoding``'s, else ``Latin-1 or
    Windows-1252`` (t109: a Chengdu file in GBK was said to look Latin-1, which it is
    not)."""
    return likely_encoding(data) or LATIN


def likely_encoding(data: bytes) -> str | None:
    """``likely_encodings`` said in one phrase (``Big5 (…)``, ``GBK/GB18030 (…) or
    EUC-KR (…)``), or None when none fits (t112: Big5, Shift_JIS, EUC-KR, UTF-16 without
    a byte order mark and Latin-1 were said as GBK or not at all)."""
    names = likely_encodings(data)
    if len(names) > 2:
        return f"{', '.join(names[:-1])} or {names[-1]}"
    return " or ".join(names) if names else None


# A number written with a decimal comma (``1,5``, ``-12,25``), as European locales and
# spreadsheets write it; thousands separators (``1,000``) are not told apart from it.
_DECIMAL_COMMA = re.compile(r"\s*[-+]?[0-9]+,[0-9]+\s*")


def decimal_comma_hint(text: object) -> str:
    """`` (a decimal comma? send 1.5, with a point)`` for text that is a number written
    with a decimal comma, else ``""`` (t109: ``"1,5"`` got "expected a number" alone)."""
    if not isinstance(text, str) or not _DECIMAL_COMMA.fullmatch(text):
        return ""
    point, whole = text.strip().replace(",", "."), text.strip().replace(",", "")
    if len(text.strip().rsplit(",", 1)[1]) == 3:  # 1,000: a thousands separator too
        return f" (a decimal comma, {point}, or a thousands separator, {whole}? send it so)"
    return f" (a decimal comma? send {point}, with a point)"
