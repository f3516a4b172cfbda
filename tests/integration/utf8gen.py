"""Matcher entries at the seam between Alertmanager 0.25's matcher grammar and 0.27's
UTF-8 one (t113), which the other generators do not reach: they escape values the way
0.25 reads them (``\\\\``, ``\\n``, ``\\"``) or leave a spurious backslash before a letter
Go's string literals do not know (``\\s``, ``\\d``), so 0.27's UTF-8 parser either reads
their entries alike or refuses them.

From a seed: label names bare, quoted (``"kind"``) or dotted (``kind.x``, any UTF-8 in
quotes); every Go string-literal escape (``\\a \\b \\f \\r \\t \\v \\xHH \\ooo \\uHHHH
\\UHHHHHHHH``, valid and short or out of range) beside 0.25's own and spurious ones, in
equality values and in regexes (``\\b`` a word boundary or a backspace, ``\\x2e`` a dot or
any character); bare values (after a Unicode space now and then), braces, trailing commas, spaces, literal tabs. Pure.
"""

from __future__ import annotations

import random

NAMES = ("kind", "severity", "category", "district")
ODD_NAMES = ('"kind"', '"category"', "kind.x", '"service.name"', '"Zürich"', '"k\\x69nd"')
OPS = ("=", "!=", "=~", "!~")
# Pieces of a quoted value as written between the quotes.
GO_ESCAPES = (
    "\\a",
    "\\b",
    "\\f",
    "\\r",
    "\\t",
    "\\v",
    "\\x41",
    "\\x2e",
    "\\x2a",
    "\\xc3\\xa9",
    "\\xff",
    "\\x4",
    "\\101",
    "\\056",
    "\\400",
    "\\u00e9",
    "\\u002e",
    "\\ud800",
    "\\U0001F30A",
    "\\U00110000",
    "\\'",
)
CLASSIC_ESCAPES = ("\\\\", "\\n", '\\"', "\\s", "\\d", "\\w", "\\pL", "\\.", "\\Q")
PLAIN = ("a", "b", "x", "é", " ", "\t", ",", ".", "*", "=", "{", "}", "|", "water_level")


def value_text(rng: random.Random) -> str:
    """A value as written in the entry: quoted (mostly) with escapes, or bare."""
    if rng.random() < 0.15:
        bare = "".join(rng.choice(("a", "b", "x", "é", ".", "*")) for _ in range(rng.randint(1, 4)))
        # Spaces Go's TrimSpace and the UTF-8 lexer skip and the classic grammar's \s
        # (ASCII) does not: 0.25 keeps a leading one in the value, 0.27 does not.
        return rng.choice(("", "", "\u2028", "\xa0", "\u3000")) + bare
    pieces: list[str] = []
    for _ in range(rng.randint(0, 5)):
        pool = rng.choice((GO_ESCAPES, CLASSIC_ESCAPES, PLAIN, PLAIN))
        pieces.append(rng.choice(pool))
    return '"' + "".join(pieces) + '"'


def matcher_text(rng: random.Random) -> str:
    name = rng.choice(ODD_NAMES) if rng.random() < 0.1 else rng.choice(NAMES)
    space = rng.choice(("", "", " "))
    return f"{name}{space}{rng.choice(OPS)}{space}{value_text(rng)}"


def entry(rng: random.Random) -> str:
    """One ``matchers:`` entry: one to three matchers, sometimes in braces, sometimes
    with a trailing comma."""
    body = rng.choice((",", ", ")).join(matcher_text(rng) for _ in range(rng.choice((1, 1, 2, 3))))
    if rng.random() < 0.1:
        body += ","
    return "{" + body + "}" if rng.random() < 0.3 else body
