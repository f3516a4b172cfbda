"""Differential test of grouping, inhibition and silences against a real Alertmanager
server (Debian's prometheus-alertmanager), which ``amtool config routes test`` cannot show.

Per seeded round: random routing trees (every route its own receiver; group_by set,
inherited, ``...`` or ``[]``), inhibition rules and silences are loaded into an
Alertmanager and into citybrain; the same alerts (each with its own ``alert_id``) are
posted to Alertmanager. Then, from ``/api/v2/alerts/groups`` and ``/api/v2/alerts``:

- for every route, the partition of its alerts into groups equals the partition by
  citybrain's group keys (group_by, its inheritance and the defaults);
- an alert is inhibited in Alertmanager exactly when citybrain's router inhibits it with
  every other alert firing (two-sided rules included, as Alertmanager >= 0.13);
- a silence is accepted by both or refused by both, except the documented stricter
  refusal (all matchers match the empty string with a ``!=``/``!~`` among them); an alert
  is silenced in Alertmanager exactly when an accepted citybrain silence silences it;
- an alert still firing when its silence ends or its inhibiting alert resolves is
  notified once (to a webhook receiver) exactly when citybrain's re-check routes it.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks.engine import PlaybookEngine, group_next_tick, next_group_flush
from playbooks.errors import RoutingConfigError, SilenceError
from playbooks.loader import PLAYBOOK_DIR, load_playbooks, load_routing
from playbooks.routing import (
    Matcher,
    Router,
    Silence,
    api_matcher,
    escape,
    new_silence,
    parse_silence_matchers,
)
from streams.response import waited_out
from tests.integration.test_routing_differential import receivers
from tests.services import shifted_port

pytestmark = pytest.mark.integration

ALERTMANAGER = shutil.which("prometheus-alertmanager")
PORT = shifted_port(29095)
SEEDS = (11, 12, 13)
TREES, ALERTS, RULES, SILENCES = 30, 120, 4, 12

NAMES = ["kind", "severity", "district", "category"]
VALUES = {
    "kind": ["water_level", "pm25", "power_load", 'x"y'],
    "severity": ["minor", "major", "critical"],
    "district": ["d1", "d2", "back\\slash"],
    "category": ["noise", "gas", "", "line\nbreak"],
}
REGEXES = {
    "kind": ["water_.*", "pm25|power_load", ".*", "x.y"],
    "severity": ["major|critical", "critical", ".+", "m.*"],
    "district": ["d1", "d.", "back\\\\slash", ""],
    "category": ["noise|gas", ".*", "", "line\\nbreak", "(?i:GAS)"],
}


def matcher(rng: random.Random, op: str = "") -> Matcher:
    name = rng.choice(NAMES)
    op = op or rng.choice(["=", "!=", "=~", "!~"])
    value = rng.choice(VALUES[name] if op in ("=", "!=") else REGEXES[name])
    return Matcher.build(name, op, value)


# Both refuse the first two; Alertmanager accepts the last two (it asks only = and =~).
EVERYTHING = ['category=""', 'category=~".*"', 'category!~"noise.+"', 'severity!="minor"']
GROUP_BYS = [["..."], ["kind"], ["district", "severity"], ["category"], ["kind", "district"]]


def route(rng: random.Random, receiver: str, depth: int, root: bool) -> dict[str, Any]:
    node: dict[str, Any] = {"receiver": receiver, "group_wait": "1h"}
    if root:
        node["group_by"] = rng.choice([*GROUP_BYS, []])
    else:
        node["matchers"] = [str(matcher(rng)) for _ in range(rng.choice([0, 1, 1, 2]))]
        node["continue"] = rng.random() < 0.3
        if rng.random() < 0.4:
            node["group_by"] = rng.choice(GROUP_BYS)
    if depth < 2:
        node["routes"] = [
            route(rng, f"{receiver}_{i}", depth + 1, root=False)
            for i in range(rng.choice([0, 1, 2, 3]))
        ]
    return node


def as_citybrain(node: dict[str, Any]) -> dict[str, Any]:
    out = {("playbook" if k == "receiver" else k): v for k, v in node.items() if k != "routes"}
    out["routes"] = [as_citybrain(child) for child in node.get("routes", [])]
    return out


def am_matcher(m: Matcher) -> dict[str, Any]:
    return {
        "name": m.name,
        "value": m.value,
        "isRegex": m.op in ("=~", "!~"),
        "isEqual": m.op in ("=", "=~"),
    }


def http(method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/api/v2{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Alertmanager:
    """``prometheus-alertmanager`` on a test port, clustering off."""

    def __init__(self, config: Path, data: Path) -> None:
        assert ALERTMANAGER is not None, "apt-get install prometheus-alertmanager"
        self.log = data / "alertmanager.log"
        data.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    ALERTMANAGER,
                    f"--config.file={config}",
                    f"--storage.path={data}",
                    f"--web.listen-address=127.0.0.1:{PORT}",
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if http("GET", "/status")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"alertmanager not ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def playbook() -> Any:
    return load_playbooks(PLAYBOOK_DIR)["sensor-anomaly"]


def webhook_config(
    tmp_path: Path, hook_port: int, route: dict[str, Any], inhibit_rules: list[Any] | None = None
) -> Path:
    """An Alertmanager config: one receiver ``r`` posting firing alerts to the webhook on
    ``hook_port``, the root route ``route`` with an hour's repeat_interval, and
    ``inhibit_rules`` if given."""
    doc: dict[str, Any] = {
        "route": {"receiver": "r", **route, "repeat_interval": "1h"},
        "receivers": [
            {
                "name": "r",
                "webhook_configs": [
                    {"url": f"http://127.0.0.1:{hook_port}/", "send_resolved": False}
                ],
            }
        ],
    }
    if inhibit_rules is not None:
        doc["inhibit_rules"] = inhibit_rules
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(doc))
    return config


@pytest.mark.parametrize("seed", SEEDS)
def test_grouping_inhibition_and_silences_agree(tmp_path: Path, playbook: Any, seed: int) -> None:
    rng = random.Random(seed)
    trees = [route(rng, f"t{t}", 0, root=True) for t in range(TREES)]
    routers: list[Router] = []
    for t, tree in enumerate(trees):
        path = tmp_path / f"t{t}.yaml"
        path.write_text(
            yaml.safe_dump({"version": 1, "route": as_citybrain(tree)}, allow_unicode=True)
        )
        routers.append(load_routing(path, dict.fromkeys(receivers(tree), playbook)))
    rules = []
    for _ in range(RULES):
        rules.append(
            {
                # One equality on each side keeps most alerts uninhibited.
                "source_matchers": [str(matcher(rng, "="))]
                + [str(matcher(rng)) for _ in range(rng.choice([0, 1]))],
                "target_matchers": [str(matcher(rng, "="))]
                + [str(matcher(rng)) for _ in range(rng.choice([0, 1]))],
                "equal": rng.sample(NAMES, rng.choice([0, 1, 1, 2])),
            }
        )
    inhibit_path = tmp_path / "inhibit.yaml"
    inhibit_path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "route": {"playbook": "r", "group_by": ["..."]},
                "inhibit_rules": rules,
            },
            allow_unicode=True,
        )
    )
    inhibitor = load_routing(inhibit_path, {"r": playbook})
    names = sorted({r for tree in trees for r in receivers(tree)})
    config = {
        "route": {
            "receiver": "wrapper",
            "group_wait": "1h",
            "routes": [{**tree, "continue": True} for tree in trees],
        },
        "receivers": [{"name": "wrapper"}, *({"name": n} for n in names)],
        "inhibit_rules": rules,
    }
    config_path = tmp_path / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True))

    alerts = []
    for i in range(ALERTS):
        labels = {"alert_id": f"al-{i}"}
        for name in NAMES:
            if rng.random() < 0.85:
                labels[name] = rng.choice(VALUES[name])
        alerts.append(labels)
    # Two in three silences start with an equality (selective); the rest are any matchers,
    # so some match everything and must be refused.
    silence_specs = [
        [matcher(rng, "=" if i % 3 else "")] + [matcher(rng) for _ in range(rng.choice([0, 1, 2]))]
        for i in range(SILENCES)
    ] + [  # the field case silence-matches-all and its siblings
        [Matcher.parse(text)] for text in EVERYTHING
    ]

    am = Alertmanager(config_path, tmp_path / "data")
    try:
        now = time.time()
        ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
        starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
        status, _ = http(
            "POST", "/alerts", [{"labels": a, "startsAt": starts, "endsAt": ends} for a in alerts]
        )
        assert status == 200
        ours: list[Silence] = []
        refusals = {"both": 0, "documented": 0}
        for i, spec in enumerate(silence_specs):
            status, answer = http(
                "POST",
                "/silences",
                {
                    "matchers": [am_matcher(m) for m in spec],
                    "startsAt": starts,
                    "endsAt": ends,
                    "createdBy": "test",
                    "comment": f"silence {i}",
                },
            )
            try:
                ours.append(new_silence(f"s{i}", [str(m) for m in spec], 0, 2e9, "t", "r"))
                accepted = True
            except SilenceError as exc:
                assert exc.problem == "matches_empty", exc
                accepted = False
            if accepted:
                assert status == 200, (spec, answer)
            elif status == 200:
                # The documented difference: Alertmanager only asks = and =~ matchers.
                assert any(m.op in ("!=", "!~") for m in spec), [str(m) for m in spec]
                refusals["documented"] += 1
                http("DELETE", f"/silence/{answer['silenceID']}")
            else:
                assert "at least one matcher must not match the empty string" in answer
                refusals["both"] += 1
        assert refusals["both"] >= 2 and refusals["documented"] >= 2, refusals
        assert len(ours) >= SILENCES // 2

        # Groups: wait until Alertmanager's dispatcher has placed every alert.
        expected: dict[str, set[frozenset[str]]] = {}
        members: dict[tuple[str, str], set[str]] = defaultdict(set)
        for router in routers:
            for labels in alerts:
                for r in router.root.match(labels):
                    members[(r.playbook, r.group_key(labels))].add(labels["alert_id"])
        for (receiver, _), ids in members.items():
            expected.setdefault(receiver, set()).add(frozenset(ids))
        total = sum(len(ids) for ids in members.values())
        theirs: dict[str, set[frozenset[str]]] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, groups = http("GET", "/alerts/groups")
            assert status == 200
            placed = sum(len(g["alerts"]) for g in groups)
            if placed >= total:
                theirs = {}
                for g in groups:
                    ids = frozenset(a["labels"]["alert_id"] for a in g["alerts"])
                    theirs.setdefault(g["receiver"]["name"], set()).add(ids)
                break
            time.sleep(0.3)
        assert placed == total
        assert theirs == expected

        # Inhibition and silencing, alert by alert.
        status, listed = http("GET", "/alerts")
        assert status == 200 and len(listed) == ALERTS
        by_id = {a["labels"]["alert_id"]: a for a in listed}
        counts = {"inhibited": 0, "silenced": 0}
        for labels in alerts:
            state = by_id[labels["alert_id"]]["status"]
            # Alertmanager drops empty label values; they match as missing in both.
            others = [a for a in alerts if a is not labels]
            decision = inhibitor.decide(labels, others, [], now)
            inhibited = decision.inhibited_by is not None
            assert bool(state["inhibitedBy"]) is inhibited, (labels, rules)
            silenced = any(s.silences(labels, now) for s in ours)
            assert bool(state["silencedBy"]) is silenced, labels
            counts["inhibited"] += inhibited
            counts["silenced"] += silenced
        # Both outcomes occur, so the comparison says something.
        assert 0 < counts["inhibited"] < ALERTS and 0 < counts["silenced"] < ALERTS, counts
    finally:
        am.stop()


def test_field_case_mutual_inhibition_in_alertmanager(tmp_path: Path) -> None:
    """The field case's rule in a real Alertmanager: two critical alerts in one district
    do not inhibit each other; a major one is inhibited."""
    rule = {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity=~"major|critical"'],
        "equal": ["district"],
    }
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "route": {"receiver": "r", "group_by": ["alert_id"]},
                "receivers": [{"name": "r"}],
                "inhibit_rules": [rule],
            }
        )
    )
    am = Alertmanager(config, tmp_path / "data")
    try:
        alerts = [
            {"alert_id": "al-a", "kind": "power_load", "severity": "critical", "district": "d1"},
            {"alert_id": "al-b", "kind": "power_load", "severity": "critical", "district": "d1"},
            {"alert_id": "al-c", "kind": "power_load", "severity": "major", "district": "d1"},
        ]
        assert http("POST", "/alerts", [{"labels": a} for a in alerts])[0] == 200
        deadline = time.monotonic() + 20
        while True:
            listed = {a["labels"]["alert_id"]: a["status"] for a in http("GET", "/alerts")[1]}
            if listed.get("al-c", {}).get("inhibitedBy") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert {k: bool(v["inhibitedBy"]) for k, v in listed.items()} == {
            "al-a": False,
            "al-b": False,
            "al-c": True,
        }
    finally:
        am.stop()


# Regexes for a silence: Alertmanager checks a silence's regex on its own before wrapping it
# (silence.ValidateMatcher), so "a)|(b", which a route reads as ^(?:a)|(b)$, is refused
# there; citybrain accepted it and silenced every category starting with a or ending in b.
SILENCE_REGEXES = [
    "a)|(b", ".*)|(x", "a)(b", ")(", "a)|(?:b", "(a|b)", "a|b", ".*", "(?i)gas", "(", "a**",
    "\\C", "(?<n>a)", "(?P<n>a)", "x{1001}", "[[:nope:]]", "", "(?:a))|((?:b)",
    # Trial 12: Go's group names and nesting limit (998 groups fit once wrapped, 1,000 do
    # not fit even alone).
    "(?P<é>a)", "(?P<n_1>a)", "(" * 998 + "a" + ")" * 998, "(" * 1000 + "a" + ")" * 1000,
    # Trial 23: repetition counts (a {0} group is not looked into; ten digits refused).
    "((a{2}){0}){1000}", "((x{2}){0}|gas){1000}", "a{1000000000}", "(a{2}){501}", "a{01}",
]  # fmt: skip
# Accepted by Alertmanager, refused by citybrain (docs/playbooks.md): 999 nested groups
# fit Go's limit alone (the silence check) but not wrapped in ^(?:…)$, and then every
# silence query fails there ("Querying silences failed"), so no alert is silenced by any
# silence; and a regex past RE2's memory bound.
SILENCE_DIFFERENCES = ["(" * 999 + "a" + ")" * 999, "\\pL{1000}"]


def test_silence_regexes_are_refused_as_alertmanager_refuses_them(tmp_path: Path) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump(
            {"route": {"receiver": "r", "group_by": ["alert_id"]}, "receivers": [{"name": "r"}]}
        )
    )
    am = Alertmanager(config, tmp_path / "data")
    try:
        now = time.time()
        ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
        results = []
        for regex in SILENCE_REGEXES + SILENCE_DIFFERENCES:
            status, _ = http(
                "POST",
                "/silences",
                {
                    "matchers": [
                        {"name": "kind", "value": "pm25", "isRegex": False, "isEqual": True},
                        {"name": "category", "value": regex, "isRegex": True, "isEqual": True},
                    ],
                    "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                    "endsAt": ends,
                    "createdBy": "test",
                    "comment": regex,
                },
            )
            try:
                # The regex's own rules (parse_silence_matchers: wrapped and alone), not
                # the API's length bound, which refuses the 998 nested groups (1,997
                # characters) as stored since t160, Alertmanager having none.
                parse_silence_matchers(f'category=~"{escape(regex)}"')
                ours = True
            except RoutingConfigError:
                ours = False
            results.append((regex, status == 200, ours))
        assert [r for r in results if r[1] != r[2] and r[0] not in SILENCE_DIFFERENCES] == []
        assert [r[1:] for r in results if r[0] in SILENCE_DIFFERENCES] == [(True, False)] * 2
        assert 0 < sum(am for _, am, _ in results) < len(results)
    finally:
        am.stop()


# Silence matcher texts as an operator types them to `amtool silence add` (each argument
# one matcher, Alertmanager's ParseMatcher) and to `citybrain silences add --matcher` (an
# entry may hold several, comma-separated, as a route's): citybrain must read each as
# amtool does, or refuse it; never read it as other matchers.
SILENCE_TEXTS = [
    'kind="pm25"', "kind=pm25", " kind = pm25 ", "category=noise,kind=pm25",
    "kind=pm25, severity!=minor", "kind=pm25,", 'kind="pm25",', 'kind="pm25", severity="major"',
    '{kind="pm25"}', 'category="a,b"', 'category="x\\"y"', "category=a\\,b", 'kind=~"pm.*"',
    "kind=~pm25|no2,severity=major", 'category="back\\\\slash"', "kind=pm25}",
]  # fmt: skip


def amtool_and_silence_server(tmp_path: Path) -> tuple[str, Alertmanager]:
    """``amtool``'s path and a started Alertmanager with one receiver, every alert its
    own group: the reference the silence tests add their silences to."""
    amtool_path = shutil.which("amtool")
    assert amtool_path is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump(
            {"route": {"receiver": "r", "group_by": ["alert_id"]}, "receivers": [{"name": "r"}]}
        )
    )
    return amtool_path, Alertmanager(config, tmp_path / "data")


def test_silence_matcher_texts_read_as_amtool_reads_them(tmp_path: Path) -> None:
    amtool_path, am = amtool_and_silence_server(tmp_path)
    try:
        problems = []
        for text in SILENCE_TEXTS:
            done = subprocess.run(
                [amtool_path, "silence", "add", f"--alertmanager.url=http://127.0.0.1:{PORT}",
                 "--comment=t", "--duration=1h", "--output=simple", text],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            theirs = None
            if done.returncode == 0:
                status, silence = http("GET", f"/silence/{done.stdout.strip()}")
                assert status == 200, silence
                ops = {(False, True): "=", (False, False): "!=", (True, True): "=~"}
                theirs = sorted(
                    str(
                        Matcher.build(
                            m["name"], ops.get((m["isRegex"], m["isEqual"]), "!~"), m["value"]
                        )
                    )
                    for m in silence["matchers"]
                )
            try:
                ours = sorted(str(m) for m in new_silence("s", [text], 0, 2e9, "t", "r").matchers)
            except SilenceError:
                ours = None
            # Where amtool refuses the text (several matchers in one argument), citybrain may
            # read it as a route's matchers: entry; elsewhere it must agree or refuse.
            if ours is not None and theirs is not None and ours != theirs:
                problems.append((text, theirs, ours))
        assert problems == []
    finally:
        am.stop()


# Silence matchers as Alertmanager's API v2 takes them (trial 18): citybrain's API takes
# the same objects (playbooks.routing.api_matcher); accepted by both or refused by both,
# and an accepted one is the same matcher in both. Each with a selective kind="pm25"
# beside it, but the last two, which match every alert without the label.
API_MATCHERS: list[dict[str, Any]] = [
    {"name": "category", "value": "noise", "isRegex": False},
    {"name": "category", "value": "noise", "isRegex": False, "isEqual": False},
    {"name": "category", "value": "no.*", "isRegex": True},
    {"name": "category", "value": "no.*", "isRegex": True, "isEqual": False},
    {"name": "category", "value": 'say "hi" \\ \n', "isRegex": False},
    {"name": "category", "value": "line\nbreak \u00e9 \U0001f600", "isRegex": False},
    {"name": "category", "value": "x" * 900, "isRegex": False},
    {"name": "category", "value": "a)|(b", "isRegex": True},
    {"name": "category", "value": "(", "isRegex": True},
    {"name": "category", "value": "", "isRegex": False, "isEqual": False},
    {"name": "bad-name", "value": "x", "isRegex": False},
    {"name": "category", "value": "noise"},
    {"name": "category", "isRegex": False},
    {"name": "category", "value": "noise", "isRegex": "false"},
]
MATCH_ALL = [
    {"name": "category", "value": "", "isRegex": False},
    {"name": "category", "value": "(|a)", "isRegex": True},
]
# Objects Alertmanager accepts and citybrain deliberately refuses (docs/playbooks.md, t44):
# a null isEqual (Alertmanager: true), a key it does not know (Alertmanager ignores it)
# and a key spelled in other case (Go's JSON decoder takes "isregex" for isRegex, and
# the later of the two wins: isRegex false, isregex true is a regex there).
API_MATCHER_REFUSALS: list[dict[str, Any]] = [
    {"name": "category", "value": "noise", "isRegex": False, "isEqual": None},
    {"name": "category", "value": "noise", "isRegex": False, "extra": 1},
    {"name": "category", "value": "noise", "isRegex": False, "isregex": True},
    {"Name": "category", "value": "noise", "isRegex": False},
]


def test_silence_matcher_objects_read_as_alertmanager_reads_them(tmp_path: Path) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump(
            {"route": {"receiver": "r", "group_by": ["alert_id"]}, "receivers": [{"name": "r"}]}
        )
    )
    am = Alertmanager(config, tmp_path / "data")
    pm25 = {"name": "kind", "value": "pm25", "isRegex": False, "isEqual": True}
    try:
        now = time.time()
        starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
        outcomes = []
        for spec in [[pm25, m] for m in API_MATCHERS] + [[m] for m in MATCH_ALL]:
            status, answer = http(
                "POST",
                "/silences",
                {
                    "matchers": spec,
                    "startsAt": starts,
                    "endsAt": ends,
                    "createdBy": "t",
                    "comment": "trial 18",
                },
            )
            theirs = None
            if status == 200:
                status, silence = http("GET", f"/silence/{answer['silenceID']}")
                assert status == 200, silence
                theirs = [
                    (m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in silence["matchers"]
                ]
            try:
                texts = [api_matcher(m, f"matchers[{i}]") for i, m in enumerate(spec)]
                ours = [
                    (m.name, m.value, m.op in ("=~", "!~"), m.op in ("=", "=~"))
                    for m in new_silence("s", texts, 0, 2e9, "t", "r").matchers
                ]
            except SilenceError:
                ours = None
            outcomes.append((spec, theirs, ours))
        assert [o for o in outcomes if o[1] != o[2]] == [], outcomes
        assert 0 < sum(o[1] is not None for o in outcomes) < len(outcomes)
        for m in API_MATCHER_REFUSALS:
            status, answer = http(
                "POST",
                "/silences",
                {"matchers": [pm25, m], "startsAt": starts, "endsAt": ends, "createdBy": "t"}
                | {"comment": "t44"},
            )
            assert status == 200, (m, answer)
            with pytest.raises(
                SilenceError, match=r"matchers\[1\]: ('isEqual' is null|unknown key)"
            ):
                api_matcher(m, "matchers[1]")
    finally:
        am.stop()


class Webhook:
    """A webhook receiver for Alertmanager's notifications: the firing alert ids of
    every notification, in arrival order."""

    def __init__(self, port: int) -> None:
        self.firing: list[str] = []
        self.at: dict[str, float] = {}  # when each id was first notified (time.time())
        seen, at = self.firing, self.at

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ids = [a["labels"]["alert_id"] for a in body["alerts"] if a["status"] == "firing"]
                seen.extend(ids)
                for alert_id in ids:
                    at.setdefault(alert_id, time.time())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def until(self, ids: set[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not ids <= set(self.firing) and time.monotonic() < deadline:
            time.sleep(0.2)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"


def test_alerts_freed_from_a_mute_are_notified_as_alertmanager_does(
    tmp_path: Path, playbook: Any
) -> None:
    """Trial 10, finding 2: Alertmanager notifies an alert still firing when its silence
    ends, or when the alert inhibiting it resolves, at the next flush of its group, once;
    one still silenced never. citybrain's routing (``decide`` when the alert arrives,
    ``recheck`` of the muted ones after) routes exactly the alerts Alertmanager notified."""
    hook_port = shifted_port(29096)
    rule = {
        "source_matchers": ['category="parking"'],
        "target_matchers": ['category="target"'],
        "equal": ["district"],
    }
    route_doc = {"group_by": ["alert_id"], "group_wait": "0s", "group_interval": "1s"}
    config = webhook_config(tmp_path, hook_port, route_doc, [rule])
    ours = tmp_path / "routing.yaml"
    ours.write_text(
        yaml.safe_dump(
            {"version": 1, "route": {"playbook": "r", **route_doc}, "inhibit_rules": [rule]}
        )
    )
    router = load_routing(ours, {"r": playbook})
    alerts = {
        "al-noise": {"category": "noise", "district": "d1"},  # silenced 4 s
        "al-quiet": {"category": "quiet", "district": "d1"},  # silenced for an hour
        "al-park": {"category": "parking", "district": "d1"},  # the source; resolves
        "al-target": {"category": "target", "district": "d1"},  # inhibited until then
        "al-other": {"category": "target", "district": "d2"},  # `equal` differs
    }
    labels = {a: {"alert_id": a, **v} for a, v in alerts.items()}
    hook = Webhook(hook_port)
    am = Alertmanager(config, tmp_path / "data")
    try:
        t0 = time.time()
        silences = [
            new_silence("short", ['category="noise"'], t0, t0 + 4, "t", "trial 10"),
            new_silence("long", ['category="quiet"'], t0, t0 + 3600, "t", "trial 10"),
        ]
        for s in silences:
            body = {
                "matchers": [am_matcher(m) for m in s.matchers],
                "startsAt": iso(s.starts_at),
                "endsAt": iso(s.ends_at),
                "createdBy": s.author,
                "comment": s.reason,
            }
            assert http("POST", "/silences", body)[0] == 200
        # The source first, and the rest once Alertmanager has notified it: its inhibitor
        # reads alerts on its own subscription, so with group_wait 0s a target sent with
        # its source could flush before the inhibitor held the source (seen under load).
        assert http("POST", "/alerts", [{"labels": labels["al-park"]}])[0] == 200
        hook.until({"al-park"})
        assert "al-park" in hook.firing, hook.firing
        others = [{"labels": v} for a, v in labels.items() if a != "al-park"]
        assert http("POST", "/alerts", others)[0] == 200
        # citybrain as the alerts arrive: each decided with every other alert firing.
        at_once, muted = set(), {}
        for a, v in labels.items():
            decision = router.decide(v, [o for b, o in labels.items() if b != a], silences, t0)
            if decision.mute is None:
                at_once.add(a)
            else:
                muted[a] = decision
        hook.until(at_once)
        assert sorted(at_once) == ["al-other", "al-park"]
        # Not yet al-target (al-park fires) nor al-quiet; al-noise may be, on a slow
        # machine, if its 4 s silence has ended by now.
        assert set(hook.firing) - {"al-noise"} == at_once, hook.firing
        now = time.time()
        resolved = {"labels": labels["al-park"], "startsAt": iso(t0), "endsAt": iso(now)}
        assert http("POST", "/alerts", [resolved])[0] == 200
        # citybrain's re-check once the short silence ended and al-park resolved.
        later = max(now, t0 + 4)
        firing = [v for a, v in labels.items() if a != "al-park"]
        released = set()
        for a, d in muted.items():
            # The labels firing now under the id of what inhibited it (al-park resolved).
            source = None if d.muted_by == "al-park" else labels.get(d.muted_by)
            others = [o for o in firing if o["alert_id"] != a]
            again = router.recheck(
                labels[a], d.mute or "", d.muted_by, source, others, silences, later
            )
            if again.mute is None:
                released.add(a)
        assert released == {"al-noise", "al-target"}
        hook.until(at_once | released)
        time.sleep(3)  # a few more flushes: nothing is notified again, al-quiet never
        assert sorted(hook.firing) == sorted(at_once | released), hook.firing
    finally:
        am.stop()
        hook.close()


def test_an_alert_freed_from_a_mute_goes_out_at_its_groups_next_flush(tmp_path: Path) -> None:
    """t65: Alertmanager keeps a muted alert in its aggregation group, which flushes,
    sending nothing, group_wait after the alert came and every group_interval after; so
    an alert freed from a mute (its silence ended, its inhibiting alert resolved) goes out
    at its group's next flush, as does one freed into a group already notified, and an
    unmuted alert coming to a group that holds only a muted one. citybrain opened the
    run of each with a fresh group_wait (notified 7 s after t0 here, not 10 s); its
    ``next_group_flush`` gives Alertmanager's times."""
    hook_port = shifted_port(29096)
    rule = {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="minor"'],
        "equal": ["district"],
    }
    gw, gi = 1.0, 8.0
    route_doc = {"group_by": ["district", "severity"], "group_wait": "1s", "group_interval": "8s"}
    config = webhook_config(tmp_path, hook_port, route_doc, [rule])
    notified = {"alert_id": "al-a", "severity": "major", "district": "d1"}
    joins = {"alert_id": "al-b", "severity": "major", "district": "d1", "category": "noise"}
    alone = {"alert_id": "al-c", "severity": "minor", "district": "d2", "category": "noise"}
    target = {"alert_id": "al-d", "severity": "minor", "district": "d3"}
    source = {"alert_id": "al-e", "severity": "critical", "district": "d3"}
    held = {"alert_id": "al-f", "severity": "minor", "district": "d4", "category": "quiet"}
    later = {"alert_id": "al-g", "severity": "minor", "district": "d4"}  # comes at t0 + 6
    hook = Webhook(hook_port)
    am = Alertmanager(config, tmp_path / "data")
    try:
        t0 = time.time()
        body = {
            "matchers": [{"name": "category", "value": "noise", "isRegex": False}],
            "startsAt": iso(t0),
            "endsAt": iso(t0 + 6),
            "createdBy": "t",
            "comment": "t65",
        }
        assert http("POST", "/silences", body)[0] == 200
        quiet = {**body, "endsAt": iso(t0 + 3600)}
        quiet["matchers"] = [{"name": "category", "value": "quiet", "isRegex": False}]
        assert http("POST", "/silences", quiet)[0] == 200
        assert http("POST", "/alerts", [{"labels": source}])[0] == 200
        hook.until({"al-e"})  # its inhibitor holds the source before the target comes
        t1 = time.time()
        others = [{"labels": a} for a in (notified, joins, alone, target, held)]
        assert http("POST", "/alerts", others)[0] == 200
        hook.until({"al-a"})
        assert time.time() - t0 < 5.5, "too slow to free them after their groups' first flush"
        while time.time() < t0 + 6:
            time.sleep(0.05)
        freed = time.time()  # the silence is over; the source resolves
        ended = {"labels": source, "startsAt": iso(t0), "endsAt": iso(freed)}
        assert http("POST", "/alerts", [ended, {"labels": later}])[0] == 200
        hook.until({"al-b", "al-c", "al-d", "al-g"})
        flush = freed + next_group_flush(t1, gw, gi, freed)  # each group made at t1
        assert "al-f" not in hook.firing  # still silenced
        for alert_id in ("al-b", "al-c", "al-d", "al-g"):
            at = hook.at[alert_id]
            assert flush - 1 < at < flush + 3, (alert_id, at - t0, flush - t0)
            assert at > freed + gw + 2  # not group_wait after the release
    finally:
        am.stop()
        hook.close()


def test_an_alert_older_than_group_wait_flushes_its_new_group_at_once(tmp_path: Path) -> None:
    """t65: Alertmanager flushes a group not yet flushed at once when an alert put in it
    started (``startsAt``) more than group_wait ago (``aggrGroup.insert``); a fresh one
    waits group_wait. citybrain's ``waited_out`` says which (it waited group_wait for
    both, so an alert held by the corroboration grace was held twice)."""
    hook_port = shifted_port(29096)
    route_doc = {"group_by": ["alert_id"], "group_wait": "6s", "group_interval": "20s"}
    config = webhook_config(tmp_path, hook_port, route_doc)
    hook = Webhook(hook_port)
    am = Alertmanager(config, tmp_path / "data")
    try:
        t0 = time.time()
        old = {"labels": {"alert_id": "al-old"}, "startsAt": iso(t0 - 60)}
        assert http("POST", "/alerts", [old, {"labels": {"alert_id": "al-new"}}])[0] == 200
        hook.until({"al-old", "al-new"})
        assert hook.at["al-old"] - t0 < 3 < 5 < hook.at["al-new"] - t0, hook.at
        for alert_id, ago in (("al-old", 60), ("al-new", 0)):
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 - ago))
            assert waited_out({"started_at": at}, 6.0, t0) == (alert_id == "al-old")
    finally:
        am.stop()
        hook.close()


def test_a_mute_that_came_during_group_wait_holds_the_notification_in_alertmanager(
    tmp_path: Path,
) -> None:
    """Trial 18: Alertmanager applies inhibition and silences at a group's flush, not when
    an alert arrives: a target whose source alert fired, or whose silence was made, after
    it but within its group_wait is not notified; once that ends it is, at the next flush.
    An alert resolved within its group_wait is never notified. citybrain holds the pending
    run so (``Response._all_muted``), and withdraws one whose alerts all resolved (the
    worker's side in tests/unit/streams/test_group_flushes.py)."""
    hook_port = shifted_port(29096)
    rule = {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="minor"'],
        "equal": ["district"],
    }
    route_doc = {"group_by": ["alert_id"], "group_wait": "2s", "group_interval": "1s"}
    config = webhook_config(tmp_path, hook_port, route_doc, [rule])
    minor = {"alert_id": "al-minor", "severity": "minor", "district": "d1"}
    quiet = {"alert_id": "al-quiet", "severity": "major", "district": "d2"}
    critical = {"alert_id": "al-crit", "severity": "critical", "district": "d1"}
    blip = {"alert_id": "al-blip", "severity": "major", "district": "d3"}  # resolves at once
    hook = Webhook(hook_port)
    am = Alertmanager(config, tmp_path / "data")
    try:
        t0 = time.time()
        assert http("POST", "/alerts", [{"labels": minor}, {"labels": quiet}])[0] == 200
        assert http("POST", "/alerts", [{"labels": blip, "startsAt": iso(t0)}])[0] == 200
        ended = {"labels": blip, "startsAt": iso(t0), "endsAt": iso(time.time())}
        assert http("POST", "/alerts", [ended])[0] == 200
        # Within their group_wait: the source alert fires, and al-quiet is silenced.
        assert http("POST", "/alerts", [{"labels": critical}])[0] == 200
        body = {
            "matchers": [{"name": "alert_id", "value": "al-quiet", "isRegex": False}],
            "startsAt": iso(t0),
            "endsAt": iso(t0 + 3600),
            "createdBy": "t",
            "comment": "trial 18",
        }
        status, answer = http("POST", "/silences", body)
        assert status == 200, answer
        assert time.time() - t0 < 1.5, "too slow to be within group_wait"
        hook.until({"al-crit"})
        time.sleep(3)  # past the targets' group_wait and a few flushes
        assert hook.firing == ["al-crit"]
        # The source resolves and the silence is expired: both at the next flush.
        resolved = {"labels": critical, "startsAt": iso(t0), "endsAt": iso(time.time())}
        assert http("POST", "/alerts", [resolved])[0] == 200
        assert http("DELETE", f"/silence/{answer['silenceID']}")[0] == 200
        hook.until({"al-crit", "al-minor", "al-quiet"})
        assert sorted(hook.firing) == ["al-crit", "al-minor", "al-quiet"]
    finally:
        am.stop()
        hook.close()


def test_a_mute_after_the_first_notification_stops_the_repeats_in_alertmanager(
    tmp_path: Path,
) -> None:
    """t58: Alertmanager applies inhibition and silences at every flush of a group, so a
    notified group whose alerts all become inhibited (a source alert fires) or silenced
    gets no repeat while that lasts; the others repeat; once the mute ends the repeat
    comes again. citybrain repeated "still unacknowledged" under the mute; its response
    stage now holds such a flush (``Response._all_muted``, ``engine.hold_flush``; the
    worker's side in tests/unit/streams/test_group_flushes.py)."""
    hook_port = shifted_port(29096)
    rule = {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="minor"'],
        "equal": ["district"],
    }
    route_doc = {"group_by": ["alert_id"], "group_wait": "0s", "group_interval": "1s"}
    config = webhook_config(tmp_path, hook_port, route_doc, [rule])
    doc = yaml.safe_load(config.read_text())
    doc["route"]["repeat_interval"] = "2s"
    config.write_text(yaml.safe_dump(doc))
    target = {"alert_id": "al-minor", "severity": "minor", "district": "d1"}
    other = {"alert_id": "al-other", "severity": "minor", "district": "d2"}
    quiet = {"alert_id": "al-quiet", "severity": "major", "district": "d3"}
    source = {"alert_id": "al-crit", "severity": "critical", "district": "d1"}
    hook = Webhook(hook_port)
    am = Alertmanager(config, tmp_path / "data")
    try:
        t0 = time.time()
        alerts = [{"labels": a, "endsAt": iso(t0 + 3600)} for a in (target, other, quiet)]
        assert http("POST", "/alerts", alerts)[0] == 200
        hook.until({"al-minor", "al-other", "al-quiet"})
        assert http("POST", "/alerts", [{"labels": source, "endsAt": iso(t0 + 3600)}])[0] == 200
        body = {
            "matchers": [{"name": "alert_id", "value": "al-quiet", "isRegex": False}],
            "startsAt": iso(t0),
            "endsAt": iso(t0 + 3600),
            "createdBy": "t",
            "comment": "t58",
        }
        status, answer = http("POST", "/silences", body)
        assert status == 200, answer
        time.sleep(1.5)  # a flush under way when the mutes came may still notify
        since = len(hook.firing)
        time.sleep(5)  # past two repeat intervals
        muted = hook.firing[since:]
        assert muted.count("al-other") >= 2 and muted.count("al-crit") >= 2, muted
        assert "al-minor" not in muted and "al-quiet" not in muted, muted
        # The mutes end: the source resolves, the silence is expired; the repeats resume.
        resolved = {"labels": source, "startsAt": iso(t0), "endsAt": iso(time.time())}
        assert http("POST", "/alerts", [resolved])[0] == 200
        assert http("DELETE", f"/silence/{answer['silenceID']}")[0] == 200
        since = len(hook.firing)
        deadline = time.monotonic() + 10
        while not {"al-minor", "al-quiet"} <= set(hook.firing[since:]):
            assert time.monotonic() < deadline, hook.firing[since:]
            time.sleep(0.2)
    finally:
        am.stop()
        hook.close()


# Regexes for the deprecated *_match_re maps, which Alertmanager wraps twice (a value valid
# only once wrapped, "a)|(b", matches only a or b there; playbooks.routing.legacy_regex).
LEGACY_REGEXES = {
    "kind": ["water_.*", "pm25|power_load", "x.y", "a)|(b", "power_load)|(pm25"],
    "severity": ["major|critical", "crit.*", "m.*"],
    "district": ["d1", "d.", "back\\\\slash"],
    "category": ["noise|gas", "", "(?i:GAS)", "line\\nbreak"],
}


def inhibiting(tmp_path: Path, rules: list[dict[str, Any]], playbook: Any) -> tuple[Any, Path]:
    """citybrain's router and Alertmanager's config for the same inhibit rules (one route,
    every alert its own group, held an hour so nothing is notified)."""
    ours = tmp_path / "routing.yaml"
    ours.write_text(
        yaml.safe_dump(
            {"version": 1, "route": {"playbook": "r", "group_by": ["..."]}, "inhibit_rules": rules},
            allow_unicode=True,
        )
    )
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "route": {"receiver": "r", "group_wait": "1h", "group_by": ["..."]},
                "receivers": [{"name": "r"}],
                "inhibit_rules": rules,
            },
            allow_unicode=True,
        )
    )
    return load_routing(ours, {"r": playbook}), config


def inhibited_in_both(router: Any, alerts: list[dict[str, str]]) -> tuple[set[str], set[str]]:
    """The ids of ``alerts`` (all sent to the running Alertmanager) it lists as inhibited,
    and those citybrain's router mutes with every other alert firing. Waits up to 20 s
    for Alertmanager to list them all with the same answer: its inhibitor's cache is
    filled as the alerts arrive."""
    ours = {
        a["alert_id"]
        for a in alerts
        if router.decide(a, [b for b in alerts if b is not a], [], time.time()).mute
    }
    deadline = time.monotonic() + 20
    while True:
        listed = {a["labels"]["alert_id"]: a["status"] for a in http("GET", "/alerts")[1]}
        theirs = {a for a, s in listed.items() if s["inhibitedBy"]}
        if (theirs == ours and len(listed) == len(alerts)) or time.monotonic() > deadline:
            return theirs, ours
        time.sleep(0.3)


@pytest.mark.parametrize("seed", (21, 22))
def test_deprecated_inhibit_rule_maps_inhibit_as_in_alertmanager(
    tmp_path: Path, playbook: Any, seed: int
) -> None:
    """Trial 18: inhibit rules written with Alertmanager's deprecated source_match,
    source_match_re, target_match and target_match_re maps (random, with equal over
    labels some alerts lack) inhibit the same alerts in both."""
    rng = random.Random(seed)

    def side(prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, pool in (("match", VALUES), ("match_re", LEGACY_REGEXES)):
            if rng.random() < 0.6 or (key == "match_re" and not out):
                names = rng.sample(NAMES, rng.choice([1, 1, 2]))
                out[f"{prefix}_{key}"] = {n: rng.choice(pool[n]) for n in names}
        return out

    rules = [
        {**side("source"), **side("target"), "equal": rng.sample(NAMES, rng.choice([0, 1, 2]))}
        for _ in range(5)
    ]
    router, config = inhibiting(tmp_path, rules, playbook)
    kinds = [*VALUES["kind"], "power_load)", "pm25"]
    alerts = []
    for i in range(150):
        labels = {"alert_id": f"al-{i}"}
        for name in NAMES:
            if rng.random() < 0.85:
                labels[name] = rng.choice(kinds if name == "kind" else VALUES[name])
        alerts.append(labels)
    am = Alertmanager(config, tmp_path / "data")
    try:
        assert http("POST", "/alerts", [{"labels": a} for a in alerts])[0] == 200
        theirs, ours_ids = inhibited_in_both(router, alerts)
        assert theirs == ours_ids
        assert 0 < len(theirs) < len(alerts)
    finally:
        am.stop()


def test_an_alert_joining_a_notified_group_is_notified_at_its_next_flush(
    tmp_path: Path, grid: Any
) -> None:
    """Trial 18: in Alertmanager an alert added to a group already notified is notified
    at the group's next flush (group_interval), with the group's other alerts, though
    repeat_interval is an hour away. citybrain's engine, driven as its deadline timer
    drives it, notifies the run again at that flush too (before: only with the repeat)."""
    hook_port = shifted_port(29096)
    route_doc = {"group_by": ["district"], "group_wait": "1s", "group_interval": "3s"}
    config = webhook_config(tmp_path, hook_port, route_doc)
    hook = Webhook(hook_port)
    am = Alertmanager(config, tmp_path / "data")
    try:
        first = {"alert_id": "al-1", "district": "d1"}
        assert http("POST", "/alerts", [{"labels": first}])[0] == 200
        hook.until({"al-1"})
        assert hook.firing == ["al-1"]
        joined = {"alert_id": "al-2", "district": "d1"}
        assert http("POST", "/alerts", [{"labels": first}, {"labels": joined}])[0] == 200
        hook.until({"al-2"})
        # One more notification of the group, with both alerts, an hour before the repeat.
        assert sorted(hook.firing) == ["al-1", "al-1", "al-2"]
    finally:
        am.stop()
        hook.close()
    engine = PlaybookEngine(load_playbooks(PLAYBOOK_DIR)["sensor-anomaly"], grid)
    run, _ = engine.new_run("run-x", {"alert_id": "al-1", "grid_cell": "c-bridge", "kind": "k"}, 0)
    run, _ = engine.join(run, "al-2", 0.5)
    run, cmds = engine.flush(run, 3.0, 3600.0, 3.0)
    assert [(c.action, c.detail) for c in cmds] == [("notify", "new alerts in the group: al-2")]


# Inhibit rules whose sides match alerts without a label (trial 23): the generators above
# start each side with an equality, so a side that matches every alert, or every alert
# lacking a label, was never tried; nor `equal` over labels most alerts lack (missing on
# both sides is equal, as "" = ""), nor rules most alerts match on both sides. Each rule
# here draws its sides from matchers that match the empty string as often as not.
EMPTY_SIDE_MATCHERS = [
    'category=~".*"', 'category=""', 'category!~"noise"', 'district=~"d1|"',
    'department!="police"', 'kind=~"pm25|"', 'severity=~"major|critical"',
    'severity="critical"', 'kind!="pm25"', 'category=~"noise|gas"', 'district!~".+"',
    'severity!~"minor|"', 'department=~"(?i:POLICE)?"',
]  # fmt: skip
EMPTY_SIDE_VALUES = {
    "kind": ["pm25", "water_level"],
    "severity": ["minor", "major", "critical"],
    "district": ["d1", "d2"],
    "category": ["noise", "gas"],
    "department": ["police", "fire"],
}


@pytest.mark.parametrize("seed", (23, 24))
def test_inhibit_rules_with_sides_matching_empty_inhibit_as_in_alertmanager(
    tmp_path: Path, playbook: Any, seed: int
) -> None:
    rng = random.Random(seed)
    rules = [
        {
            "source_matchers": rng.sample(EMPTY_SIDE_MATCHERS, rng.choice([1, 1, 2])),
            "target_matchers": rng.sample(EMPTY_SIDE_MATCHERS, rng.choice([1, 1, 2])),
            "equal": rng.sample(["district", "category", "department"], rng.choice([0, 1, 2])),
        }
        for _ in range(6)
    ]
    router, config = inhibiting(tmp_path, rules, playbook)
    alerts = []
    for i in range(150):
        labels = {"alert_id": f"al-{i}"}
        for name, values in EMPTY_SIDE_VALUES.items():
            if rng.random() < 0.5:  # often missing: a side or `equal` meets the empty value
                labels[name] = rng.choice(values)
        alerts.append(labels)
    am = Alertmanager(config, tmp_path / "data")
    try:
        assert http("POST", "/alerts", [{"labels": a} for a in alerts])[0] == 200
        theirs, ours_ids = inhibited_in_both(router, alerts)
        assert sorted(theirs - ours_ids) == [] and sorted(ours_ids - theirs) == [], rules
        assert 0 < len(theirs) < len(alerts)
        # Some inhibited alerts match both sides of the rule that inhibits them.
        both = [
            a
            for a in alerts
            if a["alert_id"] in theirs
            and any(
                all(
                    Matcher.parse(m).matches(a) for m in r["source_matchers"] + r["target_matchers"]
                )
                for r in rules
            )
        ]
        assert both, rules
    finally:
        am.stop()


# Group label values holding the characters a group key is written with (t44): the
# generators above draw values without "|", so citybrain's key, the labels joined as
# "kind=…|district=…", never met district="d1|severity=x" beside severity "" (one text, one
# run, with district="d1", severity="x|severity="; Alertmanager has two groups). Values
# here are strung from label names, "|", "=", "\" and "," so that such pairs are common.
SEPARATOR_PIECES = ["d1", "|", "=", "|severity=", "|district=", "\\", ",", "x"]
SEPARATOR_GROUP_BYS = [
    ["kind", "district"],
    ["district", "severity"],
    ["kind", "district", "severity"],
    ["severity"],
]


@pytest.mark.parametrize("seed", (44, 45))
def test_group_labels_holding_separators_group_as_in_alertmanager(
    tmp_path: Path, playbook: Any, seed: int
) -> None:
    rng = random.Random(seed)
    tree = {
        "receiver": "t",
        "group_by": ["kind"],
        "group_wait": "1h",
        "routes": [
            {"receiver": f"t_{i}", "group_by": group_by, "continue": True}
            for i, group_by in enumerate(SEPARATOR_GROUP_BYS)
        ],
    }
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "route": as_citybrain(tree)}))
    router = load_routing(path, dict.fromkeys(receivers(tree), playbook))
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump({"route": tree, "receivers": [{"name": n} for n in receivers(tree)]})
    )
    alerts = []
    for i in range(150):
        labels = {"alert_id": f"al-{i}"}
        for name in ("kind", "district", "severity"):
            if rng.random() < 0.7:  # else missing: "" in the key
                labels[name] = "".join(rng.choices(SEPARATOR_PIECES, k=rng.choice([1, 2, 3])))
        alerts.append(labels)
    members: dict[tuple[str, str], set[str]] = defaultdict(set)
    for labels in alerts:
        for r in router.root.match(labels):
            members[(r.playbook, r.group_key(labels))].add(labels["alert_id"])
    expected: dict[str, set[frozenset[str]]] = defaultdict(set)
    for (receiver, _), ids in members.items():
        expected[receiver].add(frozenset(ids))
    # Some of citybrain's key texts, joined as before, would have been one for two groups.
    joined: dict[tuple[str, str], set[tuple[str, ...]]] = defaultdict(set)
    for labels in alerts:
        for r in router.root.match(labels):
            values = tuple(labels.get(n, "") for n in r.group_by)
            text = "|".join(f"{n}={v}" for n, v in zip(r.group_by, values, strict=True))
            joined[(r.playbook, text)].add(values)
    assert any(len(v) > 1 for v in joined.values())
    am = Alertmanager(config, tmp_path / "data")
    try:
        assert http("POST", "/alerts", [{"labels": a} for a in alerts])[0] == 200
        total = sum(len(ids) for ids in members.values())
        deadline, placed, groups = time.monotonic() + 30, 0, []
        while time.monotonic() < deadline:
            status, groups = http("GET", "/alerts/groups")
            assert status == 200
            placed = sum(len(g["alerts"]) for g in groups)
            if placed >= total:
                break
            time.sleep(0.3)
        assert placed == total
        theirs: dict[str, set[frozenset[str]]] = defaultdict(set)
        for g in groups:
            theirs[g["receiver"]["name"]].add(
                frozenset(a["labels"]["alert_id"] for a in g["alerts"])
            )
        assert theirs == expected
    finally:
        am.stop()


def test_a_group_emptied_of_alerts_starts_afresh_and_one_still_firing_flushes_on(
    tmp_path: Path, grid: Any
) -> None:
    """t71: Alertmanager deletes a group whose alerts have all resolved once a flush has
    sent their resolution (0.25: at its 30 s cleanup after that flush), so a later alert
    of the key makes a fresh group, notified group_wait after it came (al-2); a group
    whose alert still fires keeps flushing, so an alert joining it goes out at its next
    tick (al-4), which is where citybrain sends the first notification of a run opened
    after people closed the group's run. citybrain kept the emptied group's ticks (al-2
    went out at its next tick, 8 s later here) and gave the new run after a closed one
    a fresh group_wait (al-4 notified 8 s early)."""
    hook_port = shifted_port(29096)
    gw, gi = 2.0, 10.0
    route_doc = {"group_by": ["district"], "group_wait": "2s", "group_interval": "10s"}
    config = webhook_config(tmp_path, hook_port, route_doc)
    one, three = {"alert_id": "al-1", "district": "d1"}, {"alert_id": "al-3", "district": "d2"}
    hook = Webhook(hook_port)
    am = Alertmanager(config, tmp_path / "data")
    try:
        t0 = time.time()
        assert http("POST", "/alerts", [{"labels": one}, {"labels": three}])[0] == 200
        hook.until({"al-1", "al-3"})
        first = max(hook.at["al-1"], hook.at["al-3"])  # both groups flushed at t0 + gw
        ended = {"labels": one, "startsAt": iso(t0), "endsAt": iso(time.time())}
        assert http("POST", "/alerts", [ended])[0] == 200
        # The flush at first + gi empties d1's group; the cleanup within 30 s deletes it.
        while time.time() < first + gi + 31:
            time.sleep(0.2)
        came = time.time()
        two, four = {"alert_id": "al-2", "district": "d1"}, {"alert_id": "al-4", "district": "d2"}
        assert http("POST", "/alerts", [{"labels": two}, {"labels": four}])[0] == 200
        hook.until({"al-2", "al-4"})
        am_two, am_four = hook.at["al-2"] - came, hook.at["al-4"] - came
    finally:
        am.stop()
        hook.close()
    assert abs(am_two - gw) < 1.5, am_two  # a fresh group
    tick = next_group_flush(first, 0.0, gi, came)  # d2's group flushes on
    assert abs(am_four - tick) < 1.5 and tick > gw + 2, (am_four, tick)
    # citybrain, driven with the same times: d1's run stays open, its group restarts.
    engine = PlaybookEngine(load_playbooks(PLAYBOOK_DIR)["sensor-anomaly"], grid)
    alert = {"alert_id": "al-1", "grid_cell": "c-bridge", "kind": "k"}
    d1, _ = engine.new_run("d1.1", alert, first)
    d1, _ = engine.alert_resolved(d1, "al-1", first + 1)
    d1, _ = engine.join(d1, "al-2", came, gi, gw)
    at = came + 0.1
    while not engine.flush(d1, gi, 3600.0, at)[1]:
        at += 0.1
    assert abs((at - came) - am_two) < 1.5, (at - came, am_two)
    # d2's run closed by people while al-3 fires: the next run waits for the group's tick.
    d2, _ = engine.new_run("d2.1", {**alert, "alert_id": "al-3"}, first)
    d2, _ = engine.resolve(d2, "op", "done", first + 5)
    wait = group_next_tick(d2, gi, came)
    assert wait is not None and abs(wait - am_four) < 1.5, (wait, am_four)


def test_a_silence_matching_every_alert_but_not_the_empty_string_is_accepted(
    tmp_path: Path,
) -> None:
    """t71: ``alert_id=~".+"`` matches every alert, yet no matcher of it matches the
    empty string: Alertmanager's API and ``amtool silence add`` accept it and it
    suppresses every alert; citybrain accepts it too (its answer says how many firing
    alerts it matches, ``firing_matched``), while ``alert_id=~".*"`` is refused by all."""
    amtool_path, am = amtool_and_silence_server(tmp_path)
    try:
        accepted = {}
        for text in ('alert_id=~".+"', 'alert_id=~".*"'):
            done = subprocess.run(
                [amtool_path, "silence", "add", f"--alertmanager.url=http://127.0.0.1:{PORT}",
                 "--comment=t", "--duration=1h", "--output=simple", text],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            try:
                new_silence("s", [text], 0, 2e9, "t", "r")
                ours = True
            except SilenceError:
                ours = False
            accepted[text] = (done.returncode == 0, ours)
        assert accepted == {'alert_id=~".+"': (True, True), 'alert_id=~".*"': (False, False)}
        labels = {"alert_id": "al-1", "kind": "water_level", "severity": "critical"}
        assert http("POST", "/alerts", [{"labels": labels}])[0] == 200
        deadline = time.monotonic() + 10
        state = None
        while time.monotonic() < deadline and state != "suppressed":
            alerts = http("GET", "/alerts")[1]
            state = alerts[0]["status"]["state"] if alerts else None
            time.sleep(0.2)
        assert state == "suppressed"
    finally:
        am.stop()


# Inherited timings (t107): amgen and the trees above write group_wait, group_interval
# and repeat_interval at any level, but amtool shows none of them, and the rounds above
# hold group_wait at an hour, so which timing a route inherits was never compared with
# Alertmanager. Here each route of a seeded tree sets each timing or inherits it; every
# route has its own webhook receiver, and the times Alertmanager notifies must be the
# ones citybrain's routes carry: an alert's first notification group_wait after it came,
# and an alert joining its notified group at that group's next group_interval tick.
TIMING_SEEDS = (31, 32)
TIMING_WAITS = ["1s", "6s"]
TIMING_INTERVALS = ["2s", "3s"]
TIMING_SLACK = 0.9  # seconds: the webhook's delivery and Alertmanager's dispatch


class ReceiverHook(Webhook):
    """A Webhook that also keeps, per (receiver, alert id), when it was first notified."""

    def __init__(self, port: int) -> None:
        self.by_receiver: dict[tuple[str, str], float] = {}
        self.times: dict[tuple[str, str], list[float]] = defaultdict(list)
        seen, times = self.by_receiver, self.times

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                for a in body["alerts"]:
                    if a["status"] == "firing":
                        key = (body["receiver"], a["labels"]["alert_id"])
                        seen.setdefault(key, time.time())
                        times[key].append(time.time())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.firing, self.at = [], {}
        # Every group notifies at once: the default backlog of 5 connections made the
        # sixth and later ones wait a second for the client's SYN to be sent again.
        server = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 256})
        self.server = server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def until_all(self, keys: set[tuple[str, str]], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not keys <= set(self.by_receiver) and time.monotonic() < deadline:
            time.sleep(0.05)


HOOK_PORT = shifted_port(29096)  # the webhook every receiver of both_configs calls


def both_configs(
    tmp_path: Path,
    playbook: Any,
    tree: dict[str, Any],
    extra: dict[str, Any] | None = None,
    **webhook: Any,
) -> tuple[Router, Path]:
    """citybrain's router of the Alertmanager route ``tree`` (with ``extra`` top-level
    sections, e.g. ``time_intervals``), and the path of Alertmanager's config of the same,
    each receiver a webhook at ``HOOK_PORT``/its name (``webhook``: more of its settings)."""
    extra = extra or {}
    ours = tmp_path / "routing.yaml"
    ours.write_text(
        yaml.safe_dump({"version": 1, "route": as_citybrain(tree), **extra}, allow_unicode=True)
    )
    router = load_routing(ours, dict.fromkeys(receivers(tree), playbook))
    hooks = [
        {"name": n, "webhook_configs": [{"url": f"http://127.0.0.1:{HOOK_PORT}/{n}", **webhook}]}
        for n in sorted(set(receivers(tree)))
    ]
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        yaml.safe_dump({"route": tree, **extra, "receivers": hooks}, allow_unicode=True)
    )
    return router, config


def random_labels(rng: random.Random, names: Sequence[str], **fixed: str) -> dict[str, str]:
    """``fixed``, and each of ``names`` with a value of ``VALUES`` at odds of 0.85."""
    labels = dict(fixed)
    for name in names:
        if rng.random() < 0.85:
            labels[name] = rng.choice(VALUES[name])
    return labels


def timed_route(
    rng: random.Random,
    receiver: str,
    depth: int,
    root: bool,
    repeats: tuple[str, ...] = ("1h", "2h"),
) -> dict[str, Any]:
    node: dict[str, Any] = {"receiver": receiver}
    if root:
        node |= {"group_by": ["kind"], "group_wait": "3s", "group_interval": "5s"}
        node["repeat_interval"] = repeats[0]
    else:
        # Mostly one matcher, and continue often, so alerts reach routes all over the tree.
        ops = ["=", "!="]
        node["matchers"] = [
            str(matcher(rng, rng.choice(ops))) for _ in range(rng.choice([0, 1, 1, 1]))
        ]
        node["continue"] = depth == 1 or rng.random() < 0.5  # every subtree is reached
        if rng.random() < 0.4:
            node["group_wait"] = rng.choice(TIMING_WAITS)
        if rng.random() < 0.4:
            node["group_interval"] = rng.choice(TIMING_INTERVALS)
        if rng.random() < 0.3:
            node["repeat_interval"] = rng.choice(repeats)
    if depth < 3:
        node["routes"] = [
            timed_route(rng, f"{receiver}_{i}", depth + 1, False, repeats)
            for i in range(rng.choice([0, 1, 2, 2]) if not root else 3)
        ]
    return node


@pytest.mark.parametrize("seed", TIMING_SEEDS)
def test_inherited_timings_notify_when_alertmanager_does(
    tmp_path: Path, playbook: Any, seed: int
) -> None:
    rng = random.Random(seed)
    tree = timed_route(rng, "t", 0, root=True)
    router, config = both_configs(tmp_path, playbook, tree, send_resolved=False)
    # One group per kind and route: each kind's first alert, then a second one that joins.
    firsts, seconds = [], []
    for i in range(16):
        labels = random_labels(rng, ("severity", "district", "category"), kind=f"k{i}")
        firsts.append({"alert_id": f"al-{i}", **labels})
        seconds.append({"alert_id": f"al-{i}b", **labels})
    reached = {a["alert_id"]: router.root.match(a) for a in firsts + seconds}
    hook = ReceiverHook(HOOK_PORT)
    am = Alertmanager(config, tmp_path / "data")
    problems: list[str] = []
    try:
        came = time.time()
        assert http("POST", "/alerts", [{"labels": a} for a in firsts])[0] == 200
        want = {(r.playbook, a["alert_id"]) for a in firsts for r in reached[a["alert_id"]]}
        hook.until_all(want)
        assert want <= set(hook.by_receiver), sorted(want - set(hook.by_receiver))[:5]
        checked = {"wait": 0, "interval": 0}
        for a in firsts:
            for r in reached[a["alert_id"]]:
                took = hook.by_receiver[(r.playbook, a["alert_id"])] - came
                checked["wait"] += 1
                if abs(took - r.group_wait) > TIMING_SLACK:
                    problems.append(
                        f"{a['alert_id']} at {r.playbook}: notified after {took:.1f}s, "
                        f"citybrain's group_wait {r.group_wait:g}s"
                    )
        joined = time.time()
        assert http("POST", "/alerts", [{"labels": a} for a in firsts + seconds])[0] == 200
        want = {(r.playbook, a["alert_id"]) for a in seconds for r in reached[a["alert_id"]]}
        hook.until_all(want)
        assert want <= set(hook.by_receiver), sorted(want - set(hook.by_receiver))[:5]
        for a, b in zip(firsts, seconds, strict=True):
            for r in reached[b["alert_id"]]:
                flushed = hook.by_receiver[(r.playbook, a["alert_id"])]
                # The group's ticks: its first flush (as notified), then every interval.
                ticks = (joined - flushed) / r.group_interval
                if ticks > 0.75 and abs(ticks - round(ticks)) < 0.25:
                    continue  # the join came at a later tick: either tick is right
                expected = flushed + max(1, math.ceil(ticks)) * r.group_interval
                took = hook.by_receiver[(r.playbook, b["alert_id"])]
                checked["interval"] += 1
                if abs(took - expected) > TIMING_SLACK:
                    problems.append(
                        f"{b['alert_id']} at {r.playbook}: joined {joined - flushed:.1f}s after "
                        f"the first flush, notified {took - flushed:.1f}s after it; citybrain's "
                        f"group_interval {r.group_interval:g}s says {expected - flushed:.1f}s"
                    )
    finally:
        am.stop()
        hook.close()
    assert not problems, "\n".join(problems)
    # Routes with their own and with inherited timings were both compared.
    timings = {(r.group_wait, r.group_interval) for rs in reached.values() for r in rs}
    assert len(timings) >= 2, timings
    assert checked["wait"] >= 16 and checked["interval"] >= 8, checked


# Time mutes on a running Alertmanager (t107): the intervals themselves are compared with
# Alertmanager's own package (test_time_intervals_differential.py), but which routes a
# route's mute_time_intervals and active_time_intervals hold (its own, not its children's;
# a mute and an active list together; several names) was not. Named intervals that hold
# or not whatever the hour, and weekday ones, on random routes of a seeded tree; each
# route's webhook must be notified exactly when citybrain's router lets it notify.
MUTE_SEEDS = (41, 42)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def named_intervals(now: float) -> dict[str, list[dict[str, Any]]]:
    """Intervals whose truth cannot change within a day of ``now``: the days and years
    either side of it hold or do not together, so a run across midnight (or New Year)
    sees the same mutes in citybrain's check as in Alertmanager's."""
    day = time.gmtime(now).tm_wday
    near = [WEEKDAYS[(day + d) % 7] for d in (-1, 0, 1)]
    year = time.gmtime(now).tm_year
    return {
        "always": [{}],
        "never": [],
        "these_days": [{"weekdays": near}],
        "other_days": [{"weekdays": [w for w in WEEKDAYS if w not in near]}],
        "these_years": [{"years": [f"{year - 1}:{year + 1}"]}],
    }


NAMED_INTERVALS = named_intervals(time.time())


def muted_route(rng: random.Random, receiver: str, depth: int, root: bool) -> dict[str, Any]:
    node: dict[str, Any] = {"receiver": receiver}
    if root:
        node |= {"group_by": ["alert_id"], "group_wait": "0s", "group_interval": "1s"}
    else:
        ops = ["=", "!="]
        node["matchers"] = [str(matcher(rng, rng.choice(ops))) for _ in range(rng.choice([0, 1]))]
        node["continue"] = depth == 1 or rng.random() < 0.5
        for key in ("mute_time_intervals", "active_time_intervals"):
            if rng.random() < 0.4:
                node[key] = rng.sample(sorted(NAMED_INTERVALS), rng.choice([1, 1, 2]))
    if depth < 3:
        node["routes"] = [
            muted_route(rng, f"{receiver}_{i}", depth + 1, root=False)
            for i in range(rng.choice([0, 1, 2]) if not root else 4)
        ]
    return node


@pytest.mark.parametrize("seed", MUTE_SEEDS)
def test_route_time_mutes_hold_the_routes_alertmanager_holds(
    tmp_path: Path, playbook: Any, seed: int
) -> None:
    rng = random.Random(seed)
    tree = muted_route(rng, "t", 0, root=True)
    intervals = [{"name": k, "time_intervals": v} for k, v in NAMED_INTERVALS.items()]
    router, config = both_configs(tmp_path, playbook, tree, {"time_intervals": intervals})
    alerts = [random_labels(rng, NAMES, alert_id=f"al-{i}") for i in range(40)]
    hook = ReceiverHook(HOOK_PORT)
    am = Alertmanager(config, tmp_path / "data")
    try:
        now = time.time()
        assert http("POST", "/alerts", [{"labels": a} for a in alerts])[0] == 200
        expected: set[tuple[str, str]] = set()
        held = 0
        for a in alerts:
            for r in router.root.match(a):
                if router.time_muted(r.mute_time_intervals, r.active_time_intervals, now):
                    held += 1
                else:
                    expected.add((r.playbook, a["alert_id"]))
        hook.until_all(expected)
        time.sleep(2)  # two more flushes: a held route that Alertmanager notifies shows
        notified = set(hook.by_receiver)
    finally:
        am.stop()
        hook.close()
    assert notified == expected, (sorted(notified - expected)[:5], sorted(expected - notified)[:5])
    assert held >= 5 and len(expected) >= 20, (held, len(expected))


# Repeats (t107): no differential test had a repeat_interval shorter than its run, so
# none saw which one a route inherits. Here routes set or inherit one of two that are not
# a whole number of their group intervals (a repeat is sent at the first flush at least
# repeat_interval after the last notification, so such a pair has one right answer).
REPEAT_SEEDS = (51, 52)


@pytest.mark.parametrize("seed", REPEAT_SEEDS)
def test_inherited_repeat_intervals_repeat_when_alertmanager_does(
    tmp_path: Path, playbook: Any, seed: int
) -> None:
    rng = random.Random(seed)
    tree = timed_route(rng, "t", 0, root=True, repeats=("7s", "11s"))
    router, config = both_configs(tmp_path, playbook, tree)
    alerts = [
        random_labels(rng, ("severity", "district", "category"), alert_id=f"al-{i}", kind=f"k{i}")
        for i in range(12)
    ]
    reached = {a["alert_id"]: router.root.match(a) for a in alerts}
    hook = ReceiverHook(HOOK_PORT)
    am = Alertmanager(config, tmp_path / "data")
    problems = []
    try:
        assert http("POST", "/alerts", [{"labels": a} for a in alerts])[0] == 200
        longest = max(
            math.ceil(r.repeat_interval / r.group_interval) * r.group_interval + r.group_wait
            for rs in reached.values()
            for r in rs
        )
        time.sleep(longest + 2 * TIMING_SLACK)
        for a in alerts:
            for r in reached[a["alert_id"]]:
                times = hook.times.get((r.playbook, a["alert_id"]), [])
                if len(times) < 2:
                    problems.append(f"{a['alert_id']} at {r.playbook}: not repeated: {times}")
                    continue
                ticks = math.ceil(r.repeat_interval / r.group_interval)
                expected = ticks * r.group_interval
                if abs(times[1] - times[0] - expected) > TIMING_SLACK:
                    problems.append(
                        f"{a['alert_id']} at {r.playbook}: repeated {times[1] - times[0]:.1f}s "
                        f"after; citybrain's repeat_interval {r.repeat_interval:g}s and "
                        f"group_interval {r.group_interval:g}s say {expected:g}s"
                    )
    finally:
        am.stop()
        hook.close()
    assert not problems, "\n".join(problems)
    # Own and inherited settings: more than one (repeat, interval) pair was compared.
    pairs = {(r.repeat_interval, r.group_interval) for rs in reached.values() for r in rs}
    assert len(pairs) >= 2, pairs
