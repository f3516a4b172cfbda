"""Trial 14: the restart storm's check (every command and reading must get its dead
letter; tests/integration/test_restart_storm.py) under the other faults a deployment
meets: a worker stopped gracefully (SIGTERM) and started again in turn; three workers,
one SIGKILLed and started again while another is still in recovery (a join during a
recovery); and the Kafka broker itself stopped and started mid-storm. Only messages the
broker acknowledged to the producer count as sent."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from citybrain.stack import KafkaBroker, PrometheusServer
from tests.integration.test_restart_storm import command, never_processed, reading
from tests.services import Pipeline, Worker, shifted_port, stack_settings

pytestmark = pytest.mark.integration

FAULTS = int(os.environ.get("CITYBRAIN_STORM_FAULTS", "4"))
RATE = 100  # commands a second


def storm(
    p: Pipeline, workers: list[Worker], fault: Callable[[random.Random], None], faults: int
) -> None:
    """Send commands and readings while ``fault`` runs ``faults`` times, then check that
    every message the broker acknowledged has its dead letter."""
    stop = threading.Event()
    sent: list[str] = []
    lock = threading.Lock()

    def acked(name: str) -> Callable[[Any], None]:
        def note(_: Any) -> None:
            with lock:
                sent.append(name)

        return note

    def produce() -> None:
        i = 0
        while not stop.is_set():
            for role, (key, value), name in (
                ("commands", command(i), f"cmd-{i}"),
                ("readings", reading(i), f"r-{i}"),
            ):
                # Refused while the broker is down (a full buffer): not sent, not counted.
                with contextlib.suppress(Exception):
                    p.producer.send(p.topic(role), key=key, value=value).add_callback(acked(name))
            i += 1
            time.sleep(1 / RATE)
        with contextlib.suppress(Exception):
            p.flush()

    producer = threading.Thread(target=produce)
    producer.start()
    rng = random.Random(14)
    try:
        for _ in range(faults):
            time.sleep(rng.uniform(1.0, 5.0))
            fault(rng)
        time.sleep(3)
    finally:
        stop.set()
        producer.join()
    try:
        with lock:
            expected = set(sent)
        assert expected, "the broker acknowledged nothing"
        lost, seen = never_processed(p, expected)
        print(f"storm: {len(expected)} sent, {sum(n > 1 for n in seen.values())} repeated")
        assert not lost, f"{len(lost)} of {len(expected)} messages never processed: {lost[:40]}"
    finally:
        for w in workers:
            w.stop()
        p.close()


def second(p: Pipeline, n: int) -> Worker:
    env = {**p.env, "CITYBRAIN_WORKER_PORT": str(shifted_port(26066 + n))}
    return Worker(env, p.run_dir / f"{p.name}-worker-{n}.log")


def test_messages_flowing_while_workers_stop_gracefully_in_turn_all_have_an_outcome(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_ACK_DEADLINE_SECONDS": "600"})
    workers = [p.worker().start(), second(p, 1).start()]

    def sigterm(rng: random.Random) -> None:
        victim = workers[rng.randrange(2)]
        victim.stop()
        time.sleep(rng.uniform(0.0, 3.0))
        victim.start()

    storm(p, workers, sigterm, FAULTS)


def test_messages_flowing_while_one_of_three_workers_joins_during_recovery(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_ACK_DEADLINE_SECONDS": "600"})
    workers = [p.worker().start(), second(p, 1).start(), second(p, 2).start()]

    def kill_and_join(rng: random.Random) -> None:
        victim, other = rng.sample(workers, 2)
        victim.kill()
        other.kill()
        other.start()  # the group rebalances and recovers ...
        # ... and the victim joins while the others are still in that recovery.
        assert victim.proc is not None
        victim.start(timeout=90.0)

    storm(p, workers, kill_and_join, max(1, FAULTS - 1))  # two restarts each: ~3 min


def test_messages_flowing_while_the_broker_restarts_all_have_an_outcome(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_ACK_DEADLINE_SECONDS": "600"})
    workers = [p.worker().start(), second(p, 1).start()]
    kafka = KafkaBroker(stack_settings(run_dir))

    def restart_broker(rng: random.Random) -> None:
        assert kafka.stop()
        time.sleep(rng.uniform(0.0, 3.0))
        kafka.start()

    storm(p, workers, restart_broker, 2)
