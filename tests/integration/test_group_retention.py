"""Alert groups that end are forgotten (the last session's open finding): the ``groups``
table kept every group key ever routed with its finished run, so a feed of new
categories, districts or sensors made new groups for good (the table, its changelog and
the worker's memory grew without end). On the real worker and broker: 20,000 group keys,
each with an alert that resolves within group_wait (its run withdrawn, as Alertmanager
sends nothing for such a group; group_wait is long enough for the worker to read every
resolution first), with CITYBRAIN_GROUP_RETENTION 0; every one is
forgotten, a live group is kept, a restart reads back neither a forgotten group (their
tombstones) nor loses the live one, and a forgotten key routed again opens a run whose
id was never used."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from citybrain.stack import PrometheusServer
from streams.metrics import GROUPS, GROUPS_FORGOTTEN
from tests.integration.test_burst_bounds import scrape, wait_for
from tests.integration.test_pipeline import steps_of
from tests.services import Pipeline

pytestmark = pytest.mark.integration

KEYS = 20_000
WAIT = 300  # group_wait, seconds: the 40,000 routed messages are read well within it


def routed(alert_id: str, status: str, group_wait: float) -> bytes:
    alert: dict[str, Any] = {
        "schema": "alert/1",
        "alert_id": alert_id,
        "status": status,
        "sensor_id": "gauge-1",
        "kind": "water_level",
        "grid_cell": "c-bridge",
        "severity": "major",
        "score": 0.9,
        # Now: an alert that started more than group_wait ago is notified at once.
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "labels": {"alert_id": alert_id, "kind": "water_level", "source": "sensor"},
    }
    route = {
        "id": "root.2",
        "playbook": "flash-flood",
        "group_wait": group_wait,
        "group_interval": 1,
        "repeat_interval": 3600,
    }
    return json.dumps({"alert": alert, "route": route}).encode()


def test_twenty_thousand_ended_groups_are_forgotten_and_a_live_one_is_kept(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_GROUP_RETENTION": "0"})
    worker = p.worker().start()
    port = p.settings.worker_port
    try:
        # The live group: its run open (it waits for an acknowledgement for minutes).
        p.send("routed", b"grp-live", routed("al-live", "firing", 0))
        for n in range(KEYS):
            key = f"grp-{n:05d}".encode()
            p.send("routed", key, routed(f"al-{n}", "firing", WAIT))
            p.send("routed", key, routed(f"al-{n}", "resolved", WAIT))
        p.flush()
        assert wait_for(port, GROUPS_FORGOTTEN, KEYS, timeout=1200) == KEYS
        assert scrape(port, GROUPS) == 1
    finally:
        worker.stop()
    # A restart reads the changelog back: the tombstones keep the forgotten groups out,
    # the live group is there. Recovery reads every record the first run wrote (about
    # 140,000 on the groups changelog: no compaction within a test): 25 s on a quiet
    # machine, over 90 s in CI's three loaded processes (a landing run failed there).
    worker = p.worker().start(timeout=600)
    try:
        assert wait_for(port, GROUPS, 1) == 1
        # None came back to be forgotten again (that pass would have counted them).
        assert scrape(port, GROUPS_FORGOTTEN) == 0
        # A forgotten key routed again: a fresh group whose run is grp-00007.2, not .1.
        p.send("routed", b"grp-00007", routed("al-again", "firing", 0))
        p.flush()
        created = p.read(
            "steps", lambda m: any(d["alert_id"] == "al-again" for d in steps_of(m, "run_created"))
        )
        ids = {d["run_id"] for d in steps_of(created, "run_created") if d["alert_id"] == "al-again"}
        assert ids == {"grp-00007.2"}
        live = [d for d in steps_of(created, "run_created") if d["alert_id"] == "al-live"]
        assert [d["run_id"] for d in live] == ["grp-live.1"]
        assert scrape(port, GROUPS) == 2
    finally:
        worker.stop()
        p.close()
