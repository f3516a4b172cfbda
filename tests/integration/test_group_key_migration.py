"""t126 on the real broker: a group key was its route's position in the routing tree,
and is now the route's matcher path. A run opened before the upgrade is stored under its
old key (``<app>-groups-changelog``); the worker restarted onto the new code reads it
back, and the next alert of that group joins that run: no second run, no second dispatch.
The old worker's routed message is written as it wrote it (its key, no ``legacy_key``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest

from citybrain.stack import PrometheusServer
from playbooks.loader import default_routing_path, load_playbooks, load_routing
from streams.alerting import _route_doc, checked_alert
from streams.partitioning import key_partition
from tests.integration.test_pipeline import steps_of
from tests.services import ROOT, Pipeline, shifted_port

pytestmark = pytest.mark.integration

ALERT = ROOT / "tests" / "fixtures" / "field-cases" / "silence-escaped-quote" / "alert.json"
# The default routing's and library's grid, where the field case's alert lies (a firing
# alert in a cell the worker's grid lacks is bad_routed since t137).
ENV = {
    "CITYBRAIN_ACK_DEADLINE_SECONDS": "600",
    "CITYBRAIN_GRID_FILE": str(ROOT / "datasets" / "grid.yaml"),
}


def flood(alert_id: str, street: str = "md-sligo-creek") -> dict[str, object]:
    doc = json.loads(ALERT.read_text())
    doc["alert_id"] = doc["labels"]["alert_id"] = alert_id
    doc["labels"]["street"] = street  # the flash-flood route groups by street
    return dict(doc)


def test_a_run_opened_under_the_old_key_is_joined_after_the_restart(
    run_dir: Path, stack: PrometheusServer
) -> None:
    router = load_routing(
        default_routing_path(), load_playbooks(ROOT / "playbooks" / "library" / "playbooks")
    )
    alert, labels = checked_alert(flood("al-before"))
    [route] = router.root.match(labels)
    old, new = route.legacy_group_key(labels), route.group_key(labels)
    assert old != new
    p = Pipeline(run_dir, extra_env=ENV)
    worker = p.worker()
    try:
        # What the worker before t126 sent for the group's first alert.
        p.send("routed", old.encode(), orjson.dumps({"alert": alert, "route": _route_doc(route)}))
        p.flush()
        worker.start()
        [created] = steps_of(
            p.read("steps", lambda m: bool(steps_of(m, "run_created"))), "run_created"
        )
        assert created["run_id"] == f"{old}.1"
        worker.kill()  # its state now only in the changelog
        worker.start()
        p.send("alerts", b"al-after", orjson.dumps(flood("al-after")))
        p.flush()
        steps = p.read(
            "steps",
            lambda m: any(d["detail"] == "al-after" for d in steps_of(m, "alert_joined")),
            settle=3,
        )
        [joined] = [d for d in steps_of(steps, "alert_joined") if d["detail"] == "al-after"]
        assert joined["run_id"] == f"{old}.1"
        assert [d["run_id"] for d in steps_of(steps, "run_created")] == [f"{old}.1"]
    finally:
        worker.stop()
        p.close()


def test_with_two_workers_the_old_keys_partition_is_asked_through_kafka(
    run_dir: Path, stack: PrometheusServer
) -> None:
    """The group's old key and its new one on different partitions, held by two
    workers: the new key's worker forwards the alert to the old key's, which takes it
    into the run stored there."""
    router = load_routing(
        default_routing_path(), load_playbooks(ROOT / "playbooks" / "library" / "playbooks")
    )
    for i in range(100):  # a street whose two keys fall on different partitions
        street = f"md-sligo-creek-{i}"
        alert, labels = checked_alert(flood("al-before", street))
        [route] = router.root.match(labels)
        old, new = route.legacy_group_key(labels), route.group_key(labels)
        if key_partition(old.encode(), 2) != key_partition(new.encode(), 2):
            break
    p = Pipeline(run_dir, extra_env=ENV)
    a = p.worker()
    b_env = {**p.env, "CITYBRAIN_WORKER_PORT": str(shifted_port(26068))}
    b = type(a)(b_env, p.run_dir / f"{p.name}-worker-b.log")
    try:
        p.send("routed", old.encode(), orjson.dumps({"alert": alert, "route": _route_doc(route)}))
        p.flush()
        a.start()
        b.start()
        [created] = steps_of(
            p.read("steps", lambda m: bool(steps_of(m, "run_created"))), "run_created"
        )
        assert created["run_id"] == f"{old}.1"
        # Both in the group, one partition each (faust's assignor splits them), before
        # the alert.
        deadline = time.monotonic() + 120
        while not ("Worker ready" in a.log() and "Worker ready" in b.log()):
            assert time.monotonic() < deadline, "the two workers never became ready"
            time.sleep(0.5)
        p.send("alerts", b"al-after", orjson.dumps(flood("al-after", street)))
        p.flush()
        steps = p.read(
            "steps",
            lambda m: any(d["detail"] == "al-after" for d in steps_of(m, "alert_joined")),
            settle=3,
        )
        [joined] = [d for d in steps_of(steps, "alert_joined") if d["detail"] == "al-after"]
        assert joined["run_id"] == f"{old}.1"
        assert [d["run_id"] for d in steps_of(steps, "run_created")] == [f"{old}.1"]
        routed = p.read("routed", lambda m: len(m) >= 3, settle=2)
        probes = [m for m in routed if b'"probe"' in m.value]
        assert [m.key for m in probes] == [old.encode()]  # asked once, through Kafka
    finally:
        a.stop()
        b.stop()
        p.close()
