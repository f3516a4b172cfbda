"""Where a key's messages live in Kafka, and packing readings many to a message.

Pure (kafka-python's murmur2 is a pure function). Kafka's default partitioner maps a key's
bytes to a partition; a sensor's readings, its state and that state's changelog entries
all use the sensor id's partition. An edge gateway that packs readings (``readings/1``,
docs/events.md) groups them by that partition, so the worker that owns a sensor gets all
of its readings; each pack goes under a key that maps to its partition.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

import orjson
from kafka.partitioner.default import murmur2

from playbooks.encodings import schema_registry_form
from streams.events import MAX_MESSAGE_BYTES, MAX_PACK_READINGS, PACK_SCHEMA, Reading, format_ts


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def placement_hint(key: bytes | None, expected: str, partition: int, partitions: int) -> str:
    """Why a message keyed ``key`` that belongs under the key ``expected`` (a reading's
    sensor_id, a report's grid_cell) came to ``partition`` of ``partitions`` rather than
    to its own, for its ``wrong_partition`` reason (t170: the reason named neither the
    key nor the producer's setting to change):

    - no key: the producer chose the partition itself;
    - another key than ``expected``: the producer placed it by that key;
    - ``expected`` itself: the producer's partitioner is not Kafka's default (murmur2),
      said as librdkafka's default (``consistent_random``, a CRC32 of the key: the
      confluent-kafka clients, kcat) when that is where CRC32 puts it, which
      ``partitioner=murmur2_random`` sets right.
    """
    if key is None:
        return f" (it has no key, so its producer chose the partition: key it by {expected!r})"
    said = _shown_key(key)
    if key != expected.encode("utf-8", "surrogatepass"):
        wrapped = _wrapped_key(key, expected)
        if wrapped:
            return (
                f" (its key is {said}, {wrapped}, and placed it: key it by the bare text "
                f"{expected!r}; Kafka Connect: key.converter="
                "org.apache.kafka.connect.storage.StringConverter)"
            )
        return f" (its key is {said}, not {expected!r}, and placed it: key it by {expected!r})"
    if zlib.crc32(key) % partitions == partition:
        return (
            f" (its key is {said}, which Kafka's default partitioner (murmur2) places on its "
            "own partition: its producer hashed the key with CRC32, librdkafka's default "
            "partitioner consistent_random (confluent-kafka, kcat); set "
            "partitioner=murmur2_random there, as Kafka's Java client places keys)"
        )
    return (
        f" (its key is {said}, which Kafka's default partitioner (murmur2) places on its "
        "own partition: its producer's partitioner is another, or it chose the partition "
        "itself; use murmur2, as Kafka's Java client does)"
    )


def _wrapped_key(key: bytes, expected: str) -> str:
    """What a key holding ``expected`` wrapped is (Kafka Connect's JsonConverter writes a
    text key as JSON: ``"gauge-1"`` in quotes, or its ``{"schema", "payload"}`` envelope
    with ``schemas.enable=true``; a Schema Registry serializer frames it), else ""."""
    if schema_registry_form(key) is not None:
        return "a Confluent Schema Registry frame (magic byte 0, a schema id)"
    if key[:1] not in (b'"', b"{") or len(key) > 65_536:
        return ""
    try:
        doc = orjson.loads(key)
    except orjson.JSONDecodeError:
        return ""
    if doc == expected:
        return f"{expected!r} written as JSON text, in quotes"
    if isinstance(doc, dict) and doc.keys() == {"schema", "payload"} and doc["payload"] == expected:
        return f"a Kafka Connect JsonConverter envelope of {expected!r} (schemas.enable=true)"
    return ""


def _shown_key(key: bytes) -> str:
    """``key`` as a reason quotes it: its text (at most 60 characters), else its bytes."""
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return repr(key[:60]) + ("..." if len(key) > 60 else "")
    return repr(text[:60]) + ("..." if len(text) > 60 else "")


# Room left beside a record passed on: its new key and the record's framing.
PASS_ON_HEADROOM = 64 * 1024


def pass_on_bytes(value: bytes | None, headers: Any) -> int:
    """The bytes a record passed on to another partition carries besides its new key:
    its value and every header's name and value (``headers`` a mapping or (name, value)
    pairs, names str or bytes, None for none). Above ``MAX_MESSAGE_BYTES -
    PASS_ON_HEADROOM`` the worker's producer refuses it whole (a misplaced alert or
    command passed on with its headers, t99, t205)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return len(value or b"") + sum(
        len(n.encode() if isinstance(n, str) else n) + len(v or b"") for n, v in pairs
    )


@lru_cache(maxsize=1 << 20)
def sensor_partition(sensor_id: str, partitions: int) -> int:
    """The partition of a sensor's readings and state, cached: one murmur2 per sensor,
    not per reading (a city registers at most a few hundred thousand)."""
    return key_partition(sensor_id.encode(), partitions)


@lru_cache(maxsize=1024)
def pack_key(partition: int, partitions: int) -> bytes:
    """A key Kafka's default partitioner sends to ``partition``: ``pack-<n>`` with the
    smallest such n, so every pack for one partition shares a key (a per-key state
    store, as Quix Streams has, then sees the partition's sensors under one key)."""
    if not 0 <= partition < partitions:
        raise ValueError(f"partition {partition} is not in 0..{partitions - 1}")
    n = 0
    while key_partition(f"pack-{n}".encode(), partitions) != partition:
        n += 1
    return f"pack-{n}".encode()


PACK_HEAD = b'{"schema":"' + PACK_SCHEMA.encode() + b'","readings":['
_PACK_TAIL = b"]}"


# The fewest bytes a pack may be bounded by (``ReadingPacker``'s ``max_bytes``).
MIN_PACK_BYTES = 1024


class PackTooLargeError(ValueError):
    """One reading alone is larger than a pack may be."""


def alone_in_pack_bytes(reading: Reading) -> int:
    """The size in bytes of a ``readings/1`` pack holding ``reading`` alone, as
    ``ReadingPacker`` writes it: the smallest pack it can go out in. Up to 16 bytes more
    than the reading's own message (``Reading.to_json``) plus its key, as a pack names its
    schema and the list (``{"schema":"readings/1","readings":[…]}``) and has no sensor id
    for a key: a replay that checked a row by its own message only took a reading the
    packer then refused (t162)."""
    return len(PACK_HEAD) + len(orjson.dumps(_packed(reading))) + len(_PACK_TAIL)


class ReadingPacker:
    """Groups readings by their sensor's partition into ``readings/1`` packs of at most
    ``size`` readings and at most ``max_bytes`` bytes each (the encoded JSON), keeping
    each sensor's readings in order.

    ``add`` returns the packs that filled up; ``flush`` the partial ones (a gateway calls
    it when it has waited long enough, a replay before it sleeps). A pack is closed when
    the next reading would take it over either bound, so ``size`` may be anything in
    1..``MAX_PACK_READINGS`` whatever the readings weigh: typical readings are ~150
    bytes, so 10,000 of them (1.5 MB) go out as two packs under Kafka's 1 MiB default.
    """

    def __init__(self, partitions: int, size: int, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        if partitions < 1:
            raise ValueError(f"partitions is {partitions}: expected at least 1")
        if not 1 <= size <= MAX_PACK_READINGS:
            raise ValueError(f"pack size is {size}: expected 1..{MAX_PACK_READINGS}")
        if max_bytes < MIN_PACK_BYTES:
            raise ValueError(f"pack bytes is {max_bytes}: expected at least {MIN_PACK_BYTES}")
        self.partitions = partitions
        self.size = size
        self.max_bytes = max_bytes
        # Per partition: the readings' encoded JSON and the pack's size so far.
        self._open: dict[int, tuple[list[bytes], list[int]]] = {}

    def add(self, reading: Reading) -> list[tuple[int, bytes, bytes]]:
        """Take one reading; returns (partition, key, value) of the packs it completed.
        Raises ``PackTooLargeError`` for a reading that alone exceeds ``max_bytes``."""
        return [pack[:3] for pack in self._add(reading)]

    def flush(self) -> list[tuple[int, bytes, bytes]]:
        """The partial packs, one per partition, and an empty packer."""
        return [pack[:3] for pack in self._flush()]

    def pack_all(self, readings: Iterable[Reading]) -> Iterator[tuple[int, bytes, bytes]]:
        for partition, key, value, _ in self.pack_counted(readings):
            yield partition, key, value

    def pack_counted(self, readings: Iterable[Reading]) -> Iterator[tuple[int, bytes, bytes, int]]:
        """As ``pack_all``, with how many readings each pack holds: ``size`` or fewer,
        when the byte bound closed it first. A sender that acknowledges each pack's own
        readings counts them here: the ingest took every pack to hold ``size`` and, with
        ``--pack-size`` above ~6,800, acknowledged a second pack's readings with the first
        (t66)."""
        for reading in readings:
            yield from self._add(reading)
        yield from self._flush()

    def _add(self, reading: Reading) -> list[tuple[int, bytes, bytes, int]]:
        home = sensor_partition(reading.sensor_id, self.partitions)
        item = orjson.dumps(_packed(reading))
        if len(PACK_HEAD) + len(item) + len(_PACK_TAIL) > self.max_bytes:
            raise PackTooLargeError(
                f"reading of sensor {reading.sensor_id[:80]!r} is {len(item):,} bytes "
                f"packed, more than a pack may hold ({self.max_bytes:,})"
            )
        out: list[tuple[int, bytes, bytes, int]] = []
        pack = self._open.get(home)
        if pack is not None and pack[1][0] + 1 + len(item) > self.max_bytes:
            out.append(self._message(home, pack[0]))
            pack = None
        if pack is None:
            pack = self._open[home] = ([], [len(PACK_HEAD) + len(_PACK_TAIL) - 1])
        pack[0].append(item)
        pack[1][0] += 1 + len(item)  # the item and its comma
        if len(pack[0]) >= self.size:
            del self._open[home]
            out.append(self._message(home, pack[0]))
        return out

    def _flush(self) -> list[tuple[int, bytes, bytes, int]]:
        out = [self._message(p, pack) for p, (pack, _) in self._open.items()]
        self._open.clear()
        return out

    def _message(self, partition: int, items: list[bytes]) -> tuple[int, bytes, bytes, int]:
        # The same bytes orjson gives for {"schema": ..., "readings": [...]}.
        value = PACK_HEAD + b",".join(items) + _PACK_TAIL
        return partition, pack_key(partition, self.partitions), value, len(items)


def _packed(r: Reading) -> dict[str, object]:
    # A packed reading leaves out its schema: the pack names it once.
    return {
        "ts": format_ts(r.ts),
        "sensor_id": r.sensor_id,
        "kind": r.kind,
        "value": r.value,
        "unit": r.unit,
        "grid_cell": r.grid_cell,
    }


def grown_topics(
    assigned: Iterable[tuple[str, int]], topics: Iterable[str], partitions: int
) -> dict[str, int]:
    """Of ``topics``, those with a partition of ``assigned`` (``(topic, partition)``
    pairs, as faust's ``TP``) at or past ``partitions`` (``CITYBRAIN_PARTITIONS``): topic
    -> the partition count it has at least (its highest partition assigned here, plus
    one). Such a topic grew while its workers ran (an operator added partitions): every
    key placed on a new partition is off its home partition, so each reading or report
    there is dead-lettered ``wrong_partition``."""
    wanted = set(topics)
    grown: dict[str, int] = {}
    for topic, partition in assigned:
        if topic in wanted and partition >= partitions:
            grown[topic] = max(grown.get(topic, 0), partition + 1)
    return grown
