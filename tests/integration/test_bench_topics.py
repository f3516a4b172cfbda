"""A benchmark run's topics are deleted when it ends, however it ends (twenty-first
session: every ``bench/catchup.py`` run left about 45 topics and 0.4 GB on the local
broker; 12 GB had gathered). On the real broker: the run's own topics and faust's go,
another run's stay."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from citybrain.stack.topics import create_topics, run_topics
from tests.services import stack_settings

pytestmark = pytest.mark.integration


def topics(bootstrap: str, run: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {t for t in admin.list_topics() if t.startswith((f"{run}.", f"{run}-"))}
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
