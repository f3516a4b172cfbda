"""Reading a whole topic stops at the end each partition had when asked (t60's walk:
subscribing and reading until 3 s passed with no message cost every topic 3 s and a
group join; `report` of a demo read five topics and sat half a minute without a word);
a partition left unread when Kafka no longer answers is an error, not the topic's end
(helper t85: it returned part of the topic as if it were all)."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import pytest
from kafka import TopicPartition

from citybrain.demo import _read_to_end
from citybrain.errors import KafkaStoppedError
from citybrain.kafka_read import SafePoller
from streams.settings import Settings

SETTINGS = Settings(kafka_port=1)


def _answers(settings: Settings) -> bool:
    return True


def _silent(settings: Settings) -> bool:
    return False


class _Record(NamedTuple):
    """What the reader takes of a kafka-python ``ConsumerRecord``: its offset (the
    reader warns of offsets passed over between records, t88) and value."""

    offset: int
    value: str


class _Consumer:
    """Two partitions of ``t``: three messages in 0, none in 1; a message each poll."""

    def __init__(self, stuck: bool = False) -> None:
        self.data = {0: [_Record(i, v) for i, v in enumerate("abc")], 1: []}
        self.at: dict[TopicPartition, int] = {}
        self.stuck = stuck  # partition 0's end offset past its last message (a marker)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(self.data)

    def assign(self, tps: list[TopicPartition]) -> None:
        self.at = dict.fromkeys(tps, 0)

    def assignment(self) -> set[TopicPartition]:
        return set(self.at)

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.at[tp] = 0

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.data[tp.partition]) + (self.stuck and tp.partition == 0) for tp in tps}

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int:
        return self.at[tp]

    def poll(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Any]]:
        for tp, at in self.at.items():
            if at < len(self.data[tp.partition]):
                self.at[tp] = at + 1
                return {tp: [self.data[tp.partition][at]]}
        time.sleep(timeout_ms / 1000)
        return {}


def test_every_message_is_read_and_reading_stops_at_the_end_at_once() -> None:
    started = time.monotonic()
    read = _read_to_end(SafePoller(_Consumer(), _Consumer), "t", SETTINGS, _answers)  # type: ignore[arg-type]
    assert [r.value for r in read] == ["a", "b", "c"]
    assert time.monotonic() - started < 1.0  # no 3 s wait for a message that never comes


def test_a_partition_that_never_reaches_its_end_stops_after_3_s_without_a_message() -> None:
    started = time.monotonic()
    read = _read_to_end(SafePoller(_Consumer(stuck=True), _Consumer), "t", SETTINGS, _answers)  # type: ignore[arg-type]
    assert [r.value for r in read] == ["a", "b", "c"]
    assert 2.5 < time.monotonic() - started < 5.0


def test_a_partition_left_unread_when_kafka_no_longer_answers_is_an_error() -> None:
    with pytest.raises(KafkaStoppedError) as caught:
        _read_to_end(SafePoller(_Consumer(stuck=True), _Consumer), "t", SETTINGS, _silent)  # type: ignore[arg-type]
    assert str(caught.value).startswith(
        "Kafka at 127.0.0.1:1 stopped answering while reading t (1 partition not read"
    )
