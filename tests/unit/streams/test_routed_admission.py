"""What the routed and alerts agents admit is what their tables read back (helper t59).

A routed message is stored as its group's route and run: one whose route the ``groups``
read-back refuses (a ``group_wait`` of NaN or -5, no ``group_interval``) opened a run
whose group was dropped as ``bad_shape`` at the next start, and failed that run's
deadline check every tick; ``{"alert": {}, "route": {}}`` was a KeyError with a
traceback. An alert whose ``reports`` were ``"x"`` was stored while muted and dropped at
read-back with no dead letter. Both are refused on the way in, by the read-back's rule."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from streams.alerting import checked_alert, read_muted
from streams.context import read_group, route_fault
from streams.corroboration import checked_message
from streams.errors import EventError
from streams.response import routed_fields
from streams.tables import UnreadableEntryError

ROUTE = {
    "id": "root.2",
    "playbook": "flash-flood",
    "group_wait": 0,
    "group_interval": 300,
    "repeat_interval": 3600,
}
ALERT = {
    "schema": "alert/1",
    "alert_id": "al-1",
    "status": "firing",
    "sensor_id": "gauge-1",
    "kind": "water_level",
    "grid_cell": "c-bridge",
    "severity": "major",
    "score": 0.9,
    "started_at": "2026-11-01T10:00:00Z",
    "labels": {"alert_id": "al-1", "kind": "water_level", "source": "sensor"},
}
REPORT = {"report_id": "r-1", "channel": "app", "grid_cell": "c-top", "ts": 1.7e9, "late": False}


def refused(doc: Any) -> EventError:
    with pytest.raises(EventError) as caught:
        routed_fields(doc)
    return caught.value


def test_the_worker_s_own_routed_messages_are_taken_as_they_are() -> None:
    for doc in (
        {"alert": ALERT, "route": ROUTE},
        {"alert": {**ALERT, "reports": [{"report_id": "r", "channel": "app"}]}, "route": ROUTE},
        {"report": REPORT, "route": {"id": "root.7", "playbook": "citizen-report-burst"}},
        {"report": {**REPORT, "ts": None}},
    ):
        assert routed_fields(doc) is doc


BAD_ROUTES = [
    ({**ROUTE, "group_wait": math.nan}, "route.group_wait", "nan"),
    ({**ROUTE, "group_wait": math.inf}, "route.group_wait", "inf"),
    ({**ROUTE, "group_wait": -5}, "route.group_wait", "-5"),
    ({**ROUTE, "group_wait": "abc"}, "route.group_wait", "'abc'"),
    ({**ROUTE, "group_wait": True}, "route.group_wait", "true"),
    ({**ROUTE, "group_wait": 1e300}, "route.group_wait", "1e+300"),
    ({**ROUTE, "repeat_interval": 10**400}, "route.repeat_interval", "1000"),
    ({k: v for k, v in ROUTE.items() if k != "group_interval"}, "route.group_interval", ""),
    ({k: v for k, v in ROUTE.items() if k != "group_wait"}, "route.group_wait", ""),
    ({**ROUTE, "playbook": 5}, "route.playbook", "5"),
    ({**ROUTE, "playbook": ""}, "route.playbook", "''"),
    ({k: v for k, v in ROUTE.items() if k != "id"}, "route.id", ""),
    ({}, "route.group_interval", ""),
    ("x", "route", "'x'"),
]


@pytest.mark.parametrize(("route", "field", "shown"), BAD_ROUTES)
def test_a_route_of_another_shape_is_bad_routed_naming_the_field(
    route: Any, field: str, shown: str
) -> None:
    error = refused({"alert": ALERT, "route": route})
    assert error.code == "bad_routed" and error.field == field
    assert str(error).startswith(f'field "{field}" is {shown}'), str(error)


@pytest.mark.parametrize(("route", "field", "shown"), BAD_ROUTES)
def test_every_route_the_groups_read_back_refuses_is_refused_on_the_way_in(
    route: Any, field: str, shown: str
) -> None:
    # The one rule: a group stored from a routed message always reads back.
    good = {"generation": 1, "run": None, "seen": [], "commands": [], "route": ROUTE}
    assert read_group(orjson.dumps(good)) == good
    if isinstance(route, dict):
        assert route_fault(route, routed=True) is not None
        try:
            stored = orjson.dumps({**good, "route": route})
        except orjson.JSONEncodeError:  # 10**400: only a foreign producer writes it
            return
        if route_fault(route) is not None:
            with pytest.raises(UnreadableEntryError):
                read_group(stored)


NOT_ROUTED = 'a routed message is an object with "alert" and "route", "muted" and "route", or'


@pytest.mark.parametrize(
    ("doc", "said"),
    [
        ([], NOT_ROUTED),
        ({"alert": ALERT}, NOT_ROUTED),
        ({"alert": {}, "route": ROUTE}, 'field "alert.alert_id" is missing: expected a non-'),
        ({"alert": "x", "route": ROUTE}, "field \"alert\" is 'x': expected a JSON object"),
        ({"alert": {**ALERT, "alert_id": 5}, "route": ROUTE}, 'field "alert.alert_id" is 5'),
        ({"alert": {**ALERT, "status": "weird"}, "route": ROUTE}, 'field "alert.status" is'),
        ({"alert": {**ALERT, "started_at": 5}, "route": ROUTE}, 'field "alert.started_at" is 5'),
        ({"alert": {**ALERT, "schema": "alert/99"}, "route": ROUTE}, 'field "alert.schema" is'),
        ({"alert": {**ALERT, "labels": []}, "route": ROUTE}, 'field "alert.labels" is []: label'),
        ({"report": "x"}, "field \"report\" is 'x': expected a JSON object"),
        ({"report": {**REPORT, "report_id": 5}}, 'field "report.report_id" is 5: expected'),
        ({"report": {"channel": "app"}}, 'field "report.report_id" is missing'),
        ({"report": {**REPORT, "channel": None}}, 'field "report.channel" is null: expected'),
        # t152: which of a report's offers this is, 0 to offers - 1.
        ({"report": {**REPORT, "offer": 1}}, 'field "report.offer" is 1: expected a whole'),
        ({"report": {**REPORT, "offers": 3, "offer": 3}}, 'field "report.offer" is 3: expected'),
        ({"report": {**REPORT, "offers": 3, "offer": "0"}}, "field \"report.offer\" is '0'"),
    ],
)
def test_a_routed_message_not_of_the_worker_s_shape_is_bad_routed_naming_the_field(
    doc: Any, said: str
) -> None:
    error = refused(doc)
    assert error.code == "bad_routed"
    assert str(error).startswith(said), str(error)


def test_an_offered_report_at_no_date_is_bad_reports_whether_or_not_a_run_is_open() -> None:
    error = refused({"report": {**REPORT, "ts": -1e308}})
    assert error.code == "bad_reports" and error.field == "report.ts"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"schema": "alert/99"}, "field \"schema\" is 'alert/99': expected 'alert/1'"),
        ({"labels": []}, 'field "labels" is []: labels are a list, expected a mapping'),
        ({"labels": {"a": 5}}, 'field "labels" is {"a": 5}: label \'a\' is 5, expected text'),
        ({"reports": "x"}, "field \"reports\" is 'x': expected a list (or null)"),
        ({"reports": ["x"]}, 'field "reports" is ["x"]: alert reports[0] is \'x\', expected'),
    ],
)
def test_an_alert_the_muted_read_back_would_refuse_is_bad_alert_on_the_way_in(
    change: dict[str, Any], said: str
) -> None:
    alert = {**ALERT, **change}
    with pytest.raises(EventError) as caught:
        checked_alert(alert)
    assert caught.value.code == "bad_alert" and str(caught.value).startswith(said)
    entry = {"alert": alert, "mute": "silenced", "by": "s-1", "since": 1.7e9}
    with pytest.raises(UnreadableEntryError):
        read_muted(orjson.dumps(entry))


def test_an_alert_without_labels_is_named_and_one_without_schema_is_alert_1() -> None:
    with pytest.raises(EventError, match='field "labels" is missing'):
        checked_alert({k: v for k, v in ALERT.items() if k != "labels"})
    alert = {k: v for k, v in ALERT.items() if k != "schema"}
    assert checked_alert(alert) == (alert, ALERT["labels"])


def test_a_corroboration_alert_that_is_no_object_is_named_with_its_value() -> None:
    # It was said as 'field "alert" is null' for the text "x".
    with pytest.raises(EventError) as caught:
        checked_message({"type": "alert", "alert": "x"}, 1.8e9, 300)
    assert str(caught.value) == "field \"alert\" is 'x': expected a JSON object"
