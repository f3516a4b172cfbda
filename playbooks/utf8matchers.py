"""How Alertmanager 0.27's UTF-8 matchers parser reads a ``matchers:`` entry (t113).

citybrain reads matchers as Alertmanager 0.25 does (``pkg/labels/parse.go``, the
"classic" parser). Alertmanager 0.27 added a second grammar (``matchers/parse``): label
names may be quoted and hold any UTF-8 (``"service.name"="api"``), and a quoted value is
a Go string literal (``strconv.Unquote``), so ``"a\\tb"`` is a, tab, b there and a,
backslash, t, b in 0.25. 0.27's default mode takes the classic reading when the two
differ (and logs "Matchers input has disagreement"); its ``utf8-strict-mode`` takes the
UTF-8 one. citybrain takes the classic reading too, and ``utf8_reading`` lets it warn of
such an entry, naming the matcher and both readings (playbooks/routing.py, read_apart),
so a routing file written for UTF-8 matchers never routes otherwise without a word.

Compared with 0.27's own parser by ``tools/ammatchers`` in
``tests/integration/test_utf8_matchers_differential.py``. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

# Go's unicode.IsSpace (the lexer skips these between tokens).
_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
# The lexer's reserved runes: whitespace and these (matchers/parse/lexer.go, isReserved).
_RESERVED = frozenset("{}!=~,\\\"'`") | _SPACE
_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_HEX = frozenset("0123456789abcdefABCDEF")

Reading = list[tuple[str, str, str]]


class _Refused(Exception):
    """The UTF-8 parser refuses the entry (0.27 then falls back to the classic one)."""


def go_unquote(text: str) -> str:
    """A double-quoted Go string literal's value, as ``strconv.Unquote`` reads it and
    matchers/parse then checks it (valid UTF-8). Raises ValueError where Go errs: a line
    feed, an unescaped quote, an unknown escape (``\\d``, ``\\'``), a short ``\\x``/``\\u``
    or octal escape, a code point past U+10FFFF or a surrogate, invalid UTF-8 bytes."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ValueError("not a quoted string")
    body = text[1:-1]
    if "\n" in body:
        raise ValueError("line feed in a quoted string")
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char == '"':
            raise ValueError("unescaped quote")
        if char != "\\":
            out += char.encode("utf-8", "surrogatepass")
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("backslash at the end")
        kind = body[i + 1]
        i += 2
        if kind in _SIMPLE:
            out.append(_SIMPLE[kind])
        elif kind in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[kind]
            digits = body[i : i + size]
            if len(digits) < size or not set(digits) <= _HEX:
                raise ValueError(f"short \\{kind} escape")
            i += size
            value = int(digits, 16)
            if kind == "x":
                out.append(value)  # a byte, not a code point
            elif value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise ValueError("not a code point")
            else:
                out += chr(value).encode("utf-8")
        elif kind in "01234567":
            digits = body[i - 1 : i + 2]
            if len(digits) < 3 or not set(digits) <= set("01234567"):
                raise ValueError("short octal escape")
            i += 2
            value = int(digits, 8)
            if value > 255:
                raise ValueError("octal escape over 255")
            out.append(value)
        else:
            raise ValueError(f"unknown escape \\{kind}")
    try:
        return out.decode("utf-8")  # strict: surrogates and stray bytes are refused
    except UnicodeDecodeError:
        raise ValueError("invalid UTF-8") from None


def _tokens(text: str) -> list[tuple[str, str]]:
    """The lexer's tokens as (kind, text); kinds ``{ } , = != =~ !~ quoted unquoted``.
    Raises _Refused where the lexer errs (the parser reads to the end, so any lexer
    error refuses the entry)."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "{},":
            out.append((char, char))
            i += 1
        elif char in "=!":
            if text.startswith(("!=", "!~", "=~"), i):
                out.append((text[i : i + 2], text[i : i + 2]))
                i += 2
            elif char == "=":
                out.append(("=", "="))
                i += 1
            else:
                raise _Refused("! without = or ~")
        elif char == '"':
            j, escaped = i + 1, False
            while j < n:
                if escaped:
                    escaped = False
                elif text[j] == "\\":
                    escaped = True
                elif text[j] == '"':
                    break
                j += 1
            if j >= n:
                raise _Refused("unterminated quote")
            out.append(("quoted", text[i : j + 1]))
            i = j + 1
        elif char in _SPACE:
            i += 1
        elif char in _RESERVED:
            raise _Refused(f"reserved {char!r}")
        else:
            j = i
            while j < n and text[j] not in _RESERVED:
                j += 1
            out.append(("unquoted", text[i:j]))
            i = j
    return out


def _text(token: tuple[str, str]) -> str:
    kind, text = token
    if kind == "unquoted":
        return text
    try:
        return go_unquote(text)
    except ValueError as exc:
        raise _Refused(str(exc)) from None


def utf8_reading(text: str, compiles: Any) -> Reading | None:
    """The matchers Alertmanager 0.27's UTF-8 parser (``matchers/parse``) reads from one
    entry, as (name, operator, value) in order, or None where it refuses the entry.
    ``compiles(regex)`` says whether Go compiles a regex (``labels.NewMatcher`` refuses
    the entry otherwise)."""
    try:
        tokens = _tokens(text)
    except _Refused:
        return None
    found: Reading = []
    i = 0
    brace = bool(tokens) and tokens[0][0] == "{"
    i += brace

    def at(k: int) -> str:
        return tokens[k][0] if k < len(tokens) else "eof"

    try:
        if at(i) == "}" or (at(i) == "eof"):
            # `{}` or nothing: no matchers; `{` alone or `}` alone is refused.
            if brace != (at(i) == "}"):
                return None
            return found if at(i + brace) == "eof" else None
        while True:
            if at(i) not in ("quoted", "unquoted"):
                return None
            name = _text(tokens[i])
            op = at(i + 1)
            if op not in ("=", "!=", "=~", "!~"):
                return None
            if at(i + 2) not in ("quoted", "unquoted"):
                return None
            value = _text(tokens[i + 2])
            if op in ("=~", "!~") and not compiles(f"^(?:{value})$"):
                return None
            found.append((name, op, value))
            i += 3
            if at(i) == ",":
                i += 1
                if at(i) in ("quoted", "unquoted"):
                    continue
                if at(i) not in ("}", "eof"):
                    return None
            if at(i) == "eof":
                return None if brace else found
            if at(i) == "}" and brace and at(i + 1) == "eof":
                return found
            return None
    except _Refused:
        return None


_REGEX_META = frozenset("\\.+*?()|[]{}^$")
_REGEX_CONTROLS = {"a": "\a", "f": "\f", "t": "\t", "n": "\n", "r": "\r", "v": "\v"}


def regex_form(regex: str) -> str:
    """``regex`` with the escapes that stand for one plain character written as it
    (``\\t`` a tab, ``\\x41`` an A; a metacharacter stays escaped, ``\\x2e`` is
    ``\\.``), so that two regexes the UTF-8 and the classic parser read apart only in
    such spellings (``"\\t"``: the regex ``\\t`` in 0.25, a tab in 0.27) compare equal.
    Any other escape (``\\b``, ``\\d``) is kept as written."""
    out: list[str] = []
    i, n = 0, len(regex)
    while i < n:
        char = regex[i]
        if char != "\\" or i + 1 >= n:
            out.append(char)
            i += 1
            continue
        kind = regex[i + 1]
        digits = regex[i + 2 : i + 4]
        if kind in _REGEX_CONTROLS:
            out.append(_REGEX_CONTROLS[kind])
            i += 2
        elif kind == "x" and len(digits) == 2 and set(digits) <= _HEX and int(digits, 16) < 0x80:
            plain = chr(int(digits, 16))
            out.append("\\" + plain if plain in _REGEX_META else plain)
            i += 4
        else:
            out.append(regex[i : i + 2])
            i += 2
    return "".join(out)


def same_reading(utf8: Reading, classic: Reading) -> bool:
    """Whether the two parsers' readings of one entry select the same alerts: equal
    names and operators, equal values, regexes equal up to ``regex_form``."""
    if len(utf8) != len(classic):
        return False
    for (name, op, value), (name2, op2, value2) in zip(utf8, classic, strict=True):
        if (name, op) != (name2, op2):
            return False
        if op in ("=~", "!~"):
            if regex_form(value) != regex_form(value2):
                return False
        elif value != value2:
            return False
    return True
