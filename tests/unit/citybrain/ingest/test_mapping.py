"""MQTT topic patterns and payloads to reading documents."""

from __future__ import annotations

import contextlib
import time

import orjson
import paho.mqtt.client as mqtt
import pytest

from citybrain.ingest.mapping import MqttMapping, TopicPattern, TopicPatternError
from citybrain.ingest.mqtt import topic_text
from playbooks.grid import Grid
from streams.errors import EventError
from streams.events import EventValidator
from tests.unit.citybrain.ingest.conftest import T_NOW


def test_a_pattern_subscribes_with_wildcards_and_names_its_levels() -> None:
    p = TopicPattern.parse("city/{district}/{sensor_id}/{kind}")
    assert p.subscription == "city/+/+/+"
    assert p.match("city/east/gauge-1/water_level") == {
        "district": "east",
        "sensor_id": "gauge-1",
        "kind": "water_level",
    }
    assert p.match("city/east/gauge-1") is None
    assert p.match("town/east/gauge-1/water_level") is None


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("city/+/{sensor_id}", "level 2 is '+'"),
        ("city/#", "level 2 is '#'"),
        ("city//{sensor_id}", "level 2 is ''"),
        ("{sensor_id}/{sensor_id}", "{sensor_id} twice"),
    ],
)
def test_a_bad_pattern_is_refused_naming_the_level(pattern: str, says: str) -> None:
    with pytest.raises(TopicPatternError) as err:
        TopicPattern.parse(pattern)
    assert f"{pattern!r}" in str(err.value) and says in str(err.value)


@pytest.fixture
def mapping(ingest_grid: Grid) -> MqttMapping:
    return MqttMapping.build(ingest_grid)


def test_a_plain_number_is_the_value_observed_on_receipt(mapping: MqttMapping) -> None:
    doc = mapping.to_document("city/east/gauge-1/water_level", b" 2.35\n", T_NOW)
    assert doc == {
        "schema": "reading/1",
        "ts": "2026-09-21T14:13:20Z",
        "sensor_id": "gauge-1",
        "kind": "water_level",
        "value": 2.35,
        "unit": "ft",
        "grid_cell": "c-bridge",  # from the grid's registration
    }


@pytest.mark.parametrize("payload", [b"9" * 10_000 + b"x", b'{"value": "' + b"9" * 10_000 + b'x"}'])
def test_a_long_run_of_digits_is_judged_at_once(mapping: MqttMapping, payload: bytes) -> None:
    """The plain-number pattern could split a run of digits anywhere: a payload of
    100,000 digits then an x held the ingest for hours of backtracking."""
    started = time.monotonic()
    with contextlib.suppress(EventError):
        mapping.to_document("city/east/gauge-1/water_level", payload, T_NOW)
    assert time.monotonic() - started < 5


def test_a_json_object_gives_value_time_and_unit(mapping: MqttMapping) -> None:
    payload = b'{"value": "3.5", "ts": 1789999700, "unit": "ft"}'
    doc = mapping.to_document("city/east/gauge-2/water_level", payload, T_NOW)
    assert (doc["value"], doc["ts"], doc["unit"], doc["grid_cell"]) == (
        3.5,
        "2026-09-21T14:08:20Z",
        "ft",
        "c-mill",
    )
    iso = mapping.to_document(
        "city/e/gauge-2/water_level", b'{"value": 1, "ts": "2026-09-21T14:00:00+02:00"}', T_NOW
    )
    assert iso["ts"] == "2026-09-21T14:00:00+02:00"  # the validator parses it


@pytest.mark.parametrize(
    ("ts", "read"),
    [("1789999700", "2026-09-21T14:08:20Z"), (" 1789999700.5 ", "2026-09-21T14:08:20.500000Z")],
)
def test_epoch_seconds_in_a_string_are_read_as_a_value_in_a_string_is(
    mapping: MqttMapping, ts: str, read: str
) -> None:
    """Trial 21: "ts": "1789999700" was bad_timestamp, where "value": "3.5" is read."""
    payload = b'{"value": "3.5", "ts": "%s"}' % ts.encode()
    assert mapping.to_document("city/e/gauge-2/water_level", payload, T_NOW)["ts"] == read


def test_a_bad_epoch_in_a_string_is_named_as_sent(mapping: MqttMapping) -> None:
    with pytest.raises(EventError) as err:
        mapping.to_document("city/e/gauge-2/water_level", b'{"value": 1, "ts": "1e400"}', T_NOW)
    assert (err.value.code, err.value.value) == ("bad_timestamp", "1e400")


@pytest.mark.parametrize("unit", ["\u00b5g/m3", "\u03bcg/m3", "\u00b5g/m\u00b3", "ug/m\u00b3"])
def test_a_unit_spelled_with_micro_or_superscripts_is_the_grids_unit(
    mapping: MqttMapping, unit: str
) -> None:
    """Trial 21: "µg/m³" (as data sheets write it) was bad_unit for a pm25 in ug/m3."""
    payload = orjson.dumps({"value": 12, "unit": unit})
    doc = mapping.to_document("city/e/air-1/pm25", payload, T_NOW)
    assert doc["unit"] == "ug/m3"


def test_another_unit_is_never_converted_and_shown_as_sent(mapping: MqttMapping) -> None:
    doc = mapping.to_document(
        "city/e/air-1/pm25", '{"value": 1, "unit": "mg/m\u00b3"}'.encode(), T_NOW
    )
    assert doc["unit"] == "mg/m\u00b3"  # the validator's bad_unit shows it


def test_a_gateway_topic_takes_the_sensor_from_the_payload(ingest_grid: Grid) -> None:
    m = MqttMapping.build(ingest_grid, ["gw/{gateway}/up"])
    doc = m.to_document("gw/g7/up", b'{"sensor_id": "gauge-2", "value": 1.5}', T_NOW)
    assert (doc["sensor_id"], doc["kind"], doc["grid_cell"]) == ("gauge-2", "water_level", "c-mill")


@pytest.mark.parametrize("payload", [b"1.5", b'{"value": 2.4}'])
def test_a_payload_without_the_sensor_its_pattern_lacks_names_the_pattern(
    ingest_grid: Grid, payload: bytes
) -> None:
    """Trial 3: ``unknown_sensor: field "sensor_id" is null`` for {"value": 2.4} on
    ``gw/{gateway}/up``; the sensor is not unknown, it is missing, and the pattern is why."""
    m = MqttMapping.build(ingest_grid, ["gw/{gateway}/up"])
    with pytest.raises(EventError) as err:
        m.to_document("gw/g7/up", payload, T_NOW)
    assert (err.value.code, err.value.field) == ("missing_field", "sensor_id")
    assert str(err.value).startswith('field "sensor_id" is missing: the topic pattern ')
    assert "'gw/{gateway}/up' has no {sensor_id} level" in str(err.value)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"sensor_id": ["gauge-2"], "value": 1.5}',
        b'{"sensor_id": {"id": "gauge-2"}, "value": 1.5}',
        b'{"sensor_id": 7, "value": 1.5}',
        b'{"sensor_id": "", "value": 1.5}',
        b'{"sensor_id": "gauge-2", "kind": ["water_level"], "value": 1.5}',
        b'{"sensor_id": "gauge-2", "grid_cell": {}, "value": 1.5}',
    ],
)
def test_a_payload_field_that_is_not_text_is_named(ingest_grid: Grid, payload: bytes) -> None:
    # A list or an object as sensor_id reached the grid lookup: TypeError, dead-lettered
    # "internal: unhashable type 'list'" without the field.
    m = MqttMapping.build(ingest_grid, ["gw/{gateway}/up"])
    with pytest.raises(EventError) as err:
        m.to_document("gw/g7/up", payload, T_NOW)
    assert err.value.code == "bad_type"
    assert str(err.value).startswith(f'field "{err.value.field}" is ')
    assert str(err.value).endswith(": expected a non-empty string")


def test_fields_can_be_renamed_and_come_from_the_payload(ingest_grid: Grid) -> None:
    m = MqttMapping.build(ingest_grid, ["sensors/{sensor_id}"], value_field="v", ts_field="t")
    doc = m.to_document("sensors/air-1", b'{"v": 41, "t": 1789999000}', T_NOW)
    assert (doc["sensor_id"], doc["kind"], doc["unit"], doc["value"]) == (
        "air-1",
        "pm25",
        "ug/m3",
        41.0,
    )
    assert m.subscriptions == ["sensors/+"]


@pytest.mark.parametrize(
    ("topic", "payload", "code", "field"),
    [
        ("elsewhere/gauge-1", b"1", "unknown_topic", "topic"),
        ("city/e/gauge-1/water_level", b"high", "bad_payload", "payload"),
        ("city/e/gauge-1/water_level", b"[1, 2]", "bad_payload", "payload"),
        ("city/e/gauge-1/water_level", b'{"reading": 1}', "missing_field", "value"),
        ("city/e/gauge-1/water_level", b'{"value": 1, "ts": 1790000000000}', "bad_timestamp", "ts"),
        ("city/e/gauge-1/water_level", b'{"value": 1, "ts": true}', "bad_type", "ts"),
        (
            "city/e/gauge-1/water_level",
            b'{"value": 1, "sensor_id": "gauge-2"}',
            "topic_mismatch",
            "sensor_id",
        ),
        ("city/e/gauge-99/water_level", b"1", "unknown_sensor", "sensor_id"),
    ],
)
def test_unmappable_messages_name_the_field(
    mapping: MqttMapping, topic: str, payload: bytes, code: str, field: str
) -> None:
    with pytest.raises(EventError) as err:
        mapping.to_document(topic, payload, T_NOW)
    assert (err.value.code, err.value.field) == (code, field)


def test_a_payload_encoded_twice_is_said_so(mapping: MqttMapping) -> None:
    """t165: ``"{\\"value\\": 2.1}"`` was "expected a number or a JSON object" alone."""
    with pytest.raises(EventError) as err:
        mapping.to_document("city/e/gauge-1/water_level", b'"{\\"value\\": 2.1}"', T_NOW)
    assert (
        err.value.code,
        str(err.value).endswith("encoded twice? send the object itself, not as a string)"),
    ) == ("bad_payload", True), str(err.value)


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (
            b'{"n": "water_level", "u": "ft", "v": 2.1}',
            "this looks like a SenML record (RFC 8428: 'n', 'v'), which the MQTT ingest does "
            'not read: send one reading a payload, a number or {"value": \u2026, "ts": '
            "\u2026}, the sensor and kind in the topic",
        ),
        (
            b'{"bn": "gauge-1/", "e": [{"n": "water_level", "v": 2.1}]}',
            "this looks like a SenML record",
        ),
        (b'{"val": 2.1}', "the payload gives a number under 'val' (--value-field val?)"),
        (b'{"level": "2.1"}', "the payload gives a number under 'level' (--value-field level?)"),
        (
            b'{"a": 1, "b": 2}',
            "the payload gives numbers under 'a', 'b': which is the value? (--value-field)",
        ),
        (
            b'{"data": {"value": 2.1}}',
            "it is one level down, under 'data': send the object under it as the payload",
        ),
        (b'{"note": "x"}', ""),
    ],
)
def test_a_payload_without_its_value_says_where_a_value_seems_to_be(
    mapping: MqttMapping, payload: bytes, says: str
) -> None:
    """t165: a SenML record, a number under another key, a value one object down were
    each "field "value" is missing" alone, which sent the sender looking for a value it
    had sent; MQTT payloads in SenML (LwM2M gateways) are common."""
    with pytest.raises(EventError) as err:
        mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    assert (err.value.code, err.value.field) == ("missing_field", "value")
    text, expected = str(err.value), 'field "value" is missing' + (f": {says}" if says else "")
    assert text.startswith(expected) and (says or text == expected), text


@pytest.mark.parametrize(
    ("ts", "says"),
    [
        # Fourth new-user trial, item 11: milliseconds got "expected epoch seconds" alone.
        (
            "1790000000000",
            "expected epoch seconds (1790000000000 looks like epoch milliseconds: "
            "2026-09-21T14:13:20Z in seconds; divide by 1,000)",
        ),
        # t109: micro- and nanoseconds (InfluxDB, Go's UnixNano) got "expected epoch
        # seconds" alone, and a negative epoch did not say it is before 1970.
        (
            "1790000000000000",
            "expected epoch seconds (1790000000000000 looks like epoch microseconds: "
            "2026-09-21T14:13:20Z in seconds; divide by 1,000,000)",
        ),
        (
            "1790000000000000000",
            "expected epoch seconds (1790000000000000000 looks like epoch nanoseconds: "
            "2026-09-21T14:13:20Z in seconds; divide by 1,000,000,000)",
        ),
        (
            '"1790000000000000"',
            "expected epoch seconds (1790000000000000 looks like epoch microseconds: "
            "2026-09-21T14:13:20Z in seconds; divide by 1,000,000)",
        ),
        ("1e25", "expected epoch seconds"),
        ("-5", "expected epoch seconds (a negative epoch is before 1970)"),
    ],
)
def test_epoch_milliseconds_are_said_to_look_like_them(
    mapping: MqttMapping, ts: str, says: str
) -> None:
    payload = f'{{"value": 1, "ts": {ts}}}'.encode()
    with pytest.raises(EventError) as err:
        mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    assert (err.value.code, err.value.reason) == ("bad_timestamp", says)


def test_a_retained_message_without_its_own_time_is_refused(mapping: MqttMapping) -> None:
    # The broker's stored last value arrives on subscribing, perhaps days old: stamped on
    # receipt it would be an old value at a new time.
    with pytest.raises(EventError) as err:
        mapping.to_document("city/e/gauge-1/water_level", b"2.5", T_NOW, retained=True)
    assert (err.value.code, err.value.field) == ("retained_without_time", "ts")
    assert str(err.value).startswith('field "ts" is missing: a retained message')
    doc = mapping.to_document(
        "city/e/gauge-1/water_level", b'{"value": 2.5, "ts": 1789999700}', T_NOW, retained=True
    )
    assert doc["ts"] == "2026-09-21T14:08:20Z"


def test_a_json_payload_that_does_not_parse_says_why(mapping: MqttMapping) -> None:
    payload = b'{"value": 1.5,}'
    with pytest.raises(EventError) as err:
        mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    assert err.value.code == "bad_payload" and "trailing comma" in str(err.value)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b'{"value": 1' + b"0" * 400 + b"}", "out_of_range"),  # bad_payload "infinity" before
        (b'{"value": NaN}', "not_finite"),  # bad_payload "unexpected character" before
        (b'{"value": -Infinity}', "not_finite"),
        (b"NaN", "not_finite"),
        # Past the plain-number path (a BOM), an integer float() cannot take: OverflowError.
        (b"\xef\xbb\xbf1" + b"0" * 400, "out_of_range"),
    ],
)
def test_json_is_read_as_the_worker_reads_it_so_the_field_is_named(
    mapping: MqttMapping, ingest_grid: Grid, payload: bytes, code: str
) -> None:
    # One reading of JSON at every edge (streams.events.decode_json): what the worker
    # names by field, MQTT does too.
    doc = mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    with pytest.raises(EventError) as err:
        EventValidator(ingest_grid).reading_document(doc, T_NOW)
    assert (err.value.code, err.value.field) == (code, "value")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"value": 2.5, "value": 9.5}',
        b'{"value": 2.5, "ts": 1789999700, "ts": 1789999760}',
        b'{"value": 2.5, "sensor_id": "gauge-1", "sensor_id": "gauge-2"}',
        b'{"value": 2.5, "v\\u0061lue": 9.5}',  # the same key, one spelt with an escape
    ],
)
def test_a_key_given_twice_is_bad_payload_naming_it(mapping: MqttMapping, payload: bytes) -> None:
    # Trial 13: the last of the two was taken silently, a reading nobody meant.
    with pytest.raises(EventError) as err:
        mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    assert err.value.code == "bad_payload"
    assert "is given twice in one object" in str(err.value)


def test_a_payload_with_a_byte_order_mark_is_read_past_it(mapping: MqttMapping) -> None:
    # PowerShell and Windows tools write one; the worker already read past it.
    doc = mapping.to_document("city/e/gauge-1/water_level", b'\xef\xbb\xbf{"value": 2.5}', T_NOW)
    assert doc["value"] == 2.5


@pytest.mark.parametrize("payload", [b"1e400", b"-1e400", b'{"value": "1e999"}'])
def test_a_number_too_large_for_a_double_is_not_finite(
    mapping: MqttMapping, ingest_grid: Grid, payload: bytes
) -> None:
    # Before: the ingest's JSON round trip wrote inf as null, refused as "None: expected a
    # number".
    doc = mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    with pytest.raises(EventError) as err:
        EventValidator(ingest_grid).reading_document(doc, T_NOW)
    assert (err.value.code, err.value.field) == ("not_finite", "value")


@pytest.mark.parametrize(
    "digits",
    [b"9" * 400, b"-" + b"9" * 400, b" " + b"9" * 5000 + b"\n", b"+" + b"9" * 309],
)
@pytest.mark.parametrize("form", [b"%s", b'{"value": "%s"}'])
def test_a_plain_integer_past_a_double_is_out_of_range_showing_its_digits(
    mapping: MqttMapping, ingest_grid: Grid, digits: bytes, form: bytes
) -> None:
    # Trial 19: float() made it inf, refused not_finite showing 'inf', where the same
    # integer in JSON ({"value": 999...}) is out_of_range showing its digits, as the
    # worker says it.
    payload = form.replace(b"%s", digits.strip() if form != b"%s" else digits)
    doc = mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    with pytest.raises(EventError) as err:
        EventValidator(ingest_grid).reading_document(doc, T_NOW)
    assert (err.value.code, err.value.field) == ("out_of_range", "value")
    shown = digits.strip().decode().lstrip("+")[:60]
    assert f'field "value" is {shown}' in str(err.value)


def test_a_topic_that_is_not_utf8_is_read_with_its_bytes_escaped_not_raised() -> None:
    msg = mqtt.MQTTMessage(mid=1, topic=b"city/e/gauge-\xff/water_level")
    assert topic_text(msg) == "city/e/gauge-\\xff/water_level"  # paho's .topic raises


@pytest.mark.parametrize("ts", [b"1" + b"0" * 400, b"-1" + b"0" * 400])
def test_an_epoch_integer_past_a_double_is_a_bad_timestamp(mapping: MqttMapping, ts: bytes) -> None:
    # Trial 13: math.isfinite() raised OverflowError, dead-lettered as "internal".
    payload = b'{"value": 2.5, "ts": ' + ts + b"}"
    with pytest.raises(EventError) as err:
        mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    assert (err.value.code, err.value.field) == ("bad_timestamp", "ts")


@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        (b"-1e400", "-1e400"),  # a plain number
        (b" 1e999\r\n", "1e999"),  # a plain number, as a gateway's line ends it
        (b'{"value": 1e999}', "1e999"),
        (b'\xef\xbb\xbf{"value": -1.5e400}', "-1.5e400"),
        (b'{"value": 1' + b"0" * 400 + b".0}", "1" + "0" * 76 + "..."),
    ],
)
def test_a_number_past_a_double_is_named_as_sent(
    mapping: MqttMapping, ingest_grid: Grid, payload: bytes, shown: str
) -> None:
    """t98: ``-1e400`` was dead-lettered as ``field "value" is -inf``, a value nobody
    sent; now as its own text, still ``not_finite``."""
    doc = mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    with pytest.raises(EventError) as err:
        EventValidator(ingest_grid).reading_document(doc, T_NOW)
    assert (err.value.code, err.value.field) == ("not_finite", "value")
    assert f'field "value" is {shown}: expected a finite number' in str(err.value)
    assert "inf:" not in str(err.value)


@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        (b"-1e-400", "-1e-400"),  # a plain number
        (b'{"value": 1E-999}', "1E-999"),
        (b'\xef\xbb\xbf{"value": -2.5e-400}', "-2.5e-400"),
    ],
)
def test_a_number_below_a_double_is_named_as_sent(
    mapping: MqttMapping, ingest_grid: Grid, payload: bytes, shown: str
) -> None:
    """t183: ``-1e-400`` was read as -0.0, a value nobody sent, and sent on as a reading
    of 0; now ``not_finite`` as its own text, as the worker refuses it."""
    doc = mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    with pytest.raises(EventError) as err:
        EventValidator(ingest_grid).reading_document(doc, T_NOW)
    assert (err.value.code, err.value.field) == ("not_finite", "value")
    assert f'field "value" is {shown}: not zero as written' in str(err.value)


@pytest.mark.parametrize(
    "payload",
    [b"nan", b"-nan", b" inf\n", b"-Infinity", b"INF", b'{"value": "nan"}', b'{"value": "-inf"}'],
)
def test_a_float_that_holds_no_reading_is_not_finite_showing_it_as_sent(
    mapping: MqttMapping, ingest_grid: Grid, payload: bytes
) -> None:
    # t105: ESPHome and Arduino publish "nan" for a sensor that read nothing; it was
    # bad_payload "not valid JSON ... found 'nan'" (and "-inf" in a JSON string bad_type),
    # where JSON's NaN is not_finite: one fault, counted under two reasons.
    doc = mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    with pytest.raises(EventError) as err:
        EventValidator(ingest_grid).reading_document(doc, T_NOW)
    assert (err.value.code, err.value.field) == ("not_finite", "value")
    sent = payload.strip().decode().removeprefix('{"value": "').removesuffix('"}')
    assert f'field "value" is {sent}:' in str(err.value)


@pytest.mark.parametrize("payload", [b"infinite", b"nanx", b"na n"])
def test_a_word_that_only_starts_like_nan_is_no_number(
    mapping: MqttMapping, payload: bytes
) -> None:
    with pytest.raises(EventError) as err:
        mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
    assert err.value.code == "bad_payload"


@pytest.mark.parametrize(
    ("topic", "says"),
    [
        # t109: MQTT's + matches an empty level; each was a reading with kind '' or
        # sensor_id '', refused for fields the gateway never sent.
        ("city/e/gauge-1/", "its {kind} level is empty (a trailing slash or '//'?)"),
        ("city/e//water_level", "its {sensor_id} level is empty"),
        ("city//gauge-1/water_level", "its {district} level is empty"),
    ],
)
def test_an_empty_topic_level_is_named_as_such(mapping: MqttMapping, topic: str, says: str) -> None:
    with pytest.raises(EventError) as err:
        mapping.to_document(topic, b"1.5", T_NOW)
    assert (err.value.code, err.value.field, err.value.value) == ("unknown_topic", "topic", topic)
    assert says in err.value.reason


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        # t109: a decimal comma got "expected a number" or JSON's words alone.
        (b"1,5", "payload", "(a decimal comma? send 1.5, with a point)"),
        (b" -12,25 ", "payload", "(a decimal comma? send -12.25, with a point)"),
        (b'{"value": "1,5"}', "value", "(a decimal comma? send 1.5, with a point)"),
        (b"1,000", "payload", "or a thousands separator, 1000? send it so)"),
        # t143: a number with its unit, as a display shows it.
        (
            b"2.36 ft",
            "payload",
            "(a number with its unit? send 2.36 alone, the unit in its own field)",
        ),
        (
            b'{"value": "2.36 ft"}',
            "value",
            "(a number with its unit? send 2.36 alone, the unit in its own field)",
        ),
    ],
)
def test_a_decimal_comma_is_said(
    mapping: MqttMapping, ingest_grid: Grid, payload: bytes, field: str, says: str
) -> None:
    with pytest.raises(EventError) as err:
        doc = mapping.to_document("city/e/gauge-1/water_level", payload, T_NOW)
        EventValidator(ingest_grid).reading_document(doc, T_NOW)
    assert err.value.field == field and err.value.reason.endswith(says)


def test_a_readings_pack_over_mqtt_is_said_as_a_pack_not_as_a_missing_value(
    mapping: MqttMapping,
) -> None:
    """A gateway publishing citybrain's own ``readings/1`` pack over MQTT was told
    ``field "value" is missing``, true of the pack but no help: the MQTT door reads a
    number, an object of its mapped fields or an array of them, and the pack belongs at
    the HTTP ingest or on the readings topic; said so, naming the schema."""
    pack = {
        "schema": "readings/1",
        "readings": [{"ts": "2026-09-21T14:13:20Z", "sensor_id": "gauge-1", "value": 2.0}],
    }
    with pytest.raises(EventError) as err:
        mapping.to_document("city/east/gauge-1/water_level", orjson.dumps(pack), T_NOW)
    assert (err.value.code, err.value.field, err.value.value) == (
        "bad_payload",
        "payload.schema",
        "readings/1",
    )
    assert "POST /ingest/v1/readings" in err.value.reason
    # A reading/1 document carries its value: read as any object of the mapped fields.
    reading = {"schema": "reading/1", "value": 2.0}
    doc = mapping.to_document("city/east/gauge-1/water_level", orjson.dumps(reading), T_NOW)
    assert doc["value"] == 2.0
