"""The ingest's Prometheus metrics, built from an injected registry.

The MQTT ingest's dead letters are counted in the worker's own family,
``citybrain_dead_letters_total{stream="mqtt", reason}``, so the pipeline_health panel
"Dead letters by reason" and the ``CitybrainDeadLettersUp`` alert see them with the
workers'. The HTTP ingest counts each bad reading (refused with a 400, or
dead-lettered while the body's good readings were sent) once, in
``citybrain_ingest_refused_total{stream, reason}``
(``stream`` is ``http`` for /ingest/v1/readings, ``ngsi`` for /ingest/v1/ngsi), which the
same panel and alert add. Labels are bounded: stream and reason code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from streams.bounds import REFUSAL_REASONS
from streams.metrics import (
    API_REFUSED,
    DEAD_LETTERS,
    INGEST_READINGS,
    INGEST_REFUSED,
    INGEST_SKIPPED,
    VALIDATION_REASONS,
)
from streams.unknown import UnknownFieldsCollector

# A whole request refused before its readings are read (http.py: 401, 403, the header
# checks of HEADER_REASONS, a body not sent in time), counted under its stream.
REQUEST_REASONS = (
    "busy",
    "too_long",
    "bad_request",
    "unauthenticated",
    "forbidden",
    "bad_header",
    "no_length",
    "too_large",
    "bad_content_type",
    "timeout",
)


class _Sent(Collector):
    """``citybrain_ingest_readings_total{stream}``, read from the publisher's own count at
    each scrape: nothing is added on the hot path."""

    def __init__(self, stream: str, sent: Callable[[], int]) -> None:
        self.stream, self.sent = stream, sent

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            INGEST_READINGS.removesuffix("_total"),
            "Readings the ingest sent to Kafka (acknowledged)",
            labels=["stream"],
        )
        family.add_metric([self.stream], self.sent())
        yield family


@dataclass(frozen=True, slots=True)
class IngestMetrics:
    registry: CollectorRegistry
    dead_letters: Counter  # stream, reason: messages sent to the dead-letter topic
    refused: Counter  # stream, reason: bad readings (or headers) of HTTP requests, 4xx
    skipped: Counter  # stream, reason: messages not ingested on purpose (empty payloads)
    # reason: connections and requests the MQTT ingest's /metrics server refused
    # (citybrain/ingest/bounded.py), in the worker's family; None at the HTTP ingest, which
    # counts its own in ``refused`` (busy, timeout, too_long, bad_request under "http").
    server_refused: Counter | None = None

    @classmethod
    def create(
        cls, stream: str, sent: Callable[[], int], registry: CollectorRegistry | None = None
    ) -> IngestMetrics:
        """The metrics of one ingest process: ``stream`` is ``mqtt`` or ``http``, ``sent``
        the number of readings Kafka acknowledged so far (``PublisherStats.readings``)."""
        # *_created series double every counter's cardinality for no control-room use.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        registry = registry if registry is not None else CollectorRegistry()
        registry.register(_Sent(stream, sent))
        registry.register(UnknownFieldsCollector())

        def counter(name: str, doc: str) -> Counter:
            # prometheus_client adds the _total suffix itself.
            base = name.removesuffix("_total")
            return Counter(base, doc, ["stream", "reason"], registry=registry)

        metrics = cls(
            registry,
            dead_letters=counter(DEAD_LETTERS, "Events sent to the dead-letter topic"),
            refused=counter(
                INGEST_REFUSED, "Bad readings (or headers) of HTTP ingest requests refused, 4xx"
            ),
            skipped=counter(
                INGEST_SKIPPED,
                "Messages not ingested on purpose (an empty MQTT payload clears a retained value)",
            ),
            server_refused=Counter(
                API_REFUSED.removesuffix("_total"),
                "Connections and requests the /metrics server refused, by reason",
                ["reason"],
                registry=registry,
            )
            if stream == "mqtt"
            else None,
        )
        # Zero series from the start, so a quiet ingest shows 0 rather than no data, and
        # ``increase()`` counts a reason's first dead letter or refusal (a series born at
        # its first increment starts at 1, which it never counts: trial 28).
        if metrics.server_refused is not None:
            for reason in REFUSAL_REASONS:
                metrics.server_refused.labels(reason)
        if stream == "mqtt":
            metrics.skipped.labels("mqtt", "empty_payload")
            for reason in (*VALIDATION_REASONS, "bad_payload", "too_large", "internal"):
                metrics.dead_letters.labels("mqtt", reason)
        else:
            for path_stream in ("http", "ngsi"):
                for reason in (*VALIDATION_REASONS, *REQUEST_REASONS, "conflicting_reading"):
                    metrics.refused.labels(path_stream, reason)
            metrics.refused.labels("ngsi", "unknown_entity_type")
        return metrics

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (``GET /metrics``)."""
        return bytes(generate_latest(self.registry))
