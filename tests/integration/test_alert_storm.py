"""Trial 14: the alert chain end to end under the restart storm. Twenty-four sensors warm
up, then spike one group of four at a time, with quiet rounds between, while two workers
are SIGKILLed and restarted in turn: every spiked sensor must raise exactly one alert (one
alert id, however often a replay re-sends it), and no alert may open two runs."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from tests.integration.test_pipeline import firing, real_levels, steps_of
from tests.integration.test_scale_out import SENSORS, send_round, write_grid
from tests.services import Pipeline, Worker, kill_in_turn, shifted_port

pytestmark = pytest.mark.integration

KILLS = int(os.environ.get("CITYBRAIN_STORM_KILLS", "4"))
GROUPS = [set(SENSORS[i : i + 4]) for i in range(0, len(SENSORS), 4)]
QUIET = 5  # rounds between spikes: the detector closes an episode after 3 quiet readings


def test_each_spike_under_the_storm_raises_one_alert_and_opens_at_most_one_run(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path
) -> None:
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_GRID_FILE": str(write_grid(tmp_path / "g.yaml")),
            "CITYBRAIN_ACK_DEADLINE_SECONDS": "600",
        },
    )
    a = p.worker().start()
    b_env = {**p.env, "CITYBRAIN_WORKER_PORT": str(shifted_port(26067))}
    b = Worker(b_env, p.run_dir / f"{p.name}-worker-b.log").start()
    workers = [a, b]
    base = real_levels(60)
    for i in range(40):  # warm-up, before the storm
        send_round(p, i, set(), base)
    p.flush()
    done = threading.Event()

    def spikes() -> None:
        i = 40
        for group in GROUPS:
            send_round(p, i, group, base)
            for j in range(1, QUIET + 1):
                p.flush()
                time.sleep(0.4)
                send_round(p, i + j, set(), base)
            i += QUIET + 1
        p.flush()
        done.set()

    sender = threading.Thread(target=spikes)
    sender.start()
    rng = random.Random(14)
    try:
        kill_in_turn(workers, KILLS, rng, 5.0, 2.0)
        sender.join()
        alerts = p.read(
            "alerts", lambda m: len({d["sensor_id"] for d in firing(m)}) >= 24, timeout=90, settle=5
        )
        ids: dict[str, set[str]] = defaultdict(set)
        for d in firing(alerts):
            ids[d["sensor_id"]].add(d["alert_id"])
        assert set(ids) == set(SENSORS), f"no alert for {sorted(set(SENSORS) - set(ids))}"
        twice = {s: sorted(v) for s, v in ids.items() if len(v) > 1}
        assert not twice, f"sensors alerted twice for one spike: {twice}"
        steps = p.read("steps", lambda m: bool(steps_of(m, "run_created")), settle=5)
        runs: dict[str, set[str]] = defaultdict(set)
        for d in steps_of(steps, "run_created"):
            runs[d["alert_id"]].add(d["run_id"])
        doubled = {alert: sorted(r) for alert, r in runs.items() if len(r) > 1}
        assert not doubled, f"alerts that opened two runs: {doubled}"
        assert set(runs) <= {i for v in ids.values() for i in v}
    finally:
        for w in workers:
            w.stop()
        p.close()
