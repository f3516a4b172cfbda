"""Create citybrain's topics with the configured partition count (kafka-python admin)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from playbooks.loader import load_playbooks
from streams.settings import Settings

if TYPE_CHECKING:
    import faust

# How long a topic just created may take to show in the broker's metadata with a leader
# for every partition (CreateTopics returns before that; on KRaft it can lag by seconds).
METADATA_WAIT_MS = 30_000


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: its full name, partition count and topic configs."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def task_topics(settings: Settings) -> set[str]:
    """The prefixed task topics the configured playbooks' ``kafka`` steps write to."""
    playbooks = load_playbooks(settings.playbook_dir)
    return {settings.topic(t) for pb in playbooks.values() for t in pb.task_topics}


def faust_topics(app: faust.App, partitions: int) -> list[TopicSpec]:
    """The topics faust declares itself when a worker starts: every table's changelog
    (compacted, as faust declares it) and the leader assignor's one-partition topic
    (``<app id>-__assignor-__leader``, faust-streaming 0.11's ``LeaderAssignor``).

    Created beforehand so the consumer never subscribes to a topic the broker's metadata
    does not show yet (aiokafka then logs ERROR "Topic … not found in cluster metadata"
    per topic until it does)."""
    specs = [
        TopicSpec(
            table.changelog_topic.get_topic_name(),
            table.changelog_topic.partitions or partitions,
            {"cleanup.policy": "compact"},
        )
        for table in app.tables.values()
    ]
    if not app.conf.topic_disable_leader:
        specs.append(TopicSpec(f"{app.conf.id}-__assignor-__leader", 1))
    return specs


def create_topics(settings: Settings, extra: Sequence[TopicSpec] = ()) -> list[str]:
    """Create missing topics, the playbooks' task topics and ``extra`` included (a first
    send to a topic the broker must auto-create waits on its metadata, and a run's step
    waits with it), then wait until every one of them shows in the broker's metadata with
    a leader for each partition; returns the names created. Existing ones are left alone.

    Raises kafka-python's ``KafkaError`` (``KafkaTimeoutError`` when the topics did not
    show within ``METADATA_WAIT_MS``)."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="citybrain-topics",
        **settings.kafka_python_options(),
    )
    try:
        existing = set(admin.list_topics())
        every = [
            *(TopicSpec(t, settings.partitions) for t in settings.topics.values()),
            *(TopicSpec(t, settings.partitions) for t in sorted(task_topics(settings))),
            *extra,
        ]
        created = []
        for spec in every:
            if spec.name in existing:
                continue
            try:
                admin.create_topics(
                    [NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.configs)]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        admin.wait_for_topics([spec.name for spec in every], timeout_ms=METADATA_WAIT_MS)
        return created
    finally:
        admin.close()
