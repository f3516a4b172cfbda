"""The label-caching faust sensor writes exactly the series faust's own one writes."""

from __future__ import annotations

import threading
from time import monotonic
from types import SimpleNamespace
from typing import Any

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, Message
from prometheus_client import CollectorRegistry, generate_latest

from streams.faust_metrics import CachedLabelsMonitor


def exposition(cls: type[PrometheusMonitor], rebalance_at: int | None = None) -> list[str]:
    registry = CollectorRegistry()
    monitor = cls(metrics=FaustMetrics.create(registry, "faust"))
    app = faust.App("faust-metrics-test", broker="kafka://127.0.0.1:1")
    stream: Any = app.topic("citybrain.readings").stream()
    stream.task_owner = app  # an agent's task owns a running stream; any object will do
    for i in range(5):
        if i == rebalance_at:
            # On a thread of its own, as aiokafka's rebalance listener calls it on
            # faust's consumer thread.
            started = threading.Thread(target=monitor.on_rebalance_start, args=(app,))
            started.start()
            started.join()
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


def test_the_same_series_after_a_rebalance_began_on_the_consumers_thread() -> None:
    """faust removes every topic's and partition's series when a rebalance starts (on
    its consumer's thread); the children cached for them were updated after that but
    never exported: per-topic and per-partition series gone after a first rebalance."""
    ours = exposition(CachedLabelsMonitor, rebalance_at=3)
    assert ours == exposition(PrometheusMonitor, rebalance_at=3)
    # Counted again from the rebalance on, as faust's own sensor does.
    assert 'faust_messages_received_per_topic_total{topic="citybrain.readings"} 2.0' in ours
    assert any("faust_topic_partition_end_offset" in line and "204.0" in line for line in ours)


def test_metrics_page_serves_only_the_named_samples_as_the_full_page_has_them() -> None:
    from streams.faust_metrics import metrics_page
    from streams.metrics import Metrics

    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    FaustMetrics.create(registry, "faust")
    metrics.readings.labels(kind="traffic_flow").inc(7)
    full = metrics_page(registry, []).decode().splitlines()
    names = ["citybrain_readings_total", "faust_messages_received_total"]
    page = metrics_page(registry, names).decode().splitlines()
    samples = [line for line in page if not line.startswith("#")]
    assert samples and all(line.startswith(tuple(names)) for line in samples)
    assert 'citybrain_readings_total{kind="traffic_flow"} 7.0' in samples
    # The same samples as the full page's (in another order: the collectors' set's).
    starts = tuple(n + "{" for n in names) + tuple(n + " " for n in names)
    assert sorted(samples) == sorted(line for line in full if line.startswith(starts))
    assert len(page) < len(full) / 20
    # An unknown name serves nothing, not the whole page.
    assert metrics_page(registry, ["no_such_metric"]) == b""


def test_a_batch_marks_its_partition_s_stream_as_processing() -> None:
    """faust's consumer checks each partition it fetches for (``verify_event_path``):
    records waiting and no ``stream_inbound_time`` for it since the worker started 300 s
    ago logs "Stream has not started processing TP(…)" with "3) The agent processing the
    stream is hanging". A batch-drained topic makes no ``Event``, so faust's
    ``on_stream_event_in`` never set it: t91 found the demo's worker logging it for both
    readings partitions at its first readings after 5 min, and ``stack status`` showing
    "3) The agent … is hanging" as its log's last line. ``on_batch_in`` sets it, on
    faust's clock."""
    monitor = CachedLabelsMonitor(metrics=FaustMetrics.create(CollectorRegistry(), "faust"))
    tp = TP("citybrain.readings", 1)
    assert monitor.stream_inbound_time.get(tp) is None
    before = monotonic()
    monitor.on_batch_in(tp, 41, 42)
    assert before <= monitor.stream_inbound_time[tp] <= monotonic()
    assert monitor.tp_read_offsets[tp] == 41 and monitor.messages_received_total == 42
