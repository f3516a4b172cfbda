"""t182's generator of routing configurations for the dispatch oracle (``tools/amroute``),
aimed at the kinds of the field cases mutual-inhibition and zero-repeat-interval.

Its own seed space and shapes, apart from ``chaingen.py`` and ``advgen.py`` (their
regexes and odd values are not its business: its matchers take a few plain values, so
alerts meet every route and every side of every rule):

- inhibit rules that an alert meets on both sides (one rule, or the source of one and the
  target of another, in a ring of two or three rules), with ``equal`` naming labels
  absent on one side, on both, or none (``equal`` left out), the sides written as
  ``source_matchers``, deprecated ``source_match``/``source_match_re`` or both;
- routes nested five deep that leave ``receiver``, ``group_by`` and the intervals to
  their parents, ``group_by: ['...']`` under a parent's list and back, ``continue``
  chains with siblings after them, routes of no matchers and routes of ``{}``;
- durations in every spelling Prometheus' ``model.ParseDuration`` has or refuses
  (``0s``, ``0ms``, ``1y``, ``1w``, ``1h30m``, ``90s``, ``500ms``, ``1.5h``, ``-1s``,
  ``1d1d``, ``300y``, ``292y``), zero where Alertmanager refuses it and where it does not
  (``group_wait: 0s``), and (t213) the largest Go's ``time.Duration`` holds in each unit
  (``292y``, ``106751d``, ``2562047h``, ``9223372036s``) and one past it (``293y``,
  ``106752d``, ``9223372036855ms``);
- time intervals with locations that change to and from daylight-saving time, weekday,
  month and year ranges, negative ``days_of_month``, ``24:00``, named under
  ``time_intervals`` or the deprecated top-level ``mute_time_intervals``; instants on the
  hours around those changes.

Each configuration carries at most one deliberate fault (``FAULTS``), so a refusal's
reason can be told and compared. Pure: a seed gives a configuration as a dict
(Alertmanager's spelling); ``chaingen.citybrain`` gives the routing file's.
"""

from __future__ import annotations

import random
from typing import Any

from tests.integration import chaingen

LABELS = ("kind", "severity", "district", "category", "community", "source")
RECEIVERS = chaingen.RECEIVERS
VALUES: dict[str, tuple[str, ...]] = {
    "kind": ("pm25", "power_load", "water_level"),
    "severity": ("minor", "major", "critical"),
    "district": ("d1", "d2"),
    "category": ("noise", "heat"),
    "community": ("c1", "c2"),
    "source": ("sensor", "citizen"),
}
REGEXES: dict[str, tuple[str, ...]] = {
    "kind": ("pm.*", "power_load|pm25", "water_level|power_load", ".*"),
    "severity": ("major|critical", "critical", "minor|major", ".+"),
    "district": ("d1|d2", "d2", "d.*"),
    "category": ("noise|heat", "heat", ".*"),
    "community": ("c1", "c.+"),
    "source": ("sensor|citizen", "citizen"),
}
# Durations Alertmanager takes, by field (group_interval and repeat_interval of zero are
# faults, below).
GOOD_DURATIONS = ("0s", "1y", "1w", "1h30m", "90s", "500ms", "1d", "2h", "5m", "1m1s", "10s")
GOOD_NONZERO = ("1y", "1w", "1h30m", "90s", "500ms", "1d", "2h", "5m", "1m1s", "1ms", "0d1h")
# t213: the largest Go's time.Duration holds, in each unit, and a tiny one beside a huge
# one (each accepted by both: docs/playbooks.md, Durations).
HUGE = ("90d", "292y", "106751d", "2562047h", "9223372036s", "1y1ms")
BAD_DURATIONS = ("1.5h", "-1s", "1d1d", "1m1h", "300y", "5x", "1h 30m", "")
# t213: one past the largest, in each unit ("duration out of range" to both).
PAST_HUGE = ("293y", "106752d", "2562048h", "9223372037s", "9223372036855ms")
ZERO_DURATIONS = ("0s", "0ms", "0", "0y0w", "0h0m0s")
# Zones with daylight-saving changes both ways (and one without), and instants on them.
ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # a half-hour change
    "Asia/Kathmandu",  # +05:45
    "UTC",
    "Local",
    # Spellings Go's time.LoadLocation reads as the file they name (t182).
    "Europe//Berlin",
    "./America/New_York",
    "Australia/./Sydney",
)
# Epoch seconds of the 2026 changes: Berlin 29 Mar 01:00Z and 25 Oct 01:00Z, New York
# 8 Mar 07:00Z and 1 Nov 06:00Z, Sydney 4 Apr 16:00Z and 3 Oct 16:00Z, Lord Howe (half
# an hour) 4 Apr 15:00Z and 3 Oct 15:30Z.
CHANGES = (
    1774746000,
    1792890000,
    1772953200,
    1793512800,
    1775318400,
    1791043200,
    1775314800,
    1791041400,
)


def matcher(rng: random.Random, name: str | None = None) -> str:
    name = name or rng.choice(LABELS)
    op = rng.choice(("=", "=", "!=", "=~", "!~"))
    pool = VALUES[name] if op in ("=", "!=") else REGEXES[name]
    return f'{name}{op}"{rng.choice(pool)}"'


def matchers(rng: random.Random, node: dict[str, Any], prefix: str = "") -> None:
    """Matchers in any of the three ways, mixed: ``matchers``, ``match``, ``match_re``."""
    how = rng.random()
    if how < 0.5 or how >= 0.85:
        entries = [matcher(rng) for _ in range(rng.randint(1, 2))]
        if rng.random() < 0.2:
            entries = ["{" + ", ".join(entries) + "}"]
        node[f"{prefix}matchers"] = entries
    if how >= 0.5:
        name = rng.choice(LABELS)
        if rng.random() < 0.5:
            node[f"{prefix}match"] = {name: rng.choice(VALUES[name])}
        else:
            node[f"{prefix}match_re"] = {name: rng.choice(REGEXES[name])}


def group_by(rng: random.Random) -> list[str]:
    if rng.random() < 0.3:
        return ["..."]
    return rng.sample(("alert_id", *LABELS), rng.randint(1, 3))


def route(rng: random.Random, depth: int, names: list[str]) -> dict[str, Any]:
    node: dict[str, Any] = {}
    if rng.random() < 0.5:  # else inherited
        node["receiver"] = rng.choice(RECEIVERS[1:])
    shape = rng.random()
    if shape < 0.15:
        pass  # no matchers: takes every alert its parent passes it
    elif shape < 0.2:
        node["matchers"] = []
    else:
        matchers(rng, node)
    if rng.random() < 0.45:
        node["continue"] = True
    if rng.random() < 0.35:
        node["group_by"] = group_by(rng)
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if rng.random() < 0.2:
            pool = GOOD_DURATIONS if key == "group_wait" else GOOD_NONZERO
            node[key] = rng.choice(pool + HUGE)
    if names and rng.random() < 0.25:
        node["mute_time_intervals"] = rng.sample(names, rng.randint(1, min(2, len(names))))
    if names and rng.random() < 0.2:
        node["active_time_intervals"] = rng.sample(names, 1)
    if depth < 5 and rng.random() < (0.7 if depth < 3 else 0.4):
        node["routes"] = [route(rng, depth + 1, names) for _ in range(rng.randint(1, 3))]
    return node


def interval(rng: random.Random) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if rng.random() < 0.6:
        start = rng.choice(("00:00", "01:30", "02:00", "02:30", "03:00", "09:00", "22:00"))
        end = rng.choice(("02:30", "03:00", "03:30", "17:00", "24:00", "23:59"))
        if start >= end:
            start, end = "00:00", end
        spec["times"] = [{"start_time": start, "end_time": end}]
    if rng.random() < 0.5:
        spec["weekdays"] = [
            rng.choice(("sunday", "saturday", "monday:friday", "SUNDAY:monday", "friday"))
        ]
    if rng.random() < 0.4:
        spec["days_of_month"] = [rng.choice(("-1", "-7:-1", "1:7", "-31:-29", "25:-1", "8"))]
    if rng.random() < 0.4:
        spec["months"] = [rng.choice(("march", "3:4", "october:november", "April", "1:12"))]
    if rng.random() < 0.15:
        spec["years"] = [rng.choice(("2026", "2025:2027", "2027:2030"))]
    if rng.random() < 0.8:
        spec["location"] = rng.choice(ZONES)
    return spec


def side_alert_labels(rng: random.Random) -> dict[str, str]:
    return {name: rng.choice(VALUES[name]) for name in rng.sample(LABELS, rng.randint(2, 5))}


def rule(rng: random.Random) -> dict[str, Any]:
    """An inhibit rule whose sides overlap often: a target that is the source widened, the
    source itself, or another side; ``equal`` on labels alerts may lack."""
    out: dict[str, Any] = {}
    matchers(rng, out, "source_")
    pick = rng.random()
    if pick < 0.35:  # the field case's shape: the target takes the source and more
        name = rng.choice(LABELS)
        out["target_matchers"] = [f'{name}=~"{"|".join(VALUES[name])}"']
    elif pick < 0.55:
        out.update({k.replace("source_", "target_"): v for k, v in out.items()})
    else:
        matchers(rng, out, "target_")
    pick = rng.random()
    if pick < 0.7:
        out["equal"] = rng.sample(LABELS, rng.randint(1, 2))
    elif pick < 0.8:
        out["equal"] = []
    return out


def ring(rng: random.Random) -> list[dict[str, Any]]:
    """Two or three rules in a ring: each one's source is the next one's target, so an
    alert is a source of one and a target of another (mutual inhibition across rules)."""
    name = rng.choice(LABELS)
    values = rng.sample(VALUES[name] * 2, rng.choice((2, 3)))
    rules = []
    for i, value in enumerate(values):
        nxt = values[(i + 1) % len(values)]
        r: dict[str, Any] = {
            "source_matchers": [f'{name}="{value}"'],
            "target_matchers": [f'{name}="{nxt}"'],
        }
        if rng.random() < 0.5:
            r["equal"] = [rng.choice([n for n in LABELS if n != name])]
        rules.append(r)
    return rules


FAULTS = (
    "zero_group_interval",
    "zero_repeat_interval",
    "bad_duration",
    "continue_on_root",
    "matchers_on_root",
    "undefined_interval",
    "wildcard_and_labels",
    "duplicate_group_by",
    "interval_on_root",
    "bad_interval",
    "unknown_receiver",
)
BAD_INTERVALS = (
    {"weekdays": ["friday:monday"]},
    {"months": ["december:january"]},
    {"days_of_month": ["-1:1"]},
    {"days_of_month": ["0"]},
    {"days_of_month": ["-3:-7"]},
    {"days_of_month": ["32"]},
    {"years": ["2027:2026"]},
    {"times": [{"start_time": "10:00", "end_time": "10:00"}]},
    {"times": [{"start_time": "24:00", "end_time": "24:00"}]},
    {"times": [{"start_time": "10:00"}]},
    {"location": "Mars/Olympus"},
    # Names Go's time.LoadLocation cannot open as a zone file (t182).
    {"location": "Europe/Berlin/"},
    {"location": "Europe/../Europe/Berlin"},
    {"location": "Europe"},
    {"weekdays": ["someday"]},
)


def nodes(root: dict[str, Any]) -> list[dict[str, Any]]:
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.get("routes", []))
    return out


def fault(rng: random.Random, cfg: dict[str, Any], kind: str) -> None:
    root = cfg["route"]
    children = nodes(root)[1:]
    child = rng.choice(children) if children else root
    key = "time_intervals" if "time_intervals" in cfg else "mute_time_intervals"
    if kind == "zero_group_interval":
        rng.choice((root, child))["group_interval"] = rng.choice(ZERO_DURATIONS)
    elif kind == "zero_repeat_interval":
        rng.choice((root, child))["repeat_interval"] = rng.choice(ZERO_DURATIONS)
    elif kind == "bad_duration":
        field = rng.choice(("group_wait", "group_interval", "repeat_interval"))
        rng.choice((root, child))[field] = rng.choice(BAD_DURATIONS + PAST_HUGE)
    elif kind == "continue_on_root":
        root["continue"] = True
    elif kind == "matchers_on_root":
        matchers(rng, root)
    elif kind == "undefined_interval":
        child[rng.choice(("mute_time_intervals", "active_time_intervals"))] = ["never_defined"]
    elif kind == "wildcard_and_labels":
        child["group_by"] = ["...", "kind"]
    elif kind == "duplicate_group_by":
        child["group_by"] = ["kind", "district", "kind"]
    elif kind == "interval_on_root":
        root[rng.choice(("mute_time_intervals", "active_time_intervals"))] = [cfg[key][0]["name"]]
    elif kind == "bad_interval":
        cfg[key][0]["time_intervals"].append(rng.choice(BAD_INTERVALS))
    elif kind == "unknown_receiver":
        child["receiver"] = "pb-nobody"


def config(rng: random.Random) -> dict[str, Any]:
    """Alertmanager's configuration (a dict for yaml.safe_dump), receivers included."""
    names = [f"ti{i}" for i in range(rng.randint(1, 3))]
    root: dict[str, Any] = {"receiver": RECEIVERS[0], "group_by": group_by(rng)}
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if rng.random() < 0.4:
            root[key] = rng.choice(GOOD_DURATIONS if key == "group_wait" else GOOD_NONZERO)
    root["routes"] = [route(rng, 1, names) for _ in range(rng.randint(0, 3))]
    if not root["routes"]:
        del root["routes"]
    cfg: dict[str, Any] = {"route": root, "receivers": [{"name": n} for n in RECEIVERS]}
    key = rng.choice(("time_intervals", "mute_time_intervals"))
    cfg[key] = [
        {"name": n, "time_intervals": [interval(rng) for _ in range(rng.randint(1, 2))]}
        for n in names
    ]
    rules = [rule(rng) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.4:
        rules += ring(rng)
    rng.shuffle(rules)
    if rules:
        cfg["inhibit_rules"] = rules
    if rng.random() < 0.3:
        fault(rng, cfg, rng.choice(FAULTS))
    return cfg


def alerts(rng: random.Random, n: int) -> list[dict[str, str]]:
    """``n`` alerts of few values, so many share both sides of a rule; some twins (the
    same labels but alert_id: each other's source)."""
    out: list[dict[str, str]] = []
    for i in range(n):
        if out and rng.random() < 0.3:
            out.append({**rng.choice(out), "alert_id": f"a-{i}"})
        else:
            out.append({"alert_id": f"a-{i}", **side_alert_labels(rng)})
    return out


def silence(rng: random.Random) -> dict[str, Any]:
    name = rng.choice(LABELS)
    return {
        "matchers": [
            {"name": name, "value": rng.choice(VALUES[name]), "isRegex": False, "isEqual": True}
        ],
        "starts_in": -60.0,
        "ends_in": 600.0,
    }


def instants(rng: random.Random) -> list[int]:
    """Epoch seconds around the daylight-saving changes (each quarter hour for two hours
    either side) and at month ends, whole minutes."""
    picks = [rng.choice(CHANGES) + rng.randrange(-7200, 7200, 900) for _ in range(4)]
    picks.append(rng.choice(CHANGES) + rng.randrange(-120, 120, 60))  # the minutes at one
    picks += [1774915200 + rng.randrange(-2 * 86400, 2 * 86400, 1800) for _ in range(2)]
    return picks
