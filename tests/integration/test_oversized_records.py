"""Records larger than the worker's own producer may write, on every topic it consumes.

Kafka takes a record up to the topic's ``max.message.bytes`` (1,048,588 by default, more
where an operator raised it), written by another client with a bigger limit (kafka-python
with ``max_request_size`` raised). The worker's producer takes at most 1,000,000 bytes a
record (faust's ``producer_max_request_size``). A valid message that large on one of the
worker's own topics was taken, and what the worker then wrote of it (the routed message
carrying the alert, the group's state, the command passed on to its run's partition) could
not be written. Each such message must cost only itself: a dead letter naming why, every
message around it handled, the group committed to the end, the worker alive."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from streams.context import run_key
from streams.events import IncidentReport, Reading
from streams.partitioning import key_partition, sensor_partition
from tests.integration.test_poison_pills import assert_committed_to_end, wait_scored
from tests.services import Pipeline, start_of_hour
from tests.unit.streams.test_routed_admission import ALERT

pytestmark = pytest.mark.integration

START = start_of_hour(10)
MB = 1_000_000
# Above the worker's producer limit, below the broker's default message.max.bytes.
NEAR = 1_030_000
# Above the broker's default: the topic's max.message.bytes is raised for it.
OVER = 3 * MB


def alert(alert_id: str, **labels: str) -> dict[str, Any]:
    """test_routed_admission's alert, as ``alert_id``, with ``labels`` added."""
    return {
        **ALERT,
        "alert_id": alert_id,
        "labels": {**ALERT["labels"], "alert_id": alert_id, **labels},
    }


ROUTE = {
    "id": "root.2",
    "playbook": "flash-flood",
    "group_wait": 0,
    "group_interval": 300,
    "repeat_interval": 3600,
}


def raise_limit(p: Pipeline, roles: list[str], limit: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=p.settings.kafka_bootstrap)
    try:
        admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, p.topic(r), configs={"max.message.bytes": str(limit)}
                )
                for r in roles
            ]
        )
    finally:
        admin.close()


def reasons(dead: list[Any]) -> Counter[tuple[str, str]]:
    return Counter(
        (
            dict(m.headers)["citybrain.error.stream"].decode(),
            dict(m.headers)["citybrain.error.reason"].decode(),
        )
        for m in dead
    )


def test_a_valid_message_too_large_to_pass_on_costs_only_itself(pipeline: Pipeline) -> None:
    p = pipeline
    roles = ["readings", "incidents", "alerts", "routed", "commands", "corroboration"]
    raise_limit(p, roles, 4 * MB)
    big = KafkaProducer(
        bootstrap_servers=p.settings.kafka_bootstrap, max_request_size=8 * MB, acks="all"
    )
    worker = p.worker().start()
    try:
        pad = "x" * NEAR
        # alerts: a good one, one whose label alone is near the broker's limit, a good one.
        for raw in (
            alert("al-a"),
            alert("al-big", note=pad),
            alert("al-huge", note="y" * OVER),
            alert("al-b"),
        ):
            big.send(
                p.topic("alerts"), key=raw["alert_id"].encode(), value=json.dumps(raw).encode()
            )
        # routed: the same, as another tool would offer them to groups.
        for group, raw in (
            ("grp-a", alert("al-r1")),
            ("grp-big", alert("al-r2", note=pad)),
            ("grp-b", alert("al-r3")),
        ):
            doc = {"alert": raw, "route": ROUTE}
            big.send(p.topic("routed"), key=group.encode(), value=json.dumps(doc).encode())
        # commands: one with a note near the limit on another partition than its run's
        # (passed on there as it came), one on its own partition, and a small one.
        for run_id, note in (("grp-x.1", pad), ("grp-y.1", pad), ("grp-z.1", "n")):
            home = key_partition(run_key(run_id), p.settings.partitions)
            cmd = {"id": f"c-{run_id}", "run_id": run_id, "action": "ack", "note": note}
            for partition in {home, 1 - home}:
                big.send(
                    p.topic("commands"),
                    key=run_key(run_id),
                    value=json.dumps(cmd).encode(),
                    partition=partition,
                )
        # One within the bound whose headers make it too large to pass on (and the same
        # on its run's partition: read there, no run).
        run_id = "grp-h.1"
        home = key_partition(run_key(run_id), p.settings.partitions)
        cmd = {"id": "c-h", "run_id": run_id, "action": "ack", "note": "h" * 300_000}
        headers = [(f"trace-{i}", b"t" * 200_000) for i in range(4)]
        for partition in (home, 1 - home):
            big.send(
                p.topic("commands"),
                key=run_key(run_id),
                value=json.dumps(cmd).encode(),
                partition=partition,
                headers=headers,
            )
        # readings and reports: one over the broker's default between good ones.
        home = sensor_partition("gauge-1", p.settings.partitions)
        goods = 0
        for i in range(20):
            reading = Reading(START + 300 * i, "gauge-1", "water_level", 10.0, "ft", "c-bridge")
            big.send(p.topic("readings"), key=b"gauge-1", value=reading.to_json(), partition=home)
            goods += 1
            if i == 5:
                later = Reading(
                    START + 300 * i + 1, "gauge-1", "water_level", 10.0, "ft", "c-bridge"
                )
                doc = {**json.loads(later.to_json()), "note": pad * 3}  # read: a reading
                big.send(p.topic("readings"), key=b"gauge-1", value=json.dumps(doc).encode())
                goods += 1
            if i == 6:
                big.send(p.topic("readings"), key=b"gauge-1", value=b"{" * OVER)
        report = IncidentReport(START, "r-big", "Noise", "z" * OVER, "app", "c-top")
        big.send(p.topic("incidents"), key=b"c-top", value=report.to_json())
        big.flush()
        wait_scored(p, goods, "the good readings were not all scored")
        routed = p.read("routed", lambda m: len(m) >= 5, timeout=120, settle=3)
        ids = Counter(
            json.loads(m.value)["alert"]["alert_id"]
            for m in routed
            if len(m.value) < MB and "alert" in json.loads(m.value)
        )
        assert ids["al-a"] >= 1 and ids["al-b"] >= 1, ids
        dead = p.read("deadletter", lambda m: len(m) >= 13, timeout=120, settle=5)
        assert reasons(dead) == {
            ("alerts", "bad_alert"): 2,
            ("routed", "bad_json"): 1,
            ("commands", "bad_command"): 5,  # each big one, on either partition; headers
            ("commands", "unknown_run"): 3,  # the small one (passed on), the headers' one
            ("readings", "bad_json"): 1,
            ("incidents", "too_long"): 1,
        }
        for m in dead:
            headers = dict(m.headers)
            own = headers["citybrain.error.stream"] in (b"alerts", b"routed", b"commands")
            if own and headers["citybrain.error.reason"] != b"unknown_run":
                message = headers["citybrain.error.message"]
                assert b"bytes: the worker takes at most 500,000" in message or (
                    b"passed on there with its headers it would be 1,100,0" in message
                ), message
            assert len(m.value) < MB
        for role in roles:
            assert_committed_to_end(p, role)
        log = worker.log()
        assert worker.alive() and "Crashed" not in log and "Traceback" not in log, log[-3000:]
    finally:
        worker.stop()
        big.close()


def test_alerts_held_in_one_area_that_outgrow_a_message_cost_only_themselves(
    pipeline: Pipeline,
) -> None:
    # Each alert is within the bound, but an area keeps every alert it holds (for the
    # corroboration grace) in one state entry, written to its changelog whole.
    p = pipeline
    worker = p.worker().start()
    try:
        for i in range(4):
            doc = {**alert(f"al-held-{i}", note="h" * 400_000), "score": 0.55}
            p.send("corroboration", b"area-1", json.dumps({"type": "alert", "alert": doc}).encode())
        small = {**alert("al-small"), "score": 0.55}
        p.send("corroboration", b"area-1", json.dumps({"type": "alert", "alert": small}).encode())
        p.flush()
        alerts = p.read(
            "alerts",
            lambda m: any(b"al-small" in x.value for x in m),
            timeout=120,
            settle=3,
        )
        assert any(b"al-small" in m.value for m in alerts)
        dead = p.read("deadletter", lambda m: len(m) >= 2, timeout=120, settle=3)
        # The two that would have made the area's state too large, each named so.
        assert reasons(dead) == {("corroboration", "bad_alert"): 2}
        for m in dead:
            message = dict(m.headers)["citybrain.error.message"].decode()
            assert "area 'area-1''s state with it would be" in message, message
            assert "2 alerts held" in message, message
        assert_committed_to_end(p, "corroboration")
        log = worker.log()
        assert worker.alive() and "Crashed" not in log and "Traceback" not in log, log[-3000:]
    finally:
        worker.stop()


def test_a_worker_killed_after_refusing_one_resumes_past_it(pipeline: Pipeline) -> None:
    # Before, the oversized alert crashed the worker and every restart met it again (a
    # crash loop). Now a worker SIGKILLed right after its dead letter, before or after
    # its commit, is replaced by one that refuses it again (at least once) and goes on.
    p = pipeline
    big = KafkaProducer(bootstrap_servers=p.settings.kafka_bootstrap, max_request_size=2 * MB)
    try:
        for raw in (alert("al-k1"), alert("al-kbig", note="x" * NEAR), alert("al-k2")):
            big.send(p.topic("alerts"), key=b"al-k", value=json.dumps(raw).encode())
        big.flush()
    finally:
        big.close()
    worker = p.worker().start()
    try:
        p.read("deadletter", lambda m: len(m) >= 1, timeout=120)
        worker.kill()
        worker = p.worker().start()
        routed = p.read(
            "routed",
            lambda m: {"al-k1", "al-k2"} <= {json.loads(x.value)["alert"]["alert_id"] for x in m},
            timeout=120,
            settle=3,
        )
        assert routed
        dead = p.read("deadletter", lambda m: len(m) >= 1, timeout=60, settle=3)
        assert set(reasons(dead)) == {("alerts", "bad_alert")}
        assert_committed_to_end(p, "alerts")
        log = worker.log()
        assert worker.alive() and "Crashed" not in log and "Traceback" not in log, log[-3000:]
    finally:
        worker.stop()
