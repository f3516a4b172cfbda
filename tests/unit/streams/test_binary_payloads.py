"""Bytes that are no JSON text are said as what they look like, at every door (t137): a
gzipped Kafka value, MQTT payload or HTTP body (sent without ``Content-Encoding``) was
refused as ``byte 0x00 (NUL) at offset 3 (UTF-16 or UTF-32 text? re-encode it as
UTF-8 …)``, sending its producer to look for a text encoding; so were zlib, zstd, bzip2
and xz data, MessagePack, CBOR and any binary data with a NUL, and UTF-16 or UTF-32 with
a byte order mark was said to be "without a byte order mark"."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib

import pytest

from citybrain.ingest.http import BadBody, readings_from_body
from citybrain.ingest.mapping import MqttMapping
from playbooks.encodings import binary_format
from playbooks.grid import Grid
from playbooks.loader import load_grid
from streams.errors import EventError
from streams.events import EventValidator, decode_json
from tests.services import FIXTURES

NOW = 1_790_000_000.0
DOC = (
    b'{"schema": "reading/1", "ts": "2026-09-21T14:00:00Z", "sensor_id": "gauge-1", '
    b'"kind": "water_level", "value": 2.5, "unit": "ft", "grid_cell": "c-bridge"}'
)
# A map of four keys as msgpack.packb and cbor2.dumps write it (neither is installed).
MSGPACK = b"\x84\xa6schema\xa9reading/1\xa5value\xcb@\x04\x00\x00\x00\x00\x00\x00\xa1a\x00\xa1b\x01"
CBOR = b"\xa2fschemaireading/1evalue\xfb@\x04\x00\x00\x00\x00\x00\x00"
COMPRESSED = "data, not JSON text? send the JSON itself, uncompressed"
SERIALISED = "data, not JSON text? send it as JSON text"
CASES = [
    (gzip.compress(DOC), f"gzip-compressed {COMPRESSED}"),
    (zlib.compress(DOC), f"zlib-compressed {COMPRESSED}"),
    (bz2.compress(DOC), f"bzip2-compressed {COMPRESSED}"),
    (lzma.compress(DOC), f"xz-compressed {COMPRESSED}"),
    (b"\x28\xb5\x2f\xfd\x20\x00\x00", f"zstd-compressed {COMPRESSED}"),
    # (no NUL in these bytes: said after the first byte that is not UTF-8)
    (b"\x04\x22\x4d\x18\x64\x40\xa7", f"LZ4-compressed {COMPRESSED}"),
    (MSGPACK, f"MessagePack {SERIALISED}"),
    (CBOR, f"CBOR {SERIALISED}"),
    (b"\xff\xfe" + DOC.decode().encode("utf-16-le"), "(UTF-16 (it starts with a UTF-16 byte"),
    (DOC.decode().encode("utf-32"), "(UTF-32 (it starts with a UTF-32 byte order mark) text?"),
    (DOC.decode().encode("utf-16-le"), "(UTF-16LE without a byte order mark text? re-encode"),
    # A protobuf message: no form it could be named by.
    (b"\x0a\x07gauge-1\x11\x00\x00\x00\x00\x00\x00\x04@", "(binary data, not JSON text:"),
]


@pytest.mark.parametrize(("raw", "said"), CASES)
def test_bytes_that_are_no_json_text_are_said_as_what_they_look_like(raw: bytes, said: str) -> None:
    with pytest.raises(EventError) as refused:
        decode_json(raw)
    assert refused.value.code == "bad_json" and said in refused.value.reason
    assert "UTF-16 or UTF-32" not in refused.value.reason


@pytest.mark.parametrize(("raw", "said"), CASES)
def test_each_door_says_it_so(raw: bytes, said: str) -> None:
    grid = load_grid(FIXTURES / "grid.yaml")
    with pytest.raises(EventError) as kafka:  # the readings agent's validator
        EventValidator(grid).readings(raw, NOW)
    assert said in kafka.value.reason
    with pytest.raises(BadBody) as http:  # an HTTP ingest body sent without Content-Encoding
        readings_from_body(raw, EventValidator(grid), NOW)
    assert said in http.value.errors[0]["message"]
    mapping = MqttMapping.build(load_grid(FIXTURES / "grid-ingest.yaml"))
    with pytest.raises(EventError) as mqtt:
        mapping.to_document("city/east/gauge-1/water_level", raw, NOW)
    assert said in mqtt.value.reason


@pytest.mark.parametrize(
    "text",
    [DOC, b"x", b"xyz", b'{"a": "\xc3\xa9"}', b"\x80abc", "café".encode("latin-1"), b"\xa9 2026"],
)
def test_text_is_no_binary_form(text: bytes) -> None:
    # (ASCII and Latin-1 text: the words that name them stay the text encodings')
    assert binary_format(text) is None


def test_latin1_text_is_still_said_as_latin1(grid: Grid) -> None:
    with pytest.raises(EventError) as refused:
        EventValidator(grid).readings(DOC.replace(b"ft", "f\u00e9t".encode("latin-1")), NOW)
    assert "Latin-1 or Windows-1252 text? re-encode it as UTF-8" in refused.value.reason
