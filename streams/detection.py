"""Pure per-batch detection: readings in, anomalies and alert episodes out.

Kafka-free (the agent in ``streams/app.py`` decodes, calls ``SensorDetection.process``
and sends). With the tail detector (the default) every sensor's detector is a slot in one
shared ``TailBank`` and a batch's readings from all its sensors are scored in one
vectorised call; other detectors are called per sensor. Each sensor's state -- detector,
last event time and Kafka position, open episode -- is one dict the agent keeps in a
changelog-backed faust table. The dict holds the live detector, which the next batch
goes on updating in place (no per-batch serialisation); ``state_document`` turns it into
the JSON written to the changelog, and a state read back from there holds the
detector's state instead. A restarted worker
picks up exactly where the last written state left off.

Delivery and event-time rules (docs/events.md), in this order:
- a reading at or before the sensor's last processed position (Kafka offset, then place
  in its pack) is a redelivery (a worker crashed before committing) and is skipped:
  reprocessing is idempotent;
- a reading at the sensor's last event time is a duplicate and dropped;
- an older reading is out of order and dead-lettered.
So the detector's window stays in event-time order and no alert is raised twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import msgspec
import numpy as np
import orjson

from detectors import DETECTORS, Detector, DetectorError, RobustZScore, ScoreThreshold
from detectors.base import check_values
from detectors.tail import TailBank, TailDetector, TailSlot
from playbooks.routing import LABEL_VALUES
from streams.errors import EventError, unreadable
from streams.events import EventValidator, PackedError, Reading, format_ts
from streams.settings import Settings

SEVERITIES = LABEL_VALUES["severity"]  # mildest first: the routing labels' own list
ONE_AT_A_TIME = 4  # a sensor's readings per batch up to which numpy is not worth its cost


def _older(ts: float, last_ts: float) -> str:
    """The out-of-order refusal's message."""
    return (
        f'field "ts" is {format_ts(ts)!r}: older than the sensor\'s last reading '
        f"{format_ts(last_ts)}"
    )


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


class Incoming(msgspec.Struct, gc=False):
    """A validated reading with the time it reached Kafka (for event-to-alert latency).
    A msgspec struct, like ``Reading``: built once per reading on the hot path, where a
    slots dataclass's ``__init__`` (Python code) took about 107 ns against 42 ns."""

    reading: Reading
    received_at: float
    offset: int = -1  # Kafka offset; one sensor's readings share a partition
    raw: bytes = b""
    index: int = 0  # place in its message (a pack holds many readings at one offset)


@dataclass(frozen=True, slots=True)
class Refused:
    """A reading (or a whole message) kept out of detection: ``index`` is its place in
    a pack (None for the whole message) and ``raw`` its own bytes (None: the message's)."""

    index: int | None
    raw: bytes | None
    error: EventError


def admit(
    validator: EventValidator,
    raw: bytes,
    now: float,
    partition: int,
    home_partition: Callable[[str], int],
    offset: int,
    received_at: float,
) -> tuple[list[Incoming], list[Refused]]:
    """One Kafka message (a reading or a pack of them) -> the readings detection takes
    and the ones refused, with why. A reading must arrive on its sensor's partition:
    its state lives with that partition's owner, and a reading elsewhere would fork it.
    Never raises: any exception while decoding or validating the message refuses it
    whole (reason ``unreadable`` unless it is an ``EventError``)."""
    try:
        packed, decoded = validator.readings(raw, now)
    except EventError as exc:
        return [], [Refused(None, None, exc)]
    except Exception as exc:  # a poison message costs only itself (docs/events.md)
        return [], [Refused(None, None, unreadable(exc))]
    admitted: list[Incoming] = []
    refused: list[Refused] = []
    for index, reading in enumerate(decoded):
        if isinstance(reading, PackedError):
            refused.append(Refused(index, reading.raw(), reading.error))
            continue
        placed = place(reading, packed, index, raw, partition, home_partition, offset, received_at)
        if isinstance(placed, Incoming):
            admitted.append(placed)
        else:
            refused.append(placed)
    return admitted, refused


def place(
    reading: Reading,
    packed: bool,
    index: int,
    raw: bytes,
    partition: int,
    home_partition: Callable[[str], int],
    offset: int,
    received_at: float,
) -> Incoming | Refused:
    """A valid reading (``index``: its place in its message) -> ``Incoming`` if it is on its
    sensor's home partition, else a ``wrong_partition`` ``Refused`` (a packed reading's own
    bytes rebuilt for the dead letter; a single message is dead-lettered as it came)."""
    home = home_partition(reading.sensor_id)
    if home != partition:
        error = EventError(
            "wrong_partition",
            "sensor_id",
            reading.sensor_id,
            f"the sensor's readings belong on partition {home}, this message is on {partition}",
        )
        return Refused(index, reading.to_json(), error) if packed else Refused(None, None, error)
    # A packed reading's own bytes are rebuilt only if it is dead-lettered later.
    return Incoming(reading, received_at, offset, b"" if packed else raw, index)


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
    # (sensor id, event time, score) of readings scoring >= SensorDetection.mark_at
    marks: list[tuple[str, float, float]] = field(default_factory=list)


# The changelog entry of a sensor's state (``state_bytes``): this byte, then msgpack. A
# JSON entry (every state written before the binary format) starts with "{".
STATE_FORMAT = b"\x01"


def _plain(obj: Any) -> Any:
    """A numpy scalar as its Python number (JSON's orjson took numpy floats as floats)."""
    if isinstance(obj, np.generic):
        return obj.item()
    raise NotImplementedError(f"cannot encode a {type(obj).__name__} in a sensor state")


_msgpack = msgspec.msgpack.Encoder(enc_hook=_plain)


def state_bytes(state: dict[str, Any]) -> bytes:
    """A sensor's state as its changelog entry: ``STATE_FORMAT``, then the state as
    msgpack, the tail detector's row as its raw little-endian float64 bytes (9.5 kB for
    the default window; as base64 in JSON it was 12.7 kB and twice the encoding work).
    ``read_state`` reads it back, and reads the JSON entries written before it."""
    detector = state["detector"]
    if type(detector) is TailSlot:
        document: Any = detector.bank.record(detector.slot, raw=True)
    elif type(detector) is not dict and isinstance(detector, Detector):
        document = detector.get_state()
    else:
        document = detector  # as read back, not yet scored again
    return STATE_FORMAT + _msgpack.encode({**state, "detector": document})


def read_state(entry: bytes) -> dict[str, Any]:
    """A changelog entry of a sensor's state, as ``state_bytes`` or (before it) JSON
    wrote it; raises ValueError if it is neither."""
    try:
        if entry[:1] == STATE_FORMAT:
            state: Any = msgspec.msgpack.decode(entry[1:])
        else:
            state = orjson.loads(entry)
    except (msgspec.DecodeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"sensor state entry is unreadable: {exc}") from None
    if not isinstance(state, dict):
        raise ValueError(f"sensor state entry is a {type(state).__name__}, not a mapping")
    return state


def state_document(state: dict[str, Any]) -> dict[str, Any]:
    """A sensor's state as JSON-compatible data (its changelog entry): the live
    detector it holds replaced by the detector's own state."""
    detector = state["detector"]
    # The common case first: ``isinstance`` against the Detector ABC costs a
    # ``__instancecheck__`` call per sensor and commit.
    if type(detector) is not dict and isinstance(detector, Detector):
        return {**state, "detector": detector.get_state()}
    return state


class SensorDetection:
    """Scores each sensor's readings with a clone of ``detector`` and tracks episodes.

    An episode opens at the first anomalous reading (one ``firing`` alert) and closes
    after ``quiet_readings`` consecutive normal readings (one ``resolved`` alert), so a
    flood that stays high for hours is one alert, not hundreds.
    """

    def __init__(self, detector: Detector, threshold: ScoreThreshold, quiet_readings: int = 6):
        self.threshold = threshold
        self.quiet_readings = quiet_readings
        # Readings scoring at least this are listed in ``BatchResult.marks`` (None: none
        # are): the anomaly marks neighbour corroboration reads (streams/corroborating.py).
        self.mark_at: float | None = None
        # The tail detector's sensors share one bank: a batch of interleaved readings
        # from thousands of sensors is scored in one vectorised call (detectors/tail.py).
        self.bank: TailBank | None = None
        if isinstance(detector, TailDetector | TailSlot):
            self.bank = TailBank(**detector.get_params())
            self.bank.warm()  # compiled at start-up, not in the first live batch
            detector = TailSlot(self.bank)
        self.prototype = detector
        self._live_class: type = type(detector)

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

    def process(
        self, batch: Sequence[Incoming], states: Mapping[str, dict[str, Any] | None]
    ) -> BatchResult:
        result = BatchResult()
        if self.bank is None:
            by_sensor: dict[str, list[Incoming]] = {}
            for item in batch:
                by_sensor.setdefault(item.reading.sensor_id, []).append(item)
            for sensor_id, items in by_sensor.items():

                def one(sid: str = sensor_id, its: list[Incoming] = items) -> None:
                    state, accepted = self._admit_sensor(its, states.get(sid), result)
                    if accepted:
                        self._score_record(state, accepted, result)
                    result.states[sid] = state

                self._isolated(sensor_id, items, result, one)
            return result
        return self._process_bank(self.bank, batch, states, result)

    def _process_bank(
        self,
        bank: TailBank,
        batch: Sequence[Incoming],
        states: Mapping[str, dict[str, Any] | None],
        result: BatchResult,
    ) -> BatchResult:
        """``process`` over the shared bank: every sensor's accepted readings scored in
        one call, in order. A sensor with one reading in the batch and a live state (the
        common case at city scale: a batch of 5,000 messages over 20,000 sensors) takes
        ``_admit_sensor``'s rules inline, with no per-sensor list or call; its result is
        the same (tests/unit/streams/test_detection.py compares the two paths)."""
        # Sensors in order of their first reading; ``more`` only for those with several.
        first: dict[str, Incoming] = {}
        more: dict[str, list[Incoming]] = {}
        for item in batch:
            sensor_id = item.reading.sensor_id
            if sensor_id not in first:
                first[sensor_id] = item
            else:
                group = more.get(sensor_id)
                if group is None:
                    more[sensor_id] = [first[sensor_id], item]
                else:
                    group.append(item)
        live: Any = self._live_class
        new_states = result.states
        # Per accepted sensor, its state and its accepted readings (one Incoming alone,
        # or a list of several) in the order scored.
        admitted: list[tuple[dict[str, Any], Incoming | list[Incoming]]] = []
        slots: list[int] = []
        values: list[float] = []
        times: list[float] = []
        for sensor_id, item in first.items():
            state = states.get(sensor_id)
            if (
                state is not None
                and item.offset >= 0
                and type(state["detector"]) is live
                and sensor_id not in more
            ):
                # ``_admit_sensor`` for one reading and a live detector, inline.
                reading = item.reading
                ts = reading.ts
                last_ts = state["last_ts"]
                last_offset = state["last_offset"]
                last_index = state.get("last_index", 0)
                detector = state["detector"]
                accept = False
                if (item.offset, item.index) <= (last_offset, last_index):
                    result.redelivered += 1
                else:
                    last_offset, last_index = item.offset, item.index
                    if ts > last_ts:
                        last_ts, accept = ts, True
                    elif ts == last_ts:
                        result.duplicates += 1
                    else:
                        result.rejected.append((item, "out_of_order", _older(ts, last_ts)))
                new = {
                    "detector": detector,
                    "last_ts": last_ts,
                    "last_offset": last_offset,
                    "last_index": last_index,
                    "episode": state["episode"],
                }
                new_states[sensor_id] = new
                if accept:
                    admitted.append((new, item))
                    slots.append(detector.slot)
                    values.append(reading.value)
                    times.append(ts)
                continue
            items = more.get(sensor_id) or [item]
            state, accepted = self._admit_sensor(items, state, result)
            new_states[sensor_id] = state
            if accepted:
                slot = state["detector"].slot
                admitted.append((state, accepted[0] if len(accepted) == 1 else accepted))
                for one in accepted:
                    slots.append(slot)
                    values.append(one.reading.value)
                    times.append(one.reading.ts)
        if not admitted:
            return result
        try:
            array = bank.score_learn(
                np.array(slots, np.int64),
                check_values(values),
                np.array(times, np.float64),
            )
        except Exception:
            # The bank refused the batch as a whole: score sensor by sensor, so a fault
            # costs only the readings of the sensor that caused it.
            for state, taken in admitted:
                group = taken if isinstance(taken, list) else [taken]
                self._isolated(
                    group[0].reading.sensor_id,
                    group,
                    result,
                    partial(self._score_record, state, group, result),
                )
            return result
        all_scores = array.tolist()
        flags_array = self.threshold.flags(array)
        # Most batches flag nothing: then no sensor's flags need looking at.
        all_flags = flags_array.tolist() if flags_array.any() else None
        scored_by_kind, last = result.scored_by_kind, result.last
        start = 0
        for state, taken in admitted:
            # One reading alone (the common case) or several; no list built for one.
            if isinstance(taken, list):
                reading, n = taken[-1].reading, len(taken)
            else:
                reading, n = taken.reading, 1
            stop = start + n
            if state["episode"] is None and (all_flags is None or not any(all_flags[start:stop])):
                # Quiet (most sensors of most batches): no episode to walk, only the
                # counts and the last reading -- what ``_record`` does then, inline,
                # since nothing here can raise.
                kind = reading.kind
                result.scored += n
                scored_by_kind[kind] = scored_by_kind.get(kind, 0) + n
                last[reading.sensor_id] = (
                    kind,
                    reading.grid_cell,
                    n,
                    reading.value,
                    all_scores[stop - 1],
                    False,
                )
                start = stop
                continue
            its = taken if isinstance(taken, list) else [taken]
            self._isolated(
                reading.sensor_id,
                its,
                result,
                partial(
                    self._record,
                    state,
                    its,
                    all_scores[start:stop],
                    [False] * n if all_flags is None else all_flags[start:stop],
                    result,
                ),
            )
            start = stop
        return result

    def _score_record(
        self, state: dict[str, Any], accepted: list[Incoming], result: BatchResult
    ) -> None:
        scores, flags = self._score(state["detector"], accepted)
        self._record(state, accepted, scores, flags, result)

    @staticmethod
    def _isolated(
        sensor_id: str, items: list[Incoming], result: BatchResult, work: Callable[[], None]
    ) -> None:
        """Run one sensor's share of a batch; if it raises, only that sensor's readings of
        the batch are dead-lettered (``detector_error``) and its stored state is kept (the
        table is not written: ``result.states`` loses the sensor), so the next batch goes
        on from it. Nothing of another sensor is lost."""
        mark = (len(result.alerts), len(result.rejected), result.duplicates, result.redelivered)
        marks = len(result.marks)
        try:
            work()
        except Exception as exc:
            del result.alerts[mark[0] :], result.rejected[mark[1] :], result.marks[marks:]
            result.duplicates, result.redelivered = mark[2], mark[3]
            result.states.pop(sensor_id, None)
            result.last.pop(sensor_id, None)
            why = f"detector failed on sensor {sensor_id}: {type(exc).__name__}: {exc}"
            result.rejected.extend((item, "detector_error", why[:300]) for item in items)

    def _admit_sensor(
        self, items: list[Incoming], state: dict[str, Any] | None, result: BatchResult
    ) -> tuple[dict[str, Any], list[Incoming]]:
        """The sensor's state (its detector live) and the readings to score, after the
        delivery and event-time rules of the module docstring."""
        last_ts = float("-inf")
        last_offset = -1
        last_index = 0
        episode: dict[str, Any] | None = None
        if state is not None:
            last_ts = state["last_ts"]
            last_offset = state["last_offset"]
            last_index = state.get("last_index", 0)  # absent in states written before packs
            episode = state["episode"]
        if state is not None and (
            # The prototype's own class first: ``isinstance`` against the Detector ABC
            # was a tenth of a batch's detection time (one ABC check per sensor).
            type(state["detector"]) is self._live_class or isinstance(state["detector"], Detector)
        ):
            detector = state["detector"]  # live: this worker's own last state
        else:
            detector = self.prototype.clone()
            if state is not None:
                try:
                    detector.set_state(state["detector"])  # as read back from the changelog
                except (DetectorError, KeyError, TypeError, ValueError):
                    # Written by another detector (the default changed between
                    # deployments): this sensor's detector starts over, the rest of
                    # its state (positions, episode) stands.
                    detector = self.prototype.clone()
        accepted: list[Incoming] = []
        if len(items) == 1 and items[0].offset >= 0:
            # One reading of the sensor in this batch (the common case at city scale):
            # the loop below, unrolled.
            item = items[0]
            ts = item.reading.ts
            if (item.offset, item.index) <= (last_offset, last_index):
                result.redelivered += 1
            else:
                last_offset, last_index = item.offset, item.index
                if ts > last_ts:
                    accepted.append(item)
                    last_ts = ts
                elif ts == last_ts:
                    result.duplicates += 1
                else:
                    result.rejected.append((item, "out_of_order", _older(ts, last_ts)))
            items = []
        for item in items:
            ts = item.reading.ts
            if item.offset >= 0:
                if (item.offset, item.index) <= (last_offset, last_index):
                    result.redelivered += 1
                    continue
                last_offset, last_index = item.offset, item.index
            if ts == last_ts:
                result.duplicates += 1
            elif ts < last_ts:
                result.rejected.append((item, "out_of_order", _older(ts, last_ts)))
            else:
                accepted.append(item)
                last_ts = ts
        state = {
            "detector": detector,
            "last_ts": last_ts,
            "last_offset": last_offset,
            "last_index": last_index,
            "episode": episode,
        }
        return state, accepted

    def _record(
        self,
        state: dict[str, Any],
        accepted: list[Incoming],
        scores: list[float],
        flags: list[bool],
        result: BatchResult,
    ) -> None:
        """Counts, episodes and the sensor's last reading, after scoring."""
        episode = state["episode"]
        if accepted:
            kind = accepted[0].reading.kind
            n_anomalies = sum(flags)
            # Walk readings only when something can change; most batches skip this loop.
            if n_anomalies or episode is not None:
                # A copy: the stored episode stays as it was if this batch fails midway.
                episode = self._episodes(
                    accepted, scores, flags, None if episode is None else dict(episode), result
                )
            mark_at = self.mark_at
            if mark_at is not None and max(scores) >= mark_at:
                result.marks.extend(
                    (item.reading.sensor_id, item.reading.ts, float(score))
                    for item, score in zip(accepted, scores, strict=True)
                    if score >= mark_at
                )
            last = accepted[-1].reading
            last_score = float(scores[-1])
            # Counted last, once nothing of this sensor's batch can fail any more.
            result.scored += len(accepted)
            result.scored_by_kind[kind] = result.scored_by_kind.get(kind, 0) + len(accepted)
            if n_anomalies:
                result.anomalies_by_kind[kind] = result.anomalies_by_kind.get(kind, 0) + n_anomalies
            result.last[last.sensor_id] = (
                kind,
                last.grid_cell,
                len(accepted),
                last.value,
                last_score,
                episode is not None,
            )
        state["episode"] = episode

    def _score(self, detector: Detector, items: list[Incoming]) -> tuple[list[float], list[bool]]:
        """Score then learn each reading: scores and anomaly flags, in order."""
        if len(items) <= ONE_AT_A_TIME:
            # A live batch holds a reading or two per sensor: numpy's fixed cost per call
            # on one-element arrays would be most of the work (same scores: the detector
            # contract makes score_many equal score_one then learn_one, row by row).
            scores = []
            for item in items:
                r = item.reading
                scores.append(detector.score_one(r.value, r.ts))
                detector.learn_one(r.value, r.ts)
            threshold = self.threshold.threshold
            return scores, [score >= threshold for score in scores]
        values = np.array([i.reading.value for i in items], np.float64)
        times = np.array([i.reading.ts for i in items], np.float64)
        array = detector.score_many(values, times)
        return array.tolist(), self.threshold.flags(array).tolist()

    def _episodes(
        self,
        items: list[Incoming],
        scores: list[float],
        flags: list[bool],
        episode: dict[str, Any] | None,
        result: BatchResult,
    ) -> dict[str, Any] | None:
        for item, score, flag in zip(items, scores, flags, strict=True):
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
