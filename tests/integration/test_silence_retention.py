"""Silences that ended more than SILENCE_RETENTION (120 h) ago are forgotten (a sibling of
the groups that end): every silence ever made was kept by every worker, read back at each
start and listed for good. On the real worker and broker: an old ended silence is
tombstoned on the changelog and no longer listed, a silence in force and one ended within
the retention stay, and a restart does not bring the old one back."""

from __future__ import annotations

import time

import orjson
import pytest
from kafka import KafkaConsumer

from streams.alerting import SILENCE_RETENTION
from streams.metrics import SILENCES_FORGOTTEN
from tests.integration.test_unreadable_state import write_changelog
from tests.services import OPERATOR_TOKEN, Pipeline, scrape_sum

pytestmark = pytest.mark.integration


def silence(silence_id: str, ends: float) -> bytes:
    doc = {
        "id": silence_id,
        "matchers": ['category="Fireworks"'],
        "starts_at": ends - 3600,
        "ends_at": ends,
        "author": "op",
        "reason": "works",
    }
    return orjson.dumps(doc)


def changelog(pipeline: Pipeline, table: str) -> list[tuple[bytes, bytes | None]]:
    """Every entry of ``table``'s changelog, in order per partition."""
    consumer = KafkaConsumer(
        f"{pipeline.settings.app_id}-{table}-changelog",
        bootstrap_servers=pipeline.settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=5_000,
    )
    try:
        return [(record.key, record.value) for record in consumer]
    finally:
        consumer.close()


def listed(pipeline: Pipeline) -> list[str]:
    status, body = pipeline.api("GET", "/silences", OPERATOR_TOKEN)
    assert status == 200
    return sorted(x["id"] for x in body["silences"])


def test_a_silence_ended_past_the_retention_is_forgotten_for_good(pipeline: Pipeline) -> None:
    now = time.time()
    write_changelog(
        pipeline, "silences", b"sil-old", silence("sil-old", now - SILENCE_RETENTION - 60)
    )
    write_changelog(pipeline, "silences", b"sil-recent", silence("sil-recent", now - 3600))
    write_changelog(pipeline, "silences", b"sil-on", silence("sil-on", now + 3600))
    pipeline.flush()
    port = pipeline.settings.worker_port
    worker = pipeline.worker().start()
    try:
        deadline = time.monotonic() + 60
        while scrape_sum(port, SILENCES_FORGOTTEN) < 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert scrape_sum(port, SILENCES_FORGOTTEN) == 1
        assert listed(pipeline) == ["sil-on", "sil-recent"]
    finally:
        worker.stop()
    entries = changelog(pipeline, "silences")
    assert [key for key, value in entries if value is None] == [b"sil-old"]
    worker = pipeline.worker().start()
    try:
        assert listed(pipeline) == ["sil-on", "sil-recent"]
        assert scrape_sum(port, SILENCES_FORGOTTEN) == 0  # nothing came back to forget
    finally:
        worker.stop()
