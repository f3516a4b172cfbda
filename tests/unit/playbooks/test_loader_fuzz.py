"""Routing files built at random from odd YAML (tags a scalar cannot take, aliases that
hold themselves, lists and mappings as keys, nulls, numbers, dates, binary, merge keys)
in every field of a route and an inhibit rule: each is loaded or refused with a
PlaybookError (``file:line`` messages), never another exception. t44 found three kinds
this way (``!!bool 1``: KeyError; ``&r {routes: [*r]}``: RecursionError; ``[a]: 1``:
TypeError), each a traceback from ``playbooks check``."""

from __future__ import annotations

import random
from pathlib import Path

from playbooks.errors import PlaybookError
from playbooks.loader import PLAYBOOK_DIR, load_playbooks, load_routing

SCALARS = [
    "~", "''", "0", "1", "-1", "1.5", ".inf", ".nan", "yes", "y", "true", "!!str 5",
    "!!binary aGk=", "2001-01-01", "!!timestamp x", "!!bool 1", "!!int abc", "!!float ''",
    "[]", "{}", "[kind]", "['...']", "['kind=\"a\"']", "'kind=\"a\"'", "sensor-anomaly",
    "0s", "1h", "!!int 5", "!!null ''", "!!set {a}", "!!omap [{a: 1}]", "[[1]]",
    "[{a: 1}]", "{kind: a}", "{kind: [a]}", "{5: a}", "{~: a}", "{[a]: b}", "&a x", "*a",
    "[*a]", "'\\u00e9'", "\"\\x00\"", "'a\\\\'", "!!merge x", "{<<: {a: 1}}", "['{}']",
    "['kind=~\"(\"']", "{kind: '('}", "&s [*s]", "&m {a: *m}",
]  # fmt: skip
ROUTE_KEYS = [
    "playbook", "group_by", "group_wait", "group_interval", "repeat_interval", "matchers",
    "match", "match_re", "continue", "routes", "receiver", "mute_time_intervals", "x", "~",
    "5", "[a]", "<<", "? a",
]  # fmt: skip
RULE_KEYS = [
    "source_matchers", "target_matchers", "source_match", "target_match",
    "source_match_re", "target_match_re", "equal", "x",
]  # fmt: skip
FILES, SEED = 2000, 44


def mapping(rng: random.Random, depth: int, keys: list[str]) -> str:
    items = []
    for _ in range(rng.randint(0, 4)):
        key = rng.choice(keys)
        if key == "routes" and depth < 2 and rng.random() < 0.6:
            children = (mapping(rng, depth + 1, keys) for _ in range(rng.randint(0, 2)))
            value = "[" + ", ".join(children) + "]"
        else:
            value = rng.choice(SCALARS)
        items.append(f"{key}: {value}")
    return "{" + ", ".join(items) + "}"


def test_odd_yaml_anywhere_in_a_routing_file_is_a_playbook_error(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    playbooks = load_playbooks(PLAYBOOK_DIR)
    path = tmp_path / "routing.yaml"
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(FILES):
        root = mapping(rng, 0, ROUTE_KEYS)
        if rng.random() < 0.7:  # mostly a valid root, so the odd values are reached
            root = "{playbook: sensor-anomaly, group_by: [kind], " + root[1:]
        text = f"version: 1\nroute: {root}\n"
        if rng.random() < 0.5:
            rules = (mapping(rng, 0, RULE_KEYS) for _ in range(rng.randint(0, 2)))
            text += "inhibit_rules: [" + ", ".join(rules) + "]\n"
        path.write_text(text)
        try:
            load_routing(path, playbooks)
            outcomes["loaded"] += 1
        except PlaybookError as exc:
            assert str(exc).startswith(f"{path}:"), (text, str(exc))
            outcomes["refused"] += 1
    assert outcomes["loaded"] > 0 and outcomes["refused"] > 0, outcomes
