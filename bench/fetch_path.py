"""The batch drain's per-record hand-over, in process: faust ``Message`` per record (as
``main`` before issue 14's fetch-path work) against the batch keeping aiokafka's records
(``faust_patches.Messages``), alternated in one process, CPU time per record.

    python -m bench.fetch_path [--records 1000] [--batches 300] [--rounds 6]

Each round hands ``batches`` batches of ``records`` aiokafka ``ConsumerRecord``s (about
250-byte readings, as ``bench/catchup.py`` preloads) through both paths: what the drain
builds per batch, the four columns admission reads, the ack by offsets, and freeing the
batch. No Kafka; prints ns per record and the ratio of each round.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import defaultdict
from types import SimpleNamespace
from typing import Any, cast
from weakref import WeakSet

from aiokafka.structs import ConsumerRecord
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP, Message

from bench import count, run_main
from streams.faust_patches import Batch, BatchDrain
from streams.ingest import message_columns

GENERATION = 1


def fetched(n: int, first: int, partition: int = 0) -> list[Any]:
    return [
        ConsumerRecord(
            topic="bench.readings",
            partition=partition,
            offset=first + i,
            timestamp=1_767_225_600_000 + i,
            timestamp_type=0,
            key=f"s{i % 20000:05d}".encode(),
            value=(
                b'{"schema":"reading/1","sensor_id":"s%05d","kind":"traffic_flow",'
                b'"ts":"2026-01-01T00:05:00Z","value":12.345,"unit":"vehicles/5min",'
                b'"grid_cell":"c%d"}' % (i % 20000, i % 100)
            ),
            checksum=None,
            serialized_key_size=6,
            serialized_value_size=200,
            headers=[],
        )
        for i in range(n)
    ]


def drain_state() -> tuple[Any, BatchDrain]:
    consumer = SimpleNamespace(
        app=SimpleNamespace(consumer_generation_id=GENERATION),
        _unacked_messages=WeakSet(),
        _waiting_for_ack=None,
        _committed_offset=defaultdict(lambda: None),
        _acked_index=defaultdict(set),
        _acked=defaultdict(list),
        _n_acked=0,
    )
    drain = object.__new__(BatchDrain)
    drain.app = cast(Any, SimpleNamespace(consumer=consumer, consumer_generation_id=GENERATION))
    return consumer, drain


def messages_path(consumer: Any, tp: TP, records: list[Any]) -> int:
    """main's: a faust Message per record, columns off the messages, acked by offsets."""
    to_message = AIOKafkaConsumer._to_message
    r_offset = None
    fresh = [r for r in records if r_offset is None or r.offset >= r_offset]
    messages = [to_message(consumer, tp, r) for r in fresh]
    for m in messages:
        m.generation_id = GENERATION
    columns = (
        [m.value for m in messages],
        [m.partition for m in messages],
        [m.offset for m in messages],
        [m.timestamp for m in messages],
    )
    committed = consumer._committed_offset[tp]
    index = consumer._acked_index[tp]
    offsets = [
        m.offset
        for m in messages
        if (committed is None or m.offset >= committed) and m.offset not in index
    ]
    index.update(offsets)
    consumer._acked[tp].extend(offsets)
    messages[-1].acked = True
    return len(columns[0])


def records_path(consumer: Any, drain: BatchDrain, tp: TP, records: list[Any]) -> int:
    """This branch's: the batch keeps the records; one Message (the last)."""

    def to_message(tp: TP, record: Any) -> Message:
        return cast(Message, AIOKafkaConsumer._to_message(consumer, tp, record))

    batch = Batch(drain, tp, records, GENERATION, to_message)
    columns = message_columns(batch.messages)
    drain.done(batch, acked=True)
    return len(columns[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=count(), default=1000, help="records per batch")
    parser.add_argument("--batches", type=count(), default=300)
    parser.add_argument("--rounds", type=count(), default=6)
    args = parser.parse_args()
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)  # the worker's (streams.app.settle_garbage_collector)
    work = [fetched(args.records, b * args.records) for b in range(args.batches)]
    n = args.records * args.batches
    for r in range(args.rounds):
        out = {}
        for name in ("messages", "records") if r % 2 == 0 else ("records", "messages"):
            consumer, drain = drain_state()
            tp = TP("bench.readings", 0)
            t0 = time.process_time_ns()
            for records in work:
                if name == "messages":
                    messages_path(consumer, tp, records)
                else:
                    records_path(consumer, drain, tp, records)
            out[name] = (time.process_time_ns() - t0) / n
            assert consumer._acked[tp] == [r.offset for b in work for r in b]
        print(
            f"round {r + 1}: Message per record {out['messages']:.0f} ns/record, "
            f"records kept {out['records']:.0f} ns/record, "
            f"ratio {out['records'] / out['messages']:.3f}"
        )


if __name__ == "__main__":
    run_main(main)
