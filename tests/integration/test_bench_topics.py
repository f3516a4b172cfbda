"""A benchmark run's topics are deleted when it ends, however it ends (twenty-first
session: every ``bench/catchup.py`` run left about 45 topics and 0.4 GB on the local
broker; 12 GB had gathered). On the real broker: the run's own topics and faust's go,
another run's stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from citybrain.stack.topics import create_topics, run_topic_prefixes, run_topics
from streams.settings import REPO_ROOT
from tests.services import TEST_PORTS, stack_settings

pytestmark = pytest.mark.integration


def topics(bootstrap: str, run: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {t for t in admin.list_topics() if t.startswith(run_topic_prefixes(run))}
    finally:
        admin.close()


def test_a_run_s_topics_go_when_it_ends_and_only_its_own(stack: object, run_dir: Path) -> None:
    base = stack_settings(run_dir)
    stamp = int(time.time())
    mine, other = f"benchtest{stamp}", f"benchtest{stamp}x"
    settings = base.model_copy(update={"topic_prefix": mine, "app_id": mine})
    neighbour = base.model_copy(update={"topic_prefix": other, "app_id": other})
    create_topics(neighbour)
    with pytest.raises(RuntimeError, match="the run failed"), run_topics(settings) as created:
        assert f"{mine}.readings" in created
        # A faust changelog of the run, as its worker makes one.
        producer = KafkaProducer(bootstrap_servers=base.kafka_bootstrap)
        producer.send(f"{mine}-sensor-state-changelog", b"x").get(30)
        producer.close()
        assert f"{mine}-sensor-state-changelog" in topics(base.kafka_bootstrap, mine)
        raise RuntimeError("the run failed")
    deadline = time.monotonic() + 30
    while topics(base.kafka_bootstrap, mine) and time.monotonic() < deadline:
        time.sleep(0.5)  # deletion is asynchronous on the broker
    assert topics(base.kafka_bootstrap, mine) == set()
    assert f"{other}.readings" in topics(base.kafka_bootstrap, other)


def test_a_run_whose_prefix_is_not_its_app_id_is_refused_before_anything_is_made(
    stack: object, run_dir: Path
) -> None:
    base = stack_settings(run_dir)
    run = f"benchtest{int(time.time())}y"
    settings = base.model_copy(update={"topic_prefix": run, "app_id": "citybrain"})
    with pytest.raises(ValueError, match="is not its app id"), run_topics(settings):
        pass
    assert topics(base.kafka_bootstrap, run) == set()


# A benchmark as bench/catchup.py is one: run_main around main, the run's topics in
# run_topics, then a long wait (the drain) where a signal finds it.
BENCH_LIKE = """
import sys, time
from bench import run_main
from citybrain.stack.topics import run_topics
from streams.settings import load_settings

def main():
    run = sys.argv[1]
    with run_topics(load_settings(topic_prefix=run, app_id=run, partitions=2)):
        print("ready", flush=True)
        time.sleep(120)

run_main(main)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_run_ended_by_a_signal_deletes_its_topics_and_says_so_in_one_line(
    stack: object, run_dir: Path, signum: signal.Signals
) -> None:
    # Was: a catch-up run ended by `timeout` (SIGTERM) left its 24 topics behind, the Quix
    # candidate's changelog among them (Python's default SIGTERM runs no finally).
    base = stack_settings(run_dir)
    run = f"benchsig{int(time.time())}{signum.value}"
    env = {**os.environ, **TEST_PORTS, "CITYBRAIN_RUN_DIR": str(run_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-c", BENCH_LIKE, run],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        # The Quix candidate's state changelog, named by its consumer group "<run>.readings-quix".
        quix = f"changelog__{run}.readings-quix--{run}.readings--default"
        producer = KafkaProducer(bootstrap_servers=base.kafka_bootstrap)
        producer.send(quix, b"x").get(30)
        producer.close()
        assert {f"{run}.readings", quix} <= topics(base.kafka_bootstrap, run)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "deleted the " in out
    assert "interrupted" in err and "Traceback" not in err
    deadline = time.monotonic() + 30
    while topics(base.kafka_bootstrap, run) and time.monotonic() < deadline:
        time.sleep(0.5)  # deletion is asynchronous on the broker
    assert topics(base.kafka_bootstrap, run) == set()
