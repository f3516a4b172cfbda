"""Create citybrain's topics with the configured partition count (kafka-python admin)."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from playbooks.loader import load_playbooks
from streams.settings import Settings


def task_topics(settings: Settings) -> set[str]:
    """The prefixed task topics the configured playbooks' ``kafka`` steps write to."""
    playbooks = load_playbooks(settings.playbook_dir)
    return {settings.topic(t) for pb in playbooks.values() for t in pb.task_topics}


def create_topics(settings: Settings) -> list[str]:
    """Create missing topics, the playbooks' task topics included (a first send to a
    topic the broker must auto-create waits on its metadata, and a run's step waits with
    it); returns the names created. Existing ones are left alone."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="citybrain-topics",
        **settings.kafka_python_options(),
    )
    try:
        existing = set(admin.list_topics())
        every = [*settings.topics.values(), *sorted(task_topics(settings))]
        wanted = [t for t in every if t not in existing]
        created = []
        for name in wanted:
            try:
                admin.create_topics([NewTopic(name, settings.partitions, 1)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
