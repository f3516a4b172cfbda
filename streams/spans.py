"""Where each item of a body's list lies in the body's bytes, without parsing it.

An HTTP body of many readings (a JSON list, a ``readings/1`` pack's ``readings``, an NGSI
notification's ``data``), like a pack on the ``readings`` topic, is refused reading by
reading: each bad one is dead-lettered alone. Its dead letter must be the bytes the
sender wrote for it, not the parsed value written again: written again, ``NaN``,
``Infinity`` and ``1e999`` came out as ``null`` and a key given twice as one of its two
values, so the dead letter no longer showed the fault its reason named. The same spans
let a fault the parser finds only for the whole body (nesting past ``MAX_DEPTH``) be
pinned to the one item that has it.

Pure: no I/O; a tokenizer of JSON's strings and punctuation (a regular expression), so
nesting of any depth costs no recursion.
"""

from __future__ import annotations

import json
import re

# An object holding no list or object (a reading, mostly: a pack of a thousand readings
# is a thousand tokens, not thirty thousand), a string (its escapes skipped whole), a
# quote that opens no whole string, or one punctuation byte; numbers, literals and white
# space lie between tokens and so inside the spans they fall in. Possessive: no
# backtracking over a long run of text that is no such object.
_TOKEN = re.compile(
    rb'\{(?:[^{}\[\]"]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+\}'
    rb'|"[^"\\]*+(?:\\.[^"\\]*+)*+"|"|[\[\]{},:]',
    re.DOTALL,
)
_OPEN = {b"[": b"]", b"{": b"}"}
_WHITE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


def max_depth(raw: bytes, past: int | None = None) -> int:
    """The deepest nesting of lists and objects in ``raw`` (JSON text, not checked: its
    strings skipped whole), counted without recursion, so the answer is the same at any
    stack depth and recursion limit. With ``past``, counting stops at the first level
    deeper than it (that level is returned): a megabyte of ``{`` was a Python loop over
    a million tokens, 1-3 s of the worker's event loop for one message (t99)."""
    depth = deepest = 0
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
            if past is not None and depth > past:
                return depth
        elif token in (b"]", b"}"):
            depth -= 1
        elif len(token) > 1 and token[:1] == b"{":  # a whole flat object: one level
            deepest = max(deepest, depth + 1)
    return deepest


def item_spans(
    raw: bytes, key: str | None = None, outside: int | None = None, within: int | None = None
) -> list[tuple[int, int]] | None:
    """The (start, end) byte offsets in ``raw`` of each item of its list: the body itself
    (``key`` None, a JSON array) or the array under the top-level object's ``key``
    (``"readings"``, ``"data"``; the first such key). White space around an item is left
    out. None when ``raw`` holds no such list or is not well formed around it (an
    unterminated string, brackets that do not match): the caller then keeps the parsed
    value, so this never decides whether a body is JSON. With ``outside``, also None as
    soon as containers before the list is found nest deeper than that: a caller pinning
    a fault of nesting to the list's items looks no further (a megabyte of ``{`` was
    scanned to its end, seconds of a worker's event loop, t99). With ``within``, likewise
    as soon as an item of the list nests deeper than that (a pack whose item was a
    megabyte of ``[`` held the loop 0.6 s, scanned to its end to find none)."""
    body = raw[len(_BOM) :] if raw.startswith(_BOM) else raw
    skip = len(raw) - len(body)
    stack: list[bytes] = []  # the closing bytes of the containers open here
    inside = 0  # len(stack) inside the list, once found
    start = 0
    spans: list[tuple[int, int]] = []
    previous = b""
    after_key: str | None = None  # the top-level key whose value comes next
    for match in _TOKEN.finditer(body):
        token, at = match.group(), match.start()
        if token == b'"':
            return None  # a string that never ends
        if len(token) > 1 and token[:1] == b"{":
            token = b"{}"  # a whole flat object: a value, as a string or a number is
        if not stack and token not in _OPEN:  # (a whole object at the top: no list in it)
            return None  # a scalar body, or text after the top-level value
        if inside and len(stack) == inside and token in (b",", b"]"):
            spans.append(_stripped(body, start, at, skip))
            if token == b"]":
                return [s for s in spans if s[0] < s[1]] if _closed(spans) else None
            start = match.end()
            continue
        if token == b":" and len(stack) == 1 and stack[0] == b"}":
            after_key = _key(previous)
        elif token in _OPEN:
            found = not inside and (
                (key is None and not stack)
                or (key is not None and len(stack) == 1 and token == b"[" and after_key == key)
            )
            stack.append(_OPEN[token])
            if outside is not None and not inside and len(stack) > outside:
                return None
            if within is not None and inside and len(stack) - inside > within:
                return None
            if found and token == b"[":
                inside, start = len(stack), match.end()
            elif found:
                return None  # the body is an object where a list was asked for
        elif token in (b"]", b"}") and (not stack or stack.pop() != token):
            return None  # brackets that do not match
        if token != b":":
            after_key = None  # only the token right after "key": opens its value
        previous = token
    return None


def _stripped(body: bytes, start: int, end: int, skip: int) -> tuple[int, int]:
    while start < end and body[start] in _WHITE:
        start += 1
    while end > start and body[end - 1] in _WHITE:
        end -= 1
    return start + skip, end + skip


def _closed(spans: list[tuple[int, int]]) -> bool:
    """An empty span is only the whole of an empty list (``[]``): elsewhere it is a
    stray comma (``[1,,2]``), which no parser reads, so no spans are given."""
    empty = [s for s in spans if s[0] == s[1]]
    return not empty or len(spans) == 1


def _key(token: bytes) -> str | None:
    if not token.startswith(b'"'):
        return None
    try:
        text = json.loads(token)
    except ValueError:
        return None
    return text if isinstance(text, str) else None


def items_as_sent(raw: bytes, key: str | None, count: int) -> list[bytes] | None:
    """Each item's bytes of the list in ``raw`` (``item_spans``), which parsed as
    ``count`` items; None when the spans found do not match that list."""
    spans = item_spans(raw, key)
    if spans is None or len(spans) != count:
        return None
    return [raw[start:end] for start, end in spans]
