"""t173: a partition whose offset is out of range (a topic deleted and created again
under a worker that committed its old position onto the new topic, or a log cut by
retention past where the group had read) is read on from its log start, Kafka's
``earliest`` reset, and said in one WARNING naming the topic, the partition, the offset
and the policy (``citybrain.cli.stack.OffsetOutOfRangeSaid``), on the real broker with
the aiokafka consumer faust runs: aiokafka's own word was one INFO line, hidden at
``--loglevel warning``, naming neither why nor where it read on."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from citybrain.cli.stack import OffsetOutOfRangeSaid
from tests.services import Pipeline

pytestmark = pytest.mark.integration


def test_a_committed_offset_past_a_recreated_topics_end_is_said_and_read_from_the_start(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = pipeline.settings.kafka_bootstrap
    topic, group = f"{pipeline.name}.cut", f"{pipeline.name}-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for n in range(10):
        producer.send(topic, f"m{n}".encode())
    producer.flush()
    producer.close()

    async def read() -> list[int]:
        tp = TopicPartition(topic, 0)
        # The old topic's position (500), committed onto the new one of 10 messages.
        # No auto-commit: on stop it would commit the position its own reset found (the
        # end, 10) over the 500, and the reader would start past every message.
        first = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await first.start()
        try:
            first.assign([tp])
            await first.commit({tp: 500})
        finally:
            await first.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        offsets: list[int] = []
        try:
            deadline = time.monotonic() + 90  # a new broker makes its offsets topic first
            while len(offsets) < 10 and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                offsets += [m.offset for ms in batches.values() for m in ms]
        finally:
            await consumer.stop()
        return offsets

    fetcher = logging.getLogger(OffsetOutOfRangeSaid.LOGGER)
    before = fetcher.level
    OffsetOutOfRangeSaid.install(logging.WARNING)  # --loglevel warning
    try:
        with caplog.at_level(logging.WARNING):
            offsets = asyncio.run(read())
    finally:
        for said in [f for f in fetcher.filters if isinstance(f, OffsetOutOfRangeSaid)]:
            fetcher.removeFilter(said)
        fetcher.setLevel(before)
    assert offsets == list(range(10))
    lines = [r.getMessage() for r in caplog.records if r.name == OffsetOutOfRangeSaid.LOGGER]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"citybrain: topic {topic} partition 0: offset 500 is not in the partition (past "
        "its end: the topic was deleted and created again"
    )
    assert "consumer_auto_offset_reset=earliest" in lines[0]
    # The fetcher's other INFO lines stay below a worker's WARNING level.
    assert all(r.levelno >= logging.WARNING for r in caplog.records)


def test_a_topic_recreated_under_a_group_is_told_by_its_topic_id(pipeline: Pipeline) -> None:
    """``TopicIdWatch`` with kafka-python's admin look-ups (``admin_lookups``) on the
    real broker: a topic deleted and created again has a new topic ID, and the offset
    its group committed onto the new topic (as a worker's revocation commit lands) is
    named as where the skip ends."""
    from streams.topic_ids import TopicIdWatch, admin_lookups

    group = f"{pipeline.name}-{uuid.uuid4().hex[:6]}"
    settings = pipeline.settings.model_copy(update={"app_id": group})
    bootstrap = settings.kafka_bootstrap
    topic = f"{pipeline.name}.recreated"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    describe, committed = admin_lookups(settings)
    watch = TopicIdWatch([topic], describe, committed, group, bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
        assert asyncio.run(watch.check([(topic, 0)])) == []
        first = watch.known[topic]
        admin.delete_topics([topic])
        deadline = time.monotonic() + 30
        while topic in describe([topic]):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()

    async def commit() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            await consumer.commit({TopicPartition(topic, 0): 5})
        finally:
            await consumer.stop()

    asyncio.run(commit())
    [line] = asyncio.run(watch.check([(topic, 0)]))
    assert watch.known[topic] != first
    assert line.startswith(
        f"citybrain: topic {topic} was deleted and created again while this worker ran "
        f"(topic id {first}, now {watch.known[topic]}); the group has committed offsets "
        "on the new topic (partition 0 at offset 5)"
    ), line
