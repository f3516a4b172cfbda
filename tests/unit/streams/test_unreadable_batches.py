"""faust_patches change 13: a record batch whose CRC fails costs only its own offsets
(aiokafka raised out of the fetch, and the worker ended at every start; helper t81)."""

from __future__ import annotations

import inspect
from typing import cast

import aiokafka
import pytest
from aiokafka.consumer.fetcher import READ_UNCOMMITTED, PartitionRecords
from aiokafka.errors import CorruptRecordException
from aiokafka.record._crc32c import crc as crc32c
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from streams import faust_patches
from streams.faust_patches import (
    AIOKAFKA_SOURCES,
    AIOKAFKA_VERSION,
    UnreadableRange,
    original,
    source_hash,
    unreadable,
)


def _batch(base: int, count: int, compression_type: int = 0) -> bytearray:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression_type,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i in range(count):
        builder.append(
            i, timestamp=1000 + i, key=b"k", value=b"value-%d" % (base + i), headers=[("h", b"x")]
        )
    data = builder.build()
    data[0:8] = base.to_bytes(8, "big")  # the base offset is outside the CRC
    return data


def _records(
    topic: str, batches: list[bytearray], fetch_offset: int = 0, kept: bool = True
) -> list:
    """The records of a fetch of ``batches``, made as the fetcher makes them once the
    patches are installed (``KeptMemoryRecords``; ``kept=False``: aiokafka's own)."""
    faust_patches.install()
    tp = TopicPartition(topic, 0)
    made = faust_patches.KeptMemoryRecords if kept else MemoryRecords
    partition = PartitionRecords(
        tp,
        made(bytes(b"".join(batches))),
        [],
        fetch_offset,
        None,
        None,
        True,
        READ_UNCOMMITTED,
    )
    return list(partition)


def _corrupted(batch: bytearray) -> bytearray:
    batch[-3] ^= 0x01  # in the last record's value: inside the CRC
    return batch


def test_aiokafka_is_the_pinned_version_and_its_method_unchanged() -> None:
    assert aiokafka.__version__ == AIOKAFKA_VERSION
    faust_patches.install()
    for name, digest in AIOKAFKA_SOURCES.items():
        assert source_hash(original(name)) == digest, (
            f"aiokafka's PartitionRecords.{name} changed: port streams/faust_patches.py"
        )
    assert PartitionRecords._unpack_records is faust_patches._unpack_records


def test_a_corrupted_batch_becomes_unreadable_records_between_the_good_ones() -> None:
    got = _records("p.readings", [_batch(0, 3), _corrupted(_batch(3, 4)), _batch(7, 2)])
    assert [r.offset for r in got] == list(range(9))
    assert [r.value for r in got[:3]] == [b"value-0", b"value-1", b"value-2"]
    assert [r.value for r in got[7:]] == [b"value-7", b"value-8"]
    for r in got[3:7]:
        marker = unreadable(r.headers)
        assert marker is not None and (marker.first, marker.last) == (3, 6)
        assert r.key is None and r.value is None
    assert all(unreadable(r.headers) is None for r in got[:3] + got[7:])


def test_the_last_batch_of_a_fetch_ends_at_its_own_last_offset() -> None:
    got = _records("p.readings", [_corrupted(_batch(2, 5))], fetch_offset=4)
    # Fetched from offset 4 (a restart in the middle of the range): 4-6, not 2-3 again.
    assert [r.offset for r in got] == [4, 5, 6]
    markers = [unreadable(r.headers) for r in got]
    assert all(m is not None and (m.first, m.last) == (2, 6) for m in markers)


def test_a_changelogs_corrupted_batch_still_raises() -> None:
    with pytest.raises(CorruptRecordException, match="app-sensor_state-changelog/0 offsets 0-1 "):
        _records("app-sensor_state-changelog", [_corrupted(_batch(0, 2))])


def test_a_producers_headers_are_never_an_unreadable_range() -> None:
    got = _records("p.readings", [_batch(0, 1)])
    assert got[0].headers == (("h", b"x"),) and unreadable(got[0].headers) is None
    assert unreadable(()) is None


def test_the_range_is_described_with_topic_partition_and_offsets() -> None:
    said = UnreadableRange(20, 24, "record batch failed its CRC check").describe("t.readings", 1)
    assert said.startswith("t.readings/1 offsets 20-24: record batch failed its CRC check")
    assert UnreadableRange(5, 5, "x").describe("t", 0).startswith("t/0 offset 5: x")


def _with_header_name(batch: bytearray, name: bytes, record: int = 0) -> bytearray:
    """``batch`` (of ``_batch``, every record's header ``h``) with record ``record``'s
    header name replaced by ``name`` of one byte, and its CRC made right again: a sound
    batch holding a record the client cannot decode (a gzip batch is rebuilt)."""
    compression = batch[22] & 0x07
    if compression:
        plain = _batch(int.from_bytes(batch[0:8], "big"), int.from_bytes(batch[57:61], "big"))
        rebuilt = _with_header_name(plain, name, record)
        import gzip

        head = bytearray(rebuilt[:61])
        body = gzip.compress(bytes(rebuilt[61:]))
        head[21:23] = (int.from_bytes(head[21:23], "big") | compression).to_bytes(2, "big")
        whole = head + body
        whole[8:12] = (len(whole) - 12).to_bytes(4, "big")
        whole[17:21] = crc32c(bytes(whole[21:])).to_bytes(4, "big")
        return whole
    at = -1
    for _ in range(record + 1):
        at = batch.index(b"h\x02x", at + 1)
    batch[at : at + 1] = name
    batch[17:21] = crc32c(bytes(batch[21:])).to_bytes(4, "big")
    return batch


def test_a_record_that_cannot_be_decoded_costs_the_rest_of_its_batch_only() -> None:
    # aiokafka decodes a header name as UTF-8: UnicodeDecodeError out of the fetch, the
    # worker ended at every start, though the batch's CRC held (helper t81). Without the
    # fetch's bytes (aiokafka's own MemoryRecords) the rest of the batch is one range.
    odd = _with_header_name(_batch(2, 3), b"\xff")
    got = _records("p.readings", [_batch(0, 2), odd, _batch(5, 1)], kept=False)
    assert [r.offset for r in got] == list(range(6))
    assert [r.value for r in got if r.value is not None] == [b"value-0", b"value-1", b"value-5"]
    markers = [unreadable(r.headers) for r in got[2:5]]
    assert all(m is not None and (m.first, m.last) == (2, 4) for m in markers)
    assert "UnicodeDecodeError" in cast(UnreadableRange, markers[0]).reason


@pytest.mark.parametrize("compression_type", [0, 1], ids=["plain", "gzip"])
@pytest.mark.parametrize("at", [0, 1, 2])
def test_a_header_name_not_utf8_costs_only_its_own_record_which_keeps_its_bytes(
    at: int, compression_type: int
) -> None:
    # t117's open item: the records after it in its batch were lost too (one range, no
    # bytes). Read again from the fetch's bytes, only that record is unreadable, and its
    # dead letter keeps its key and value.
    odd = _with_header_name(_batch(2, 3, compression_type), b"\xff", at)
    got = _records("p.readings", [_batch(0, 2), odd, _batch(5, 1)])
    assert [r.offset for r in got] == list(range(6))
    bad = 2 + at
    assert [r.value for r in got if r.offset != bad] == [
        b"value-%d" % i for i in range(6) if i != bad
    ]
    assert all(unreadable(r.headers) is None for r in got if r.offset != bad)
    assert all(r.headers == (("h", b"x"),) for r in got if r.offset != bad)
    assert [r.timestamp for r in got[2:5] if r.offset != bad] == [
        1000 + i for i in range(3) if i != at
    ]
    marker = unreadable(got[bad].headers)
    assert marker is not None and (marker.first, marker.last) == (bad, bad)
    assert (marker.key, marker.value) == (b"k", b"value-%d" % bad)
    assert "a header name is not UTF-8 (b'\\xff')" in marker.reason
    said = marker.describe("p.readings", 0)
    assert said.startswith(f"p.readings/0 offset {bad}: a header name is not UTF-8")
    assert "its key and value are this dead letter's" in said


def test_the_fetcher_makes_records_that_keep_the_fetchs_bytes() -> None:
    from aiokafka.consumer import fetcher

    faust_patches.install()
    assert fetcher.MemoryRecords is faust_patches.KeptMemoryRecords
    assert faust_patches.KeptMemoryRecords(b"\x00").raw == b"\x00"


def test_what_reading_a_batch_again_relies_on_is_unchanged_upstream() -> None:
    from streams.faust_patches import RECORD_SOURCES

    for name, digest in RECORD_SOURCES.items():
        assert source_hash(original(name)) == digest, (
            f"aiokafka's {name} changed: re-read faust_patches change 13's re-reading"
        )
    # The fetcher makes each partition's records by the module's name.
    from aiokafka.consumer.fetcher import Fetcher

    assert "MemoryRecords(part_data[-1])" in inspect.getsource(Fetcher._proc_fetch_request)


def _length(batch: bytearray, length: int) -> bytearray:
    """``batch`` with its length field (bytes 8-11, outside the CRC) set to ``length``."""
    batch[8:12] = length.to_bytes(4, "big", signed=True)
    return batch


def test_a_batch_length_below_any_batchs_costs_one_offset_not_the_worker() -> None:
    # aiokafka's next_batch() raised CorruptRecordException ("Record size is less than the
    # minimum record overhead"), re-raised after the good batches: the worker ended at
    # every start (helper t87). Where the broken batch ends cannot be read.
    got = _records("p.readings", [_batch(0, 3), _length(_batch(3, 4), 10), _batch(7, 2)])
    assert [r.offset for r in got] == [0, 1, 2, 3]
    assert [r.value for r in got[:3]] == [b"value-0", b"value-1", b"value-2"]
    marker = unreadable(got[3].headers)
    assert marker is not None and (marker.first, marker.last) == (3, 3)
    assert marker.reason.startswith("record batch framing is broken (")
    assert "minimum record overhead" in marker.reason
    assert marker.reason.count("CorruptRecordException") == 1


def test_a_fetch_whose_first_batch_cannot_be_framed_costs_its_first_offset() -> None:
    got = _records("p.readings", [_length(_batch(5, 2), -1), _batch(7, 2)], fetch_offset=5)
    assert [(r.offset, r.value) for r in got] == [(5, None)]
    marker = unreadable(got[0].headers)
    assert marker is not None and (marker.first, marker.last) == (5, 5)


def test_a_legacy_magic_byte_on_a_fetchs_first_batch_costs_one_offset() -> None:
    # aiokafka reads the magic byte of the fetch's first batch for all of them (bytes
    # 16, outside the CRC): a legacy magic there makes every batch unframeable.
    first = _batch(0, 1)
    first[16] = 1
    got = _records("p.readings", [first, _batch(1, 2)])
    assert [(r.offset, r.value) for r in got] == [(0, None)]
    marker = unreadable(got[0].headers)
    assert marker is not None and (marker.first, marker.last) == (0, 0)


def test_bytes_after_a_length_that_ran_short_cost_the_next_offset() -> None:
    # The shortened batch fails its CRC (3-6, its own header still says so); what follows
    # is no batch: one offset more per fetch.
    short = _length(_batch(3, 4), len(_batch(3, 4)) - 12 - 5)
    got = _records("p.readings", [_batch(0, 3), short, _batch(7, 2)])
    assert [r.offset for r in got] == list(range(8))
    markers = [unreadable(r.headers) for r in got[3:]]
    assert [(m.first, m.last) for m in markers if m is not None] == [(3, 6)] * 4 + [(7, 7)]


def test_a_changelogs_unframeable_batch_still_raises_naming_its_offset() -> None:
    with pytest.raises(CorruptRecordException, match="app-x-changelog/0 offsets 2-2 of a table"):
        _records("app-x-changelog", [_batch(0, 2), _length(_batch(2, 2), 10)])


def _legacy_first(batch: bytearray) -> bytearray:
    batch[16] = 1  # a legacy magic byte: aiokafka frames the whole fetch by it
    return batch


def test_the_offsets_the_broker_skips_with_an_unframeable_batch_are_unreadable_too() -> None:
    # The broker skips the broken batch (0-4) by its length: the next fetch, from offset
    # 1, begins at 5, and 1-4 passed as a gap with no dead letter (helper t87).
    got = _records("skip.readings", [_legacy_first(_batch(0, 5)), _batch(5, 2)])
    assert [(r.offset, r.value) for r in got] == [(0, None)]
    after = _records("skip.readings", [_batch(5, 2)], fetch_offset=1)
    assert [r.offset for r in after] == [1, 2, 3, 4, 5, 6]
    markers = [unreadable(r.headers) for r in after[:4]]
    assert all(m is not None and (m.first, m.last) == (1, 4) for m in markers)
    assert (
        "skipped by the broker with the batch at offset 0"
        in cast(UnreadableRange, markers[0]).reason
    )
    assert [r.value for r in after[4:]] == [b"value-5", b"value-6"]
    # Said once as the broker's skip; a later fetch from 7 that begins at 9 is a hole in
    # the log, said too (helper t88: it passed unseen).
    later = _records("skip.readings", [_batch(9, 1)], fetch_offset=7)
    assert [(r.offset, r.value) for r in later] == [(7, None), (8, None), (9, b"value-9")]
    assert "no record batch holds them" in cast(UnreadableRange, later[0].headers).reason


def test_a_fetch_from_elsewhere_after_an_unframeable_batch_skips_nothing_more() -> None:
    _records("elsewhere.readings", [_length(_batch(3, 2), 10)], fetch_offset=3)
    # A seek (or a rebalance) moved the position: the note is dropped, not applied.
    got = _records("elsewhere.readings", [_batch(9, 1)], fetch_offset=9)
    assert [(r.offset, r.value) for r in got] == [(9, b"value-9")]
    assert [r.offset for r in _records("elsewhere.readings", [_batch(12, 1)], fetch_offset=12)] == [
        12
    ]


def test_offsets_no_batch_holds_are_unreadable_records_not_a_silent_gap() -> None:
    # A batch whose length swallowed the batches after it to its segment's end: its CRC
    # range ended at its own last offset (2), and the next fetch, from 3, began at the
    # next segment's first batch (7): 3-6 passed with no dead letter (helper t88).
    got = _records("hole.readings", [_batch(7, 2)], fetch_offset=3)
    assert [(r.offset, r.value) for r in got] == [
        (3, None),
        (4, None),
        (5, None),
        (6, None),
        (7, b"value-7"),
        (8, b"value-8"),
    ]
    marker = cast(UnreadableRange, unreadable(got[0].headers))
    assert (marker.first, marker.last) == (3, 6)
    assert marker.reason.startswith("no record batch holds them (the broker served the batch at")
    # Between two batches of one fetch as well, and only there.
    within = _records("hole.readings", [_batch(0, 2), _batch(5, 1)])
    assert [(r.offset, r.value is None) for r in within] == [
        (0, False),
        (1, False),
        (2, True),
        (3, True),
        (4, True),
        (5, False),
    ]
    # A fetch from inside a batch (its earlier offsets are dropped) is no hole.
    assert [r.offset for r in _records("hole.readings", [_batch(0, 4)], fetch_offset=2)] == [2, 3]


def test_a_changelogs_gaps_are_compaction_and_pass() -> None:
    # A table's changelog is compacted: batches removed whole leave gaps that lose nothing.
    got = _records("hole-changelog", [_batch(0, 1), _batch(5, 1)], fetch_offset=0)
    assert [(r.offset, r.value) for r in got] == [(0, b"value-0"), (5, b"value-5")]
