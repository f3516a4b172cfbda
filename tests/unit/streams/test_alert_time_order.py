"""An alert that ends before it starts is refused at every door that takes alerts (t139).

Alertmanager 0.25's API (``api/v2/api.go`` ``postAlertsHandler``, then prometheus/common
``model.Alert.Validate``) refuses an alert whose ``endsAt`` is before its ``startsAt``:
"start time must be before end time" (strictly: the same time is fine). citybrain maps
``started_at`` to ``startsAt`` and ``ended_at`` to ``endsAt``, and routed such an alert. It
is now ``bad_alert`` naming ``ended_at``, compared to the nanosecond as Go compares them;
an alert stored by an earlier worker still reads back. The real Alertmanager's answers
are compared in tests/integration/test_alert_label_names_differential.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from citybrain.report import alert_record
from streams.alerting import checked_alert, read_muted
from streams.corroboration import checked_message
from streams.errors import EventError
from streams.events import alert_time_ns, alert_times_utc, parse_ts
from streams.response import routed_fields
from tests.unit.streams.test_routed_admission import ROUTE

ALERT: dict[str, Any] = {
    "schema": "alert/1",
    "alert_id": "al-1",
    "status": "resolved",
    "sensor_id": "gauge-1",
    "kind": "water_level",
    "grid_cell": "c-bridge",
    "severity": "major",
    "score": 0.9,
    "labels": {"alert_id": "al-1", "kind": "water_level", "source": "sensor"},
}
REASON = '(Alertmanager\'s API refuses such an alert: "start time must be before end time")'

# (started_at, ended_at) Alertmanager refuses: the end strictly before the start.
BEFORE = [
    ("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"),
    ("2026-11-01T10:00:01Z", "2026-11-01T10:00:00Z"),
    # Within a microsecond: one time to a float of microseconds (taken before), two in Go.
    ("2026-11-01T10:00:00.0000009Z", "2026-11-01T10:00:00.0000001Z"),
    ("2026-11-01T10:00:00.000000001Z", "2026-11-01T10:00:00Z"),
    # Another offset, one nanosecond before; a comma, a space (no zone: UTC), no seconds.
    ("2026-11-01T11:00:00.000000001+01:00", "2026-11-01T10:00:00Z"),
    ("2026-11-01 10:00:00,5", "2026-11-01T10:00:00.499999999Z"),
    ("2026-11-01T10:01Z", "2026-11-01T10:00:59.999999999Z"),
]
# (started_at, ended_at) it takes: the same time, in any spelling; later; either left out.
TAKEN = [
    ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00Z"),
    ("2026-11-01T11:00:00+01:00", "2026-11-01T10:00:00Z"),
    ("2026-11-01T10:00:00.1234567891Z", "2026-11-01T10:00:00.123456789Z"),  # ns kept, 9 digits
    ("2026-11-01T10:00:00Z", "2026-11-01T10:00:00.000000001Z"),
    ("2026-11-01T10:01Z", "2026-11-01T10:01:00.000Z"),
    (None, "2026-11-01T10:00:00Z"),
    ("2026-11-01T10:00:00Z", None),
]


def times(started: str | None, ended: str | None, **over: Any) -> dict[str, Any]:
    return {**ALERT, "started_at": started, "ended_at": ended, **over}


@pytest.mark.parametrize(("started", "ended"), BEFORE)
@pytest.mark.parametrize("status", ["resolved", "firing"])
def test_an_alert_ending_before_it_starts_is_bad_alert_naming_ended_at(
    started: str, ended: str, status: str
) -> None:
    with pytest.raises(EventError) as caught:
        checked_alert(times(started, ended, status=status))
    error = caught.value
    assert (error.code, error.field, error.value) == ("bad_alert", "ended_at", ended)
    assert str(error) == f"field \"ended_at\" is '{ended}': before started_at '{started}' {REASON}"


@pytest.mark.parametrize(("started", "ended"), TAKEN)
def test_an_alert_ending_when_or_after_it_starts_is_taken(
    started: str | None, ended: str | None
) -> None:
    alert = times(started, ended)
    taken = checked_alert(alert)[0]
    # Passed on as RFC 3339 in UTC (t144), each time the same instant to the nanosecond.
    assert taken == alert_times_utc(alert)
    for name in ("started_at", "ended_at"):
        if alert[name] is not None:
            assert alert_time_ns(taken[name]) == alert_time_ns(alert[name])


def test_the_times_are_compared_as_go_reads_them_to_the_nanosecond() -> None:
    assert alert_time_ns("2026-11-01T10:00:00Z") == 1_793_527_200 * 10**9
    assert alert_time_ns("2026-11-01T10:00:00.0000009Z") == 1_793_527_200 * 10**9 + 900
    assert alert_time_ns("2026-11-01T11:00:00,25+01:00") == 1_793_527_200 * 10**9 + 250_000_000
    # Digits past the ninth are dropped, as Go's time.Parse drops them (not rounded).
    assert alert_time_ns("2026-11-01T10:00:00.9999999999Z") == 1_793_527_200 * 10**9 + 999_999_999
    # Why not the floats every other check reads (microseconds at best): there the two
    # times 800 ns apart are one.
    started, ended = BEFORE[2]
    assert parse_ts(started) == parse_ts(ended)
    assert alert_time_ns(started) - alert_time_ns(ended) == 800


def test_the_routed_door_takes_it_as_an_earlier_worker_wrote_it() -> None:
    # The routed topic is citybrain's own: it reads what a worker before t139 routed, an
    # alert ending before it starts included (t146: t139 refused it there too, so a
    # worker upgraded while such a message was in flight dead-lettered it, and its run
    # never had the resolution).
    bad = times("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z")
    assert routed_fields({"alert": bad, "route": ROUTE})["alert"] == bad
    # The corroboration stage forwards its alerts to the alerts topic, whose door
    # refuses it (Alertmanager's rule): refused where it comes in.
    said = "field \"alert.ended_at\" is '2026-01-01T00:00:00Z': before started_at "
    with pytest.raises(EventError) as caught:
        checked_message({"type": "alert", "alert": bad}, 1.8e9, 300.0)
    assert caught.value.code == "bad_alert" and str(caught.value).startswith(said)
    assert str(caught.value).endswith(REASON)
    # The report reads the alerts topic as the worker does and leaves such an alert out.
    with pytest.raises(EventError, match='field "ended_at"'):
        alert_record(bad)
    good = times("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")
    assert routed_fields({"alert": good, "route": ROUTE})["alert"] == good
    checked_message({"type": "alert", "alert": good}, 1.8e9, 300.0)


def test_the_times_are_checked_before_the_labels_as_alertmanager_checks_them() -> None:
    # model.Alert.Validate: the times first, then the label set.
    with pytest.raises(EventError) as caught:
        checked_alert(times("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", labels={}))
    assert caught.value.field == "ended_at"


def test_one_stored_by_an_earlier_worker_still_reads_back() -> None:
    # A muted firing alert stored before t139 (the muted table's read-back): state is not
    # dropped for the newer admission rule, as t138 kept the empty-label one.
    alert = times("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", status="firing")
    entry = {"alert": alert, "mute": "silenced", "by": "s-1", "since": 1.8e9, "noted": True}
    assert read_muted(orjson.dumps(entry)) == entry
    assert checked_alert(alert, stored=True)[0] == alert
