"""citybrain against the real Alertmanager on the corners of ``cornergen.py`` (t94).

Configurations at validation edges (durations, label names, matchers on absent labels,
``group_by`` on absent labels, ``continue`` at depth, inhibit rules with sides the same
alerts match): accepted or refused alike by ``amtool check-config`` (citybrain's
documented deliberate refusals aside), every refusal of citybrain's naming the file,
line and field, and the same receivers in the same order from ``amtool config routes
test``. Silence windows written in every spelling of RFC 3339 and its near misses,
posted to a running Alertmanager and through citybrain's API functions: accepted or
refused alike, the same window kept, the same alerts silenced before and after expiry.
Rounds of 80 alerts with labels missing or empty under a corner configuration both
accept: the same groups per receiver and the same alerts inhibited.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from playbooks.errors import PlaybookError, SilenceError
from playbooks.loader import routing_errors
from playbooks.routing import Router, Silence, new_silence, silence_window
from streams.api import ApiError, request_time
from tests.integration import cornergen
from tests.integration.test_alertmanager_independent import (
    _am_groups,
    _cb_groups,
    _iso,
    _show,
    alertmanager_factory,
    amtool,
    routes_test,
)

pytestmark = pytest.mark.integration
__all__ = ["alertmanager_factory"]  # the fixture, used by name

# Refusals citybrain makes where Alertmanager accepts (docs/playbooks.md, "Refused where
# citybrain deliberately differs"), in citybrain's words.
DELIBERATE = (
    "unknown label",
    "the root route needs group_by",
    "group_by: [] on a child route",
    "lists `...` more than once",
    "has no matcher in it",
)
# Each refusal names the file, the line and where in the tree.
NAMED = re.compile(r"^\S+:\d+: (route|inhibit_rules)\b")
STATS: Counter[str] = Counter()


def judge(tmp: Path, seed: int, label_sets: int = 8) -> list[str]:
    """Every difference for the corner configuration of ``seed``."""
    rng = random.Random(seed)
    spec = cornergen.config(rng)
    am_file, cb_file = tmp / f"am-{seed}.yml", tmp / f"cb-{seed}.yaml"
    am_file.write_text(cornergen.render(spec, alertmanager=True), encoding="utf-8")
    cb_file.write_text(cornergen.render(spec, alertmanager=False), encoding="utf-8")
    done = amtool("check-config", str(am_file))
    am_ok = done.returncode == 0
    router: Router | None
    try:
        router, errors = routing_errors(cb_file, cornergen.RECEIVERS)
    except PlaybookError as exc:
        router, errors = None, [str(exc)]
    STATS.update(configs=1, am_ok=am_ok, cb_ok=router is not None)
    if router is None:
        unnamed = [e for e in errors if not NAMED.match(e)]
        if unnamed:
            return [f"seed {seed}: an error names no field: {unnamed[0]}"]
    if am_ok and router is None:
        if all(any(d in e for d in DELIBERATE) for e in errors):
            STATS.update(deliberate=1)
            return []
        return [f"seed {seed}: citybrain refuses what Alertmanager accepts: {errors}"]
    if not am_ok and router is not None:
        said = (done.stdout + done.stderr).strip().replace("\n", " | ")
        return [f"seed {seed}: citybrain accepts what Alertmanager refuses: {said}"]
    if router is None:
        return []
    found = []
    for i in range(label_sets):
        labels = cornergen.label_set(rng, f"a-{i}")
        want = routes_test(am_file, labels)
        got = [r.playbook for r in router.root.match(labels)]
        STATS.update(routed=1)
        if got != want:
            found.append(f"seed {seed}: {labels!r}: citybrain {got}, Alertmanager {want}")
    return found


def differ(tmp: Path, seeds: range) -> list[str]:
    with ThreadPoolExecutor(2) as pool:
        return [p for ps in pool.map(lambda s: judge(tmp, s), seeds) for p in ps]


@pytest.mark.parametrize("block", range(2))
def test_corner_configurations_are_judged_and_routed_as_alertmanager(
    tmp_path: Path, block: int
) -> None:
    """300 corner configurations a block: accepted or refused alike, citybrain's
    refusals naming the field, the same receivers for eight label sets each."""
    found = differ(tmp_path, range(block * 300, block * 300 + 300))
    assert not found, "\n".join(found[:10])


# ---------------------------------------------------------------- silence windows

ROUTING = """\
route:
  receiver: pb-root
  group_by: ['...']
receivers:
  - name: pb-root
"""


def _ours(times: cornergen.SilenceTimes, matchers: list[str], now: float) -> Silence | str:
    """The silence citybrain's API makes of these fields, or why it refuses."""
    try:
        starts = request_time("starts_at", times.starts, now)
        ends = request_time("ends_at", times.ends, now)
        window = silence_window(starts, ends, None, now)
        return new_silence("s", matchers, *window, "t94", "corner")
    except (ApiError, SilenceError) as exc:
        return str(exc)


# citybrain's own bounds on a silence's time, beyond its spelling (docs/playbooks.md,
# silence times): from 2000-01-01 to 100 years after now. Since t146 the spellings are
# read as Alertmanager's API reads them (streams.events.am_epoch): no other difference.
OWN_BOUNDS = ("before 2000-01-01", "more than 100 years from now")


def deliberate_time(times: cornergen.SilenceTimes, ours: Silence | str, answer: Any) -> bool:
    """Whether a difference in acceptance is citybrain's own bound on the instant (before
    t146 also its own spellings: `t`, `z`, a space before a zone, ±HHMM and ±HH taken, a
    time without a zone and an offset of 24 hours refused)."""
    return isinstance(ours, str) and any(b in ours for b in OWN_BOUNDS)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def differ_on_windows(tmp: Path, start: Any, seed: int, n: int = 24) -> list[str]:
    """One round: ``n`` silences with corner windows on a running Alertmanager and in
    citybrain; every difference in acceptance, kept window, and silenced alerts."""
    rng = random.Random(seed)
    config = tmp / f"am-windows-{seed}.yml"
    config.write_text(ROUTING, encoding="utf-8")
    am = start(config, f"windows-{seed}")
    now = time.time()
    alerts = [{"kind": k, "severity": s, "alert_id": f"a-{k}-{s}"} for k in "pqr" for s in "xy"]
    status, answer = am.call(
        "POST",
        "/api/v2/alerts",
        [{"labels": a, "startsAt": _iso(now - 60), "endsAt": _iso(now + 7200)} for a in alerts],
    )
    assert status == 200, answer
    found: list[str] = []
    kept: list[tuple[str, Silence, cornergen.SilenceTimes]] = []
    for _ in range(n):
        times = cornergen.silence_times(rng, now)
        kind = rng.choice("pqr")
        severity = rng.choice(("x", "y", None))
        objects = [{"name": "kind", "value": kind, "isRegex": False, "isEqual": True}]
        matchers = [f'kind="{kind}"']
        if severity is not None:
            objects.append({"name": "severity", "value": severity, "isRegex": False})
            matchers.append(f'severity="{severity}"')
        body = {
            "matchers": objects,
            "startsAt": times.starts,
            "endsAt": times.ends,
            "createdBy": "t94",
            "comment": "corner",
        }
        status, answer = am.call("POST", "/api/v2/silences", body)
        ours = _ours(times, matchers, time.time())
        STATS.update(silences=1, am_accepted=status == 200, cb_accepted=isinstance(ours, Silence))
        if (status == 200) != isinstance(ours, Silence) and deliberate_time(times, ours, answer):
            STATS.update(deliberate=1)
            if status == 200:
                am.call("DELETE", f"/api/v2/silence/{answer['silenceID']}")
        elif status == 200 and isinstance(ours, str):
            found.append(f"seed {seed}: {times}: citybrain refuses ({ours}), Alertmanager accepts")
            am.call("DELETE", f"/api/v2/silence/{answer['silenceID']}")
        elif status != 200 and isinstance(ours, Silence):
            found.append(
                f"seed {seed}: {times}: citybrain accepts, Alertmanager refuses ({answer})"
            )
        elif isinstance(ours, Silence):
            sid = answer["silenceID"]
            status, theirs = am.call("GET", f"/api/v2/silence/{sid}")
            assert status == 200, theirs
            # Both move a past start to the moment the silence is made: a second apart
            # at most here, as the two are made one after the other.
            for what, mine, their in (
                ("starts", ours.starts_at, _epoch(theirs["startsAt"])),
                ("ends", ours.ends_at, _epoch(theirs["endsAt"])),
            ):
                if abs(mine - their) > 1.0:
                    found.append(
                        f"seed {seed}: {times}: {what} citybrain {_iso(mine)}, "
                        f"Alertmanager {theirs[what + 'At']}"
                    )
            kept.append((sid, ours, times))
    found += _silenced_alike(am, alerts, [s for _, s, _ in kept], seed, "made")
    expired = []
    for sid, ours, times in kept:
        if times.expire:
            am.call("DELETE", f"/api/v2/silence/{sid}")
            at = time.time()
            ends = min(ours.ends_at, at)
            expired.append(
                Silence(ours.id, ours.matchers, min(ours.starts_at, ends), ends, "t94", "x")
            )
        else:
            expired.append(ours)
    found += _silenced_alike(am, alerts, expired, seed, "expired")
    am.stop()
    return found


def _silenced_alike(
    am: Any, alerts: list[dict[str, str]], silences: list[Silence], seed: int, when: str
) -> list[str]:
    status, listed = am.call("GET", "/api/v2/alerts")
    assert status == 200, listed
    now = time.time()
    by_id = {a["labels"]["alert_id"]: a["status"] for a in listed}
    found = []
    for labels in alerts:
        mine = any(s.silences(labels, now) for s in silences)
        theirs = bool(by_id[labels["alert_id"]]["silencedBy"])
        STATS.update(**{f"silenced_{when}": theirs})
        if mine != theirs:
            found.append(f"seed {seed} ({when}): {labels}: silenced citybrain {mine}, AM {theirs}")
    return found


@pytest.mark.parametrize("seed", range(2))
def test_silence_windows_are_kept_and_applied_as_alertmanager(
    tmp_path: Path, alertmanager_factory: Any, seed: int
) -> None:
    """24 silences whose times are written in every RFC 3339 spelling and its near
    misses, with windows pending, active, reversed, empty and ended: accepted alike, the
    same window kept, the same alerts silenced when made and once some are expired."""
    found = differ_on_windows(tmp_path, alertmanager_factory, seed)
    assert not found, "\n".join(found[:10])


# ---------------------------------------------------------------- groups and inhibition


def differ_on_groups(tmp: Path, start: Any, seed: int, n_alerts: int = 80) -> list[str]:
    """One round on a running Alertmanager: a corner configuration both accept (group_by
    on absent labels and ``...``, inhibit rules whose sides the same alerts match, ``equal``
    on absent labels) and ``n_alerts`` alerts with labels missing or empty: the same
    groups per receiver, the same alerts inhibited."""
    rng = random.Random(seed)
    for attempt in range(100):  # a configuration both accept, with an inhibit rule
        spec = cornergen.config(rng)
        if not spec.rules:
            spec.rules = [cornergen.rule(rng)]
        am_file = tmp / f"am-groups-{seed}-{attempt}.yml"
        cb_file = tmp / f"cb-groups-{seed}-{attempt}.yaml"
        am_file.write_text(cornergen.render(spec, alertmanager=True), encoding="utf-8")
        cb_file.write_text(cornergen.render(spec, alertmanager=False), encoding="utf-8")
        try:
            router, _ = routing_errors(cb_file, cornergen.RECEIVERS)
        except PlaybookError:
            continue
        if router is not None and amtool("check-config", str(am_file)).returncode == 0:
            break
    else:
        return [f"seed {seed}: no configuration both accept in 100 attempts"]
    am = start(am_file, f"groups-{seed}")
    now = time.time()
    alerts = [cornergen.label_set(rng, f"a-{i}") for i in range(n_alerts)]
    status, answer = am.call(
        "POST",
        "/api/v2/alerts",
        [{"labels": a, "startsAt": _iso(now - 60), "endsAt": _iso(now + 7200)} for a in alerts],
    )
    assert status == 200, answer
    found: list[str] = []
    want = _cb_groups(router, alerts)
    # Alertmanager's dispatcher takes the alerts in a moment after the POST answered.
    deadline = time.monotonic() + 10
    while (got := _am_groups(am)) != want and time.monotonic() < deadline:
        time.sleep(0.2)
    if got != want:
        found.append(
            f"seed {seed}: groups differ: only citybrain {sorted(map(_show, want - got))[:3]}, "
            f"only Alertmanager {sorted(map(_show, got - want))[:3]}"
        )
    status, listed = am.call("GET", "/api/v2/alerts")
    assert status == 200, listed
    by_id = {a["labels"]["alert_id"]: a["status"] for a in listed}
    for labels in alerts:
        inhibited = router.decide(labels, alerts, [], now).inhibited_by is not None
        theirs = bool(by_id[labels["alert_id"]]["inhibitedBy"])
        STATS.update(alerts=1, inhibited=theirs)
        if inhibited != theirs:
            found.append(f"seed {seed}: {labels!r}: inhibited citybrain {inhibited}, AM {theirs}")
    am.stop()
    return found


@pytest.mark.parametrize("seed", range(3))
def test_corner_rounds_group_and_inhibit_as_alertmanager(
    tmp_path: Path, alertmanager_factory: Any, seed: int
) -> None:
    """80 alerts with labels missing or empty, under a corner configuration both accept:
    the same groups per receiver and the same alerts inhibited."""
    found = differ_on_groups(tmp_path, alertmanager_factory, seed)
    assert not found, "\n".join(found[:10])
