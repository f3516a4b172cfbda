"""A restart with another ``CITYBRAIN_PARTITIONS`` than the topics were made with, on
the real broker (trial t41): a worker counting 4 partitions on topics of 2 started,
dead-lettered every reading it placed on partition 2 or 3 as ``wrong_partition`` and
crashed writing a changelog partition that does not exist, so the spikes sent after the
restart were never alerted. It now refuses to start, in one line naming the setting and
the topics' count, before it joins the group; the worker restarted with the right count
then alerts every spike once (nothing lost, nothing repeated). The ingest and a packed
replay, which place packs on partitions they compute, refuse alike."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.integration.test_pipeline import firing, real_levels
from tests.integration.test_scale_out import SENSORS, scaled, send_round  # noqa: F401
from tests.services import IngestProcess, Pipeline

pytestmark = pytest.mark.integration


def refused(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "citybrain.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_restart_with_another_partition_count_is_refused_and_loses_nothing(
    scaled: Pipeline,  # noqa: F811
) -> None:
    base = real_levels(60)
    worker = scaled.worker().start()
    for i in range(40):
        send_round(scaled, i, set(), base)
    first = set(SENSORS[:6]) | set(SENSORS[12:18])
    send_round(scaled, 40, first, base)
    scaled.flush()
    scaled.read("alerts", lambda m: len(firing(m)) >= len(first))
    time.sleep(1)  # let the worker flush its state for that batch
    worker.kill()
    # Readings go on while the worker is down and restarted with another count.
    for i in range(41, 45):
        send_round(scaled, i, set(), base)
    second = set(SENSORS[6:12]) | set(SENSORS[18:24])
    send_round(scaled, 45, second, base)
    scaled.flush()
    wrong = {**scaled.env, "CITYBRAIN_PARTITIONS": "4"}
    done = refused(wrong, "worker")
    assert done.returncode == 2, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    assert "has 2 partitions" in line and "CITYBRAIN_PARTITIONS is 4" in line, line
    assert "Traceback" not in done.stderr
    # The ingest places packs on partitions it computes: it refuses the same way.
    ingest = IngestProcess(wrong, scaled.run_dir / f"{scaled.name}-ingest.log", "http")
    with pytest.raises(AssertionError, match="CITYBRAIN_PARTITIONS is 4"):
        ingest.start()
    assert ingest.proc is not None and ingest.proc.returncode == 2
    # So does a packed replay (single readings go by key, Kafka's partitioner placing them).
    csv = scaled.run_dir / f"{scaled.name}-pack.csv"
    csv.write_text(
        "timestamp,sensor_id,kind,value,unit,grid_cell\n"
        "2019-05-01T00:00:00Z,pump-00,water_level,1.0,ft,c0\n"
    )
    done = refused(wrong, "replay", str(csv), "--max", "--pack", "100")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "CITYBRAIN_PARTITIONS is 4" in done.stderr and "Traceback" not in done.stderr
    # Nothing was consumed or dead-lettered by the refused worker: the right count alerts
    # every spike once, the second ones without a new warm-up.
    worker = scaled.worker().start()
    try:
        alerts = scaled.read("alerts", lambda m: len(firing(m)) >= 24, timeout=90, settle=5)
        assert sorted(d["sensor_id"] for d in firing(alerts)) == sorted(first | second)
        ids = [d["alert_id"] for d in firing(alerts)]
        assert len(ids) == len(set(ids))
        dead = scaled.read("deadletter", lambda m: True, timeout=5, settle=2)
        assert [m.value[:200] for m in dead] == []
    finally:
        worker.stop()
