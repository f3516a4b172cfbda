"""A generator of silences for the dispatch oracle (``tools/amroute``, t160): many
silences against many alerts, under a configuration of one route, so that what is
compared is the silences alone: which are refused, and which alerts each mutes.

Wider than the silences of ``chaingen.py``, ``advgen.py`` and ``shapegen.py``: values
with the characters a matcher's stored text must escape or keep (quotes, backslashes,
line feeds, NUL, ``{}``, ``,``, ``=~`` and ``!~`` inside), Unicode that folds, combines,
turns the text right to left or is a separator (U+2028, U+0085, a byte order mark);
regexes of advgen's pieces and of further ones (``\\v``, octal escapes, ``\\pZ``,
``\\p{Lt}``, POSIX classes, ``\\Q…\\E``, empty groups, counted repetitions of a group
``{0}``, flags before a folding character); one to three matchers on one label or on
several, of every operator. Only characters Unicode 13 (Alertmanager 0.25's Go 1.19)
already assigned: the oracle's newer Go classes others otherwise (``\\pC`` has taken
unassigned code points since Go 1.25; amtool 0.25 and citybrain do not), which would
be the oracle's drift, not a disagreement. Pure: a seed gives the same request.
"""

from __future__ import annotations

import random
from typing import Any

from tests.integration import advgen
from tests.integration.chaingen import RECEIVERS

RECEIVER = RECEIVERS[0]
CONFIG = f"route:\n  receiver: {RECEIVER}\n  group_by: ['...']\nreceivers:\n- name: {RECEIVER}\n"
LABELS = ("kind", "severity", "category", "district", "alert_id", "sensor_id")
VALUES = (
    *advgen.EDGE_VALUES,
    "\u2028",
    "\x85",
    "\r",
    "\x0b",
    "\x0c",
    "İ",
    "ı",
    "i",
    "I",
    "ǅ",
    "ǆ",
    "Ǆ",
    "\ufffd",
    "\u200b",
    "\u202e",
    "\ufeff",
    "á",
    "ﬀ",
    "ff",
    "\x7f",
    "\x1b",
    "Ω",
    "ω",
    "\u2126",
    "µ",
    "μ",
    "ÿ",
    "Ÿ",
    "x" * 300,
    "a" * 40 + "b",
    "0",
    "１",
    "٣",
    "\t\n",
    "  ",
    "\\n",
    '\\"',
    "{}",
    "=~",
    "!~",
    "a,b=c",
    'x="y"',
)
ATOMS = (
    *advgen.ATOMS,
    "\\v",
    "\\f",
    "\\a",
    "\\x{2028}",
    "\\x{85}",
    "\\pZ",
    "\\p{Zl}",
    "\\pC",
    "\\p{Cf}",
    "\\p{Lt}",
    "[[:space:]]",
    "[[:upper:]]",
    "[[:word:]]",
    "\\123",
    "\\0",
    "\\x7f",
    "[\\x{80}-\\x{FFFF}]",
    "[^\\x00-\\x{10FFFF}]",
    "(?i)ǅ",
    "(?i)İ",
    "(?i)ı",
    "(?i)\\x{2126}",
    "(?i)µ",
    "(?i)ﬀ",
    "\\Qa.b\\E",
    "\\Q\\E",
    "a{0}",
    "(a){0}",
    "(?:)",
    "()",
    "[a-]",
    "[]a]",
    "[^]a]",
    "(?m)^",
    "(?m)$",
    "(?s).",
    "a{2,3}",
    "a{,3}",
    "{",
    "a{1",
    "=~",
    ",",
    '\\"',
)


def value(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.4:
        return advgen.value(rng)
    if pick < 0.8:
        return rng.choice(VALUES)
    return rng.choice(VALUES) + advgen.value(rng)


def regex(rng: random.Random) -> str:
    """advgen's composed regexes half the time, else up to three of ATOMS, each maybe
    repeated (a repetition after ``(a){0}`` too: Go refuses those), now and then under
    ``(?i)`` or with an alternative."""
    if rng.random() < 0.5:
        return advgen.regex(rng)
    text = "".join(rng.choice(ATOMS) + rng.choice(advgen.REPEATS) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.2:
        text = "(?i)" + text
    if rng.random() < 0.2:
        text += "|" + rng.choice(ATOMS)
    return text


def silence(rng: random.Random) -> dict[str, Any]:
    """One to three API v2 matcher objects, on one label or several, active for an hour."""
    matchers = []
    name = rng.choice(LABELS)
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.5:
            name = rng.choice(LABELS)
        regex_, equal = rng.choice(
            ((False, True), (False, False), (True, True), (True, False), (True, True))
        )
        text = regex(rng) if regex_ else value(rng)
        matchers.append({"name": name, "value": text, "isRegex": regex_, "isEqual": equal})
    return {"matchers": matchers, "starts_in": -60.0, "ends_in": 3600.0}


def alert(rng: random.Random, i: int) -> dict[str, str]:
    labels = {"alert_id": f"a-{i}"}
    for name in rng.sample([n for n in LABELS if n != "alert_id"], rng.randint(1, 4)):
        labels[name] = value(rng)
    return labels


def request(rng: random.Random, alerts: int, silences: int) -> dict[str, Any]:
    """One request to the oracle: the one-route configuration, ``alerts`` alerts and
    ``silences`` silences."""
    return {
        "config": CONFIG,
        "alerts": [alert(rng, i) for i in range(alerts)],
        "silences": [silence(rng) for _ in range(silences)],
        "instants": [],
    }
