"""Keys a message carries that its schema does not define: read past, counted, said once.

Forward compatibility, as JSON Schema's default ``additionalProperties`` and FIWARE NGSI's
open entities have it: a newer sender's extra key (``lat``, ``battery``) costs its message
nothing. It is not dropped unsaid either: each is counted in
``citybrain_unknown_fields_total{kind}`` (``kind``, the message kind, one of
``UNKNOWN_FIELD_KINDS``: a bounded label set, never the key) and named in one log line
per key and kind per process. A key close to a field's name is no such key: it is refused
as a misspelling (``streams.events.lookalike_key``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

UNKNOWN_FIELDS = "citybrain_unknown_fields_total"
# The message kinds whose unknown keys are counted: the metric's only label values.
UNKNOWN_FIELD_KINDS = ("reading", "pack", "incident", "mqtt_payload")
# Each kind as its log line names it (t137: "a incident", "a mqtt payload").
_SAID = {
    "reading": "a reading",
    "pack": "a pack",
    "incident": "an incident",
    "mqtt_payload": "an MQTT payload",
}
# Past this many distinct keys a process names no more (a sender writing a new key per
# message, a uuid as a key, would otherwise grow the set and the log without bound).
MAX_NAMED_KEYS = 1_000


class UnknownFields:
    """The process's count of unknown keys per message kind, and the keys already named.
    Thread-safe: the HTTP ingest validates on several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(UNKNOWN_FIELD_KINDS, 0)
        self._named: set[tuple[str, str]] = set()

    def note(self, kind: str, keys: Iterable[object]) -> None:
        """Counts ``keys`` (unknown keys of one message of ``kind``, one of
        ``UNKNOWN_FIELD_KINDS``) and names each one not named before, in a WARNING line.
        Raises ``KeyError`` for another kind (a programming error)."""
        said: list[str] = []
        with self._lock:
            for key in keys:
                self._counts[kind] += 1
                text = key if isinstance(key, str) else repr(key)
                shown = text if len(text) <= 64 else f"{text[:60]}…"
                if (kind, shown) in self._named or len(self._named) >= MAX_NAMED_KEYS:
                    continue
                self._named.add((kind, shown))
                said.append(shown)
        for shown in said:
            log.warning(
                "citybrain: %s carries the key %r, which its schema does not define: "
                "read past (forward compatibility; counted in %s{kind=%r}; said once per "
                "key; docs/ingest.md)",
                _SAID[kind],
                shown,
                UNKNOWN_FIELDS,
                kind,
            )

    def counts(self) -> dict[str, int]:
        """Unknown keys read so far per message kind (every kind, 0 for none)."""
        with self._lock:
            return dict(self._counts)


# One per process: every edge and agent counts into it, and each metrics registry reads it.
UNKNOWN = UnknownFields()


class UnknownFieldsCollector(Collector):
    """``citybrain_unknown_fields_total{kind}``, read from ``UNKNOWN`` at each scrape."""

    def __init__(self, tally: UnknownFields = UNKNOWN) -> None:
        self.tally = tally

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            UNKNOWN_FIELDS.removesuffix("_total"),
            "Keys of messages read that their schema does not define (read past), per message kind",
            labels=["kind"],
        )
        for kind, count in self.tally.counts().items():
            family.add_metric([kind], count)
        yield family
