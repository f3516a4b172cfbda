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

import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from citybrain.report import alert_record
from playbooks.grid import Grid
from streams.alerting import checked_alert, read_muted
from streams.corroboration import checked_message
from streams.errors import EventError
from streams.events import (
    alert_fields,
    alert_time,
    alert_time_ns,
    alert_time_text,
    am_time_ns,
    format_ts,
    parse_ts,
)
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
UTC_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]*[1-9])?Z")


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
    taken = checked_alert(alert)[0]
    # Passed on as RFC 3339 in UTC (t144), the same instant to the nanosecond, which an
    # earlier worker's rule (parse_ts) reads too.
    assert taken == {**alert, name: alert_time_text(text)}
    assert UTC_TEXT.fullmatch(taken[name]), taken[name]
    assert am_time_ns(taken[name]) == am_time_ns(text)
    assert parse_ts(taken[name]) == pytest.approx(instant, abs=1e-6)
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
    utc = {**zoneless, "started_at": "2026-01-01T12:00:00Z"}
    assert routed_fields({"alert": zoneless, "route": ROUTE})["alert"] == utc
    assert checked_message({"type": "alert", "alert": zoneless}, NOON, 300.0)["alert"] == utc
    alert_record(zoneless)
    # The alerts topic, the door other tools write, keeps to Alertmanager's rule (and the
    # report reads it as the worker does) ...
    with pytest.raises(EventError, match="lower-case 't' or 'z'"):
        alert_record(lower)
    # ... the routed and corroboration topics, citybrain's own, also read what an earlier
    # worker wrote there (t146), written on in RFC 3339 UTC.
    lower_utc = {**lower, "started_at": "2026-01-01T12:00:00Z"}
    assert routed_fields({"alert": lower, "route": ROUTE})["alert"] == lower_utc
    assert checked_message({"type": "alert", "alert": lower}, NOON, 300.0)["alert"] == lower_utc
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
    utc = {**alert, "started_at": "2026-01-01T12:00:00Z"}
    assert read_muted(orjson.dumps(entry)) == {**entry, "alert": utc}
    assert alert_fields(alert, stored=True) == utc
    # And in flight on citybrain's own topics, written by a worker before t140 (t146:
    # an upgraded worker dead-lettered it as bad_routed, and the incident's run never
    # opened; bad_alert on the corroboration topic): read as that worker read it.
    assert routed_fields({"alert": alert, "route": ROUTE})["alert"] == utc
    assert checked_message({"type": "alert", "alert": alert}, NOON, 300.0)["alert"] == utc
    # Not on the alerts topic, the external door: there it is Alertmanager's rule.
    with pytest.raises(EventError):
        checked_alert(alert)
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


# t144: the readers of an alert's times downstream of the doors.
EARLIER_SPELLINGS = [
    "2026-01-01t12:00:00z",
    "2026-01-01 12:00:00Z",
    "2026-01-01T13:00:00+0100",
    "2026-01-01T13:00+01",
]


@pytest.mark.parametrize("text", EARLIER_SPELLINGS)
def test_a_muted_alert_an_earlier_worker_stored_is_released_to_a_routed_door_that_takes_it(
    text: str,
) -> None:
    # Released from the muted table (Alerting._recheck -> _route), the stored alert goes
    # to the routed door, which since t140 refuses these spellings: before t144 its
    # message was dead-lettered bad_routed and no run opened.
    entry = {"alert": {**ALERT, "started_at": text}, "mute": "silenced", "by": "s-1", "since": 1.0}
    released = read_muted(orjson.dumps(entry))["alert"]
    routed = routed_fields({"alert": released, "route": ROUTE})["alert"]
    assert routed["started_at"] == "2026-01-01T12:00:00Z"
    assert alert_time(routed["started_at"], "started_at") == NOON


@pytest.mark.parametrize("text", EARLIER_SPELLINGS)
def test_a_held_alert_an_earlier_worker_stored_is_forwarded_to_an_alerts_door_that_takes_it(
    text: str,
) -> None:
    # An area's held alert (and its held resolution), released by a mark or the grace's
    # end, goes to the alerts topic; the alerts door refused these spellings (bad_alert).
    from streams.corroborating import read_area_state

    firing = {**ALERT, "started_at": text}
    resolved = {**firing, "status": "resolved", "ended_at": text}
    state = {
        "marks": {},
        "held": {"al-1": {"alert": firing, "held_at": NOON, "resolved": resolved}},
        "labelled": {},
        "newest": None,
    }
    held = read_area_state(orjson.dumps(state))["held"]["al-1"]
    for doc in (held["alert"], held["resolved"]):
        taken = checked_alert(doc)[0]
        assert taken["started_at"] == "2026-01-01T12:00:00Z"
        assert alert_time(taken["started_at"], "started_at") == NOON


# The oddest spellings the door takes: (started_at, its instant, an ended_at that sorts
# before it as text yet is 30 minutes after it, its instant).
ODDEST = [
    ("2026-01-01 09:00:00", NOON - 3 * 3600, "2026-01-01T09:30:00+00:00", NOON - 2.5 * 3600),
    ("2026-01-01T9:00:00+01:60", NOON - 5 * 3600, "2026-01-01 07:30:00", NOON - 4.5 * 3600),
]


@pytest.mark.parametrize(("started", "start", "ended", "end"), ODDEST)
def test_an_alert_of_an_odd_spelling_is_routed_its_run_opened_acked_and_resolved(
    started: str, start: float, ended: str, end: float, grid: Grid
) -> None:
    from playbooks.engine import PlaybookEngine
    from playbooks.loader import PLAYBOOK_DIR, default_routing_path, load_playbooks, load_routing
    from streams.alerting import _route_doc
    from streams.response import _event_time, _too_old_for

    playbooks = load_playbooks(PLAYBOOK_DIR)
    router = load_routing(default_routing_path(), playbooks)
    labels = {"alert_id": "al-1", "kind": "water_level", "severity": "major"}
    labels |= {"sensor_id": "gauge-1", "grid_cell": "c-bridge", "source": "sensor"}
    # The alerts door: the time passed on as RFC 3339 in UTC, the door's instant.
    alert, checked = checked_alert({**ALERT, "labels": labels, "started_at": started})
    assert alert["started_at"] == format_ts(start)
    decision = router.decide(checked, [], [], start + 60)
    assert decision.mute is None and decision.routes
    route = decision.routes[0]
    # The routed door takes what the alerts door passed on, as it is; so does an
    # earlier worker's rule (a group whose partition it still owns).
    routed = routed_fields({"alert": alert, "route": _route_doc(route)})["alert"]
    assert routed == alert
    assert parse_ts(routed["started_at"]) == start
    # The group's wait and the run's opening (how old an offered report may be) read
    # the same instant.
    wait = max(route.group_wait, 1.0)
    assert waited_out(routed, wait, start + wait + 1)
    assert not waited_out(routed, wait, start + wait - 1)
    assert _event_time(routed["started_at"]) == start
    assert _too_old_for(start - 86_400 - 1, start) is not None
    assert _too_old_for(start - 60, _event_time(routed["started_at"])) is None
    # Its run opened, acknowledged and resolved; the durations from the run's times.
    engine = PlaybookEngine(playbooks[route.playbook], grid)
    opened = start + 60
    run, _ = engine.new_run("grp-0000000000000001.1", routed, opened)
    run, _ = engine.acknowledge(run, "bridge community station", opened + 120)
    assert run.acknowledged_at is not None and run.acknowledged_at - run.created_at == 120
    # Its resolution: an ended_at that sorts before started_at as text, 30 min after it.
    resolution = {**ALERT, "labels": labels, "status": "resolved"}
    resolution |= {"started_at": started, "ended_at": ended}
    done = checked_alert(resolution)[0]
    assert (done["started_at"], done["ended_at"]) == (format_ts(start), format_ts(end))
    assert alert_time(done["ended_at"], "ended_at") - alert_time(done["started_at"], "x") == 1800
    run, _ = engine.alert_resolved(run, "al-1", opened + 300)
    run, _ = engine.resolve(run, "bridge community station", "cleared", opened + 600)
    assert run.status == "resolved"
    assert run.resolved_at is not None and run.resolved_at - run.created_at == 600


def test_the_demo_summary_lists_alert_times_in_utc_and_in_time_order() -> None:
    # t144: the summary kept an alert's times as sent: listed under "event time (UTC)"
    # as "2026-01-01 9:00:00+0" (the text cut at 16), and ordered as text, so an alert
    # at 07:00 UTC (T9:00:00+01:60) came after one at 09:00 UTC (a space sorts first).
    import io

    from rich.console import Console

    from citybrain.demo import SUMMARY_COUNTS, _print_summary, alert_entries

    oddest = "2026-01-01T9:00:00+01:60"  # 07:00 UTC
    docs = [
        {**ALERT, "alert_id": "al-a", "started_at": "2026-01-01 09:00:00"},
        {**ALERT, "alert_id": "al-b", "started_at": oddest},
        {**ALERT, "alert_id": "al-c", "started_at": "2026-01-01T08:30:00,5Z"},
        {**ALERT, "alert_id": "al-b", "status": "resolved", "started_at": oddest}
        | {"ended_at": "2026-01-01 07:30:00"},
    ]
    for doc in docs:
        alert_record(doc)  # as the summary reads the alerts topic
    listed = alert_entries(docs, [], {})
    assert [(a["id"], a["first_event_time"], a["last_event_time"]) for a in listed] == [
        ("al-b", "2026-01-01T07:00:00Z", "2026-01-01T07:30:00Z"),
        ("al-c", "2026-01-01T08:30:00.5Z", None),
        ("al-a", "2026-01-01T09:00:00Z", None),
    ]
    out = io.StringIO()
    summary = {key: 0 for key in SUMMARY_COUNTS} | {"alert_list": listed, "known_events": []}
    _print_summary(Console(file=out, width=200), summary)
    rows = [line.split("  ")[0] for line in out.getvalue().splitlines() if "2026" in line]
    assert rows == ["2026-01-01 07:00", "2026-01-01 08:30", "2026-01-01 09:00"], out.getvalue()


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00+00:00", "0999-06-01T12:00:00.5+01:00", "0100-03-01 00:00:00"]
)
def test_an_alert_time_before_the_year_1000_is_written_back_in_a_form_read_back(
    text: str,
) -> None:
    # t171: %Y wrote the year 1 as "1" and 999 as "999": "1-01-01T00:00:00Z", which no
    # reader of an alert time takes (the doors refuse times before 1990 first, but a
    # stored alert's read-back writes what it took the same way).
    written = alert_time_text(text)
    assert UTC_TEXT.fullmatch(written), written
    assert alert_time_ns(written) == alert_time_ns(text)
