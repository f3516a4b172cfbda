"""A worker's first start on a topic prefix the broker has never seen (the third new-user
trial, item 13: a run of ERROR "Topic … not found in cluster metadata" lines, which went
away on the next start)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from prometheus_client import CollectorRegistry

from citybrain.stack import PrometheusServer
from citybrain.stack.topics import faust_topics
from streams.app import create_app
from tests.services import FIXTURES, TEST_PORTS, Worker, stack_settings, write_tokens

pytestmark = pytest.mark.integration


def test_a_first_start_on_a_new_prefix_creates_the_topics_before_subscribing(
    stack: PrometheusServer, run_dir: Path
) -> None:
    name = f"t{uuid.uuid4().hex[:10]}"
    settings = stack_settings(run_dir).model_copy(update={"topic_prefix": name, "app_id": name})
    env = {
        **os.environ,
        **TEST_PORTS,
        "CITYBRAIN_RUN_DIR": str(run_dir),
        "CITYBRAIN_TOPIC_PREFIX": name,
        "CITYBRAIN_APP_ID": name,
        "CITYBRAIN_GRID_FILE": str(FIXTURES / "grid.yaml"),
        "CITYBRAIN_API_TOKENS_FILE": str(write_tokens(run_dir / f"{name}-tokens.yaml")),
    }
    worker = Worker(env, run_dir / f"{name}-worker.log").start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            existing = set(admin.list_topics())
        finally:
            admin.close()
        assert set(settings.topics.values()) <= existing
        # Every topic faust declared on its own (named after the app id) is one the CLI
        # created and waited for first: a faust upgrade that declares another fails here.
        ours = {
            spec.name
            for spec in faust_topics(create_app(settings, CollectorRegistry()), settings.partitions)
        }
        declared = {t for t in existing if t.startswith(f"{name}-")}
        assert declared == ours, declared ^ ours
    finally:
        worker.stop()
    log = worker.log()
    assert "not found in cluster metadata" not in log, log
