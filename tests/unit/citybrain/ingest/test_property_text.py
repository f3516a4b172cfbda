"""t117: an MQTT 5 PUBLISH whose text property (content type, a user property) holds a
BOM, U+0000 or a byte that is not UTF-8 is read, its property kept (the bytes that are
not UTF-8 as escapes). paho refused it while reading the packet: the ingest's
connection dropped and the broker sent the same message again at every reconnect
(tests/integration/test_ingest.py shows it through Mosquitto)."""

from __future__ import annotations

import struct

import pytest
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citybrain.ingest.mqtt import carried_headers, mqtt_properties, read_property_text


def text(raw: bytes) -> bytes:
    return struct.pack("!H", len(raw)) + raw


def user_property(name: bytes, value: bytes) -> bytes:
    """A PUBLISH's property block holding one user property (identifier 0x26)."""
    body = b"\x26" + text(name) + text(value)
    return bytes([len(body)]) + body


@pytest.mark.parametrize(
    "value", ["\ufeffgw-1".encode(), b"gw\x00-1", b"gw-\xff", b"\xed\xa0\x80", b"plain"]
)  # a BOM, U+0000, a byte not UTF-8, a surrogate written as UTF-8 (CESU-8)
def test_a_user_property_paho_refused_is_read_and_carried_as_sent(value: bytes) -> None:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.unpack(user_property(b"gate\xffway", value))  # type: ignore[no-untyped-call]

    class Msg:
        properties = props

    # The value as the bytes sent; the name, a Kafka header's, as text (\xff escaped).
    assert carried_headers(mqtt_properties(Msg())) == [
        ("citybrain.original.header.gate\\xffway", value)
    ]


def test_a_length_past_the_packet_is_still_malformed() -> None:
    with pytest.raises(MalformedPacket):
        read_property_text(struct.pack("!H", 10) + b"abc", 5)
    with pytest.raises(MalformedPacket):
        read_property_text(b"\x00", 1)
    assert read_property_text(text(b"ok") + b"rest", 9) == ("ok", 4)
