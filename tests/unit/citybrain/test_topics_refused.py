"""``create_topics`` with a topic the broker refuses to create (t172): a playbook's task
topic whose name collides with another topic's but for '.' and '_' (Kafka's
InvalidTopicException, "collides with existing topic"). Before, kafka-python raised at
that topic, and every topic after it in the list (the other task topics, the worker's
changelogs) was left uncreated; the worker's start said "could not create the topics"
with Kafka's generic description of error 17, naming no topic, and `stack up` ended as
an unexpected error. Now every other topic is created and waited for, and the refusal
names each refused topic with the broker's own reason.

No broker: the admin client is a fake that answers as kafka-python 3.0.12 does with
``raise_errors=False``."""

from __future__ import annotations

from typing import Any

import pytest

from citybrain.stack import topics
from citybrain.stack.topics import TopicSpec, TopicsRefusedError, create_topics
from streams.settings import Settings

SETTINGS = Settings(kafka_port=29999, topic_prefix="tx", app_id="tx")
COLLIDES = "tx.tasks.drainage"


class Admin:
    """kafka-python's admin client as create_topics uses it: refuses ``COLLIDES``."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.waited: list[str] = []

    def list_topics(self) -> list[str]:
        return ["tx.tasks_drainage"]

    def create_topics(self, new: list[Any], raise_errors: bool = True) -> dict[str, Any]:
        name = new[0].name
        if name == COLLIDES:
            if raise_errors:  # as the old call made it
                from kafka.errors import InvalidTopicError

                raise InvalidTopicError()
            message = f"Topic '{name}' collides with existing topic: tx.tasks_drainage"
            return {"topics": [{"name": name, "error_code": 17, "error_message": message}]}
        self.created.append(name)
        return {"topics": [{"name": name, "error_code": 0, "error_message": None}]}

    def wait_for_topics(self, names: list[str], timeout_ms: int = 0) -> None:
        self.waited = list(names)

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"name": n, "partitions": [{}] * SETTINGS.partitions} for n in names]

    def close(self) -> None:
        return None


def test_a_topic_the_broker_refuses_is_named_and_the_others_are_still_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = Admin()
    monkeypatch.setattr(topics, "topics_admin", lambda settings: admin)
    changelog = TopicSpec("tx-groups-changelog", SETTINGS.partitions, {"cleanup.policy": "compact"})
    with pytest.raises(TopicsRefusedError) as refused:
        create_topics(SETTINGS, [changelog])
    # Made after the refused one: the task topics that sort after it, and the changelog.
    assert {"tx.tasks.maintenance", "tx.tasks.metro", "tx-groups-changelog"} <= set(admin.created)
    assert COLLIDES not in admin.waited and "tx-groups-changelog" in admin.waited
    assert refused.value.refused == [
        (
            COLLIDES,
            "InvalidTopicError: Topic 'tx.tasks.drainage' collides with existing topic: "
            "tx.tasks_drainage",
        )
    ]
    assert refused.value.created == admin.created
    assert str(refused.value).startswith(
        "Kafka refused to create 1 topic (tx.tasks.drainage: InvalidTopicError: Topic "
    )


def test_a_worker_starting_says_the_refused_topic_and_goes_on_with_the_others(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The worker's start names the refused topic and why, and goes on to its other
    checks (before: 'could not create the topics' with error 17's generic text, and its
    changelogs' configs were not checked)."""
    from citybrain.cli import stack

    aligned: list[object] = []

    def refuses(settings: Settings, extra: object = ()) -> list[str]:
        raise TopicsRefusedError([(COLLIDES, "InvalidTopicError: collides")], ["tx.alerts"])

    monkeypatch.setattr(topics, "create_topics", refuses)
    monkeypatch.setattr(topics, "faust_topics", lambda app, partitions: [])
    monkeypatch.setattr(topics, "align_topic_configs", lambda s, specs: aligned.append(s) or [])
    stack._create_topics_for_worker(SETTINGS, object())  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert err.startswith(
        "citybrain: warning: Kafka refused to create 1 topic (tx.tasks.drainage: "
        "InvalidTopicError: collides); every other topic was created"
    )
    assert "could not create the topics" not in err
    assert aligned == [SETTINGS]
