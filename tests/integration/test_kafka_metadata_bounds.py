"""t90: a CLI reader's metadata question (which topics there are, a topic's partitions)
to a Kafka that froze after the reader connected (SIGSTOP: it takes connections and
answers nothing) ends within ``kafka_read.METADATA_SECONDS`` with exit 3 and one line
naming the broker, the question and `citybrain stack status`. kafka-python's
``topics()``, ``partitions_for_topic()`` and ``KafkaAdminClient.list_topics()`` take no
timeout: 3.0.12 gave up after two request timeouts (60 s) with ``RequestTimedOutError``,
which the CLI called a bug (exit 70)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer

import citybrain.kafka_read
from citybrain.cli import EXIT_SERVICE, main
from citybrain.deadletters import Reader
from citybrain.demo import topic_prefixes
from citybrain.errors import KafkaStoppedError
from citybrain.stack import KafkaBroker
from citybrain.stack.process import read_pid
from tests.services import TEST_PORTS, Pipeline, stack_settings
from tests.stalls import sigstop

pytestmark = pytest.mark.integration


@pytest.fixture
def freeze_at(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[type, str], list[int]]]:
    """``freeze_at(cls, name)``: the test stack's Kafka is frozen when ``cls.name`` is
    first called (after the client bootstrapped), thawed at the end; the metadata bound
    is 2 s here."""
    monkeypatch.setattr(citybrain.kafka_read, "METADATA_SECONDS", 2.0)
    pid = read_pid(KafkaBroker(stack_settings(run_dir)).pid_file)
    assert pid is not None
    frozen: list[int] = []

    def install(cls: type, name: str) -> list[int]:
        original = getattr(cls, name)

        def freezing(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not frozen:
                sigstop(pid)
                frozen.append(pid)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, freezing)
        return frozen

    try:
        yield install
    finally:
        os.kill(pid, signal.SIGCONT)


def test_deadletters_ends_with_3_when_kafka_freezes_before_listing_topics(
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    freeze_at: Callable[[type, str], list[int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in TEST_PORTS.items():
        monkeypatch.setenv(name, value)
    frozen = freeze_at(KafkaConsumer, "topics")
    assert main(["deadletters", "--prefix", pipeline.name]) == EXIT_SERVICE
    assert frozen
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        f"citybrain: Kafka at {pipeline.settings.kafka_bootstrap} took the connection but "
        "did not answer within 2 s while listing its topics"
    )
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_reader_ends_when_kafka_freezes_before_it_lists_partitions(
    pipeline: Pipeline, freeze_at: Callable[[type, str], list[int]]
) -> None:
    frozen = freeze_at(KafkaConsumer, "partitions_for_topic")
    topic = pipeline.topic("deadletter")
    with pytest.raises(KafkaStoppedError, match=f"while listing the partitions of {topic}"):
        Reader(pipeline.settings, topic)
    assert frozen


def test_topic_prefixes_end_when_kafka_freezes_before_the_admin_lists_topics(
    pipeline: Pipeline, freeze_at: Callable[[type, str], list[int]]
) -> None:
    frozen = freeze_at(KafkaAdminClient, "list_topics")
    with pytest.raises(KafkaStoppedError, match="did not answer within 2 s while listing"):
        topic_prefixes(pipeline.settings)
    assert frozen


def test_the_ingests_partition_check_leaves_a_frozen_kafka_to_its_sends(
    pipeline: Pipeline, freeze_at: Callable[[type, str], list[int]]
) -> None:
    # "A broker that cannot be asked is left to the command's own sends to report": the
    # bounded question's KafkaStoppedError passes as a KafkaError did (not exit 3).
    from citybrain.cli.stack import _require_partition_counts

    frozen = freeze_at(KafkaAdminClient, "list_topics")
    _require_partition_counts(pipeline.settings, ("readings",))
    assert frozen


def test_the_catchup_benchmarks_commit_watch_ends_when_kafka_freezes(
    pipeline: Pipeline, freeze_at: Callable[[type, str], list[int]]
) -> None:
    # bench/catchup.py's own kafka-python questions (a topic's partitions, a group's
    # committed offsets) took no timeout: a frozen broker held the benchmark (t92).
    from bench.catchup import CommitWatch

    topic = pipeline.topic("readings")
    frozen = freeze_at(KafkaConsumer, "partitions_for_topic")
    with pytest.raises(KafkaStoppedError) as caught:
        CommitWatch("t92-group", topic, pipeline.settings)
    assert frozen
    assert str(caught.value).startswith(
        f"Kafka at {pipeline.settings.kafka_bootstrap} took the connection but did not "
        f"answer within 2 s while listing the partitions of {topic}"
    )


def test_the_commit_watchs_group_question_ends_when_kafka_freezes(
    pipeline: Pipeline, freeze_at: Callable[[type, str], list[int]]
) -> None:
    from bench.catchup import CommitWatch

    watch = CommitWatch("t92-group", pipeline.topic("readings"), pipeline.settings)
    try:
        frozen = freeze_at(KafkaAdminClient, "list_group_offsets")
        with pytest.raises(KafkaStoppedError) as caught:
            watch.drained()
        assert frozen
    finally:
        watch.close()
    assert "while listing the offsets group t92-group committed" in str(caught.value)


def test_read_topic_ends_when_kafka_freezes_before_it_finds_its_start(
    pipeline: Pipeline, freeze_at: Callable[[type, str], list[int]]
) -> None:
    # read_topic asked each partition's position right after seeking to its beginning
    # (a ListOffsets question) with no timeout: kafka-python 3.0.12 retried it for as
    # long as the broker stayed frozen (t92). Now it is asked within a bound, and the
    # read's own check says Kafka stopped answering.
    from citybrain.demo import read_topic

    topic = pipeline.topic("alerts")
    pipeline.producer.send(topic, key=b"a", value=b"{}", partition=0)
    pipeline.flush()
    frozen = freeze_at(KafkaConsumer, "position")
    with pytest.raises(KafkaStoppedError, match="stopped answering"):
        read_topic(pipeline.settings, topic)
    assert frozen


def test_a_dead_letter_asked_by_its_place_ends_when_kafka_freezes(
    pipeline: Pipeline, freeze_at: Callable[[type, str], list[int]]
) -> None:
    # `deadletters --replay P:O` reads the dead letter at its place: it polled until the
    # record came or the position passed it, for ever on a frozen broker (t92).
    topic = pipeline.topic("deadletter")
    pipeline.producer.send(topic, key=b"k", value=b"{}", partition=0)
    pipeline.flush()
    with Reader(pipeline.settings, topic) as reader:
        frozen = freeze_at(KafkaConsumer, "seek")
        with pytest.raises(KafkaStoppedError) as caught:
            reader.at(0, 0)
        assert frozen
    assert str(caught.value).startswith(
        f"Kafka at {pipeline.settings.kafka_bootstrap} stopped answering while reading the "
        f"dead letter at {topic}/0/0 (1 partition not read to the end)"
    )
