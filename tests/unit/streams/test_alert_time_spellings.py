"""An alert's ``started_at``/``ended_at`` taken or refused exactly as Alertmanager 0.25's
API takes its ``startsAt``/``endsAt``, with the same meaning (t140).

Alertmanager reads them with go-openapi strfmt's ``ParseDateTime`` (Go's ``time.Parse``
with ten layouts; ``streams.events.am_time_ns`` lists them). Before t140 citybrain read
them as every other timestamp (``parse_ts``): it took a lower-case ``t``/``z``, a space
before a zone and ``+0100``, which Alertmanager refuses, and refused a time without a
zone, which Alertmanager reads as UTC, and ``+15:00`` or ``+01:60``. Each row below is
Alertmanager's own answer, measured on the real server (its ``startsAt`` read back by
GET /api/v2/alerts); the differential in
tests/integration/test_alert_label_names_differential.py asks it again each run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from citybrain.report import alert_record
from streams.alerting import checked_alert, read_muted
from streams.corroboration import checked_message
from streams.errors import EventError
from streams.events import alert_fields, alert_time, alert_time_ns, am_time_ns
from streams.response import routed_fields, waited_out
from tests.unit.streams.test_routed_admission import ROUTE

ALERT: dict[str, Any] = {
    "alert_id": "al-1",
    "status": "firing",
    "sensor_id": "gauge-1",
    "kind": "water_level",
    "grid_cell": "c-bridge",
    "severity": "major",
    "score": 0.9,
    "labels": {"alert_id": "al-1"},
}
NOON = datetime(2026, 1, 1, 12, tzinfo=UTC).timestamp()


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# Alertmanager takes these: (spelling, the instant it stored).
TAKEN = [
    ("2026-01-01T12:00:00Z", NOON),
    ("2026-01-01T12:00:00", NOON),  # no zone: UTC (refused before t140)
    ("2026-01-01 12:00:00", NOON),  # a space, no zone
    ("2026-01-01 12:00:00.5", NOON + 0.5),
    ("2026-01-01T12:00", NOON),  # no seconds
    ("2026-01-01T12:00Z", NOON),
    ("2026-01-01T9:00:00Z", NOON - 3 * 3600),  # a one-digit hour
    ("2026-01-01T9:00", NOON - 3 * 3600),
    ("2026-01-01T12:00:00,5Z", NOON + 0.5),
    ("2026-01-01T12:00:00.1234567891234Z", NOON + 0.123456789),  # nine digits kept
    ("2026-01-01T12:00:00-00:00", NOON),
    ("2026-01-01T13:00:00+01:00", NOON),
    ("2026-01-01T13:00:00.000+0100", NOON),  # ±HHMM after 3 or 6 fraction digits
    ("2026-01-01T11:00:00.000000-0100", NOON),
    ("2026-01-01T13:00:00,000000+0100", NOON),
    ("2026-01-02T12:00:00+24:00", NOON),  # Go 1.19 checks no offset's range
    ("2026-01-02T13:00:00+25:00", NOON),
    ("2026-01-01T14:00:00+01:60", NOON),  # +02:00 (refused before t140)
    ("2026-01-05T15:59:00+99:59", NOON),
    ("2026-01-01T12:00:00.+12345Z", NOON + 0.012345),  # Go's atoi over 6 characters
    ("2026-01-01T12:00:00.+12Z", NOON + 0.012),  # ... or 3
    ("2026-01-01T12:00:00.-00000Z", NOON),
    ("2028-02-29T12:00:00Z", at("2028-02-29T12:00:00+00:00")),
]
# Alertmanager refuses these: (spelling, what citybrain's reason says).
REFUSED = [
    ("2026-01-01t12:00:00Z", "a lower-case 't' or 'z'"),  # taken before t140
    ("2026-01-01T12:00:00z", "a lower-case 't' or 'z'"),  # taken before t140
    ("2026-01-01 12:00:00Z", "a space for 'T' is taken only with no zone"),  # taken before
    ("2026-01-01 12:00:00+01:00", "a space for 'T' is taken only with no zone"),
    ("2026-01-01T12:00:00+0100", "an offset without ':'"),  # taken before t140
    ("2026-01-01T12:00:00.0000+0100", "an offset without ':'"),
    ("2026-01-01T12:00:00+01", "expected a time as Alertmanager takes it"),  # taken before
    ("2026-01-01T12:00+01:00", "expected a time as Alertmanager takes it"),  # taken before
    ("2026-01-01T12:00:00+99:99", "the UTC offset +99:99 is 100 hours or more"),
    ("2026-01-01T12:00:00.-12345Z", "a negative fraction of a second"),
    ("2026-01-01 12:00:00.+12", "expected a time as Alertmanager takes it"),
    ("2026-01-01T12:00:00.+1Z", "expected a time as Alertmanager takes it"),
    ("2026-01-01T12:00:60Z", "no leap second"),
    ("2026-01-01T24:00:00Z", "no 24:00"),
    ("2027-02-29T12:00:00Z", "day 29 is out of range for 2027-02"),
    ("2026-13-01T12:00:00Z", "month 13 is out of range"),
    ("10000-01-01T12:00:00Z", "expected a time as Alertmanager takes it"),
    ("2026-1-01T12:00:00Z", "expected a time as Alertmanager takes it"),
    ("2026-01-01T12:0:00Z", "expected a time as Alertmanager takes it"),
    ("2026-01-01T12:00.5Z", "expected a time as Alertmanager takes it"),
    ("2026-01-01T12:00:00.Z", "expected a time as Alertmanager takes it"),
    ("2026-01-01T12:00:00Z+01:00", "expected a time as Alertmanager takes it"),
    (" 2026-01-01T12:00:00Z", "spaces around the time"),
    ("2026-01-01T12:00:00Z ", "spaces around the time"),
    ("２026-01-01T12:00:00Z", "only ASCII digits"),
    ("2026-01-01T12:00:00.0000000001+0100", "an offset without ':'"),
    ("", "an empty time"),  # Alertmanager: 1970-01-01, before 1990 here
]


@pytest.mark.parametrize(("text", "instant"), TAKEN)
@pytest.mark.parametrize("name", ["started_at", "ended_at"])
def test_a_spelling_alertmanager_takes_is_taken_meaning_its_instant(
    text: str, instant: float, name: str
) -> None:
    alert = {**ALERT, name: text}
    assert checked_alert(alert)[0] == alert
    assert alert_time(text, name) == pytest.approx(instant, abs=1e-6)
    assert am_time_ns(text) == alert_time_ns(text)


@pytest.mark.parametrize(("text", "said"), REFUSED)
@pytest.mark.parametrize("name", ["started_at", "ended_at"])
def test_a_spelling_alertmanager_refuses_is_bad_alert_naming_field_and_value(
    text: str, said: str, name: str
) -> None:
    with pytest.raises(EventError) as caught:
        checked_alert({**ALERT, name: text})
    error = caught.value
    assert (error.code, error.field, error.value) == ("bad_alert", name, text)
    assert said in error.reason, error.reason
    # Every reason says what is taken (the range faults name the part that is wrong).
    assert any(word in error.reason for word in ("taken", "range", "100 hours", "1990"))


def test_the_instant_is_go_s_to_the_nanosecond() -> None:
    base = int(NOON) * 10**9
    assert am_time_ns("2026-01-01T12:00:00.123456789999Z") == base + 123_456_789
    assert am_time_ns("2026-01-01T12:00:00.+12345Z") == base + 12_345_000
    assert am_time_ns("2026-01-01T14:01:00+01:61") == base
    assert am_time_ns("0000-01-01T00:00:00Z") == -62_167_219_200 * 10**9  # Go's year 0
    assert isinstance(am_time_ns("2026-01-01T12:00:00z"), str)


def test_a_time_before_1990_or_past_9999_is_still_refused() -> None:
    # Alertmanager takes year 0000 and ""; citybrain's bound on an alert's time stays.
    for text, said in (
        ("0000-01-01T00:00:00Z", "outside the years 0001-9999"),
        ("1989-12-31T23:59:59Z", "before 1990"),
        ("9999-12-31T23:00:00-02:00", "outside the years 0001-9999"),
    ):
        with pytest.raises(EventError, match=said):
            checked_alert({**ALERT, "started_at": text})


def test_the_other_alert_doors_follow_the_same_rule() -> None:
    zoneless = {**ALERT, "started_at": "2026-01-01T12:00:00"}
    lower = {**ALERT, "started_at": "2026-01-01T12:00:00z"}
    assert routed_fields({"alert": zoneless, "route": ROUTE})["alert"] == zoneless
    checked_message({"type": "alert", "alert": zoneless}, NOON, 300.0)
    alert_record(zoneless)
    for door in (
        lambda: routed_fields({"alert": lower, "route": ROUTE}),
        lambda: checked_message({"type": "alert", "alert": lower}, NOON, 300.0),
        lambda: alert_record(lower),
    ):
        with pytest.raises(EventError, match="lower-case 't' or 'z'"):
            door()
    # Read where the worker reads the start (a group's wait): UTC, as Alertmanager.
    assert waited_out(zoneless, 30.0, NOON + 31) and not waited_out(zoneless, 30.0, NOON + 29)


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01t12:00:00z",
        "2026-01-01 12:00:00Z",
        "2026-01-01T13:00:00+0100",
        "2026-01-01T13:00+01",
    ],
)
def test_a_spelling_an_earlier_worker_stored_still_reads_back(text: str) -> None:
    # A muted alert an earlier worker kept (its muted table's read-back): its time means
    # what that worker read, 12:00 UTC.
    alert = {**ALERT, "started_at": text}
    entry = {"alert": alert, "mute": "silenced", "by": "s-1", "since": NOON}
    assert read_muted(orjson.dumps(entry)) == entry
    assert alert_fields(alert, stored=True) == alert
    assert alert_time(text, "started_at", stored=True) == NOON
    assert waited_out(alert, 30.0, NOON + 31)
    with pytest.raises(EventError):
        alert_time(text, "started_at")


@pytest.mark.parametrize(
    "started",
    ["2019-05-10T22:30:00+01:60", "2019-05-10T9:30:00-11:00", "2019-05-10T20:30:00.+12Z"],
)
def test_the_demo_summary_reads_an_alert_time_as_the_worker_took_it(started: str) -> None:
    # t140: the summary read an alert's first event time by a reading's rule; a spelling
    # the alert door takes raised ValueError there and failed the summary.
    from citybrain.demo import KnownEvent, known_events, outside_events

    flood = KnownEvent("flood", "usgs-", "2019-05-10T20:00:00Z", "2019-05-10T21:00:00Z")
    alert_record({**ALERT, "sensor_id": "usgs-1", "started_at": started})
    alerts = [{"sensor_id": "usgs-1", "grid_cell": "c", "first_event_time": started}]
    assert known_events(alerts, (flood,), {"usgs-1"})[0]["detected"]
    assert outside_events(alerts, (flood,)) == []
