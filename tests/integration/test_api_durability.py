"""Trial 10, findings 1 and 5 on the real broker: what the operator API answered 2xx for is
on Kafka before the answer, so a worker SIGKILLed right after loses none of it (acks,
resolves, silences created and expired); an acknowledgement keeps the time the API
accepted it; while Kafka is down the API answers 503 and stores nothing."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from citybrain.stack import KafkaBroker, PrometheusServer
from tests.integration.test_pipeline import docs
from tests.integration.test_response import one_spiked_run
from tests.services import COORDINATOR_TOKEN, OPERATOR_TOKEN, Pipeline, stack_settings

pytestmark = pytest.mark.integration

SILENCES = 5
EXPIRED = 3


def silence(i: int) -> dict[str, object]:
    return {"matchers": [f'category="durability-{i}"'], "duration": "2h", "reason": f"s{i}"}


def test_what_the_api_answered_2xx_survives_a_sigkill_right_after(pipeline: Pipeline) -> None:
    worker = pipeline.worker().start()
    try:
        run_id = one_spiked_run(pipeline)
        acked = resolved = run_id  # acknowledged, then resolved
        status, ack = pipeline.api("POST", f"/runs/{acked}/ack", OPERATOR_TOKEN, {"note": "go"})
        assert status == 202, ack
        status, res = pipeline.api(
            "POST", f"/runs/{resolved}/resolve", OPERATOR_TOKEN, {"note": "fixed"}
        )
        assert status == 202, res
        ids = []
        for i in range(SILENCES):
            status, made = pipeline.api("POST", "/silences", OPERATOR_TOKEN, silence(i))
            assert status == 201, made
            ids.append(made["silence"]["id"])
        for silence_id in ids[:EXPIRED]:
            status, gone = pipeline.api("DELETE", f"/silences/{silence_id}", COORDINATOR_TOKEN)
            assert status == 200, gone
        worker.kill()  # right after the last answer

        commands = {d["id"]: d for d in docs(pipeline.read("commands", lambda m: len(m) >= 2))}
        for sent in (ack["command"], res["command"]):
            assert commands[sent["id"]] == sent  # the same command, its time the API's

        worker = pipeline.worker().start()
        status, listed = pipeline.api("GET", "/silences", OPERATOR_TOKEN)
        kept = {s["id"]: s for s in listed["silences"]}
        assert sorted(kept) == sorted(ids)
        assert [kept[i]["expired_by"] for i in ids[:EXPIRED]] == ["duty-coordinator"] * EXPIRED
        assert [kept[i]["active"] for i in ids] == [False] * EXPIRED + [True] * (SILENCES - EXPIRED)
        audit = docs(
            pipeline.read(
                "audit",
                lambda m: len([d for d in docs(m) if d["action"] == "silence_expired"]) >= EXPIRED,
            )
        )
        created = [d for d in audit if d["action"] == "silence_created"]
        assert sorted(i for i in ids for d in created if repr(i) in d["detail"]) == sorted(ids)
        assert sorted(d["detail"] for d in audit if d["action"] == "silence_expired") == sorted(
            ids[:EXPIRED]
        )

        _, shown = pipeline.api_until(
            f"/runs/{acked}",
            OPERATOR_TOKEN,
            lambda s, b: b.get("run", {}).get("acknowledged_at") is not None,
        )
        assert shown["run"]["acknowledged_at"] == ack["command"]["at"]  # not the restart's
        _, shown = pipeline.api_until(
            f"/runs/{resolved}",
            OPERATOR_TOKEN,
            lambda s, b: b.get("run", {}).get("status") == "resolved",
        )
        assert shown["run"]["resolved_at"] == res["command"]["at"]
    finally:
        worker.stop()


def test_silences_answered_201_during_a_burst_cut_by_a_sigkill_are_all_kept(
    pipeline: Pipeline,
) -> None:
    """The trial's silkill.py: silences posted concurrently, the worker SIGKILLed when the
    5th 201 arrives; each one answered 201 is there after the restart (requests cut by
    the kill got no 2xx and may or may not be)."""
    worker = pipeline.worker().start()
    answered: list[str] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        try:
            status, made = pipeline.api("POST", "/silences", OPERATOR_TOKEN, silence(i))
        except OSError:  # the connection cut by the kill
            return
        if status == 201:
            with lock:
                answered.append(made["silence"]["id"])
                if len(answered) == 5:
                    worker.kill()

    try:
        threads = [threading.Thread(target=post, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(answered) >= 5 and not worker.alive()
        worker = pipeline.worker().start()
        status, listed = pipeline.api("GET", "/silences", OPERATOR_TOKEN)
        assert status == 200, listed
        kept = {s["id"] for s in listed["silences"]}
        assert set(answered) <= kept, sorted(set(answered) - kept)
    finally:
        worker.stop()


def test_while_kafka_is_down_the_api_answers_503_and_stores_nothing(
    stack: PrometheusServer, run_dir: Path
) -> None:
    pipeline = Pipeline(run_dir, extra_env={"CITYBRAIN_ACK_DEADLINE_SECONDS": "3"})
    kafka = KafkaBroker(stack_settings(run_dir))
    worker = pipeline.worker().start()
    try:
        run_id = one_spiked_run(pipeline)
        assert kafka.stop()
        started = time.monotonic()
        status, said = pipeline.api("POST", "/silences", OPERATOR_TOKEN, silence(0))
        assert status == 503, said
        assert said["error"].startswith("Kafka is unreachable: it has not acknowledged silence")
        status, ack = pipeline.api("POST", f"/runs/{run_id}/ack", OPERATOR_TOKEN)
        assert status == 503, ack
        assert "retry (with the same Idempotency-Key" in ack["error"]
        assert time.monotonic() - started < 60  # bounded: a hang, not a speed, is caught
        status, listed = pipeline.api("GET", "/silences", OPERATOR_TOKEN)
        assert (status, listed["silences"]) == (200, []), json.dumps(listed)
    finally:
        worker.kill()
        if not kafka.running():
            kafka.start()
        pipeline.close()
