"""Limits of Go's ``regexp/syntax`` parser (Alertmanager's regex engine) that RE2 does not
share, checked without Go: the parse-tree height limit and capture-group names.

Go (since 1.19.2, CVE-2022-41715; Alertmanager 0.25 as Debian builds it has Go 1.19.8)
refuses a regex whose parse tree is more than 1,000 nodes high ("expression nests too
deeply"); RE2 compiles it. Alertmanager compiles a matcher's regex wrapped as
``^(?:re)$``, one level more. Go also allows only ASCII letters, digits and ``_`` in a
``(?P<name>…)``, where RE2 allows any Unicode word character.

The height is computed on the tree Go's parser builds: a capture, a repetition, a concat
of two or more pieces and an alternation of two or more branches each add a level;
``(?:…)`` and flag groups add none; a run of literal characters is one leaf; an
alternation of single characters and classes is one class (Go collapses it). Go's
factoring of common alternation prefixes is not followed: it can lower a height by a
level, so a regex within a level or two of the limit may be judged differently (tested
against Alertmanager in tests/integration/test_routing_differential.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_HEIGHT = 1000  # regexp/syntax maxHeight
# Leaves Go's alternation collapses into one character class: a single literal
# character, a class, an escape class (\d, \pL, …) or `.`.
_CHAR, _RUN, _OTHER = "char", "run", "other"
_CLASS_ESCAPES = set("dDwWsSpP")
_ANCHOR_ESCAPES = set("bBAz")


@dataclass
class _Piece:
    """One piece of a branch: its height, kind (_CHAR, _RUN, _OTHER), the length of a
    literal run, and for an alternation in a ``(?:…)`` group its branches (Go flattens
    an alternation that is a whole branch of another into it)."""

    height: int
    kind: str
    run: int = 0
    branches: list[tuple[int, str]] | None = None


@dataclass
class _Frame:
    """One open group: capturing or not, its finished branches (height, kind) and the
    current branch's pieces."""

    capture: bool
    branches: list[tuple[int, str]] = field(default_factory=list)
    pieces: list[_Piece] = field(default_factory=list)

    def literal(self) -> None:
        last = self.pieces[-1] if self.pieces else None
        if last is not None and last.run:
            last.kind, last.run = _RUN, last.run + 1
        else:
            self.pieces.append(_Piece(1, _CHAR, 1))

    def leaf(self, kind: str) -> None:
        self.pieces.append(_Piece(1, kind))

    def repeat(self) -> None:
        if not self.pieces:
            return  # a repetition of nothing: both engines refuse it
        last = self.pieces[-1]
        if last.run > 1:
            # A repetition applies to the run's last character only.
            last.run -= 1
            self.pieces.append(_Piece(2, _OTHER))
        else:
            self.pieces[-1] = _Piece(last.height + 1, _OTHER)

    def end_branch(self) -> None:
        pieces, self.pieces = self.pieces, []
        if not pieces:
            self.branches.append((1, _OTHER))  # empty match
        elif len(pieces) == 1 and pieces[0].branches is not None:
            self.branches.extend(pieces[0].branches)  # flattened, as Go's collapse does
        elif len(pieces) == 1:
            single = pieces[0].kind == _CHAR or pieces[0].run == 1
            self.branches.append((pieces[0].height, _CHAR if single else _OTHER))
        else:
            self.branches.append((1 + max(p.height for p in pieces), _OTHER))

    def close(self) -> list[_Piece]:
        """The pieces the closed group adds to its parent's branch: a capture's one
        node; a ``(?:…)`` group's own pieces (Go flattens a concat into a concat) or its
        alternation."""
        if not self.capture and not self.branches:
            return self.pieces
        self.end_branch()
        branches = self.branches
        if len(branches) == 1:
            height, kind = branches[0]
        elif all(kind == _CHAR for _, kind in branches):
            height, kind = 1, _CHAR
        else:
            height, kind = 1 + max(h for h, _ in branches), _OTHER
        if self.capture:
            return [_Piece(height + 1, _OTHER)]
        return [_Piece(height, kind, branches=branches if len(branches) > 1 else None)]


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
                for _ in text:
                    top.literal()
                i = n if end < 0 else end + 2
                continue
            if following in _CLASS_ESCAPES:
                top.leaf(_CHAR)
                if following in "pP" and value.startswith("{", i + 2):
                    end = value.find("}", i + 3)
                    i = n if end < 0 else end + 1
                else:
                    i += 3 if following in "pP" else 2
                continue
            if following in _ANCHOR_ESCAPES:
                top.leaf(_OTHER)
                i += 2
                continue
            if following == "x" and value.startswith("{", i + 2):
                end = value.find("}", i + 3)
                i = n if end < 0 else end + 1
            elif following == "x":
                i += 4
            else:
                i += 2
            top.literal()
            continue
        if char == "[":
            top.leaf(_CHAR)
            i = _class_end(value, i)
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
            if quantified and len(pieces) != 1:
                # (?:ab*)* repeats the group: one node, not its last piece.
                pieces = [_Piece(1 + max(p.height for p in pieces), _OTHER)] if pieces else []
            elif quantified and pieces[0].run > 1:
                pieces = [_Piece(1, _OTHER)]  # (?:ab)* repeats the whole literal
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
            top.leaf(_CHAR if char == "." else _OTHER)
        else:
            top.literal()
        i += 1
    while len(stack) > 1:  # unbalanced: RE2 refuses it anyway
        stack[-2].pieces.extend(stack.pop().close())
    return stack[0]


def wrapped_height(value: str) -> int:
    """The height of the tree Go builds for ``^(?:value)$``, as Alertmanager compiles a
    matcher's regex: the anchors and the value's own pieces in one concat."""
    top = tree_height(value)
    top.pieces = [_Piece(1, _OTHER), *top.close(), _Piece(1, _OTHER)]
    top.branches = []
    top.end_branch()
    return top.branches[0][0]


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
