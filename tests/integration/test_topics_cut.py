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
        while describe([topic]).get(topic):  # "": the broker has no such topic
            assert time.monotonic() < deadline
            time.sleep(0.5)
        # The worker's timer (t208): gone is said, whether assigned or not.
        [gone] = asyncio.run(watch.watch())
        assert gone.startswith(f"citybrain: topic {topic} is not on the broker (deleted?)")
        admin.create_topics([NewTopic(topic, 1, 1)])
        while not describe([topic]).get(topic):  # a commit before it is known is refused
            assert time.monotonic() < deadline
            time.sleep(0.5)
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


def test_a_topic_deleted_under_a_running_worker_is_said_and_read_again_promptly(
    pipeline: Pipeline,
) -> None:
    """t208, on the real worker and broker: the commands topic deleted under a running
    worker (the stack's broker creates it again at a client's next metadata request,
    auto.create.topics.enable). Before, faust dropped it from the assignment
    (``Ignoring missing topic``) and read it again only at the consumer's next metadata
    refresh, 5 minutes later (seen: 50 commands sent at 23:22:10 read at 23:26:40),
    nothing said meanwhile. Now the worker says the new topic ID, and reads every
    command sent to the new topic from its start, within the read's 60 s (fails on the
    old code: nothing in 60 s). Nothing is lost: Kafka dropped the group's offsets
    with the old topic, so the new one is read from offset 0."""
    worker = pipeline.worker().start()
    topic = pipeline.topic("commands")
    admin = KafkaAdminClient(bootstrap_servers=pipeline.settings.kafka_bootstrap)
    try:
        for n in range(10):
            pipeline.send("commands", f"k{n}".encode(), f"old {n}".encode())
        pipeline.flush()
        pipeline.read("deadletter", lambda m: len(m) >= 10)
        admin.delete_topics([topic])
        deadline = time.monotonic() + 120
        while "was deleted and created again" not in worker.log():
            assert time.monotonic() < deadline, pipeline.worker_logs(30)
            time.sleep(1)
        assert f"citybrain: topic {topic} was deleted and created again" in worker.log()
        producer = KafkaProducer(bootstrap_servers=pipeline.settings.kafka_bootstrap)
        for n in range(20):
            producer.send(topic, key=f"k{n}".encode(), value=f"new {n}".encode())
        producer.flush()
        producer.close()
        letters = pipeline.read(
            "deadletter", lambda m: sum(b"new " in x.value for x in m) >= 20, timeout=60
        )
        new = sorted(x.value for x in letters if b"new " in x.value)
        assert new == sorted(f"new {n}".encode() for n in range(20))  # each once
    finally:
        admin.close()
        worker.stop()
