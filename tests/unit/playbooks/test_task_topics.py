"""Every task topic a playbook writes to is known before a run needs it (the stack creates
them with the other topics: a first send to a topic the broker must auto-create waits on
metadata, and held the run it belonged to)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playbooks.loader import load_playbooks, playbook_errors
from playbooks.schema import Playbook

LIBRARY = Path(__file__).resolve().parents[3] / "playbooks" / "library" / "playbooks"


def test_the_library_task_topics_are_every_topic_its_yaml_names() -> None:
    named = {
        topic
        for path in LIBRARY.glob("*.yaml")
        for topic in re.findall(r"action: kafka, topic: ([\w.-]+)", path.read_text())
    }
    found = {t for pb in load_playbooks(LIBRARY).values() for t in pb.task_topics}
    assert found == named and "tasks.maintenance" in found


def test_task_topics_in_parallel_branches_and_on_cancel() -> None:
    playbook = Playbook.model_validate(
        {
            "playbook": "p",
            "version": 1,
            "department": "roads",
            "steps": [
                {
                    "id": "both",
                    "action": "parallel",
                    "branches": [
                        {"id": "a", "action": "kafka", "topic": "tasks.a", "message": {}},
                        {"id": "b", "action": "kafka", "topic": "tasks.b", "message": {}},
                    ],
                },
            ],
            "on_cancel": [{"id": "c", "action": "kafka", "topic": "tasks.c", "message": {}}],
        }
    )
    assert playbook.task_topics == {"tasks.a", "tasks.b", "tasks.c"}


@pytest.mark.parametrize("topic", ["tasks metro", "tasks/metro", "tâches", "", "..", "t" * 201])
def test_a_task_topic_kafka_would_refuse_is_a_file_line_error(tmp_path: Path, topic: str) -> None:
    """`playbooks check` passed "tasks metro", and the broker refused it only when the
    stack made the topics (t54)."""
    text = (LIBRARY / "crowd-surge.yaml").read_text(encoding="utf-8")
    path = tmp_path / "crowd-surge.yaml"
    path.write_text(
        text.replace(
            "topic: tasks.metro, message: {task: throttle",
            f"topic: '{topic}', message: {{task: throttle",
        ),
        encoding="utf-8",
    )
    _, errors = playbook_errors(path)
    line = next(i for i, row in enumerate(path.read_text().splitlines(), 1) if "throttle" in row)
    assert errors == [
        f"{path}:{line}: steps.6.kafka.topic: {topic[:60]!r} is no Kafka topic name: expected "
        "letters, digits, '.', '_' or '-', at most 200 characters"
    ]


@pytest.mark.parametrize(
    ("message", "said"),
    [
        ("{n: 18446744073709551616}", "message.n is 18446744073709551616, expected an integer"),
        ("{n: .nan}", "message.n is nan, expected a finite number"),
        ("{b: !!binary aGk=}", "message.b is bytes"),
        ("{s: !!set {a: null}}", "message.s is set"),
        ("{at: 2019-05-10}", "message.at is date '2019-05-10', expected JSON"),
        ("{a: [1, {2: x}]}", "message.a[1] has the key 2, expected text (quote it)"),
    ],
)
def test_a_task_message_json_cannot_carry_is_a_file_line_error(
    tmp_path: Path, message: str, said: str
) -> None:
    """The message is sent as JSON when the step runs: these passed `playbooks check` and
    failed every run of the playbook at its send (.nan was sent as null) (t54)."""
    text = (LIBRARY / "crowd-surge.yaml").read_text(encoding="utf-8")
    path = tmp_path / "crowd-surge.yaml"
    path.write_text(text.replace("message: {task: throttle-entrances}", f"message: {message}"))
    _, errors = playbook_errors(path)
    assert len(errors) == 1 and f":20: steps.6.kafka.message: {said}" in errors[0], errors


def test_a_task_message_of_plain_json_values_is_taken(tmp_path: Path) -> None:
    text = (LIBRARY / "crowd-surge.yaml").read_text(encoding="utf-8")
    path = tmp_path / "crowd-surge.yaml"
    path.write_text(
        text.replace("message: {task: throttle-entrances}", "message: {n: -0.0, ok: [1, ~, true]}")
    )
    assert playbook_errors(path)[1] == []
