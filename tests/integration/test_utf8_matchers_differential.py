"""Matcher entries read by Alertmanager 0.27's own parsers (t113) and by Debian's 0.25.

citybrain follows Alertmanager 0.25's matcher grammar. 0.27 added a UTF-8 grammar
(``matchers/parse``; ``--enable-feature=utf8-strict-mode`` uses it alone, the default
mode falls back to the classic one): a routing file written for it must get a clear
refusal naming the matcher wherever the two grammars read an entry apart, never a
silently different route. ``tools/ammatchers`` (built here from Alertmanager 0.27.0's
module) prints both readings of each generated entry (``utf8gen.py``); ``amtool
check-config`` (0.25) says which entries 0.25 accepts.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from playbooks.errors import RoutingConfigError
from playbooks.routing import compile_regex, parse_matchers
from playbooks.utf8matchers import same_reading
from tests.integration import utf8gen

pytestmark = pytest.mark.integration

TOOL = Path(__file__).resolve().parents[2] / "tools" / "ammatchers"
AMTOOL = shutil.which("amtool")
SEED, ENTRIES = 20261206, 1500


def _go() -> str:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    assert go is not None, "the Go toolchain is missing (.ci/run installs golang-go when absent)"
    return go


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tools/ammatchers, built once for this module."""
    cache = Path.home() / ".cache" / "citybrain-go"
    binary = tmp_path_factory.mktemp("ammatchers") / "ammatchers"
    env = {
        **os.environ,
        "GOPATH": str(cache),
        "GOMODCACHE": str(cache / "mod"),
        "GOCACHE": str(cache / "build"),
        "GOFLAGS": "-mod=readonly -buildvcs=false",
        "GOTOOLCHAIN": "local",
    }
    built = subprocess.run(
        [_go(), "build", "-o", str(binary), "."],
        cwd=TOOL,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return binary


def readings(binary: Path, entries: list[str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(binary)],
        input="".join(json.dumps(e) + "\n" for e in entries),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == len(entries), done.stderr
    return [json.loads(line) for line in lines]


def _reading(answer: dict[str, Any]) -> list[tuple[str, str, str]] | None:
    if answer.get("error"):
        return None
    return [(m["name"], m["op"], m["value"]) for m in answer["matchers"] or []]


def ours(entry: str) -> list[tuple[str, str, str]] | str:
    try:
        return [(m.name, m.op, m.value) for m in parse_matchers(entry)]
    except RoutingConfigError as exc:
        return str(exc)


def alertmanager_025_accepts(tmp: Path, i: int, entry: str) -> bool:
    assert AMTOOL is not None
    path = tmp / f"am-{i}.yml"
    route = {"receiver": "r", "matchers": [entry]}
    config = {"route": {"receiver": "r", "routes": [route]}, "receivers": [{"name": "r"}]}
    path.write_text(json.dumps(config))
    done = subprocess.run(
        [AMTOOL, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    return done.returncode == 0


def judge(entry: str, answer: dict[str, Any], am025: bool) -> str | None:
    """What is wrong with citybrain's reading of ``entry``, or None."""
    classic, utf8 = _reading(answer["classic"]), _reading(answer["utf8"])
    got = ours(entry)
    if am025 != (classic is not None):
        return f"{entry!r}: 0.25 accepts={am025}, 0.27's classic parser {answer['classic']}"
    if classic is None:
        if not isinstance(got, str):
            return f"{entry!r}: both Alertmanager parsers refuse it, citybrain read {got}"
        return None
    if utf8 is not None and not same_reading(utf8, classic):
        if not isinstance(got, str) or "UTF-8" not in got:
            return f"{entry!r}: 0.25 reads {classic}, 0.27's UTF-8 {utf8}; citybrain {got!r}"
        return None
    if isinstance(got, str):
        # Empty entries and `{}` are refused deliberately (docs/playbooks.md).
        return None if not classic else f"{entry!r}: citybrain refused {got!r}, both {classic}"
    return None if got == classic else f"{entry!r}: citybrain {got}, Alertmanager {classic}"


# Entries the generator found (seed 20261206) that the two grammars read apart, each
# routed silently as 0.25 reads it before t113.
_ALPHABET = ["", "a", "b", "x", "é", " ", "\t", "\r", "\n", "\f", "\v", "\a", "\b", ".", "*"]
_ALPHABET += ["A", ",", "\\", "water_level", "a.b", "a\tb"]
PROBES = _ALPHABET + [x + y for x in _ALPHABET[1:10] for y in _ALPHABET[1:10]]
SEEN = [
    'category="a\\tb"',
    'kind=~"\\bwater"',
    'category="\\x41"',
    'category="\\u00e9"',
    'category="\\101"',
    'kind=~"a\\x2eb"',
    '{kind="a", category="\\xc3\\xa9"}',
    # test_matcher_text_reads_as_alertmanager_reads_it's: 0.25 keeps the U+2028.
    '{ severity !~\t"~!!~{=",   category!= \r\u2028é\u2028}',
]


def test_generated_entries_read_alike_or_refused_naming_utf8(
    reference: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    entries = [utf8gen.entry(rng) for _ in range(ENTRIES)] + SEEN
    answers = readings(reference, entries)
    with ThreadPoolExecutor(max_workers=4) as pool:
        am025 = list(
            pool.map(lambda job: alertmanager_025_accepts(tmp_path, *job), enumerate(entries))
        )
    problems = [
        p
        for e, a, ok in zip(entries, answers, am025, strict=True)
        if (p := judge(e, a, ok)) is not None
    ]
    apart = [
        e
        for e, a in zip(entries, answers, strict=True)
        if _reading(a["classic"]) is not None
        and _reading(a["utf8"]) is not None
        and _reading(a["utf8"]) != _reading(a["classic"])
    ]
    assert not problems, f"{len(problems)} of {len(entries)} differ:\n" + "\n".join(problems[:20])
    # Regexes the two read apart only in spelling (`"\\t"`: the regex \t, or a tab) are
    # taken; each pair must match alike on values around the escapes generated.
    pairs = [
        (u[2], c[2])
        for e in apart
        if not isinstance(ours(e), str)
        for a in [answers[entries.index(e)]]
        for u, c in zip(_reading(a["utf8"]) or [], _reading(a["classic"]) or [], strict=True)
        if u != c
    ]
    assert pairs, "no regex read apart only in spelling was generated"
    for utf8_regex, classic_regex in pairs:
        one, two = compile_regex(utf8_regex, "utf8"), compile_regex(classic_regex, "classic")
        for value in PROBES:
            assert (one.search(value) is None) == (two.search(value) is None), (
                utf8_regex,
                classic_regex,
                value,
            )
    # The generator reaches the kind: a good share of entries are read apart.
    assert len(apart) >= ENTRIES // 20, len(apart)
    assert all(e in apart for e in SEEN)


@pytest.mark.parametrize("entry", ['"kind"="water_level"', "kind.x=a", '{"service.name"="api"}'])
def test_utf8_label_names_are_refused_naming_utf8(reference: Path, entry: str) -> None:
    (answer,) = readings(reference, [entry])
    assert _reading(answer["classic"]) is None and _reading(answer["utf8"]) is not None
    got = ours(entry)
    assert isinstance(got, str) and "Alertmanager 0.27's UTF-8 matchers" in got, got
    assert repr(entry) in got
