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
was before its ``started_at`` (``streams.events.refuse_ended_before_started``). t140:
the spellings of a time: 51 corners and 240 seeded ones, each POSTed as ``startsAt`` and
read back; before t140, 132 of those 291 differed (75 Alertmanager refuses and citybrain
took: ``t``/``z``, a space before a zone, ``+0100``, ``…T10:00+01:00``; 57 the other way:
no zone, a one-digit hour, offsets past +14:00 or with minutes 60-99, a signed fraction)
(``streams.events.am_time_ns``).
"""

from __future__ import annotations

import random
import re
import time
import urllib.parse
from datetime import UTC, date, datetime
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


# t140: the spellings of an alert's time. Alertmanager reads startsAt/endsAt with
# go-openapi strfmt's ParseDateTime (Go 1.19's time.Parse over ten layouts, then the
# validation of the time written back); citybrain's alert doors with
# streams.events.alert_time. Written out: the corners each run has.
SPELLINGS = [
    "2026-11-01T10:00:00Z",
    "2026-11-01t10:00:00Z",
    "2026-11-01T10:00:00z",
    "2026-11-01 10:00:00Z",
    "2026-11-01 10:00:00",
    "2026-11-01 10:00:00.25",
    "2026-11-01 10:00:00+01:00",
    "2026-11-01T10:00:00",
    "2026-11-01T10:00:00.5",
    "2026-11-01T10:00",
    "2026-11-01T10:00Z",
    "2026-11-01T10:00+01:00",
    "2026-11-01T10:00:00+0100",
    "2026-11-01T10:00:00+01",
    "2026-11-01T10:00:00.000+0100",
    "2026-11-01T10:00:00.000000-0100",
    "2026-11-01T10:00:00,000000+0100",
    "2026-11-01T10:00:00.0000+0100",
    "2026-11-01T10:00:00.1234567891234Z",
    "2026-11-01T10:00:00,5Z",
    "2026-11-01T10:00:00.Z",
    "2026-11-01T10:00:60Z",
    "2026-11-01T24:00:00Z",
    "2026-11-01T9:00:00Z",
    "2026-11-01T9:00",
    "2026-11-01T10:0:00Z",
    "2026-1-01T10:00:00Z",
    "2026-02-29T10:00:00Z",
    "2028-02-29T10:00:00Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "1989-12-31T23:59:59.999Z",
    "10000-01-01T00:00:00Z",
    "2026-11-01T10:00:00-00:00",
    "2026-11-01T10:00:00+24:00",
    "2026-11-01T10:00:00-25:30",
    "2026-11-01T10:00:00+01:60",
    "2026-11-01T10:00:00+98:99",
    "2026-11-01T10:00:00+99:59",
    "2026-11-01T10:00:00+99:99",
    "2026-11-01T10:00:00Z+01:00",
    "2026-11-01T10:00:00.+12345Z",
    "2026-11-01T10:00:00.-00000Z",
    "2026-11-01T10:00:00.-12345Z",
    "2026-11-01T10:00:00.+12+0100",
    "2026-11-01T10:00:00.+1Z",
    " 2026-11-01T10:00:00Z",
    "2026-11-01T10:00:00Z ",
    "\u0662026-11-01T10:00:00Z",
    "２026-11-01T10:00:00Z",
    "",
]
RANDOM_SPELLINGS = 240
FAR_END = "9999-12-31T23:59:59.999Z"  # an end after any start here, so the alert is listed


def random_spelling(rng: random.Random) -> str:
    """A time near 2026 written as a feed might write it: mostly RFC 3339, with each part
    now and then in another spelling (separator, case, hour digits, seconds left out or
    60, fractions of any length after '.' or ',' or signed, offsets of any digits with or
    without ':', spaces, other digits)."""
    ns = rng.randrange(1_735_689_600, 1_793_527_200) * 10**9 + rng.randrange(10**9)
    minutes = rng.choice([0, 0, 60, -300, 330, rng.randrange(-99 * 60, 100 * 60)])
    local = datetime.fromtimestamp(ns // 10**9 + minutes * 60, UTC)
    hour = f"{local.hour:02d}"
    if local.hour < 10 and rng.random() < 0.2:
        hour = str(local.hour)
    text = f"{local:%Y-%m-%d}" + rng.choice("TTTTTTTTt ") + f"{hour}:{local:%M}"
    if rng.random() < 0.9:
        text += rng.choice([f":{local:%S}"] * 20 + [":60"])
        if rng.random() < 0.6:
            digits = f"{ns % 10**9:09d}{rng.randrange(10**4):04d}"[: rng.choice([1, 3, 6, 9, 12])]
            sep = rng.choice("..,")
            if rng.random() < 0.1:
                digits = rng.choice("+-") + digits[: rng.choice([2, 5])]
            text += sep + digits
    m = abs(minutes)
    hh, mm = m // 60, m % 60
    if rng.random() < 0.1:  # Go reads any two digits of minutes: +01:60 is +02:00
        hh, mm = hh - 1, mm + 60
    sign = "-" if minutes < 0 else "+"
    zones = [f"{sign}{hh:02d}:{mm:02d}"] * 6 + [f"{sign}{hh:02d}{mm:02d}", f"{sign}{hh:02d}"]
    if minutes == 0:
        zones += ["Z"] * 6 + ["z", "", "", "-00:00"]
    text += rng.choice(zones) if hh >= 0 else "Z"
    if rng.random() < 0.03:
        text = rng.choice([" ", ""]) + text + rng.choice([" ", "\t", ""])
    if rng.random() < 0.02:
        text = text.replace("2", "\uff12", 1)
    return text


def read_back_ns(text: str) -> int:
    """Epoch ns of Alertmanager's written-back time (``2006-01-02T15:04:05.000Z07:00``:
    milliseconds, its own offset, which may pass 24 hours), read independently."""
    form = re.fullmatch(
        r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})(Z|[+-]\d\d:\d\d)", text
    )
    assert form is not None, text
    y, mo, d, h, mi, s, ms, zone = form.groups()
    days = (date(int(y) or 2000, int(mo), int(d)) - date(1970, 1, 1)).days
    if int(y) == 0:  # Go's proleptic year 0, 2000 years (730,485 days) before 2000
        days -= 730_485
    offset = (
        0 if zone == "Z" else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 60 + int(zone[4:]))
    )
    seconds = days * 86_400 + int(h) * 3600 + int(mi) * 60 + int(s) - offset * 60
    return seconds * 10**9 + int(ms) * 10**6


# citybrain's own bound on an alert's time, beyond its spelling (docs/events.md): from
# 1990 on, in the years 0001-9999; Alertmanager takes "" as 1970 and year 0000.
BOUNDS = ("before 1990", "outside the years 0001-9999", "before 1990-01-01")
GO_ZERO = {"0001-01-01T00:00:00Z"}


def test_alert_time_spellings_are_taken_or_refused_as_alertmanager_takes_them(
    tmp_path: Path, alertmanager_factory: Any
) -> None:
    from streams.alerting import checked_alert
    from streams.events import alert_time_ns

    config = tmp_path / "alertmanager.yml"
    config.write_text("route: {receiver: r, group_by: [alert_id]}\nreceivers: [{name: r}]\n")
    am = alertmanager_factory(config, "spellings")
    rng = random.Random(SEED + 140)
    spellings = SPELLINGS + [random_spelling(rng) for _ in range(RANDOM_SPELLINGS)]
    differ, taken, refused = [], 0, 0
    for i, text in enumerate(spellings):
        alert_id = f"s-{i}"
        body = [{"labels": {"alert_id": alert_id}, "startsAt": text, "endsAt": FAR_END}]
        status, answer = am.call("POST", "/api/v2/alerts", body)
        assert status in (200, 400, 422), (status, answer)
        theirs: int | None = None
        if status == 200:
            query = "/api/v2/alerts?filter=" + urllib.parse.quote(f'alert_id="{alert_id}"')
            status, listed = am.call("GET", query)
            assert status == 200 and len(listed) == 1, (status, listed)
            theirs = read_back_ns(listed[0]["startsAt"])
        alert = {
            "alert_id": alert_id,
            "status": "firing",
            "kind": "pm25",
            "severity": "minor",
            "grid_cell": "c1",
            "started_at": text,
            "ended_at": FAR_END,
            "labels": {"alert_id": alert_id},
        }
        try:
            checked_alert(alert)
            ours: int | str = alert_time_ns(text)
        except EventError as exc:
            assert (exc.code, exc.field, exc.value) == ("bad_alert", "started_at", text), exc
            ours = exc.reason
        taken += theirs is not None
        refused += theirs is None
        if theirs is None and isinstance(ours, int):
            differ.append(f"{text!r}: Alertmanager {status} {answer!r}, citybrain takes it")
        elif theirs is not None and isinstance(ours, str):
            # Taken there, refused here only for citybrain's bound on the instant.
            deliberate = any(b in ours for b in BOUNDS)
            # Go's zero time is no startsAt there: Alertmanager sets it to now.
            if (theirs >= 631_152_000 * 10**9 and text not in GO_ZERO) or not deliberate:
                differ.append(f"{text!r}: Alertmanager {theirs} ns, citybrain: {ours}")
        elif theirs is not None and isinstance(ours, int) and ours // 10**6 != theirs // 10**6:
            differ.append(f"{text!r}: Alertmanager {theirs} ns, citybrain {ours} ns")
    assert not differ, f"{len(differ)} of {len(spellings)} differ:\n" + "\n".join(differ[:30])
    # Both sides of the rule are met.
    assert 20 < refused < len(spellings) - 20 and taken > 100, (taken, refused)
