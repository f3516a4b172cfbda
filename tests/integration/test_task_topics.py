"""A playbook's ``kafka`` step whose task topic Kafka cannot give (t172): one run's task
message must not hold every other run, nor the run's own other steps, and is sent once
the topic can be written.

The broker refuses to create a topic whose name collides with an existing one's but for
``.`` and ``_`` (``<prefix>.tasks_drainage`` beside ``<prefix>.tasks.drainage``), so the
step's send waits for the topic's metadata. Before t172 that send was awaited in the
routed agent for faust's producer_request_timeout (20 minutes), and no other alert was
routed to a run meanwhile."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from citybrain.stack.topics import topics_admin
from tests.integration.test_pipeline import steps_of
from tests.integration.test_response import LIBRARY, spike
from tests.services import Pipeline, prometheus_query

pytestmark = pytest.mark.integration


def wait_for_query(stack: PrometheusServer, query: str, timeout: float = 60.0) -> None:
    """Wait until the real Prometheus answers ``query`` with a series."""
    deadline = time.monotonic() + timeout
    while not prometheus_query(stack.url, query):
        assert time.monotonic() < deadline, f"Prometheus never answered {query}"
        time.sleep(0.5)


def test_a_task_topic_kafka_cannot_give_holds_only_its_own_step(
    pipeline: Pipeline, tmp_path: Path, stack: PrometheusServer
) -> None:
    playbooks = tmp_path / "playbooks"
    shutil.copytree(LIBRARY, playbooks)
    flood = playbooks / "flash-flood.yaml"
    text = flood.read_text()
    assert "steps:\n" in text
    # The flood's first step a task message on a topic that collides with the library's
    # tasks.drainage, which the pipeline's topics include (this library writes none:
    # `playbooks check` refuses two task topics that collide).
    flood.write_text(
        text.replace("tasks.drainage", "tasks_drainage").replace(
            "steps:\n",
            "steps:\n  - {id: task-first, action: kafka, topic: tasks_drainage, "
            "message: {task: pump}}\n",
            1,
        )
    )
    pipeline.env["CITYBRAIN_PLAYBOOK_DIR"] = str(playbooks)
    worker = pipeline.worker().start()
    try:
        spike(pipeline)  # gauge-2: flash-flood, whose first step cannot be sent
        # The run's other steps go out (its first response dispatched) ...
        steps = pipeline.read("steps", lambda m: bool(steps_of(m, "dispatch")))
        assert steps_of(steps, "run_created")[0]["playbook"] == "flash-flood"
        # ... and another sensor's alert gets its run while the task message waits.
        spike(pipeline, sensor="air-1", start=200)
        steps = pipeline.read(
            "steps",
            lambda m: any(d["playbook"] == "air-pollution" for d in steps_of(m, "run_created")),
            timeout=40,
        )
        assert not steps_of(steps, "kafka")  # the flood's step record waits with it
        assert f"{pipeline.name}.tasks_drainage cannot be written" in pipeline.worker_logs(400)
        # Counted where Prometheus sees it (t178: before, only the warning showed it), the
        # oldest's age growing, by playbook and task topic as the playbook names it.
        instance = f'job="citybrain-worker",instance="127.0.0.1:{pipeline.settings.worker_port}"'
        held = f'{instance},playbook="flash-flood",topic="tasks_drainage"'
        wait_for_query(stack, f"citybrain_task_messages_held{{{held}}} == 1")
        wait_for_query(stack, f"citybrain_task_messages_held_oldest_seconds{{{held}}} > 2")
        # Once the topic can be made (the one it collided with deleted), the held task
        # message and its step go out, once (a minute after the last try at most).
        admin = topics_admin(pipeline.settings)
        try:
            admin.delete_topics([pipeline.topic("tasks.drainage")])
        finally:
            admin.close()
        tasks = pipeline.read("tasks_drainage", lambda m: len(m) >= 1, timeout=120, settle=3)
        [task] = [json.loads(m.value) for m in tasks]
        assert (task["task"], task["kind"]) == ("pump", "water_level")
        steps = pipeline.read("steps", lambda m: bool(steps_of(m, "kafka")))
        assert [d["data"]["topic"] for d in steps_of(steps, "kafka")] == ["tasks_drainage"]
        wait_for_query(stack, f"citybrain_task_messages_held{{{held}}} == 0")
        wait_for_query(stack, f"citybrain_task_messages_held_oldest_seconds{{{held}}} == 0")
    finally:
        worker.stop()
