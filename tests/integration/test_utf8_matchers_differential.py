"""Matcher entries read by Alertmanager 0.27's own parsers (t113) and by Debian's 0.25.

citybrain follows Alertmanager 0.25's matcher grammar (the real binary here is its
reference). 0.27 added a UTF-8 grammar (``matchers/parse``; ``--enable-feature=
utf8-strict-mode`` uses it alone, the default mode falls back to the classic one and
logs "Matchers input has disagreement"). An entry 0.25 accepts is taken as 0.25 reads it
(t115; t113 refused it), and where the UTF-8 grammar reads it otherwise a warning names
both readings, so a routing file written for UTF-8 matchers is never routed otherwise
without a word. ``tools/ammatchers`` (built here from Alertmanager 0.27.0's module)
prints the readings of each generated entry (``utf8gen.py``); ``amtool check-config`` and
``amtool config routes test`` (0.25) say which entries 0.25 accepts and where an alert
goes.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from playbooks.errors import RoutingConfigError
from playbooks.routing import (
    _log_once,
    _shown,
    compile_regex,
    escape,
    matches_all,
    parse_matchers,
    read_apart_warnings,
)
from playbooks.utf8matchers import same_reading
from tests.integration import gotools, utf8gen

pytestmark = pytest.mark.integration

TOOL = Path(__file__).resolve().parents[2] / "tools" / "ammatchers"
AMTOOL = shutil.which("amtool")
SEED, ENTRIES = 20261206, 1500


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tools/ammatchers, built once for this module."""
    return gotools.build(TOOL, tmp_path_factory)


def readings(binary: Path, entries: list[str]) -> list[dict[str, Any]]:
    return gotools.ask(binary, entries, timeout=120)


def _reading(answer: dict[str, Any]) -> list[tuple[str, str, str]] | None:
    if answer.get("error"):
        return None
    return [(m["name"], m["op"], m["value"]) for m in answer["matchers"] or []]


def ours(entry: str) -> tuple[list[tuple[str, str, str]] | str, list[str]]:
    """citybrain's reading of ``entry`` (or its refusal) and the warnings it gave."""
    with read_apart_warnings() as warned:
        try:
            return [(m.name, m.op, m.value) for m in parse_matchers(entry)], warned
        except RoutingConfigError as exc:
            return str(exc), warned


def _am_config(entry: str) -> dict[str, Any]:
    route = {"receiver": "hit", "matchers": [entry]}
    receivers = [{"name": "r"}, {"name": "hit"}]
    return {"route": {"receiver": "r", "routes": [route]}, "receivers": receivers}


def alertmanager_025_accepts(tmp: Path, i: int, entry: str) -> bool:
    assert AMTOOL is not None
    path = tmp / f"am-{i}.yml"
    path.write_text(json.dumps(_am_config(entry)))
    done = subprocess.run(
        [AMTOOL, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    return done.returncode == 0


def alertmanager_025_routes(tmp: Path, i: int, labels: dict[str, str]) -> str:
    """The receiver amtool 0.25 routes ``labels`` to with am-``i``.yml (written by
    alertmanager_025_accepts): "hit" when the entry's route matches, else "r"."""
    assert AMTOOL is not None
    args = [f'{k}="{escape(v)}"' for k, v in labels.items()]
    done = subprocess.run(
        [AMTOOL, "config", "routes", "test", f"--config.file={tmp / f'am-{i}.yml'}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def judge(entry: str, answer: dict[str, Any], am025: bool) -> str | None:
    """What is wrong with citybrain's reading of ``entry`` or its warning, or None."""
    classic, utf8 = _reading(answer["classic"]), _reading(answer["utf8"])
    got, warned = ours(entry)
    if am025 != (classic is not None):
        return f"{entry!r}: 0.25 accepts={am025}, 0.27's classic parser {answer['classic']}"
    if classic is None:
        if not isinstance(got, str):
            return f"{entry!r}: both Alertmanager parsers refuse it, citybrain read {got}"
        return None
    if classic != _reading(answer["default"]):
        return f"{entry!r}: 0.27's default mode reads {answer['default']}, classic {classic}"
    apart = utf8 is not None and not same_reading(utf8, classic)
    if isinstance(got, str):
        # Empty entries and `{}` are refused deliberately (docs/playbooks.md).
        return None if not classic else f"{entry!r}: citybrain refused {got!r}, 0.25 {classic}"
    if got != classic:
        return f"{entry!r}: citybrain {got}, Alertmanager 0.25 {classic}"
    if not apart:
        return None if not warned else f"{entry!r}: read alike, yet warned {warned}"
    assert utf8 is not None
    named = [w for w in warned if _shown(classic) in w and _shown(utf8) in w]
    if len(warned) != 1 or len(named) != 1 or repr(entry) not in named[0]:
        return f"{entry!r}: 0.27's UTF-8 reads {utf8}, warned {warned}"
    return None


def label_sets(answer: dict[str, Any]) -> list[dict[str, str]]:
    """Alerts on the seam of an entry read apart: each reading's values as labels."""
    out = []
    for reading in (_reading(answer["classic"]), _reading(answer["utf8"])):
        labels = {name: value for name, _op, value in reading or [] if "\x00" not in value}
        if labels and labels not in out:
            out.append(labels)
    return out


# Entries the generator found (seed 20261206) that the two grammars read apart, each
# routed silently as 0.25 reads it before t113, refused in t113, warned of since t115.
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


def test_generated_entries_read_as_0_25_reads_them_warned_where_0_27_differs(
    reference: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
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
    assert not problems, f"{len(problems)} of {len(entries)} differ:\n" + "\n".join(problems[:20])
    apart = [
        i
        for i, a in enumerate(answers)
        if (classic := _reading(a["classic"])) is not None
        and (utf8 := _reading(a["utf8"])) is not None
        and not same_reading(utf8, classic)
    ]
    # Where an alert goes: amtool 0.25 against citybrain, on each entry read apart, with
    # the labels of 0.25's reading and of 0.27's (a 0.27 strict-mode user's alert).
    jobs = [(i, labels) for i in apart for labels in label_sets(answers[i])]
    with ThreadPoolExecutor(max_workers=4) as pool:
        routed = list(pool.map(lambda job: alertmanager_025_routes(tmp_path, *job), jobs))
    routing = [
        f"{entries[i]!r} {labels}: amtool 0.25 {theirs}, citybrain {mine}"
        for (i, labels), theirs in zip(jobs, routed, strict=True)
        if theirs != (mine := "hit" if matches_all(parse_matchers(entries[i]), labels) else "r")
    ]
    assert not routing, f"{len(routing)} of {len(jobs)} route otherwise:\n" + "\n".join(
        routing[:20]
    )
    assert {"hit", "r"} <= set(routed), Counter(routed)  # both outcomes reached
    # The warning goes to the log of playbooks.routing, once per entry.
    _log_once.cache_clear()
    caplog.clear()  # (the routing above logged each entry once already)
    with caplog.at_level(logging.WARNING, logger="playbooks.routing"):
        for _ in range(2):
            for i in apart:
                parse_matchers(entries[i])
    logged = [r for r in caplog.records if r.name == "playbooks.routing"]
    assert len(logged) == len({entries[i] for i in apart}), len(logged)
    assert all(r.levelno == logging.WARNING for r in logged)
    print(
        f"\n{len(entries)} entries, {sum(am025)} accepted by amtool 0.25, {len(apart)} read "
        f"apart by 0.27's UTF-8 matchers (each warned of), {len(jobs)} label sets routed "
        f"as amtool 0.25 routes them, {Counter(routed)}; {len(logged)} warnings logged"
    )
    # Regexes the two read apart only in spelling (`"\\t"`: the regex \t, or a tab) are
    # taken without a warning; each pair must match alike on values around the escapes.
    pairs = [
        (u[2], c[2])
        for a in answers
        if (classic := _reading(a["classic"])) is not None
        and (utf8 := _reading(a["utf8"])) is not None
        and utf8 != classic
        and same_reading(utf8, classic)
        for u, c in zip(utf8, classic, strict=True)
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
    assert all(entries.index(e) in apart for e in SEEN)


@pytest.mark.parametrize("entry", ['"kind"="water_level"', "kind.x=a", '{"service.name"="api"}'])
def test_utf8_label_names_are_refused_naming_utf8_as_0_25_refuses_them(
    reference: Path, tmp_path: Path, entry: str
) -> None:
    (answer,) = readings(reference, [entry])
    assert _reading(answer["classic"]) is None and _reading(answer["utf8"]) is not None
    assert not alertmanager_025_accepts(tmp_path, 0, entry)
    got, _warned = ours(entry)
    assert isinstance(got, str) and "Alertmanager 0.27's UTF-8 matchers" in got, got
    assert repr(entry) in got
