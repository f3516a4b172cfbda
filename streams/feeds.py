"""Canonical replay files (CSV, plain or gzipped) and publishing them to Kafka in event-time order.

Readings: ``timestamp,sensor_id,kind,value,unit,grid_cell``.
Incidents: ``timestamp,report_id,category,text,source,grid_cell``.
Timestamps are ISO 8601 with a zone. See docs/events.md.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from streams.errors import EventError, FeedError
from streams.events import IncidentReport, Reading, parse_ts
from streams.partitioning import ReadingPacker

READING_COLUMNS = ["timestamp", "sensor_id", "kind", "value", "unit", "grid_cell"]
INCIDENT_COLUMNS = ["timestamp", "report_id", "category", "text", "source", "grid_cell"]

Event = Reading | IncidentReport
OnError = Literal["stop", "skip"]


@dataclass(frozen=True, slots=True)
class BadRow:
    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_canonical(
    path: str | Path, on_bad_row: Callable[[BadRow], None] | None = None
) -> Iterator[Event]:
    """Yield the file's events in file order. A bad row raises ``FeedError`` naming file
    and line, unless ``on_bad_row`` is given, which then receives it and reading goes on."""
    path = Path(path)
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header == READING_COLUMNS:
            parse: Callable[[list[str]], Event] = _reading
        elif header == INCIDENT_COLUMNS:
            parse = _incident
        else:
            raise FeedError(
                f"{path}:1: header is {header!r}, expected {','.join(READING_COLUMNS)} "
                f"or {','.join(INCIDENT_COLUMNS)}"
            )
        for row in reader:
            line = reader.line_num
            try:
                if len(row) != len(header):
                    raise ValueError(f"row has {len(row)} fields, expected {len(header)}")
                yield parse(row)
            except (ValueError, EventError) as exc:
                bad = BadRow(path, line, str(exc))
                if on_bad_row is None:
                    raise FeedError(str(bad)) from None
                on_bad_row(bad)


def _reading(row: list[str]) -> Reading:
    ts = parse_ts(row[0], "timestamp")
    try:
        value = float(row[3])
    except ValueError:
        raise ValueError(f'field "value" is {row[3]!r}, expected a number') from None
    if not math.isfinite(value):
        raise ValueError(f'field "value" is {row[3]!r}, expected a finite number')
    return Reading(ts, row[1], row[2], value, row[4], row[5])


def _incident(row: list[str]) -> IncidentReport:
    return IncidentReport(parse_ts(row[0], "timestamp"), row[1], row[2], row[3], row[4], row[5])


def load_events(
    paths: Iterable[str | Path], on_error: OnError = "stop", bad_rows: list[BadRow] | None = None
) -> list[Event]:
    """Every event of every file, merged in event-time order (stable for ties)."""
    sink = bad_rows if bad_rows is not None else []
    handler = sink.append if on_error == "skip" else None
    events: list[Event] = []
    for path in paths:
        events.extend(read_canonical(path, handler))
    events.sort(key=lambda e: e.ts)
    return events


def send_packs(producer: Any, topic: str, packs: Iterable[tuple[int, bytes, bytes]]) -> int:
    """Send ``ReadingPacker`` output with a kafka-python producer, each pack to its
    partition; returns how many."""
    n = 0
    for partition, key, value in packs:
        producer.send(topic, key=key, value=value, partition=partition)
        n += 1
    return n


def event_key(event: Event) -> bytes:
    """Readings are keyed by sensor (one sensor's state on one partition), incidents by cell."""
    return (event.sensor_id if isinstance(event, Reading) else event.grid_cell).encode()


@dataclass(slots=True)
class ReplayStats:
    readings: int = 0
    incidents: int = 0
    seconds: float = 0.0


class Replayer:
    """Publishes events with kafka-python at ``speed`` x real time, or as fast as possible."""

    def __init__(
        self,
        bootstrap: str,
        readings_topic: str,
        incidents_topic: str,
        options: dict[str, Any] | None = None,
        packer: ReadingPacker | None = None,
    ) -> None:
        """With a ``packer``, readings go out as ``readings/1`` packs (as an edge gateway
        sends them): a pack when one fills up, and when paced (``speed``) the partial
        ones at each new event time."""
        from kafka import KafkaProducer

        self.producer = KafkaProducer(
            **(options or {}),
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
            client_id="citybrain-replay",
        )
        self.readings_topic = readings_topic
        self.incidents_topic = incidents_topic
        self.packer = packer

    def replay(
        self,
        events: list[Event],
        speed: float | None,
        progress: Callable[[int], None] | None = None,
    ) -> ReplayStats:
        stats = ReplayStats()
        start = time.monotonic()
        t0 = events[0].ts if events else 0.0
        instant = t0
        for i, event in enumerate(events):
            if speed is not None:
                if event.ts != instant and self.packer is not None:
                    # Paced: a pack holds one instant's readings, as a gateway that sends
                    # what it has on each tick (behind schedule too).
                    self._send_packs(self.packer.flush())
                    instant = event.ts
                due = (event.ts - t0) / speed
                delay = due - (time.monotonic() - start)
                if delay > 0:
                    time.sleep(delay)
            if isinstance(event, Reading):
                stats.readings += 1
                if self.packer is not None:
                    self._send_packs(self.packer.add(event))
                else:
                    self.producer.send(
                        self.readings_topic, key=event_key(event), value=event.to_json()
                    )
            else:
                stats.incidents += 1
                self.producer.send(
                    self.incidents_topic, key=event_key(event), value=event.to_json()
                )
            if progress is not None and i % 1000 == 999:
                progress(1000)
        self._send_packs(self.packer.flush() if self.packer else [])
        self.producer.flush()
        if progress is not None:
            progress(len(events) % 1000)
        stats.seconds = time.monotonic() - start
        return stats

    def _send_packs(self, packs: list[tuple[int, bytes, bytes]]) -> None:
        send_packs(self.producer, self.readings_topic, packs)

    def close(self) -> None:
        self.producer.close()
