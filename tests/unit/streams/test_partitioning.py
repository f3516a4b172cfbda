"""Partitions: Kafka's own default-partitioner result, and readings packed by partition."""

from __future__ import annotations

import json

import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.events import Reading
from streams.partitioning import ReadingPacker, grown_topics, key_partition, pack_key


def test_matches_the_clients_default_partitioner() -> None:
    partitioner = DefaultPartitioner()
    for n in (1, 2, 3, 8, 12):
        for key in (b"gauge-1", b"al-0123456789abcdef", "传感器-7".encode(), b""):
            assert key_partition(key, n) == partitioner(key, list(range(n)), list(range(n)))


def test_pack_keys_land_on_their_partition() -> None:
    for n in (1, 2, 5, 12):
        keys = [pack_key(p, n) for p in range(n)]
        assert [key_partition(k, n) for k in keys] == list(range(n))
    with pytest.raises(ValueError, match=r"partition 2 is not in 0\.\.1"):
        pack_key(2, 2)


def test_packer_groups_by_partition_keeps_order_and_bounds_size() -> None:
    sensors = [f"s{i}" for i in range(7)]
    readings = [
        Reading(1.8e9 + 300 * step, s, "water_level", float(step), "ft", "c1")
        for step in range(5)
        for s in sensors
    ]
    packer = ReadingPacker(partitions=3, size=4)
    messages = list(packer.pack_all(readings))
    seen: dict[str, list[float]] = {}
    for partition, key, value in messages:
        doc = json.loads(value)
        assert doc["schema"] == "readings/1" and 1 <= len(doc["readings"]) <= 4
        assert key_partition(key, 3) == partition
        for r in doc["readings"]:
            assert key_partition(r["sensor_id"].encode(), 3) == partition
            seen.setdefault(r["sensor_id"], []).append(r["value"])
    assert seen == {s: [0.0, 1.0, 2.0, 3.0, 4.0] for s in sensors}  # none lost, in order
    assert sum(len(json.loads(v)["readings"]) for _, _, v in messages) == len(readings)
    with pytest.raises(ValueError, match="pack size is 0"):
        ReadingPacker(2, 0)


def test_pack_counted_says_how_many_readings_each_pack_holds() -> None:
    """t66: the ingest took every pack to hold --pack-size readings; a pack closed by
    the byte bound holds fewer, and each pack's own count is what its sender acks."""
    readings = [
        Reading(1.8e9 + i, f"sensor-{i % 5}", "water_level", float(i), "ft", "c1")
        for i in range(400)
    ]
    packer = ReadingPacker(partitions=2, size=100, max_bytes=4096)
    packs = list(packer.pack_counted(readings))
    counts = [count for _, _, _, count in packs]
    assert counts == [len(json.loads(value)["readings"]) for _, _, value, _ in packs]
    assert max(counts) < 100 and sum(counts) == 400  # the byte bound closed each first
    assert [p[:3] for p in packs] == list(ReadingPacker(2, 100, 4096).pack_all(readings))


def test_a_topic_that_grew_while_its_workers_ran_is_named_with_its_count() -> None:
    """t167: partitions added to the readings topic under a running worker reached it at
    the next metadata refresh; every reading there was dead-lettered wrong_partition and
    nothing said why. Only the worker's own topics count (a changelog, a task topic
    another tool placed, are not its to judge)."""
    assigned = [("p.readings", 0), ("p.readings", 3), ("p.readings", 2), ("p.alerts", 1)]
    assigned += [("p-groups-changelog", 5), ("other", 9)]
    assert grown_topics(assigned, ["p.readings", "p.alerts"], 2) == {"p.readings": 4}
    assert grown_topics(assigned, ["p.readings", "p.alerts"], 4) == {}
