"""Label names in alerts, taken or refused alike by a real Alertmanager's API and by
citybrain's alerts agent (t127).

Alertmanager 0.25 (``api/v2/api.go``) drops the labels whose value is empty, then refuses
an alert with a label name prometheus common's ``LabelName.IsValid`` refuses (an ASCII
letter or ``_`` first, then ASCII letters, digits or ``_``): "invalid label set".
citybrain routed such an alert, the label unseen by every matcher (``kind="pm25"`` does
not see ``'kind '``); it now dead-letters it as ``bad_alert`` naming the label
(``streams.alerting.checked_alert``, ``playbooks.routing.label_set``). t138: an alert
left with no label once the empty ones are dropped is refused there too ("at least one
label pair required"); citybrain routed it to the root's playbook. t139: an alert whose
``endsAt`` is before its ``startsAt`` is refused there ("start time must be before end
time", to the nanosecond; the same time is fine); citybrain routed one whose ``ended_at``
was before its ``started_at`` (``streams.events.refuse_ended_before_started``).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.errors import EventError
from streams.events import refuse_alert_ahead
from streams.settings import Settings
from tests.integration import amgen
from tests.integration.test_alertmanager_independent import _iso, alertmanager_factory

pytestmark = pytest.mark.integration
__all__ = ["alertmanager_factory"]  # the fixture, used by name

SEED = 127_000
NAMES = 400
# Written out: the corners each run has, whatever the seeds draw.
FIXED = ["kind ", "a b", "", "1st", "zürich", "_", "__x", "zone9", "K", "a-b", "a.b", "a:b"]
# Label sets with no label of a value (t138), and their neighbours with one.
UNLABELLED: list[dict[str, str]] = [
    {},
    {"alert_id": ""},
    {"kind": "", "severity": ""},
    {"a b": "", "": ""},
    {"kind": "", "a b": "x"},
    {"kind": "", "zone": " "},
]
REFUSALS = {
    "not a label name Alertmanager takes": "invalid label set",
    "no label has a non-empty value": "at least one label pair required",
}


def citybrain_takes(labels: dict[str, str]) -> bool:
    from streams.alerting import checked_alert

    alert = {
        "alert_id": "a-1",
        "status": "firing",
        "kind": "pm25",
        "severity": "minor",
        "grid_cell": "c1",
        "labels": labels,
    }
    try:
        checked_alert(alert)
    except EventError as exc:
        assert exc.code == "bad_alert" and any(why in str(exc) for why in REFUSALS), exc
        return False
    return True


def same_reason(labels: dict[str, str], answer: Any) -> bool:
    """citybrain's refusal names the reason Alertmanager's answer gives."""
    from streams.alerting import checked_alert

    alert = {"alert_id": "a", "status": "firing", "kind": "k", "severity": "s", "grid_cell": "c"}
    try:
        checked_alert({**alert, "labels": labels})
    except EventError as exc:
        return any(ours in str(exc) and theirs in str(answer) for ours, theirs in REFUSALS.items())
    return False


def test_label_names_are_taken_or_refused_as_alertmanager_takes_them(
    tmp_path: Path, alertmanager_factory: Any
) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: r, group_by: [alert_id]}\nreceivers: [{name: r}]\n")
    am = alertmanager_factory(config, "names")
    rng = random.Random(SEED)
    names = FIXED + [amgen.odd_label_name(rng) for _ in range(NAMES)]
    now = time.time()
    differ, refused = [], 0
    for i, name in enumerate(names):
        for value in ("x", ""):  # an empty value is no label there, whatever its name
            labels = {"alert_id": f"a-{i}", name: value} if name != "alert_id" else {name: value}
            body = [{"labels": labels, "startsAt": _iso(now - 60), "endsAt": _iso(now + 600)}]
            status, answer = am.call("POST", "/api/v2/alerts", body)
            assert status in (200, 400), (status, answer)
            theirs, ours = status == 200, citybrain_takes(labels)
            refused += not theirs
            if theirs != ours:
                differ.append(f"{labels!r}: Alertmanager {status} {answer!r}, citybrain {ours}")
    for labels in UNLABELLED:
        body = [{"labels": labels, "startsAt": _iso(now - 60), "endsAt": _iso(now + 600)}]
        status, answer = am.call("POST", "/api/v2/alerts", body)
        theirs, ours = status == 200, citybrain_takes(labels)
        if theirs != ours or (not ours and not same_reason(labels, answer)):
            differ.append(f"{labels!r}: Alertmanager {status} {answer!r}, citybrain {ours}")
    assert not differ, f"{len(differ)} of {2 * len(names)} differ:\n" + "\n".join(differ[:20])
    # Both sides of the rule are met: most odd names refused, some taken.
    assert len(names) / 2 < refused < 2 * len(names) - 20, refused


# (startsAt/started_at, endsAt/ended_at), None: left out. The corners each run has.
TIMES: list[tuple[str | None, str | None]] = [
    ("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"),
    ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z"),  # the same time: taken
    ("2026-11-01T10:00:01Z", "2026-11-01T10:00:00Z"),
    ("2026-11-01T10:00:00Z", "2026-11-01T10:00:01Z"),
    # Within a microsecond: one time in a float of microseconds, two in Go.
    ("2026-11-01T10:00:00.0000009Z", "2026-11-01T10:00:00.0000001Z"),
    ("2026-11-01T10:00:00.000000001Z", "2026-11-01T10:00:00Z"),
    ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00.000000001Z"),
    # Past nine digits Go drops the rest: the same nanosecond, taken.
    ("2026-11-01T10:00:00.1234567891Z", "2026-11-01T10:00:00.123456789Z"),
    ("2026-11-01T10:00:00.123456789Z", "2026-11-01T10:00:00.1234567889Z"),
    # Other offsets: the instant counts.
    ("2026-11-01T11:00:00+01:00", "2026-11-01T10:00:00Z"),
    ("2026-11-01T11:00:00.000000001+01:00", "2026-11-01T10:00:00Z"),
    ("2026-11-01T05:30:00-04:30", "2026-11-01T10:00:00Z"),
    ("2026-11-01T10:00:00Z", "2026-11-01T23:59:59.999999999+14:00"),
    (None, "2026-11-01T10:00:00Z"),  # startsAt set from endsAt
]
RANDOM_TIMES = 200


def random_time(rng: random.Random, base: int) -> str:
    """``base`` (epoch s) give or take a few nanoseconds to seconds, written with a random
    offset (-12:00..+14:00, or Z) and 0 to 10 fraction digits."""
    ns = base * 10**9 + rng.choice([0, 1, 9, 999, 10**6, 10**9]) * rng.randint(-3, 3)
    digits = rng.choice([0, 0, 3, 6, 7, 9, 9, 10])
    minutes = 0 if rng.random() < 0.3 else rng.randrange(-12 * 60, 14 * 60 + 1, 15)
    local = datetime.fromtimestamp(ns // 10**9 + minutes * 60, UTC)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{ns % 10**9:09d}{rng.randint(0, 9)}"[:digits]
    if minutes == 0:
        return text + "Z"
    sign, m = ("+" if minutes > 0 else "-"), abs(minutes)
    return text + f"{sign}{m // 60:02d}:{m % 60:02d}"


def citybrain_takes_times(started: str | None, ended: str | None) -> EventError | None:
    """None if the alerts agent takes an alert of these times, else its refusal."""
    from streams.alerting import checked_alert

    alert = {
        "alert_id": "a-t",
        "status": "resolved" if ended is not None else "firing",
        "kind": "pm25",
        "severity": "minor",
        "grid_cell": "c1",
        "started_at": started,
        "ended_at": ended,
        "labels": {"alert_id": "a-t"},
    }
    try:
        checked_alert(alert)
        skew = Settings.model_fields["max_future_skew"].default
        refuse_alert_ahead(alert, time.time(), skew, "bad_alert")
    except EventError as exc:
        return exc
    return None


def test_alert_times_are_taken_or_refused_as_alertmanager_takes_them(
    tmp_path: Path, alertmanager_factory: Any
) -> None:
    """t139: one whose end is before its start is refused by both, with Alertmanager's
    reason in citybrain's message; the same instant in any spelling taken by both."""
    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: r, group_by: [alert_id]}\nreceivers: [{name: r}]\n")
    am = alertmanager_factory(config, "times")
    rng = random.Random(SEED + 139)
    base = 1_793_527_200  # 2026-11-01T10:00:00Z
    pairs = TIMES + [(random_time(rng, base), random_time(rng, base)) for _ in range(RANDOM_TIMES)]
    now = time.time()
    # Alertmanager sets a missing endsAt to now + resolve_timeout (5 min by default), so
    # a firing alert starting later than that ends before it starts; citybrain refuses a
    # time past CITYBRAIN_MAX_FUTURE_SKEW (300 s by default) ahead: the same bound.
    pairs += [(_iso(now + 1800), None), (_iso(now + 60), None)]
    differ, refused = [], 0
    why = "start time must be before end time"
    for started, ended in pairs:
        alert: dict[str, Any] = {"labels": {"alert_id": "a-t"}}
        if started is not None:
            alert["startsAt"] = started
        if ended is not None:
            alert["endsAt"] = ended
        status, answer = am.call("POST", "/api/v2/alerts", [alert])
        assert status in (200, 400), (status, answer)
        ours = citybrain_takes_times(started, ended)
        theirs = status == 200
        refused += not theirs
        # Refused for the order of its times: each says so (one starting far ahead with
        # no end is refused by citybrain for CITYBRAIN_MAX_FUTURE_SKEW, in its words).
        said = why in str(answer) and why in str(ours)
        unsaid = ended is not None and not theirs and not said
        if theirs != (ours is None) or unsaid:
            differ.append(f"{started} .. {ended}: Alertmanager {status} {answer!r}, {ours}")
    assert not differ, f"{len(differ)} of {len(pairs)} differ:\n" + "\n".join(differ[:20])
    # Both sides of the rule are met.
    assert 10 < refused < len(pairs) - 10, refused
