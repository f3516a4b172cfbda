"""A grammar-based random generator of Go regexp / RE2 syntax, and of label values built to
hit what it generates, for differential tests against Alertmanager
(tests/integration/test_routing_differential.py).

Each generated node renders its regex text and can sample a string it (roughly) matches:
samples are then mutated (case and Unicode case-fold variants, a newline or other space
inserted, a character dropped or doubled, a combining mark added) so that values fall on
both sides of each regex's edges. Literals and values use characters assigned by Unicode
13 (Go 1.19's tables, Alertmanager 0.25 as Debian builds it): characters assigned later
are the documented difference (docs/playbooks.md) and are swept separately.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

# Characters with case-folding edges (Kelvin sign, long s, sharp s, final sigma, the
# iota subscript, dotted/dotless i, titlecase digraphs, Cherokee, ligatures), combining
# marks, digits of other scripts, spaces Go's \s does not know, astral characters.
FOLDS = [
    "k", "K", "\u212a", "s", "S", "\u017f", "\u00df", "\u1e9e", "\u03c3", "\u03a3", "\u03c2",
    "\u0345", "\u03b9", "\u0399", "\u1fbe", "\u0130", "\u0131", "i", "I", "\u00b5", "\u03bc",
    "\u039c", "\u01c4", "\u01c5", "\u01c6", "\u13a0", "\uab70", "\u1c80", "\u0432", "\u0412",
    "\ufb05", "\ufb06", "\u00c5", "\u00e5", "\u212b", "\u03b8", "\u03d1", "\u03f4", "\u0398",
    "\u1e9b", "\u1e61", "\u2126", "\u03c9", "\u00e9", "\u00c9", "\u0149", "\u1f80", "\u1f88",
    "\u10d0", "\u1c90", "\u2c00", "\u2c30", "\U00010400", "\U00010428", "\U0001e900",
    "\U0001e922", "\u024d", "\u024c", "\ua64b", "\u1c88",
    # Folded together since Unicode 15.1 (RE2), not in Unicode 13 (Go 1.19).
    "\u0390", "\u1fd3", "\u03b0", "\u1fe3",
]  # fmt: skip
MARKS = ["\u0301", "\u0308", "\u20dd", "\u0903", "\u0345", "\u200d", "\ufe0f"]
DIGITS = ["0", "1", "9", "\u0663", "\u06f3", "\u07c3", "\u0966", "\uff13", "\U0001d7ce", "\u2163"]
SPACES = [" ", "\t", "\n", "\r", "\v", "\f", "\x85", "\xa0", "\u2028", "\u3000", "\u1680"]
OTHER = [
    "a", "b", "c", "x", "y", "z", "A", "B", "Z", "_", "-", ".", ",", "!", "~", "=", "'", '"',
    "\\", "/", "(", ")", "[", "]", "{", "}", "*", "+", "?", "|", "^", "$", "\x01", "\x7f",
    "\u00a9", "\u20ac", "\U0001f6d1", "\U0001d518", "\u4e2d", "\u05d0", "\u0627", "\u0e01",
    "\ufffd", "\ue000", "\U000f0000", "\ufeff", "\u00ad", "\u2160", "\u2170", "\u24b6",
    "\u24d0", "\u0378",  # unassigned in every Unicode version
    # Classed otherwise since Unicode 14: Mn then Mc; Common then Han.
    "\u1734", "\U00016fe2", "\U00016fe3",
]  # fmt: skip
CHARS = FOLDS + MARKS + DIGITS + SPACES + OTHER
# Literals written as themselves in a regex: no metacharacter, no raw line break.
PLAIN = [
    c
    for c in CHARS
    if c not in "\\.+*?()|[]{}^$" and c not in SPACES[2:] and c not in ("\x85", "\u2028")
]
META = "\\.+*?()|[]{}^$"

CATEGORIES = [
    "L", "Lu", "Ll", "Lt", "Lm", "Lo", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No", "P",
    "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "S", "Sm", "Sc", "Sk", "So", "Z", "Zs", "Zl",
    "Zp", "C", "Cc", "Cf", "Co", "Cs",
]  # fmt: skip
SCRIPTS = [
    "Greek", "Latin", "Cyrillic", "Cherokee", "Arabic", "Han", "Common", "Inherited",
    "Georgian", "Glagolitic", "Deseret", "Adlam", "Devanagari", "Hebrew", "Thai",
    "Braille", "Coptic", "Hanunoo",
]  # fmt: skip
POSIX = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print",
    "punct", "space", "upper", "word", "xdigit",
]  # fmt: skip
PERL = ["\\d", "\\D", "\\w", "\\W", "\\s", "\\S"]


@dataclass
class Node:
    """A regex fragment: its text and a sampler of strings it (roughly) matches."""

    text: str
    sample: Callable[[random.Random], str]


def _const(value: str) -> Callable[[random.Random], str]:
    return lambda rng: value


def _pick(pool: list[str]) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(pool) if pool else ""


def literal(rng: random.Random) -> Node:
    roll = rng.random()
    if roll < 0.55:
        c = rng.choice(PLAIN)
        return Node(c, _const(c))
    if roll < 0.7:
        c = rng.choice(META + "-/,")
        return Node("\\" + c, _const(c))
    if roll < 0.8:
        text, value = rng.choice(
            [("\\n", "\n"), ("\\t", "\t"), ("\\r", "\r"), ("\\f", "\f"), ("\\v", "\v"),
             ("\\a", "\a")]
        )  # fmt: skip
        return Node(text, _const(value))
    c = rng.choice(CHARS)
    form = rng.random()
    if ord(c) < 0x100 and form < 0.3:
        return Node(f"\\x{ord(c):02X}" if rng.random() < 0.5 else f"\\x{ord(c):02x}", _const(c))
    if ord(c) < 0o400 and form < 0.45:
        return Node(f"\\{ord(c):03o}", _const(c))
    return Node(f"\\x{{{ord(c):X}}}", _const(c))


def quoted(rng: random.Random) -> Node:
    body = "".join(rng.choice(CHARS[:-12] + list("\\.*()[]|")) for _ in range(rng.randint(0, 4)))
    body = body.replace("\\E", "")
    body = body.replace("\n", "")
    if body.endswith("\\"):
        body = body[:-1]
    end = "\\E" if rng.random() < 0.9 else ""
    return Node(f"\\Q{body}{end}", _const(body))


def class_item(rng: random.Random) -> tuple[str, list[str]]:
    """One item of a bracketed class: its text and characters in it."""
    roll = rng.random()
    if roll < 0.35:
        c = rng.choice(PLAIN)
        if c in "-^":
            return "\\" + c, [c]
        return c, [c]
    if roll < 0.5:
        lo, hi = sorted(rng.sample(CHARS, 2), key=ord)
        if lo == hi:
            return f"\\x{{{ord(lo):X}}}", [lo]

        def side(c: str) -> str:
            return c if c in PLAIN and c not in "-^" else f"\\x{{{ord(c):X}}}"

        return f"{side(lo)}-{side(hi)}", [lo, hi, chr((ord(lo) + ord(hi)) // 2)]
    if roll < 0.62:
        name = rng.choice(POSIX)
        neg = "^" if rng.random() < 0.2 else ""
        return f"[:{neg}{name}:]", []
    if roll < 0.74:
        return rng.choice(PERL), []
    if roll < 0.86:
        return unicode_class(rng).text, []
    c = rng.choice(["\\n", "\\t", "\\]", "\\[", "\\-", "\\\\", "\\^", "\\.", "\\v", "\\f"])
    return c, [c[1] if c[1] in "][\\-^." else {"n": "\n", "t": "\t", "v": "\v", "f": "\f"}[c[1]]]


def bracket(rng: random.Random) -> Node:
    items = [class_item(rng) for _ in range(rng.randint(1, 4))]
    negated = rng.random() < 0.3
    text = "[" + ("^" if negated else "") + "".join(t for t, _ in items) + "]"
    if text in ("[]", "[^]"):
        text = "[a]"
    chars = [c for _, cs in items for c in cs]
    pool = chars + FOLDS[:12] if not negated else CHARS
    return Node(text, _pick(pool))


def unicode_class(rng: random.Random) -> Node:
    name = rng.choice(CATEGORIES + SCRIPTS)
    upper = rng.random() < 0.25
    caret = "^" if rng.random() < 0.1 else ""
    if len(name) == 1 and not caret and rng.random() < 0.5:
        text = f"\\{'P' if upper else 'p'}{name}"
    else:
        text = f"\\{'P' if upper else 'p'}{{{caret}{name}}}"
    return Node(text, _pick(CHARS))


def atom(rng: random.Random, depth: int) -> Node:
    roll = rng.random()
    if roll < 0.38:
        return literal(rng)
    if roll < 0.43:
        return quoted(rng)
    if roll < 0.5:
        return Node(".", _pick(CHARS))
    if roll < 0.58:
        return Node(rng.choice(PERL), _pick(CHARS))
    if roll < 0.66:
        return bracket(rng)
    if roll < 0.72:
        return unicode_class(rng)
    if roll < 0.8:
        text = rng.choice(["^", "$", "\\A", "\\z", "\\b", "\\B"])
        return Node(text, _const(""))
    if roll < 0.84:
        flags = rng.choice(["i", "s", "m", "U", "is", "im", "-i", "i-s", "sm", "-m", "iU"])
        return Node(f"(?{flags})", _const(""))
    if depth >= 3:
        return literal(rng)
    inner = alternation(rng, depth + 1)
    kind = rng.random()
    if kind < 0.3:
        head = "("
    elif kind < 0.55:
        head = "(?:"
    elif kind < 0.65:
        head = f"(?P<g{rng.randint(0, 9)}>"
    else:
        flags = rng.choice(["i", "s", "m", "U", "-i", "is", "i-s", "ms", "-s", "im"])
        head = f"(?{flags}:"
    return Node(head + inner.text + ")", inner.sample)


def quantified(rng: random.Random, depth: int) -> Node:
    node = atom(rng, depth)
    if rng.random() > 0.3:
        return node
    roll = rng.random()
    if roll < 0.25:
        op, low, high = "*", 0, 3
    elif roll < 0.45:
        op, low, high = "+", 1, 3
    elif roll < 0.6:
        op, low, high = "?", 0, 1
    else:
        low = rng.randint(0, 3)
        high = low + rng.randint(0, 3)
        form = rng.random()
        if form < 0.4:
            op = f"{{{low}}}"
            high = low
        elif form < 0.6:
            op, high = f"{{{low},}}", low + 2
        else:
            op = f"{{{low},{high}}}"
    if rng.random() < 0.25:
        op += "?"

    def sample(r: random.Random) -> str:
        return "".join(node.sample(r) for _ in range(r.randint(low, high)))

    return Node(node.text + op, sample)


def concat(rng: random.Random, depth: int) -> Node:
    pieces = [quantified(rng, depth) for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4]))]
    text = "".join(p.text for p in pieces)

    def sample(r: random.Random) -> str:
        return "".join(p.sample(r) for p in pieces)

    return Node(text, sample)


def alternation(rng: random.Random, depth: int = 0) -> Node:
    branches = [concat(rng, depth) for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))]
    text = "|".join(b.text for b in branches)

    def sample(r: random.Random) -> str:
        return r.choice(branches).sample(r)

    return Node(text, sample)


def regex(rng: random.Random) -> Node:
    """A random regex (often with a leading flag group, as operators write them)."""
    node = alternation(rng)
    if rng.random() < 0.15:
        flags = rng.choice(["(?i)", "(?s)", "(?m)", "(?U)", "(?is)", "(?ms)", "(?i)(?m)"])
        return Node(flags + node.text, node.sample)
    return node


def _fold_variant(c: str, rng: random.Random) -> str:
    options = {c.lower(), c.upper(), c.casefold(), c.title()}
    options = {o for o in options if len(o) == 1}
    for group in (
        "kK\u212a", "sS\u017f", "\u00df\u1e9e", "\u03c3\u03a3\u03c2", "\u0345\u03b9\u0399\u1fbe",
        "\u00b5\u03bc\u039c", "\u01c4\u01c5\u01c6", "\u13a0\uab70", "\u1c80\u0432\u0412",
        "\u00c5\u00e5\u212b", "\u03b8\u03d1\u03f4\u0398", "\u1e9b\u1e61\u1e60", "\u2126\u03c9",
        "\u1c88\ua64b\ua64a", "iI\u0130\u0131", "\u0390\u1fd3", "\u03b0\u1fe3",
        "\ufb05\ufb06",
    ):  # fmt: skip
        if c in group:
            options |= set(group)
    return rng.choice(sorted(options)) if options else c


def mutate(value: str, rng: random.Random) -> str:
    """A value near ``value``: a case or case-fold variant, an inserted space, newline,
    mark or digit, a dropped or doubled character."""
    chars = list(value)
    for _ in range(rng.choice([1, 1, 2, 3])):
        roll = rng.random()
        at = rng.randint(0, len(chars))
        if roll < 0.35 and chars:
            i = rng.randrange(len(chars))
            chars[i] = _fold_variant(chars[i], rng)
        elif roll < 0.55:
            chars.insert(at, rng.choice(SPACES + MARKS))
        elif roll < 0.7 and chars:
            del chars[rng.randrange(len(chars))]
        elif roll < 0.8 and chars:
            i = rng.randrange(len(chars))
            chars.insert(i, chars[i])
        else:
            chars.insert(at, rng.choice(CHARS))
    return "".join(chars)


def values_for(nodes: list[Node], rng: random.Random, count: int) -> list[str]:
    """``count`` distinct label values (no NUL): samples of the regexes, their mutations,
    and a few fixed edges (empty, a lone newline, spaces)."""
    out = dict.fromkeys(["", "\n", " ", "a", "\u212a", "\u017f", "\u0663", "\v", "\f"])
    while len(out) < count:
        node = rng.choice(nodes)
        value = node.sample(rng)
        if rng.random() < 0.6:
            value = mutate(value, rng)
        if len(value) <= 40:
            out[value.replace("\x00", "")] = None
    return list(out)[:count]


# Repetition counts (trial 23): where Go's parser and RE2's differ is at the edges of the
# counts, not in the characters, so this grammar is all counts: nested groups repeated
# near the bound of 1,000 (one count, and counts multiplied down the tree), {0} and
# {0,0} (Go does not look inside them), counts of ten digits or more (Go refuses them,
# RE2 reads them as text) and leading zeros (both read the braces as text).
SMALL_COUNTS = ["0", "0", "1", "2", "3"]
EDGE_COUNTS = [
    "10", "31", "32", "33", "100", "333", "334", "500", "501", "999", "1000", "1001", "00",
    "01", "1000000000", "",
]  # fmt: skip
COUNTED_ATOMS = ["a", "b", "[ab]", "."]
MAX_SAMPLE = 3000  # longer samples are dropped (and so are their regexes' values)


def _count_op(rng: random.Random) -> tuple[str, int | None, int | None]:
    """A quantifier's text and the (min, max) Go reads it as (max None: no bound; both
    None: Go reads the braces as literal text, leading zeros or no digits)."""
    roll = rng.random()
    if roll < 0.15:
        op, low, high = rng.choice([("*", 0, None), ("+", 1, None), ("?", 0, 1)])
    else:
        low_text, high_text = (
            rng.choice(EDGE_COUNTS if rng.random() < 0.12 else SMALL_COUNTS) for _ in range(2)
        )
        digits = low_text.isdigit() and high_text.isdigit()
        if digits and int(high_text) < int(low_text) and rng.random() < 0.9:
            low_text, high_text = high_text, low_text  # mostly a range, now and then empty
        form = rng.random()
        op = (
            f"{{{low_text}}}"
            if form < 0.5
            else f"{{{low_text},}}"
            if form < 0.65
            else f"{{{low_text},{high_text}}}"
        )

        def number(text: str) -> int | None:
            if not text or (len(text) > 1 and text[0] == "0"):
                return None
            return int(text)

        low = number(low_text)
        high = low if form < 0.5 else None if form < 0.65 else number(high_text)
        if low is None or (form >= 0.65 and high is None):
            return op, None, None  # literal text to Go and RE2 alike
    if rng.random() < 0.2:
        op += "?"
    return op, low, high


def counted(rng: random.Random, depth: int = 0) -> Node:
    """A regex of nested, counted repetitions: alternations of concatenations of atoms
    and groups, each maybe quantified."""
    branches = [_counted_concat(rng, depth) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    return Node("|".join(b.text for b in branches), lambda r: r.choice(branches).sample(r))


def _counted_concat(rng: random.Random, depth: int) -> Node:
    pieces = [_counted_piece(rng, depth) for _ in range(rng.choice([1, 1, 2, 3]))]
    return Node("".join(p.text for p in pieces), lambda r: "".join(p.sample(r) for p in pieces))


def _counted_piece(rng: random.Random, depth: int) -> Node:
    if depth < 3 and rng.random() < 0.5:
        inner = counted(rng, depth + 1)
        head = rng.choice(["(", "(?:", "(?P<g>", "(?i:", "(?U:"])
        atom = Node(f"{head}{inner.text})", inner.sample)
    else:
        text = rng.choice(COUNTED_ATOMS)
        atom = Node(text, _const("a" if text in "[ab]." else text))
    if rng.random() < 0.3:
        return atom
    op, low, high = _count_op(rng)
    if low is None:
        return Node(atom.text + op, lambda r: atom.sample(r) + op)

    def sample(r: random.Random) -> str:
        reps = low if high is None or high < low or r.random() < 0.5 else r.randint(low, high)
        reps = min(reps, MAX_SAMPLE)
        out = ""
        for _ in range(reps):
            out += atom.sample(r)
            if len(out) > MAX_SAMPLE:
                break
        return out

    return Node(atom.text + op, sample)


def counted_values(nodes: list[Node], rng: random.Random, count: int) -> list[str]:
    """``count`` distinct values for counted regexes: samples (up to MAX_SAMPLE long),
    each maybe a character longer or shorter, and short strings of a, b and braces."""
    out = dict.fromkeys(["", "a", "b", "aa", "ab", "a{01}", "{"])
    while len(out) < count:
        value = rng.choice(nodes).sample(rng) if rng.random() < 0.7 else ""
        if not value or rng.random() < 0.3:
            value += "".join(rng.choice("ab{}0,1") for _ in range(rng.randint(0, 6)))
        elif rng.random() < 0.4:
            value = value[1:] if rng.random() < 0.5 else value + value[-1]
        if len(value) <= MAX_SAMPLE:
            out[value] = None
    return list(out)[:count]
