"""t182: routing, grouping and inhibition of the kinds mutual-inhibition and
zero-repeat-interval against Alertmanager 0.25's own code (``tools/amroute``) and the
shipped ``amtool``, on ``kindgen.py``'s configurations (its own generator: rings of
inhibit rules an alert meets on both sides, ``equal`` on labels one or both sides lack,
inherited receivers, ``group_by`` and intervals five routes deep, deprecated
``match``/``match_re`` beside ``matchers``, durations in every spelling, time intervals in
zones with daylight-saving changes at instants around them, one deliberate fault in some).

Compared per configuration: accepted or refused, and refused for the same reason
(``REASONS``: Alertmanager's words and citybrain's for each refusal); then, per alert,
everything ``test_dispatch_oracle.compare`` and ``compare_keys`` compare (the routes
taken, their receivers and resolved options, whether each is held at each instant, the
groups and group keys, inhibited or not, silenced by which silences), and the receivers
``amtool config routes test`` gives for the first configurations' alerts.

Time-interval holds are compared with Alertmanager 0.25's month length
(``_days_as_alertmanager_0_25``): its one documented difference from citybrain's
(docs/playbooks.md, a month with a spring-forward change is a day short there), which
these instants around the changes meet on purpose.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks import time_intervals
from playbooks.errors import PlaybookError
from playbooks.loader import routing_errors
from tests.integration import chaingen, kindgen
from tests.integration.test_alertmanager_independent import routes_test as amtool_routes_test
from tests.integration.test_dispatch_oracle import amroute, judged_by_oracle, oracle
from tests.integration.test_time_intervals_differential import _days_as_alertmanager_0_25

pytestmark = pytest.mark.integration
__all__ = ["amroute"]  # the fixture, used by name

SEED, CONFIGS, ALERTS, SILENCES = 182_000_000, 300, 12, 2
AMTOOL_CONFIGS = 10
# Alertmanager 0.25's refusal (config.Load's error, a regex) -> what one of citybrain's
# errors for the same file says (a regex; groups of the first filled in).
REASONS = (
    (r"group_interval cannot be zero", r"group_interval cannot be zero"),
    (r"repeat_interval cannot be zero", r"repeat_interval cannot be zero"),
    (r'not a valid duration string: "(.*)"', r"duration (is )?'\1'"),
    (r"empty duration string", r"duration is empty"),
    (r"duration out of range", r"is out of range \(at most about 292 years\)"),
    (r"cannot have continue in root route", r"the root route cannot continue"),
    (r"root route must not have any matchers", r"the root route matches every alert"),
    (
        r"root route must not have any (mute|active) time intervals",
        r"the root route cannot have \1_time_intervals",
    ),
    (r'undefined time interval "(.*)" used in route', r"undefined time interval '\1'"),
    (r"cannot have wildcard group_by", r"cannot have wildcard group_by"),
    (r'duplicated label "(.*)" in group_by', r"duplicated label '\1' in group_by"),
    (r'undefined receiver "(.*)" used in route', r"playbook '\1' does not exist"),
    (r"start day cannot be before end day", r"the end day is before the start day"),
    (r"end month \w+ is before start month \w+", r"the end month is before the start month"),
    (
        r"end day must be negative if start day is negative",
        r"the end day must be negative if the start is",
    ),
    (
        r"end day (-?\d+) is always before start day (-?\d+)",
        r"the end day \1 is always before the start \2",
    ),
    (
        r"(-?\d+) is not a valid day of the month: out of range",
        r"day of the month \1 is out of range",
    ),
    (r"end year \d+ is before start year \d+", r"the end year is before the start year"),
    (r"start time cannot be equal or greater than end time", r"is not before end_time"),
    (
        r"both start and end times must be provided",
        r"a time range needs both start_time and end_time",
    ),
    (r"unknown time zone (.*)", r"location '\1' is not a time zone"),
    # Go's time.LoadLocation: a name it refuses unread, or a path that is no zone file.
    (r"time: invalid location name", r"location '.*' is not a time zone name"),
    (r"(not a directory|is a directory)", r"location '.*' is not a time zone of the IANA"),
    (r"(\w+) is not a valid weekday", r"weekday '\1' is not a day's name"),
    (r"(\w+) is not a valid month", r"month '\1' is not a month's name"),
)


def reason_problem(theirs: str, ours: list[str]) -> str:
    """'' when one of citybrain's errors says Alertmanager's refusal ``theirs``; else why
    not (a refusal ``REASONS`` does not know is a problem too: add it there)."""
    for pattern, want in REASONS:
        found = re.search(pattern, theirs)
        if found:
            said = found.expand(want)
            if any(re.search(said, e) for e in ours):
                return ""
            return f"Alertmanager: {theirs!r}; citybrain says no {said!r}: {ours[:3]}"
    return f"an Alertmanager refusal REASONS does not know: {theirs!r}"


def request(rng: random.Random, cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "config": yaml.safe_dump(cfg, allow_unicode=True),
        "alerts": kindgen.alerts(rng, ALERTS),
        "silences": [kindgen.silence(rng) for _ in range(SILENCES)],
        "instants": kindgen.instants(rng),
    }


def test_kind_rounds_agree_with_alertmanager(
    amroute: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time_intervals, "_days_in_month", _days_as_alertmanager_0_25)
    cases = []
    for seed in range(SEED, SEED + CONFIGS):
        rng = random.Random(seed)
        cfg = kindgen.config(rng)
        cases.append((seed, cfg, request(rng, cfg)))
    problems, seen, accepted = judged_by_oracle(amroute, cases, tmp_path, "kind")
    # Refused alike, for the same reason.
    reasons = 0
    for (seed, cfg, _), theirs in zip(cases, oracle(amroute, [c[2] for c in cases]), strict=True):
        if not theirs.get("error"):
            continue
        path = tmp_path / f"reason-{seed}.yaml"
        path.write_text(yaml.safe_dump(chaingen.citybrain(cfg), allow_unicode=True), "utf-8")
        try:
            router, errors = routing_errors(path, chaingen.RECEIVERS)
        except PlaybookError as exc:
            router, errors = None, [str(exc)]
        if router is None:
            reasons += 1
            why = reason_problem(theirs["error"], errors)
            if why:
                problems.append(f"seed {seed}: {why}")
    # The shipped amtool's receivers for the first configurations' alerts.
    by_seed = {seed: (cfg, req) for seed, cfg, req in cases}
    for seed, _, theirs in accepted[:AMTOOL_CONFIGS]:
        cfg, req = by_seed[seed]
        am_file = tmp_path / f"amtool-{seed}.yml"
        am_file.write_text(req["config"], "utf-8")
        for labels, want in zip(req["alerts"], theirs["alerts"], strict=True):
            got = amtool_routes_test(am_file, labels)
            if got != [r["receiver"] for r in want["routes"]]:
                problems.append(f"seed {seed} {labels}: amtool routes test says {got}")
    assert not problems, f"{len(problems)} disagreements:\n" + "\n".join(problems[:25])
    # The generator reaches what it is for: refusals of each kind of fault, alerts
    # inhibited and not, several routes, holds at the instants.
    assert seen["accepted"] >= CONFIGS * 0.6 and reasons >= CONFIGS * 0.15, (seen, reasons)
    assert min(seen[k] for k in ("continued", "inhibited", "silenced")) >= 100, seen
    held = Counter(
        any(any(r["held"]) for r in a["routes"]) for _, _, t in accepted for a in t["alerts"]
    )
    assert held[True] >= 200 and held[False] >= 200, held
