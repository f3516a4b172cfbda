"""t173: a topic deleted and created again under a running worker (an operator's, or the
broker's own when a client asks for a topic it no longer has) keeps its name and gets a
new topic ID. The worker's commit of its old positions as the partitions were revoked
could land on the new topic: a committed offset inside the new topic skipped its first
messages with no word from Kafka or faust. ``TopicIdWatch`` remembers each topic's ID at
its first assignment and says a change at a later one, naming the topic, both IDs, the
group's committed offsets on the new topic and the command that reads it from its start.
(Fails on the old code: there was no check.) The real broker's side (IDs from
kafka-python's admin client, a recreated topic's new ID, its committed offsets) is in
tests/integration/test_topics_cut.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from streams.topic_ids import TopicIdWatch, recreated, recreated_message


def watch(ids: dict[str, str], committed: dict[tuple[str, int], int]) -> TopicIdWatch:
    return TopicIdWatch(
        ["p.readings", "p.alerts"],
        lambda topics: {t: ids[t] for t in topics if t in ids},
        lambda: dict(committed),
        "citybrain",
        "127.0.0.1:19092",
    )


def test_a_topic_recreated_under_the_worker_is_said_once_with_what_was_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = {"p.readings": "A", "p.alerts": "X"}
    committed = {("p.readings", 0): 0, ("p.readings", 1): 500, ("p.alerts", 0): 7}
    w = watch(ids, committed)
    assigned = [("p.readings", 0), ("p.readings", 1), ("p.alerts", 0), ("p-t-changelog", 0)]
    with caplog.at_level(logging.ERROR, logger="streams.topic_ids"):
        assert asyncio.run(w.check(assigned)) == []  # the first assignment: remembered
        ids["p.readings"] = "B"  # deleted and created again
        [line] = asyncio.run(w.check(assigned))
        assert asyncio.run(w.check(assigned)) == []  # said once per new ID
    assert line.startswith(
        "citybrain: topic p.readings was deleted and created again while this worker ran "
        "(topic id A, now B); the group has committed offsets on the new topic "
        "(partition 1 at offset 500): unless the workers committed them reading it from "
        "its start since, its messages before them are skipped unread. To read it from "
        "its start: stop every worker of group citybrain, then `kafka-consumer-groups.sh "
        "--bootstrap-server "
        "127.0.0.1:19092 --group citybrain --topic p.readings --reset-offsets "
        "--to-earliest --execute`"
    )
    assert [r.getMessage() for r in caplog.records] == [line]
    assert w.known == {"p.readings": "B", "p.alerts": "X"}


def test_a_broker_that_does_not_answer_costs_the_worker_nothing() -> None:
    def describe(topics: list[str]) -> dict[str, str]:
        raise OSError("Connection refused")

    w = TopicIdWatch(["p.readings"], describe, dict, "citybrain", "127.0.0.1:19092")
    assert asyncio.run(w.check([("p.readings", 0)])) == []
    assert w.known == {}


def test_a_topic_deleted_and_not_yet_created_again_is_not_one_yet() -> None:
    assert recreated({"a": "1", "b": "2"}, {"a": "1"}) == {}
    assert recreated({"a": "1"}, {"a": "3", "c": "4"}) == {"a": ("1", "3")}


def test_the_worker_names_the_consumer_groups_tool_as_it_runs_on_the_local_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t209: the ERROR line told the operator of the local stack to run
    `kafka-consumer-groups.sh`, which its download (jars only) does not have; the app
    now builds the watch with ``Settings.kafka_tool``'s command, the tool's class run
    with the stack's jars (docs/operations.md). Fails on the old code."""
    from streams.settings import KAFKA_VERSION, Settings

    monkeypatch.setenv("CITYBRAIN_HOME", str(tmp_path))
    libs = tmp_path / f"kafka-{KAFKA_VERSION}" / "libs"
    libs.mkdir(parents=True)
    cls = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
    tool = Settings().kafka_tool("kafka-consumer-groups.sh", cls)
    assert tool == f"java -cp '{libs}/*' {cls}"
    line = recreated_message("p.readings", "A", "B", {1: 500}, "g", "127.0.0.1:19092", tool)
    assert f"then `{tool} --bootstrap-server 127.0.0.1:19092 --group g " in line
