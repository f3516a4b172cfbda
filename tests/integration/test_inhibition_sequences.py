"""Inhibition over time against a real Alertmanager 0.25 (t161): generated inhibit rules
and a generated sequence of alerts firing and resolving, compared after every step with
``/api/v2/alerts``' ``status.inhibitedBy``.

The other inhibition differentials (``test_alertmanager_server.py``,
``test_shapes_differential.py``) send every alert at once and compare one snapshot. Here
the order matters: a source that fires after its target, a source that resolves (the
inhibition must end with it), one that fires again, a chain (A inhibits B, B inhibits C:
in Alertmanager B still inhibits C while A mutes B), an alert matching both sides of a
rule, ``equal`` over labels both sides lack and ``equal: []``, the deprecated
``source_match``/``source_match_re`` maps beside ``*_matchers``, regexes that only match
anchored (``kind=~"pm"`` is not ``pm25``), and many rules at once. citybrain is asked two
ways at every step, as the worker asks: through the ``SourceIndex`` kept as alerts fire
and resolve (``put``/``drop``, the alerts stage's ``firing`` table) and by walking every
firing alert; both must give Alertmanager's answer.

An alert is resolved in Alertmanager by posting it with ``endsAt`` in the past, as
Prometheus resolves one; citybrain drops it from its firing alerts, as the alerts stage
does on a ``resolved`` message. An alert keeps its labels for its life (citybrain keys
alerts by ``alert_id``, Alertmanager by the whole label set: a relabelled alert is a
documented difference, docs/playbooks.md "Inhibition and silences").
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from playbooks.routing import IndexedFiring, Router, SourceIndex
from tests.integration.test_alertmanager_server import (
    ALERTMANAGER,
    Alertmanager,
    http,
    inhibiting,
    playbook,
)

pytestmark = pytest.mark.integration
__all__ = ["playbook"]  # the fixture, used by name

SEEDS = (1002, 1003, 1004)
ALERTS, STEPS, RULES = 40, 14, 7

VALUES = {
    "kind": ["pm25", "pm", "power_load", "water_level"],
    "severity": ["minor", "major", "critical"],
    "district": ["d1", "d2"],
    "category": ["noise", "gas"],
}
# Matchers for the *_matchers lists: anchoring (`pm` only, never `pm25`), alternations,
# ones matching the empty string (a label the alert lacks), negations.
MATCHERS = [
    'kind=~"pm"', 'kind=~"pm.*"', 'kind="power_load"', 'kind!="pm25"', 'kind=~"power|water"',
    'severity="critical"', 'severity=~"major|critical"', 'severity!~"minor"',
    'severity=~"crit"', 'district=~"d1|"', 'district!="d2"', 'category=""',
    'category=~"noise|gas"', 'category!~".+"', 'severity=~".*"',
]  # fmt: skip
# Values for the deprecated *_match_re maps (Alertmanager anchors them too).
MATCH_RE = {
    "kind": ["pm", "pm.*", "power_load|water_level"],
    "severity": ["major|critical", "crit"],
    "district": ["d1", "d."],
    "category": ["noise", ".*"],
}
EQUALS = [[], ["district"], ["category"], ["district", "category"], ["kind"]]


def side(rng: random.Random, which: str) -> dict[str, Any]:
    """One side of an inhibit rule: ``*_matchers``, the deprecated maps, or both."""
    out: dict[str, Any] = {}
    style = rng.choice(["matchers", "matchers", "maps", "both"])
    if style in ("matchers", "both"):
        out[f"{which}_matchers"] = rng.sample(MATCHERS, rng.choice([1, 1, 2]))
    if style in ("maps", "both"):
        names = rng.sample(list(VALUES), rng.choice([1, 2]))
        for name in names:
            if rng.random() < 0.5:
                out.setdefault(f"{which}_match", {})[name] = rng.choice(VALUES[name])
            else:
                out.setdefault(f"{which}_match_re", {})[name] = rng.choice(MATCH_RE[name])
    return out


def rules(rng: random.Random) -> list[dict[str, Any]]:
    """RULES rules, among them a chain (kind A inhibits B, B inhibits C) and one whose
    sides overlap, so that alerts matching both sides are common."""
    a, b, c = rng.sample(VALUES["kind"], 3)
    out = [
        {"source_matchers": [f'kind="{a}"'], "target_matchers": [f'kind="{b}"'], "equal": []},
        {
            "source_matchers": [f'kind="{b}"'],
            "target_matchers": [f'kind="{c}"'],
            "equal": rng.choice(EQUALS),
        },
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity=~"major|critical"'],
            "equal": rng.choice(EQUALS),
        },
    ]
    while len(out) < RULES:
        out.append({**side(rng, "source"), **side(rng, "target"), "equal": rng.choice(EQUALS)})
    rng.shuffle(out)
    return out


def alerts(rng: random.Random) -> list[dict[str, str]]:
    """ALERTS label sets, each label often missing (``equal`` and matchers then meet the
    empty value)."""
    out = []
    for i in range(ALERTS):
        labels = {"alert_id": f"al-{i}", "kind": rng.choice(VALUES["kind"])}
        for name in ("severity", "district", "category"):
            if rng.random() < 0.7:
                labels[name] = rng.choice(VALUES[name])
        out.append(labels)
    return out


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def ours(router: Router, index: SourceIndex, firing: dict[str, dict[str, str]]) -> set[str]:
    """The firing alerts citybrain's router inhibits, asked through the index (the
    worker's way) and by walking; the two must agree."""
    out = set()
    for alert_id, labels in firing.items():
        others = [v for k, v in firing.items() if k != alert_id]
        walked = router.decide(labels, others, [], time.time())
        indexed = router.decide(
            labels, IndexedFiring(index, alert_id, others.copy), [], time.time()
        )
        assert (walked.mute is None) == (indexed.mute is None), (labels, walked, indexed)
        if walked.mute is not None:
            out.add(alert_id)
    return out


def theirs(expected: set[str], firing: set[str]) -> set[str]:
    """Alertmanager's inhibited alerts once it lists exactly ``firing`` (its inhibitor's
    cache is filled as alerts arrive: waits up to 20 s for ``expected``)."""
    deadline = time.monotonic() + 20
    while True:
        status, listed = http("GET", "/alerts")
        assert status == 200, listed
        active = {a["labels"]["alert_id"]: a["status"] for a in listed}
        found = {k for k, s in active.items() if s["inhibitedBy"]}
        if (set(active) == firing and found == expected) or time.monotonic() > deadline:
            assert set(active) == firing, (sorted(set(active) ^ firing), "listed apart")
            return found
        time.sleep(0.2)


@pytest.mark.parametrize("seed", SEEDS)
def test_inhibition_follows_alertmanager_as_alerts_fire_and_resolve(
    tmp_path: Path, playbook: Any, seed: int
) -> None:
    assert ALERTMANAGER is not None, "apt-get install prometheus-alertmanager"
    rng = random.Random(seed)
    rule_docs = rules(rng)
    router, config = inhibiting(tmp_path, rule_docs, playbook)
    pool = alerts(rng)
    index = SourceIndex(router.inhibit_rules)
    firing: dict[str, dict[str, str]] = {}
    am = Alertmanager(config, tmp_path / "data")
    seen = {"inhibited": 0, "released": 0, "resolved": 0}
    try:
        before: set[str] = set()
        for step in range(STEPS):
            now = time.time()
            # Fire a few (again, some), resolve a few: sources after targets and back.
            fire = rng.sample(pool, rng.randint(2, 8))
            resolve = rng.sample(sorted(firing), min(len(firing), rng.randint(0, 4)))
            fire = [a for a in fire if a["alert_id"] not in resolve]
            body = [
                {"labels": a, "startsAt": _iso(now - 60), "endsAt": _iso(now + 3600)} for a in fire
            ] + [
                {"labels": firing[k], "startsAt": _iso(now - 60), "endsAt": _iso(now - 1)}
                for k in resolve
            ]
            assert http("POST", "/alerts", body)[0] == 200
            for a in fire:
                firing[a["alert_id"]] = a
                index.put(a["alert_id"], a)
            for k in resolve:
                del firing[k]
                index.drop(k)
            seen["resolved"] += len(resolve)
            expected = ours(router, index, firing)
            found = theirs(expected, set(firing))
            assert found == expected, (
                f"step {step}: inhibited only by Alertmanager {sorted(found - expected)}, "
                f"only by citybrain {sorted(expected - found)}; rules {rule_docs}"
            )
            seen["inhibited"] += len(expected)
            seen["released"] += len((before - expected) & set(firing))
            before = expected
    finally:
        am.stop()
    # The sequence reached what it is for: inhibitions made, ended while the target
    # still fires, and sources resolved.
    assert all(seen.values()), seen
