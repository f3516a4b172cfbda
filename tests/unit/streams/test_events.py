"""Validation of wire events: every bad input gets a reason naming the field and value."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from playbooks.grid import Grid
from streams.errors import EventError
from streams.events import (
    MAX_DEPTH,
    ORJSON_DEPTH_ERROR,
    EventValidator,
    PackedError,
    Reading,
    decode_json,
    parse_ts,
)

NOW = 1_800_000_000.0  # 2027-01-15


def reading(**over: Any) -> dict[str, Any]:
    doc = {
        "schema": "reading/1",
        "ts": "2026-11-01T10:00:00Z",
        "sensor_id": "gauge-1",
        "kind": "water_level",
        "value": 1.5,
        "unit": "ft",
        "grid_cell": "c-bridge",
    }
    doc.update(over)
    return doc


def test_valid_reading_round_trips(grid: Grid) -> None:
    r = EventValidator(grid).reading(json.dumps(reading()).encode(), NOW)
    assert r == Reading(1_793_527_200.0, "gauge-1", "water_level", 1.5, "ft", "c-bridge")
    assert EventValidator(grid).reading(r.to_json(), NOW) == r


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        (b"{not json", "bad_json", "not valid JSON"),
        (b"[1, 2]", "bad_json", "expected a JSON object"),
        (
            json.dumps(reading(schema="reading/2")).encode(),
            "bad_schema",
            "field \"schema\" is 'reading/2'",
        ),
        (
            json.dumps({k: v for k, v in reading().items() if k != "sensor_id"}).encode(),
            "missing_field",
            'field "sensor_id"',
        ),
        (
            json.dumps(reading(value="abc")).encode(),
            "bad_type",
            "field \"value\" is 'abc': expected a number",
        ),
        (json.dumps(reading(value=True)).encode(), "bad_type", 'field "value" is true'),
        (
            b'{"schema": "reading/1", "ts": "2026-11-01T10:00:00Z", "sensor_id": "gauge-1",'
            b' "kind": "water_level", "value": NaN, "unit": "ft", "grid_cell": "c-bridge"}',
            "not_finite",
            'field "value" is nan',
        ),
        (json.dumps(reading(value=float("inf"))).encode(), "not_finite", 'field "value" is inf'),
        # t98: a number past a double is named as sent, not as the inf it overflowed to.
        (
            json.dumps(reading()).replace('"value": 1.5', '"value": -1e999').encode(),
            "not_finite",
            'field "value" is -1e999: expected a finite number',
        ),
        (
            json.dumps(reading(kind="lava_flow")).encode(),
            "unknown_kind",
            "field \"kind\" is 'lava_flow'",
        ),
        (json.dumps(reading(unit="m")).encode(), "bad_unit", "measured in ft"),
        (
            json.dumps(reading(grid_cell="c-nowhere")).encode(),
            "unknown_cell",
            "field \"grid_cell\" is 'c-nowhere'",
        ),
        (
            json.dumps(reading(sensor_id="ghost")).encode(),
            "unknown_sensor",
            "field \"sensor_id\" is 'ghost'",
        ),
        (
            json.dumps(reading(grid_cell="c-mill")).encode(),
            "registration_mismatch",
            "registered as water_level in c-bridge",
        ),
        (
            json.dumps(reading(ts="yesterday")).encode(),
            "bad_timestamp",
            "field \"ts\" is 'yesterday'",
        ),
        (json.dumps(reading(ts="2026-11-01T10:00:00")).encode(), "bad_timestamp", "no time zone"),
        (json.dumps(reading(ts=1700000000)).encode(), "bad_type", 'field "ts" is 1700000000'),
        (json.dumps(reading(ts="1970-01-02T00:00:00Z")).encode(), "too_old", "before 1990"),
        (
            json.dumps(reading(ts="2031-01-01T00:00:00Z")).encode(),
            "in_future",
            "ahead of the clock",
        ),
    ],
)
def test_bad_readings_name_field_value_and_reason(
    grid: Grid, raw: bytes, code: str, message: str
) -> None:
    with pytest.raises(EventError) as info:
        EventValidator(grid).reading(raw, NOW)
    assert info.value.code == code
    assert message in str(info.value)


def incident(**over: Any) -> dict[str, Any]:
    doc = {
        "schema": "incident/1",
        "ts": "2026-11-01T10:00:00Z",
        "report_id": "r-1",
        "category": "Flooding",
        "text": "桥下积水 water under the bridge",
        "source": "hotline",
        "grid_cell": "c-bridge",
    }
    doc.update(over)
    return doc


def test_valid_incident_keeps_chinese_text(grid: Grid) -> None:
    report = EventValidator(grid).incident(json.dumps(incident()).encode(), NOW)
    assert report.text.startswith("桥下积水")
    assert EventValidator(grid).incident(report.to_json(), NOW) == report


@pytest.mark.parametrize(
    ("over", "code", "field"),
    [
        ({"source": "pigeon"}, "unknown_source", "source"),
        ({"text": 5}, "bad_type", "text"),
        ({"grid_cell": "nowhere"}, "unknown_cell", "grid_cell"),
        ({"report_id": ""}, "bad_type", "report_id"),
        # Trial 8: ids this long made a burst alert too large for one Kafka message.
        ({"report_id": "x" * 257}, "too_long", "report_id"),
        ({"category": "c" * 257}, "too_long", "category"),
        ({"text": "t" * 10_001}, "too_long", "text"),
    ],
)
def test_bad_incidents(grid: Grid, over: dict[str, Any], code: str, field: str) -> None:
    with pytest.raises(EventError) as info:
        EventValidator(grid).incident(json.dumps(incident(**over)).encode(), NOW)
    assert (info.value.code, info.value.field) == (code, field)


@pytest.mark.parametrize("field", ["text", "report_id"])
def test_an_incident_without_a_field_says_missing_not_null(grid: Grid, field: str) -> None:
    doc = incident()
    del doc[field]
    with pytest.raises(EventError) as info:
        EventValidator(grid).incident(json.dumps(doc).encode(), NOW)
    assert (info.value.code, str(info.value)) == ("missing_field", f'field "{field}" is missing')


def test_a_pack_is_read_in_order_with_bad_readings_in_place(grid: Grid) -> None:
    v = EventValidator(grid)
    single = reading()
    del single["schema"]  # packed readings may leave it out
    pack = {
        "schema": "readings/1",
        "readings": [single, reading(value=2.5), reading(unit="m"), "x", reading(schema="r/9")],
    }
    packed, items = v.readings(json.dumps(pack).encode(), NOW)
    assert packed is True
    assert [i.value for i in items if isinstance(i, Reading)] == [1.5, 2.5]
    errors = [(i.index, i.error.code, str(i.error)) for i in items if isinstance(i, PackedError)]
    assert errors == [
        (2, "bad_unit", "field \"readings[2].unit\" is 'm': kind water_level is measured in ft"),
        (3, "bad_type", "field \"readings[3]\" is 'x': expected an object"),
        (4, "bad_schema", "field \"readings[4].schema\" is 'r/9': expected 'reading/1'"),
    ]
    assert json.loads(items[2].raw())["unit"] == "m"  # type: ignore[union-attr]
    assert v.readings(json.dumps(reading()).encode(), NOW) == (
        False,
        [v.reading(json.dumps(reading()).encode(), NOW)],
    )


def test_a_message_of_neither_schema_names_both(grid: Grid) -> None:
    with pytest.raises(EventError) as err:
        EventValidator(grid).readings(json.dumps(reading(schema="x")).encode(), NOW)
    assert str(err.value) == "field \"schema\" is 'x': expected 'reading/1' or 'readings/1'"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{}", "field \"schema\" is missing: expected 'reading/1' or 'readings/1'"),
        (b'{"schema": null}', "field \"schema\" is null: expected 'reading/1' or 'readings/1'"),
        (json.dumps(reading(ts=True)).encode(), 'field "ts" is true: expected an ISO 8601'),
        (
            json.dumps({k: v for k, v in reading().items() if k != "ts"}).encode(),
            'field "ts" is missing',
        ),
    ],
)
def test_a_missing_field_is_told_from_a_null_one(grid: Grid, raw: bytes, message: str) -> None:
    # A producer reads JSON: null and true as it wrote them, and a left-out field as
    # missing (it read "is None" before).
    with pytest.raises(EventError) as err:
        EventValidator(grid).readings(raw, NOW)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("depth", [1025, 1986, 100_000])
def test_nesting_past_orjsons_depth_gets_one_answer_at_any_stack_depth(
    grid: Grid, depth: int
) -> None:
    # The case (hypothesis): 1,986 nested brackets were "expected a JSON object" or
    # "depth limit exceeded" depending on how deep the caller's stack was, because the
    # lenient fallback parser recurses. Now refused the same way from any depth.
    raw = b"[" * depth + b"]" * depth

    def at_depth(n: int) -> str:
        if n:
            return at_depth(n - 1)
        with pytest.raises(EventError) as err:
            EventValidator(grid).readings(raw, NOW)
        return str(err.value)

    answers = {at_depth(n) for n in (0, 50, 300)}
    assert answers == {f"not valid JSON: nested deeper than {MAX_DEPTH} levels"}


def test_orjsons_depth_limit_and_message_are_what_the_validator_relies_on() -> None:
    orjson.loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    with pytest.raises(orjson.JSONDecodeError) as err:
        orjson.loads(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert str(err.value).startswith(ORJSON_DEPTH_ERROR)


def test_every_missing_field_is_named_at_once(grid: Grid) -> None:
    """Fourth new-user trial, item 6: an HTTP reading was refused for kind, then for unit,
    then for grid_cell, one per attempt."""
    doc = {"schema": "reading/1", "ts": "2026-11-01T10:00:00Z", "sensor_id": "gauge-1"}
    with pytest.raises(EventError) as err:
        EventValidator(grid).reading_document({**doc, "value": 1.5}, NOW)
    assert (err.value.code, err.value.field) == ("missing_field", "kind")
    assert str(err.value) == (
        'field "kind" is missing: so are "unit", "grid_cell" (a reading carries ts, '
        "sensor_id, kind, value, unit, grid_cell; docs/events.md)"
    )


def test_an_unregistered_sensor_is_said_first(grid: Grid) -> None:
    """...and only then that the sensor was not registered: said first, it is the one
    refusal no added field would lift."""
    doc = {"schema": "reading/1", "sensor_id": "nosuch", "value": "x"}
    with pytest.raises(EventError) as err:
        EventValidator(grid).reading_document(doc, NOW)
    assert (err.value.code, str(err.value)) == (
        "unknown_sensor",
        "field \"sensor_id\" is 'nosuch': sensor is not registered",
    )


def test_incident_fields_at_their_bounds_are_taken(grid: Grid) -> None:
    doc = incident(report_id="x" * 256, category="c" * 256, text="t" * 10_000)
    report = EventValidator(grid).incident(json.dumps(doc).encode(), NOW)
    assert (len(report.report_id), len(report.category), len(report.text)) == (256, 256, 10_000)


@pytest.mark.parametrize(
    ("raw", "twice"),
    [
        (b'{"a": 1, "a": 1}', "'a' is given twice in one object:"),
        (b'[{"a": {"b": 1, "b": 2}}]', "'b' is given twice in one object (in [0].a)"),
        (b'{"a": "x\\"", "\\u0061": 2}', "'a' is given twice"),  # escapes: full check
        (b'{"a": 1' + b"0" * 30 + b', "a": 2}', "'a' is given twice"),  # past 64 bits
        (b'{"a": NaN, "a": 1}', "'a' is given twice"),  # read by the lenient parser
    ],
)
def test_a_key_given_twice_is_named_where_the_sender_json_arrives(raw: bytes, twice: str) -> None:
    with pytest.raises(EventError) as err:
        decode_json(raw, unique_keys=True)
    assert err.value.code == "bad_json" and twice in err.value.reason
    decode_json(raw)  # readings on the worker's topics: unchecked (its hot path)


@pytest.mark.parametrize(
    "raw",
    [b'{"a": "\\"a\\"", "b": ["a", "a"]}', b'{"a": {"a": 1}, "b": "\\u0061"}', b"[1, 2]"],
)
def test_keys_given_once_pass_the_check(raw: bytes) -> None:
    assert decode_json(raw, unique_keys=True) == decode_json(raw)


def test_an_incident_giving_a_key_twice_is_bad_json(grid: Grid) -> None:
    # Trial 13: the worker took the last report_id of two, silently.
    raw = json.dumps(incident()).encode().replace(b'"r-1"', b'"r-1", "report_id": "r-2"')
    with pytest.raises(EventError) as err:
        EventValidator(grid).incident(raw, NOW)
    assert err.value.code == "bad_json" and "'report_id' is given twice" in err.value.reason


def test_a_misspelt_incident_source_names_the_closest(grid: Grid) -> None:
    doc = {
        "schema": "incident/1",
        "ts": "2026-11-01T10:00:00Z",
        "report_id": "r-1",
        "category": "flooding",
        "text": "water on the road",
        "source": "hotlne",
        "grid_cell": "c-bridge",
    }
    with pytest.raises(EventError) as err:
        EventValidator(grid).incident(json.dumps(doc).encode(), NOW)
    assert err.value.code == "unknown_source"
    assert str(err.value).endswith(" (did you mean 'hotline'?)"), err.value


def test_an_unregistered_sensor_near_a_registered_one_is_named_with_it(grid: Grid) -> None:
    """A newcomer's typo got "sensor is not registered" alone, on the dead letter too."""
    with pytest.raises(EventError) as err:
        EventValidator(grid).reading(json.dumps(reading(sensor_id="guage-1")).encode(), NOW)
    assert err.value.code == "unknown_sensor"
    assert str(err.value) == (
        "field \"sensor_id\" is 'guage-1': sensor is not registered (did you mean 'gauge-1'?)"
    )


def test_a_misspelt_cell_or_kind_names_the_closest(grid: Grid) -> None:
    validator = EventValidator(grid)
    with pytest.raises(EventError) as err:
        validator.reading(json.dumps(reading(grid_cell="c-brige")).encode(), NOW)
    assert str(err.value).endswith("not a cell of the grid (did you mean 'c-bridge'?)")
    with pytest.raises(EventError) as err:
        validator.reading(json.dumps(reading(kind="water_levl")).encode(), NOW)
    assert err.value.code == "unknown_kind"
    assert str(err.value).endswith(" (did you mean 'water_level'?)")


@pytest.mark.parametrize(
    ("ts", "says"),
    [
        ("2026-02-30T10:00:00Z", "day is out of range for month"),
        ("2026-11-01T25:00:00Z", "hour must be in 0..23"),
        # t109: ISO 8601's end of day was "hour must be in 0..23"; week and ordinal dates
        # (ISO 8601 too) "expected an ISO 8601 timestamp"; epoch seconds in a string
        # "ISO 8601's basic format", which they are not.
        (
            "2026-12-31T24:00:00+08:00",
            "24:00 (the end of the day) is not taken: send 00:00 of the next day "
            "(2027-01-01T00:00:00+08:00)",
        ),
        (
            "2026-W49-6T10:00:00Z",
            "an ISO week date (2026-W49-6) is not taken: send the calendar date, 2026-12-05 "
            "(2026-12-05T10:00:00Z)",
        ),
        (
            "2026-339T10:00Z",
            "an ordinal date (2026-339) is not taken: send the calendar date, 2026-12-05 "
            "(2026-12-05T10:00Z)",
        ),
        (
            "1789999700",
            "1789999700 looks like epoch seconds: send it as ISO 8601 (2026-09-21T14:08:20Z)",
        ),
        (
            "1789999700123",
            "1789999700123 looks like epoch milliseconds: send it as ISO 8601 "
            "(2026-09-21T14:08:20.123000Z)",
        ),
        ("2026-06-30T23:59:60Z", "second 60 (a leap second) is not taken"),
        (" 2026-11-01T10:00:00Z", "spaces around the timestamp"),
        ("2026-11-01", "a date alone"),
        ("20261101T100000Z", "ISO 8601's basic format"),
        ("yesterday", "expected an ISO 8601 timestamp (2026-11-01T10:00:00Z)"),
        ("2026-400T10:00Z", "expected an ISO 8601 timestamp (2026-11-01T10:00:00Z)"),
        # t171: past a date's range, each an OverflowError out of parse_ts (the worker's
        # ``unreadable``, naming no field), and the year 1 written "1-01-01".
        ("9999-366", "expected an ISO 8601 timestamp (2026-11-01T10:00:00Z)"),
        ("9999-999T10:00Z", "expected an ISO 8601 timestamp (2026-11-01T10:00:00Z)"),
        ("0001-000", "expected an ISO 8601 timestamp (2026-11-01T10:00:00Z)"),
        ("0001-001T10:00Z", "send the calendar date, 0001-01-01 (0001-01-01T10:00Z)"),
        ("0001-W01-1", "send the calendar date, 0001-01-01 (0001-01-01T00:00:00Z)"),
    ],
)
def test_a_bad_timestamp_says_what_is_wrong_with_it(ts: str, says: str) -> None:
    # Each was "expected an ISO 8601 timestamp (2026-11-01T10:00:00Z)": a day past the
    # month's end, a leap second and the basic format are ISO 8601, and the sender was
    # left to guess which part was refused.
    with pytest.raises(EventError) as caught:
        parse_ts(ts)
    assert caught.value.code == "bad_timestamp"
    assert str(caught.value) == f'field "ts" is {ts!r}: ' + caught.value.reason
    assert says in caught.value.reason, caught.value.reason


@pytest.mark.parametrize(
    ("ts", "send"),
    [
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59.999Z"),
        ("2016-12-31 23:59:60.5+01:00", "2016-12-31 23:59:59.999+01:00"),
        ("2015-06-30t23:59:60,123456789012-05:00", "2015-06-30t23:59:59.999-05:00"),
    ],
)
def test_a_leap_second_is_told_the_time_of_its_own_minute_to_send(ts: str, send: str) -> None:
    """t185: the hint named 2026-11-01T10:00:00Z (the example) for every leap second, a
    time hours or years off the reading's; now the reading's own minute, as sent, which
    is taken and is the last millisecond before the leap second."""
    with pytest.raises(EventError) as caught:
        parse_ts(ts)
    assert caught.value.reason.endswith(f"send 59.999 of the same minute ({send})")
    whole_minute = parse_ts(send) - 59.999
    assert whole_minute % 60 == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize(
    "ts", ["9999-12-31T24:00:00Z", "9999-12-31T24:00", "9999-12-31t24:00+14:00"]
)
def test_the_end_of_the_last_day_is_named_in_a_reading_and_in_a_pack(grid: Grid, ts: str) -> None:
    """t171: 24:00 of 9999-12-31 made the hint's next day an OverflowError out of
    parse_ts: a reading was dead-lettered ``unreadable``, "OverflowError: date value out
    of range", and a pack's item "readings[1]: OverflowError: …", naming no field."""
    validator = EventValidator(grid)
    with pytest.raises(EventError) as caught:
        validator.reading(json.dumps(reading(ts=ts)).encode(), NOW)
    assert caught.value.code == "bad_timestamp" and caught.value.field == "ts"
    assert caught.value.reason == (
        "24:00 (the end of the day) of 9999-12-31 is 00:00 of the year 10000: outside the "
        "years 0001-9999"
    )
    good = {k: v for k, v in reading().items() if k != "schema"}
    pack = {"schema": "readings/1", "readings": [good, {**good, "ts": ts}, good]}
    packed, items = validator.readings(json.dumps(pack).encode(), NOW)
    assert packed and [type(i).__name__ for i in items] == ["Reading", "PackedError", "Reading"]
    error = items[1].error  # type: ignore[union-attr]
    assert error.code == "bad_timestamp" and error.field == "readings[1].ts", str(error)


def test_the_day_after_in_a_24_00_hint_has_four_digits_in_the_year_1() -> None:
    with pytest.raises(EventError) as caught:
        parse_ts("0001-01-01T24:00Z")
    assert caught.value.reason.endswith("send 00:00 of the next day (0001-01-02T00:00:00Z)")


def test_an_epoch_number_where_iso_8601_is_taken_is_said_as_the_time_it_looks_like() -> None:
    # t109: "expected an ISO 8601 string" alone.
    with pytest.raises(EventError) as caught:
        parse_ts(1_789_999_700)
    assert caught.value.code == "bad_type" and caught.value.reason == (
        "expected an ISO 8601 string; 1789999700 looks like epoch seconds: send it as "
        "ISO 8601 (2026-09-21T14:08:20Z)"
    )
    with pytest.raises(EventError) as caught:
        parse_ts(10**400)
    assert caught.value.reason == "expected an ISO 8601 string"


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b" ", "the message is white space only (1 byte: ' '), no JSON value"),
        (b"\r\n\t", "the message is white space only (3 bytes: '\\r\\n\\t'), no JSON value"),
        (b"\xef\xbb\xbf", "the message is a byte order mark alone (3 bytes), no JSON value"),
        (b"\xef\xbb\xbf\n", "white space only (4 bytes: a byte order mark, then '\\n')"),
        (b"\xef\xbb\xbf\xef\xbb\xbf{}", "(byte 3), found '\\ufeff{}': a byte order mark (U+FEFF)"),
        (b'{"a": \xef\xbb\xbf1}', "(byte 6), found '\\ufeff1}' after '{\"a\": ': a byte order"),
    ],
)
def test_a_blank_message_or_a_second_byte_order_mark_is_said_as_such(raw: bytes, said: str) -> None:
    # t183: white space alone was "the text ends where a value was expected (cut
    # short?)", as if a document had been cut, and a second byte order mark Python's
    # "Unexpected UTF-8 BOM (decode using utf-8-sig)", advice to a reader, not a writer.
    with pytest.raises(EventError) as err:
        decode_json(raw)
    assert err.value.code == "bad_json"
    assert said in str(err.value)
    assert "cut short" not in str(err.value) and "utf-8-sig" not in str(err.value)
