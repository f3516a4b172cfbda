"""Another system's wrapping of a document is named for what it is, at every door (t170).

What field producers put on Kafka around or instead of a JSON document: the Confluent
Schema Registry's wire format (a zero byte, a 4-byte schema id, then Avro, Protobuf or
JSON), Kafka Connect's JsonConverter envelope (``schemas.enable=true``, the default of
many connectors), a CloudEvents event in structured mode, or in binary mode (its
attributes as ``ce_*`` headers, said from the record's headers), JSON encoded twice, CBOR
as streaming encoders write it. Each was "binary data", "expected a JSON object",
``field "schema" is missing`` or ``field "schema" is {…}`` alone, naming none of them."""

from __future__ import annotations

import json

import pytest

from citybrain.ingest.http import BadBody, readings_from_body
from playbooks.encodings import binary_format, schema_registry_form
from playbooks.grid import Grid
from streams.errors import EventError
from streams.events import EventValidator, message_json, record_form

NOW = 1_790_000_000.0
READING = {
    "schema": "reading/1",
    "ts": "2026-09-21T14:00:00Z",
    "sensor_id": "gauge-1",
    "kind": "water_level",
    "value": 2.5,
    "unit": "ft",
    "grid_cell": "c-bridge",
}
DOC = json.dumps(READING).encode()
CONNECT_SCHEMA = {
    "type": "struct",
    "fields": [{"type": "string", "optional": False, "field": "sensor_id"}],
    "optional": False,
}
CLOUDEVENT = {"specversion": "1.0", "id": "e-1", "source": "/gw/7", "type": "city.reading"}
AVRO = b"\x0egauge-1\x00\x00\x00\x00\x00\x00\x04@"
REGISTRY = "Confluent Schema Registry wire format (magic byte 0, schema id"
# (bytes, code, what the reason must say)
CASES = [
    (b"\x00\x00\x00\x00\x07" + DOC, "bad_json", f"{REGISTRY} 7, then JSON text)"),
    (b"\x00\x00\x01\x00\x01" + AVRO, "bad_json", f"{REGISTRY} 65537, then Avro or Protobuf"),
    (
        json.dumps({"schema": CONNECT_SCHEMA, "payload": READING}).encode(),
        "bad_schema",
        "a Kafka Connect JsonConverter envelope",
    ),
    (
        json.dumps({"schema": None, "payload": READING}).encode(),
        "bad_schema",
        "value.converter.schemas.enable=false",
    ),
    (
        json.dumps({**CLOUDEVENT, "data": READING}).encode(),
        "bad_schema",
        "a CloudEvents event in structured mode (specversion '1.0', type 'city.reading'",
    ),
    (
        json.dumps({**CLOUDEVENT, "data_base64": "eyJ9"}).encode(),
        "bad_schema",
        "send the bytes its data_base64 holds as the message",
    ),
    (json.dumps(DOC.decode()).encode(), "bad_json", "JSON text in a JSON string"),
    (b"\xbfeschemaireading/1\xff", "bad_json", "CBOR data, not JSON text"),
    (b"\xd9\xd9\xf7\xa1eschemaireading/1", "bad_json", "CBOR data, not JSON text"),
    # A list of maps, as msgpack.packb([{...}, {...}]) writes it.
    (b"\x92\x81\xa6schema\xa9reading/1\x81\xa1a\x01", "bad_json", "MessagePack data"),
]
IDS = ["registry-json", "registry-avro", "connect", "connect-null", "ce", "ce-b64", "twice"]
IDS += ["cbor-indefinite", "cbor-tagged", "msgpack-list"]


@pytest.mark.parametrize(("raw", "code", "said"), CASES, ids=IDS)
def test_the_readings_and_incidents_topics_name_each_wrapping(
    grid: Grid, raw: bytes, code: str, said: str
) -> None:
    validator = EventValidator(grid)
    with pytest.raises(EventError) as reading:
        validator.readings(raw, NOW)
    assert reading.value.code == code and said in str(reading.value)
    with pytest.raises(EventError) as incident:
        validator.incident(raw.replace(b"reading", b"incident"), NOW)
    assert said.replace("reading", "incident") in str(incident.value)


@pytest.mark.parametrize(("raw", "code", "said"), CASES, ids=IDS)
def test_the_worker_s_own_topics_name_each_wrapping(raw: bytes, code: str, said: str) -> None:
    # alerts, routed, commands, corroboration: bad_json naming it, as a tombstone is.
    with pytest.raises(EventError) as own:
        message_json(raw)
    assert own.value.code == "bad_json" and said in str(own.value)


@pytest.mark.parametrize(("raw", "code", "said"), CASES[2:6], ids=IDS[2:6])
def test_the_http_ingest_names_an_envelope_too(
    grid: Grid, raw: bytes, code: str, said: str
) -> None:
    with pytest.raises(BadBody) as http:
        readings_from_body(raw, EventValidator(grid), NOW)
    assert said in http.value.errors[0]["message"]


def test_the_documents_themselves_pass_and_wide_text_is_no_registry_frame(grid: Grid) -> None:
    assert EventValidator(grid).readings(DOC, NOW)[1][0].sensor_id == "gauge-1"
    # citybrain's own shapes never look like a wrapping.
    own = {"id": "c-1", "run_id": "grp-1.0", "action": "ack", "type": "mark", "source": "x"}
    assert message_json(json.dumps(own).encode()) == own
    for wide in ("utf-16-be", "utf-32-be"):
        assert schema_registry_form(DOC.decode().encode(wide)) is None
    assert binary_format(b"\x00\x00\x00\x07") is None  # shorter than the frame


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        (
            [("ce_specversion", b"1.0"), ("ce_type", b"city.reading"), ("ce_source", b"/gw")],
            " (its ce_* headers say it is a CloudEvents event in binary mode (ce_type "
            "'city.reading', ce_source '/gw'): its value, the event's data, is read as the "
            "message)",
        ),
        (
            [("content-type", b"application/avro")],
            " (its content-type header says 'application/avro', which is not JSON)",
        ),
        (
            {"__value_schema_id": b"\x01" * 17},
            " (its __value_schema_id header says a Schema Registry serializer wrote it",
        ),
        ([(b"\xff", b"x"), ("content-type", b"application/vnd.x+json; charset=utf-8")], ""),
        ([("content-type", b"\xff")], ""),
        (None, ""),
    ],
    ids=["ce-binary", "avro", "registry-header", "json-type", "not-utf8", "none"],
)
def test_what_a_record_s_headers_say_it_is(headers: object, said: str) -> None:
    assert record_form(headers).startswith(said) and bool(said) == bool(record_form(headers))
