"""t157: routing, inhibition and silences against Alertmanager 0.25 on the shapes of
``shapegen.py``, which the earlier generators do not make (matcher entries in every
spelling 0.25's parser takes, odd regexes, chains at several depths, ``equal`` on labels
one or both sides lack, the same label set twice, many overlapping silences, silence
windows pending, ended, reversed and of no length).

Two oracles: Alertmanager 0.25's own code (``tools/amroute``, as
``test_dispatch_oracle.py`` asks it: the routes taken, resolved options, holds, groups and
group keys, inhibited, silenced), and the shipped server (``prometheus-alertmanager``, API
v2), for what its API adds: the silence windows it refuses, and its groups per receiver
and ``silencedBy``/``inhibitedBy`` marks. Where the two oracles and citybrain disagree on
whether a configuration is valid, ``amtool check-config`` (the shipped binary) decides, as
in ``test_dispatch_oracle.compare``.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks.errors import PlaybookError, SilenceError
from playbooks.loader import routing_errors
from playbooks.routing import Router, SilenceList, api_matcher, new_silence, silence_window
from tests.integration import chaingen, shapegen
from tests.integration.test_alertmanager_independent import (
    _am_groups,
    _cb_groups,
    _iso,
    _show,
    alertmanager_factory,
)
from tests.integration.test_dispatch_oracle import (
    _loaded,
    amroute,
    amtool_accepts,
    judged_by_oracle,
    oracle,
    plain_paths,
)

pytestmark = pytest.mark.integration
__all__ = ["alertmanager_factory", "amroute"]  # the fixtures, used by name

SEED, CONFIGS, ALERTS = 157_000_000, 300, 12


@pytest.fixture(autouse=True)
def _quiet_read_apart_warnings() -> Any:
    # Bare values ending in "}" are read apart by 0.27's UTF-8 matchers: one WARNING per
    # distinct entry, thousands here; the readings themselves are what is compared.
    logger = logging.getLogger("playbooks.routing")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def request(seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = random.Random(seed)
    cfg = shapegen.config(rng)
    return cfg, {
        "config": yaml.safe_dump(cfg, allow_unicode=True),
        "alerts": shapegen.alerts(rng, ALERTS),
        "silences": shapegen.silences(rng),
        "instants": chaingen.instants(rng),
    }


def test_new_shapes_agree_with_alertmanager_dispatch(amroute: Path, tmp_path: Path) -> None:
    """shapegen's configurations, alerts and silences: everything
    ``test_dispatch_oracle`` compares, and the group keys against Alertmanager's
    ``Route.Key()`` with a route added first."""
    cases = [(seed, *request(seed)) for seed in range(SEED, SEED + CONFIGS)]
    problems, seen, accepted = judged_by_oracle(amroute, cases, tmp_path, "s")
    for seed, router, theirs in accepted:
        problems += key_texts(seed, router, theirs)
    assert not problems, f"{len(problems)} disagreements:\n" + "\n".join(problems[:25])
    # Most are accepted (the rest refused alike), and each shape is met.
    assert seen["accepted"] >= CONFIGS * 0.7, seen
    assert min(seen[k] for k in ("continued", "inhibited", "silenced_twice")) >= 40, seen


def key_texts(seed: int, router: Router, theirs: dict[str, Any]) -> list[str]:
    """Every route's matcher path (``#n`` aside) against its ``Route.Key()``, text for
    text, whether or not an alert takes it (t157: matchers of one label and value were
    ordered otherwise)."""
    mine = plain_paths(router)
    return [
        f"seed {seed} route {rid}: path {mine.get(rid)!r}, Alertmanager's Key {key!r}"
        for rid, key in theirs["route_keys"]
        if mine.get(rid) != key
    ]


YAML_SEED, YAML_CONFIGS = 157_300_000, 500
# citybrain's documented refusals of YAML or values Alertmanager reads (docs/playbooks.md):
# YAML 1.1 escapes and ':' before a flow indicator, a match value that is not text, a
# matchers entry of no matcher, the null-like value, and a label no alert carries (an
# escape landing in a label name: `k\x41ind`).
YAML_DELIBERATE = (
    "unknown label",
    "found unknown escape character",
    "found unexpected ':'",
    "expected text (quote it)",
    "has no matcher in it",
    "is null",
)


def test_yaml_spellings_are_read_as_alertmanager_reads_them(amroute: Path, tmp_path: Path) -> None:
    """Routing files written by hand, every scalar in one of YAML's styles (plain over
    one line or two, single- and double-quoted with folds, escapes and continuations,
    block scalars of every chomping and an indentation indicator, comments after them):
    accepted or refused alike (``amtool check-config`` deciding where the oracle's
    go-yaml panics), and every route's matchers, as its path, Alertmanager's Key()."""
    requests, judged = [], []
    for seed in range(YAML_SEED, YAML_SEED + YAML_CONFIGS):
        am, ours = shapegen.yaml_config(random.Random(seed))
        path = tmp_path / f"y-{seed}.yaml"
        path.write_text(ours, "utf-8")
        try:
            router, errors = routing_errors(path, chaingen.RECEIVERS)
        except PlaybookError as exc:
            router, errors = None, [str(exc)]
        judged.append((seed, router, errors))
        requests.append({"config": am, "alerts": [], "silences": [], "instants": []})
    problems: list[str] = []
    seen: Counter[str] = Counter()
    for (seed, router, errors), theirs, req in zip(
        judged, oracle(amroute, requests), requests, strict=True
    ):
        if router is not None and not theirs.get("error"):
            seen.update(accepted=1)
            problems += key_texts(seed, router, theirs)
        elif router is None and all(any(d in e for d in YAML_DELIBERATE) for e in errors):
            seen.update(documented=1)
        elif (router is None) != amtool_accepts(req["config"], tmp_path, str(seed)):
            seen.update(refused=1)
        else:
            problems.append(f"seed {seed}: citybrain {errors[:2] or 'accepts'}, amtool otherwise")
    assert not problems, f"{len(problems)} disagreements:\n" + "\n".join(problems[:25])
    assert seen["accepted"] >= YAML_CONFIGS * 0.4 and seen["refused"] >= 50, seen


def ours_silence(spec: dict[str, Any], k: int, now: float) -> tuple[Any, str]:
    """``spec`` as citybrain's operator API takes a silence: its window as given
    (``silence_window``), then its matcher objects (``new_silence``)."""
    try:
        starts, ends = silence_window(now + spec["starts_in"], now + spec["ends_in"], None, now)
        matchers = [api_matcher(o, f"matchers[{j}]") for j, o in enumerate(spec["matchers"])]
        return new_silence(f"s-{k}", matchers, starts, ends, "t157", "shapes"), ""
    except SilenceError as exc:
        return None, str(exc)


SERVER_ROUNDS = 20


def server_rounds(tmp_path: Path, start: Any, first: int, wanted: int) -> Counter[str]:
    """``wanted`` rounds from seed ``first`` on (``start`` is ``alertmanager_factory``),
    asserting each; what they met."""
    rounds = 0
    seen: Counter[str] = Counter()
    for seed in range(first, first + 20 * wanted):
        rng = random.Random(seed)
        cfg = shapegen.config(rng)
        alerts = [shapegen.alert(rng, f"a-{i}") for i in range(40)]
        specs = shapegen.silences(rng, windows=len(shapegen.WINDOWS))
        router, _ = _loaded(cfg, tmp_path / f"cb-{seed}.yaml")
        if router is None or not router.inhibit_rules:
            continue
        am_file = tmp_path / f"am-{seed}.yml"
        am_file.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
        am = start(am_file, str(seed))
        now = time.time()
        listed = [{k: v for k, v in a.items() if v} for a in alerts]
        status, answer = am.call(
            "POST",
            "/api/v2/alerts",
            [{"labels": a, "startsAt": _iso(now - 60), "endsAt": _iso(now + 3600)} for a in listed],
        )
        assert status == 200, answer
        kept = []
        for k, spec in enumerate(specs):
            silence, why = ours_silence(spec, k, now)
            status, answer = am.call(
                "POST",
                "/api/v2/silences",
                {
                    "matchers": spec["matchers"],
                    "startsAt": _iso(now + spec["starts_in"]),
                    "endsAt": _iso(now + spec["ends_in"]),
                    "createdBy": "t157",
                    "comment": "shapes",
                },
            )
            seen.update(refused=silence is None, window=spec["ends_in"] <= spec["starts_in"])
            if silence is None:
                stricter = "must not match the empty string" in why and status == 200
                assert status != 200 or stricter, (seed, spec, why)
                if stricter:  # citybrain's documented stricter refusal: out of both
                    am.call("DELETE", f"/api/v2/silence/{answer['silenceID']}")
                continue
            assert status == 200, (seed, spec, answer)
            kept.append(silence)
        want = _cb_groups(router, listed)
        deadline = time.monotonic() + 10
        while (got := _am_groups(am)) != want and time.monotonic() < deadline:
            time.sleep(0.2)
        assert got == want, (seed, sorted(map(_show, want - got)), sorted(map(_show, got - want)))
        status, theirs = am.call("GET", "/api/v2/alerts")
        assert status == 200, theirs
        by_id = {a["labels"]["alert_id"]: a["status"] for a in theirs}
        at = time.time()
        book = SilenceList(kept)
        for labels in listed:
            mark = by_id[labels["alert_id"]]
            silenced = router.decide(labels, [], book, at).silenced_by is not None
            inhibited = router.decide(labels, listed, [], at).mute == "inhibited"
            assert silenced == bool(mark["silencedBy"]), (seed, labels, mark)
            assert inhibited == bool(mark["inhibitedBy"]), (seed, labels, mark)
            seen.update(silenced=silenced, inhibited=inhibited)
        am.stop()
        rounds += 1
        if rounds == wanted:
            break
    assert rounds == wanted
    return seen


def test_new_shape_rounds_on_a_running_alertmanager(
    tmp_path: Path, alertmanager_factory: Any
) -> None:
    """Configurations both accept that have inhibit rules, their alerts (each with an
    alert_id, as the server's groups are told apart by it here) and silences of every
    window posted to a running Alertmanager 0.25: silences taken or refused alike (the
    documented stricter refusals aside), the same groups per receiver, the same alerts
    silenced and inhibited."""
    seen = server_rounds(tmp_path, alertmanager_factory, SEED + 10_000, SERVER_ROUNDS)
    assert min(seen[k] for k in ("silenced", "inhibited", "refused", "window")) >= 5, seen
