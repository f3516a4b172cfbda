"""Create citybrain's topics with the configured partition count (kafka-python admin)."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.settings import Settings


def create_topics(settings: Settings) -> list[str]:
    """Create missing topics; returns the names created. Existing ones are left alone."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="citybrain-topics",
        **settings.kafka_python_options(),
    )
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in settings.topics.values() if t not in existing]
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
