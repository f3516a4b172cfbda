"""A reading or report on another partition than its key's says which key, or which
producer's partitioner, put it there (t170: ``wrong_partition`` named neither, and a
librdkafka producer, which hashes keys with CRC32 by default, had half its sensors'
readings refused with nothing saying why)."""

from __future__ import annotations

import zlib

from streams.partitioning import placement_hint, sensor_partition


def test_a_key_librdkafka_places_by_crc32_is_said_so() -> None:
    assert sensor_partition("gauge-2", 2) == 0 and zlib.crc32(b"gauge-2") % 2 == 1
    hint = placement_hint(b"gauge-2", "gauge-2", 1, 2)
    assert "librdkafka's default partitioner consistent_random" in hint
    assert "set partitioner=murmur2_random" in hint


def test_no_key_another_key_and_another_partitioner_are_each_said() -> None:
    assert placement_hint(None, "gauge-2", 1, 2) == (
        " (it has no key, so its producer chose the partition: key it by 'gauge-2')"
    )
    assert "its key is 'gauge-1', not 'gauge-2', and placed it" in placement_hint(
        b"gauge-1", "gauge-2", 1, 2
    )
    assert "its key is b'\\xff\\xfe', not 'gauge-2'" in placement_hint(b"\xff\xfe", "gauge-2", 1, 2)
    # The right key on a partition neither murmur2 nor CRC32 gives it.
    hint = placement_hint(b"gauge-2", "gauge-2", 2, 4)
    assert zlib.crc32(b"gauge-2") % 4 != 2 and "CRC32" not in hint
    assert "its producer's partitioner is another, or it chose the partition itself" in hint
    long = placement_hint(b"k" * 1_000_000, "gauge-2", 1, 2)
    assert len(long) < 200  # a 1 MB key is quoted cut


def test_a_key_wrapped_by_a_converter_or_serializer_is_said_as_such() -> None:
    # Kafka Connect's JsonConverter writes a text key in quotes, or in its envelope with
    # schemas.enable=true; a Schema Registry serializer frames it: each hashes elsewhere.
    envelope = b'{"schema": {"type": "string", "optional": false}, "payload": "gauge-2"}'
    for key, said in (
        (b'"gauge-2"', "'gauge-2' written as JSON text, in quotes"),
        (envelope, "a Kafka Connect JsonConverter envelope of 'gauge-2' (schemas.enable=true)"),
        (b"\x00\x00\x00\x00\x01\x0egauge-2", "a Confluent Schema Registry frame"),
    ):
        hint = placement_hint(key, "gauge-2", 1, 2)
        assert said in hint and "key.converter=org.apache.kafka.connect.storage." in hint
    assert "JSON text" not in placement_hint(b'"gauge-1"', "gauge-2", 1, 2)  # another id
