"""Request bodies of the HTTP ingest to readings, each on its own, errors naming fields."""

from __future__ import annotations

import json
import time
from email.message import Message

import orjson
import pytest

from citybrain.ingest.http import (
    MAX_BODY,
    MAX_ENTITY_LETTERS,
    BadBody,
    BodyReadings,
    _refusal,
    ngsi_readings,
    partly_refused_line,
    readings_from_body,
    refusal_text,
)
from citybrain.ingest.ngsi import NgsiMapping
from playbooks.grid import Grid
from streams.events import MAX_PACK_READINGS, EventValidator, decode_json
from tests.unit.citybrain.ingest.conftest import T_NOW, example

GOOD = {
    "ts": "2026-09-21T14:00:00Z",
    "sensor_id": "gauge-1",
    "kind": "water_level",
    "value": 2.1,
    "unit": "ft",
    "grid_cell": "c-bridge",
}


@pytest.fixture
def validator(ingest_grid: Grid) -> EventValidator:
    return EventValidator(ingest_grid)


DEEP = b"[" * 1000 + b"]" * 1000


def raw(body: object) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (
            b'{"schema": "reading/1", "value": NaN, '
            + raw(GOOD)[1:].replace(b'"value": 2.1, ', b""),
            "not_finite",
            "value",
        ),
        (
            raw({"schema": "reading/1", **GOOD, "value": 0}).replace(
                b'"value": 0', b'"value": 1' + b"0" * 400
            ),
            "out_of_range",
            "value",
        ),
    ],
)
def test_json_is_read_as_the_worker_reads_it(
    validator: EventValidator, body: bytes, code: str, field: str
) -> None:
    # bad_json "unexpected character" / "number is infinity" on the body before.
    with pytest.raises(BadBody) as err:
        readings_from_body(body, validator, T_NOW)
    assert [(e["code"], e["field"]) for e in err.value.errors] == [(code, field)]


def test_a_key_given_twice_is_refused_naming_it_and_where(
    validator: EventValidator, ingest_grid: Grid
) -> None:
    # Trial 13: {"value": 2.5, "value": 9999} was read as 9999 (the last wins, silently).
    body = raw([GOOD]).replace(b'"value": 2.1', b'"value": 2.1, "value": 9.9')
    with pytest.raises(BadBody) as err:
        readings_from_body(body, validator, T_NOW)
    [problem] = err.value.errors
    assert (problem["field"], problem["code"]) == ("readings[0]", "bad_json")
    assert problem["message"] == (
        "not valid JSON: key 'value' is given twice in one object (in readings[0]): which "
        "value is meant? (RFC 8259 section 4: names should be unique)"
    )
    entity = example("AirQualityObserved")
    notification = raw({"data": [entity]}).replace(
        b'"type": "AirQualityObserved"',
        b'"type": "AirQualityObserved", "type": "TrafficFlowObserved"',
    )
    with pytest.raises(BadBody) as err:
        ngsi_readings(notification, NgsiMapping(ingest_grid), validator, T_NOW)
    assert "key 'type' is given twice in one object (in data[0])" in err.value.errors[0]["message"]


OTHER = {**GOOD, "sensor_id": "gauge-2", "grid_cell": "c-mill"}


@pytest.mark.parametrize(
    ("body", "field", "said"),
    [
        # A key given twice in one reading of a list, of a pack.
        (
            raw([GOOD, {**OTHER, "value": 3}, OTHER]).replace(
                b'"value": 3', b'"value": 3, "value": 4'
            ),
            "readings[1]",
            "key 'value' is given twice in one object (in readings[1])",
        ),
        (
            raw({"schema": "readings/1", "readings": [GOOD, {**OTHER, "value": 3}, OTHER]}).replace(
                b'"value": 3', b'"value": 3, "value": 4'
            ),
            "readings[1]",
            "key 'value' is given twice in one object (in readings[1])",
        ),
        # A lone surrogate in one reading's text, a field or not.
        (
            raw([GOOD, {**OTHER, "note": "Q"}, OTHER]).replace(b'"Q"', b'"\\ud800"'),
            "readings[1].note",
            "a lone surrogate \\ud800 is not a character",
        ),
        (
            raw(
                {"schema": "readings/1", "readings": [GOOD, {**OTHER, "unit": "Q"}, OTHER]}
            ).replace(b'"Q"', b'"\\udc80"'),
            "readings[1].unit",
            "a lone surrogate \\udc80 is not a character",
        ),
    ],
)
def test_a_json_fault_inside_one_reading_costs_only_that_reading(
    validator: EventValidator, body: bytes, field: str, said: str
) -> None:
    """Before, the body was refused whole (400, nothing sent): the good readings around
    the bad one were lost for it, and a sender such as Orion does not retry a 4xx."""
    found = readings_from_body(body, validator, T_NOW)
    assert [(r.sensor_id, r.value) for r in found.readings] == [
        ("gauge-1", 2.1),
        ("gauge-2", 2.1),
    ]
    [bad] = found.refused
    assert (bad.problem["field"], bad.problem["code"]) == (field, "bad_json")
    assert said in bad.problem["message"]
    assert bad.index == 1 and json.loads(bad.payload)["sensor_id"] == "gauge-2"


@pytest.mark.parametrize(
    "body",
    [
        # The pack's own keys: which list is meant cannot be known.
        b'{"schema": "readings/1", "readings": ['
        + raw(GOOD)
        + b'], "readings": ['
        + raw(OTHER)
        + b"]}",
        raw({"schema": "readings/1", "readings": [GOOD], "from": "Q"}).replace(
            b'"Q"', b'"\\ud800"'
        ),
        # One reading as the body: it is the body.
        raw({"schema": "reading/1", **GOOD}).replace(b'"value": 2.1', b'"value": 2.1, "value": 3'),
    ],
)
def test_a_json_fault_outside_every_reading_refuses_the_body(
    validator: EventValidator, body: bytes
) -> None:
    with pytest.raises(BadBody) as err:
        readings_from_body(body, validator, T_NOW)
    assert [(e["field"], e["code"]) for e in err.value.errors] == [("body", "bad_json")]


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        (
            (b'"name": "Q"', b'"name": "Q", "name": "R"'),
            "data[1]",
            "key 'name' is given twice in one object (in data[1])",
        ),
        ((b'"Q"', b'"\\ud800"'), "data[1].name", "a lone surrogate \\ud800 is not a character"),
    ],
)
def test_a_json_fault_inside_one_entity_costs_only_that_entity(
    validator: EventValidator,
    ingest_grid: Grid,
    change: tuple[bytes, bytes],
    field: str,
    said: str,
) -> None:
    entity = example("AirQualityObserved")
    body = raw({"data": [entity, {**entity, "name": "Q"}]}).replace(*change)
    found = ngsi_readings(body, NgsiMapping(ingest_grid), validator, T_NOW)
    assert len(found.readings) == 1  # the first entity's, as alone
    [bad] = found.refused
    assert (bad.problem["field"], bad.problem["code"]) == (field, "bad_json")
    assert said in bad.problem["message"]
    assert json.loads(bad.payload)["id"] == entity["id"]


TOO_DEEP_NOTE = b"[" * 1100 + b"]" * 1100  # past decode_json's 1,024 levels


def body_of(shape: str, items: list[bytes]) -> bytes:
    """A body of the items as written (a list, a pack or a notification), white space
    around each as senders write it."""
    listed = b"[ " + b" ,\n ".join(items) + b" ]"
    if shape == "list":
        return listed
    if shape == "pack":
        return b'{"schema": "readings/1", "readings": ' + listed + b', "from": "gw-1"}'
    return b'{"subscriptionId": "s-1", "data": ' + listed + b"}"


def shaped(shape: str, ingest_grid: Grid, validator: EventValidator, body: bytes) -> BodyReadings:
    if shape == "ngsi":
        return ngsi_readings(body, NgsiMapping(ingest_grid), validator, T_NOW)
    return readings_from_body(body, validator, T_NOW)


def good_item(shape: str) -> bytes:
    return raw(example("AirQualityObserved") if shape == "ngsi" else GOOD)


def bad_item(shape: str, change: tuple[bytes, bytes]) -> bytes:
    if shape == "ngsi":
        entity = example("AirQualityObserved")
        entity["no2"]["value"] = 2.5
        return raw({**entity, "id": "other"}).replace(b'"value": 2.5', change[1], 1)
    return raw(OTHER).replace(*change, 1)


@pytest.mark.parametrize("shape", ["list", "pack", "ngsi"])
@pytest.mark.parametrize(
    ("change", "code"),
    [
        ((b'"value": 2.1', b'"value": NaN'), "not_finite"),
        ((b'"value": 2.1', b'"value": -Infinity'), "not_finite"),
        ((b'"value": 2.1', b'"value": 1e999'), "not_finite"),
        ((b'"value": 2.1', b'"value": 2.1, "value": 9999'), "bad_json"),
        ((b'"value": 2.1', b'"value": 2.1, "v\\u0061lue": 9999'), "bad_json"),
    ],
)
def test_a_refused_item_is_dead_lettered_as_its_sender_wrote_it(
    validator: EventValidator,
    ingest_grid: Grid,
    shape: str,
    change: tuple[bytes, bytes],
    code: str,
) -> None:
    """Trial 62: the dead letter was the parsed item written again, so NaN, -Infinity and
    1e999 came out as null and a key given twice as one value: the dead letter no longer
    showed the value its reason named. Now it is the item's own bytes."""
    bad = bad_item(shape, change)
    found = shaped(shape, ingest_grid, validator, body_of(shape, [good_item(shape), bad]))
    assert found.readings
    [refused] = found.refused
    assert refused.problem["code"] == code
    assert refused.payload == bad
    if b"1e999" in change[1]:  # t98: named as sent, not as the double it overflowed to
        assert "is 1e999:" in refused.problem["message"], refused.problem


@pytest.mark.parametrize("shape", ["list", "pack", "ngsi"])
def test_nesting_too_deep_inside_one_item_costs_only_that_item(
    validator: EventValidator, ingest_grid: Grid, shape: str
) -> None:
    """Trial 62: one reading (or entity) nested past 1,024 levels made the whole body a
    400, and the good readings around it were lost (Orion does not retry a 4xx)."""
    other = raw({**example("AirQualityObserved"), "id": "other"} if shape == "ngsi" else OTHER)
    deep = other.replace(b"{", b'{"note": ' + TOO_DEEP_NOTE + b", ", 1)
    items = [good_item(shape), deep, good_item(shape).replace(b"2.1", b"2.1 ")]
    found = shaped(shape, ingest_grid, validator, body_of(shape, items))
    where = "data[1]" if shape == "ngsi" else "readings[1]"
    assert found.readings
    [refused] = found.refused
    assert refused.problem == {
        "field": where,
        "code": "bad_json",
        "message": f"not valid JSON: nested deeper than 1024 levels (in {where})",
    }
    assert refused.payload == deep


@pytest.mark.parametrize("shape", ["list", "pack", "ngsi"])
@pytest.mark.parametrize(
    ("odd", "said"),
    [
        (b'"Ca\xf1ada"', "byte 0xf1 at offset"),  # a gateway's Latin-1
        (b'"\xff"', "byte 0xff at offset"),
        (b'"a\x00b"', "byte 0x00 (NUL) at offset"),
    ],
)
def test_a_byte_not_utf8_inside_one_item_costs_only_that_item(
    validator: EventValidator, ingest_grid: Grid, shape: str, odd: bytes, said: str
) -> None:
    """t95: a byte that is not UTF-8 (or a NUL) in one reading or entity made the whole
    body a 400, its good readings lost with it, as nesting too deep did (trial 62)."""
    other = raw({**example("AirQualityObserved"), "id": "other"} if shape == "ngsi" else OTHER)
    bad = other.replace(b"{", b'{"location": ' + odd + b", ", 1)
    items = [good_item(shape), bad, good_item(shape).replace(b"2.1", b"2.1 ")]
    found = shaped(shape, ingest_grid, validator, body_of(shape, items))
    where = "data[1]" if shape == "ngsi" else "readings[1]"
    assert found.readings
    [refused] = found.refused
    assert (refused.problem["field"], refused.problem["code"]) == (where, "bad_json")
    assert said in refused.problem["message"]
    assert refused.problem["message"].endswith(f"(in {where})")
    assert refused.payload == bad


def test_a_byte_not_utf8_outside_every_item_refuses_the_body(validator: EventValidator) -> None:
    body = body_of("pack", [raw(GOOD)]).replace(b'"gw-1"', b'"gw-\xff"')
    with pytest.raises(BadBody) as err:
        readings_from_body(body, validator, T_NOW)
    assert err.value.errors[0]["field"] == "body"
    assert "byte 0xff at offset" in err.value.errors[0]["message"]


@pytest.mark.parametrize("shape", ["list", "pack", "ngsi"])
def test_nesting_too_deep_is_pinned_to_its_item_behind_a_nan_in_another(
    validator: EventValidator, ingest_grid: Grid, shape: str
) -> None:
    """Trial 62: orjson names the first fault it meets (the NaN), and the lenient parser
    then stopped on its own recursion limit, so the deep item was not found and the whole
    body was a 400 again."""
    nan = bad_item(shape, (b'"value": 2.1', b'"value": NaN'))
    other = raw({**example("AirQualityObserved"), "id": "deep"} if shape == "ngsi" else OTHER)
    deep = other.replace(b"{", b'{"note": ' + TOO_DEEP_NOTE + b", ", 1)
    items = [good_item(shape), nan, deep]
    found = shaped(shape, ingest_grid, validator, body_of(shape, items))
    assert found.readings
    assert [(r.problem["code"], r.payload) for r in found.refused] == [
        ("not_finite", nan),
        ("bad_json", deep),
    ]


@pytest.mark.parametrize(
    "body",
    [
        # One reading as the body: it is the body.
        raw({"schema": "reading/1", **GOOD}).replace(b"{", b'{"note": ' + TOO_DEEP_NOTE + b", ", 1),
        # Outside every reading of the pack.
        body_of("pack", [raw(GOOD)]).replace(b'"gw-1"', TOO_DEEP_NOTE),
        # A "readings" list outside a pack: the body is one reading.
        b'{"readings": [' + TOO_DEEP_NOTE + b", " + raw(GOOD) + b"]}",
    ],
)
def test_nesting_too_deep_outside_every_item_refuses_the_body(
    validator: EventValidator, body: bytes
) -> None:
    with pytest.raises(BadBody) as err:
        readings_from_body(body, validator, T_NOW)
    assert err.value.errors == [
        {
            "field": "body",
            "code": "bad_json",
            "message": "not valid JSON: nested deeper than 1024 levels",
        }
    ]


@pytest.mark.parametrize("shape", ["list", "pack", "ngsi"])
def test_a_body_of_more_items_than_a_pack_holds_is_refused_whole(
    validator: EventValidator, ingest_grid: Grid, shape: str
) -> None:
    """Before, 500,000 bad items after one good reading in a 1 MB body took the server
    five seconds and became 500,000 dead letters; the worker refuses such a pack whole."""
    many = [GOOD] + [0] * MAX_PACK_READINGS
    if shape == "ngsi":
        with pytest.raises(BadBody) as err:
            ngsi_readings(raw({"data": many}), NgsiMapping(ingest_grid), validator, T_NOW)
        noun, field = "entities", "data"
    else:
        body = many if shape == "list" else {"schema": "readings/1", "readings": many}
        with pytest.raises(BadBody) as err:
            readings_from_body(raw(body), validator, T_NOW)
        noun, field = "readings", "body" if shape == "list" else "readings"
    assert err.value.errors == [
        {
            "field": field,
            "code": "pack_too_large",
            "message": f"field \"{field}\" is '10,001 {noun}': a body holds at most 10,000 "
            f"{noun}: send them in several bodies",
        }
    ]
    # As many as a pack holds still go, each bad one refused on its own.
    found = readings_from_body(raw(many[:MAX_PACK_READINGS]), validator, T_NOW)
    assert (len(found.readings), len(found.refused)) == (1, MAX_PACK_READINGS - 1)


def test_a_body_with_a_byte_order_mark_is_read_past_it(validator: EventValidator) -> None:
    body = b"\xef\xbb\xbf" + raw({"schema": "reading/1", **GOOD})
    assert [r.value for r in readings_from_body(body, validator, T_NOW).readings] == [2.1]


def test_one_reading_a_pack_or_a_list(validator: EventValidator) -> None:
    one = readings_from_body(raw({"schema": "reading/1", **GOOD}), validator, T_NOW).readings
    pack = readings_from_body(
        raw({"schema": "readings/1", "readings": [GOOD, GOOD]}), validator, T_NOW
    ).readings
    later = {**GOOD, "value": 2.2, "ts": "2026-09-21T14:05:00Z"}  # one sensor, one time, one value
    listed = readings_from_body(raw([GOOD, later]), validator, T_NOW).readings
    assert [r.value for r in one + pack + listed] == [2.1, 2.1, 2.1, 2.1, 2.2]


def test_one_sensor_at_one_time_with_two_values_is_refused_for_both(
    validator: EventValidator,
) -> None:
    """Trial 21: both were sent; the worker kept the first and dropped the second as a
    duplicate, so one of the sender's values was lost without a word. The others of the
    body still go; the same value twice is a repeat, sent as it is."""
    other = {**GOOD, "sensor_id": "gauge-2", "grid_cell": "c-mill"}
    body = raw([GOOD, other, {**GOOD, "value": 9.5}, other])
    found = readings_from_body(body, validator, T_NOW)
    assert [(r.sensor_id, r.value) for r in found.readings] == [("gauge-2", 2.1), ("gauge-2", 2.1)]
    assert [r.problem["field"] for r in found.refused] == ["readings[0].value", "readings[2].value"]
    assert found.refused[0].problem == {
        "field": "readings[0].value",
        "code": "conflicting_reading",
        "message": "field \"readings[0].value\" is 2.1: sensor 'gauge-1' at 2026-09-21T14:00:00Z "
        "is given another value by readings[2] 9.5: which is meant?",
    }
    assert orjson.loads(found.refused[1].payload)["value"] == 9.5
    with pytest.raises(BadBody) as err:
        readings_from_body(raw([GOOD, {**GOOD, "value": 9.5}]), validator, T_NOW)
    assert [e["code"] for e in err.value.errors] == ["conflicting_reading"] * 2


def test_two_ngsi_entities_giving_one_sensor_two_values_are_refused(
    validator: EventValidator, ingest_grid: Grid
) -> None:
    first = example("AirQualityObserved")
    second = {**example("AirQualityObserved"), "no2": {"type": "Number", "value": 70}}
    with pytest.raises(BadBody) as err:
        ngsi_readings(raw({"data": [first, second]}), NgsiMapping(ingest_grid), validator, T_NOW)
    assert [(e["field"], e["code"]) for e in err.value.errors] == [
        ("data[0].no2.value", "conflicting_reading"),
        ("data[1].no2.value", "conflicting_reading"),
    ]


def test_a_body_of_a_pack_of_conflicting_readings_names_a_few_others_each(
    validator: EventValidator,
) -> None:
    """t198: each of 10,000 readings of one sensor at one time named the other 9,999
    (then cut to 300 characters): 10^8 names built, the ingest held for a minute by one
    1.3 MB body, every other gateway waiting. Now each names five and counts the rest,
    and the whole body takes well under a second (fails on the old code by its text;
    it took 50 s)."""
    body = raw([{**GOOD, "value": 1 + i / 1e5} for i in range(MAX_PACK_READINGS)])
    started = time.monotonic()
    with pytest.raises(BadBody) as err:
        readings_from_body(body, validator, T_NOW)
    assert time.monotonic() - started < 15
    errors = err.value.errors
    assert len(errors) == MAX_PACK_READINGS
    assert errors[0]["message"] == (
        "field \"readings[0].value\" is 1.0: sensor 'gauge-1' at 2026-09-21T14:00:00Z is given "
        "another value by readings[1] 1.00001, readings[2] 1.00002, readings[3] 1.00003, "
        "readings[4] 1.00004, readings[5] 1.00005 and 9,994 more: which is meant?"
    )


def test_an_entity_of_many_spellings_of_one_attribute_is_dead_lettered_a_bounded_number_of_times(
    validator: EventValidator, ingest_grid: Grid
) -> None:
    """t198: an entity with 3,000 attributes spelling no2 (IRIs ending in /no2, each a
    duplicate_attribute naming all the others) was 3,000 dead letters each holding the
    whole entity and a message naming 2,999 attributes: 134 kB posted, 850 MB of memory,
    500 MB to Kafka, and 20,000 spellings in a 1 MB body would have been 4 GB of text.
    Now every refusal is answered and counted, each names at most five others, and the
    entity is dead-lettered at most MAX_ENTITY_LETTERS times, the last naming the rest
    (fails on the old code)."""
    entity = example("AirQualityObserved")
    entity["pm25"] = {"type": "Number", "value": 5}
    for i in range(3000):
        entity[f"u{i}/no2"] = {"type": "Number", "value": 1}
    found = ngsi_readings(raw({"data": [entity]}), NgsiMapping(ingest_grid), validator, T_NOW)
    assert [r.kind for r in found.readings] == ["pm25"]
    assert len(found.refused) == 3001  # no2 itself and its 3,000 other spellings
    assert {r.problem["code"] for r in found.refused} == {"duplicate_attribute"}
    assert max(len(r.problem["message"]) for r in found.refused) < 400
    letters = [r for r in found.refused if r.letter]
    assert len(letters) == MAX_ENTITY_LETTERS
    assert [r.letter_note for r in letters[:-1]] == [""] * (MAX_ENTITY_LETTERS - 1)
    assert letters[-1].letter_note.startswith(
        " (this dead letter stands for the entity's 2,991 other refused attributes too: "
        "data[0].u9/no2, data[0].u10/no2, "
    )
    assert {r.payload for r in found.refused} == {letters[0].payload}  # the entity as sent
    # An entity with a few refusals keeps one dead letter for each.
    few = example("AirQualityObserved")
    few["NO2"] = {"type": "Number", "value": 3}
    found = ngsi_readings(raw({"data": [few, entity]}), NgsiMapping(ingest_grid), validator, T_NOW)
    assert [(r.index, r.letter, r.letter_note) for r in found.refused[:2]] == [
        (0, True, ""),
        (0, True, ""),
    ]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (b"{oops", ["body"]),
        (raw({"schema": "reading/1", **GOOD, "value": "high"}), ["value"]),
        (
            raw([{**GOOD, "value": None}, {**GOOD, "grid_cell": "c-nowhere"}]),
            ["readings[0].value", "readings[1].grid_cell"],
        ),
        (raw([7]), ["readings[0]"]),
        (raw({"schema": "readings/1", "readings": []}), ["readings"]),
        (raw([]), ["body"]),
        (raw(3), ["body"]),
        # Nested 1,000 levels (orjson decodes up to 1,024): RecursionError, a 500 before.
        (
            raw({"schema": "reading/1", **GOOD, "value": 0}).replace(
                b'"value": 0', b'"value": ' + DEEP
            ),
            ["value"],
        ),
        (
            raw([{**GOOD, "unit": 0}]).replace(b'"unit": 0', b'"unit": ' + DEEP),
            ["readings[0].unit"],
        ),
        (
            raw([{**GOOD, "value": 0}, 7]).replace(b'"value": 0', b'"value": ' + DEEP),
            ["readings[0].value", "readings[1]"],
        ),
    ],
)
def test_a_body_without_a_valid_reading_is_refused_naming_every_field(
    validator: EventValidator, body: bytes, fields: list[str | None]
) -> None:
    with pytest.raises(BadBody) as err:
        readings_from_body(body, validator, T_NOW)
    assert [e["field"] for e in err.value.errors] == fields


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            raw([GOOD, {**GOOD, "value": None}, {**GOOD, "grid_cell": "c-nowhere"}]),
            ["readings[1].value", "readings[2].grid_cell"],
        ),
        (raw({"schema": "readings/1", "readings": [7, GOOD]}), ["readings[0]"]),
        (
            raw([GOOD, {**GOOD, "unit": 0}]).replace(b'"unit": 0', b'"unit": ' + DEEP),
            ["readings[1].unit"],
        ),
        (raw([{**GOOD, "note": 0}, 7]).replace(b'"note": 0', b'"note": ' + DEEP), ["readings[1]"]),
    ],
)
def test_a_bad_reading_costs_no_other_reading_of_its_body(
    validator: EventValidator, body: bytes, fields: list[str]
) -> None:
    """As the worker reads a pack: the valid readings go on, each bad one is refused with
    its own field and its own JSON for the dead letter."""
    found = readings_from_body(body, validator, T_NOW)
    assert [r.value for r in found.readings] == [2.1]
    assert [r.problem["field"] for r in found.refused] == fields
    for refused in found.refused:
        decode_json(refused.payload)  # the reading itself, as JSON, however deep


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"garbage", "body: not valid JSON: "),
        # Trial 21: orjson's "unexpected character: line 1 column 1 (char 0)", and for an
        # empty body the worker's words for a Kafka tombstone.
        (
            b'[{"value": 1.5,}]',
            "body: not valid JSON: at line 1, column 16 (byte 15), found '}]' after "
            "'[{\"value\": 1.5,': a trailing comma before the end of a list or object",
        ),
        (b"", "body: nothing was sent (0 bytes): expected a reading, a readings/1 pack or a list"),
        (b" \r\n", "body: only white space (3 bytes): expected a reading"),
        (b"[]", 'field "body" is []: expected at least one reading'),
        (b"3", 'field "body" is 3: expected a reading (a JSON object), a readings/1 pack'),
        (raw({}), 'field "schema" is missing'),
        (raw({"schema": "readings/1"}), 'field "readings" is missing'),
        (raw({"schema": "reading/1", **GOOD, "value": None}), 'field "value" is null'),
        (raw([{k: v for k, v in GOOD.items() if k != "value"}, 7]), "2 bad fields, first "),
    ],
)
def test_a_refusal_reads_as_json_and_says_missing_for_a_left_out_field(
    validator: EventValidator, body: bytes, text: str
) -> None:
    """Trial 3: ``first None: …`` for a body that is no reading, ``is null`` for a field
    left out; MQTT already said ``is missing``."""
    with pytest.raises(BadBody) as err:
        readings_from_body(body, validator, T_NOW)
    said = refusal_text(err.value.errors)
    assert said.startswith(text)
    assert "None" not in said


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        # A bare ISO 8601 text is read (NGSI-LD's concise form, trial 21); a bare number
        # is no form of a DateTime.
        ({"dateObserved": 1458039600}, "data[0].dateObserved", "attrsFormat"),
        ({"dateObserved": {"type": "DateTime"}}, "data[0].dateObserved.value", "is missing"),
        ({"no2": 45}, "data[0].no2", "attrsFormat"),
        ({"no2": {"type": "Number"}}, "data[0].no2.value", "is missing"),
        ({"id": None}, "data[0].id", "is null"),
    ],
)
def test_an_ngsi_refusal_names_the_attribute_and_hints_at_keyvalues(
    validator: EventValidator, ingest_grid: Grid, change: dict[str, object], field: str, text: str
) -> None:
    entity = {**example("AirQualityObserved"), **change}
    with pytest.raises(BadBody) as err:
        ngsi_readings(raw({"data": [entity]}), NgsiMapping(ingest_grid), validator, T_NOW)
    [problem] = err.value.errors
    assert problem["field"] == field and text in problem["message"]


def test_a_notification_without_data_says_missing(
    validator: EventValidator, ingest_grid: Grid
) -> None:
    with pytest.raises(BadBody) as err:
        ngsi_readings(raw({}), NgsiMapping(ingest_grid), validator, T_NOW)
    assert refusal_text(err.value.errors).startswith('field "data" is missing')


def test_an_orion_notification_of_the_three_models(
    validator: EventValidator, ingest_grid: Grid
) -> None:
    body = {
        "subscriptionId": "5a5e4ed1",
        "data": [
            example(n)
            for n in ("AirQualityObserved", "TrafficFlowObserved", "WaterQualityObserved")
        ],
    }
    readings = ngsi_readings(raw(body), NgsiMapping(ingest_grid), validator, T_NOW).readings
    assert sorted((r.kind, r.value, r.grid_cell) for r in readings) == [
        ("conductance", 50.0, "c-bridge"),
        ("no2", 69.0, "c-top"),
        ("traffic_flow", 197.0, "c-mill"),
        ("traffic_speed", 52.6, "c-mill"),
    ]


def test_a_notification_from_the_future_names_the_entity(
    validator: EventValidator, ingest_grid: Grid
) -> None:
    entity = example("WaterQualityObserved")
    entity["dateObserved"]["value"] = "2030-01-01T00:00:00Z"
    with pytest.raises(BadBody) as err:
        ngsi_readings(raw({"data": [entity]}), NgsiMapping(ingest_grid), validator, T_NOW)
    # Named by the field the time came from, as sent (t105: 'data[0].conductivity.ts',
    # a field no entity has).
    assert [(e["field"], e["code"]) for e in err.value.errors] == [
        ("data[0].dateObserved.value", "in_future")
    ]
    assert err.value.errors[0]["message"].startswith(
        "field \"data[0].dateObserved.value\" is '2030-01-01T00:00:00Z': event time is more"
    )
    assert "(sensor 'waterqualityobserved:Sevilla:D1-conductance')" in refusal_text(
        err.value.errors
    )


def test_an_unregistered_attribute_costs_no_other_reading(
    validator: EventValidator, ingest_grid: Grid
) -> None:
    """Trial 5: an entity with a registered no2 and an unregistered pm10 was refused whole
    (400 naming data[0].id: Orion does not retry a 4xx, so the no2 was lost)."""
    entity = example("AirQualityObserved")
    entity["pm10"] = {"type": "Number", "value": 12.0}
    other = example("WaterQualityObserved")
    other["dateObserved"]["value"] = "2030-01-01T00:00:00Z"
    body = raw({"data": [entity, other, example("TrafficFlowObserved")]})
    found = ngsi_readings(body, NgsiMapping(ingest_grid), validator, T_NOW)
    assert sorted(r.kind for r in found.readings) == ["no2", "traffic_flow", "traffic_speed"]
    assert [(r.problem["field"], r.problem["code"]) for r in found.refused] == [
        ("data[0].pm10", "unknown_sensor"),
        ("data[1].dateObserved.value", "in_future"),
    ]
    said = found.refused[0].problem["message"]
    assert said.startswith('field "data[0].pm10" is ') and "-pm10" in said
    assert json.loads(found.refused[0].payload)["id"] == entity["id"]


# Request headers: each refusal is a 4xx naming the header, before the body is read.
def headers(**values: str) -> Message:
    msg = Message()
    for name, value in values.items():
        msg[name.replace("_", "-")] = value
    return msg


@pytest.mark.parametrize(
    ("given", "status", "field"),
    [
        ({}, 411, "Content-Length"),
        ({"Transfer_Encoding": "chunked"}, 411, "Transfer-Encoding"),
        ({"Transfer_Encoding": "chunked", "Content_Length": "10"}, 400, "Transfer-Encoding"),
        ({"Content_Length": "\u00b2"}, 400, "Content-Length"),  # "²".isdigit() is True
        ({"Content_Length": "-1"}, 400, "Content-Length"),
        ({"Content_Length": "1e3"}, 400, "Content-Length"),
        ({"Content_Length": "9" * 5000}, 413, "Content-Length"),  # int() refuses > 4300 digits
        ({"Content_Length": "1048577"}, 413, "Content-Length"),
        ({"Content_Length": "10", "Content_Type": "text/plain"}, 415, "Content-Type"),
        (
            {"Content_Length": "10", "Content_Type": "application/x-www-form-urlencoded"},
            415,
            "Content-Type",
        ),
        (
            {"Content_Length": "10", "Content_Type": "application/json; charset=utf-16"},
            415,
            "Content-Type",
        ),
        # t165: a second charset was passed over, the body read as the first said.
        (
            {
                "Content_Length": "10",
                "Content_Type": "application/json; charset=utf-8; charset=latin-1",
            },
            415,
            "Content-Type",
        ),
        # Trial 13: a gzipped body was read as JSON and refused as "byte 0x00 (NUL) ...
        # UTF-16 or UTF-32 text?", which hid that the ingest does not take compression.
        ({"Content_Length": "10", "Content_Encoding": "gzip"}, 415, "Content-Encoding"),
        ({"Content_Length": "10", "Content_Encoding": "deflate"}, 415, "Content-Encoding"),
        ({"Content_Length": "10", "Content_Encoding": "identity, br"}, 415, "Content-Encoding"),
    ],
)
def test_bad_request_headers_are_refused_naming_the_header(
    given: dict[str, str], status: int, field: str
) -> None:
    refusal = _refusal(headers(**given), MAX_BODY)
    assert refusal is not None
    assert (refusal[0], refusal[1]["field"]) == (status, field)


def test_a_compressed_body_is_refused_saying_to_send_it_uncompressed() -> None:
    refusal = _refusal(headers(Content_Length="10", Content_Encoding="gzip"), MAX_BODY)
    assert refusal is not None
    assert refusal[1]["error"] == (
        "Content-Encoding is 'gzip': the ingest takes uncompressed JSON only; send the body "
        "without compression (no Content-Encoding, or identity)"
    )
    assert _refusal(headers(Content_Length="10", Content_Encoding="identity"), MAX_BODY) is None


def test_two_different_content_lengths_are_refused() -> None:
    msg = headers(Content_Length="10")
    msg["Content-Length"] = "20"
    refusal = _refusal(msg, MAX_BODY)
    assert refusal is not None and (refusal[0], refusal[1]["field"]) == (400, "Content-Length")
    same = headers(Content_Length="10")
    same["Content-Length"] = "10"
    assert _refusal(same, MAX_BODY) is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'<?xml version="1.0"?><reading/>', "XML or HTML, not JSON?"),
        (b"<html><body>502 Bad Gateway</body></html>", "XML or HTML, not JSON?"),
        (b"value=2.1&sensor_id=gauge-1", "a URL-encoded form (key=value&\u2026), not JSON?"),
        (
            b'--x\r\nContent-Disposition: form-data; name="f"\r\n\r\n{}\r\n--x--\r\n',
            "a multipart form (curl -F), not JSON?",
        ),
        (__import__("base64").b64encode(json.dumps(GOOD).encode()), "base64-encoded JSON?"),
        (b"ts: 2026-09-21T14:00:00Z\nsensor_id: gauge-1\n", "YAML (key: value lines), not JSON?"),
        (
            b"ts,sensor_id,kind,value\n2026-09-21T14:00:00Z,gauge-1,water_level,2.1\n",
            "CSV, not JSON?",
        ),
    ],
)
def test_a_body_in_another_text_format_is_said_as_what_it_looks_like(
    validator: EventValidator, body: bytes, says: str
) -> None:
    """t165: each was "found '…': expected a value (a number, …)" alone, naming no cause,
    where a compressed or binary body is said as what it looks like (t137)."""
    with pytest.raises(BadBody) as err:
        readings_from_body(body, validator, T_NOW)
    [problem] = err.value.errors
    assert problem["code"] == "bad_json" and f"; {says}" in problem["message"], problem


@pytest.mark.parametrize(
    "body", [b"nope", b"{'value': 1}", b"value", b"[1, 2", b"2026-09-21T14:00:00Z,gauge-1,x"]
)
def test_text_in_no_known_format_gets_no_format_guess(
    validator: EventValidator, body: bytes
) -> None:
    with pytest.raises(BadBody) as err:
        readings_from_body(body, validator, T_NOW)
    assert "not JSON?" not in err.value.errors[0]["message"]


TWICE = " (JSON text in a JSON string: encoded twice? send the object itself, not as a string)"


def test_a_reading_encoded_twice_is_said_so_at_each_door(
    ingest_grid: Grid, validator: EventValidator
) -> None:
    """t165: a document serialised, then serialised again as a string, was "expected a
    reading (a JSON object)" alone, which its sender, seeing its object there, could not
    place: the body, a list's item, an NGSI entity and ``data``, an MQTT payload."""
    twice = json.dumps(json.dumps(GOOD)).encode()
    with pytest.raises(BadBody) as err:
        readings_from_body(twice, validator, T_NOW)
    assert err.value.errors[0]["message"].endswith(TWICE)
    listed = readings_from_body(raw([GOOD, json.dumps(GOOD)]), validator, T_NOW)
    assert len(listed.readings) == 1
    assert listed.refused[0].problem["message"].endswith(TWICE)
    entity = json.dumps(example("AirQualityObserved"))
    for body in ({"data": [entity]}, {"data": json.dumps([example("AirQualityObserved")])}):
        with pytest.raises(BadBody) as err:
            ngsi_readings(raw(body), NgsiMapping(ingest_grid), validator, T_NOW)
        assert err.value.errors[0]["message"].endswith(TWICE), err.value.errors
    # Not for a string that is no JSON document.
    with pytest.raises(BadBody) as err:
        readings_from_body(b'"{not json"', validator, T_NOW)
    assert "encoded twice" not in err.value.errors[0]["message"]


def test_two_different_content_types_are_refused_naming_both() -> None:
    """t165: ``application/json`` then ``text/plain`` was read as JSON (the first),
    unsaid; a proxy in front may have checked the other. The same type twice is one."""
    msg = headers(Content_Length="10", Content_Type="application/json")
    msg["Content-Type"] = "text/plain"
    refusal = _refusal(msg, MAX_BODY)
    assert refusal == (
        400,
        {
            "error": "Content-Type given 2 different ways: ['application/json', "
            "'text/plain']: send it once",
            "field": "Content-Type",
        },
    )
    same = headers(Content_Length="10", Content_Type="application/json")
    same["Content-Type"] = "Application/JSON"
    assert _refusal(same, MAX_BODY) is None


@pytest.mark.parametrize(
    "given",
    [
        {"Content_Length": "10"},
        {"Content_Length": "0010"},
        {"Content_Length": "10", "Content_Type": "application/json"},
        {"Content_Length": "10", "Content_Type": "Application/JSON; charset=UTF-8"},
        {"Content_Length": "10", "Content_Type": "application/ld+json"},
    ],
)
def test_json_bodies_with_a_length_pass(given: dict[str, str]) -> None:
    assert _refusal(headers(**given), MAX_BODY) is None


def test_the_partly_refused_log_line_counts_in_words() -> None:
    """Trial 6: "1 readings accepted"."""
    problem = {"field": "readings[1].value", "message": "expected a number"}
    one = partly_refused_line("/ingest/v1/readings", 1, [problem])
    assert "1 reading accepted, 1 reading refused" in one
    two = partly_refused_line("/ingest/v1/readings", 2, [problem, problem])
    assert "2 readings accepted, 2 readings refused" in two


def test_an_ngsi_integer_past_a_double_is_out_of_range_not_a_500(
    validator: EventValidator, ingest_grid: Grid
) -> None:
    # Trial 13: OverflowError from float() made the whole notification a 500.
    entity = example("AirQualityObserved")
    body = raw({"data": [entity]}).replace(b'"value": 69', b'"value": 1' + b"0" * 400)
    with pytest.raises(BadBody) as err:
        ngsi_readings(body, NgsiMapping(ingest_grid), validator, T_NOW)
    assert [(e["code"], e["field"]) for e in err.value.errors] == [
        ("out_of_range", "data[0].no2.value")
    ]


def test_an_empty_ngsi_notification_says_nothing_was_sent(
    validator: EventValidator, ingest_grid: Grid
) -> None:
    with pytest.raises(BadBody) as err:
        ngsi_readings(b"", NgsiMapping(ingest_grid), validator, T_NOW)
    assert refusal_text(err.value.errors) == (
        'body: nothing was sent (0 bytes): expected an Orion notification {"data": [entity, ...]}'
    )


@pytest.mark.parametrize(
    ("change", "sent", "converted"),
    [
        # 6 mg/m3 is 6,000 ug/m3, past no2's range: the value sent was 6.
        (
            {"no2": {"type": "Number", "value": 6, "metadata": {"unitCode": {"value": "GP"}}}},
            "6",
            "with unit code GP, 6000.0 ug/m3",
        ),
        (
            {"no2": {"type": "Number", "value": -0.5, "metadata": {"unitCode": {"value": "GP"}}}},
            "-0.5",
            "with unit code GP, -500.0 ug/m3",
        ),
    ],
)
def test_a_converted_value_refused_is_named_by_the_value_sent(
    ingest_grid: Grid,
    validator: EventValidator,
    change: dict[str, object],
    sent: str,
    converted: str,
) -> None:
    # t105: 'field "data[0].no2.value" is 6000.0', a value nobody sent in that field.
    entity = {**example("AirQualityObserved"), **change}
    pm25 = {"type": "Number", "value": 12.0}
    body = raw({"subscriptionId": "s", "data": [{**entity, "pm25": pm25}]})
    found = ngsi_readings(body, NgsiMapping(ingest_grid), validator, T_NOW)
    assert [r.kind for r in found.readings] == ["pm25"]  # the other attribute goes on
    [refused] = found.refused
    assert refused.problem["code"] == "out_of_range"
    assert refused.problem["message"].startswith(
        f'field "data[0].no2.value" is {sent}: {converted}: kind no2 is plausible'
    )


def test_a_traffic_count_refused_is_named_by_the_count_sent(
    ingest_grid: Grid, validator: EventValidator
) -> None:
    # 197 vehicles in one second is 59,100 per five minutes: it was said as 59100.0.
    entity = example("TrafficFlowObserved")
    entity["dateObservedFrom"]["value"] = "2016-12-07T11:14:59Z"
    del entity["dateObserved"]  # its interval (11:10-11:15) would contradict the period
    body = raw({"subscriptionId": "s", "data": [entity]})
    found = ngsi_readings(body, NgsiMapping(ingest_grid), validator, T_NOW)
    [refused] = found.refused
    assert refused.problem["message"].startswith(
        'field "data[0].intensity.value" is 197: over 1 s, 59100.0 vehicles/5min: kind '
        "traffic_flow is plausible"
    )


@pytest.mark.parametrize(
    ("where", "sent", "said"),
    [
        # A zone other than UTC: the text as sent, then the instant read from it.
        ("dateObserved.value", "2030-01-01T02:00:00+02:00", "2030-01-01T00:00:00Z: event time"),
        # A zone-less time (UTC, as Orion reads it).
        ("dateObserved.value", "2030-01-01T00:00:00", "2030-01-01T00:00:00Z: event time"),
        # An interval: its end is the event time.
        ("dateObserved.value", "2016-12-07T11:10:00Z/2030-01-01T00:00:00Z", "2030-01-01T00"),
        # The attribute's own observedAt (NGSI-LD).
        ("no2.observedAt", "2030-01-01T00:00:00Z", "event time is more than 300s ahead"),
    ],
)
def test_an_entity_time_refused_is_named_where_it_was_sent(
    validator: EventValidator, ingest_grid: Grid, where: str, sent: str, said: str
) -> None:
    entity = example("AirQualityObserved")
    if where == "no2.observedAt":
        entity["no2"]["observedAt"] = sent
    else:
        entity["dateObserved"]["value"] = sent
    with pytest.raises(BadBody) as err:
        ngsi_readings(raw({"data": [entity]}), NgsiMapping(ingest_grid), validator, T_NOW)
    [error] = err.value.errors
    assert (error["field"], error["code"]) == (f"data[0].{where}", "in_future")
    assert error["message"].startswith(f"field \"data[0].{where}\" is '{sent}': {said}")


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        (
            {"actionType": "append", "entities": [example("AirQualityObserved")]},
            "missing_field",
            'this has "entities": a batch update, POST /v2/op/update?',
        ),
        (example("AirQualityObserved"), "missing_field", 'this is one entity: post {"data": ['),
        (
            {"subscriptionId": "s", "contextResponses": []},
            "missing_field",
            'this has "contextResponses": an NGSI-v1 notification',
        ),
        (
            [example("AirQualityObserved")],
            "bad_type",
            "this is a list of entities, an NGSI-LD batch body?",
        ),
    ],
)
def test_another_ngsi_shape_posted_as_a_notification_is_named(
    validator: EventValidator, ingest_grid: Grid, body: object, code: str, says: str
) -> None:
    # t105: a batch update, one entity and an NGSI-v1 notification were all 'field "data"
    # is missing: expected a non-empty list of entities' (bad_type), naming no shape.
    with pytest.raises(BadBody) as err:
        ngsi_readings(raw(body), NgsiMapping(ingest_grid), validator, T_NOW)
    [problem] = err.value.errors
    assert problem["code"] == code and says in problem["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"schema": "reading/1", **GOOD},
        [GOOD],
        {"schema": "readings/1", "readings": [GOOD]},
    ],
)
def test_readings_posted_as_a_notification_name_their_endpoint(
    validator: EventValidator, ingest_grid: Grid, body: object
) -> None:
    # t105: sibling of another NGSI shape: the wrong endpoint was not said.
    with pytest.raises(BadBody) as err:
        ngsi_readings(raw(body), NgsiMapping(ingest_grid), validator, T_NOW)
    [problem] = err.value.errors
    assert "post them to /ingest/v1/readings" in problem["message"]


@pytest.mark.parametrize(
    ("body", "shape"),
    [
        ({"subscriptionId": "s", "data": [example("AirQualityObserved")]}, "an Orion notification"),
        (example("AirQualityObserved"), "an NGSI entity"),
    ],
)
def test_a_notification_posted_as_a_reading_names_its_endpoint(
    validator: EventValidator, body: object, shape: str
) -> None:
    # t105: 'field "schema" is missing: expected 'reading/1'', the endpoint unsaid.
    with pytest.raises(BadBody) as err:
        readings_from_body(raw(body), validator, T_NOW)
    [problem] = err.value.errors
    assert (problem["code"], problem["field"]) == ("bad_schema", "schema")
    assert f"this is {shape}" in problem["message"]
    assert "post notifications to /ingest/v1/ngsi" in problem["message"]


class _Failing(EventValidator):
    """A validator with a fault of ours in one reading: an exception no rule names."""

    def reading_document(self, doc: dict, now: float):  # type: ignore[no-untyped-def]
        if doc.get("value") == 13.0:
            raise OverflowError("date value out of range")
        return super().reading_document(doc, now)


def test_an_unexpected_error_in_one_reading_costs_only_that_reading(ingest_grid: Grid) -> None:
    """t171: 9999-12-31T24:00 raised OverflowError while one reading was validated, and
    the HTTP ingest answered 500 for the whole body, its good readings lost with it (the
    worker and the MQTT ingest refuse such a reading alone, ``internal``)."""
    validator = _Failing(ingest_grid)
    readings = [GOOD, {**GOOD, "value": 13.0}, {**GOOD, "ts": "2026-09-21T14:05:00Z"}]
    for body in (readings, {"schema": "readings/1", "readings": readings}):
        found = readings_from_body(raw(body), validator, T_NOW)
        assert [r.value for r in found.readings] == [2.1, 2.1]
        [refused] = found.refused
        assert refused.problem["code"] == "internal"
        assert refused.problem["field"] == "readings[1]"
        assert refused.problem["message"] == "OverflowError: date value out of range"
        assert refusal_text([refused.problem]) == (
            "readings[1]: OverflowError: date value out of range"
        )
        assert json.loads(refused.payload)["value"] == 13.0
    with pytest.raises(BadBody) as caught:
        readings_from_body(raw({"schema": "reading/1", **GOOD, "value": 13.0}), validator, T_NOW)
    assert [e["code"] for e in caught.value.errors] == ["internal"]


def test_an_unexpected_error_in_one_ngsi_attribute_costs_only_that_attribute(
    ingest_grid: Grid,
) -> None:
    entity = example("AirQualityObserved")
    later = {**entity["dateObserved"], "value": "2016-03-15T12:00:00"}
    other = {**entity, "dateObserved": later, "no2": {**entity["no2"], "value": 13.0}}
    body = raw({"data": [entity, other]})
    found = ngsi_readings(body, NgsiMapping(ingest_grid), _Failing(ingest_grid), T_NOW)
    assert len(found.readings) == 1  # the first entity's
    [bad] = found.refused
    assert (bad.problem["field"], bad.problem["code"]) == ("data[1].no2", "internal")
    assert "OverflowError: date value out of range" in bad.problem["message"]


def test_a_retried_body_is_the_same_readings_whatever_the_time_of_receipt(
    validator: EventValidator, ingest_grid: Grid
) -> None:
    """t175: the HTTP door stamps nothing (unlike MQTT's bare numbers, citybrain/ingest/
    receipts.py): a reading without ``ts`` is refused naming it, and a body retried after
    a 503, a timeout or a lost answer is read into the same readings at the same event
    times (the worker drops them as repeats), its own and an NGSI notification's."""
    no_ts = {k: v for k, v in GOOD.items() if k != "ts"}
    body = raw([GOOD, no_ts])
    first = readings_from_body(body, validator, T_NOW)
    retried = readings_from_body(body, validator, T_NOW + 3600)
    assert first.readings == retried.readings and len(first.readings) == 1
    [bad] = first.refused
    assert (bad.problem["field"], bad.problem["code"]) == ("readings[1].ts", "missing_field")
    notification = raw({"data": [example("AirQualityObserved")]})
    mapping = NgsiMapping(ingest_grid)
    once = ngsi_readings(notification, mapping, validator, T_NOW)
    again = ngsi_readings(notification, mapping, validator, T_NOW + 3600)
    assert once.readings and once.readings == again.readings
