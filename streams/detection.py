"""Pure per-batch detection: readings in, anomalies and alert episodes out.

Kafka-free (the agent in ``streams/app.py`` decodes, calls ``SensorDetection.process``
and sends). Each sensor's state -- detector window, last event time, open episode -- is
one JSON-compatible dict so the agent can keep it in a changelog-backed faust table:
a restarted worker picks up exactly where the last committed state left off.

Delivery and event-time rules (docs/events.md), in this order:
- a message at or before the sensor's last processed Kafka offset is a redelivery (a
  worker crashed before committing) and is skipped: reprocessing is idempotent;
- a reading at the sensor's last event time is a duplicate and dropped;
- an older reading is out of order and dead-lettered.
So the detector's window stays in event-time order and no alert is raised twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors import DETECTORS, Detector, RobustZScore, ScoreThreshold
from streams.events import Reading, format_ts
from streams.settings import Settings

SEVERITIES = ("minor", "major", "critical")


def alert_id_for(sensor_id: str, episode_start: float) -> str:
    """Deterministic: the same episode gets the same id on every worker and every replay."""
    digest = hashlib.sha1(f"{sensor_id}|{episode_start:.3f}".encode()).hexdigest()
    return f"al-{digest[:16]}"


def severity_for(score: float) -> str:
    if score >= 0.85:
        return "critical"
    if score >= 0.7:
        return "major"
    return "minor"


@dataclass(frozen=True, slots=True)
class Incoming:
    """A validated reading with the time it reached Kafka (for event-to-alert latency)."""

    reading: Reading
    received_at: float
    offset: int = -1  # Kafka offset; one sensor's readings share a partition
    raw: bytes = b""


@dataclass(slots=True)
class AlertEvent:
    """``firing`` when an episode opens, ``resolved`` when it closes."""

    alert_id: str
    status: str
    sensor_id: str
    kind: str
    grid_cell: str
    severity: str
    score: float
    value: float
    started_at: float
    ended_at: float | None
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "alert/1",
            "alert_id": self.alert_id,
            "status": self.status,
            "sensor_id": self.sensor_id,
            "kind": self.kind,
            "grid_cell": self.grid_cell,
            "severity": self.severity,
            "score": round(self.score, 4),
            "value": self.value,
            "started_at": format_ts(self.started_at),
            "ended_at": None if self.ended_at is None else format_ts(self.ended_at),
        }


@dataclass(slots=True)
class BatchResult:
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: list[AlertEvent] = field(default_factory=list)
    # (reading, reason code, message) for readings that break event-time rules
    rejected: list[tuple[Incoming, str, str]] = field(default_factory=list)
    scored: int = 0
    duplicates: int = 0
    redelivered: int = 0
    anomalies_by_kind: dict[str, int] = field(default_factory=dict)
    scored_by_kind: dict[str, int] = field(default_factory=dict)
    # sensor id -> (kind, grid cell, readings scored, last value, last score, in an episode)
    last: dict[str, tuple[str, str, int, float, float, bool]] = field(default_factory=dict)


class SensorDetection:
    """Scores each sensor's readings with a clone of ``detector`` and tracks episodes.

    An episode opens at the first anomalous reading (one ``firing`` alert) and closes
    after ``quiet_readings`` consecutive normal readings (one ``resolved`` alert), so a
    flood that stays high for hours is one alert, not hundreds.
    """

    def __init__(self, detector: Detector, threshold: ScoreThreshold, quiet_readings: int = 6):
        self.prototype = detector
        self.threshold = threshold
        self.quiet_readings = quiet_readings
        # Live detectors by sensor, with the last offset they have seen. The table stays
        # the source of truth: a cached detector is used only when the table's state
        # carries the same offset (so after a rebalance, a stale one is rebuilt).
        self._live: dict[str, tuple[int, Detector]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SensorDetection:
        """The worker's detection: the configured detector, threshold and quiet period
        (benchmarks build theirs here too, so every candidate detects alike)."""
        detector: Detector = (
            RobustZScore(window=settings.detector_window, min_samples=settings.detector_min_samples)
            if settings.detector == "robust_zscore"
            else DETECTORS[settings.detector]()
        )
        return cls(detector, ScoreThreshold(settings.score_threshold), settings.quiet_readings)

    def forget(self) -> None:
        """Drop the live detectors (on a rebalance: their sensors may move away)."""
        self._live.clear()

    def process(
        self, batch: Sequence[Incoming], states: Mapping[str, dict[str, Any] | None]
    ) -> BatchResult:
        result = BatchResult()
        by_sensor: dict[str, list[Incoming]] = {}
        for item in batch:
            by_sensor.setdefault(item.reading.sensor_id, []).append(item)
        for sensor_id, items in by_sensor.items():
            state = states.get(sensor_id)
            result.states[sensor_id] = self._process_sensor(items, state, result)
        return result

    def _process_sensor(
        self, items: list[Incoming], state: dict[str, Any] | None, result: BatchResult
    ) -> dict[str, Any]:
        last_ts = float("-inf")
        last_offset = -1
        episode: dict[str, Any] | None = None
        if state is not None:
            last_ts = state["last_ts"]
            last_offset = state["last_offset"]
            episode = state["episode"]
        sensor_id = items[0].reading.sensor_id
        cached = self._live.get(sensor_id)
        if cached is not None and state is not None and cached[0] == last_offset >= 0:
            detector = cached[1]
        else:
            detector = self.prototype.clone()
            if state is not None:
                detector.set_state(state["detector"])
        accepted: list[Incoming] = []
        for item in items:
            ts = item.reading.ts
            if 0 <= item.offset <= last_offset:
                result.redelivered += 1
                continue
            last_offset = max(last_offset, item.offset)
            if ts == last_ts:
                result.duplicates += 1
            elif ts < last_ts:
                result.rejected.append(
                    (
                        item,
                        "out_of_order",
                        f'field "ts" is {format_ts(ts)!r}: older than the sensor\'s last reading '
                        f"{format_ts(last_ts)}",
                    )
                )
            else:
                accepted.append(item)
                last_ts = ts
        if accepted:
            values = np.fromiter((i.reading.value for i in accepted), np.float64, len(accepted))
            times = np.fromiter((i.reading.ts for i in accepted), np.float64, len(accepted))
            scores = detector.score_many(values, times)
            flags = self.threshold.flags(scores)
            kind = accepted[0].reading.kind
            result.scored += len(accepted)
            result.scored_by_kind[kind] = result.scored_by_kind.get(kind, 0) + len(accepted)
            n_anomalies = int(flags.sum())
            if n_anomalies:
                result.anomalies_by_kind[kind] = result.anomalies_by_kind.get(kind, 0) + n_anomalies
            # Walk readings only when something can change; most batches skip this loop.
            if n_anomalies or episode is not None:
                episode = self._episodes(accepted, scores, flags, episode, result)
            last = accepted[-1].reading
            result.last[last.sensor_id] = (
                kind,
                last.grid_cell,
                len(accepted),
                last.value,
                float(scores[-1]),
                episode is not None,
            )
        self._live[sensor_id] = (last_offset, detector)
        return {
            "detector": detector.get_state(),
            "last_ts": last_ts,
            "last_offset": last_offset,
            "episode": episode,
        }

    def _episodes(
        self,
        items: list[Incoming],
        scores: np.ndarray,
        flags: np.ndarray,
        episode: dict[str, Any] | None,
        result: BatchResult,
    ) -> dict[str, Any] | None:
        for item, score, flag in zip(items, scores.tolist(), flags.tolist(), strict=True):
            r = item.reading
            if flag:
                if episode is None:
                    episode = {
                        "alert_id": alert_id_for(r.sensor_id, r.ts),
                        "started_at": r.ts,
                        "last_anomalous_at": r.ts,
                        "peak_score": score,
                        "peak_value": r.value,
                        "quiet": 0,
                    }
                    result.alerts.append(
                        AlertEvent(
                            episode["alert_id"],
                            "firing",
                            r.sensor_id,
                            r.kind,
                            r.grid_cell,
                            severity_for(score),
                            score,
                            r.value,
                            r.ts,
                            None,
                            item.received_at,
                        )
                    )
                else:
                    episode["last_anomalous_at"] = r.ts
                    episode["quiet"] = 0
                    if score > episode["peak_score"]:
                        episode["peak_score"] = score
                        episode["peak_value"] = r.value
            elif episode is not None:
                episode["quiet"] += 1
                if episode["quiet"] >= self.quiet_readings:
                    result.alerts.append(
                        AlertEvent(
                            episode["alert_id"],
                            "resolved",
                            r.sensor_id,
                            r.kind,
                            r.grid_cell,
                            severity_for(episode["peak_score"]),
                            episode["peak_score"],
                            episode["peak_value"],
                            episode["started_at"],
                            episode["last_anomalous_at"],
                            item.received_at,
                        )
                    )
                    episode = None
        return episode
