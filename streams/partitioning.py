"""Where a key's messages live in Kafka, and packing readings many to a message.

Pure (kafka-python's murmur2 is a pure function). Kafka's default partitioner maps a key's
bytes to a partition; a sensor's readings, its state and that state's changelog entries
all use the sensor id's partition. An edge gateway that packs readings (``readings/1``,
docs/events.md) groups them by that partition, so the worker that owns a sensor gets all
of its readings; each pack goes under a key that maps to its partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache

import orjson
from kafka.partitioner.default import murmur2

from streams.events import MAX_PACK_READINGS, PACK_SCHEMA, Reading, format_ts


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


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


class ReadingPacker:
    """Groups readings by their sensor's partition into ``readings/1`` packs of at most
    ``size`` readings, keeping each sensor's readings in order.

    ``add`` returns the packs that filled up; ``flush`` the partial ones (a gateway calls
    it when it has waited long enough, a replay before it sleeps).
    """

    def __init__(self, partitions: int, size: int) -> None:
        if partitions < 1:
            raise ValueError(f"partitions is {partitions}: expected at least 1")
        if not 1 <= size <= MAX_PACK_READINGS:
            raise ValueError(f"pack size is {size}: expected 1..{MAX_PACK_READINGS}")
        self.partitions = partitions
        self.size = size
        self._open: dict[int, list[dict[str, object]]] = {}

    def add(self, reading: Reading) -> list[tuple[int, bytes, bytes]]:
        """Take one reading; returns (partition, key, value) of a pack it completed."""
        home = sensor_partition(reading.sensor_id, self.partitions)
        pack = self._open.setdefault(home, [])
        pack.append(_packed(reading))
        if len(pack) < self.size:
            return []
        del self._open[home]
        return [self._message(home, pack)]

    def flush(self) -> list[tuple[int, bytes, bytes]]:
        """The partial packs, one per partition, and an empty packer."""
        out = [self._message(p, pack) for p, pack in self._open.items()]
        self._open.clear()
        return out

    def pack_all(self, readings: Iterable[Reading]) -> Iterator[tuple[int, bytes, bytes]]:
        for reading in readings:
            yield from self.add(reading)
        yield from self.flush()

    def _message(self, partition: int, pack: list[dict[str, object]]) -> tuple[int, bytes, bytes]:
        value = orjson.dumps({"schema": PACK_SCHEMA, "readings": pack})
        return partition, pack_key(partition, self.partitions), value


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
