"""An adversarial generator for the dispatch oracle (``tools/amroute``, t149).

Independent of ``chaingen.py``, ``amgen.py`` and ``cornergen.py`` (its own seed space,
pools and shapes), aimed at what they compare least: regexes composed from RE2 pieces
(flags ``(?i)``, ``(?s)``, ``(?m)``, ``(?U)`` scoped and not, anchors ``^``, ``$``,
``\\A``, ``\\z`` inside alternations and groups, ``.`` against line feeds, ``\\pL`` and
other classes, empty alternatives and the empty regex) against values built to sit on
their edges (a line feed first or last, case variants, combining marks); routes without
matchers between siblings, ``continue`` at any depth with sibling routes of the same
matchers, receivers and timings inherited through several levels, ``group_by`` naming
``alert_id``; inhibit rules with a side of no matchers (``[]``, which matches every
alert), ``equal: []``, sides of negative matchers only (which alerts lacking the label
match) and a rule whose source is its target with another ``equal``; silences with
several matchers on one label, pending, active and about to end. Pure: a seed gives a
configuration as a dict (Alertmanager's spelling); ``chaingen.citybrain`` gives the
routing file's.
"""

from __future__ import annotations

import random
from typing import Any

from tests.integration.chaingen import INTERVALS, RECEIVERS, quote

LABELS = (
    "kind",
    "severity",
    "category",
    "district",
    "street",
    "department",
    "alert_id",
    "sensor_id",
    "assessment",
)
# Values on the edges of the regex pieces below: line feeds first, last and alone, case
# variants (ASCII and Unicode folds), combining marks, spaces, separators.
EDGE_VALUES = (
    "",
    "a",
    "A",
    "ab",
    "a\n",
    "\na",
    "\n",
    "a\nb",
    "\r\n",
    "ab\n",
    "k",
    "K",
    "\u212a",
    "s",
    "ſ",
    "ß",
    "ẞ",
    "é",
    "e\u0301",
    "É",
    "Σ",
    "ς",
    "σ",
    " a",
    "a ",
    "a b",
    "a,b",
    "a|b",
    "{a}",
    '"a"',
    "a\\b",
    "\\",
    "x.y",
    "xzy",
    "12",
    "١٢",
    "_",
    "\t",
    "a\x00",
    "🌊a",
)
# Regex pieces; each is valid alone in Go and RE2.
ATOMS = (
    "a",
    "A",
    "b",
    "k",
    "s",
    "é",
    "σ",
    ".",
    "\\.",
    "\\n",
    "\\pL",
    "\\PL",
    "\\p{Lu}",
    "\\p{Ll}",
    "\\p{Greek}",
    "\\pN",
    "\\d",
    "\\w",
    "\\W",
    "\\s",
    "\\S",
    "[a-z]",
    "[^a]",
    "[^\\n]",
    "[\\s\\S]",
    "[[:alpha:]]",
    "[[:^space:]]",
    "[[:punct:]]",
    "\\x{212A}",
    "\\\\",
    "\\|",
    ",",
    "\\{a\\}",
    '"',
    " ",
    "\\t",
    "\\x00",
    "\\p{Mn}",
    "\\p{So}",
)
FLAGS = ("(?i)", "(?s)", "(?m)", "(?U)", "(?is)", "(?-s)", "(?i-s)", "(?sm)")
ASSERTIONS = ("^", "$", "\\A", "\\z", "\\b", "\\B")
REPEATS = ("", "", "", "*", "+", "?", "*?", "+?", "{2}", "{0,1}", "{1,}")


def regex(rng: random.Random, depth: int = 0) -> str:
    """A Go/RE2 regex composed of ATOMS, FLAGS and ASSERTIONS: concatenations,
    alternations (an empty alternative now and then), groups (capturing, not, with
    scoped flags) and repetitions."""
    pieces = []
    for _ in range(rng.randint(0 if depth else 1, 3)):
        pick = rng.random()
        if pick < 0.55:
            piece = rng.choice(ATOMS) + rng.choice(REPEATS)
        elif pick < 0.7:
            piece = rng.choice(ASSERTIONS)
        elif pick < 0.8:
            piece = rng.choice(FLAGS)
        elif depth < 2:
            inner = regex(rng, depth + 1)
            if rng.random() < 0.5:
                inner += "|" + regex(rng, depth + 1)
            opener = rng.choice(("(", "(?:", "(?i:", "(?s:", "(?-i:", "(?P<g>"))
            if opener == "(?P<g>" and "(?P<g>" in inner:
                opener = "("
            piece = opener + inner + ")" + rng.choice(REPEATS)
        else:
            piece = rng.choice(ATOMS)
        pieces.append(piece)
    text = "".join(pieces)
    if depth == 0 and rng.random() < 0.25:
        text += "|" + rng.choice(("", regex(rng, 1)))
    return text


def value(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return rng.choice(EDGE_VALUES)
    # Two edge values run together: a line feed or a fold inside a longer value.
    return rng.choice(EDGE_VALUES) + rng.choice(EDGE_VALUES)


def matcher(rng: random.Random, name: str | None = None) -> str:
    name = name or rng.choice(LABELS)
    op = rng.choice(("=", "!=", "=~", "=~", "!~"))
    if op in ("=~", "!~"):
        text = rng.choice(("", ".*", ".+")) if rng.random() < 0.1 else regex(rng)
    else:
        text = value(rng)
    return f"{name}{op}{quote(text)}"


def entry(rng: random.Random) -> str:
    if rng.random() < 0.25:
        # Two matchers on one label in one entry (braces or not).
        name = rng.choice(LABELS)
        text = f"{matcher(rng, name)},{matcher(rng, name)}"
        return "{" + text + "}" if rng.random() < 0.5 else text
    return matcher(rng)


TIMINGS = {
    "group_wait": ("0s", "1s", "30s", "1m30s", "2h"),
    "group_interval": ("1s", "5m", "1h30m", "1d"),
    "repeat_interval": ("1m", "4h", "1w", "36h"),
}


def route(rng: random.Random, depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    if rng.random() < 0.5:
        node["receiver"] = rng.choice(RECEIVERS[1:])
    if rng.random() < 0.8:
        node["matchers"] = [entry(rng) for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.15:
        node["match"] = {rng.choice(LABELS): value(rng)}
    if rng.random() < 0.15:
        node["match_re"] = {rng.choice(LABELS): regex(rng)}
    pick = rng.random()
    if pick < 0.45:
        node["continue"] = True
    elif pick < 0.55:
        node["continue"] = False
    pick = rng.random()
    if pick < 0.15:
        node["group_by"] = ["..."]
    elif pick < 0.35:
        node["group_by"] = rng.sample(LABELS, rng.randint(1, 3))
    for key, pool in TIMINGS.items():
        if rng.random() < 0.2:
            node[key] = rng.choice(pool)
    if rng.random() < 0.1:
        node["mute_time_intervals"] = rng.sample(sorted(INTERVALS), 1)
    if rng.random() < 0.1:
        node["active_time_intervals"] = rng.sample(sorted(INTERVALS), rng.randint(1, 2))
    if depth < 4 and rng.random() < 0.6:
        children = [route(rng, depth + 1) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            # A sibling with the same matchers as another (both reachable by continue),
            # or the same written another way (respelled).
            twin = dict(rng.choice(children))
            twin.pop("routes", None)
            if rng.random() < 0.5:
                respell(rng, twin)
            children.insert(rng.randrange(len(children) + 1), twin)
        node["routes"] = children
    return node


def respell(rng: random.Random, node: dict[str, Any]) -> None:
    """``node``'s deprecated ``match``/``match_re`` maps written as ``matchers:``
    entries, or a route without them given one: ``match_re: {k: v}`` as ``k=~"v"``
    (another Route.Key() in Alertmanager, which holds ``^(?:v)$``) or ``k=~"^(?:v)$"``
    (the same Key), ``match: {k: v}`` as ``k="v"`` (the same)."""
    entries = list(node.get("matchers", []))
    for label, text in node.pop("match", {}).items():
        entries.append(f"{label}={quote(text)}")
    for label, text in node.pop("match_re", {}).items():
        wrapped = f"^(?:{text})$" if rng.random() < 0.5 else text
        entries.append(f"{label}=~{quote(wrapped)}")
    if entries == node.get("matchers", []):
        node["match_re"] = {rng.choice(LABELS): regex(rng)}
    else:
        node["matchers"] = entries


def side(rng: random.Random, which: str) -> dict[str, Any]:
    pick = rng.random()
    if pick < 0.12:
        return {f"{which}_matchers": []}  # matches every alert
    if pick < 0.3:
        # Negative matchers only: alerts lacking the label match them.
        name = rng.choice(LABELS)
        op = rng.choice(("!=", "!~"))
        text = value(rng) if op == "!=" else regex(rng)
        return {f"{which}_matchers": [f"{name}{op}{quote(text)}"]}
    if pick < 0.85:
        return {f"{which}_matchers": [entry(rng) for _ in range(rng.randint(1, 2))]}
    if pick < 0.93:
        return {f"{which}_match": {rng.choice(LABELS): value(rng)}}
    return {f"{which}_match_re": {rng.choice(LABELS): regex(rng)}}


def rule(rng: random.Random) -> dict[str, Any]:
    source = side(rng, "source")
    if rng.random() < 0.2:
        target = {k.replace("source", "target"): v for k, v in source.items()}
    else:
        target = side(rng, "target")
    out: dict[str, Any] = {**source, **target}
    pick = rng.random()
    if pick < 0.15:
        out["equal"] = []
    elif pick < 0.9:
        out["equal"] = rng.sample(LABELS, rng.randint(1, 3))
    return out


def config(rng: random.Random) -> dict[str, Any]:
    root: dict[str, Any] = {
        "receiver": RECEIVERS[0],
        "group_by": rng.choice((["..."], [], ["alert_id"], ["category", "kind"], ["street"])),
    }
    for key, pool in TIMINGS.items():
        if rng.random() < 0.5:
            root[key] = rng.choice(pool)
    root["routes"] = [route(rng, 1) for _ in range(rng.randint(1, 4))]
    cfg: dict[str, Any] = {
        "route": root,
        "receivers": [{"name": n} for n in RECEIVERS],
        "time_intervals": [{"name": n, "time_intervals": v} for n, v in INTERVALS.items()],
    }
    if rng.random() < 0.8:
        cfg["inhibit_rules"] = [rule(rng) for _ in range(rng.randint(1, 3))]
    return cfg


def alert(rng: random.Random, alert_id: str | None) -> dict[str, str]:
    labels = {} if alert_id is None else {"alert_id": alert_id}
    for name in rng.sample(LABELS, rng.randint(1, len(LABELS))):
        if name != "alert_id":
            labels[name] = value(rng)
    if not any(labels.values()):
        labels["kind"] = "a"
    return labels


def alerts(rng: random.Random, n: int) -> list[dict[str, str]]:
    return [alert(rng, None if rng.random() < 0.2 else f"a-{i}") for i in range(n)]


def silence(rng: random.Random) -> dict[str, Any]:
    """API v2 matcher objects, often several on one label, with a window in seconds from
    now: pending, active, or active and ending soon."""
    name = rng.choice(LABELS)
    matchers = []
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.4:
            name = rng.choice(LABELS)
        regex_, equal = rng.choice(((False, True), (False, False), (True, True), (True, False)))
        text = regex(rng) if regex_ else value(rng)
        matchers.append({"name": name, "value": text, "isRegex": regex_, "isEqual": equal})
    starts = rng.choice((-86400.0, -60.0, -60.0, 600.0))
    return {"matchers": matchers, "starts_in": starts, "ends_in": max(starts, 0) + 3600}
