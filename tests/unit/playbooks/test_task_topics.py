"""Every task topic a playbook writes to is known before a run needs it (the stack creates
them with the other topics: a first send to a topic the broker must auto-create waits on
metadata, and held the run it belonged to)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from playbooks.loader import check_playbooks, load_playbooks, playbook_errors
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


def _long_topic_library(tmp_path: Path, topic: str) -> tuple[Path, int]:
    """A copy of the library's playbooks, crowd-surge's metro task topic ``topic``; and
    that step's line."""
    text = (LIBRARY / "crowd-surge.yaml").read_text(encoding="utf-8")
    directory = tmp_path / "pb"
    shutil.copytree(LIBRARY, directory)
    path = directory / "crowd-surge.yaml"
    path.write_text(
        text.replace(
            "topic: tasks.metro, message: {task: throttle",
            f"topic: {topic}, message: {{task: throttle",
        ),
        encoding="utf-8",
    )
    line = next(i for i, row in enumerate(path.read_text().splitlines(), 1) if "throttle" in row)
    return directory, line


@pytest.mark.parametrize(("prefix", "refused"), [("p" * 48, False), ("p" * 49, True)])
def test_a_task_topic_too_long_with_the_prefix_is_a_file_line_error(
    tmp_path: Path, prefix: str, refused: bool
) -> None:
    """A 200-character task topic and a 49-character prefix each passed their own bound,
    and Kafka refused the 250-character pair when `stack up` made it and each time the
    step ran (t122's open item); 48 + 1 + 200 = 249 is Kafka's own limit."""
    directory, line = _long_topic_library(tmp_path, "t" * 200)
    found, _, errors = check_playbooks(directory, prefix)
    name = f"{prefix}.{'t' * 200}"
    if not refused:
        assert errors == [] and "crowd-surge" in found
        return
    assert errors == [
        f"{directory / 'crowd-surge.yaml'}:{line}: steps.6.topic: the task topic "
        f"{name[:30]}…{name[-30:]} is 250 characters with the topic prefix (49), and Kafka "
        "takes at most 249: shorten the topic or CITYBRAIN_TOPIC_PREFIX"
    ]
    assert "crowd-surge" not in found
    # Without a prefix (a playbook file checked on its own) there is no pair to judge.
    assert check_playbooks(directory)[2] == []


def test_playbooks_check_and_the_worker_judge_the_pair_with_the_prefix_in_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`playbooks check` reads CITYBRAIN_TOPIC_PREFIX as the worker does, so it refuses
    what the worker would (and `stack up`, which makes the task topics)."""
    from citybrain.cli import main
    from tests.unit.citybrain.test_cli_errors import worker_refusal

    directory, line = _long_topic_library(tmp_path, "t" * 200)
    monkeypatch.setenv("CITYBRAIN_TOPIC_PREFIX", "p" * 60)
    assert main(["playbooks", "check", str(directory)]) == 1
    said = capsys.readouterr().err.splitlines()
    assert said == [
        f"{directory / 'crowd-surge.yaml'}:{line}: steps.6.topic: the task topic "
        f"{'p' * 30}…{'t' * 30} is 261 characters with the topic prefix (60), and Kafka "
        "takes at most 249: shorten the topic or CITYBRAIN_TOPIC_PREFIX"
    ]
    refusal = worker_refusal(
        tmp_path / "run",
        {"CITYBRAIN_PLAYBOOK_DIR": str(directory), "CITYBRAIN_TOPIC_PREFIX": "p" * 60},
    )
    assert said[0] in refusal[0], refusal
