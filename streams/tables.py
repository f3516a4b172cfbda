"""faust tables whose changelog partition is computed from the key.

faust writes a changelog entry to the partition of the *current event*; with batches
(``take_events``), in timers and in web views there is no single current event, and its
``use_partitioner`` option needs the producer's topic metadata at the first write (it
crashes the agent when that metadata has not been fetched yet). Kafka's default
partitioner is a pure function of the key bytes, so compute it here: the changelog
partition then always equals the partition the same key has on the source topics.
"""

from __future__ import annotations

from typing import Any

import faust
from kafka.partitioner.default import murmur2


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class KeyPartitionedTable(faust.Table[bytes, Any]):
    def partition_for_key(self, key: Any) -> int:
        assert self.partitions is not None  # always set by key_partitioned_table
        return key_partition(key, self.partitions)

    async def set_many(self, items: dict[bytes, Any], wait: bool = True) -> None:
        """Write many keys and (unless ``wait`` is false) wait until their changelog
        entries are on Kafka.

        ``table[key] = value`` queues each changelog entry in faust's producer buffer,
        which drains one message per event-loop turn: a batch touching thousands of
        sensors then runs at a few thousand writes a second. Here the store is updated
        directly and the entries go to the changelog topic through the producer's own
        batching, all awaited together. Without ``wait`` they are only queued: faust
        flushes the producer before it commits any offset, so a state still reaches the
        changelog before the offsets of the events behind it are committed.
        """
        assert self.partitions is not None
        # The store first, with no await in between: a cancelled batch (a rebalance) then
        # leaves either all of its keys updated in memory or none.
        for key, value in items.items():
            self.data[key] = value
        pending = []
        for key, value in items.items():
            pending.append(
                await self.changelog_topic.send(
                    key=key, value=value, partition=key_partition(key, self.partitions)
                )
            )
        if wait:
            for fut in pending:
                await fut


class KeyPartitionedGlobalTable(faust.GlobalTable):
    """Every worker holds all of it (silences, firing alerts for inhibition)."""

    def partition_for_key(self, key: Any) -> int:
        assert self.partitions is not None
        return key_partition(key, self.partitions)


def key_partitioned_table(
    app: faust.App, name: str, partitions: int, is_global: bool = False
) -> faust.Table[bytes, Any]:
    """A table with raw-bytes keys and JSON values, registered with ``app``."""
    cls = KeyPartitionedGlobalTable if is_global else KeyPartitionedTable
    table = cls(app, name=name, partitions=partitions, key_type=bytes, beacon=app.tables.beacon)
    app.tables.add(table)
    return table
