"""The CLI's readers pass a field producer's transaction batches unsaid (t170): the
kafka-python internals ``citybrain.kafka_read`` relies on for it, pinned, and the rule
that tells a transaction's offsets from a hole a broken batch leaves."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import kafka
from kafka.consumer.fetcher import Fetcher

from citybrain import kafka_read
from citybrain.kafka_read import _NotedBatches, transaction_offsets
from streams.settings import Settings


def test_kafka_python_decodes_a_fetch_through_next_batch_as_pinned() -> None:
    # kafka_read wraps the records PartitionRecords._unpack_records reads (3.0.12): an
    # upgrade that reads them otherwise would warn of every marker again.
    assert kafka.__version__ == "3.0.12"
    source = inspect.getsource(Fetcher.PartitionRecords._unpack_records)
    assert "records.next_batch()" in source and "batch.is_control_batch" in source
    params = list(inspect.signature(Fetcher.PartitionRecords._unpack_records).parameters)
    assert params[:3] == ["self", "tp", "records"]


def _batch(base: int, count: int, *, control: bool = False, transactional: bool = True) -> object:
    return SimpleNamespace(
        magic=2,
        base_offset=base,
        next_offset=base + count,
        is_control_batch=control,
        is_transactional=transactional,
    )


def test_only_offsets_of_transaction_batches_pass_as_no_hole() -> None:
    tp = SimpleNamespace(topic="t170-unit.readings", partition=0)
    batches = iter(
        [
            _batch(0, 4),  # an aborted transaction's records
            _batch(4, 1, control=True),  # its abort marker
            _batch(5, 3, transactional=False),  # a plain batch: its records are returned
            _batch(8, 1, control=True),
            None,
        ]
    )
    noted = _NotedBatches(SimpleNamespace(next_batch=lambda: next(batches), size=9), tp)
    while noted.next_batch() is not None:
        pass
    assert noted.size == 9  # anything else is the records' own
    assert transaction_offsets(tp, 0, 5)  # aborted records and marker: no hole
    assert transaction_offsets(tp, 8, 9)  # a marker
    assert not transaction_offsets(tp, 5, 6)  # a plain batch's offset: a real hole
    assert not transaction_offsets(tp, 9, 12)  # nothing noted there
    assert kafka_read._TRANSACTION_BATCHES[(tp.topic, tp.partition)] == []  # read past


def test_the_readers_read_committed_records_as_the_worker_does() -> None:
    options = Settings().kafka_reader_options()
    assert options["isolation_level"] == "read_committed"
    assert "isolation_level" not in Settings().kafka_python_options()  # producers, admins
