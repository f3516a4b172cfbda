"""The warning line for a range kafka-python cannot read names topic, partition, offsets
and the client's error once (its own text repeats the class name after ``[Error 2]``)."""

from __future__ import annotations

from kafka.errors import CorruptRecordError, UnsupportedCodecError

from citybrain.kafka_read import Skipped, _one_line


def test_the_error_is_named_once_without_kafka_pythons_error_code() -> None:
    said = _one_line(CorruptRecordError("Found invalid record structure: UnicodeDecodeError(…)"))
    assert said == "CorruptRecordError: Found invalid record structure: UnicodeDecodeError(…)"
    assert _one_line(UnsupportedCodecError("zstd")) == "UnsupportedCodecError: zstd"
    assert _one_line(CorruptRecordError("a\nb")) == "CorruptRecordError: a b"  # one line


def test_the_line_names_topic_partition_and_the_inclusive_offsets() -> None:
    line = Skipped("p.deadletter", 1, 2, 4, "CorruptRecordError: crc").line()
    assert line == (
        "p.deadletter/1 offsets 2-4: records kafka-python cannot read, skipped "
        "(CorruptRecordError: crc)"
    )
