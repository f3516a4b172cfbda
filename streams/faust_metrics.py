"""faust's own Prometheus sensor, with its per-message label lookups cached, and the
worker's ``/metrics`` page.

faust's ``PrometheusMonitor`` looks up a labelled child (and, per event, normalises the
stream's name with a regular expression) for every message: about a quarter of faust's
per-message cost on this machine. The same series, updated through children looked up
once per topic, partition and stream (and the partitions' end offsets likewise).

The page honours Prometheus client_python's ``name[]`` filter (``/metrics?name[]=a&name[]=b``:
only those samples), which faust's own page ignores: the whole page is about 200 kB of
pre-initialised series and costs the worker tens of milliseconds of its event loop, a
filtered one a fraction of a millisecond, so a watcher may ask often.
"""

from __future__ import annotations

from time import monotonic
from typing import Any, cast

import faust
from aiohttp.web import Request, Response
from faust import web
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, EventT, Message, StreamT
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class CachedLabelsMonitor(PrometheusMonitor):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._per_topic: dict[str, Any] = {}
        self._per_partition: dict[TP, Any] = {}
        self._per_stream: dict[int, Any] = {}
        self._end_offsets: dict[TP, Any] = {}

    def _clear_partition_related_metrics(self) -> None:
        """faust's: remove every topic's and partition's series (at a rebalance's start
        and end), then forget the children cached for them. faust calls it from its
        consumer's thread (aiokafka's rebalance listener calls ``app.on_rebalance_start``
        there): prometheus_client locks its own, and the caches are only read by key
        (``get``, item assignment) on the event loop's thread, never walked, so clearing
        them there is safe. Kept, a cached child removed from its metric was updated but
        never exported again: those series were gone after the worker's first rebalance."""
        super()._clear_partition_related_metrics()
        self._per_topic.clear()
        self._per_partition.clear()
        self._end_offsets.clear()

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_in(self, tp, offset, message)
        m = self._metrics
        m.messages_received.inc()
        m.active_messages.inc()
        topic = self._per_topic.get(tp.topic)
        if topic is None:
            topic = self._per_topic[tp.topic] = m.messages_received_per_topics.labels(
                topic=tp.topic
            )
        topic.inc()
        partition = self._per_partition.get(tp)
        if partition is None:
            partition = self._per_partition[tp] = m.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition
            )
        partition.set(offset)

    def on_batch_in(self, tp: TP, offset: int, count: int) -> None:
        """A batch of ``count`` messages up to ``offset`` reached its agent
        (streams/faust_patches.py): the message counters faust's ``on_message_in`` keeps,
        updated once per batch."""
        self.messages_received_total += count
        self.messages_received_by_topic[tp.topic] += count
        self.tp_read_offsets[tp] = offset
        # What faust's on_stream_event_in keeps, which a batch skips: its consumer's
        # check of each partition (verify_event_path) reads it, and without it logged
        # "Stream has not started processing TP(readings …)" and "3) The agent … is
        # hanging" for a busy worker up over 300 s whenever readings waited (t91).
        self.stream_inbound_time[tp] = monotonic()
        m = self._metrics
        m.messages_received.inc(count)
        topic = self._per_topic.get(tp.topic)
        if topic is None:
            topic = self._per_topic[tp.topic] = m.messages_received_per_topics.labels(
                topic=tp.topic
            )
        topic.inc(count)
        partition = self._per_partition.get(tp)
        if partition is None:
            partition = self._per_partition[tp] = m.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition
            )
        partition.set(offset)

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        # Called for every message (the consumer's highwater), like on_message_in.
        Monitor.track_tp_end_offset(self, tp, offset)
        child = self._end_offsets.get(tp)
        if child is None:
            child = self._end_offsets[tp] = self._metrics.topic_partition_end_offset.labels(
                topic=tp.topic, partition=tp.partition
            )
        child.set(offset)

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        m = self._metrics
        m.total_events.inc()
        m.total_active_events.inc()
        # Streams live as long as their agent: their id is a stable key.
        child = self._per_stream.get(id(stream))
        if child is None:
            child = self._per_stream[id(stream)] = m.total_events_per_stream.labels(
                stream=f"stream.{self._stream_label(stream)}.events"
            )
        child.inc()
        return state


def metrics_page(registry: CollectorRegistry, names: list[str]) -> bytes:
    """``registry`` in Prometheus' text format; only the samples named in ``names`` (full
    sample names, e.g. ``citybrain_readings_total``) when it is not empty, as client_python's
    own exposition serves ``name[]``."""
    return generate_latest(registry.restricted_registry(names) if names else registry)


def setup_faust_metrics(app: faust.App, registry: CollectorRegistry) -> None:
    """faust's metrics (``faust_*``) on ``registry`` and the worker's ``/metrics`` page
    (the page ``faust.sensors.prometheus.setup_prometheus_sensors`` serves, with the
    ``name[]`` filter)."""
    app.monitor = CachedLabelsMonitor(metrics=FaustMetrics.create(registry, "faust"))

    @app.page("/metrics")
    async def metrics(self: web.View, request: web.Request) -> web.Response:
        # faust's aiohttp driver hands views aiohttp's request (a multidict query).
        names = cast(Request, request).query.getall("name[]", [])
        body = metrics_page(registry, names)
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        return cast(web.Response, Response(body=body, headers=headers, status=200))
