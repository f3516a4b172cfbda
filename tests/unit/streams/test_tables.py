"""The changelog partition of a key is Kafka's own default-partitioner result."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from streams.tables import key_partition


def test_matches_the_clients_default_partitioner() -> None:
    partitioner = DefaultPartitioner()
    for n in (1, 2, 3, 8, 12):
        for key in (b"gauge-1", b"al-0123456789abcdef", "传感器-7".encode(), b""):
            assert key_partition(key, n) == partitioner(key, list(range(n)), list(range(n)))
