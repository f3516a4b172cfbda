"""A generator of routing configurations for the dispatch oracle (``tools/amroute``, t118).

Independent of ``amgen.py``, ``cornergen.py`` and ``test_routing_differential.py`` (its
own seed space, pools and shapes), aimed at what those compare least: ``continue: true``
chains four and five levels deep with siblings after them; ``group_by`` given, left out
(inherited), ``[...]`` and ``[]`` at different levels; ``group_wait``, ``group_interval``
and ``repeat_interval`` set at some levels and inherited by the rest; ``=~`` with anchors,
alternation, Unicode, classes, escaped dots and the empty regex, ``!~ ""``, ``=~ ""``,
``!= ""``; the deprecated ``match``/``match_re`` beside ``matchers``; routes holding
``mute_time_intervals``/``active_time_intervals`` of intervals with locations, weekday
ranges, negative days of the month, months by name and years; inhibit rules with
``equal`` on labels neither side carries and rules whose source is their target. Alerts
carry values with spaces, quotes, commas, braces, backslashes, line feeds, Unicode and
the empty string (t138: also a NUL, a tab, a combining mark, wide forms and letters whose
case folding is special); some carry no ``alert_id`` and some are an earlier alert re-sent with
empty labels added (``alerts``, t127); silences use every matcher type, pending and active windows that
overlap. Pure: a seed gives a configuration as a dict (Alertmanager's spelling);
``citybrain`` gives the routing file's.
"""

from __future__ import annotations

import random
from typing import Any

LABELS = ("kind", "severity", "district", "category", "street", "source", "community", "city")
RECEIVERS = ("pb-root", "pb-a", "pb-b", "pb-c", "pb-d", "pb-e", "pb-f")
VALUES: dict[str, tuple[str, ...]] = {
    "kind": ("water_level", "pm25", "water.level", "waterXlevel"),
    "severity": ("minor", "major", "critical", "Critical"),
    "district": ("d1", "d2", "Zürich Nord", "d.1"),
    "category": (
        'say "hi"',
        "a,b",
        "{x}",
        "back\\slash",
        "two\nlines",
        "",
        " lead",
        # Line and space characters Python's splitlines() or Go's TrimSpace know.
        "x\u2028",
        "\x85",
        "a\r\nb",
        "🌊",
        "x" * 300,
        # t138: case folding RE2 and Go share, controls, a combining mark, wide forms.
        "ǅ",
        "ſ",
        "İ",
        "\x00",
        "\t",
        "e\u0301",
        "ｋ",
        "\u00a0",
        "a{,2}",
    ),
    "street": ("Main St", "火警街", "main st", "ü"),
    "source": ("sensor", "citizen", ""),
    "community": ("c1", "c-1", "c.1", "\\d"),
    "city": ("metro", "Metro", "ΣΑΣ", "σας", "\u212a", "k", "ß"),
}
# Regexes (RE2, as Alertmanager anchors them: ^(?:...)$).
REGEXES = (
    "",
    "^water_level$",
    "water.level",
    "water\\.level",
    "pm25|water_level",
    "^(pm25|water.*)$",
    "(minor|major)|",
    "[Cc]ritical",
    "[^a-z]+",
    "\\p{Greek}+",
    "(?i)σας",
    "Zürich\\s\\w+",
    "d\\d",
    "d\\.\\d",
    '.*"hi".*',
    "a,b|\\{x\\}",
    "back\\\\slash",
    "two\\nlines",
    "(?s)two.lines",
    "\\s.*",
    "火.*",
    ".+",
    ".*",
    "c-?1",
    "\\\\d",
    "[[:upper:]].*",
    "x*",
    # Flags, assertions and classes RE2 and Python's re read differently.
    "(?m)^d1$",
    "(?i)STRASSE|ü",
    "\\bd1\\b",
    "(?-s:.)+lines",
    "[\\p{Lu}\\d]+.*",
    "[^\\n]*",
    "\\PL*",
    "(?i)CRITICAL",
    "[\\d-x]+",
    "\\Qd.1\\E",
    "(?U)m.+r",
    "\\x{706B}.+",
    "[[:^alpha:]]+",
    "\\z",
    "(minor)?",
    # t138: what Go 1.19's regexp (Alertmanager 0.25's) and RE2 both take, read alike:
    # case folds (ǅ, ſ, İ, the Kelvin sign), classes by name and negated, a literal
    # "{,2}", empty \Q\E, flags in groups, named groups, empty-width pairs.
    "(?i)ǅ",
    "(?i)ſ",
    "(?i)İ|(?i)\\x{212A}",
    "\\pN+|\\p{Han}",
    "[[:word:]]+",
    "[^[:ascii:]]+",
    "\\p{^Greek}+",
    "a{,2}",
    "\\Q\\E.*",
    "(?i:D)\\d",
    "(?P<n>c)-?1",
    "[]a]|\\_",
    "$^|(|minor)*",
    "(?U)m.+r|\\B.",
    "\\x61|\\v|\\p{Lt}",
    "(x{2}){3}",
)
TIMINGS = {
    "group_wait": ("0s", "10s", "45s", "2m", "1h"),
    "group_interval": ("1m", "7m", "1h", "90s"),
    "repeat_interval": ("2h", "30m", "1d", "3h"),
}
INTERVALS: dict[str, list[dict[str, Any]]] = {
    "weekend_berlin": [
        {"weekdays": ["sunday", "Friday:saturday"], "location": "Europe/Berlin"},
    ],
    "office_ny": [
        {
            "weekdays": ["monday:friday"],
            "times": [{"start_time": "09:00", "end_time": "17:30"}],
            "location": "America/New_York",
        }
    ],
    "month_end": [{"days_of_month": ["-3:-1"], "months": ["january:march", "december"]}],
    "years": [{"years": ["2025:2026"], "months": ["11", "july"], "location": "Asia/Tokyo"}],
    "nights": [
        {"times": [{"start_time": "22:00", "end_time": "24:00"}]},
        {"times": [{"start_time": "00:00", "end_time": "06:00"}], "location": "Australia/Sydney"},
    ],
}
OPS = ("=", "!=", "=~", "!~")


def quote(value: str) -> str:
    """A matcher value in double quotes, escaped as Alertmanager's parser unescapes it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def matcher(rng: random.Random, lenient: bool = False) -> str:
    name = rng.choice(LABELS)
    # A lenient matcher (along a continue chain) is mostly a negative one, which most
    # alerts pass, so chains are walked to their end.
    op = rng.choice(("!=", "!~", "!~", "=~")) if lenient else rng.choice(OPS)
    value = rng.choice((*VALUES[name], "")) if op in ("=", "!=") else rng.choice(REGEXES)
    return f"{name}{op}{quote(value)}"


def entry(rng: random.Random, lenient: bool = False) -> str:
    # One matchers: entry: one matcher, or two in one entry (braces or not).
    if rng.random() < 0.2:
        text = f"{matcher(rng, lenient)}, {matcher(rng, lenient)}"
        return "{" + text + "}" if rng.random() < 0.5 else text
    return matcher(rng, lenient)


def route(rng: random.Random, depth: int, chain: bool) -> dict[str, Any]:
    """A child route: in a ``chain`` every route continues and has one deeper child."""
    node: dict[str, Any] = {}
    if rng.random() < 0.75:
        node["receiver"] = rng.choice(RECEIVERS[1:])
    node["matchers"] = [entry(rng, chain) for _ in range(rng.choice((0, 1, 1, 2)))]
    if rng.random() < 0.2:
        name = rng.choice(LABELS)
        node["match"] = {name: rng.choice(VALUES[name])}
    if rng.random() < 0.2:
        node["match_re"] = {rng.choice(LABELS): rng.choice(REGEXES)}
    if chain or rng.random() < 0.4:
        node["continue"] = True
    choice = rng.random()
    if choice < 0.25:
        node["group_by"] = ["..."]
    elif choice < 0.5:
        node["group_by"] = rng.sample(LABELS, rng.randint(1, 3))
    for key, pool in TIMINGS.items():
        if rng.random() < 0.25:
            node[key] = rng.choice(pool)
    if rng.random() < 0.15:
        node["mute_time_intervals"] = rng.sample(sorted(INTERVALS), rng.randint(1, 2))
    if rng.random() < 0.15:
        node["active_time_intervals"] = rng.sample(sorted(INTERVALS), 1)
    if depth < 5:
        if chain:
            node["routes"] = [route(rng, depth + 1, chain=rng.random() < 0.8)]
            if rng.random() < 0.5:
                node["routes"].append(route(rng, depth + 1, chain=False))
        elif depth < 3 and rng.random() < 0.5:
            node["routes"] = [route(rng, depth + 1, chain=False) for _ in range(rng.randint(1, 3))]
    return node


def side(rng: random.Random, which: str) -> dict[str, Any]:
    r = rng.random()
    if r < 0.6:
        return {f"{which}_matchers": [matcher(rng) for _ in range(rng.randint(1, 2))]}
    if r < 0.8:
        name = rng.choice(LABELS)
        return {f"{which}_match": {name: rng.choice(VALUES[name])}}
    return {f"{which}_match_re": {rng.choice(LABELS): rng.choice(REGEXES)}}


def rule(rng: random.Random) -> dict[str, Any]:
    source = side(rng, "source")
    if rng.random() < 0.25:  # the source is the target itself
        target = {k.replace("source", "target"): v for k, v in source.items()}
    else:
        target = side(rng, "target")
    out: dict[str, Any] = {**source, **target}
    if rng.random() < 0.85:
        # Labels alerts may lack: absent on both sides is equal ("" == "").
        out["equal"] = rng.sample(LABELS, rng.randint(1, 3))
    return out


def config(rng: random.Random) -> dict[str, Any]:
    """Alertmanager's configuration (a dict for yaml.safe_dump), receivers included."""
    root: dict[str, Any] = {
        "receiver": RECEIVERS[0],
        "group_by": rng.choice((["..."], [], ["kind"], ["district", "severity"], ["category"])),
    }
    for key, pool in TIMINGS.items():
        if rng.random() < 0.4:
            root[key] = rng.choice(pool)
    root["routes"] = [route(rng, 1, chain=rng.random() < 0.5) for _ in range(rng.randint(1, 4))]
    cfg: dict[str, Any] = {"route": root, "receivers": [{"name": n} for n in RECEIVERS]}
    # Under time_intervals:, or Alertmanager's deprecated top-level mute_time_intervals:.
    key = rng.choice(("time_intervals", "mute_time_intervals"))
    cfg[key] = [{"name": n, "time_intervals": v} for n, v in INTERVALS.items()]
    if rng.random() < 0.7:
        cfg["inhibit_rules"] = [rule(rng) for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.15:
        edge(rng, cfg)
    return cfg


# Time-interval corners Alertmanager's config.Load judges: refused (intervals on the
# root, a name used and not defined, a name defined under both keys) or accepted (an
# interval of no times, which holds never; one of an empty spec, which holds always; a
# name listed twice on a route).
EDGES = (
    "root_mute",
    "root_active",
    "undefined",
    "both_keys",
    "empty_list",
    "empty_spec",
    "listed_twice",
)


def edge(rng: random.Random, cfg: dict[str, Any]) -> None:
    kind = rng.choice(EDGES)
    key = "time_intervals" if "time_intervals" in cfg else "mute_time_intervals"
    child = cfg["route"]["routes"][0]
    if kind == "root_mute":
        cfg["route"]["mute_time_intervals"] = ["nights"]
    elif kind == "root_active":
        cfg["route"]["active_time_intervals"] = ["nights"]
    elif kind == "undefined":
        child["mute_time_intervals"] = ["never_defined"]
    elif kind == "both_keys":
        other = "mute_time_intervals" if key == "time_intervals" else "time_intervals"
        cfg[other] = [{"name": "nights", "time_intervals": INTERVALS["nights"]}]
    elif kind in ("empty_list", "empty_spec"):
        spec: list[dict[str, Any]] = [] if kind == "empty_list" else [{}]
        cfg[key].append({"name": kind, "time_intervals": spec})
        child[rng.choice(("mute_time_intervals", "active_time_intervals"))] = [kind]
    else:
        child["mute_time_intervals"] = ["nights", "nights"]


def citybrain(cfg: dict[str, Any]) -> dict[str, Any]:
    """The same configuration as citybrain's routing file (receiver is playbook)."""

    def tree(node: dict[str, Any]) -> dict[str, Any]:
        out = {("playbook" if k == "receiver" else k): v for k, v in node.items()}
        if "routes" in node:
            out["routes"] = [tree(c) for c in node["routes"]]
        return out

    doc: dict[str, Any] = {"version": 1, "route": tree(cfg["route"])}
    for key in ("inhibit_rules", "time_intervals", "mute_time_intervals"):
        if key in cfg:
            doc[key] = cfg[key]
    return doc


def alert(rng: random.Random, alert_id: str) -> dict[str, str]:
    labels = {"alert_id": alert_id}
    for name in rng.sample(LABELS, rng.randint(1, len(LABELS))):
        labels[name] = rng.choice(VALUES[name])
    return labels


def alerts(rng: random.Random, n: int) -> list[dict[str, str]]:
    """``n`` alerts as ``alert`` makes them, and, among them (t127), label sets without
    ``alert_id`` (Alertmanager tells alerts apart by their labels alone: such sets must
    still inhibit one another) and an earlier alert re-sent with labels of empty value
    added (Alertmanager drops those: the same alert, in the same group, under
    ``group_by: [...]`` too). Callers must hand the label sets to citybrain as they are,
    empty values included."""
    out: list[dict[str, str]] = []
    for i in range(n):
        pick = rng.random()
        if out and pick < 0.15:
            earlier = rng.choice(out)
            absent = [name for name in LABELS if name not in earlier]
            added = rng.sample(absent, min(len(absent), rng.randint(1, 2)))
            out.append({**earlier, **dict.fromkeys(added, "")})
        elif pick < 0.3:
            labels = alert(rng, f"a-{i}")
            del labels["alert_id"]
            out.append(labels)
        else:
            out.append(alert(rng, f"a-{i}"))
    return out


def silence(rng: random.Random) -> dict[str, Any]:
    """A silence as Alertmanager's API v2 takes its matchers, with its window in seconds
    from now (pending when it starts later; windows of a configuration overlap)."""
    matchers = []
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(LABELS)
        regex, equal = rng.choice(((False, True), (False, False), (True, True), (True, False)))
        value = rng.choice(REGEXES[1:] if regex else VALUES[name])
        matchers.append({"name": name, "value": value, "isRegex": regex, "isEqual": equal})
    starts = rng.choice((-60.0, -60.0, 0.0, 600.0))
    return {"matchers": matchers, "starts_in": starts, "ends_in": starts + rng.choice((120, 3600))}


def instants(rng: random.Random) -> list[int]:
    """Epoch seconds across 2025-2027 at hours, weekdays and month ends the intervals
    turn on (whole minutes: interval ends are minutes)."""
    base = 1735689600  # 2025-01-01T00:00:00Z
    picks = [base + rng.randrange(0, 3 * 365 * 86400, 60) for _ in range(4)]
    # A month's last days and the hours around a day's change in a few zones.
    picks += [1738281600 + rng.randrange(-86400, 86400, 1800) for _ in range(2)]
    return picks
