"""A ``kafka`` step whose task topic takes no message (t172): Kafka has no such topic and
does not create it (auto-creation off, or a name colliding with another's but for '.'
and '_'), so the producer waits for its metadata, faust's producer_request_timeout (20
minutes). Before, that wait was awaited by the routed agent (or the deadline pass):
every other alert waited for a run, and the run's own first response went out with it.
Now the message is given ``TASK_TOPIC_WAIT`` seconds; then it waits in its run's outbox,
the run's other steps and the other runs go on, and it is sent once the topic takes it.

No broker: the context's sends are captured (as in test_group_flushes), and the task
topics are fakes whose send waits for as long as the test says."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams import response as response_module
from streams.context import Context
from streams.metrics import Metrics
from streams.response import OUTBOX, TASK_TOPIC_RETRY, Response
from streams.settings import REPO_ROOT, Settings
from tests.unit.streams.test_group_flushes import Clock, start_clock
from tests.unit.streams.test_response_races import Event, alert

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LIBRARY = REPO_ROOT / "playbooks" / "library" / "playbooks"


class TaskTopics:
    """Fake task topics (``app.topic``): a send to a topic in ``hung`` waits until the
    test removes it (as aiokafka waits for a topic's metadata); the others' messages are
    kept in ``sent`` (topic, value)."""

    def __init__(self, hung: set[str]) -> None:
        self.hung = hung
        self.tries: list[str] = []
        self.sent: list[tuple[str, bytes]] = []

    def topic(self, name: str, **kwargs: Any) -> Any:
        topics = self

        class Topic:
            async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
                topics.tries.append(name)
                while name in topics.hung:
                    await asyncio.sleep(0.01)
                topics.sent.append((name, value))
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                done.set_result(None)
                return done

        return Topic()


@pytest.fixture
def stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Response, list[dict[str, Any]], TaskTopics, Clock]:
    """A response stage whose flash-flood playbook sends a task message on tasks_hung
    first, a topic that takes nothing until the test says; its captured step sends, its
    task topics and its clock. The task message is given 0.2 s."""
    playbooks = tmp_path / "playbooks"
    shutil.copytree(LIBRARY, playbooks)
    flood = playbooks / "flash-flood.yaml"
    flood.write_text(
        flood.read_text().replace(
            "steps:\n",
            "steps:\n  - {id: task-first, action: kafka, topic: tasks_hung, "
            "message: {task: pump}}\n",
            1,
        )
    )
    settings = Settings(
        run_dir_override=tmp_path, grid_file=FIXTURES / "grid.yaml", playbook_dir=playbooks
    )
    app = faust.App("tasks", store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    sent: list[dict[str, Any]] = []

    async def queue(topic: Any, items: list[tuple[str, Any]]) -> list[Any]:
        sent.extend(value for _, value in items if isinstance(value, dict))
        return []

    async def nothing(*args: Any) -> None:
        return None

    ctx.queue = queue  # type: ignore[method-assign]
    ctx.audit = nothing  # type: ignore[method-assign]
    ctx.groups._send = nothing  # type: ignore[method-assign]
    topics = TaskTopics({settings.topic("tasks_hung")})
    monkeypatch.setattr(app, "topic", topics.topic)
    monkeypatch.setattr(response_module, "TASK_TOPIC_WAIT", 0.2)
    response = Response(ctx)
    response._update_lag = nothing  # type: ignore[method-assign]
    return response, sent, topics, start_clock(response, monkeypatch)


def flood_alert(alert_id: str, cell: str) -> dict[str, Any]:
    routed = alert(alert_id)
    routed["alert"]["grid_cell"] = routed["alert"]["labels"]["grid_cell"] = cell
    return routed


def actions(sent: list[dict[str, Any]], run_id: str) -> list[str]:
    return [s["action"] for s in sent if s.get("run_id") == run_id]


def test_a_task_topic_that_takes_nothing_holds_its_step_alone(
    stage: tuple[Response, list[dict[str, Any]], TaskTopics, Clock],
    caplog: pytest.LogCaptureFixture,
) -> None:
    response, sent, topics, clock = stage
    hung = response.settings.topic("tasks_hung")

    async def scenario() -> None:
        # Bounded here: before, the first alert's routing waited as long as the topic.
        await asyncio.wait_for(
            response.on_routed(Event(b"grp-a", flood_alert("al-1", "c-bridge"))), 5
        )  # type: ignore[arg-type]
        first = response.ctx.groups.data[b"grp-a"]
        run_a = first["run"]["run_id"]
        # The run's first response is out; its task message (and step) waits, alone.
        assert {"run_created", "notify", "dispatch"} <= set(actions(sent, run_a))
        assert "kafka" not in actions(sent, run_a)
        assert [c["action"] for c in first[OUTBOX]] == ["kafka"]
        # Another group's run opens at once: the topic is not waited for again.
        await asyncio.wait_for(
            response.on_routed(Event(b"grp-b", flood_alert("al-2", "c-top"))), 0.15
        )  # type: ignore[arg-type]
        run_b = response.ctx.groups.data[b"grp-b"]["run"]["run_id"]
        assert "dispatch" in actions(sent, run_b) and "kafka" not in actions(sent, run_b)
        assert topics.tries == [hung]
        # Deadline checks within the minute send nothing again, and wait for nothing.
        before = len(sent)
        clock.now += 10
        await asyncio.wait_for(response.check_deadlines(), 0.15)
        assert len(sent) == before and topics.tries == [hung]
        # The topic takes messages now: after the minute each run's task goes out once,
        # with its step record, and nothing else of the change is sent again.
        topics.hung.clear()
        clock.now += TASK_TOPIC_RETRY
        await response.check_deadlines()
        assert [t for t, _ in topics.sent] == [hung, hung]
        assert actions(sent[before:], run_a) == ["kafka"]
        assert actions(sent[before:], run_b) == ["kafka"]
        assert not response.ctx.groups.data[b"grp-a"].get(OUTBOX)
        await response.check_deadlines()
        assert len(topics.sent) == 2

    with caplog.at_level(logging.WARNING, logger="streams.response"):
        asyncio.run(scenario())
    said = [r.getMessage() for r in caplog.records if "tasks_hung" in r.getMessage()]
    assert len(said) == 1 and "cannot be written (not queued within 0.2 s)" in said[0]


def test_a_held_task_message_goes_out_with_the_runs_next_change(
    stage: tuple[Response, list[dict[str, Any]], TaskTopics, Clock],
) -> None:
    """An ack while the task message waits: the change is applied (its steps sent), the
    held message kept in the outbox beside it, not dropped by the new outbox."""
    response, sent, topics, clock = stage

    async def scenario() -> None:
        routed = Event(b"grp-a", flood_alert("al-1", "c-bridge"))
        await asyncio.wait_for(response.on_routed(routed), 5)  # type: ignore[arg-type]
        run_id = response.ctx.groups.data[b"grp-a"]["run"]["run_id"]
        ack = {"id": "cmd-1", "run_id": run_id, "action": "ack", "by": "duty-operator"}
        clock.now += 5
        await asyncio.wait_for(response.on_command(Event(b"grp-a", ack)), 0.15)  # type: ignore[arg-type]
        assert "acknowledged" in actions(sent, run_id)
        assert [c["action"] for c in response.ctx.groups.data[b"grp-a"][OUTBOX]] == ["kafka"]
        topics.hung.clear()
        clock.now += TASK_TOPIC_RETRY
        await response.check_deadlines()
        assert actions(sent, run_id).count("kafka") == 1 and len(topics.sent) == 1

    asyncio.run(scenario())


def test_held_task_messages_are_counted_by_playbook_and_topic_with_the_oldests_age(
    stage: tuple[Response, list[dict[str, Any]], TaskTopics, Clock],
) -> None:
    """t178: a held task message was only a warning a minute; the deadline pass now sets
    ``citybrain_task_messages_held`` and ``…_oldest_seconds`` by playbook and task topic
    (the playbook's name for it), every other task topic of the library at 0, and both
    back to 0 once the topic takes the messages. Fails on the old code (no such gauges)."""
    response, _sent, topics, clock = stage
    registry = response.metrics

    def held(topic: str = "tasks_hung", playbook: str = "flash-flood") -> tuple[float, float]:
        return (
            registry.tasks_held.labels(playbook, topic)._value.get(),
            registry.tasks_held_oldest.labels(playbook, topic)._value.get(),
        )

    def series() -> set[tuple[str, str]]:
        return {
            (s.labels["playbook"], s.labels["topic"])
            for s in next(iter(registry.tasks_held.collect())).samples
        }

    async def scenario() -> None:
        await asyncio.wait_for(
            response.on_routed(Event(b"grp-a", flood_alert("al-1", "c-bridge"))), 5
        )  # type: ignore[arg-type]
        clock.now += 7
        await asyncio.wait_for(response.on_routed(Event(b"grp-b", flood_alert("al-2", "c-top"))), 5)  # type: ignore[arg-type]
        clock.now += 20
        await response.check_deadlines()
        # Two held, the oldest made 27 s ago; the library's other task topics at 0.
        assert held() == (2.0, 27.0)
        assert held("tasks.drainage") == (0.0, 0.0)
        assert held("tasks.maintenance", "sensor-check") == (0.0, 0.0)
        assert ("crowd-surge", "tasks.metro") in series()
        topics.hung.clear()
        clock.now += TASK_TOPIC_RETRY
        await response.check_deadlines()
        assert held() == (0.0, 0.0)

    asyncio.run(scenario())
