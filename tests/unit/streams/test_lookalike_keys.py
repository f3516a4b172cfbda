"""A key that looks like a field without being it, on every door readings and reports
come through.

Before, such a key was ignored like any unknown one: ``{"v\\u0430lue": 2.5}`` (a
Cyrillic a) or ``{"val\\u0000ue": 2.5}`` was ``field "value" is missing``, nothing naming
the key the sender wrote (which looks right in every editor), and ``{"value": 1.5,
"v\\u0430lue": 2.5}`` was admitted as 1.5, the 2.5 dropped unsaid, on the worker's fast
path, the validator's and the MQTT ingest's. Now each is ``bad_json`` naming the key
with its odd character escaped, and costs only its own reading."""

from __future__ import annotations

from typing import Any

import pytest

from citybrain.ingest.mapping import MqttMapping
from playbooks.grid import Grid
from streams.alerting import checked_alert
from streams.api import ApiError, body_fields
from streams.corroboration import checked_message
from streams.errors import EventError, show
from streams.events import (
    EventValidator,
    IncidentReport,
    PackedError,
    Reading,
    key_skeleton,
    lookalike_key,
)
from streams.response import command_fields, routed_fields
from tests.unit.streams.test_columns import assert_batch_agrees, batched, good, home_of_gauge
from tests.unit.streams.test_poison_pills import NOW
from tests.unit.streams.test_routed_admission import ALERT

CYRILLIC_A = good(1).replace(b'"value": 1.5', '"v\u0430lue": 1.5'.encode())
ESCAPED_NUL = good(1).replace(b'"value": 1.5', b'"val\\u0000ue": 1.5')
BESIDE = good(1).replace(b'"value": 1.5', '"value": 1.5, "v\u0430lue": 2.5'.encode())
CASE = good(1).replace(b'"value": 1.5', b'"value": 1.5, "Value": 2.5')


@pytest.mark.parametrize(
    ("key", "skeleton"),
    [
        ("v\u0430lue", "value"),  # Cyrillic a
        ("val\x00ue", "value"),  # NUL
        ("va\u200blue", "value"),  # zero-width space
        ("\uff56\uff41\uff4c\uff55\uff45", "value"),  # fullwidth
        (" Value ", "value"),
        ("gr\u0456d_cell", "grid_cell"),  # Cyrillic i
        ("note", "note"),
    ],
)
def test_a_key_is_seen_as_a_reader_sees_it(key: str, skeleton: str) -> None:
    assert key_skeleton(key) == skeleton


def test_other_keys_and_long_keys_are_left_alone() -> None:
    assert lookalike_key({"value": 1, "note": "x"}, frozenset({"value"})) is None
    assert lookalike_key({"\x00" * 10_000 + "value": 1}, frozenset({"value"})) is None
    assert lookalike_key({"v\u0430lue": 1}, frozenset({"value"})) == ("v\u0430lue", "value")


@pytest.mark.parametrize(
    ("raw", "field", "said"),
    [
        (CYRILLIC_A, "v\\u0430lue", "U+0430 CYRILLIC SMALL LETTER A at 1"),
        (ESCAPED_NUL, "val\\x00ue", "U+0000 a control character at 3"),
        (BESIDE, "v\\u0430lue", "'value' is given too: which is meant?"),
        (CASE, "Value", "letters in another case"),
    ],
)
def test_a_reading_with_a_lookalike_key_is_refused_naming_it(
    grid: Grid, raw: bytes, field: str, said: str
) -> None:
    assert raw != good(1)
    with pytest.raises(EventError) as caught:
        EventValidator(grid).readings(raw, NOW)
    assert (caught.value.code, caught.value.field) == ("bad_json", field)
    assert str(caught.value).startswith(f'field "{field}" is ')
    assert "looks like 'value' but is not it" in str(caught.value) and said in str(caught.value)
    # The batch's fast path refuses it too (BESIDE and CASE were admitted as 1.5), and
    # the readings around it go on.
    values = [good(0), raw, good(2)]
    incoming, refused = batched(grid, values, [home_of_gauge()] * 3)
    assert [i.offset for i in incoming] == [100, 102]
    assert [(i, code) for i, code, *_ in refused] == [(1, "bad_json")]
    assert_batch_agrees(grid, values, [home_of_gauge()] * 3)


def test_a_packed_reading_with_a_lookalike_key_costs_only_itself(grid: Grid) -> None:
    pack = b'{"schema": "readings/1", "readings": [' + b", ".join([good(4), BESIDE, good(6)])
    pack += b"]}"
    is_pack, items = EventValidator(grid).readings(pack, NOW)
    assert is_pack and [type(i) for i in items] == [Reading, PackedError, Reading]
    assert isinstance(items[1], PackedError)
    assert items[1].error.field == "readings[1].v\\u0430lue"
    incoming, refused = batched(grid, [pack], [home_of_gauge()])
    assert [(i.offset, i.index) for i in incoming] == [(100, 0), (100, 2)]
    assert [(code, index) for _, code, _, index, _ in refused] == [("bad_json", 1)]


def test_a_pack_with_a_lookalike_readings_key_is_refused_whole(grid: Grid) -> None:
    pack = b'{"schema": "readings/1", "readings": [' + good(4) + b'], "r\\u0435adings": ['
    pack += good(5) + b"]}"
    with pytest.raises(EventError) as caught:
        EventValidator(grid).readings(pack, NOW)
    assert caught.value.field == "r\\u0435adings"


def test_a_report_with_a_lookalike_key_is_refused_naming_it(grid: Grid) -> None:
    report = IncidentReport(NOW - 60, "r-1", "Noise", "loud", "app", "c-bridge").to_json()
    odd = report.replace(b'"text"', '"t\u0435xt"'.encode())
    assert odd != report
    with pytest.raises(EventError) as caught:
        EventValidator(grid).incident(odd, NOW)
    assert (caught.value.code, caught.value.field) == ("bad_json", "t\\u0435xt")
    assert EventValidator(grid).incident(report, NOW).report_id == "r-1"


@pytest.mark.parametrize(
    "payload",
    [
        '{"v\u0430lue": 2.5}'.encode(),
        b'{"val\\u0000ue": 2.5}',
        '{"value": 1, "v\u0430lue": 9}'.encode(),
    ],
)
def test_an_mqtt_payload_with_a_lookalike_key_is_refused_naming_it(
    grid: Grid, payload: bytes
) -> None:
    mapping = MqttMapping.build(grid)
    sensor = next(iter(grid.sensors.values()))
    topic = f"city/east/{sensor.id}/{sensor.kind}"
    with pytest.raises(EventError) as caught:
        mapping.to_document(topic, payload, NOW)
    assert caught.value.code == "bad_json"
    assert "looks like 'value' but is not it" in str(caught.value)
    assert mapping.to_document(topic, b'{"value": 2.5, "note": "x"}', NOW)["value"] == 2.5


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("g\u0430uge-1", "'g\\u0430uge-1'"),  # beside ASCII letters: escaped
        (
            "\u041f\u0440\u0438\u0432\u0435\u0442",
            "'\u041f\u0440\u0438\u0432\u0435\u0442'",
        ),  # Russian text: as written
        ("Ca\u00f1ada", "'Ca\u00f1ada'"),
        ("gauge-1", "'gauge-1'"),
    ],
)
def test_a_value_with_look_alike_letters_is_shown_with_them_escaped(value: str, shown: str) -> None:
    # 'gаuge-1': sensor is not registered (did you mean 'gauge-1'?) showed two identical
    # texts; the CSV header 'timestamp,...,vаlue,...' did the same.
    assert show(value) == shown


@pytest.mark.parametrize(
    ("name", "shown"), [("n\u043ete", "n\\u043ete"), ("no\x00te", "no\\x00te"), ("nte", "nte")]
)
def test_an_operator_api_field_it_does_not_take_is_named_so_it_can_be_told_apart(
    name: str, shown: str
) -> None:
    # 'field "nоte" is 'x': ack takes no such field … (did you mean 'note'?)' named a
    # field that read exactly as the one it suggested.
    with pytest.raises(ApiError) as caught:
        body_fields({name: "x"}, ("note", "reason"), "ack")
    assert str(caught.value).startswith(f"field \"{shown}\" is 'x': ack takes no such field")


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ({"id": "c-1", "run_id": "g.1", "acti\u043en": "ack"}, "acti\\u043en"),
        ({"id": "c-1", "run_id": "g.1", "action": "ack", "N\u043ete": "x"}, "N\\u043ete"),
    ],
)
def test_a_command_with_a_lookalike_key_is_refused_naming_it(
    command: dict[str, str], field: str
) -> None:
    # An acknowledgement written by a third party with "acti\u043en" was 'field "action"
    # is missing'; one with "N\u043ete" acknowledged without its note, unsaid.
    with pytest.raises(EventError) as caught:
        command_fields(command)
    assert (caught.value.code, caught.value.field) == ("bad_command", field)
    ok = {"id": "c-1", "run_id": "g.1", "action": "ack", "note": "x", "data": {}}
    assert command_fields(ok) == ok  # other keys are carried as they are


# The worker's own topics, written by another tool (an operator script): a key that looks
# like a field was ignored there too (t99). Each part of each message is checked.
ROUTE = {"id": "r.2", "playbook": "flash-flood", "group_wait": 0, "group_interval": 1}
ROUTE = {**ROUTE, "repeat_interval": 3600}
OFFER = {"report_id": "r-1", "channel": "app", "grid_cell": "c-top", "ts": 1.7e9, "late": False}


def without(doc: dict[str, Any], name: str, key: str) -> dict[str, Any]:
    """``doc`` with its field ``name`` written under ``key`` instead."""
    return {key if k == name else k: v for k, v in doc.items()}


@pytest.mark.parametrize(
    ("alert", "field"),
    [
        ({**ALERT, "Severity": "critical"}, "Severity"),  # beside the real one
        (without(ALERT, "severity", "Severity"), "Severity"),
        (without(ALERT, "severity", "sev\u200berity"), "sev\\u200berity"),
        (without(ALERT, "sensor_id", "sensor_\u0456d"), "sensor_\\u0456d"),  # Cyrillic i
        ({**ALERT, "Ended_at": "2026-11-01T11:00:00Z"}, "Ended_at"),  # was read as open
        ({**ALERT, "\uff52\uff45\uff50\uff4f\uff52\uff54\uff53": []}, "\\uff52\\uff45"),
    ],
)
def test_an_alert_with_a_lookalike_key_is_refused_naming_it(
    alert: dict[str, Any], field: str
) -> None:
    # {"Severity": "critical", "severity": "minor"} was routed as minor, and an alert with
    # only "sev\u200berity" said 'field "severity" is missing', nothing naming the key.
    with pytest.raises(EventError) as caught:
        checked_alert(alert)
    assert caught.value.code == "bad_alert"
    assert caught.value.field is not None and caught.value.field.startswith(field)
    assert checked_alert({**ALERT, "note": "x"})[0]["note"] == "x"  # others carried


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"alert": ALERT, "Route": ROUTE, "route": ROUTE}, "Route"),
        ({"alert": without(ALERT, "status", "st\u0430tus"), "route": ROUTE}, "alert.st\\u0430tus"),
        ({"alert": ALERT, "route": without(ROUTE, "playbook", "Playbook")}, "route.Playbook"),
        ({"alert": ALERT, "route": {**ROUTE, "group\u200b_wait": 600}}, "route.group\\u200b_wait"),
        ({"report": {**OFFER, "Late": True}}, "report.Late"),
        (
            {"muted": {"alert\u00ad_id": "a"}, "route": ROUTE, "grouped_at": 1e9},
            "muted.alert\\xad_id",
        ),
        ({"alert": ALERT, "route": ROUTE, "Grouped_at": 1.7e9}, "Grouped_at"),
    ],
)
def test_a_routed_message_with_a_lookalike_key_is_refused_naming_it(
    doc: dict[str, Any], field: str
) -> None:
    with pytest.raises(EventError) as caught:
        routed_fields(doc)
    assert caught.value.code == "bad_routed"
    assert caught.value.field is not None and caught.value.field.startswith(field)


@pytest.mark.parametrize(
    ("message", "code", "field"),
    [
        ({"type": "mark", "sensor_id": "g", "ts": 1.7e9, "Score": 0.9}, "bad_mark", "Score"),
        ({"type": "mark", "sensor_id": "g", "t\u200bs": 1.7e9, "score": 0.9}, "bad_mark", "t\\u"),
        ({"type": "alert", "Alert": ALERT}, "bad_alert", "Alert"),
        ({"Type": "mark", "sensor_id": "g", "ts": 1.7e9}, "processing_error", "Type"),
    ],
)
def test_a_corroboration_message_with_a_lookalike_key_is_refused_naming_it(
    message: dict[str, Any], code: str, field: str
) -> None:
    with pytest.raises(EventError) as caught:
        checked_message(message, 1.8e9, 300.0)
    assert caught.value.code == code
    assert caught.value.field is not None and caught.value.field.startswith(field)


def test_an_answer_with_a_lookalike_key_is_refused_naming_it() -> None:
    # An answer's "C\u043emment" was dropped unsaid, its "Satisfied" said missing by the
    # engine with nothing naming the key sent.
    answer = {"id": "c-1", "run_id": "g.1", "action": "answer", "report_id": "r-1"}
    for key, field in (("C\u043emment", "C\\u043emment"), ("Satisfied", "Satisfied")):
        with pytest.raises(EventError) as caught:
            command_fields({**answer, "satisfied": True, key: False})
        assert (caught.value.code, caught.value.field) == ("bad_command", field)
    ok = {**answer, "satisfied": False, "comment": "still flooded"}
    assert command_fields(ok) == ok
