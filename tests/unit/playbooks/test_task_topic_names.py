"""Task topics a playbook's ``kafka`` steps may not write to (t172), refused by
``playbooks check``, the worker's start and its reload, naming the file and line:

- one of the worker's own topics (``alerts``, ``commands``, …): its task messages were
  read by the worker as its own records;
- a topic whose name collides with another task topic's but for '.' and '_'
  (``tasks.metro`` and ``tasks_metro``): Kafka creates one and refuses the other, and
  before t172 every run of the second's step waited 20 minutes for it, every other run
  with it (streams/response.py, ``TASK_TOPIC_WAIT``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from playbooks.loader import PLAYBOOK_DIR, check_playbooks
from playbooks.schema import PIPELINE_TOPICS
from streams.settings import Settings


@pytest.fixture
def library(tmp_path: Path) -> Path:
    shutil.copytree(PLAYBOOK_DIR, tmp_path / "playbooks")
    return tmp_path / "playbooks"


def first_step(library: Path, name: str, step: str) -> Path:
    """The library's ``name`` playbook with ``step`` as its first step (line 9 or
    later: the playbook's own keys come first)."""
    path = library / f"{name}.yaml"
    path.write_text(path.read_text().replace("steps:\n", f"steps:\n  - {step}\n", 1))
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_worker_takes_its_topics_from_the_playbooks_list() -> None:
    assert tuple(Settings().topics) == PIPELINE_TOPICS


@pytest.mark.parametrize("own", ["alerts", "commands", "readings"])
def test_a_task_topic_that_is_one_of_the_workers_own_is_refused(library: Path, own: str) -> None:
    path = first_step(library, "flash-flood", f"{{id: t, action: kafka, topic: {own}}}")
    _found, _names, errors = check_playbooks(library, "citybrain")
    assert errors == [
        f"{path}:{line_of(path, 'id: t,')}: steps.0.kafka.topic: {own!r} is the worker's own {own} "
        f"topic (<topic prefix>.{own}), which it reads or writes itself: name a topic of "
        f"the team's own, such as tasks.{own}"
    ]


def test_two_steps_of_one_playbook_whose_topics_collide_are_refused(library: Path) -> None:
    path = first_step(library, "flash-flood", "{id: t, action: kafka, topic: tasks_drainage}")
    _found, _names, errors = check_playbooks(library, "citybrain")
    assert errors == [
        f"{path}:{line_of(path, 'topic: tasks.drainage')}: steps.8.topic: the task topic "
        "'tasks.drainage' collides with 'tasks_drainage' (another step of this playbook): "
        "Kafka takes only one of two topic names that differ only by '.' and '_', and "
        "refuses to create the other; write both alike"
    ]


def test_task_topics_of_two_playbooks_that_collide_are_refused_naming_both(
    library: Path,
) -> None:
    # crowd-surge writes tasks.metro; traffic-incident (after it by name) tasks_metro.
    path = first_step(library, "traffic-incident", "{id: t, action: kafka, topic: tasks_metro}")
    found, _names, errors = check_playbooks(library, "citybrain")
    assert errors == [
        f"{path}:{line_of(path, 'tasks_metro')}: the task topic 'tasks_metro' collides "
        f"with 'tasks.metro' ({library / 'crowd-surge.yaml'}): Kafka takes only one of two "
        "topic names that differ only by '.' and '_', and refuses to create the other; "
        "write both alike"
    ]
    assert "traffic-incident" not in found and "crowd-surge" in found


def test_the_library_writes_no_colliding_topics() -> None:
    _found, _names, errors = check_playbooks(PLAYBOOK_DIR, "citybrain")
    assert errors == []
