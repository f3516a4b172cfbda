"""The label-caching faust sensor writes exactly the series faust's own one writes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, Message
from prometheus_client import CollectorRegistry, generate_latest

from streams.faust_metrics import CachedLabelsMonitor


def exposition(cls: type[PrometheusMonitor]) -> list[str]:
    registry = CollectorRegistry()
    monitor = cls(metrics=FaustMetrics.create(registry, "faust"))
    app = faust.App("faust-metrics-test", broker="kafka://127.0.0.1:1")
    stream: Any = app.topic("citybrain.readings").stream()
    stream.task_owner = app  # an agent's task owns a running stream; any object will do
    for i in range(5):
        tp = TP("citybrain.readings", i % 2)
        message = Message(tp.topic, tp.partition, 100 + i, 0.0, 0, {}, b"k", b"v", None)
        monitor.on_message_in(tp, 100 + i, message)
        monitor.on_stream_event_in(tp, 100 + i, stream, SimpleNamespace(message=message))
        monitor.track_tp_end_offset(tp, 200 + i)
    lines = generate_latest(registry).decode().splitlines()
    # Series and values, without what depends on the clock (latencies, creation times).
    return sorted(
        line
        for line in lines
        if not line.startswith("#") and "latency" not in line and "_created" not in line
    )


def test_same_series_and_values_as_fausts_own_sensor() -> None:
    ours = exposition(CachedLabelsMonitor)
    assert ours == exposition(PrometheusMonitor)
    assert 'faust_messages_received_per_topic_total{topic="citybrain.readings"} 5.0' in ours
    assert any("faust_total_events_per_stream_total" in line and "5.0" in line for line in ours)
    assert any("faust_topic_partition_end_offset" in line and "204.0" in line for line in ours)
