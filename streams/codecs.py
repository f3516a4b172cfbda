"""Every compression codec Kafka allows, decodable where citybrain reads Kafka.

Field producers compress their batches (the Java client's ``compression.type``,
librdkafka's ``compression.codec``: gzip, snappy, lz4, zstd), and a consumer must decode
whatever the producer chose. aiokafka (the worker's consumer) decodes snappy, lz4 and zstd
only with ``cramjam`` installed, kafka-python (the tools' consumer) only with
``python-snappy``, ``lz4`` and ``zstandard``; both are declared in pyproject.toml as the
libraries' extras. Without them a compressed batch raised ``UnsupportedCodecError`` in the
worker's fetch and stopped the worker, and again at every start (docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable

import aiokafka.codec
import kafka.codec

from streams.errors import StreamsError

# What each consumer needs for a codec (gzip is Python's own).
_CHECKS: dict[str, tuple[tuple[str, Callable[[], bool], str], ...]] = {
    "aiokafka": (
        ("snappy", aiokafka.codec.has_snappy, "cramjam"),
        ("lz4", aiokafka.codec.has_lz4, "cramjam"),
        ("zstd", aiokafka.codec.has_zstd, "cramjam"),
    ),
    "kafka-python": (
        ("snappy", kafka.codec.has_snappy, "python-snappy"),
        ("lz4", kafka.codec.has_lz4, "lz4"),
        ("zstd", kafka.codec.has_zstd, "zstandard"),
    ),
}


class MissingCodecError(StreamsError):
    """A Kafka compression codec cannot be decoded: a broken install."""


def missing_codecs() -> list[tuple[str, str, str]]:
    """``(client, codec, package)`` for every codec a Kafka client here cannot decode."""
    return [
        (client, codec, package)
        for client, checks in _CHECKS.items()
        for codec, available, package in checks
        if not available()
    ]


def require_codecs() -> None:
    """Raise ``MissingCodecError`` naming each codec and the package that decodes it, if
    any Kafka compression codec cannot be decoded (the worker would stop at the first
    batch a field producer compressed so)."""
    missing = missing_codecs()
    if missing:
        said = ", ".join(
            f"{codec} for {client} (package {package})" for client, codec, package in missing
        )
        packages = " ".join(sorted({package for _, _, package in missing}))
        raise MissingCodecError(
            f"cannot decode Kafka batches compressed with {said}: a field producer's "
            f"compressed batch would stop the worker; install citybrain again "
            f"(`make install`) or `pip install {packages}`"
        )
