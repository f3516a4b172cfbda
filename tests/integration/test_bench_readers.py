"""t90: the benchmarks' kafka-python readers (bench/mqtt_ingest.py's read-back and
alert collectors, bench/latency.py's, bench/catchup.py's firing_alert_ids) polled without
``citybrain.kafka_read.SafePoller``: a record kafka-python cannot decode (a header name
that is not UTF-8, which the broker takes from any client) raised out of ``poll`` and the
reader never moved past it. Now the range is skipped with a warning and the rest read."""

from __future__ import annotations

import json

import pytest

from bench.catchup import firing_alert_ids
from bench.mqtt_ingest import read_back
from tests.integration.test_unreadable_batches import _NotUtf8
from tests.services import Pipeline

pytestmark = pytest.mark.integration


def _send(pipeline: Pipeline, topic: str, values: list[bytes], bad: int) -> None:
    for i, value in enumerate(values):
        headers = [(_NotUtf8("x"), b"v")] if i == bad else []
        pipeline.producer.send(topic, key=b"k", value=value, headers=headers, partition=0)
        pipeline.flush()  # one batch per record: only the bad one's batch is unreadable


def test_the_ingest_benchmarks_read_back_skips_an_unreadable_record(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = pipeline.settings.topic("readings")
    packs = [json.dumps({"readings": [{}, {}]}).encode() for _ in range(5)]
    _send(pipeline, topic, packs, bad=2)
    out: dict[str, float] = {}
    read_back(pipeline.settings, 8, out, timeout=120)
    assert out["seen"] == 8  # four readable packs of two
    err = capsys.readouterr().err
    assert f"citybrain: warning: {topic}/0 offsets 2-2: " in err


def test_the_catchup_benchmarks_alert_ids_skip_an_unreadable_record(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = pipeline.settings.topic("alerts")
    alerts = [json.dumps({"status": "firing", "alert_id": f"a{i}"}).encode() for i in range(4)]
    _send(pipeline, topic, alerts, bad=1)
    assert firing_alert_ids(pipeline.settings.kafka_bootstrap, topic) == ["a0", "a2", "a3"]
    assert f"{topic}/0 offsets 1-1: " in capsys.readouterr().err
