"""A run id is never used twice across a restart whatever the ``generations`` changelog
holds (t194). A forgotten group's key routed again opens its next run above the
partition's floor (``<app id>-generations-changelog``); junk written after the floor's
last sound entry (another shape, a floor of another type, a newer version's entry, text
that is not JSON, a tombstone) read back as "no floor", and the restarted worker opened
``<key>.1`` again, the id of the first incident's run: two incidents' steps, audit and
webhook deliveries under one id. On the real broker: each junk entry is skipped, said at
WARNING with its partition and offset, counted and audited, and the floor kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from streams.context import generation_keys
from streams.metrics import GROUPS_FORGOTTEN, STATE_UNREADABLE
from streams.partitioning import key_partition
from tests.integration.test_burst_bounds import wait_for
from tests.integration.test_group_retention import routed
from tests.integration.test_pipeline import docs, steps_of
from tests.services import Pipeline

pytestmark = pytest.mark.integration

# Each is what a version of citybrain never writes as a floor; the tombstone comes last,
# so the changelog's last entry for the key is one no reader may take as "no floor".
JUNK: list[bytes | None] = [
    b'{"floor": "1"}',
    b"[1]",
    b'{"format": 2, "floor": {"by_partition": 1}}',
    b"not json",
    None,
]


def run_created(p: Pipeline, alert_id: str) -> set[str]:
    """The run ids the steps topic says were created for ``alert_id``."""
    found = p.read(
        "steps", lambda m: any(d["alert_id"] == alert_id for d in steps_of(m, "run_created"))
    )
    return {d["run_id"] for d in steps_of(found, "run_created") if d["alert_id"] == alert_id}


def test_junk_in_the_run_floors_changelog_never_lets_a_restarted_worker_reuse_a_run_id(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_GROUP_RETENTION": "0"})
    port = p.settings.worker_port
    key = b"grp-floor"
    worker = p.worker().start()
    try:
        # The first incident: resolved within its group's wait, its run (grp-floor.1)
        # withdrawn and its group forgotten, raising the partition's floor to 1 (as in
        # test_group_retention).
        p.send("routed", key, routed("al-first", "firing", 5))
        p.send("routed", key, routed("al-first", "resolved", 5))
        p.flush()
        assert wait_for(port, GROUPS_FORGOTTEN, 1) == 1
    finally:
        worker.stop()
    n = p.settings.partitions
    partition = key_partition(key, n)
    floor_key = generation_keys(n)[partition]
    topic = f"{p.settings.app_id}-generations-changelog"
    for value in JUNK:
        p.producer.send(topic, key=floor_key, value=value)
    p.flush()
    worker = p.worker().start()
    try:
        p.send("routed", key, routed("al-second", "firing", 0))
        p.flush()
        # Above the floor kept: never grp-floor.1 again.
        assert run_created(p, "al-second") == {"grp-floor.2"}
        assert wait_for(port, STATE_UNREADABLE, len(JUNK)) == len(JUNK)
        audit = p.read(
            "audit",
            lambda m: sum(d.get("table") == "generations" for d in docs(m)) >= len(JUNK),
            settle=1,
        )
        skipped = [d for d in docs(audit) if d.get("action") == "state_unreadable"]
        assert sorted(d["reason"] for d in skipped) == sorted(
            ["bad_shape", "bad_shape", "newer_format", "not_decodable", "deleted"]
        )
        assert all(d["key"] == floor_key.decode() for d in skipped)
        assert all("skipped, kept 1" in d["detail"] for d in skipped)
        log = worker.log()
        said = [line for line in log.splitlines() if "skipped the entry of key" in line]
        assert len(said) == len(JUNK)
        assert all(f"changelog partition {partition} offset " in line for line in said)
        assert worker.alive() and "Traceback" not in log
    finally:
        worker.stop()
        p.close()


def test_junk_written_over_a_group_never_lets_its_key_reuse_a_run_id(
    stack: PrometheusServer, run_dir: Path
) -> None:
    """The groups changelog's sibling: junk written over a group with a run dropped it at
    read-back (rightly: it cannot be read), and the key's next alert opened a fresh group
    at the partition's floor, 0: run ``grp-junk.1`` again, the dropped group's id. Now the
    generation the key held before becomes the partition's floor: ``grp-junk.2``."""
    p = Pipeline(run_dir)
    key = b"grp-junk"
    worker = p.worker().start()
    try:
        p.send("routed", key, routed("al-first", "firing", 0))
        p.flush()
        assert run_created(p, "al-first") == {"grp-junk.1"}
    finally:
        worker.stop()
    p.producer.send(f"{p.settings.app_id}-groups-changelog", key=key, value=b"not json")
    p.flush()
    worker = p.worker().start()
    try:
        p.send("routed", key, routed("al-second", "firing", 0))
        p.flush()
        assert run_created(p, "al-second") == {"grp-junk.2"}
        log = worker.log()
        assert "its partition's floor is raised from 0 to 1" in log, log[-3000:]
        assert worker.alive() and "Traceback" not in log
    finally:
        worker.stop()
        p.close()
