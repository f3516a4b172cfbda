"""Replaying files into the real Kafka, one reading per message or as edge-gateway packs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from citybrain.stack import PrometheusServer
from streams.events import IncidentReport, Reading
from streams.feeds import Replayer
from streams.partitioning import ReadingPacker, key_partition
from tests.services import Pipeline

pytestmark = pytest.mark.integration
T0 = 1_790_000_000.0


def events() -> list[Reading | IncidentReport]:
    out: list[Reading | IncidentReport] = [
        Reading(T0 + 60 * step, sensor, "water_level", float(step), "ft", "c-bridge")
        for step in range(20)
        for sensor in ("gauge-1", "gauge-2", "gauge-3")
    ]
    out.append(IncidentReport(T0, "r-1", "Flooding", "water on the road", "app", "c-bridge"))
    return out


def packed_readings(messages: list[Any], partitions: int) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {}
    for m in messages:
        doc = json.loads(m.value)
        assert doc["schema"] == "readings/1"
        for r in doc["readings"]:
            assert key_partition(r["sensor_id"].encode(), partitions) == m.partition
            seen.setdefault(r["sensor_id"], []).append(r["value"])
    return seen


@pytest.mark.parametrize("speed", [None, 3600.0])
def test_a_packed_replay_sends_every_reading_once_on_its_partition(
    stack: PrometheusServer, run_dir: Path, speed: float | None
) -> None:
    p = Pipeline(run_dir)
    n = p.settings.partitions
    replayer = Replayer(
        p.settings.kafka_bootstrap,
        p.topic("readings"),
        p.topic("incidents"),
        packer=ReadingPacker(n, 8),
    )
    try:
        stats = replayer.replay(events(), speed)
    finally:
        replayer.close()
    assert (stats.readings, stats.incidents) == (60, 1)
    messages = p.read(
        "readings",
        lambda m: sum(len(json.loads(x.value)["readings"]) for x in m) >= 60,
        settle=1,
    )
    steps = [float(step) for step in range(20)]
    assert packed_readings(messages, n) == {s: steps for s in ("gauge-1", "gauge-2", "gauge-3")}
    packs = [json.loads(m.value)["readings"] for m in messages]
    assert all(len(pack) <= 8 for pack in packs)
    if speed is None:
        assert max(len(pack) for pack in packs) == 8  # as fast as possible: packs fill up
    else:
        # Paced: partial packs go out at each new event time, so no reading waits for
        # the next round.
        assert all(len({r["ts"] for r in pack}) == 1 for pack in packs)
    assert len(p.read("incidents", lambda m: len(m) >= 1, settle=0.5)) == 1
