"""The only module that opens files: grid files and playbook YAML."""

from __future__ import annotations

import base64
import binascii
import bisect
import errno
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import re
import stat
import sys
import unicodedata
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from playbooks.encodings import not_utf8_guess, nul_block, wide_encoding
from playbooks.errors import (
    GridError,
    PlaybookConfigError,
    RoutingConfigError,
    closest,
    did_you_mean,
    name_fault,
    quote_hint,
    shown,
)
from playbooks.grid import (
    MAX_ID_CHARS,
    UNIT_SPELLING,
    Cell,
    Grid,
    SensorKind,
    SensorRegistration,
)
from playbooks.pickled import read_or_build
from playbooks.routing import (
    ALL_LABELS,
    LABELS,
    InhibitRule,
    Matcher,
    Route,
    Router,
    compile_regex,
    every_alert,
    impossible_value,
    legacy_regex,
    parse_matchers,
    read_apart_warnings,
    with_paths,
)
from playbooks.schema import (
    KAFKA_TOPIC_NAME_MAX,
    InhibitRuleConfig,
    Playbook,
    RouteConfig,
    RoutingConfig,
    kafka_name_key,
    parse_duration,
    step_reference_errors,
)
from playbooks.time_intervals import (
    TimeInterval,
    TimeIntervalError,
    check_references,
    parse_named_intervals,
)

_M = TypeVar("_M", bound=BaseModel)
_log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Alertmanager's defaults (dispatch/route.go, DefaultRouteOpts). Its default group_by, [],
# would put every alert of a route in one run; citybrain refuses a root route without
# group_by instead of choosing for the operator (docs/playbooks.md).
ROUTE_DEFAULTS = {
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "4h",
}

GRID_KEYS = {"version", "kinds", "cells", "sensors"}
KIND_KEYS = {"id", "unit", "min", "max"}
CELL_KEYS = {"id", "level", "name", "unit", "parent", "lat", "lon", "geometry"}
SENSOR_KEYS = {"id", "kind", "unit", "cell", "lat", "lon"}
OPTIONAL_KEYS = {"parent", "lat", "lon", "geometry"}


# libyaml's loader when PyYAML has it (its wheels do): a grid of 20,000 sensors loads in
# about a second instead of eight.
_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


# Characters YAML 1.1 takes for line breaks (PyYAML and go-yaml alike) that no editor
# shows as one: a mark's line counted them, so a file holding one was named at a line
# it does not have (t169).
_YAML_ONLY_BREAKS = re.compile("[\x85\u2028\u2029]")
_FILE_LINE_END = re.compile(r"\r\n|\r|\n")


@functools.lru_cache(maxsize=8)
def _line_starts(text: str) -> tuple[int, ...] | None:
    """Where each of ``text``'s lines starts (offsets; lines end in LF, CRLF or CR), or
    None when YAML counts its lines alike (no NEL, U+2028 or U+2029 in it)."""
    if _YAML_ONLY_BREAKS.search(text) is None:
        return None
    return (0, *(m.end() for m in _FILE_LINE_END.finditer(text)))


def file_line(text: str, mark: Any) -> int:
    """The 1-based line of the file ``text`` (as parsed) that a PyYAML ``mark`` stands
    on, as an editor counts lines: PyYAML also counts a NEL, U+2028 or U+2029 as a line
    break, and named every line after one wrongly."""
    starts = _line_starts(text)
    if starts is None:
        return int(mark.line) + 1
    return bisect.bisect_right(starts, min(int(mark.index), len(text))) or 1


def yaml_only_break(text: str, mark: Any) -> str:
    """``; line N holds a U+2028 (LINE SEPARATOR) at column C, which YAML reads as a line
    break …`` for the last such character of ``text`` before ``mark`` (a syntax error's)
    when it stands on the mark's line or the one above, the likely cause (one pasted into
    a comment ended it, and the rest of the comment was read as YAML); else ""."""
    *_, found = [None, *_YAML_ONLY_BREAKS.finditer(text, 0, min(int(mark.index), len(text)))]
    if found is None:
        return ""
    at = found.start()
    line = file_line(text, yaml.error.Mark("", at, 0, 0, None, 0))
    if line < file_line(text, mark) - 1:
        return ""
    starts = _line_starts(text) or (0,)
    column = at - starts[line - 1] + 1
    name = unicodedata.name(found.group(), "NEXT LINE (NEL)")
    escape = {"\x85": "\\N", "\u2028": "\\L", "\u2029": "\\P"}[found.group()]
    return (
        f"; line {line} holds a U+{ord(found.group()):04X} ({name}) at column {column}, which "
        "YAML reads as a line break though no editor shows one: delete it, or write it as "
        f"{escape} inside double quotes"
    )


def _file_marks(root: yaml.Node | None, text: str) -> None:
    """Each node of ``root``'s tree given the mark of its line as the file counts lines
    (``file_line``), so every ``start_mark.line + 1`` read later names the file's line.
    Nothing to do for a text without a NEL, U+2028 or U+2029."""
    if root is None or _line_starts(text) is None:
        return
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for name in ("start_mark", "end_mark"):
            mark = getattr(node, name, None)
            if mark is not None:
                line = file_line(text, mark) - 1
                setattr(
                    node,
                    name,
                    yaml.error.Mark(mark.name, mark.index, line, mark.column, None, 0),
                )
        if isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


class SecondDocumentError(yaml.composer.ComposerError):
    """A YAML file with a second document that holds something (``---`` and more)."""


class YamlNumberError(yaml.constructor.ConstructorError):
    """A YAML number citybrain will not guess at (``_checked_int``): valid YAML, said as
    its own fault, not as "not valid YAML"."""


# The most bits a YAML integer may have: the largest float (about 1.8e308) has 1,024, and
# every number citybrain reads is a float or far smaller. Python reads no decimal of more
# than 4,300 digits and writes none back, though it reads a hexadecimal or binary one of
# any length: ``version: 0xfff…`` of 5,000 digits was an unexpected ValueError (exit 70)
# from `playbooks check`, a decimal one "cannot be read as its tag !!int says" with no
# tag written and all 5,000 digits echoed (t190).
_INT_BITS = 1024
_DECIMAL_DIGITS = 309  # 10**309 > 2**1024: a longer decimal is too large unread
# YAML 1.1's integers that YAML 1.2, JSON and a person read otherwise: a leading 0 is
# octal (``010`` is 8, where 1.2 has 10), ``:`` makes base 60 (``1:30`` is 90, text in
# 1.2), for an integer or a float (``1:30.5``).
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_BASE_60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


def _too_large(node: yaml.ScalarNode) -> YamlNumberError | None:
    """The refusal of an integer scalar too large for any number citybrain reads (more
    than 1,024 bits: above the largest float), or None. Judged from its text where it is
    plainly too large, so a decimal of 5,000 digits is never handed to int(); one near
    the bound is constructed and its bits counted (``_checked_int``)."""
    written = str(node.value)
    plain = written.replace("_", "").lstrip("+-").lower()
    if plain.startswith(("0x", "0b")):
        bits = len(plain[2:].lstrip("0")) * (4 if plain[1] == "x" else 1)
    elif plain.startswith("0"):
        bits = len(plain.lstrip("0")) * 3  # octal
    else:
        # Decimal (at most 309 digits below 2**1024), or base 60: each part after the
        # first below 60, about six bits.
        first, *rest = plain.split(":")
        digits = len(first.lstrip("0"))
        bits = _INT_BITS + 5 if digits > _DECIMAL_DIGITS else len(rest) * 5
    if bits <= _INT_BITS + 4:
        return None
    return _huge(written, node)


def _huge(written: str, node: yaml.ScalarNode) -> YamlNumberError:
    return YamlNumberError(
        None,
        None,
        f"the number {shown(written)} ({len(written):,} characters) is too large: citybrain "
        "reads no number beyond the largest float, about 1.8e308; check the value",
        node.start_mark,
    )


def _checked_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """An integer scalar as PyYAML reads it, refused (``YamlNumberError`` at its line)
    when it is too large for any number (``_too_large``) or written in one of YAML 1.1's
    spellings that YAML 1.2, JSON and a person read otherwise: ``010`` (octal, 8: a grid's
    ``max: 010`` was 8, a units profile's ``units: 010`` 8 units, a sensor ``id: 01646500``,
    a USGS site number, the sensor 937280, every reading of 01646500 unknown) or ``1:30``
    (base 60, 90: a units profile's ``busy: 1:30`` 90 seconds). ``07`` and ``00`` mean the
    same both ways and are taken (t190)."""
    too_large = _too_large(node)
    if too_large is not None:
        raise too_large
    value: int = loader.construct_yaml_int(node)
    written = str(node.value)
    if abs(value).bit_length() > _INT_BITS:
        raise _huge(written, node)
    if node.tag == "tag:yaml.org,2002:int" and _OCTAL.fullmatch(written):
        # Its digits read in base 10 (a few hundred at most: its bits were counted).
        unsigned = written.replace("_", "").lstrip("+-").lstrip("0") or "0"
        decimal = -int(unsigned) if written.startswith("-") else int(unsigned)
        if decimal != value:
            raise YamlNumberError(
                None,
                None,
                f"{shown(written)} is the number {value} to this file's YAML (1.1: a leading "
                f"0 is octal) and {decimal} to YAML 1.2 and JSON: write {value} or {decimal} "
                "without the leading 0, or quote it if it is text such as an id",
                node.start_mark,
            )
    if _BASE_60.fullmatch(written):
        raise _base_60(written, value, node)
    return value


def _base_60(written: str, value: float, node: yaml.ScalarNode) -> YamlNumberError:
    return YamlNumberError(
        None,
        None,
        f"{shown(written)} is the number {value:g} to this file's YAML (1.1: ':' counts in "
        f"base 60, as minutes and seconds) and text to YAML 1.2: write {value:g} if you mean "
        "that number, or quote it if it is text such as a time",
        node.start_mark,
    )


def _checked_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    """A float scalar as PyYAML reads it, refused at its line when written in base 60
    (``1:30.5``, 90.5), as ``_checked_int`` refuses ``1:30``."""
    value: float = loader.construct_yaml_float(node)
    if _BASE_60.fullmatch(str(node.value)):
        raise _base_60(str(node.value), value, node)
    return value


_SECOND_DOCUMENT = (
    "a second YAML document (after a '---' line): citybrain reads one document a file "
    "(Alertmanager reads the first and ignores the rest unread); remove the '---' line "
    "and what follows, or move it into the first document"
)


class _Loader(_BASE_LOADER):  # type: ignore[misc]
    """The safe loader, refusing a key given twice in one mapping. PyYAML keeps the last
    silently; Alertmanager's loader (go-yaml, strict) refuses it ("field … already set"),
    and a second ``matchers:`` or ``playbook:`` that quietly wins is a misroute. Keys a
    merge (``<<``) brings in may still be overridden, as YAML means them to be."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        # The text as parsed: its nodes' marks are given the file's lines (file_line).
        self.text = stream if isinstance(stream, str) else ""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self._merged_twice(node)
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: PyYAML refuses it itself below
                    continue
                if first is not None:
                    self.duplicate(
                        yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"key {key!r} is given twice in one mapping (first on line "
                            f"{first}); keep one",
                            key_node.start_mark,
                        )
                    )
                else:
                    seen[key] = key_node.start_mark.line + 1
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result

    def get_single_node(self) -> yaml.Node | None:
        """The file's one document. Documents after it (``---``) that hold nothing, a
        trailing ``---`` or one with comments only, are read as the nothing they are, as
        Alertmanager's reader reads them; one that holds something is refused (t50):
        Alertmanager reads the first document and ignores the rest unread, so its routes
        would be lost without a word, and PyYAML said "not valid YAML" of valid YAML."""
        node: yaml.Node | None = self.get_node() if self.check_node() else None
        while True:
            try:
                if not self.check_node():
                    break
                extra = self.get_node()
            except yaml.MarkedYAMLError as exc:  # unread by Alertmanager: no YAML error
                raise SecondDocumentError(
                    None, None, _SECOND_DOCUMENT, exc.problem_mark or exc.context_mark
                ) from None
            empty = (
                isinstance(extra, yaml.ScalarNode)
                and extra.tag == "tag:yaml.org,2002:null"
                and extra.value == ""
                and not extra.style
            )
            if not empty:
                raise SecondDocumentError(None, None, _SECOND_DOCUMENT, extra.start_mark)
        if node is not None:
            _file_marks(node, self.text)
            _refuse_recursion(node)
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's, with a scalar its explicit tag cannot take (``continue: !!bool 1``,
        ``!!int abc``, ``!!timestamp x``) a YAML error at its line: PyYAML's constructors
        raise KeyError, ValueError, IndexError or AttributeError there (t44: a traceback,
        exit 70, from ``playbooks check``)."""
        try:
            return super().construct_object(node, deep=deep)
        except (KeyError, ValueError, IndexError, AttributeError, OverflowError):
            if not isinstance(node, yaml.ScalarNode):
                raise
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{node.value!r} cannot be read as its tag {tag} says; drop the tag or "
                "correct the value",
                node.start_mark,
            ) from None

    def _merged_twice(self, node: yaml.MappingNode) -> None:
        """A key two mappings of one merge list (``<<: [*a, *b]``) both bring in, and
        the mapping does not set itself: the YAML merge spec lets the first win, PyYAML
        the last (trial 24: a sensor took *b's kind and cell), so neither is guessed."""
        # Scalar keys only: a list or mapping as a key ([a]: 1) has an unhashable value
        # here (t44: TypeError, a traceback); PyYAML refuses such a key itself.
        own = {k.value for k, _ in node.value if k.tag != _MERGE and _scalar(k)}
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE or not isinstance(value_node, yaml.SequenceNode):
                continue
            first: dict[Any, tuple[int, yaml.Node]] = {}
            for merged in value_node.value:
                if not isinstance(merged, yaml.MappingNode):
                    continue  # PyYAML refuses it itself
                for k, v in merged.value:
                    if k.tag == _MERGE or not _scalar(k) or k.value in own:
                        continue
                    if k.value in first and not _same(first[k.value][1], v):
                        self.duplicate(
                            yaml.constructor.ConstructorError(
                                None,
                                None,
                                f"key {k.value!r} comes from two mappings of one merge "
                                f"(lines {first[k.value][0]} and {merged.start_mark.line + 1}), "
                                "and YAML readers disagree which wins; set it in this "
                                "mapping or merge one",
                                key_node.start_mark,
                            )
                        )
                        return
                    first.setdefault(k.value, (merged.start_mark.line + 1, v))

    def duplicate(self, error: yaml.constructor.ConstructorError) -> None:
        raise error

    def construct_document(self, node: yaml.Node) -> Any:
        # Before anything is built or walked: aliases share one value when constructed,
        # but each later walk (a schema, an error message's str()) expands them.
        _check_aliasing(node)
        return super().construct_document(node)


def _binary_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    """A ``!!binary`` scalar as Alertmanager's YAML reader (go-yaml v2) gives a text field:
    its base64 decoded (line breaks ignored, as Go's ``base64.StdEncoding``), read as
    UTF-8 text. PyYAML made bytes of it (t157): ``match: {kind: !!binary YQ==}`` was
    refused as "is b'a'" and ``mute_time_intervals: [!!binary bmlnaHRz]`` named the
    interval by its base64, where Alertmanager reads "a" and "nights". Bytes that are not
    UTF-8 text are refused, naming the scalar (citybrain reads text only)."""
    written = str(loader.construct_scalar(node))
    try:
        data = base64.b64decode(written.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"!!binary {written[:40]!r} is not base64 (go-yaml v2, Alertmanager's YAML "
            "reader, refuses it too)",
            node.start_mark,
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"!!binary {written[:40]!r} decodes to bytes that are not UTF-8 text; citybrain "
            "reads text only: write the text itself",
            node.start_mark,
        ) from None


# The values a document may gain through aliases (*name), beyond those written: go-yaml,
# Alertmanager's reader, refuses "excessive aliasing" too. Nine lists of nine, nested
# nine deep in a 400-byte grid, were 387 million values: the worker's start took minutes
# and gigabytes (an alias bomb, "billion laughs").
MAX_ALIASED_VALUES = 1_000_000


def _check_aliasing(root: yaml.Node) -> None:
    """Raises ``yaml.constructor.ConstructorError`` at the anchor whose aliases expand the
    document by more than ``MAX_ALIASED_VALUES`` values; sizes are counted once per node
    (memoised), so the check costs the written nodes, not the expansion."""
    sizes: dict[int, int] = {}
    written = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # post-order with a stack of its own: nesting may be 1,000 levels
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if not done:
            written += 1
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
        if sizes[id(node)] - written > MAX_ALIASED_VALUES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"its aliases (*name) expand the document to more than "
                f"{MAX_ALIASED_VALUES:,} values (an alias bomb?); write the values out, or "
                "alias fewer times",
                node.start_mark,
            )


def _scalar(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode)


def _refuse_recursion(root: yaml.Node) -> None:
    """Raises ``yaml.composer.ComposerError`` at a value that holds itself through an
    alias (``route: &r {routes: [*r]}``): go-yaml v2 (Alertmanager) refuses it ("anchor
    value contains itself"); PyYAML built an endless structure, which walking it ended in
    RecursionError, a traceback (t44). Iterative, each node once: a file may nest 1,000
    levels and alias a value many times."""
    done: set[int] = set()
    open_: set[int] = set()  # the nodes on the current path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            open_.discard(id(node))
            done.add(id(node))
            continue
        if id(node) in done:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            continue
        open_.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"the value at line {child.start_mark.line + 1} holds itself through an "
                    "alias (*name), so it never ends (Alertmanager's YAML reader refuses it "
                    "too); write the nested value out",
                    child.start_mark,
                )
            if id(child) not in done:
                stack.append((child, False))


def _same(a: yaml.Node, b: yaml.Node) -> bool:
    """Two merged values that cannot differ: one node, or one scalar written alike."""
    if a is b:
        return True
    return (
        isinstance(a, yaml.ScalarNode)
        and isinstance(b, yaml.ScalarNode)
        and (a.tag, a.value) == (b.tag, b.value)
    )


class _CollectingLoader(_Loader):
    """``_Loader`` noting each key given twice (in ``duplicates``) and keeping the last,
    as PyYAML does, so a check can go on to the file's other errors. The routing file's
    reader (``routing_errors``): integers and ``!!binary`` are read as go-yaml v2 reads
    them (below)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[yaml.constructor.ConstructorError] = []

    def duplicate(self, error: yaml.constructor.ConstructorError) -> None:
        self.duplicates.append(error)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """As Alertmanager's YAML reader (go-yaml v2) reads a tagged node (t107): a
        sequence or mapping by its kind, whatever its tag (``!foo [..]``, ``!!set {a}``,
        ``!!str {..}``), and a scalar whose tag is none of YAML's scalar types (``!foo``,
        ``!<!x>``, ``!<tag:example.com,2000:x>``, ``!!foo``, ``!!map``) as its text.
        PyYAML refused the first ("could not determine a constructor") where
        Alertmanager routes; it made a set of ``!!set {kind}``, which Alertmanager
        refuses where a list goes. A scalar with the non-specific tag ``!`` is text there
        too (``! 5``, ``! ~``, ``! '~'``: "5", "~"), as YAML says; PyYAML resolved it as if
        untagged (t157: 5 and null, refused as "is null, expected text")."""
        if isinstance(node, yaml.SequenceNode):
            node.tag = _SEQ
        elif isinstance(node, yaml.MappingNode):
            node.tag = _MAP
        elif isinstance(node, yaml.ScalarNode) and (
            node.tag not in _SCALAR_TAGS
            or _NON_SPECIFIC.match(self.text, node.start_mark.index) is not None
        ):
            node.tag = _STR
        return super().construct_object(node, deep=deep)


# A scalar's properties as written, when its tag is the non-specific ``!`` (or its
# verbatim form ``!<!>``; an anchor may come before or after it).
_NON_SPECIFIC = re.compile(r"(?:&\S+\s+)?!(?:<!>)?(?=\s)")


_SEQ, _MAP, _STR = (f"tag:yaml.org,2002:{t}" for t in ("seq", "map", "str"))
# The scalar types go-yaml v2 resolves (and !!binary, which it decodes): any other tag on
# a scalar is read as the text.
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "null", "bool", "int", "float", "timestamp", "binary")
)


class WrittenInt(int):
    """An integer read from a routing file, with its text as written (``written``):
    Alertmanager's YAML decoder gives a duration field the text, so ``0x0``, ``00`` or
    ``+0`` is a bad duration there, not the 0 PyYAML makes of it (trial 12)."""

    written: str

    def __new__(cls, value: int, written: str) -> WrittenInt:
        number = super().__new__(cls, value)
        number.written = written
        return number


def _written_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    # Octal and base 60 kept as written (go-yaml v2 reads both as text or as its own
    # integer; a routing file's durations and times are text): only the size is checked.
    too_large = _too_large(node)
    if too_large is not None:
        raise too_large
    value = loader.construct_yaml_int(node)
    if abs(value).bit_length() > _INT_BITS:
        raise _huge(str(node.value), node)
    return WrittenInt(value, str(node.value))


_Loader.add_constructor("tag:yaml.org,2002:int", _checked_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _checked_float)
_CollectingLoader.add_constructor("tag:yaml.org,2002:int", _written_int)
_CollectingLoader.add_constructor("tag:yaml.org,2002:float", _BASE_LOADER.construct_yaml_float)
# The routing file's reader only: there Alertmanager's go-yaml v2 is the reference; a
# playbook's task message of !!binary stays bytes, refused as no JSON (t54).
_CollectingLoader.add_constructor("tag:yaml.org,2002:binary", _binary_text)

_LOADER = _Loader


class WrittenFloat(float):
    """A grid's plain number with an exponent (``1e5``), with its text as written
    (``written``): a bound reads it as the number, a text field (an id) as the text it
    was before YAML 1.2's reading of it (see ``_GridLoader``)."""

    written: str

    def __new__(cls, value: float, written: str) -> WrittenFloat:
        number = super().__new__(cls, value)
        number.written = written
        return number


_EXPONENT_TAG = "tag:citybrain,2026:exponent"


class _GridLoader(_Loader):
    """``_Loader`` reading a plain number with an exponent as the number YAML 1.2, JSON
    and go-yaml make of it (``1e5``, ``1.5e308``, ``-2E-3``): PyYAML's YAML 1.1 resolver
    takes an exponent only after a point and with a sign, so a kind's ``max: 1e5`` was
    text, refused as 'expected a number' though readings and CSVs read ``1e5`` as one
    (t63). Only the grid: a routing file's label value ``1e5`` stays the text
    Alertmanager's decoder keeps."""

    def construct_exponent(self, node: yaml.ScalarNode) -> WrittenFloat:
        return WrittenFloat(self.construct_yaml_float(node), str(node.value))


_GridLoader.add_implicit_resolver(
    _EXPONENT_TAG,
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)
_GridLoader.add_constructor(_EXPONENT_TAG, _GridLoader.construct_exponent)
# A grid's integers keep their text (an id written ``0x1F`` or ``1_000`` is that text, not
# "31" or "1000", which no reading of it sends); a bound reads the number.
_GridLoader.add_constructor(
    "tag:yaml.org,2002:int", lambda loader, node: WrittenInt(_checked_int(loader, node), node.value)
)


def compose_yaml(text: str) -> yaml.Node | None:
    """``text``'s node tree (for ``locate``) as ``load_yaml`` reads it, each node's mark
    on the line the file has it on (``file_line``). Raises yaml.YAMLError."""
    node: yaml.Node | None = yaml.compose(text, Loader=_LOADER)
    return node


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` refusing a key given twice in one mapping (``_Loader``), for
    every YAML file citybrain reads (tokens, units profiles). Raises yaml.YAMLError."""
    return yaml.load(text, Loader=_LOADER)


def load_grid_yaml(text: str) -> Any:
    """A grid file's document as ``load_grid`` reads it (``_GridLoader``: an integer id
    keeps its text as written, ``written``; an exponent is a number), for a reader of the
    grid other than the worker's: the stack's Prometheus map of cell positions read it
    with ``load_yaml``, and a cell ``id: 0x1F`` the worker calls "0x1F" was "31" there.
    Raises yaml.YAMLError."""
    return yaml.load(text, Loader=_GridLoader)


def _read_yaml(path: Path, data: bytes | None = None) -> Any:
    return _compose(path, nodes=False, reader=_GridLoader, data=data)[0]


Problems = list[tuple[str, tuple[str | int, ...]]]


def _entries(
    doc: dict[str, Any], key: str, allowed: set[str], problems: Problems, unchecked: set[str]
) -> list[tuple[int, dict[str, Any]]]:
    """The well-formed entries of the list ``key`` with their index; each malformed one
    is a problem (and its id, if it has one, goes in ``unchecked``)."""
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        problems.append((f"{key!r} is {shown(entries)}, expected a list", (key,)))
        return []
    good = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append((f"{key} entry {i + 1} is not a mapping", (key, i)))
            continue
        unknown = set(entry) - allowed
        missing = (allowed - OPTIONAL_KEYS) - set(entry)
        other = _other_list(entry, key) if unknown or missing else None
        if other is not None:
            # t200: a cell appended after `sensors:` (the list at the file's end) was
            # "unknown keys ['level', 'name'] ... missing keys ['cell', 'kind']", twice a
            # cell, and never said where the entry belongs.
            problems.append(
                (
                    f"{key} entry {i + 1} is a {_SINGULAR[other]} (keys "
                    f"{', '.join(sorted(map(str, entry)))}), not a {_SINGULAR[key]}: move it "
                    f"under {other}: (a list's entries run until the next top-level key)",
                    (key, i),
                )
            )
        elif unknown:
            problems.append(
                (
                    f"{key} entry {i + 1}: unknown keys {sorted(unknown)}{_near(unknown, allowed)}",
                    (key, i),
                )
            )
        if missing and other is None:
            problems.append((f"{key} entry {i + 1}: missing keys {sorted(missing)}", (key, i)))
        if unknown or missing:
            if isinstance(entry.get("id"), str | int):
                unchecked.add(str(entry["id"]))
            continue
        good.append((i, entry))
    return good


_LIST_KEYS = {"kinds": KIND_KEYS, "cells": CELL_KEYS, "sensors": SENSOR_KEYS}
_SINGULAR = {"kinds": "kind", "cells": "cell", "sensors": "sensor"}


def _other_list(entry: dict[str, Any], key: str) -> str | None:
    """The grid list other than ``key`` (kinds, cells, sensors) whose entries ``entry``
    has exactly the keys of (every key its own, every required one there), or None: an
    entry written under the wrong list, which unknown and missing keys alone do not say."""
    keys = set(map(str, entry))
    for other, allowed in _LIST_KEYS.items():
        if other != key and keys <= allowed and (allowed - OPTIONAL_KEYS) <= keys:
            return other
    return None


def _near(unknown: set[str], allowed: set[str]) -> str:
    """``: did you mean 'parent' for 'parnet'?`` for the unknown keys that are near
    misses of allowed ones, or ""."""
    pairs = []
    for key in sorted(map(str, unknown)):
        close = closest(key, sorted(allowed))
        if close is not None:
            pairs.append(f"{close!r} for {key!r}")
    return f": did you mean {', '.join(pairs)}?" if pairs else ""


def _text(entry: dict[str, Any], i: int, section: str, key: str) -> str:
    """An entry's text field; an integer (``id: 7``, ``id: 0x1F``) or a number with an
    exponent (``id: 1e5``) is read as written (``0x1F`` was the sensor "31"). A list, a
    mapping, true/false, null or a float was str()'d before: ``unit: [u]`` became the unit
    "['u']", ``id: [7]`` the sensor "[7]"."""
    value = entry[key]
    if isinstance(value, WrittenFloat | WrittenInt):
        value = value.written  # ``id: 1e5`` or ``id: 0x1F`` is the text it was written as
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        text = str(value)
        if key == "id" and any(unicodedata.category(c) == "Cc" for c in text):
            # Ids are Kafka keys, label values and parts of table keys (a burst window's
            # key joins cell and category with a control character).
            raise GridError(
                f"{section} entry {i + 1}: id {text[:60]!r} holds a control character, "
                "expected printable text",
                (section, i, key),
            )
        fault = name_fault(text) if key in ("unit", "kind", "id", "cell", "parent") else None
        if fault is not None:
            # A zero-width space, joiner, byte-order mark or direction mark is invisible:
            # 's1\u200b' looks like the 's1' a feed sends, and every reading of it was
            # dead-lettered (unknown_sensor, bad_unit) with no visible cause (t54). A
            # U+2028, U+2029 or NEL cut every log line and audit row naming the id in two,
            # and only an id's control characters were refused (t186).
            raise GridError(
                f"{section} entry {i + 1}: {key} is {shown(text)}, which holds {fault}, "
                "expected visible text",
                (section, i, key),
            )
        if key == "id" and ('"' in text or "\\" in text):
            # Ids are the label values the dashboards' variables put inside PromQL strings
            # (`district=~"$district"`, `sensor_id="$sensor"`), where Grafana escapes
            # neither: a quote or backslash there broke the panel's query (trial 28).
            raise GridError(
                f"{section} entry {i + 1}: id {text[:60]!r} holds a double quote or a "
                "backslash, expected an id without them (it is a label value the "
                "dashboards put in PromQL strings); a cell's name may hold any text",
                (section, i, key),
            )
        if key == "id" and len(text) > MAX_ID_CHARS:
            # A sensor's id is in every reading, alert and log line about it: one of a
            # megabyte made each of its readings too large for Kafka (t198).
            raise GridError(
                f"{section} entry {i + 1}: id {text[:60]!r}... is {len(text):,} characters "
                f"long, expected at most {MAX_ID_CHARS}",
                (section, i, key),
            )
        if not text.strip():
            raise GridError(
                f"{section} entry {i + 1}: {key} is {shown(text)}, expected non-empty text",
                (section, i, key),
            )
        if text != text.strip():
            # A padded unit or id never equals what a reading sends: every one of its
            # readings would be dead-lettered as bad_unit or unknown_sensor.
            raise GridError(
                f"{section} entry {i + 1}: {key} is {shown(text)}, expected text without "
                "leading or trailing spaces",
                (section, i, key),
            )
        plain = unicodedata.normalize("NFKC", text)
        if key == "unit":
            plain = plain.translate(UNIT_SPELLING)
        if key in ("unit", "kind", "id", "cell", "parent") and plain != text:
            # µ and μ, ³ and 3, ／ and / look alike and compare unequal: a grid and a feed
            # that spell one unit or id two ways dead-letter every reading. Units are
            # written plain, as the ingest service reads a reading's µ, ³ (docs/events.md).
            raise GridError(
                f"{section} entry {i + 1}: {key} is {shown(text)}, which has look-alike "
                f"characters; write it {shown(plain)}",
                (section, i, key),
            )
        return text
    value_shown = shown(value) if value is None or isinstance(value, bool) else repr(value)[:60]
    raise GridError(
        f"{section} entry {i + 1}: {key} is {value_shown}, expected text{quote_hint(value)}",
        (section, i, key),
    )


def _bound(entry: dict[str, Any], i: int, key: str) -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GridError(
            f"kinds entry {i + 1}: {key} is {shown(value)}, expected a number", ("kinds", i, key)
        )
    try:
        return float(value)
    except OverflowError:
        raise GridError(
            f"kinds entry {i + 1}: {key} is too large, expected a finite number", ("kinds", i, key)
        ) from None


def load_grid(path: str | Path, cache_dir: Path | None = None) -> Grid:
    """Load a grid file (format in docs/events.md) and check every cross-reference.
    Raises one ``GridError`` with every fault, a line each as ``file:line: reason`` in
    line order (``PlaybookConfigError`` for a file that cannot be read or is not YAML).

    With ``cache_dir`` (the worker's and the ingests' ``CITYBRAIN_HOME/grids``), a grid
    that loaded is kept there as a pickle named by the SHA-256 of the file's bytes, of
    this package's code and of Python's version, and read back instead of parsed: the
    parse and checks took 0.15-0.3 s of every worker start (a restart after a crash
    included), the read about 1 ms. The file is read once, and the bytes hashed are the
    bytes parsed. A grid with faults is never kept (each load says them again); a cache
    that is missing, unreadable or damaged is parsed and written again (write then
    rename, so a reader never sees half a file); one that cannot be written is said
    once and skipped. Never raises for the cache; the pickle is read only from the
    user's own cache directory."""
    path = Path(path)
    if cache_dir is None:
        return _load_grid(path, None)
    try:
        data = path.read_bytes()
    except OSError:
        return _load_grid(path, None)  # its own error, as without a cache
    key = hashlib.sha256(b"\0".join([data, _code_digest(), sys.version.encode()]))
    return read_or_build(
        cache_dir / f"grid-{key.hexdigest()[:32]}.pickle",
        lambda: _load_grid(path, data),
        lambda found: isinstance(found, Grid),
        log=_log,
        what="grid: the parsed grid",
        unkept=f"each start parses {path} again (a fraction of a second)",
    )


def _code_digest() -> bytes:
    """SHA-256 of this package's source files: a cached grid is the objects of the code
    that built it, so any change to that code parses the grid again."""
    digest = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.digest()


def _load_grid(path: Path, data: bytes | None) -> Grid:
    """``load_grid`` without its cache, from ``data`` (the file's bytes) when given."""
    doc = _read_yaml(path, data)
    try:
        return _grid(doc)
    except GridError as exc:
        # Lines only on failure: composing the node tree doubles a large grid's load time.
        root = _compose(path, reader=_GridLoader, data=data)[1]
        lines = [(locate(root, loc) if loc else 1, message) for message, loc in exc.problems]
        lines.sort(key=lambda pair: pair[0])
        text = "\n".join(f"{path}:{line}: {message}" for line, message in lines)
        raise GridError(text, exc.loc, exc.problems) from exc


def _grid(doc: Any) -> Grid:
    if not isinstance(doc, dict):
        raise GridError("expected a mapping with 'cells' and 'sensors'")
    problems: Problems = []
    unchecked: set[str] = set()
    unknown = set(doc) - GRID_KEYS
    if unknown:
        problems.append(
            (f"unknown keys {sorted(unknown)}{_near(unknown, GRID_KEYS)}", (sorted(unknown)[0],))
        )
    version = doc.get("version")
    # `type(...) is int`: true and 1.0 equal 1 in Python, and were taken for it.
    if not (type(version) in (int, WrittenInt) and version == 1):
        why = "is missing" if "version" not in doc else f"is {shown(version)}"
        problems.append((f"version {why}, expected 1 (a line version: 1)", ("version",)))

    if doc.get("cells") in (None, []):
        # A worker on a grid without cells dead-letters every reading as unknown_sensor.
        why = "is missing" if "cells" not in doc else "is empty"
        problems.append((f"cells {why}, expected at least one city cell", ("cells",)))
    indices: dict[str, list[int]] = {}

    def each(key: str, allowed: set[str], make: Callable[[int, dict[str, Any]], _T]) -> list[_T]:
        out = []
        indices[key] = []
        for i, entry in _entries(doc, key, allowed, problems, unchecked):
            try:
                out.append(make(i, entry))
            except GridError as exc:
                problems.append((str(exc), exc.loc))
                unchecked.add(str(entry["id"]))
                continue
            indices[key].append(i)
        return out

    kinds = each(
        "kinds",
        KIND_KEYS,
        lambda i, e: SensorKind(
            id=_text(e, i, "kinds", "id"),
            unit=_text(e, i, "kinds", "unit"),
            min=_bound(e, i, "min"),
            max=_bound(e, i, "max"),
        ),
    )
    cells = each(
        "cells",
        CELL_KEYS,
        lambda i, e: Cell(
            id=_text(e, i, "cells", "id"),
            level=_text(e, i, "cells", "level"),
            name=_text(e, i, "cells", "name"),
            unit=_text(e, i, "cells", "unit"),
            parent=None if e.get("parent") is None else _text(e, i, "cells", "parent"),
            **_position(f"cell {e['id']!r}", e, ("cells", i)),
            geometry=_geometry(f"cell {e['id']!r}", e.get("geometry"), ("cells", i, "geometry")),
        ),
    )
    sensors = each(
        "sensors",
        SENSOR_KEYS,
        lambda i, e: SensorRegistration(
            id=_text(e, i, "sensors", "id"),
            kind=_text(e, i, "sensors", "kind"),
            unit=_text(e, i, "sensors", "unit"),
            cell=_text(e, i, "sensors", "cell"),
            **_position(f"sensor {e['id']!r}", e, ("sensors", i)),
        ),
    )
    try:
        grid = Grid.build(cells, sensors, kinds, frozenset(unchecked), indices)
    except GridError as exc:
        problems.extend(exc.problems)
    if problems:
        raise GridError(problems[0][0], problems[0][1], problems)
    return grid


def _position(
    what: str, entry: dict[str, Any], loc: tuple[str | int, ...]
) -> dict[str, float | None]:
    """``lat`` and ``lon`` of an entry (WGS84 degrees): both or neither, in range."""
    if "lat" not in entry and "lon" not in entry:
        return {"lat": None, "lon": None}
    if "lat" not in entry or "lon" not in entry:
        raise GridError(f"{what}: give both lat and lon, or neither", loc)
    out: dict[str, float | None] = {}
    for key, bound in (("lat", 90.0), ("lon", 180.0)):
        value = entry[key]
        # `not <=`: NaN (YAML's .nan) is refused too; `> bound` let it through.
        if isinstance(value, bool) or not isinstance(value, int | float) or not abs(value) <= bound:
            other = entry["lon" if key == "lat" else "lat"]
            swapped = (
                key == "lat"
                and isinstance(value, int | float)
                and abs(value) <= 180
                and isinstance(other, int | float)
                and abs(other) <= 90
            )
            raise GridError(
                f"{what}: {key} is {shown(value)}, expected degrees in [-{bound:g}, {bound:g}]"
                + (" (lat and lon swapped?)" if swapped else ""),
                (*loc, key),
            )
        out[key] = float(value)
    return out


def _geometry(what: str, value: Any, loc: tuple[str | int, ...]) -> dict[str, Any] | None:
    """A GeoJSON Polygon or MultiPolygon (RFC 7946: rings of [lon, lat] positions, each
    closed, enclosing an area), or None. Rings are returned rewound to the right-hand rule
    (outer ring counter-clockwise, holes clockwise): RFC 7946 3.1.6 says not to refuse
    the other winding, and an SVG path filled nonzero draws a hole wound like its outer
    ring as filled. Raises GridError naming the ring, the position and the value."""
    if value is None:
        return None
    nesting = {"Polygon": 1, "MultiPolygon": 2}  # nesting above the rings
    if not isinstance(value, dict) or value.get("type") not in nesting:
        got = shown(value.get("type")) if isinstance(value, dict) else shown(value)
        raise GridError(
            f"{what}: geometry must be a GeoJSON Polygon or MultiPolygon (type is {got})",
            loc,
        )
    unknown = set(value) - {"type", "coordinates", "bbox"}
    if unknown:
        raise GridError(
            f"{what}: geometry has unknown keys {sorted(map(str, unknown))}, expected "
            f"type and coordinates{_near(set(map(str, unknown)), {'type', 'coordinates'})}",
            loc,
        )
    coordinates = value.get("coordinates")
    polygons = [coordinates] if value["type"] == "Polygon" else coordinates
    if not isinstance(polygons, list) or not polygons:
        raise GridError(
            f"{what}: geometry coordinates are {_json(coordinates)}, expected "
            + ("a list of rings" if value["type"] == "Polygon" else "a list of polygons"),
            loc,
        )
    rewound: list[list[list[list[float]]]] = []
    for n, polygon in enumerate(polygons):
        where = f"polygon {n} " if value["type"] == "MultiPolygon" else ""
        if not isinstance(polygon, list) or not polygon:
            raise GridError(
                f"{what}: geometry {where}is {_json(polygon)}, expected a list of rings",
                loc,
            )
        rings = []
        for r, ring in enumerate(polygon):
            rings.append(_ring(f"{what}: geometry {where}ring {r}", ring, outer=r == 0, loc=loc))
        rewound.append(rings)
    return {
        "type": value["type"],
        "coordinates": rewound[0] if value["type"] == "Polygon" else rewound,
    }


# Metres either way of the ellipsoid an altitude may be: far past Everest and the
# Mariana Trench, short of what float() cannot hold.
_ALTITUDE = 100_000


def _json(value: Any) -> str:
    """A value from a geometry as JSON text (``[true, 0]``, ``[NaN, 1]``), clipped."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = shown(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _ring(what: str, ring: Any, outer: bool, loc: tuple[str | int, ...]) -> list[list[float]]:
    """One closed linear ring as [lon, lat] floats, wound counter-clockwise if ``outer``
    else clockwise (RFC 7946's right-hand rule)."""
    if not isinstance(ring, list) or len(ring) < 4:
        raise GridError(
            f"{what} is {_json(ring)}, expected a closed list of at least four "
            "[lon, lat] positions",
            loc,
        )
    points: list[list[float]] = []
    for k, p in enumerate(ring):
        ok = (
            isinstance(p, list)
            and len(p) in (2, 3)  # RFC 7946 3.1.1: an optional altitude, nothing more
            and all(isinstance(c, int | float) and not isinstance(c, bool) for c in p)
            # Floats only: an integer of 400 digits is out of range, not an OverflowError.
            and all(math.isfinite(c) for c in p if isinstance(c, float))
            and (len(p) == 2 or abs(p[2]) <= _ALTITUDE)
        )
        if ok and not (abs(p[0]) <= 180 and abs(p[1]) <= 90):
            swapped = abs(p[1]) <= 180 and abs(p[0]) <= 90
            raise GridError(
                f"{what} position {k} is {_json(p)}: longitude must be in [-180, 180] and "
                "latitude in [-90, 90], [lon, lat] in that order"
                + (" (lat and lon swapped?)" if swapped else ""),
                loc,
            )
        if not ok:
            raise GridError(
                f"{what} position {k} is {_json(p)}, expected [lon, lat] in degrees",
                loc,
            )
        points.append([float(c) for c in p])
    if points[0] != points[-1]:
        raise GridError(
            f"{what.replace('geometry ', 'geometry rings must be closed: ', 1)} starts at "
            f"{_json(points[0])} and ends at {_json(points[-1])} (repeat the first position "
            "at the end)",
            loc,
        )
    # Twice the signed area (shoelace): > 0 counter-clockwise. Longitudes unwrapped
    # first: a ring across the antimeridian (179 to -179) is a small one, drawn so by
    # the report, not one around the globe wound the other way.
    lons = [points[0][0]]
    for a, b in itertools.pairwise(points):
        step = b[0] - a[0]
        lons.append(lons[-1] + step - 360 * round(step / 360))
    area = sum(
        lons[j] * points[j + 1][1] - lons[j + 1] * points[j][1] for j in range(len(points) - 1)
    )
    if area == 0:
        raise GridError(f"{what} encloses no area (its positions lie on one line)", loc)
    if (area > 0) != outer:
        points.reverse()
    return points


def locate(root: yaml.Node | None, loc: tuple[str | int, ...]) -> int:
    """1-based line of the YAML node at ``loc`` (pydantic's error location), or of the
    nearest ancestor that exists. Discriminator tags in ``loc`` are skipped."""
    node, line = root, 1
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            if match is None:
                # A key pydantic reports that is not in the file: the key's own line
                # if present (unknown key), else stay on the mapping.
                key = next((k for k, _ in node.value if k.value == part), None)
                if key is not None:
                    line = key.start_mark.line + 1
                continue
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _compose(
    path: Path,
    nodes: bool = True,
    duplicates: list[str] | None = None,
    reader: type[_Loader] = _LOADER,
    data: bytes | None = None,
) -> tuple[Any, yaml.Node | None]:
    """The document and, with ``nodes``, its node tree (for error lines), read with
    ``reader`` (``_GridLoader`` for the grid) from ``path``, or from ``data`` (its bytes,
    already read). A key given twice in one mapping raises PlaybookConfigError, unless
    ``duplicates`` is given: then each is appended to it as an error line and the last
    value kept."""
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PlaybookConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    wide = wide_encoding(data)
    if wide is not None:
        # Alertmanager's YAML reader takes UTF-16 with a byte-order mark (what Windows
        # Notepad saves as "Unicode"); citybrain reads UTF-8 only, and says so (t44).
        # UTF-32 was said to be UTF-16 (its mark starts with UTF-16's), and UTF-16
        # without a mark a bad byte deep in the file (t121).
        raise PlaybookConfigError(
            f"{path}:1: the file is {wide}; citybrain reads YAML files as UTF-8 only: "
            "save it as UTF-8"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        row = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PlaybookConfigError(
            f"{path}:{row}: byte 0x{data[exc.start]:02x} at column {column} is not UTF-8 "
            f"({not_utf8_guess(data, exc.start)}save the file as UTF-8)"
        ) from None
    try:
        if duplicates is None:
            doc = yaml.load(text, Loader=reader)
        else:
            loader = _CollectingLoader(text)
            try:
                doc = loader.get_single_data()
            finally:
                loader.dispose()
            duplicates.extend(yaml_error(path, exc, text) for exc in loader.duplicates)
        root = yaml.compose(text, Loader=reader) if nodes else None
        _file_marks(root, text)
        return doc, root
    except yaml.YAMLError as exc:
        raise PlaybookConfigError(yaml_error(path, exc, text)) from exc


def _unreadable_character(path: str | Path, position: int, text: str) -> str:
    """``file:line: character U+0000 (NUL) at column C is not allowed in YAML …`` for a
    control character PyYAML's reader refuses at ``position`` of ``text``; a run of
    ``encodings.NUL_RUN`` NULs or more is said to be a block left unwritten by a crash.

    t180: a grid or routing file padded with NULs by a crash (or holding a terminal's
    ESC) said "unacceptable character #x0000: control characters are not allowed in
    "<unicode string>", position 70123", naming no line."""
    char = text[position]
    start = text.rfind("\n", 0, position) + 1
    if char == "\x00" and wide_encoding(text[start:].lstrip("\x00")[:64].encode()):
        # t180: UTF-16 appended to a UTF-8 file (Windows PowerShell's `>>`).
        return (
            f"{path}:{text.count(chr(10), 0, position) + 1}: UTF-16 text from this line on, "
            "not UTF-8 (a part written in another encoding: Windows PowerShell's >> appends "
            "UTF-16 to a file); save the file as UTF-8"
        )
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    name = unicodedata.name(char, "") or {"\x00": "NUL", "\x1b": "ESC"}.get(char, "a control")
    said = f"character U+{ord(char):04X} ({name}) at column {column} is not allowed in YAML"
    if block := nul_block(text, position):
        return f"{path}:{line}: {said}: {block}; remove them, or write the file again"
    return f"{path}:{line}: {said}; remove it"


def yaml_error(path: str | Path, exc: yaml.YAMLError, text: str) -> str:
    """A YAML syntax error on one line, ``file:line: not valid YAML: problem (column N;
    while parsing … from line M)``; PyYAML's own text runs to several lines with a
    snippet of the file. ``text``: the file's text as parsed, so that an error at its
    end (an unclosed quote or bracket) names the file's last line, ``at the end of the
    file``, not the line after the final newline, which the file does not have (t151:
    ``x.yaml:3`` for a file of 2 lines)."""
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        # libyaml counts its position in UTF-8 bytes, not characters: the refused
        # character is its first one in the text (the reader stops at it, and those it
        # refuses are never allowed anywhere).
        at = text.find(chr(exc.character))
        if at >= 0:
            return _unreadable_character(path, at, text)
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    at_end = False
    where = str(path)
    if mark is not None:
        at_end = mark.index >= len(text)
        # At the end, after the last line's break, the mark stands on no line: the last.
        after_break = at_end and mark.column == 0 and mark.line > 0
        line = file_line(text, mark)
        where = f"{path}:{line - 1 if after_break and line > 1 else line}"
    if problem == "second occurrence" and context and "duplicate anchor" in context:
        # libyaml's words read backwards here ("second occurrence (…; found duplicate
        # anchor; first occurrence from line 6)"): said as one sentence (t44).
        first = (
            f" (first on line {file_line(text, context_mark)})" if context_mark is not None else ""
        )
        return (
            f"{where}: not valid YAML: an anchor (&name) is given again{first}; give each "
            "anchor its own name (YAML readers differ on which one a later alias means: "
            "Alertmanager's takes the second)"
        )
    if isinstance(exc, SecondDocumentError | YamlNumberError):
        return f"{where}: {problem}"  # valid YAML, one document too many: not "not valid"
    details = []
    if mark is not None:
        details.append("at the end of the file" if at_end else f"column {mark.column + 1}")
    if context:
        from_line = (
            f" from line {file_line(text, context_mark)}" if context_mark is not None else ""
        )
        details.append(f"{context}{from_line}")
    syntax = isinstance(exc, yaml.scanner.ScannerError | yaml.parser.ParserError)
    hint = yaml_only_break(text, mark) if syntax and mark is not None else ""
    return (
        f"{where}: not valid YAML: {problem}"
        + (f" ({'; '.join(details)})" if details else "")
        + hint
    )


def _line_order(errors: list[str]) -> list[str]:
    """``file:line: …`` errors of one file sorted by line (stable: same-line errors keep
    the order they were found in)."""

    def line(error: str) -> int:
        head = error.split(": ", 1)[0]
        number = head.rsplit(":", 1)[-1]
        return int(number) if number.isascii() and number.isdigit() else 0

    return sorted(errors, key=line)


def _strip(tp: Any) -> Any:
    """``tp`` without Annotated and without ``| None``."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, UnionType):
        members = [a for a in get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return _strip(members[0])
    return tp


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema allows in the mapping at ``loc`` (pydantic's error location,
    discriminator tags included) of a ``model`` document, or [] if it cannot tell."""
    tp: Any = model
    for part in loc:
        tp = _strip(tp)
        if isinstance(part, int):
            tp = get_args(tp)[0] if get_origin(tp) is list else None
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            found = [f for n, f in tp.model_fields.items() if part in (n, f.alias)]
            tp = found[0].annotation if found else None
        elif get_origin(tp) in (Union, UnionType):
            # A discriminated union's tag, e.g. ("steps", 0, "notify", ...).
            tp = next((m for m in get_args(tp) if part in _tags(m)), None)
        else:
            tp = None
        if tp is None:
            return []
    tp = _strip(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return sorted(f.alias or n for n, f in tp.model_fields.items())
    return []


def _tags(model: Any) -> tuple[Any, ...]:
    is_model = isinstance(model, type) and issubclass(model, BaseModel)
    field = model.model_fields.get("action") if is_model else None
    return get_args(field.annotation) if field is not None else ()


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = closest(word, choices)
    return f"did you mean {close!r}?" if close is not None else f"expected one of {choices}"


# Alertmanager keys a routing file may bring that citybrain does not have: what to do
# instead, rather than a nearest key (trial 12: "receivers: did you mean 'routes'?").
_ALERTMANAGER_ONLY = {
    "receiver": "citybrain routes to a playbook: write playbook: with a playbook's name",
    "receivers": "citybrain's receivers are its playbooks (the playbook directory), not "
    "listed here; remove it",
    "global": "Alertmanager's notification settings have no place here; remove it",
    "templates": "Alertmanager's notification templates have no place here; remove it",
}
_ROUTING_MODELS: tuple[type[BaseModel], ...] = (RoutingConfig, RouteConfig, InhibitRuleConfig)


def _schema_message(model: type[BaseModel], error: ErrorDetails, nested: bool = False) -> str:
    """One pydantic error as a reason that names the value: ``unknown key 'departmnt':
    did you mean 'department'?``, ``is 'mayor', expected 'operator' or 'coordinator'``."""
    kind, loc, value = error["type"], tuple(error["loc"]), error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        instead = _ALERTMANAGER_ONLY.get(str(loc[-1])) if model in _ROUTING_MODELS else None
        if instead is not None:
            return f"unknown key {loc[-1]!r}: {instead}"
        return f"unknown key {loc[-1]!r}: {_did_you_mean(str(loc[-1]), _keys_at(model, loc[:-1]))}"
    if kind == "literal_error":
        # pydantic's "'operator' or 'coordinator'": the choices, for the closest one.
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"is {shown(value)}, expected {ctx.get('expected')}{did_you_mean(value, choices)}"
    if kind == "union_tag_invalid":
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        return (
            f"{ctx.get('discriminator', 'action').strip(chr(39))} is {ctx.get('tag')!r}: "
            f"{_did_you_mean(str(ctx.get('tag')), tags)}"
        )
    if kind == "missing":
        return "missing: this key is required"
    expected = _EXPECTED.get(kind)
    if expected is not None:
        if value is None and not loc and not nested:
            return f"the file is empty, expected {expected}"
        hint = quote_hint(value) if kind == "string_type" else ""
        return f"is {shown(value)}, expected {expected}{hint}"
    message = error["msg"].removeprefix("Value error, ")
    if kind != "value_error" and not isinstance(value, dict | list):
        message += f" (it is {shown(value)})"
    return message


# pydantic's type errors in YAML's words ("a valid dictionary or instance of Playbook").
_EXPECTED = {
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "dict_type": "a mapping (key: value lines)",
    "list_type": "a list",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "an integer",
    "int_parsing": "an integer",
}


def _schema_errors(
    model: type[BaseModel],
    found: list[ErrorDetails],
    path: Path,
    root: yaml.Node | None,
    prefix: tuple[str | int, ...] = (),
) -> list[str]:
    out = []
    for e in found:
        loc = (*prefix, *e["loc"])
        reason = _schema_message(model, e, nested=bool(prefix))
        out.append(f"{path}:{locate(root, loc)}: {_where(loc)}: {reason}")
    return out


def _lenient(
    model: type[_M], data: Any, report: Callable[[list[ErrorDetails]], None]
) -> tuple[_M | None, set[str]]:
    """``data`` validated as ``model`` with the keys that have errors left out (so the
    rest can still be checked), and those keys. Every error goes to ``report`` once.
    None when the rest is still not valid (a required key is bad or missing)."""
    dropped: set[str] = set()
    while True:
        try:
            return model.model_validate(data), dropped
        except ValidationError as exc:
            # A required key left out below for its own error is not "missing" too (t122:
            # `version: 2` in a routing file also said "version: missing: this key is
            # required", of a key written on that line).
            errors = [
                e for e in exc.errors() if not (e["type"] == "missing" and _dropped(e, dropped))
            ]
            if errors:
                report(errors)
            keys = [e["loc"][0] for e in errors if e["loc"]]
            bad = {k for k in keys if isinstance(k, str) and isinstance(data, dict) and k in data}
            if not bad or any(e["type"] == "missing" or not e["loc"] for e in exc.errors()):
                return None, dropped | bad
            data = {k: v for k, v in data.items() if k not in bad}
            dropped |= bad


def _dropped(error: ErrorDetails, dropped: set[str]) -> bool:
    return len(error["loc"]) == 1 and error["loc"][0] in dropped


def playbook_errors(path: str | Path) -> tuple[Playbook | None, list[str]]:
    """The playbook (if valid) and every error as ``file:line: location: reason``, in line
    order: schema errors and step cross-references together."""
    playbook, errors, _name = _check_playbook(Path(path))
    return playbook, errors


def _kafka_steps(doc: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """(location, topic) of each ``kafka`` step of a playbook ``doc`` (as read from
    YAML, valid or not) whose ``topic`` is text, in ``steps``, ``on_cancel`` and their
    parallel branches, in the file's order."""
    if not isinstance(doc, dict):
        return []
    places: list[tuple[tuple[str | int, ...], Any]] = []
    for key in ("steps", "on_cancel"):
        listed = doc.get(key)
        for i, step in enumerate(listed if isinstance(listed, list) else []):
            places.append(((key, i), step))
            branches = step.get("branches") if isinstance(step, dict) else None
            for j, branch in enumerate(branches if isinstance(branches, list) else []):
                places.append(((key, i, "branches", j), branch))
    return [
        ((*loc, "topic"), step["topic"])
        for loc, step in places
        if isinstance(step, dict)
        and step.get("action") == "kafka"
        and isinstance(step.get("topic"), str)
    ]


def _collision(topic: str, other: str, where: str) -> str:
    """The error for a task topic whose name collides with ``other``'s."""
    return (
        f"the task topic {topic!r} collides with {other!r} ({where}): Kafka takes only one "
        "of two topic names that differ only by '.' and '_', and refuses to create the "
        "other; write both alike"
    )


def task_topic_errors(doc: Any, topic_prefix: str) -> list[tuple[tuple[str | int, ...], str]]:
    """(location, message) for each ``kafka`` step of a playbook ``doc`` (as read from
    YAML, valid or not) whose task topic collides with another step's of the same
    playbook ('.' and '_' aside: Kafka refused the second, and before t172 every run of
    the step waited for it), or, once prefixed (``<topic_prefix>.<topic>``, as the
    worker sends and ``stack up`` creates it), is longer than Kafka takes (249
    characters): each part passed its own bound (the topic 200, the prefix 235) and the
    broker refused the pair when the step ran (t122)."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    first: dict[str, str] = {}
    for loc, topic in _kafka_steps(doc):
        other = first.setdefault(kafka_name_key(topic), topic)
        if other != topic:
            found.append((loc, _collision(topic, other, "another step of this playbook")))
        name = f"{topic_prefix}.{topic}"
        if topic_prefix and len(name) > KAFKA_TOPIC_NAME_MAX:
            shown = name if len(name) <= 64 else f"{name[:30]}…{name[-30:]}"
            found.append(
                (
                    loc,
                    f"the task topic {shown} is {len(name)} characters "
                    f"with the topic prefix ({len(topic_prefix)}), and Kafka takes at most "
                    f"{KAFKA_TOPIC_NAME_MAX}: shorten the topic or CITYBRAIN_TOPIC_PREFIX",
                )
            )
    return found


def _check_playbook(
    path: Path, topic_prefix: str = ""
) -> tuple[Playbook | None, list[str], tuple[str, int] | None]:
    """As playbook_errors, plus the playbook's name and its line when the file gives one
    (even if the rest is invalid: routes and duplicates refer to it). With
    ``topic_prefix``, a task topic too long once prefixed is an error too."""
    doc, root = _compose(path)
    errors: list[str] = []
    playbook = None
    try:
        playbook = Playbook.model_validate(doc)
    except ValidationError as exc:
        errors += _schema_errors(Playbook, exc.errors(), path, root)
    steps = doc.get("steps") if isinstance(doc, dict) else None
    errors += [
        f"{path}:{locate(root, loc)}: {_where(loc)}: {msg}"
        for loc, msg in [*step_reference_errors(steps), *task_topic_errors(doc, topic_prefix)]
    ]
    name = doc.get("playbook") if isinstance(doc, dict) else None
    named = (name, locate(root, ("playbook",))) if isinstance(name, str) else None
    return (None if errors else playbook), _line_order(errors), named


def load_playbook(path: str | Path) -> Playbook:
    """Load and validate one playbook; errors name the file, the line and the reason."""
    playbook, errors = playbook_errors(path)
    if playbook is None:
        raise PlaybookConfigError("\n".join(errors))
    return playbook


def _not_a_file(path: Path) -> str:
    """What ``path``, a listed name that is no directory and no regular file, is: a
    pipe, a socket, a device, or a symbolic link to nothing, as the end of a message
    naming it (``x.yaml is a pipe, …``, ``x.yaml: a symbolic link to …``)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if path.is_symlink() and exc.errno == errno.ENOENT:
            return f": a symbolic link to {os.readlink(path)!r}, which does not exist"
        return f": cannot read: {exc.strerror or exc}"
    what = "a pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f" is {what}, expected a regular file (a playbook's YAML)"


def check_playbooks(
    directory: str | Path, topic_prefix: str = ""
) -> tuple[dict[str, Playbook], set[str], list[str]]:
    """Every ``*.yaml`` playbook in ``directory``: the valid ones by name, the names every
    file gives (valid or not), and every error, file by file in line order. A name used
    twice is an error that names both files. ``topic_prefix``: the worker's
    (``CITYBRAIN_TOPIC_PREFIX``), against which task topics' lengths are checked."""
    found: dict[str, Playbook] = {}
    first: dict[str, Path] = {}
    topics: dict[str, tuple[str, Path]] = {}  # task topic's collision key -> topic, file
    errors: list[str] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        if path.is_dir():  # a folder named x.yaml holds no playbook (t121)
            continue
        if not path.is_file():
            # A pipe named x.yaml was opened and waited on for ever: `playbooks check`
            # and the worker's start hung, silent (t121).
            errors.append(f"{path}{_not_a_file(path)}")
            continue
        try:
            playbook, errs, named = _check_playbook(path, topic_prefix)
        except PlaybookConfigError as exc:  # unreadable or not YAML: the next file still counts
            errors.append(str(exc))
            continue
        if named is not None:
            name, line = named
            if name in first:
                errs = _line_order(
                    [
                        *errs,
                        f"{path}:{line}: playbook: name {name!r} is used twice: "
                        f"{first[name]} has it too",
                    ]
                )
                playbook = None
            first.setdefault(name, path)
        if playbook is not None:
            # A task topic colliding with another playbook's ('.' and '_' aside): Kafka
            # creates the first and refuses the second (t172).
            for topic in sorted(playbook.task_topics):
                other = topics.setdefault(kafka_name_key(topic), (topic, path))
                if other[0] != topic:
                    doc, root = _compose(path)  # read again for the step's line
                    line = next(
                        (locate(root, loc) for loc, t in _kafka_steps(doc) if t == topic), 1
                    )
                    errs = _line_order(
                        [
                            *errs,
                            f"{path}:{line}: {_collision(topic, other[0], str(other[1]))}",
                        ]
                    )
                    playbook = None
                    break
        errors.extend(errs)
        if playbook is not None:
            found[playbook.playbook] = playbook
    return found, set(first), errors


def library_parts(directory: str | Path) -> tuple[Path, Path | None] | None:
    """When ``directory`` is a playbook library rather than a playbook directory (the
    library's layout: a ``playbooks/`` folder of ``*.yaml``, ``routing.yaml`` beside
    it): its playbook directory and its routing file (None when it has none); else
    None. Read as playbooks, a library's routing.yaml was a playbook missing every key
    and every route's playbook "does not exist (known: )" (helper t102)."""
    root = Path(directory)
    inner = root / "playbooks"
    if not (inner.is_dir() and any(inner.glob("*.yaml"))):
        return None
    routing = root / "routing.yaml"
    return inner, routing if routing.is_file() else None


def load_playbooks(directory: str | Path, topic_prefix: str = "") -> dict[str, Playbook]:
    """Every ``*.yaml`` playbook in ``directory`` by name; all errors reported at once
    (PlaybookConfigError). ``topic_prefix``: as check_playbooks."""
    found, _names, errors = check_playbooks(directory, topic_prefix)
    if errors:
        raise PlaybookConfigError("\n".join(errors))
    return found


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc) or "<top>"


# A playbook's own top-level key, as its first column holds it (the schema's `playbook:`).
_PLAYBOOK_KEY = re.compile(rb"^(playbook|steps)[ \t]*:", re.M)
# Bytes of a file read to tell whether it is a playbook: a playbook names itself first.
PLAYBOOK_HEAD_BYTES = 65536


def looks_like_playbook(path: Path) -> bool:
    """Whether ``path`` reads as a playbook: a top-level ``playbook:`` or ``steps:`` key
    in its first ``PLAYBOOK_HEAD_BYTES`` (no YAML parse: a file with errors still counts,
    and check_playbooks says them); False when it cannot be read."""
    try:
        with path.open("rb") as file:
            return _PLAYBOOK_KEY.search(file.read(PLAYBOOK_HEAD_BYTES)) is not None
    except OSError:
        return False


LIBRARY = Path(__file__).parent / "library"
PLAYBOOK_DIR = LIBRARY / "playbooks"


def default_playbook_path() -> Path:
    return PLAYBOOK_DIR / "sensor-anomaly.yaml"


def load_routing(
    path: str | Path,
    playbooks: Mapping[str, Playbook] | Collection[str],
    values: Mapping[str, tuple[str, ...]] | None = None,
    warnings: list[str] | None = None,
) -> Router:
    """Load routing.yaml; unknown keys, bad matchers, unknown labels and playbooks that
    do not exist are all reported, each as ``file:line: location: reason``, in line order
    (RoutingConfigError). ``playbooks``: the playbooks (or their names) routes may name.
    With ``values`` (routing.label_values), a matcher on a value no alert can carry is an
    error too. ``warnings``: as routing_errors."""
    router, errors = routing_errors(path, playbooks, values, warnings)
    if router is None:
        raise RoutingConfigError("\n".join(errors))
    return router


def unrouted_playbooks(path: str | Path, router: Router, names: Collection[str]) -> list[str]:
    """A warning for each of ``names`` (the library's playbooks) that no route of
    ``router`` (read from the routing file ``path``) names, so no alert can run it:
    ``FILE:LINE: route: no route names playbook 'x', so no alert will run it; …``, at
    the ``route:`` line. Alertmanager takes a receiver no route names without a word;
    in citybrain it is a playbook written and never run, most often a route forgotten
    or naming another playbook (t122: the check and the worker said nothing). A
    warning, not an error: a playbook may be kept ready before its route is added.
    ``citybrain playbooks check`` prints these, and the worker logs them at start."""
    reachable = router.root.playbooks_reachable({})
    unrouted = sorted(set(names) - reachable)
    if not unrouted:
        return []
    _doc, root = _compose(Path(path))
    line = locate(root, ("route",))
    return [
        f"{path}:{line}: route: no route names playbook {name!r}, so no alert will run it; "
        "add a route to it, or remove its file from the playbook directory"
        for name in unrouted
    ]


def _matchers_key(raw: Any, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` (``matchers``, ``match``, ``match_re``) ``raw`` (a route or
    inhibit rule as the file has it) gives, for a warning's line; None for none."""
    return next((k for k in keys if isinstance(raw, dict) and k in raw), None)


def catch_all_warnings(
    path: str | Path, router: Router, values: Mapping[str, tuple[str, ...]] | None = None
) -> list[str]:
    """A ``FILE:LINE: location: warning`` for each route and inhibit rule of ``router``
    (read from the routing file ``path``) that matches every alert where the file seems
    to choose some (routing.every_alert, ``values`` as label_values gives them):

    - a child route whose matchers each match every alert (``category=~".*"``,
      ``severity=~"minor|major|critical"``, ``alert_id!=""``): it takes every alert that
      reaches it; without ``continue: true`` the routes after it are never reached, said
      with their locations;
    - a child route with no matchers, without ``continue: true``, before other routes:
      those are never reached;
    - an inhibit rule one side of which matches every alert (no matchers, ``[]``, or
      matchers that each do): said with what it then mutes; both sides: it mutes nothing
      (an alert matching both sides never mutes another that does, as in Alertmanager).

    Alertmanager takes each without a word, as it takes a silence's matchers before 0.20
    refused those that match every alert; here they are warnings (t197): ``citybrain
    playbooks check`` prints them, the worker logs them at start and on a reload."""
    doc, root = _compose(Path(path))
    found = values or {}
    out: list[str] = []

    def say(loc: tuple[str | int, ...], message: str) -> None:
        out.append(f"{path}:{locate(root, loc)}: {_where(loc)}: {message}")

    def why_all(matchers: tuple[Matcher, ...]) -> list[str]:
        reasons = [every_alert(m, found) for m in matchers]
        return reasons if all(reasons) else []

    raw_root = doc.get("route") if isinstance(doc, dict) else None
    # (route, its mapping in the file, its location), walked without recursion: a tree
    # may be as deep as YAML nests (about 1,000 levels).
    stack: list[tuple[Route, Any, tuple[str | int, ...]]] = [(router.root, raw_root, ("route",))]
    while stack:
        route, raw, loc = stack.pop()
        raws = raw.get("routes") if isinstance(raw, dict) else None
        children = route.routes
        for i, child in enumerate(children):
            child_raw = raws[i] if isinstance(raws, list) and i < len(raws) else None
            child_loc: tuple[str | int, ...] = (*loc, "routes", i)
            stack.append((child, child_raw, child_loc))
            after = len(children) - i - 1  # (counted, not listed: siblings may be many)
            shadowed = ""
            if after and not child.continue_:
                first, last = f"{_where(loc)}.routes.{i + 1}", f"{_where(loc)}.routes.{i + after}"
                routes = (
                    f"route after it ({first}) never sees"
                    if after == 1
                    else f"{after} routes after it ({first} to {last}) never see"
                )
                shadowed = f"; without continue: true, the {routes} an alert"
            reasons = why_all(child.matchers)
            if child.matchers and reasons:
                key = _matchers_key(child_raw, ("matchers", "match", "match_re"))
                said = "; ".join(
                    f"{str(m)!r} matches {why}"
                    for m, why in zip(child.matchers, reasons, strict=True)
                )
                say(
                    (*child_loc, key) if key else child_loc,
                    f"this route matches every alert that reaches it ({said}){shadowed}; "
                    "match on a label that tells the alerts apart, or leave the matchers "
                    "out if every alert is meant",
                )
            elif not child.matchers and shadowed:
                say(
                    child_loc,
                    f"this route has no matchers, so it takes every alert that reaches "
                    f"it{shadowed}; give it matchers, put it last, or add continue: true",
                )
    raw_rules = doc.get("inhibit_rules") if isinstance(doc, dict) else None
    for i, rule in enumerate(router.inhibit_rules):
        raw = raw_rules[i] if isinstance(raw_rules, list) and i < len(raw_rules) else None
        sides = {}
        for side, matchers in (("source", rule.source), ("target", rule.target)):
            reasons = why_all(matchers)
            if not matchers or reasons:
                said = "; ".join(
                    f"{str(m)!r} matches {why}" for m, why in zip(matchers, reasons, strict=True)
                )
                sides[side] = f"({said})" if said else "(it has no matchers)"
        if not sides:
            continue
        equal = f" with the same {', '.join(rule.equal)}" if rule.equal else ""
        first = next(iter(sides))
        keys = tuple(f"{first}_{k}" for k in ("matchers", "match", "match_re"))
        key = _matchers_key(raw, keys)
        where: tuple[str | int, ...] = ("inhibit_rules", i, *((key,) if key else ()))
        if len(sides) == 2:
            message = (
                f"both sides match every alert (source {sides['source']}, target "
                f"{sides['target']}), so this rule mutes nothing: an alert matching both "
                "sides never mutes another that does (as in Alertmanager)"
            )
        elif first == "source":
            message = (
                f"its source side matches every alert {sides['source']}, so any firing alert "
                f"its target matchers do not match mutes every alert they match{equal}"
            )
        else:
            message = (
                f"its target side matches every alert {sides['target']}, so every alert its "
                f"source matchers do not match is muted while one they match fires{equal}"
            )
        say(where, f"{message}; give the side matchers that tell the alerts apart")
    return out


_YAML_MAX_DEPTH = 1000  # libyaml's bound on nested block levels (0.2.5)
_UNKNOWN = object()  # a setting whose own value is an error: checks that need it are skipped


def routing_errors(
    path: str | Path,
    playbooks: Mapping[str, Playbook] | Collection[str],
    values: Mapping[str, tuple[str, ...]] | None = None,
    warnings: list[str] | None = None,
) -> tuple[Router | None, list[str]]:
    """As load_routing: the router (None if any error) and every error. A key with a
    schema error is left out and the rest of the file is still checked, so one mistake
    does not hide the next. With ``warnings``, each ``matchers:`` entry Alertmanager
    0.27's UTF-8 matchers read otherwise than 0.25 (taken as 0.25 reads it) is added
    there as ``file:line: location: warning`` instead of logged (routing.read_apart)."""
    path = Path(path)
    # A key given twice is an error, but not one that hides the rest (trial 7: nine
    # other errors showed only once it was removed): checked with the last value kept.
    errors: list[str] = []
    doc, root = _compose(path, duplicates=errors)
    _written_interval_names(doc, root)
    # YAML's merge key means something else to Alertmanager's YAML library (go-yaml v2)
    # than to PyYAML: there a key merged in after one written out replaces it, and
    # merged `matchers:` are added to the route's own (trial 12: `<<: *flood` with its
    # own `matchers:` routed pm25 alerts here, nowhere in Alertmanager). Refused.
    for merged, line in _merge_keys(root):
        errors.append(
            f"{path}:{line}: {_where(merged)}: YAML merge keys (<<) are not supported in a "
            "routing file (Alertmanager's YAML reader merges them differently: keys merged "
            "in later win, merged matchers add to the route's own); write the keys out "
            "(an alias of a whole value, *name, is fine)"
        )
    # Scalars Alertmanager's YAML reader (go-yaml v2, an older libyaml) refuses and
    # PyYAML's libyaml reads (trial 23's YAML fuzz): refused here too, saying why.
    text = path.read_text(encoding="utf-8")
    for line, message in _go_yaml_refusals(text):
        errors.append(f"{path}:{line}: {message}")

    def fail(loc: tuple[str | int, ...], message: str) -> None:
        errors.append(f"{path}:{locate(root, loc)}: {_where(loc)}: {message}")

    def reporter(
        model: type[BaseModel], loc: tuple[str | int, ...]
    ) -> Callable[[list[ErrorDetails]], None]:
        def report(found: list[ErrorDetails]) -> None:
            errors.extend(_schema_errors(model, found, path, root, loc))

        return report

    # The top level with its two lists' contents left for below.
    top = doc
    if isinstance(doc, dict):
        top = {**doc, **({"route": {}} if "route" in doc else {})}
        if isinstance(doc.get("inhibit_rules"), list):
            top["inhibit_rules"] = []
    _lenient(RoutingConfig, top, reporter(RoutingConfig, ()))

    # The named time intervals routes may mute or activate by (each entry's error said,
    # and the others still read; None when an entry has no name, so references to them
    # are not checked).
    named: dict[str, tuple[TimeInterval, ...]] | None = {}
    if isinstance(doc, dict):
        lists = {k: doc[k] for k in ("mute_time_intervals", "time_intervals") if _is_list(doc, k)}
        interval_problems: list[TimeIntervalError] = []
        named = parse_named_intervals(lists, interval_problems)
        for problem in interval_problems:
            fail(problem.loc, problem.reason)
        if any(not isinstance(e, dict) or "name" not in e for k in lists for e in lists[k]):
            named = None  # an entry without a name: a route may mean it, say nothing more

    def matchers(texts: list[str], loc: tuple[str | int, ...]) -> tuple[Matcher, ...]:
        # Each entry may hold several comma-separated matchers, as in Alertmanager.
        out: list[Matcher] = []
        for i, text in enumerate(texts):
            try:
                if warnings is None:
                    parsed = parse_matchers(text)
                else:
                    with read_apart_warnings() as found:
                        parsed = parse_matchers(text)
                    warnings.extend(
                        f"{path}:{locate(root, (*loc, i))}: {_where((*loc, i))}: {w}" for w in found
                    )
            except RoutingConfigError as exc:
                fail((*loc, i), str(exc))
                continue
            for matcher in parsed:
                never = impossible_value(matcher, values) if values is not None else ""
                if never:
                    fail((*loc, i), f"matcher {str(matcher)!r}: {never}")
            out.extend(parsed)
        return tuple(out)

    def label_map(
        pairs: Mapping[str, Any], op: str, loc: tuple[str | int, ...]
    ) -> tuple[Matcher, ...]:
        # Alertmanager's deprecated match/match_re maps: one matcher per label, the value
        # taken as written (no quoting or escapes), a regex anchored as a matcher's is.
        out: list[Matcher] = []
        for name, value in pairs.items():
            if not isinstance(value, str):
                # (Alertmanager's YAML reads any scalar as its text, 0x10 as "0x10",
                # amtool checked; PyYAML makes 16 of it: quoting says which is meant.)
                fail((*loc, name), f"is {shown(value)}, expected text (quote it)")
                continue
            if op == "=~" and _go_yaml_null(_node_at(root, (*loc, name)), text):
                # t157: go-yaml v2 takes a quoted (or block) "~" or "null" for no value where
                # Alertmanager reads the scalar through its own type (config.Regexp), and
                # Alertmanager then refuses the whole file; PyYAML reads the text.
                alike = "(?:~)" if value == "~" else "(?:null)"
                fail(
                    (*loc, name),
                    f"{value!r}, quoted or a block scalar, is read as no value (null) by "
                    "Alertmanager's YAML reader (go-yaml v2), which then refuses the file "
                    f'("cannot unmarshal !!str `{value}` into config.Regexp"); write the '
                    f"regex another way: {alike!r} matches the same",
                )
                continue
            # The location (route.routes.2.match.kind) names the map and label: the
            # message is the reason alone (trial 7: "match: kind: …" said it twice).
            try:
                if op == "=~":
                    compile_regex(value, "")  # (as Alertmanager's config checks it)
                    value = legacy_regex(value)
                matcher = Matcher.build(str(name), op, value, where="")
            except RoutingConfigError as exc:
                fail((*loc, name), str(exc))
                continue
            never = impossible_value(matcher, values) if values is not None else ""
            if never:
                fail((*loc, name), f"matcher {str(matcher)!r}: {never}")
            out.append(matcher)
        return tuple(out)

    def check_group_by(node: RouteConfig, loc: tuple[str | int, ...], root: bool) -> None:
        # Alertmanager's Route.UnmarshalYAML, plus two refusals where it would silently
        # differ from what the file seems to say (docs/playbooks.md).
        if node.group_by is None:
            if root:
                fail(
                    loc,
                    "the root route needs group_by: [...] for one run per alert, or the "
                    "labels whose equal values share a run (Alertmanager's default, [], "
                    "would put every alert in one run)",
                )
            return
        if not node.group_by and not root:
            fail(
                (*loc, "group_by"),
                "group_by: [] on a child route; Alertmanager reads it as unset (the "
                "parent's group_by); omit it to inherit, or name the labels",
            )
        seen: set[str] = set()
        mixed = ALL_LABELS in node.group_by and any(n != ALL_LABELS for n in node.group_by)
        for i, name in enumerate(node.group_by):
            if name == ALL_LABELS:
                if mixed:
                    fail(
                        (*loc, "group_by", i),
                        "cannot have wildcard group_by (`...`) and other labels at the same time",
                    )
                elif name in seen:
                    fail((*loc, "group_by", i), "group_by lists `...` more than once")
            elif name not in LABELS:
                fail(
                    (*loc, "group_by", i),
                    f"unknown label {name!r}: {_did_you_mean(name, sorted(LABELS))}",
                )
            elif name in seen:
                fail((*loc, "group_by", i), f"duplicated label {name!r} in group_by")
            seen.add(name)

    def check_intervals(node: RouteConfig, loc: tuple[str | int, ...]) -> None:
        for key in ("group_interval", "repeat_interval"):
            value = getattr(node, key)
            if value is not None and parse_duration(value) <= 0:
                fail((*loc, key), f"{key} cannot be zero (it is {value!r})")

    def build(
        raw: Any, parent: Mapping[str, Any], route_id: str, loc: tuple[str | int, ...]
    ) -> Route | None:
        is_root = route_id == "root"
        children_raw = raw.get("routes") if isinstance(raw, dict) else None
        shallow = raw
        if isinstance(children_raw, list):
            shallow = {k: v for k, v in raw.items() if k != "routes"}
        node, dropped = _lenient(RouteConfig, shallow, reporter(RouteConfig, loc))
        if node is None:
            return None
        if "group_by" not in dropped:
            check_group_by(node, loc, root=is_root)
        check_intervals(node, loc)
        settings = dict(parent)
        for key in ("playbook", "group_by", "group_wait", "group_interval", "repeat_interval"):
            if key in dropped:
                settings[key] = _UNKNOWN if key == "playbook" else settings.get(key)
            elif getattr(node, key) is not None:
                settings[key] = getattr(node, key)
        if node.playbook == "":
            # Alertmanager reads an empty receiver as unset, the parent's: a deliberate
            # refusal (docs/playbooks.md) that said only "playbook '' does not exist" (t50).
            fail(
                (*loc, "playbook"),
                "playbook is empty: the root route needs a playbook"
                if is_root
                else "playbook is empty; Alertmanager reads an empty receiver as unset (the "
                "parent's): leave the key out to inherit, or name a playbook",
            )
            settings["playbook"] = _UNKNOWN
        given = [
            key for key in ("matchers", "match", "match_re") if getattr(node, key) or key in dropped
        ]
        if is_root and given:
            fail((*loc, given[0]), "the root route matches every alert: it takes no matchers")
        if is_root and (node.continue_ or "continue" in dropped):
            fail((*loc, "continue"), "the root route cannot continue")
        if settings.get("playbook") is None:
            if is_root:  # its children inherit the lack: one error is enough
                fail(loc, "the root route needs a playbook")
        elif settings["playbook"] is not _UNKNOWN and settings["playbook"] not in playbooks:
            near = closest(settings["playbook"], sorted(playbooks))
            fail(
                (*loc, "playbook"),
                f"playbook {settings['playbook']!r} does not exist "
                f"(known: {', '.join(sorted(playbooks))})"
                + (f" (did you mean {near!r}?)" if near is not None else ""),
            )
        for key in ("mute_time_intervals", "active_time_intervals"):
            names = getattr(node, key)
            if is_root and names:
                fail(
                    (*loc, key),
                    f"the root route cannot have {key} (Alertmanager refuses them there: "
                    "the root takes every alert); put them on a child route",
                )
            elif named is not None:
                try:
                    check_references(names, named, (*loc, key))
                except TimeIntervalError as exc:
                    fail(exc.loc, exc.reason)
        route_matchers = (
            matchers(node.matchers, (*loc, "matchers"))
            + label_map(node.match, "=", (*loc, "match"))
            + label_map(node.match_re, "=~", (*loc, "match_re"))
        )
        children = [
            build(child, settings, f"{route_id}.{i}", (*loc, "routes", i))
            for i, child in enumerate(children_raw if isinstance(children_raw, list) else [])
        ]
        if errors:
            return None
        return Route(
            id=route_id,
            matchers=route_matchers,
            playbook=str(settings.get("playbook")),
            continue_=node.continue_,
            group_by=tuple(settings.get("group_by") or ()),
            group_wait=parse_duration(settings["group_wait"]),
            group_interval=parse_duration(settings["group_interval"]),
            repeat_interval=parse_duration(settings["repeat_interval"]),
            routes=tuple(c for c in children if c is not None),
            mute_time_intervals=tuple(node.mute_time_intervals),
            active_time_intervals=tuple(node.active_time_intervals),
        )

    # build recurses, two frames a level: a tree nested as deep as YAML lets a file nest
    # (libyaml's 1,000 block levels: about 1,000 routes) needs more than Python's 1,000
    # (trial 23: RecursionError, exit 70, on a tree Alertmanager reads).
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * _YAML_MAX_DEPTH + 1000))
    try:
        tree = (
            build(doc["route"], ROUTE_DEFAULTS, "root", ("route",)) if _has(doc, "route") else None
        )
    finally:
        sys.setrecursionlimit(limit)
    rules = []
    raw_rules = doc.get("inhibit_rules") if isinstance(doc, dict) else None
    for i, raw_rule in enumerate(raw_rules if isinstance(raw_rules, list) else []):
        loc: tuple[str | int, ...] = ("inhibit_rules", i)
        rule, _ = _lenient(InhibitRuleConfig, raw_rule, reporter(InhibitRuleConfig, loc))
        if rule is None:
            continue
        for j, name in enumerate(rule.equal):
            if name not in LABELS:
                fail(
                    (*loc, "equal", j),
                    f"unknown label {name!r}: {_did_you_mean(name, sorted(LABELS))}",
                )
        sides = []
        for side in ("source", "target"):
            keys = (f"{side}_matchers", f"{side}_match", f"{side}_match_re")
            if not isinstance(raw_rule, dict) or not any(k in raw_rule for k in keys):
                fail(
                    (*loc, keys[0]),
                    f"missing: {keys[0]} is required (or Alertmanager's {keys[1]} or {keys[2]})",
                )
            sides.append(
                matchers(getattr(rule, keys[0]), (*loc, keys[0]))
                + label_map(getattr(rule, keys[1]), "=", (*loc, keys[1]))
                + label_map(getattr(rule, keys[2]), "=~", (*loc, keys[2]))
            )
        rules.append(InhibitRule(sides[0], sides[1], tuple(rule.equal)))
    if errors or tree is None:
        return None, _line_order(errors)
    return Router(with_paths(tree), tuple(rules), named or {}), []


_SLASH_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\/")  # \/ after an even run of backslashes


def _go_yaml_refusals(text: str) -> list[tuple[int, str]]:
    """Scalars of ``text`` that PyYAML reads and Alertmanager's YAML reader (go-yaml v2)
    refuses, each as (1-based line, reason): ``\\/`` in a double-quoted scalar (an escape
    YAML 1.2 added; go-yaml v2 says "found unknown escape character") and ``?`` in an
    unquoted scalar inside ``[…]`` or ``{…}`` (go-yaml v2 ends the scalar there, then
    refuses the file), and a ``%YAML`` directive other than ``1.1`` (go-yaml v2: "found
    incompatible YAML document"; libyaml takes 1.2 too). The file must already be read as
    YAML."""
    found: list[tuple[int, str]] = []
    flow = 0
    for token in yaml.scan(text, Loader=_BASE_LOADER):
        if (
            isinstance(token, yaml.DirectiveToken)
            and token.name == "YAML"
            and token.value != (1, 1)
        ):
            version = ".".join(map(str, token.value or ()))
            found.append(
                (
                    file_line(text, token.start_mark),
                    f"%YAML {version}: Alertmanager's YAML reader (go-yaml v2) takes only "
                    "%YAML 1.1 and refuses the file; write %YAML 1.1 or leave it out",
                )
            )
        elif isinstance(token, yaml.FlowSequenceStartToken | yaml.FlowMappingStartToken):
            flow += 1
        elif isinstance(token, yaml.FlowSequenceEndToken | yaml.FlowMappingEndToken):
            flow -= 1
        elif isinstance(token, yaml.ScalarToken):
            raw = text[token.start_mark.index : token.end_mark.index]
            line = file_line(text, token.start_mark)
            if token.style == '"' and _SLASH_ESCAPE.search(raw):
                found.append(
                    (
                        line,
                        f"{raw[:60]}: \\/ is not an escape to Alertmanager's YAML reader "
                        "(go-yaml v2 refuses the file); write / alone",
                    )
                )
            elif token.plain and flow > 0 and "?" in raw:
                found.append(
                    (
                        line,
                        f"{raw[:60]}: a ? in an unquoted value inside [...] or {{...}} ends "
                        "the value for Alertmanager's YAML reader (go-yaml v2 then refuses "
                        "the file); quote the value",
                    )
                )
    return found


def _node_at(root: yaml.Node | None, loc: tuple[str | int, ...]) -> yaml.Node | None:
    """The YAML node at ``loc`` (keys and list indices from ``root``; the last of a key
    given twice, as PyYAML keeps), or None where the path leaves the tree."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = _value_node(node, str(part))
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if 0 <= part < len(node.value) else None
        else:
            return None
    return node


_PROPERTIES = re.compile(r"(?:&\S+\s+)?(!)?")  # an anchor, then a tag (captured) or not


def _go_yaml_null(node: yaml.Node | None, text: str) -> bool:
    """Whether go-yaml v2 (Alertmanager's YAML reader) takes the scalar ``node`` of the
    document ``text`` for null where a type of Alertmanager's own decodes it
    (``decoder.prepare``: any untagged scalar whose value is ``~`` or ``null``, quoted or
    a block too), while PyYAML reads text: a quoted ``'~'``, ``"null"`` (``"\\x7e"``
    too, its value being ``~``), a block scalar (``|-``) holding ``~``, anchored or not,
    but not ``!!str ~``, whose tag go-yaml keeps."""
    if not isinstance(node, yaml.ScalarNode) or node.style not in ("'", '"', "|", ">"):
        return False
    if node.value not in ("~", "null"):
        return False
    written = _PROPERTIES.match(text, node.start_mark.index)
    return written is not None and written.group(1) is None


def _merge_keys(root: yaml.Node | None) -> list[tuple[tuple[str | int, ...], int]]:
    """Where a routing file uses YAML's merge key (``<<``): each (location, 1-based
    line), in file order. Aliases are followed once (a node reached twice is not walked
    again). Iterative: a tree of routes nested as deep as YAML allows (about 1,000
    levels) is walked without recursion (trial 23: RecursionError, exit 70)."""
    found: list[tuple[tuple[str | int, ...], int]] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [] if root is None else [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        children: list[tuple[yaml.Node, tuple[str | int, ...]]] = []
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.tag == _MERGE:
                    found.append(((*loc, "<<"), key.start_mark.line + 1))
                children.append((value, (*loc, str(key.value))))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, (*loc, i)) for i, item in enumerate(node.value)]
        stack.extend(reversed(children))
    return found


def _value_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    """The value node of ``key`` in a mapping node (the last, as PyYAML keeps), or None."""
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in reversed(node.value) if k.value == key), None)


def _as_written(value: Any, node: yaml.Node | None) -> Any:
    """``value`` (read from ``node``) as its text as written when YAML made it other than
    text, a list or a mapping (2024, 11.11, off, 2026-10-01); else ``value`` itself."""
    if (
        value is None
        or isinstance(value, str | list | dict)
        or not isinstance(node, yaml.ScalarNode)
    ):
        return value
    return node.value


def _written_text(items: Any, node: yaml.Node | None) -> None:
    """Each item of the list ``items`` read from the sequence ``node`` as written."""
    if isinstance(items, list) and isinstance(node, yaml.SequenceNode):
        for i, item_node in enumerate(node.value[: len(items)]):
            items[i] = _as_written(items[i], item_node)


def _written_interval_names(doc: Any, root: yaml.Node | None) -> None:
    """Time interval names as Alertmanager's YAML reader (go-yaml v2) gives a text field:
    any scalar's text as written, so ``name: 2026-10-01`` or ``name: 618`` and a route's
    ``mute_time_intervals: [618]`` name the interval "2026-10-01" / "618" there (before:
    refused here, "is datetime.date(2026, 10, 1), expected text", where amtool takes them).
    The intervals' fields likewise. Changes ``doc`` in place; iterative, as routes nest
    as deep as YAML allows."""
    if not isinstance(doc, dict):
        return
    for key in ("mute_time_intervals", "time_intervals"):
        entries, entries_node = doc.get(key), _value_node(root, key)
        if not isinstance(entries, list) or not isinstance(entries_node, yaml.SequenceNode):
            continue
        for entry, entry_node in zip(entries, entries_node.value, strict=False):
            if not isinstance(entry, dict):
                continue
            if "name" in entry:
                entry["name"] = _as_written(entry["name"], _value_node(entry_node, "name"))
            # Its fields too, so a bad one is named as there ("day of the month
            # '2026-10-01' is not a whole number", not "is 2026-10-01, expected text").
            intervals, intervals_node = (
                entry.get("time_intervals"),
                _value_node(entry_node, "time_intervals"),
            )
            if not isinstance(intervals, list) or not isinstance(intervals_node, yaml.SequenceNode):
                continue
            for interval, node in zip(intervals, intervals_node.value, strict=False):
                if not isinstance(interval, dict):
                    continue
                for field in ("weekdays", "days_of_month", "months", "years"):
                    _written_text(interval.get(field), _value_node(node, field))
                if "location" in interval:
                    interval["location"] = _as_written(
                        interval["location"], _value_node(node, "location")
                    )
                times, times_node = interval.get("times"), _value_node(node, "times")
                if isinstance(times, list) and isinstance(times_node, yaml.SequenceNode):
                    for one, one_node in zip(times, times_node.value, strict=False):
                        for end in ("start_time", "end_time"):
                            if isinstance(one, dict) and end in one:
                                one[end] = _as_written(one[end], _value_node(one_node, end))
    seen: set[int] = set()
    stack: list[tuple[Any, yaml.Node | None]] = [(doc.get("route"), _value_node(root, "route"))]
    while stack:
        route, node = stack.pop()
        if not isinstance(route, dict) or id(route) in seen:
            continue
        seen.add(id(route))
        for key in ("mute_time_intervals", "active_time_intervals"):
            _written_text(route.get(key), _value_node(node, key))
        children, children_node = route.get("routes"), _value_node(node, "routes")
        if isinstance(children, list) and isinstance(children_node, yaml.SequenceNode):
            stack.extend(zip(children, children_node.value, strict=False))


def _is_list(doc: dict[str, Any], key: str) -> bool:
    return isinstance(doc.get(key), list)


def _has(doc: Any, key: str) -> bool:
    return isinstance(doc, dict) and key in doc


def default_routing_path() -> Path:
    return LIBRARY / "routing.yaml"
