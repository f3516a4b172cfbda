"""Limits of Go's ``regexp/syntax`` parser (Alertmanager's regex engine) that RE2 does not
share, checked without Go: the parse-tree height limit and capture-group names; and the
few characters Unicode 13 (Go 1.19's tables) classes or folds otherwise than RE2's
Unicode 15.1 (``go_unicode``: classes written out as Go's, foldings refused).

Go (since 1.19.2, CVE-2022-41715; Alertmanager 0.25 as Debian builds it has Go 1.19.8)
refuses a regex whose parse tree is more than 1,000 nodes high ("expression nests too
deeply"); RE2 compiles it. Alertmanager compiles a matcher's regex wrapped as
``^(?:re)$``, one level more. Go also allows only ASCII letters, digits and ``_`` in a
``(?P<name>…)``, where RE2 allows any Unicode word character.

The height is computed on the tree Go's parser builds: a capture, a repetition, a concat
of two or more pieces and an alternation of two or more branches each add a level;
``(?:…)`` and flag groups add none (Go flattens a concat into a concat and an alternation
into an alternation); a run of literal characters is one leaf; and an alternation is
factored as Go's parser factors it: common literal prefixes (``ab|acX`` is
``a(?:b|cX)``, a level higher), common leading classes, runs of single characters (one
class) and of empty branches. Not followed: case-folding flags (a prefix in ``(?i)`` compares as
written) and fixed repetitions as common leading pieces; escapes compare as written
(``\\x61`` is not ``a``). Tested against Alertmanager in
tests/integration/test_routing_differential.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_HEIGHT = 1000  # regexp/syntax maxHeight
# Leaves Go's alternation collapses into one character class: a single literal
# character, a class, an escape class (\d, \pL, …) or `.`.
_CHAR, _RUN, _OTHER = "char", "run", "other"
_CLASS_ESCAPES = set("dDwWsSpP")
_ANCHOR_ESCAPES = set("bBAz")


@dataclass
class _Piece:
    """One piece of a branch (a concat's member): its height and kind (_RUN: literal
    characters, ``tokens``; _CHAR: a class-like leaf, ``token`` its text; _OTHER), and
    for an alternation its factored branches (Go flattens an alternation that is a whole
    branch of another into it)."""

    height: int
    kind: str
    tokens: list[str] = field(default_factory=list)
    token: str = ""
    branches: list[list[_Piece]] | None = None
    # A run made by factoring is a view of another's tokens, tokens[start:stop], so that
    # factoring a long ladder of prefixes does not copy them at every level.
    start: int = 0
    stop: int | None = None

    def run(self) -> list[str]:
        return self.tokens[self.start : self.stop]

    def run_length(self) -> int:
        return (len(self.tokens) if self.stop is None else self.stop) - self.start


def _height(branch: list[_Piece]) -> int:
    """A branch's height: an empty match, its one piece, or a concat of its pieces."""
    if not branch:
        return 1
    if len(branch) == 1:
        return branch[0].height
    return 1 + max(p.height for p in branch)


def _char_key(branch: list[_Piece]) -> str | None:
    """The text of a branch that is one character or class (Go collapses runs of them
    into one class), or None."""
    if len(branch) != 1:
        return None
    piece = branch[0]
    if piece.kind == _RUN and piece.run_length() == 1:
        return piece.tokens[piece.start]
    return piece.token if piece.kind == _CHAR else None


def _lead(branch: list[_Piece]) -> _Piece | None:
    """The literal run a branch starts with (Go's leadingString), or None."""
    return branch[0] if branch and branch[0].kind == _RUN else None


def _common(prefix: _Piece | None, length: int, lead: _Piece | None) -> int:
    """How many of the first ``length`` characters of ``prefix`` ``lead`` starts with."""
    if prefix is None or lead is None:
        return 0
    same, most = 0, min(length, lead.run_length())
    while same < most and prefix.tokens[prefix.start + same] == lead.tokens[lead.start + same]:
        same += 1
    return same


def _node(pieces: list[_Piece]) -> _Piece:
    """The pieces as one node (a concat when several)."""
    if len(pieces) == 1:
        return pieces[0]
    return _Piece(_height(pieces), _OTHER)


class _TooDeep(Exception):
    """Factoring nested past MAX_HEIGHT levels: each adds a level, so the tree does too."""


def _factor(subs: list[list[_Piece]], depth: int) -> list[list[_Piece]]:
    """Go's ``factor`` on an alternation's branches, heights only: common literal
    prefixes, then common leading classes, then runs of single characters, then runs of
    empty branches."""
    out: list[list[_Piece]] = []
    prefix: _Piece | None = None
    length = start = i = 0
    while i <= len(subs):
        if i < len(subs):
            same = _common(prefix, length, _lead(subs[i]))
            if same:
                length, i = same, i + 1
                continue
        if i - start >= 2 and prefix is not None:
            rests = []
            for branch in subs[start:i]:
                first = branch[0]
                rest = _Piece(1, _RUN, first.tokens, start=first.start + length, stop=first.stop)
                rests.append(([rest] if rest.run_length() else []) + branch[1:])
            head = _Piece(1, _RUN, prefix.tokens, start=prefix.start, stop=prefix.start + length)
            out.append([head, _node(_alternate(rests, depth + 1))])
        else:
            out.extend(subs[start:i])
        start, prefix = i, _lead(subs[i]) if i < len(subs) else None
        length = prefix.run_length() if prefix is not None else 0
        i += 1
    subs, out = out, []
    start = 0
    for i in range(len(subs) + 1):
        key = _char_key(subs[i][:1]) if i < len(subs) else None
        if i < len(subs) and key is not None and key == _char_key(subs[start][:1]):
            continue
        if i - start >= 2:
            rests = [branch[1:] for branch in subs[start:i]]
            out.append([subs[start][0], _node(_alternate(rests, depth + 1))])
        else:
            out.extend(subs[start:i])
        start = i
    merged: list[list[_Piece]] = []
    for branch in out:
        last = merged[-1] if merged else None
        if last is not None and _char_key(last) is not None and _char_key(branch) is not None:
            merged[-1] = [_Piece(1, _CHAR, token=f"[{_char_key(last)}{_char_key(branch)}]")]
        elif last is not None and not last and not branch:
            continue  # a run of empty branches is one
        else:
            merged.append(branch)
    return merged


def _alternate(branches: list[list[_Piece]], depth: int = 0) -> list[_Piece]:
    """The pieces an alternation of ``branches`` adds to its parent's branch: its one
    branch's pieces when factoring leaves one, else one alternation node."""
    flat: list[list[_Piece]] = []
    for branch in branches:
        if len(branch) == 1 and branch[0].branches is not None:
            flat.extend(branch[0].branches)
        else:
            flat.append(branch)
    if depth > MAX_HEIGHT:
        raise _TooDeep
    subs = _factor(flat, depth)
    if len(subs) == 1:
        return subs[0]
    return [_Piece(1 + max(_height(b) for b in subs), _OTHER, branches=subs)]


@dataclass
class _Frame:
    """One open group: capturing or not, its finished branches and the current one."""

    capture: bool
    branches: list[list[_Piece]] = field(default_factory=list)
    pieces: list[_Piece] = field(default_factory=list)

    def literal(self, token: str) -> None:
        last = self.pieces[-1] if self.pieces else None
        if last is not None and last.kind == _RUN:
            if last.start or last.stop is not None:  # a view: extended as its own copy
                last.tokens, last.start, last.stop = last.run(), 0, None
            last.tokens.append(token)
        else:
            self.pieces.append(_Piece(1, _RUN, tokens=[token]))

    def leaf(self, kind: str, token: str = "") -> None:
        self.pieces.append(_Piece(1, kind, token=token))

    def repeat(self) -> None:
        if not self.pieces:
            return  # a repetition of nothing: both engines refuse it
        last = self.pieces[-1]
        if last.kind == _RUN and last.run_length() > 1:
            # A repetition applies to the run's last character only.
            last.tokens, last.start, last.stop = last.run()[:-1], 0, None
            self.pieces.append(_Piece(2, _OTHER))
        else:
            self.pieces[-1] = _Piece(last.height + 1, _OTHER)

    def end_branch(self) -> None:
        self.branches.append(self.pieces)
        self.pieces = []

    def close(self) -> list[_Piece]:
        """The pieces the closed group adds to its parent's branch: a capture's one
        node; a ``(?:…)`` group's own pieces (Go flattens a concat into a concat) or its
        alternation."""
        if self.branches:
            self.end_branch()
            pieces = _alternate(self.branches)
        else:
            pieces = self.pieces
        if self.capture:
            return [_Piece(_height(pieces) + 1, _OTHER)]
        return pieces


def _class_end(value: str, i: int) -> int:
    """The index after the ``]`` closing the class opened at ``value[i]``."""
    n = len(value)
    i += 1
    if value.startswith("^", i):
        i += 1
    if value.startswith("]", i):
        i += 1
    while i < n and value[i] != "]":
        if value.startswith("[:", i):
            end = value.find(":]", i + 2)
            i = end + 2 if end >= 0 else i + 1
        elif value[i] == "\\":
            i += 2
        else:
            i += 1
    return i + 1


def _repeat_end(value: str, i: int) -> int:
    """The index after ``{n}``, ``{n,}`` or ``{n,m}`` at ``value[i]``, or ``i`` when it is
    not one (then ``{`` is a literal, as in Go)."""
    end = value.find("}", i)
    if end < 0:
        return i
    body = value[i + 1 : end]
    low, _, high = body.partition(",")
    if low.isdigit() and low.isascii() and (not high or (high.isdigit() and high.isascii())):
        return end + 1
    return i


def tree_height(value: str) -> _Frame:
    """The parse of ``value`` as Go's parser shapes it, as the top group's frame, heights
    only (a leaf is 1). Iterative, so a regex nested any depth is read without
    recursion."""
    stack = [_Frame(capture=False)]
    i, n = 0, len(value)
    while i < n:
        char = value[i]
        top = stack[-1]
        if char == "\\" and i + 1 < n:
            following = value[i + 1]
            if following == "Q":
                end = value.find("\\E", i + 2)
                text = value[i + 2 : n if end < 0 else end]
                for token in text:
                    top.literal(token)
                i = n if end < 0 else end + 2
                continue
            if following in _CLASS_ESCAPES:
                if following in "pP" and value.startswith("{", i + 2):
                    end = value.find("}", i + 3)
                    end = n if end < 0 else end + 1
                else:
                    end = i + (3 if following in "pP" else 2)
                top.leaf(_CHAR, value[i:end])
                i = end
                continue
            if following in _ANCHOR_ESCAPES:
                top.leaf(_OTHER)
                i += 2
                continue
            if following == "x" and value.startswith("{", i + 2):
                end = value.find("}", i + 3)
                end = n if end < 0 else end + 1
            else:
                end = i + (4 if following == "x" else 2)
            top.literal(value[i:end])
            i = end
            continue
        if char == "[":
            end = _class_end(value, i)
            top.leaf(_CHAR, value[i:end])
            i = end
            continue
        if char == "(":
            if value.startswith("(?", i):
                close = value.find(")", i)
                colon = value.find(":", i)
                named = value.startswith(("(?P<", "(?<"), i)
                if named:
                    i = value.find(">", i) + 1 or n
                    stack.append(_Frame(capture=True))
                elif 0 <= colon < close or close < 0:
                    i = colon + 1 if colon >= 0 else n
                    stack.append(_Frame(capture=False))
                else:
                    i = close + 1  # (?flags): no node
                continue
            stack.append(_Frame(capture=True))
            i += 1
            continue
        if char == ")" and len(stack) > 1:
            i += 1
            quantified = value.startswith(("*", "+", "?"), i) or (
                value.startswith("{", i) and _repeat_end(value, i) > i
            )
            pieces = stack.pop().close()
            if quantified and (len(pieces) != 1 or pieces[0].run_length() > 1):
                # (?:ab*)* and (?:ab)* repeat the group: one node, not its last piece.
                pieces = [_Piece(_height(pieces), _OTHER)]
            stack[-1].pieces.extend(pieces)
            continue
        if char == "|":
            top.end_branch()
            i += 1
            continue
        if char in "*+?":
            top.repeat()
            i += 1
            if value.startswith("?", i):  # non-greedy: the same node
                i += 1
            continue
        if char == "{":
            end = _repeat_end(value, i)
            if end > i:
                top.repeat()
                i = end
                if value.startswith("?", i):
                    i += 1
                continue
        if char in ".^$":
            top.leaf(_CHAR if char == "." else _OTHER, char)
        else:
            top.literal(char)
        i += 1
    while len(stack) > 1:  # unbalanced: RE2 refuses it anyway
        stack[-2].pieces.extend(stack.pop().close())
    return stack[0]


def wrapped_height(value: str) -> int:
    """The height of the tree Go builds for ``^(?:value)$``, as Alertmanager compiles a
    matcher's regex: the anchors and the value's own pieces in one concat. Past
    MAX_HEIGHT levels of factoring it is MAX_HEIGHT + 1 (each level adds one)."""
    # Factoring recurses, two frames a level, up to MAX_HEIGHT levels before _TooDeep.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * MAX_HEIGHT + 1000))
    try:
        return _height([_Piece(1, _OTHER), *tree_height(value).close(), _Piece(1, _OTHER)])
    except _TooDeep:
        return MAX_HEIGHT + 1
    finally:
        sys.setrecursionlimit(limit)


def nesting_refusal(value: str) -> str | None:
    """Why Go refuses ``value`` wrapped as Alertmanager wraps it (``^(?:value)$``, one
    level higher) for nesting too deeply, or None."""
    height = wrapped_height(value)
    if height > MAX_HEIGHT:
        return (
            f"it nests too deeply for Go's regexp (a parse tree {height} levels high, at "
            f"most {MAX_HEIGHT} once Alertmanager wraps it in ^(?:…)$)"
        )
    return None


def capture_name_refusal(name: str) -> str | None:
    """Why Go refuses ``name`` as a ``(?P<name>…)`` group name, or None: Go allows ASCII
    letters, digits and ``_`` only."""
    if name and all(c == "_" or (c.isascii() and c.isalnum()) for c in name):
        return None
    return f"the group name {name!r} is not Go regexp syntax (ASCII letters, digits and _ only)"


# Repetition counts. Go's parser and RE2's read ``{n,m}`` alike but for two things
# (regexp/syntax parse.go against re2/parse.cc), found by the repetition fuzz of trial 23:
# - a count of ten or more digits: RE2 reads the whole ``{…}`` as literal text, Go
#   refuses it ("invalid repeat count"): ``a{1000000000}``;
# - the nested-repetition bound (counts multiplied down the tree at most 1,000): Go does
#   not look inside a repetition ``{0}`` or ``{0,0}`` (``repeatIsValid`` returns early),
#   RE2 does, so ``((a{2}){0}){1000}`` is a regex to Go (it matches only "") and not to
#   RE2. Such a ``(…){0}`` matches only the empty string: RE2 is given ``(?:)`` for it.
MAX_REPEAT = 1000  # both engines' bound on one count and on nested counts multiplied


def _go_int(value: str, i: int) -> tuple[int | None, int]:
    """Go's ``parseInt`` at ``value[i]``: (the number, -1 for ten digits or more; None
    when there is none or it has a leading zero) and the index after its digits."""
    end = i
    while end < len(value) and "0" <= value[end] <= "9":
        end += 1
    digits = value[i:end]
    if not digits or (len(digits) > 1 and digits[0] == "0"):
        return None, end
    return (int(digits) if len(digits) < 10 else -1), end


def go_repeat(value: str, i: int) -> tuple[int, int, int] | None:
    """Go's ``parseRepeat`` at the ``{`` of ``value[i]``: (min, max, index after ``}``),
    max -1 for ``{n,}`` and min -1 for a count too long to read; None when Go reads the
    ``{`` as a literal character."""
    low, j = _go_int(value, i + 1)
    if low is None or j >= len(value):
        return None
    high = low
    if value[j] == ",":
        j += 1
        if j >= len(value):
            return None
        if value[j] == "}":
            high = -1
        else:
            bound, j = _go_int(value, j)
            if bound is None:
                return None
            high = bound
            if high < 0:
                low = -1
    if j >= len(value) or value[j] != "}":
        return None
    return low, high, j + 1


def _scan(value: str) -> list[tuple[str, int, int]]:
    """The places of ``value`` outside classes and ``\\Q…\\E`` that the repetition rules
    look at: ``("{", start, end)`` for each counted repetition Go reads (``end`` after
    its ``}``), and ``("group", start, end)`` for each group, ``end`` after its ``)``."""
    found: list[tuple[str, int, int]] = []
    opened: list[int] = []
    i, n = 0, len(value)
    while i < n:
        char = value[i]
        if char == "\\":
            if value.startswith("Q", i + 1):
                end = value.find("\\E", i + 2)
                i = n if end < 0 else end + 2
            else:
                i += 2
        elif char == "[":
            i = _class_end(value, i)
        elif char == "(":
            close, colon = value.find(")", i), value.find(":", i)
            named = value.startswith(("(?P<", "(?<"), i)
            flags = value.startswith("(?", i) and not named and close >= 0
            if flags and not 0 <= colon < close:
                i = close + 1  # (?flags): no group
                continue
            opened.append(i)
            i += 1
        elif char == ")":
            if opened:
                found.append(("group", opened.pop(), i + 1))
            i += 1
        elif char == "{":
            repeat = go_repeat(value, i)
            if repeat is None:
                i += 1
            else:
                found.append(("{", i, repeat[2]))
                i = repeat[2]
        else:
            i += 1
    return found


def repeat_count_refusal(value: str) -> str | None:
    """Why Go refuses a count in ``value`` that RE2 reads as literal text (ten digits or
    more: ``a{1000000000}``), or None."""
    for kind, start, end in _scan(value):
        if kind == "{":
            low, _high, _ = go_repeat(value, start) or (0, 0, 0)
            if low < 0:
                return (
                    f"invalid repeat count {value[start:end]} (at most {MAX_REPEAT}; RE2 "
                    "would read it as text, Go's regexp refuses it)"
                )
    return None


def without_empty_repeats(value: str, compiles: Callable[[str], bool]) -> str:
    """``value`` with each group repeated ``{0}`` or ``{0,0}`` (lazy or not) written
    ``(?:)``, the empty match it stands for, so that RE2 judges the nested-repetition
    bound as Go does (Go does not look inside such a group). A group is replaced only when
    its own text, its inner such groups replaced, ``compiles`` (else Go refuses it too,
    and RE2 is left to say why), and only when no repetition follows (``_repeat_at``).
    Innermost first, without recursion: such groups may nest
    as deep as Go allows (about 1,000)."""
    found = _scan(value)
    repeats = {start: end for kind, start, end in found if kind == "{"}
    spans = []  # (start, end of the group, end of its repetition)
    for kind, start, end in found:
        if kind == "group" and end in repeats:
            low, high, after = go_repeat(value, end) or (1, 1, end)
            after += value.startswith("?", after)
            if (low, high) == (0, 0) and not _repeat_at(value, after):
                spans.append((start, end, after))
    if not spans:
        return value

    def reduced(start: int, stop: int, replaced: list[tuple[int, int]]) -> str:
        """value[start:stop] with the outermost replaced spans in it written (?:)."""
        out, at = [], start
        for begin, end in replaced:  # sorted by start; nested ones skipped
            if begin >= at and end <= stop:
                out += [value[at:begin], "(?:)"]
                at = end
        return "".join(out) + value[at:stop]

    replaced: list[tuple[int, int]] = []
    # Shorter spans first: a group's inner groups are decided before it.
    for start, group_end, end in sorted(spans, key=lambda span: span[2] - span[0]):
        inner = [(b, e) for b, e in replaced if start <= b and e <= group_end]
        if compiles(reduced(start, group_end, sorted(inner))):
            replaced.append((start, end))
    return reduced(0, len(value), sorted(replaced))


def _repeat_at(value: str, i: int) -> bool:
    """Whether a repetition operator starts at ``value[i]`` (``*``, ``+``, ``?`` or a
    count Go reads as one). One right after a group's ``{0}`` (``(a){0}*``) stacks two
    repetitions, which Go refuses ("invalid nested repetition operator") and RE2 too;
    written ``(?:)*`` it was taken (t160: a silence of ``severity!~"(a){0}*?"`` muted
    every alert with a severity, where Alertmanager refuses the silence)."""
    if value.startswith(("*", "+", "?"), i):
        return True
    return value.startswith("{", i) and go_repeat(value, i) is not None


# Unicode: Go 1.19 (Alertmanager 0.25 as Debian builds it) has Unicode 13's tables, RE2
# (google-re2) Unicode 15.1's. Besides the characters assigned since (the documented
# difference), a sweep of every code point through every class against amtool found
# these characters Unicode 13 already had, classed or folded differently since:
# - U+1734 HANUNOO SIGN PAMUDPOD: Mn in Unicode 13, Mc since 14;
# - U+16FE2 OLD CHINESE HOOK MARK and U+16FE3 OLD CHINESE ITERATION MARK: script Common
#   in Unicode 13, Han since 14;
# - three simple case foldings added in Unicode 15.1: U+0390 ΐ with U+1FD3 ΐ, U+03B0 ΰ
#   with U+1FE3 ΰ, and U+FB05 ﬅ with U+FB06 ﬆ (in Go each folds to itself only).
# The classes are translated (written out as Go's ranges); the foldings cannot be (RE2
# has no class subtraction) and are refused where they would matter.
GO_CLASS_CHANGES: dict[str, tuple[frozenset[int], frozenset[int]]] = {
    # name: (code points Go's table has and RE2's lacks, those RE2's has and Go's lacks)
    "Mn": (frozenset({0x1734}), frozenset()),
    "Mc": (frozenset(), frozenset({0x1734})),
    "Common": (frozenset({0x16FE2, 0x16FE3}), frozenset()),
    "Han": (frozenset(), frozenset({0x16FE2, 0x16FE3})),
}
FOLDS_SINCE_GO = {
    0x0390: 0x1FD3, 0x1FD3: 0x0390, 0x03B0: 0x1FE3, 0x1FE3: 0x03B0,
    0xFB05: 0xFB06, 0xFB06: 0xFB05,
}  # fmt: skip
MAX_RUNE = 0x10FFFF
Ranges = list[tuple[int, int]]


def _merge(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= MAX_RUNE:
        out.append((nxt, MAX_RUNE))
    return out


def _text(ranges: Ranges) -> str:
    return "".join(
        f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in ranges
    )


class ClassTables:
    """RE2's classes as code point ranges, read from RE2 itself: ``compile`` compiles a
    regex (RE2's), whose ``finditer`` runs over every code point. Cached."""

    def __init__(self, compile: Callable[[str], Any]) -> None:
        self._compile = compile
        self._all = ""
        self._cache: dict[tuple[str, bool], Ranges] = {}

    def ranges(self, body: str, fold: bool) -> Ranges:
        """What RE2's ``[body]`` matches (under ``(?i)`` when ``fold``)."""
        key = (body, fold)
        if key not in self._cache:
            if not self._all:
                self._all = "".join(
                    chr(c) for c in range(1, MAX_RUNE + 1) if not 0xD800 <= c <= 0xDFFF
                )
            found = [
                (ord(self._all[m.start()]), ord(self._all[m.end() - 1]))
                for m in self._compile(f"(?s{'i' if fold else ''}:[{body}])+").finditer(self._all)
            ]
            # U+0000 (left out of the text: it is never in a label value) and the
            # surrogates, which split runs: neither changes what a label value matches.
            self._cache[key] = _merge(found)
        return self._cache[key]

    def go_class(self, name: str, negated: bool, fold: bool) -> Ranges:
        """Go's ``\\p{name}`` (``\\P{name}`` when negated) as ranges, for a class of
        GO_CLASS_CHANGES: Go negates a case-folded class after folding it. Cached, and
        built range by range (t138: ``\\p{Han}`` was written out code point by code
        point, 98,000 of them, at every use: 0.5-1.3 s of the worker's loop per matcher
        or silence regex naming it)."""
        key = (f"go:{name}:{negated}", fold)
        if key in self._cache:
            return self._cache[key]
        add, drop = GO_CLASS_CHANGES[name]
        kept: Ranges = []
        for lo, hi in self.ranges(f"\\p{{{name}}}", False):
            for c in sorted(c for c in drop if lo <= c <= hi):
                if lo <= c - 1:
                    kept.append((lo, c - 1))
                lo = c + 1
            if lo <= hi:
                kept.append((lo, hi))
        ranges = _merge([*kept, *((c, c) for c in add)])
        if fold:
            ranges = self.ranges(_text(ranges), True)
        self._cache[key] = _complement(ranges) if negated else ranges
        return self._cache[key]


class _Scan:
    """A walk through a valid regex, flags tracked per group as Go's parser does."""

    def __init__(self, value: str, tables: ClassTables) -> None:
        self.value, self.tables = value, tables
        self.out: list[str] = []
        self.fold = [False]
        self.refusal: str | None = None

    def literal(self, code: int) -> None:
        if self.fold[-1] and code in FOLDS_SINCE_GO and self.refusal is None:
            partner = FOLDS_SINCE_GO[code]
            self.refusal = (
                f"under (?i) it folds {chr(code)!r} (U+{code:04X}), which RE2's Unicode 15.1 "
                f"case folding makes one letter with {chr(partner)!r} (U+{partner:04X}) and "
                "Go's Unicode 13 (Alertmanager 0.25) does not; match it case-sensitively, "
                f"(?-i:{chr(code)}), or list both"
            )

    def class_items(self, items: Ranges) -> None:
        """A class's characters and ranges: a letter of FOLDS_SINCE_GO in it without its
        partner is folded otherwise (a class holding both means the same to both)."""
        for code, partner in FOLDS_SINCE_GO.items():
            if any(lo <= code <= hi for lo, hi in items) and not any(
                lo <= partner <= hi for lo, hi in items
            ):
                self.literal(code)

    def escape(self, i: int, in_class: bool) -> tuple[int, int | None]:
        """Copies the escape at ``value[i]``; returns the index after it and the code
        point it stands for (None for a class or an assertion)."""
        value = self.value
        kind = value[i + 1]
        if kind in "pP":
            if value.startswith("{", i + 2):
                end = value.index("}", i + 2) + 1
                name = value[i + 3 : end - 1]
            else:
                end, name = i + 3, value[i + 2]
            negated = kind == "P"
            if name.startswith("^"):
                negated, name = not negated, name[1:]
            if name in GO_CLASS_CHANGES:
                ranges = _text(self.tables.go_class(name, negated, self.fold[-1]))
                self.out.append(ranges if in_class else f"[{ranges}]")
            else:
                self.out.append(value[i:end])
            return end, None
        end = i + 2
        code: int | None = ord(kind)
        if kind == "x":
            if value.startswith("{", i + 2):
                end = value.index("}", i + 2) + 1
                code = int(value[i + 3 : end - 1], 16)
            else:
                end = i + 4
                code = int(value[i + 2 : end], 16)
        elif kind in "01234567":
            while end < min(len(value), i + 4) and value[end] in "01234567":
                end += 1
            code = int(value[i + 1 : end], 8)
        elif kind in "dDwWsSbBAz":
            code = None
        else:
            code = {"a": 7, "f": 12, "t": 9, "n": 10, "r": 13, "v": 11}.get(kind, ord(kind))
        self.out.append(value[i:end])
        return end, code

    def bracket(self, i: int) -> int:
        """Copies the class opened at ``value[i]``; returns the index after it."""
        value = self.value
        start = i
        i += 1
        if value.startswith("^", i):
            i += 1
        self.out.append(value[start:i])
        items: Ranges = []
        first = True
        while i < len(value) and (value[i] != "]" or first):
            first = False
            if value.startswith("[:", i) and value.find(":]", i + 2) > 0:
                end = value.index(":]", i + 2) + 2
                self.out.append(value[i:end])
                i = end
                continue
            if value[i] == "\\":
                i, lo = self.escape(i, in_class=True)
            else:
                lo = ord(value[i])
                self.out.append(value[i])
                i += 1
            if lo is None:
                continue
            if value.startswith("-", i) and i + 1 < len(value) and value[i + 1] != "]":
                self.out.append("-")
                i += 1
                if value[i] == "\\":
                    i, hi = self.escape(i, in_class=True)
                else:
                    hi = ord(value[i])
                    self.out.append(value[i])
                    i += 1
                items.append((lo, hi if hi is not None else lo))
            else:
                items.append((lo, lo))
        self.class_items(items)
        self.out.append("]")
        return i + 1

    def group(self, i: int) -> int:
        """Copies the group opening or flags at ``value[i]``; returns the index after."""
        value = self.value
        if not value.startswith("(?", i) or value.startswith(("(?P<", "(?<"), i):
            self.fold.append(self.fold[-1])
            end = value.index(">", i) + 1 if value.startswith("(?", i) else i + 1
            self.out.append(value[i:end])
            return end
        end = i + 2
        fold, on = self.fold[-1], True
        while value[end] not in ":)":
            if value[end] == "-":
                on = False
            elif value[end] == "i":
                fold = on
            end += 1
        if value[end] == ":":
            self.fold.append(fold)
        else:
            self.fold[-1] = fold
        self.out.append(value[i : end + 1])
        return end + 1

    def run(self) -> str:
        value, i = self.value, 0
        while i < len(value):
            char = value[i]
            if value.startswith("\\Q", i):
                end = value.find("\\E", i + 2)
                end = len(value) if end < 0 else end
                for c in value[i + 2 : end]:
                    self.literal(ord(c))
                end = min(end + 2, len(value))
                self.out.append(value[i:end])
                i = end
            elif char == "\\":
                i, code = self.escape(i, in_class=False)
                if code is not None:
                    self.literal(code)
            elif char == "[":
                i = self.bracket(i)
            elif char == "(":
                i = self.group(i)
            else:
                if char == ")" and len(self.fold) > 1:
                    self.fold.pop()
                elif char not in ".^$|*+?{}":
                    self.literal(ord(char))
                self.out.append(char)
                i += 1
        return "".join(self.out)


def go_unicode(value: str, tables: ClassTables) -> tuple[str, str | None]:
    """``value`` (a regex RE2 accepts) rewritten so that RE2 classes characters as Go's
    Unicode 13 tables do (GO_CLASS_CHANGES written out as ranges), and why it cannot be
    (a case-insensitive match of a character of FOLDS_SINCE_GO), or None."""
    if not any(ord(c) > 0x7F for c in value) and "\\" not in value:
        return value, None  # ASCII without an escape: nothing to translate or refuse
    scan = _Scan(value, tables)
    return scan.run(), scan.refusal
