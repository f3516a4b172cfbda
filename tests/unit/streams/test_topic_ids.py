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
from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry

from streams.app import create_app
from streams.settings import Settings
from streams.topic_ids import METADATA_MAX_AGE, TopicIdWatch, recreated, recreated_message


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


def test_the_timer_says_a_topic_gone_and_back_without_a_rebalance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """t208: a topic deleted under the worker was dropped from its assignment (faust's
    ``Ignoring missing topic``) and, created again, read only at the next metadata
    refresh, up to 5 minutes later, nothing said meanwhile. The timer's ``watch`` asks
    every watched topic, assigned or not (fails on the old code: no such pass, and a
    check over the assignment, which no longer holds the topic, asked nothing): gone is
    one WARNING, once; back under a new ID is the recreated ERROR at the next pass; a
    topic the broker did not answer for is neither."""
    ids = {"p.readings": "A", "p.alerts": "X"}
    w = watch(ids, {})
    with caplog.at_level(logging.WARNING, logger="streams.topic_ids"):
        assert asyncio.run(w.watch()) == []  # remembered
        ids["p.readings"] = ""  # deleted: the broker says it has no such topic
        [gone] = asyncio.run(w.watch())
        assert asyncio.run(w.watch()) == []  # said once
        assert asyncio.run(w.check([("p.alerts", 0)])) == []  # the assignment without it
        ids["p.readings"] = "B"  # created again
        [back] = asyncio.run(w.watch())
        del ids["p.alerts"]  # not answered for: nothing known, nothing said
        assert asyncio.run(w.watch()) == []
    assert gone == (
        "citybrain: topic p.readings is not on the broker (deleted?): this worker reads "
        "nothing of it and what it sends there is refused until it exists again; created "
        "again with its partitions, it is read from its start within 15 s "
        "(docs/operations.md, Topics deleted or cut)"
    )
    assert back.startswith(
        "citybrain: topic p.readings was deleted and created again while this worker ran "
        "(topic id A, now B); the group has no committed offset on the new topic, so it "
        "is read from its start"
    )
    assert [r.getMessage() for r in caplog.records] == [gone, back]
    assert w.known == {"p.readings": "B", "p.alerts": "X"}


def test_the_worker_refreshes_its_metadata_and_watches_its_topics_every_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer's metadata refresh is ``METADATA_MAX_AGE`` (fails on the old code:
    aiokafka's 5 minutes), and the worker has the timer that runs ``watch`` as often."""
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t")
    app = create_app(settings, CollectorRegistry())
    assert app.conf.consumer_metadata_max_age_ms == METADATA_MAX_AGE * 1000 == 15_000
    timers: list[Any] = []
    monkeypatch.setattr(
        faust.App, "timer", lambda self, interval, **kw: lambda fun: timers.append((fun, interval))
    )
    create_app(settings, CollectorRegistry())
    assert [i for fun, i in timers if fun.__name__ == "topic_watch"] == [METADATA_MAX_AGE]


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
