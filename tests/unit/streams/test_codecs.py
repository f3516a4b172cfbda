"""Every Kafka compression codec is decodable by the worker's and the tools' consumers."""

from __future__ import annotations

import aiokafka.codec
import kafka.codec
import pytest

from streams import codecs
from streams.codecs import MissingCodecError, missing_codecs, require_codecs

PAYLOAD = b'{"schema": "reading/1", "value": 1.5}' * 40


def test_the_installed_consumers_decode_every_codec_kafka_allows() -> None:
    # A field producer's lz4 batch stopped the worker: cramjam was no dependency.
    assert missing_codecs() == []
    require_codecs()
    assert aiokafka.codec.lz4_decode(aiokafka.codec.lz4_encode(PAYLOAD)) == PAYLOAD
    assert aiokafka.codec.zstd_decode(aiokafka.codec.zstd_encode(PAYLOAD)) == PAYLOAD
    assert aiokafka.codec.snappy_decode(aiokafka.codec.snappy_encode(PAYLOAD)) == PAYLOAD
    assert kafka.codec.lz4_decode(kafka.codec.lz4_encode(PAYLOAD)) == PAYLOAD
    assert kafka.codec.zstd_decode(kafka.codec.zstd_encode(PAYLOAD)) == PAYLOAD
    assert kafka.codec.snappy_decode(kafka.codec.snappy_encode(PAYLOAD)) == PAYLOAD


def test_a_missing_codec_is_named_with_the_package_that_decodes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = dict(codecs._CHECKS)
    checks["aiokafka"] = (("lz4", lambda: False, "cramjam"),)
    monkeypatch.setattr(codecs, "_CHECKS", checks)
    with pytest.raises(MissingCodecError) as raised:
        require_codecs()
    assert str(raised.value).startswith(
        "cannot decode Kafka batches compressed with lz4 for aiokafka (package cramjam)"
    )
    assert "`pip install cramjam`" in str(raised.value)
