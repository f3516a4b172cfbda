"""A worker's first start on a topic prefix the broker has never seen (the third new-user
trial, item 13: a run of ERROR "Topic … not found in cluster metadata" lines, which went
away on the next start)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from prometheus_client import CollectorRegistry

from citybrain.stack import PrometheusServer
from citybrain.stack.topics import faust_topics
from streams.app import create_app
from tests.integration.test_response import one_spiked_run
from tests.services import (
    FIXTURES,
    OPERATOR_TOKEN,
    TEST_PORTS,
    Pipeline,
    Worker,
    stack_settings,
    write_tokens,
)

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
    assert "is created empty" not in log, log  # nothing was held: nothing to say


def test_every_changelog_carries_its_segment_and_tombstone_configs_an_old_one_too(
    stack: PrometheusServer, run_dir: Path
) -> None:
    """t155: changelogs were created compacted only, with Kafka's 1 GiB / 7-day
    segments, so nothing was compacted for weeks and a restart read every superseded
    record (140,000 for 20,000 forgotten groups). Every changelog a worker creates
    carries the segment and tombstone configs (a setting changed here: the worker's
    own), and one made before (as an older citybrain made it) gets them at the start."""
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

    name = f"t{uuid.uuid4().hex[:10]}"
    settings = stack_settings(run_dir).model_copy(update={"topic_prefix": name, "app_id": name})
    old = f"{name}-groups-changelog"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.create_topics(
            [NewTopic(old, settings.partitions, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    finally:
        admin.close()
    env = {
        **os.environ,
        **TEST_PORTS,
        "CITYBRAIN_RUN_DIR": str(run_dir),
        "CITYBRAIN_TOPIC_PREFIX": name,
        "CITYBRAIN_APP_ID": name,
        "CITYBRAIN_GRID_FILE": str(FIXTURES / "grid.yaml"),
        "CITYBRAIN_API_TOKENS_FILE": str(write_tokens(run_dir / f"{name}-tokens.yaml")),
        "CITYBRAIN_CHANGELOG_SEGMENT_SECONDS": "7200",
    }
    worker = Worker(env, run_dir / f"{name}-worker.log").start()
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            changelogs = sorted(
                t
                for t in admin.list_topics()
                if t.startswith(f"{name}-") and t.endswith("-changelog")
            )
            keys = [
                "cleanup.policy",
                "segment.ms",
                "segment.bytes",
                "min.cleanable.dirty.ratio",
                "delete.retention.ms",
            ]
            described = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t, keys) for t in changelogs],
                config_filter="all",
            )["topic"]
        finally:
            admin.close()
    finally:
        worker.stop()
    assert old in changelogs and len(changelogs) >= 8, changelogs
    want = {
        "cleanup.policy": "compact",
        "segment.ms": "7200000",
        "segment.bytes": str(16 * 1024 * 1024),
        "min.cleanable.dirty.ratio": "0.5",
        "delete.retention.ms": "86400000",
    }
    for topic in changelogs:
        got = {key: described[topic][key]["value"] for key in keys}
        assert got == want, (topic, got)
    # The old changelog's change is said once, naming what it had.
    log = worker.log()
    assert f"topic {old}: " in log and "segment.ms 604800000 -> 7200000" in log, log


def test_a_restart_after_its_changelogs_were_deleted_says_which_tables_start_empty(
    stack: PrometheusServer, run_dir: Path
) -> None:
    """t167: an operator deleted a worker's changelog topics between a stop and a start.
    The worker created them again empty and said nothing: its consumer group reads on from
    its committed offsets, so the open run (its deadlines, the acknowledgement the API
    takes) was gone unsaid. It still starts (deleting the sensor-state changelog is how
    sensors are made to warm up again), and says which tables start empty and why; a
    first start on a new prefix (no committed offsets) says nothing of it (the test above
    checks its log for errors only). Fails on the old code: no such line."""
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_ACK_DEADLINE_SECONDS": "600"})
    worker = p.worker().start()
    try:
        run_id = one_spiked_run(p)
        worker.stop()  # a clean stop commits the group's offsets
        first = worker.log()
        assert "is created empty" not in first, first
        admin = KafkaAdminClient(bootstrap_servers=p.settings.kafka_bootstrap)
        try:
            changelogs = [t for t in admin.list_topics() if t.startswith(f"{p.name}-")]
            changelogs = [t for t in changelogs if t.endswith("-changelog")]
            admin.delete_topics(changelogs)
            deadline = time.monotonic() + 30
            while set(changelogs) & set(admin.list_topics()):
                assert time.monotonic() < deadline, "the changelogs were not deleted in 30 s"
                time.sleep(0.2)
        finally:
            admin.close()
        since = worker.log_file.stat().st_size
        worker.start()
        with worker.log_file.open("rb") as fh:
            fh.seek(since)
            said = fh.read().decode(errors="replace")
        lines = [x for x in said.splitlines() if "is created empty" in x]
        assert len(lines) == 1, said
        [line] = lines
        assert "groups" in line and "sensor-state" in line and "silences" in line, line
        assert f"consumer group {p.name!r} has committed offsets" in line, line
        assert 'docs/operations.md, "Changelog topics deleted"' in line, line
        # What it says is so: the run is gone.
        status, _ = p.api("GET", f"/runs/{run_id}", OPERATOR_TOKEN)
        assert status == 404, status
    finally:
        worker.stop()
        p.close()
