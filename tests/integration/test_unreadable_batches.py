"""A record batch that cannot be read (its bytes corrupted on the broker's disk, so its
CRC does not match) costs only its own offsets, on the real broker.

aiokafka raised ``CorruptRecordException`` out of the fetch: the worker ended, and ended
again at every restart (a crash loop), every other partition and record unserved; the
good records fetched with it were passed over (helper t81). Now the range is skipped
with an error line naming it, recorded on the dead-letter topic (reason
``unreadable_batch``, no value: none can be read) and the commit passes it
(streams/faust_patches.py, change 13)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from citybrain.stack import KafkaBroker, PrometheusServer
from streams.events import Reading
from streams.partitioning import sensor_partition
from tests.integration.test_field_producers import START
from tests.integration.test_poison_pills import assert_committed_to_end, wait_scored
from tests.services import Pipeline, scrape_sum, stack_settings

pytestmark = pytest.mark.integration


def _reading(i: int, value: float) -> bytes:
    return Reading(START + 300 * i, "gauge-1", "water_level", value, "ft", "c-bridge").to_json()


def _corrupt(segment: Path, marker: bytes) -> None:
    """Flip one byte of ``marker`` (inside a record, so inside its batch's CRC) in the
    log ``segment``; the broker serves the batch as it lies on disk."""
    data = bytearray(segment.read_bytes())
    at = data.find(marker)
    assert at >= 0, f"{marker!r} not in {segment}"
    data[at] ^= 0x01
    segment.write_bytes(bytes(data))


def _lingering(pipeline: Pipeline) -> KafkaProducer:
    """A producer whose every flush sends what was sent before it as one batch per
    partition (with linger 0 the sender may take a first record alone before the others
    are appended: a test's batch of 5 was 1 + 4, and the corruption hit only the 1)."""
    return KafkaProducer(
        bootstrap_servers=pipeline.settings.kafka_bootstrap, acks="all", linger_ms=60_000
    )


def _worker_goes_on(
    pipeline: Pipeline, letters: int, scored: int, where: str
) -> tuple[list[Any], str]:
    """A worker started on the corrupted log: ``letters`` dead letters and ``scored``
    readings (``where``: which, for the failure), committed to the end, the worker alive;
    the dead letters and the worker's log."""
    worker = pipeline.worker().start()
    try:
        dead = pipeline.read("deadletter", lambda m: len(m) >= letters, timeout=120, settle=3)
        wait_scored(pipeline, scored, f"the readings {where} were not scored")
        assert scrape_sum(pipeline.settings.worker_port, "citybrain_readings_total") == scored
        assert_committed_to_end(pipeline, "readings")
        assert worker.alive()
        return dead, worker.log()
    finally:
        worker.stop()


def test_a_corrupted_batch_is_skipped_recorded_and_committed_over(
    stack: PrometheusServer, run_dir: Path
) -> None:
    pipeline = Pipeline(run_dir)
    settings = stack_settings(run_dir)
    kafka = KafkaBroker(settings)
    topic = pipeline.topic("readings")
    home = sensor_partition("gauge-1", pipeline.settings.partitions)
    try:
        # Three batches of one partition (a flush after each): the middle one corrupted.
        batching = _lingering(pipeline)
        try:
            for first, count, value in ((0, 20, 10.0), (20, 5, 12.345678), (25, 20, 11.0)):
                for i in range(first, first + count):
                    batching.send(topic, key=b"gauge-1", value=_reading(i, value))
                batching.flush()
        finally:
            batching.close()
        # And on a topic whose agent takes one message at a time: a batch between two
        # messages (refused as bad JSON: each still costs only itself).
        incidents = pipeline.topic("incidents")
        for value in (b"{before", b"{corrupted-report", b"{after"):
            pipeline.producer.send(incidents, key=b"r", value=value, partition=0)
            pipeline.flush()
        assert kafka.stop()
        data = kafka.dir / "data"
        _corrupt(data / f"{topic}-{home}" / f"{0:020d}.log", b"12.345678")
        _corrupt(data / f"{incidents}-0" / f"{0:020d}.log", b"corrupted-report")
        kafka.start()
        dead, log = _worker_goes_on(pipeline, 4, 40, "around the corrupted batch")
    finally:
        if not kafka.running():
            kafka.start()
        pipeline.close()
    # One dead letter for each range, whatever agent refused its offsets.
    said = sorted(
        (dict(m.headers)["citybrain.error.origin"], dict(m.headers)["citybrain.error.reason"])
        for m in dead
    )
    assert said == sorted(
        [
            (f"{incidents}/0/0".encode(), b"bad_json"),
            (f"{incidents}/0/1".encode(), b"unreadable_batch"),
            (f"{incidents}/0/2".encode(), b"bad_json"),
            (f"{topic}/{home}/20".encode(), b"unreadable_batch"),
        ]
    )
    [letter] = [
        m
        for m in dead
        if m.topic and dict(m.headers)["citybrain.error.origin"].startswith(topic.encode())
    ]
    headers = dict(letter.headers)
    assert headers["citybrain.error.reason"] == b"unreadable_batch"
    assert headers["citybrain.error.origin"] == f"{topic}/{home}/20".encode()
    message = headers["citybrain.error.message"].decode()
    assert message.startswith(f"{topic}/{home} offsets 20-24: record batch failed its CRC")
    assert "no key, value or headers are available" in message
    assert letter.value == b"" and letter.key is None
    assert f"{topic}/{home} offsets 20-24: record batch failed its CRC check" in log
    assert "Traceback" not in log and "CorruptRecordException" not in log


def test_a_batch_whose_framing_is_broken_costs_its_offsets_not_the_worker(
    stack: PrometheusServer, run_dir: Path
) -> None:
    # A legacy magic byte (byte 16, outside the CRC) on the first batch of the partition:
    # aiokafka frames the fetch by it and raised out of next_batch() after the good
    # batches before it, the worker ending at every start (helper t87). The broker serves
    # it (a legacy message of offset 0, sized by its intact length), then skips it by its
    # length: offsets 1-4 would pass as a gap.
    pipeline = Pipeline(run_dir)
    settings = stack_settings(run_dir)
    kafka = KafkaBroker(settings)
    topic = pipeline.topic("readings")
    home = sensor_partition("gauge-1", pipeline.settings.partitions)
    try:
        batching = _lingering(pipeline)
        try:
            for first, count in ((0, 5), (5, 20)):
                for i in range(first, first + count):
                    batching.send(topic, key=b"gauge-1", value=_reading(i, 10.0))
                batching.flush()
        finally:
            batching.close()
        assert kafka.stop()
        segment = kafka.dir / "data" / f"{topic}-{home}" / f"{0:020d}.log"
        data = bytearray(segment.read_bytes())
        assert data[16] == 2
        data[16] = 1
        # Read as a legacy message, byte 17 (the first of the CRC) is its attributes: Kafka
        # 4.0.2 reads them when it loads the log and does not start on a codec id above 4
        # ("Unknown compression type id"); as "none" it starts and serves the batch.
        data[17] &= 0xF8
        segment.write_bytes(bytes(data))
        kafka.start()
        dead, log = _worker_goes_on(pipeline, 2, 20, "after the unframeable batch")
    finally:
        if not kafka.running():
            kafka.start()
        pipeline.close()
    said = sorted(
        (
            dict(m.headers)["citybrain.error.origin"].decode(),
            dict(m.headers)["citybrain.error.reason"],
            dict(m.headers)["citybrain.error.message"].decode(),
        )
        for m in dead
    )
    assert [(origin, reason) for origin, reason, _ in said] == [
        (f"{topic}/{home}/0", b"unreadable_batch"),
        (f"{topic}/{home}/1", b"unreadable_batch"),
    ]
    # The first batch of a fetch that is not a batch: one offset (its end is unknown);
    # the rest of it, which the broker skipped by its length, one more dead letter.
    assert said[0][2].startswith(f"{topic}/{home} offset 0: record batch "), said
    assert said[1][2].startswith(
        f"{topic}/{home} offsets 1-4: skipped by the broker with the batch at offset 0"
    ), said
    assert f"{topic}/{home} offsets 0-0: record batch " in log
    assert f"{topic}/{home} offsets 1-4: skipped by the broker" in log
    at = log.find("Traceback")
    assert at < 0, log[max(0, at - 2000) : at + 2000]


def test_batches_a_broken_length_swallowed_are_recorded_not_passed_unseen(
    stack: PrometheusServer, run_dir: Path
) -> None:
    # A worker committed past the first batch (0-4); then its length grew over the next
    # one (5-9). The next fetch, from 5, begins at the batch after them (the broker skips
    # the first by its length), and 5-9 passed as a gap: no dead letter, no log line, the
    # commit went past (helper t88).
    pipeline = Pipeline(run_dir)
    settings = stack_settings(run_dir)
    kafka = KafkaBroker(settings)
    topic = pipeline.topic("readings")
    home = sensor_partition("gauge-1", pipeline.settings.partitions)
    try:
        batching = _lingering(pipeline)
        try:
            for i in range(5):
                batching.send(topic, key=b"gauge-1", value=_reading(i, 10.0))
            batching.flush()
            _worker_goes_on(pipeline, 0, 5, "of the first batch")
            for first in (5, 10):
                for i in range(first, first + 5):
                    batching.send(topic, key=b"gauge-1", value=_reading(i, 10.0))
                batching.flush()
        finally:
            batching.close()
        assert kafka.stop()
        segment = kafka.dir / "data" / f"{topic}-{home}" / f"{0:020d}.log"
        data = bytearray(segment.read_bytes())
        first = int.from_bytes(data[8:12], "big")
        second = int.from_bytes(data[12 + first + 8 : 12 + first + 12], "big")
        assert int.from_bytes(data[12 + first : 12 + first + 8], "big") == 5
        data[8:12] = (first + 12 + second).to_bytes(4, "big")
        segment.write_bytes(bytes(data))
        kafka.start()
        dead, log = _worker_goes_on(pipeline, 1, 5, "after the swallowed batch")
    finally:
        if not kafka.running():
            kafka.start()
        pipeline.close()
    [letter] = dead
    headers = dict(letter.headers)
    assert headers["citybrain.error.origin"] == f"{topic}/{home}/5".encode()
    assert headers["citybrain.error.reason"] == b"unreadable_batch"
    assert (
        headers["citybrain.error.message"]
        .decode()
        .startswith(
            f"{topic}/{home} offsets 5-9: no record batch holds them (the broker served the "
            "batch at offset 10 next"
        )
    ), headers
    assert f"{topic}/{home} offsets 5-9: no record batch holds them" in log
    assert "Traceback" not in log


class _NotUtf8(str):
    """A header name kafka-python writes as bytes that are not UTF-8 (Kafka's protocol
    says UTF-8; a producer of another client may write any bytes, the broker takes them)."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe"


def test_a_record_whose_header_name_is_not_utf8_costs_only_itself(pipeline: Pipeline) -> None:
    # Sent with the nine after it in one batch: aiokafka's reader fails on its header
    # name, and the batch is read again from the fetch's bytes (change 13), so only it is
    # dead-lettered, keeping its key and value (t117: the rest of its batch was lost).
    topic = pipeline.topic("readings")
    home = sensor_partition("gauge-1", pipeline.settings.partitions)
    worker = pipeline.worker().start()
    try:
        for i in range(10):
            pipeline.producer.send(topic, key=b"gauge-1", value=_reading(i, 10.0))
        pipeline.flush()
        pipeline.producer.send(
            topic, key=b"gauge-1", value=_reading(10, 10.0), headers=[(_NotUtf8("x"), b"v")]
        )
        for i in range(11, 20):
            pipeline.producer.send(topic, key=b"gauge-1", value=_reading(i, 10.0))
        pipeline.flush()
        [letter] = pipeline.read("deadletter", lambda m: len(m) >= 1, timeout=120, settle=3)
        wait_scored(pipeline, 19, "the readings around the undecodable record were not scored")
        assert scrape_sum(pipeline.settings.worker_port, "citybrain_readings_total") == 19
        assert_committed_to_end(pipeline, "readings")
        assert worker.alive()
        log = worker.log()
    finally:
        worker.stop()
    headers = dict(letter.headers)
    assert headers["citybrain.error.reason"] == b"unreadable_batch"
    assert headers["citybrain.error.origin"] == f"{topic}/{home}/10".encode()
    message = headers["citybrain.error.message"].decode()
    assert "a header name is not UTF-8 (b'\\xff\\xfe')" in message, message
    assert "its key and value are this dead letter's" in message, message
    assert (letter.key, letter.value) == (b"gauge-1", _reading(10, 10.0))
    assert f"{topic}/{home} offset 10: a header name is not UTF-8" in log
    assert "Traceback" not in log


def _past_its_segment(
    pipeline: Pipeline,
    kafka: KafkaBroker,
    topic: str,
    partition: int,
    send: Callable[[KafkaProducer, int], Any],
) -> None:
    """Batches 0-4 and 5-9 in a first segment, 10-14 in a second (rolled by a
    ``segment.ms`` of 1 ms), then, between two broker runs, the length of batch 5-9 (the
    first segment's last) run 40 bytes past the end of its segment file. ``send(i)``
    sends offset ``i`` to the partition, a lingering producer's (``_lingering``)."""
    batching = _lingering(pipeline)
    for first in (0, 5, 10):
        if first == 10:
            admin = KafkaAdminClient(bootstrap_servers=pipeline.settings.kafka_bootstrap)
            try:
                rolls = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.ms": "1"})
                admin.alter_configs([rolls])
            finally:
                admin.close()
            # The broker rolls a segment older than segment.ms at the next append, once the
            # config has reached the log (asynchronously; checked below).
            time.sleep(1)
        for i in range(first, first + 5):
            send(batching, i)
        batching.flush()
    batching.close()
    assert kafka.stop()
    log_dir = kafka.dir / "data" / f"{topic}-{partition}"
    assert (log_dir / f"{10:020d}.log").exists(), sorted(p.name for p in log_dir.iterdir())
    segment = log_dir / f"{0:020d}.log"
    data = bytearray(segment.read_bytes())
    at = 12 + int.from_bytes(data[8:12], "big")
    assert int.from_bytes(data[at : at + 8], "big") == 5
    length = int.from_bytes(data[at + 8 : at + 12], "big")
    assert at + 12 + length == len(data)  # batch 5-9 is the segment's last
    data[at + 8 : at + 12] = (length + 40).to_bytes(4, "big")
    segment.write_bytes(bytes(data))
    kafka.start()


def test_a_segments_last_batch_running_past_its_file_is_recorded_not_waited_on(
    stack: PrometheusServer, run_dir: Path
) -> None:
    # A segment's last batch whose length runs past the end of its file: the feared case
    # was a fetch that ends on it as on an incomplete batch, fetched again for ever. Kafka
    # 4.0.2 serves the batches before it (the fetch from 0 ends in its bytes, which
    # aiokafka leaves as incomplete), then for a fetch from 5 finds no batch there in the
    # first segment and serves the second: 5-9 are a hole, dead-lettered, and the
    # partition goes on (helper t92; an active segment's such batch the broker drops at
    # start-up: its log end offset is 5, and offsets 5-9 are given to the next records).
    pipeline = Pipeline(run_dir)
    kafka = KafkaBroker(stack_settings(run_dir))
    topic = pipeline.topic("readings")
    home = sensor_partition("gauge-1", pipeline.settings.partitions)
    try:
        _past_its_segment(
            pipeline,
            kafka,
            topic,
            home,
            lambda producer, i: producer.send(topic, key=b"gauge-1", value=_reading(i, 10.0)),
        )
        dead, log = _worker_goes_on(pipeline, 1, 10, "around the batch past its segment")
    finally:
        if not kafka.running():
            kafka.start()
        pipeline.close()
    [letter] = dead
    headers = dict(letter.headers)
    assert headers["citybrain.error.origin"] == f"{topic}/{home}/5".encode()
    assert headers["citybrain.error.reason"] == b"unreadable_batch"
    message = headers["citybrain.error.message"].decode()
    assert message.startswith(f"{topic}/{home} offsets 5-9: no record batch holds them"), message
    assert f"{topic}/{home} offsets 5-9: no record batch holds them" in log
    assert "Traceback" not in log
