"""t110 on the real broker: Kafka frozen (SIGSTOP: it takes connections and answers
nothing) while two operators acknowledge one run. The first is answered 503 ("nothing is
applied yet; retry with the same Idempotency-Key"), its command still queued: it reaches
Kafka once the broker resumes and is applied then, once (one action, one
``acknowledged`` step, counted once in the acknowledgements and the time-to-acknowledge
histogram). The second is answered 503 naming that queued command and sends nothing.
Each operator's retry with its key is then told the truth: the first its 202 again, the
second 200 "already", naming the first. Before t110 the second command was queued too
and applied as a no-op, and both retries were 202 "accepted: ack … by <them>", the
second operator's acknowledgement on the run nowhere."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from citybrain.stack import KafkaBroker
from citybrain.stack.process import read_pid
from tests.integration.test_pipeline import docs, steps_of
from tests.integration.test_response import one_spiked_run
from tests.services import COORDINATOR_TOKEN, OPERATOR_TOKEN, Pipeline, stack_settings
from tests.stalls import sigstop

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka_pid(pipeline: Pipeline, run_dir: Path) -> Iterator[int]:
    """The test stack's Kafka's pid; thawed at the end whatever happened."""
    pid = read_pid(KafkaBroker(stack_settings(run_dir)).pid_file)
    assert pid is not None
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


def counted(pipeline: Pipeline, name: str) -> float:
    """The sum of the worker's samples of ``name`` (every label set)."""
    url = f"http://127.0.0.1:{pipeline.settings.worker_port}/metrics?name[]={name}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_acks_sent_while_kafka_froze_are_applied_once_and_their_retries_told_the_truth(
    pipeline: Pipeline, kafka_pid: int
) -> None:
    worker = pipeline.worker().start()
    try:
        run_id = one_spiked_run(pipeline)
        acks_before = counted(pipeline, "citybrain_playbook_acks_total")
        tta_before = counted(pipeline, "citybrain_playbook_time_to_ack_seconds_count")
        path = f"/runs/{run_id}/ack"
        ana = {"Idempotency-Key": "ack-ana"}
        coord = {"Idempotency-Key": "ack-coordinator"}

        _, shown = pipeline.api("GET", f"/runs/{run_id}", OPERATOR_TOKEN)
        seen, deadline = shown["run"]["level"], shown["run"]["deadline_at"]
        sigstop(kafka_pid)
        started = time.monotonic()
        status, said = pipeline.api("POST", path, OPERATOR_TOKEN, {"note": "ana"}, None, ana)
        assert status == 503, said
        assert "retry (with the same Idempotency-Key" in said["error"]
        status, said = pipeline.api("POST", path, COORDINATOR_TOKEN, {"note": "co"}, None, coord)
        assert status == 503, said
        assert "has a ack command answered 503" in said["error"], said  # the first, queued
        assert time.monotonic() - started < 30  # each bounded by the API's 5 s wait
        # Frozen past the ack deadline: the ack, given before it, is still queued (t114:
        # the ladder told the next level, and the ack was recorded at the level the
        # run had reached). The ladder waits for it.
        time.sleep(max(0.0, deadline + 2.0 - time.time()))
        os.kill(kafka_pid, signal.SIGCONT)

        # The first command reaches Kafka once it resumes (nothing cancelled once
        # queued); the second was never sent ...
        commands = pipeline.read("commands", lambda m: len(docs(m)) >= 1, timeout=90, settle=3)
        acks = [d for d in docs(commands) if d["action"] == "ack"]
        assert [d["note"] for d in acks] == ["ana"], acks
        # ... and a command after it shows it was applied: the run resolved.
        status, said = pipeline.api(
            "POST", f"/runs/{run_id}/resolve", OPERATOR_TOKEN, {"note": "x"}
        )
        assert status == 202, said
        _, shown = pipeline.api_until(
            f"/runs/{run_id}", OPERATOR_TOKEN, lambda s, b: b["run"]["status"] == "resolved"
        )
        run = shown["run"]
        assert run["acknowledged_by"] == "duty-operator", run
        [ack] = [a for a in run["actions"] if a["action"] == "ack"]
        assert ack["note"] == "ana"
        [sent] = acks
        # Recorded when and where it was given, and the ladder took no step past it.
        assert (ack["level"], ack["at"]) == (seen, sent["at"]) and sent["level"] == seen, ack
        assert run["level"] == seen and ack["at"] < deadline, (run["level"], ack)
        steps = pipeline.read("steps", lambda m: bool(steps_of(m, "resolved")))
        [acked] = [s for s in steps_of(steps, "acknowledged") if s["run_id"] == run_id]
        assert acked["level"] == seen, acked
        assert [s for s in steps_of(steps, "escalate") if s["run_id"] == run_id] == []
        assert counted(pipeline, "citybrain_playbook_acks_total") == acks_before + 1
        assert counted(pipeline, "citybrain_playbook_time_to_ack_seconds_count") == tta_before + 1

        # The retries: the applied one is its 202 again, the other is told who
        # acknowledged the run (it was "accepted … by duty-coordinator").
        status, said = pipeline.api("POST", path, OPERATOR_TOKEN, {"note": "ana"}, None, ana)
        assert status == 202 and said["command"]["by"] == "duty-operator", said
        status, said = pipeline.api("POST", path, COORDINATOR_TOKEN, {"note": "co"}, None, coord)
        assert status == 200, said
        assert (said["already"]["by"], said["already"]["note"]) == ("duty-operator", "ana")
    finally:
        worker.stop()
