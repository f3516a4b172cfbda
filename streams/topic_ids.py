"""Topics deleted and created again under a running worker, told by their Kafka topic IDs.

A topic deleted while a worker reads it and created again (by an operator, or by the
broker itself when ``auto.create.topics.enable`` is on and a client asks for it) keeps
its name and gets a new topic ID (KIP-516; Kafka 4.0's group coordinator drops the
group's committed offsets with the old topic). The worker's consumer knew the old
topic's positions, and a commit it made as the partitions were revoked (faust commits
then) may land on the new topic: a committed offset past the new topic's end is out of
range and read from its start, said (``citybrain.cli.stack.OffsetOutOfRangeSaid``), but
one inside it makes the worker skip the new topic's first messages with no error from
Kafka. aiokafka 0.14 neither reads topic IDs nor commits leader epochs, so nothing below
the worker tells the two topics apart.

``TopicIdWatch`` remembers the ID of each of the worker's own topics when it is first
assigned and asks again at every later assignment (a recreated topic comes back as a
rebalance); a changed ID is one ERROR per topic and ID naming the topic, both IDs, the
group's committed offsets on the new topic's partitions (the messages before them are
the ones skipped) and the command that makes the group read it from its start.

t208: a rebalance came only at the consumer's next metadata refresh, up to 5 minutes
(aiokafka's ``metadata_max_age_ms``): a topic deleted under the worker was dropped from
its assignment at once (faust's ERROR ``Topic … not found in cluster metadata`` and
``Ignoring missing topic``, naming no consequence), and once created again its messages
sat unread until that refresh, unsaid. Now the consumer refreshes every
``METADATA_MAX_AGE`` seconds and the worker asks every watched topic's ID as often
(``TopicIdWatch.watch``, a timer): a topic gone from the broker is one WARNING saying
that nothing of it is read until it exists again, and a recreated one is said within
that interval, rebalance or not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

# The look-up is one admin round trip; a broker that does not answer in this long is
# asked again at the next assignment, never waited on by the rebalance.
LOOKUP_SECONDS = 20.0
# Seconds between two metadata refreshes of the worker's consumer (aiokafka's default is
# 5 minutes) and between two ``TopicIdWatch.watch`` passes: how long a topic deleted,
# created again or grown under the worker goes unread and unsaid at most. One metadata
# request (and one admin round trip) per interval.
METADATA_MAX_AGE = 15.0

# topic -> its ID (text, as kafka-python gives it; "" for a topic the broker does not
# have); group offsets: (topic, partition) -> committed offset.
Describe = Callable[[list[str]], dict[str, str]]
Committed = Callable[[], dict[tuple[str, int], int]]


def recreated(known: Mapping[str, str], now: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Topics of ``known`` whose ID in ``now`` is another: topic -> (old ID, new ID). A
    topic absent from ``now`` (deleted, not yet created again) is not one yet."""
    return {
        topic: (old, now[topic])
        for topic, old in known.items()
        if topic in now and now[topic] and now[topic] != old
    }


def recreated_message(
    topic: str,
    old: str,
    new: str,
    committed: Mapping[int, int],
    group: str,
    bootstrap: str,
    tool: str = "kafka-consumer-groups.sh",
) -> str:
    """The ERROR line for ``topic``, recreated under the worker (``old`` -> ``new`` ID),
    ``committed``: the group's committed offsets on the new topic's partitions; ``tool``:
    how Kafka's consumer-groups tool runs here (``Settings.kafka_tool``)."""
    said = (
        f"citybrain: topic {topic} was deleted and created again while this worker ran "
        f"(topic id {old}, now {new})"
    )
    if not committed:
        # Kafka dropped the old topic's offsets with it, and no commit landed on the
        # new one: read from its start, the reset policy's earliest (nothing skipped).
        return (
            f"{said}; the group has no committed offset on the new topic, so it is read "
            "from its start (docs/operations.md, Topics deleted or cut)"
        )
    where = ", ".join(f"partition {p} at offset {o:,}" for p, o in sorted(committed.items()))
    return (
        f"{said}; the group has committed offsets on the new topic ({where}): unless "
        "the workers committed them reading it from its start since, its messages "
        "before them are skipped unread. To read it from its start: stop every worker "
        f"of group {group}, then "
        f"`{tool} --bootstrap-server {bootstrap} --group {group} "
        f"--topic {topic} --reset-offsets --to-earliest --execute`, and start them "
        "(docs/operations.md, Topics deleted or cut)"
    )


class TopicIdWatch:
    """Remembers the topic IDs of ``topics`` (the worker's own; not changelogs, which
    table recovery reads from their start anyway) and says a change (``check``).
    ``describe`` and ``committed`` are blocking admin calls (``admin_lookups``), run in
    the loop's default executor; ``tool``: as ``recreated_message`` takes it."""

    def __init__(
        self,
        topics: Iterable[str],
        describe: Describe,
        committed: Committed,
        group: str,
        bootstrap: str,
        tool: str = "kafka-consumer-groups.sh",
    ) -> None:
        self.topics = frozenset(topics)
        self.describe = describe
        self.committed = committed
        self.group = group
        self.bootstrap = bootstrap
        self.tool = tool
        self.known: dict[str, str] = {}
        self._said: set[tuple[str, str]] = set()
        # Watched topics said to be gone from the broker, until they are back.
        self._gone: set[str] = set()

    async def check(self, assigned: Iterable[tuple[str, int]]) -> list[str]:
        """Ask the IDs of the watched topics among ``assigned`` (``(topic, partition)``
        pairs); remember new ones, log one ERROR per recreated topic and new ID. Returns
        the lines logged. A broker that does not answer (or fails) is logged at DEBUG
        and asked again next time: the worker goes on."""
        return await self._check(sorted({t for t, _ in assigned if t in self.topics}))

    async def watch(self) -> list[str]:
        """``check`` over every watched topic, assigned or not (the worker's timer,
        every ``METADATA_MAX_AGE`` seconds): also one WARNING for a topic the broker no
        longer has (deleted), once until it is back. Returns the lines logged."""
        return await self._check(sorted(self.topics), gone=True)

    async def _check(self, wanted: list[str], gone: bool = False) -> list[str]:
        """``check``'s work for the topics ``wanted``; ``gone``: say those missing."""
        if not wanted:
            return []
        loop = asyncio.get_running_loop()
        try:
            now = await asyncio.wait_for(
                loop.run_in_executor(None, self.describe, wanted), LOOKUP_SECONDS
            )
        except Exception as exc:  # a look-up's failure costs nothing else
            log.debug("citybrain: topic ids of %s not looked up: %r", wanted, exc)
            return []
        said: list[str] = []
        if gone:
            said += self._say_gone(wanted, now)
        for topic, (old, new) in sorted(recreated(self.known, now).items()):
            self.known[topic] = new
            if (topic, new) in self._said:
                continue
            self._said.add((topic, new))
            try:
                offsets = await asyncio.wait_for(
                    loop.run_in_executor(None, self.committed), LOOKUP_SECONDS
                )
            except Exception as exc:
                log.debug("citybrain: committed offsets of %s not looked up: %r", topic, exc)
                offsets = {}
            mine = {p: o for (t, p), o in offsets.items() if t == topic and o > 0}
            line = recreated_message(topic, old, new, mine, self.group, self.bootstrap, self.tool)
            log.error("%s", line)
            said.append(line)
        for topic, topic_id in now.items():
            if topic_id:
                self.known.setdefault(topic, topic_id)
        return said

    def _say_gone(self, wanted: list[str], now: Mapping[str, str]) -> list[str]:
        """One WARNING per watched topic of ``wanted`` the broker said it does not have
        (an empty ID in ``now``; one it did not answer for is not one), once until it
        is back."""
        said = []
        for topic in wanted:
            if topic not in now:
                continue  # not answered for: nothing known
            if now[topic]:
                self._gone.discard(topic)
                continue
            if topic in self._gone:
                continue
            self._gone.add(topic)
            line = (
                f"citybrain: topic {topic} is not on the broker (deleted?): this worker "
                "reads nothing of it and what it sends there is refused until it exists "
                "again; created again with its partitions, it is read from its start "
                f"within {METADATA_MAX_AGE:.0f} s (docs/operations.md, Topics deleted or cut)"
            )
            log.warning("citybrain: %s", line.removeprefix("citybrain: "))
            said.append(line)
        return said


def admin_lookups(settings: Any) -> tuple[Describe, Committed]:
    """``describe`` and ``committed`` for ``TopicIdWatch`` on ``settings``' broker
    (kafka-python's admin client, opened and closed per call: a rebalance is rare)."""
    from kafka import KafkaAdminClient

    def admin() -> KafkaAdminClient:
        return KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id="citybrain-topic-ids",
            request_timeout_ms=int(LOOKUP_SECONDS * 1000 / 2),
            **settings.kafka_python_options(),
        )

    def describe(topics: list[str]) -> dict[str, str]:
        client = admin()
        try:
            found = client.describe_topics(topics)
        finally:
            client.close()
        ids = {
            str(t["name"]): str(t["topic_id"])
            for t in found
            if not t.get("error_code") and t.get("topic_id")
        }
        # UNKNOWN_TOPIC_OR_PARTITION: the broker has no such topic (deleted).
        ids.update((str(t["name"]), "") for t in found if t.get("error_code") == 3)
        return ids

    def committed() -> dict[tuple[str, int], int]:
        client = admin()
        try:
            groups = client.list_group_offsets(settings.app_id)
        finally:
            client.close()
        offsets = groups.get(settings.app_id, {}) if isinstance(groups, dict) else {}
        return {(tp.topic, tp.partition): int(om.offset) for tp, om in offsets.items()}

    return describe, committed
