"""Pure per-batch detection: readings in, anomalies and alert episodes out.

Kafka-free (the agent in ``streams/app.py`` decodes, calls ``SensorDetection.process``
and sends). With the tail detector (the default) every sensor's detector is a slot in one
shared ``TailBank`` and a batch's readings from all its sensors are scored in one
vectorised call; other detectors are called per sensor. Each sensor's state -- detector,
last event time and Kafka position, open episode -- is what the agent keeps in a
changelog-backed faust table: on the bank path a ``BankState`` (its slot and episode;
the rest in numpy columns beside the bank's rows, so most of a batch is admitted and
counted with array operations), otherwise a dict. Either holds the live detector, which
the next batch goes on updating in place (no per-batch serialisation); ``state_bytes``
turns it into the changelog entry (the same for both), and a state read back from there
is a dict holding the detector's state instead. A restarted worker picks up exactly
where the last written state left off.

A batch comes as a sequence of ``Incoming`` readings, or as ``Admitted`` columns (the
worker's admission, ``streams/columns.py``), which the bank path reads without an object
per reading; the result is the same either way.

Delivery and event-time rules (docs/events.md), in this order:
- a reading at or before the sensor's last processed position (Kafka offset, then place
  in its pack) and not newer than its last event time is a redelivery (a worker crashed
  before committing) and is skipped: reprocessing is idempotent. A reading before that
  position but newer in event time cannot be one (every reading processed there was at
  or before the last event time): its partition's log was reset (the topic deleted and
  re-created, trial 10), and it is taken as new, its position the sensor's from then on;
- a reading at the sensor's last event time is a duplicate and dropped if its value is
  the one taken then (or that one is unknown: a state written before it was kept), and
  refused as ``conflicting_reading`` if it is another;
- an older reading is out of order and dead-lettered;
- but a reading more than ``CLOCK_JUMP`` (a day) after the sensor's last is a clock jump:
  taken, and until a later one confirms it the sensor keeps the time it jumped from
  (``jump_from``), a reading between the two taking the clock back (one odd time poisons
  no later reading); a sensor's first reading more than ``CLOCK_JUMP`` past its kind's
  clock (``SensorDetection.kind_clock``) is one from no history (``NO_HISTORY``), and any
  first reading of a kind with no clock yet is pending too (``NO_CLOCK``: a later reading
  more than ``CLOCK_JUMP`` before it takes the clock back).
So the detector's window stays in event-time order and no alert is raised twice.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from heapq import merge
from itertools import filterfalse, repeat
from operator import attrgetter, is_, itemgetter
from typing import Any, TypeVar, overload

import msgspec
import numpy as np
import orjson

from detectors import (
    DETECTORS,
    Detector,
    DetectorError,
    DetectorStateError,
    RobustZScore,
    ScoreThreshold,
)
from detectors.base import (
    ABSURD_ABOVE,
    FAR_GLITCH_SCORE,
    check_state_document,
    check_values,
)
from detectors.tail import VERSION as TAIL_VERSION
from detectors.tail import TailBank, TailDetector, TailSlot, far_glitch_rows
from playbooks.engine import MAX_COUNT
from playbooks.grid import Grid
from playbooks.routing import LABEL_VALUES
from streams.errors import (
    BAD_SHAPE,
    NEWER_FORMAT,
    NOT_DECODABLE,
    UNKNOWN_FORMAT,
    EventError,
    UnreadableEntryError,
    detach,
    shown_key,
    unreadable,
)
from streams.events import (
    MAX_ID_CHARS,
    MIN_EVENT_TIME,
    EventValidator,
    PackedError,
    Reading,
    epoch_seconds_fault,
    format_ts,
)
from streams.settings import Settings
from streams.spans import items_as_sent

SEVERITIES = LABEL_VALUES["severity"]  # mildest first: the routing labels' own list
ONE_AT_A_TIME = 4  # a sensor's readings per batch up to which numpy is not worth its cost

# The bank path reads a batch's fields column by column with these (C, no Python frame).
_READING = attrgetter("reading")
_OFFSET = attrgetter("offset")
_INDEX = attrgetter("index")
_SENSOR = attrgetter("sensor_id")
_TS = attrgetter("ts")
_VALUE = attrgetter("value")
_SLOT = attrgetter("slot")
_first = itemgetter(0)
_first_two = itemgetter(0, 1)


def _in_order(rejected: list[Any], start: int, refused: list[Any], late: list[Any]) -> None:
    """Put ``rejected[start:]`` (the admission refusals ``refused``, then those made while
    scoring, ``late``: each ``(sensor's first place, entry)``) in the per-sensor path's
    order, by each sensor's first place in the batch (the admission ones first for a
    sensor: they were made first there too)."""
    if late:
        rejected[start:] = [entry for _, entry in merge(refused, late, key=_first)]


def _older(ts: float, last_ts: float, jump_from: float | None = None) -> str:
    """The out-of-order refusal's message (``jump_from``: the sensor's time before a
    jump not yet confirmed, which a refused reading is older than too; ``NO_CLOCK``: none
    to name, the refused reading being within a day of the first)."""
    if jump_from is not None and jump_from != NO_CLOCK:
        return (
            f'field "ts" is {format_ts(ts)!r}: older than the sensor\'s last reading '
            f"{format_ts(jump_from)} before its jump to {format_ts(last_ts)}"
        )
    return (
        f'field "ts" is {format_ts(ts)!r}: older than the sensor\'s last reading '
        f"{format_ts(last_ts)}"
    )


# A reading more than this many seconds of event time after its sensor's last one (a
# day) is a clock jump: taken (a sensor may resume after years of silence), but until a
# later reading confirms it the sensor keeps the time it jumped from (``jump_from`` in its
# state), and a reading between the two is taken, the sensor's clock going back to it:
# the jump was one reading's odd time (a gateway's clock, a unit mistake), which
# otherwise made every later real reading out of order, for good (t185).
CLOCK_JUMP = 86_400.0

# ``jump_from`` of a sensor whose FIRST reading was a clock jump: more than ``CLOCK_JUMP``
# after the newest time its kind's sensors had (``SensorDetection.kind_clock``, what a
# stream processor's watermark is to one key). It has no time of its own to have jumped
# from, so any reading before the jump (from 1990 on, as every reading taken) takes the
# clock back. Before, a new sensor's first reading a year ahead (before the worker's
# clock, so not ``in_future``) set its clock there: every later real reading of it was
# ``out_of_order``, for good (t195). A second before ``MIN_EVENT_TIME``: never a reading's.
NO_HISTORY = MIN_EVENT_TIME - 1.0

# ``jump_from`` of a sensor whose first reading came while its kind had no clock yet (the
# worker's first readings of the kind): nothing vouches for its time, nor against it. A
# later reading more than ``CLOCK_JUMP`` before it shows that it was the jump, and takes
# the clock back; one less before it is ``out_of_order``, as before (a late delivery).
# Before, a fresh worker's very first reading of a kind a year ahead set its sensor's
# clock there, every later real reading of it ``out_of_order`` (t206). Two seconds
# before ``MIN_EVENT_TIME``: never a reading's, nor ``NO_HISTORY``.
NO_CLOCK = MIN_EVENT_TIME - 2.0


def _conflicting(value: float, last_value: float, ts: float) -> str:
    """The refusal's message for a reading at its sensor's last event time whose value is
    not the one taken there: a duplicate it is not, and dropping it as one would lose a
    value without a word."""
    return (
        f'field "value" is {value!r}: the sensor\'s reading at {format_ts(ts)} was taken '
        f"already with the value {last_value!r}: which is meant? (send a correction at a "
        "new time)"
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


class Admitted(Sequence[Incoming]):
    """A batch of admitted readings (in offset order) as columns, for the bank path to
    read without an object per reading: ``sensor_ids`` (list of str), ``ts`` (event
    times, epoch s) and ``values`` (float64 arrays), ``offsets`` (Kafka offsets) and
    ``in_pack`` (places in their packs; int64 arrays), all of length ``len(self)``. It
    is also the sequence of its ``Incoming`` readings: ``self[j]`` is the one ``make(j)``
    builds (once, then kept), or the given one for a batch made ``of`` them, so a
    reading that leaves the bank's fast path (a new sensor, an episode, a flagged or
    refused reading) is an ``Incoming`` as before, and the others never are.
    ``make_many`` (optional) builds the ``Incoming`` of a list of places in one call
    (``many``: a batch of new sensors needs every one of them)."""

    __slots__ = (
        "_given",
        "_made",
        "_make",
        "_make_many",
        "in_pack",
        "offsets",
        "sensor_ids",
        "ts",
        "values",
    )

    def __init__(
        self,
        sensor_ids: list[str],
        ts: np.ndarray,
        values: np.ndarray,
        offsets: np.ndarray,
        in_pack: np.ndarray,
        make: Callable[[int], Incoming],
        make_many: Callable[[list[int]], list[Incoming]] | None = None,
    ) -> None:
        self.sensor_ids = sensor_ids
        self.ts = ts
        self.values = values
        self.offsets = offsets
        self.in_pack = in_pack
        self._make = make
        self._make_many = make_many
        self._made: dict[int, Incoming] = {}
        self._given: Sequence[Incoming] | None = None

    @classmethod
    def of(cls, items: Sequence[Incoming]) -> Admitted:
        """``items`` as columns (``items`` itself if it is an ``Admitted``)."""
        if type(items) is Admitted:
            return items
        n = len(items)
        readings = list(map(_READING, items))
        batch = cls(
            list(map(_SENSOR, readings)),
            np.fromiter(map(_TS, readings), np.float64, n),
            np.fromiter(map(_VALUE, readings), np.float64, n),
            np.fromiter(map(_OFFSET, items), np.int64, n),
            np.fromiter(map(_INDEX, items), np.int64, n),
            items.__getitem__,
        )
        batch._given = items
        return batch

    def many(self, places: list[int]) -> list[Incoming]:
        """``[self[j] for j in places]`` (places in range, each once), the ones not yet
        made built in one ``make_many`` call: 300,000 ``make`` calls were a third of a
        batch of new sensors' detection (t106)."""
        if self._given is not None:
            return list(map(self._given.__getitem__, places))
        if self._make_many is None:
            return list(map(self.__getitem__, places))
        made = self._made
        todo = list(filterfalse(made.__contains__, places)) if made else places
        if todo:
            made.update(zip(todo, self._make_many(todo), strict=True))
        return list(map(made.__getitem__, places))

    def reading(self, j: int) -> Reading:
        """The ``j``-th reading."""
        return self[j].reading

    def __len__(self) -> int:
        return len(self.sensor_ids)

    @overload
    def __getitem__(self, j: int) -> Incoming: ...

    @overload
    def __getitem__(self, j: slice) -> list[Incoming]: ...

    def __getitem__(self, j: int | slice) -> Incoming | list[Incoming]:
        if isinstance(j, slice):
            return [self[k] for k in range(len(self))[j]]
        if self._given is not None:
            return self._given[j]
        item = self._made.get(j)
        if item is None:
            n = len(self)
            if not -n <= j < n:
                raise IndexError(j)
            j %= n
            item = self._made.get(j)
            if item is None:
                item = self._made[j] = self._make(j)
        return item

    def __iter__(self) -> Iterator[Incoming]:
        return map(self.__getitem__, range(len(self)))

    def __repr__(self) -> str:
        return f"Admitted({list(self)!r})"


@dataclass(frozen=True, slots=True)
class Refused:
    """A reading (or a whole message) kept out of detection: ``index`` is its place in
    a pack (None for the whole message) and ``raw`` its own bytes (None: the message's)."""

    index: int | None
    raw: bytes | None
    error: EventError

    def __post_init__(self) -> None:
        # The error's traceback holds the frames that raised it, each its caller's
        # (``f_back``), up to the agent's frame that holds this refusal: a cycle, so a
        # refused message's batch (its bytes) lived until a full collection. 100 refused
        # 900 KB readings kept 175 MB of worker RSS (helper t80); cut, they go at once.
        detach(self.error)


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
    if packed and refused:
        refused = packed_as_sent(raw, len(decoded), refused)
    return admitted, refused


def packed_as_sent(raw: bytes, count: int, refused: list[Refused]) -> list[Refused]:
    """The refused readings of the pack ``raw`` (``count`` readings) with their own bytes
    as the producer wrote them, for the dead letter: written again from the parsed value,
    a NaN or 1e999 came out as null and a key given twice as one value (trial 62). Kept
    as they are where the pack's bytes cannot be told apart."""
    sent = items_as_sent(raw, "readings", count)
    if sent is None:
        return refused
    return [
        Refused(r.index, sent[r.index], r.error) if r.index is not None and r.raw else r
        for r in refused
    ]


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


# The alert label of a sensor alert whose episode opened on a far glitch (a sentinel such
# as 1e308, no measurement: docs/detectors.md): alone, it is a suspected sensor fault
# however high it scores (streams/corroboration.py), and it marks no neighbour.
READING_LABEL = "reading"
FAR_GLITCH = "far_glitch"


@dataclass(slots=True)
class AlertEvent:
    """``firing`` when an episode opens, ``resolved`` when it closes. ``far_glitch``:
    the episode opened on a far glitch (``READING_LABEL``), its resolution too."""

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
    far_glitch: bool = False

    @classmethod
    def resolution(
        cls,
        episode: Mapping[str, Any],
        sensor_id: str,
        kind: str,
        grid_cell: str,
        received_at: float,
    ) -> AlertEvent:
        """The ``resolved`` alert that closes ``episode`` (a sensor state's open episode:
        its id, peak score and value, start and last anomalous reading's time), the
        severity that of its peak. Its ``ended_at`` (epoch s) is the last anomalous
        reading's time, never before ``started_at``: Alertmanager's API refuses an alert
        that ends before it starts ("start time must be before end time"), and so does the
        alerts agent (t139). A sensor's readings are taken in event-time order, so only a
        state read back damaged could have it so; refused, this resolution would leave its
        run open for ever."""
        started = episode["started_at"]
        return cls(
            episode["alert_id"],
            "resolved",
            sensor_id,
            kind,
            grid_cell,
            severity_for(episode["peak_score"]),
            episode["peak_score"],
            episode["peak_value"],
            started,
            max(started, episode["last_anomalous_at"]),
            received_at,
            # (an episode stored by an earlier worker has no such key: a measurement)
            episode.get("far_glitch") is True,
        )

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

    def document(self, grid: Grid) -> dict[str, Any]:
        """The ``alert/1`` document the worker sends (``to_dict``), labelled by ``grid``:
        the cell's and its ancestors' ids, ``alert_id``, ``kind``, ``severity``,
        ``sensor_id``, ``source=sensor`` and, for an episode that opened on a far glitch,
        ``reading=far_glitch`` (alone, a suspected sensor fault: streams/corroboration.py).
        Raises GridError for a cell the grid lacks."""
        doc = self.to_dict()
        doc["labels"] = {
            **grid.cell_labels(self.grid_cell),
            "alert_id": self.alert_id,
            "kind": self.kind,
            "severity": self.severity,
            "sensor_id": self.sensor_id,
            "source": "sensor",
        }
        if self.far_glitch:
            doc["labels"][READING_LABEL] = FAR_GLITCH
        return doc


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
    scored_by_cell: dict[str, int] = field(default_factory=dict)
    # sensor id -> (kind, grid cell, readings scored, last value, last score, in an episode)
    # of each scored sensor in an episode after the batch or in ``SensorDetection.follow``
    last: dict[str, tuple[str, str, int, float, float, bool]] = field(default_factory=dict)
    # (sensor id, event time, score, value) of readings scoring >= SensorDetection.mark_at
    # (the value: corroboration tells one device under two ids, or a stuck one, by it)
    marks: list[tuple[str, float, float, float]] = field(default_factory=list)
    # (sensor id, why) of sensors whose detector state, as read back from the changelog,
    # its detector could not take or use: their detector started over (the rest of their
    # state stands), said by the worker as an unreadable stored entry
    restarted: list[tuple[str, str]] = field(default_factory=list)
    # (sensor id, event time it had jumped to, event time it went back to) of sensors
    # whose clock jump a later reading showed to be one reading's odd time (CLOCK_JUMP)
    clock_back: list[tuple[str, float, float]] = field(default_factory=list)


# The changelog entry of a sensor's state (``state_bytes``): this byte, then msgpack. A
# JSON entry (every state written before the binary format) starts with "{".
STATE_FORMAT = b"\x01"


def _plain(obj: Any) -> Any:
    """A numpy scalar as its Python number (JSON's orjson took numpy floats as floats)."""
    if isinstance(obj, np.generic):
        return obj.item()
    raise NotImplementedError(f"cannot encode a {type(obj).__name__} in a sensor state")


_msgpack = msgspec.msgpack.Encoder(enc_hook=_plain)


def state_bytes(state: Mapping[str, Any]) -> bytes:
    """A sensor's state as its changelog entry: ``STATE_FORMAT``, then the state as
    msgpack, the tail detector's row as its raw little-endian float64 bytes (9.5 kB for
    the default window; as base64 in JSON it was 12.7 kB and twice the encoding work).
    ``read_state`` reads it back, and reads the JSON entries written before it."""
    if type(state) is BankState:
        # The same entry as its dict's, read from the columns, the row not copied.
        columns, slot, detector = state._columns, state.slot, state.detector
        return STATE_FORMAT + _msgpack.encode(
            {
                "detector": detector.bank.record(detector.slot, raw=True, view=True),
                "last_ts": columns.last_ts.item(slot),
                "last_value": columns.last_value.item(slot),
                "last_offset": columns.last_offset.item(slot),
                "last_index": columns.last_index.item(slot),
                "episode": state.episode,
                **_jump_entry(columns.jump_from.item(slot)),
            }
        )
    detector = state["detector"]
    if type(detector) is TailSlot:
        document: Any = detector.bank.record(detector.slot, raw=True)
    elif type(detector) is not dict and isinstance(detector, Detector):
        document = detector.get_state()
    else:
        document = detector  # as read back, not yet scored again
    return STATE_FORMAT + _msgpack.encode({**state, "detector": document})


def state_key_fault(key: bytes, state: dict[str, Any]) -> str | None:
    """Why a sensor state read back (``read_state``'s) does not belong under ``key`` (its
    sensor's id), or None: an open episode's ``alert_id`` is the one its sensor and start
    make (``alert_id_for``), as detection opens every episode (t166: one stored under
    another sensor's key, another tool's changelog entry, resolved the alert of the
    sensor it was written for, firing on, when this sensor's readings ended it)."""
    episode = state["episode"]
    if episode is None:
        return None
    made = alert_id_for(key.decode(), float(episode["started_at"]))
    if episode["alert_id"] == made:
        return None
    return (
        f"sensor state: its episode's alert_id {shown_key(episode['alert_id'])!r} is not "
        f"{made!r}, the alert of this sensor's episode started at {episode['started_at']!r}: "
        "a state is stored under its own sensor's id"
    )


def read_state(entry: bytes) -> dict[str, Any]:
    """A changelog entry of a sensor's state, as ``state_bytes`` or (before it) JSON
    wrote it. Raises ``UnreadableEntryError`` (a ValueError) with its reason: bytes that
    do not decode (``not_decodable``), a leading byte no version wrote
    (``unknown_format``), a format byte above ``STATE_FORMAT`` (``newer_format``: a newer
    citybrain's, refused rather than misread), or a document without the envelope's
    fields and types (``bad_shape``)."""
    head = entry[:1]
    if head == STATE_FORMAT:
        try:
            state: Any = msgspec.msgpack.decode(entry[1:])
        except msgspec.DecodeError as exc:
            raise UnreadableEntryError(NOT_DECODABLE, f"sensor state: {exc}") from None
    elif head == b"{":
        try:
            state = orjson.loads(entry)
        except orjson.JSONDecodeError as exc:
            raise UnreadableEntryError(NOT_DECODABLE, f"sensor state: not JSON: {exc}") from None
    elif head and STATE_FORMAT[0] < head[0] < 0x20:
        # Format bytes are small numbers, below any JSON text's first byte.
        raise UnreadableEntryError(
            NEWER_FORMAT,
            f"sensor state: format byte 0x{head[0]:02x}, written by a newer citybrain "
            f"(this one reads 0x{STATE_FORMAT[0]:02x} and JSON)",
        )
    else:
        raise UnreadableEntryError(
            UNKNOWN_FORMAT,
            f"sensor state: leading byte {head!r} is no format (0x{STATE_FORMAT[0]:02x} or JSON)",
        )
    if not isinstance(state, dict):
        raise UnreadableEntryError(
            BAD_SHAPE, f"sensor state is a {type(state).__name__}, not a mapping"
        )
    _check_envelope(state)
    version = state["detector"].get("v")
    if "row" in state["detector"] and type(version) is int and version > TAIL_VERSION:
        # A newer tail detector's row: refused here, where it is counted, rather than
        # thrown away unsaid when the detector is made live (``_admit_sensor``).
        raise UnreadableEntryError(
            NEWER_FORMAT,
            f"sensor state: tail detector state version {version}, written by a newer "
            f"citybrain (this one reads 1 to {TAIL_VERSION})",
        )
    return state


def _check_envelope(state: dict[str, Any]) -> None:
    """The fields ``_admit_sensor`` and ``_episodes`` read, with their types, judged here
    once (and ``last_ts`` and ``last_value`` made floats): one missing or of another type
    failed every later batch of the sensor (bank path: the whole batch), or, in an open
    episode, the batch that closed it. Raises ``UnreadableEntryError`` (``bad_shape``)
    naming the field and its value."""
    for name, types in _ENVELOPE:
        if name not in state:
            if name == "last_index":  # absent in states written before packs
                continue
            raise UnreadableEntryError(BAD_SHAPE, f"sensor state: field {name!r} is missing")
        value = state[name]
        if not isinstance(value, types) or isinstance(value, bool):
            raise UnreadableEntryError(
                BAD_SHAPE,
                f"sensor state: field {name!r} is {_clip(repr(value))}, expected "
                + " or ".join(t.__name__ for t in types),
            )
    last_ts = state["last_ts"]
    if not math.isfinite(last_ts):
        # Every stored state has taken a reading (its event time, finite): an infinite
        # one refused every reading after it, NaN let every redelivery through.
        raise UnreadableEntryError(
            BAD_SHAPE, f"sensor state: field 'last_ts' is {last_ts!r}, expected a finite time"
        )
    if epoch_seconds_fault(last_ts) is not None:
        # t154: finite but no date (1e300): every reading of the sensor was refused as
        # older, its refusal showing 1e300 as a date raised OverflowError, and on the
        # bank path that ended the whole batch, every other sensor's readings with it.
        raise UnreadableEntryError(
            BAD_SHAPE,
            f"sensor state: field 'last_ts' is {last_ts!r}, expected epoch seconds in "
            "the years 0001-9999",
        )
    for name in ("last_offset", "last_index"):
        position = state.get(name, 0)
        if not INT64_MIN <= position <= INT64_MAX:
            # t156: msgpack reads up to 2**64 - 1; the bank path keeps positions in
            # int64 columns, and a redelivered reading (which leaves the stored
            # position as it is) wrote this one back: OverflowError out of the whole
            # batch, every other sensor's readings with it, at every batch holding one.
            raise UnreadableEntryError(
                BAD_SHAPE,
                f"sensor state: field {name!r} is {_clip(repr(position))}, expected a whole "
                "number from -2**63 to 2**63 - 1 (a Kafka offset, a place in a pack)",
            )
    state["last_ts"] = float(last_ts)
    jump_from = state.get("jump_from")
    if jump_from is not None:
        # A pending clock jump's start (``CLOCK_JUMP``): a time before ``last_ts``, as
        # detection writes it; another let readings older than the sensor's last through.
        if (
            type(jump_from) not in (int, float)
            or not math.isfinite(jump_from)
            or epoch_seconds_fault(jump_from) is not None
            or not jump_from < last_ts
        ):
            raise UnreadableEntryError(
                BAD_SHAPE,
                f"sensor state: field 'jump_from' is {_clip(repr(jump_from))}, expected "
                "epoch seconds before its 'last_ts' or null",
            )
        state["jump_from"] = float(jump_from)
    # The value taken at ``last_ts``: absent in states written before it was kept, null
    # where JSON wrote NaN (unknown either way: a reading at that time is a duplicate).
    value = state.get("last_value")
    if value is None:
        state["last_value"] = UNKNOWN_VALUE
    elif type(value) is int or (type(value) is float and not math.isinf(value)):
        state["last_value"] = float(value)
    else:
        # (Before, any other type was taken as unknown at every use, silently.)
        raise UnreadableEntryError(
            BAD_SHAPE,
            f"sensor state: field 'last_value' is {_clip(repr(value))}, expected a finite "
            "number or null",
        )
    if state["episode"] is not None:
        _check_episode(state["episode"])


_T = TypeVar("_T")

# The bank path's position columns (``_Columns``) are int64.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_ENVELOPE: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("detector", (dict,)),
    ("last_ts", (int, float)),
    ("last_offset", (int,)),
    ("last_index", (int,)),
    ("episode", (dict, type(None))),
)

# An open episode's fields (``_episodes``), each a finite number but ``alert_id`` (text)
# and ``quiet`` (a count of readings).
_EPISODE_NUMBERS = ("started_at", "last_anomalous_at", "peak_score", "peak_value")
_EPISODE_TIMES = ("started_at", "last_anomalous_at")


def _check_episode(episode: dict[str, Any]) -> None:
    """An open episode as ``_episodes`` reads it: one of another shape failed its
    sensor's batches (a ``detector_error`` for every reading) only once a reading was
    anomalous or quiet, and for good."""
    alert_id = episode.get("alert_id")
    if not isinstance(alert_id, str) or not alert_id:
        raise UnreadableEntryError(
            BAD_SHAPE,
            f"sensor state: episode field 'alert_id' is {_clip(repr(alert_id))}, expected "
            "a non-empty string",
        )
    if len(alert_id) > MAX_ID_CHARS:
        # t156: the episode's resolution carries it to the corroboration and alerts
        # topics, whose doors refuse an alert id past MAX_ID_CHARS (``alert_in_grid``);
        # one of a million characters made the alert larger than Kafka takes, and the
        # send failed the whole readings batch, at every batch that resolved it. This
        # worker writes ``al-`` and 16 hex digits (``alert_id_for``).
        raise UnreadableEntryError(
            BAD_SHAPE,
            f"sensor state: episode field 'alert_id' is {_clip(repr(alert_id))} "
            f"({len(alert_id):,} characters), expected at most {MAX_ID_CHARS}",
        )
    for name in _EPISODE_NUMBERS:
        value: Any = episode.get(name)
        if type(value) not in (int, float) or not math.isfinite(value):
            raise UnreadableEntryError(
                BAD_SHAPE,
                f"sensor state: episode field {name!r} is {_clip(repr(value))}, expected a "
                "finite number",
            )
        if name == "peak_score" and not 0.0 <= value <= 1.0:
            # t163: a detector's score. Its resolution carries it to the corroboration
            # and alerts topics, whose doors refuse a score outside [0, 1] (bad_alert):
            # the resolution was dead-lettered, and its run never resolved.
            raise UnreadableEntryError(
                BAD_SHAPE,
                f"sensor state: episode field 'peak_score' is {_clip(repr(value))}, "
                "expected a score from 0 to 1",
            )
        if name in _EPISODE_TIMES and epoch_seconds_fault(value) is not None:
            # t154: written as a date when the episode's alert goes out (OverflowError).
            raise UnreadableEntryError(
                BAD_SHAPE,
                f"sensor state: episode field {name!r} is {_clip(repr(value))}, expected "
                "epoch seconds in the years 0001-9999",
            )
    quiet = episode.get("quiet")
    if type(quiet) is not int or not 0 <= quiet <= MAX_COUNT:
        # Bounded as every stored count (MAX_COUNT): msgpack writes 64 bits at most.
        raise UnreadableEntryError(
            BAD_SHAPE,
            f"sensor state: episode field 'quiet' is {_clip(repr(quiet))}, expected a "
            "whole number from 0 to 2**53 - 1",
        )


def _far_glitches(
    items: Sequence[Incoming],
    scores: Sequence[float],
    rarity: Sequence[float] | None,
    far: Sequence[bool] | None = None,
) -> list[bool]:
    """Which of ``items`` (scored ``scores``) were far glitches, no measurement: the
    detector's own judgement where it was taken (``far``: ``Detector.far_one`` row by
    row, ``score_far_many``: ``detectors.base.far_glitch`` in the series' scale, for
    every detector), else the tail detector's where its ``rarity`` is known
    (``far_glitch_rows``), else a reading beyond ``ABSURD_ABOVE`` (about 6e100: a
    sentinel such as 1e308 or DBL_MAX whatever the series)."""
    if far is not None:
        return list(far)
    if rarity is not None:
        return list(far_glitch_rows(np.asarray(scores), np.asarray(rarity)).tolist())
    return [abs(item.reading.value) > ABSURD_ABOVE for item in items]


def _check_scores(scores: list[float]) -> None:
    """Raise ``DetectorError`` naming the first of ``scores`` that is not a finite number
    in [0, 1] (NaN fails both comparisons)."""
    for i, score in enumerate(scores):
        if not 0.0 <= score <= 1.0:
            raise DetectorError(f"score {score!r} of reading {i} is not in [0, 1]")


def _clip(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def state_document(state: Mapping[str, Any]) -> dict[str, Any]:
    """A sensor's state as JSON-compatible data (its changelog entry): the live
    detector it holds replaced by the detector's own state."""
    if type(state) is BankState:
        state = state.as_dict()
    assert isinstance(state, dict)
    detector = state["detector"]
    # The common case first: ``isinstance`` against the Detector ABC costs a
    # ``__instancecheck__`` call per sensor and commit.
    if type(detector) is not dict and isinstance(detector, Detector):
        return {**state, "detector": detector.get_state()}
    return state


_STATE_KEYS = ("detector", "last_ts", "last_value", "last_offset", "last_index", "episode")


def _jump_entry(jump_from: float) -> dict[str, float]:
    """A state's ``jump_from`` entry from its column's number (0: none, no entry)."""
    return {"jump_from": jump_from} if jump_from else {}


# A state written before ``last_value`` was kept: the value taken at ``last_ts`` is not
# known, and a reading at that time is dropped as a duplicate whatever its value.
UNKNOWN_VALUE = float("nan")


class _Columns:
    """The bank path's per-sensor bookkeeping as columns indexed by the sensor's bank
    slot: last event time and the value taken then, last Kafka offset and place in its
    pack, whether an episode
    is open, and ``holder``, the ``id`` of the ``BankState`` that owns the slot (0:
    none). Grown by doubling; a slot's entries are meaningful only while its
    ``BankState`` lives (a released slot keeps stale numbers until the next owner's
    ``BankState`` writes its own)."""

    def __init__(self) -> None:
        self.size = 0
        self.last_ts = np.zeros(0, np.float64)
        self.last_value = np.zeros(0, np.float64)
        self.last_offset = np.zeros(0, np.int64)
        self.last_index = np.zeros(0, np.int64)
        self.in_episode = np.zeros(0, np.bool_)
        self.holder = np.zeros(0, np.int64)
        # The time a sensor's clock jumped from, while no later reading has confirmed the
        # jump (``CLOCK_JUMP``); 0: none (no reading is taken from before 1990). Such a
        # sensor takes the per-sensor rules.
        self.jump_from = np.zeros(0, np.float64)
        # The sensor's kind and grid cell as codes into ``kinds`` and ``cells`` (set
        # whenever its state is written the per-sensor way), for counting a batch's
        # quiet readings by kind and cell with ``np.bincount``.
        self.kind_of = np.zeros(0, np.int64)
        self.cell_of = np.zeros(0, np.int64)
        self.kinds: list[str] = []
        self.cells: list[str] = []
        self._codes: dict[str, int] = {}  # kind or cell -> its code (separate spaces)
        self._cell_codes: dict[str, int] = {}

    def fit(self, rows: int) -> None:
        """Room for slots ``0 .. rows - 1``."""
        if rows <= self.size:
            return
        size = max(rows, 2 * self.size, 1024)
        for name in (
            "last_ts",
            "last_value",
            "last_offset",
            "last_index",
            "in_episode",
            "holder",
            "jump_from",
            "kind_of",
            "cell_of",
        ):
            old = getattr(self, name)
            grown = np.zeros(size, old.dtype)
            grown[: self.size] = old[: self.size]
            setattr(self, name, grown)
        self.size = size

    def kind_code(self, kind: str) -> int:
        code = self._codes.get(kind)
        if code is None:
            code = self._codes[kind] = len(self.kinds)
            self.kinds.append(kind)
        return code

    def cell_code(self, cell: str) -> int:
        code = self._cell_codes.get(cell)
        if code is None:
            code = self._cell_codes[cell] = len(self.cells)
            self.cells.append(cell)
        return code

    def write(
        self,
        slots: list[int],
        owners: list[int],
        last_ts: list[float],
        last_value: list[float],
        last_offset: list[int],
        last_index: list[int],
        in_episode: list[bool],
        kinds: list[int],
        cells: list[int],
        jump_from: list[float] | None = None,
    ) -> None:
        """Write many sensors' bookkeeping at once (one array assignment per column:
        a numpy scalar assignment per sensor and column was most of a pack's cost);
        ``jump_from``: each one's pending clock jump's time, 0 for none (None: none)."""
        if not slots:
            return
        self.fit(max(slots) + 1)
        at = np.array(slots, np.int64)
        self.holder[at] = owners
        self.jump_from[at] = 0.0 if jump_from is None else jump_from
        self.last_ts[at] = last_ts
        self.last_value[at] = last_value
        self.last_offset[at] = last_offset
        self.last_index[at] = last_index
        self.in_episode[at] = in_episode
        self.kind_of[at] = kinds
        self.cell_of[at] = cells

    @staticmethod
    def count(codes: np.ndarray, names: list[str], slots: np.ndarray, into: dict[str, int]) -> None:
        """Add to ``into`` (name -> readings) one reading for each of ``slots``, by the
        name its code in ``codes`` stands for."""
        tally = np.bincount(codes[slots], minlength=len(names))
        for code in np.flatnonzero(tally).tolist():
            name = names[code]
            into[name] = into.get(name, 0) + int(tally[code])


class _Multi:
    """A batch's live sensors in no episode with several readings each (a pack, a
    burst), whose readings are all in the delivery rules' common case -- positions
    increasing, the new ones later in event time than the one before -- admitted as
    arrays: the readings at or before the stored position are redeliveries, the rest are
    accepted. Readings are grouped by sensor (``at``: batch places, each sensor's in
    batch order); ``fresh`` marks the accepted ones, a suffix of each group."""

    def __init__(
        self,
        at: np.ndarray,
        slots: np.ndarray,
        offsets: np.ndarray,
        index: np.ndarray,
        times: np.ndarray,
        values: np.ndarray,
        lo: np.ndarray,
        li: np.ndarray,
        lt: np.ndarray,
        lv: np.ndarray,
        fresh: np.ndarray,
        starts: np.ndarray,
    ) -> None:
        self.at, self.slots, self.times, self.values = at, slots, times, values
        self.starts = starts
        self.groups = starts.size
        ends = np.append(starts[1:], at.size)
        self.gid = np.repeat(np.arange(self.groups), ends - starts)
        self.first = at[starts]  # each sensor's first place in the batch
        self.taken = np.flatnonzero(fresh)
        self.n_taken = np.add.reduceat(fresh.astype(np.int64), starts)
        self.taken_start = np.cumsum(self.n_taken) - self.n_taken
        self.redelivered = at.size - self.taken.size
        last = ends - 1
        newer = fresh[last]
        self.new_lo = np.where(newer, offsets[last], lo[last])
        self.new_li = np.where(newer, index[last], li[last])
        self.new_lt = np.where(newer, times[last], lt[last])
        self.new_lv = np.where(newer, values[last], lv[last])
        self.flagged: np.ndarray | None = None

    def score_range(self, g: int, offset: int) -> tuple[int, int]:
        """Group ``g``'s accepted readings' place among the batch's scores."""
        start = offset + int(self.taken_start[g])
        return start, start + int(self.n_taken[g])

    def as_dict(
        self, g: int, batch: Sequence[Incoming], got: list[Any]
    ) -> tuple[int, dict[str, Any], list[Incoming]]:
        """Group ``g``'s first place, its new state as the per-sensor path's dict, and
        its accepted readings."""
        j = int(self.first[g])
        start = int(self.taken_start[g])
        places = self.at[self.taken[start : start + int(self.n_taken[g])]].tolist()
        state = {
            "detector": got[j].detector,
            "last_ts": float(self.new_lt[g]),
            "last_value": float(self.new_lv[g]),
            "last_offset": int(self.new_lo[g]),
            "last_index": int(self.new_li[g]),
            "episode": None,
        }
        return j, state, [batch[p] for p in places]

    def record(
        self,
        cols: _Columns,
        scores: np.ndarray,
        rarity: np.ndarray,
        flags: np.ndarray,
        mark_at: float | None,
        follow: set[str],
        result: BatchResult,
        sids: list[str],
        batch: Admitted,
    ) -> list[tuple[int, int, int, Any]]:
        """Count the quiet groups' accepted readings (``scores``, ``rarity`` (scores
        before the novelty gate) and ``flags``: theirs, in ``taken`` order) and report
        followed sensors' last readings; return the work left in Python: marks (first
        place, place, -2, rarity) and flagged groups (first place, first place, -3,
        group)."""
        gid_taken = self.gid[self.taken]
        flagged = np.zeros(self.groups, np.bool_)
        if flags.any():
            flagged[gid_taken[flags]] = True
        self.flagged = flagged
        quiet = ~flagged[gid_taken]
        n_quiet = int(np.count_nonzero(quiet))
        work: list[tuple[int, int, int, Any]] = []
        if n_quiet:
            result.scored += n_quiet
            quiet_slots = self.slots[self.taken][quiet]
            cols.count(cols.kind_of, cols.kinds, quiet_slots, result.scored_by_kind)
            cols.count(cols.cell_of, cols.cells, quiet_slots, result.scored_by_cell)
            if mark_at is not None:
                for k in np.flatnonzero(quiet & (rarity >= mark_at)).tolist():
                    e = int(self.taken[k])
                    first = int(self.first[self.gid[e]])
                    work.append((first, int(self.at[e]), -2, float(rarity[k])))
            if follow:
                for g in range(self.groups):
                    j = int(self.first[g])
                    n = int(self.n_taken[g])
                    if n and not flagged[g] and sids[j] in follow:
                        k = int(self.taken_start[g]) + n - 1
                        r = batch.reading(int(self.at[self.taken[k]]))
                        last = (r.kind, r.grid_cell, n, r.value, float(scores[k]), False)
                        result.last[sids[j]] = last
        for g in np.flatnonzero(flagged).tolist():
            j = int(self.first[g])
            work.append((j, j, -3, g))
        return work

    def write(
        self,
        cols: _Columns,
        flagged: np.ndarray | None,
        sids: list[str],
        got: list[Any],
        new_states: dict[str, Any],
    ) -> None:
        """The groups' bookkeeping into the columns and their states (updated in place)
        into ``new_states``; a flagged group's is left to ``_write_back``."""
        groups = np.arange(self.groups) if flagged is None else np.flatnonzero(~flagged)
        if not groups.size:
            return
        at_slots = self.slots[self.starts[groups]]
        cols.last_ts[at_slots] = self.new_lt[groups]
        cols.last_value[at_slots] = self.new_lv[groups]
        cols.last_offset[at_slots] = self.new_lo[groups]
        cols.last_index[at_slots] = self.new_li[groups]
        places = self.first[groups].tolist()
        new_states.update(
            zip(map(sids.__getitem__, places), map(got.__getitem__, places), strict=True)
        )


class BankState(Mapping[str, Any]):
    """A sensor's live state on the bank path, as the worker's table holds it: its
    ``TailSlot`` and open episode here, its last event time and Kafka position in the
    detection's columns at its slot (so a batch admits most sensors with array
    compares, and writes no dict per sensor). Reads as the state dict the per-sensor
    path keeps (``detector``, ``last_ts``, ``last_value``, ``last_offset``,
    ``last_index``, ``episode``), and ``state_bytes`` writes the same changelog entry for
    it; a state read back from the changelog is a dict again until its sensor's next
    batch.

    Updated in place by the detection that made it, which recognises it by identity
    (its slot's ``holder``): pass back the state a batch returned (the table does), not
    an older one."""

    __slots__ = ("_columns", "detector", "episode", "slot")

    def __init__(
        self,
        columns: _Columns,
        detector: TailSlot,
        last_ts: float,
        last_offset: int,
        last_index: int,
        episode: dict[str, Any] | None,
        last_value: float = UNKNOWN_VALUE,
    ) -> None:
        self._columns = columns
        self.detector = detector
        self.slot = detector.slot
        self.put(last_ts, last_offset, last_index, episode, last_value)

    @classmethod
    def bare(
        cls, columns: _Columns, detector: TailSlot, episode: dict[str, Any] | None
    ) -> BankState:
        """A state whose bookkeeping the caller writes into ``columns`` itself
        (``_Columns.write``, with this object's ``id`` as the slot's holder)."""
        state = cls.__new__(cls)
        state._columns = columns
        state.detector = detector
        state.slot = detector.slot
        state.episode = episode
        return state

    def put(
        self,
        last_ts: float,
        last_offset: int,
        last_index: int,
        episode: dict[str, Any] | None,
        last_value: float = UNKNOWN_VALUE,
        jump_from: float | None = None,
    ) -> None:
        """Write the sensor's bookkeeping (and own its slot's columns)."""
        columns, slot = self._columns, self.slot
        columns.fit(slot + 1)
        columns.holder[slot] = id(self)
        columns.jump_from[slot] = jump_from or 0.0
        columns.last_ts[slot] = last_ts
        columns.last_value[slot] = last_value
        columns.last_offset[slot] = last_offset
        columns.last_index[slot] = last_index
        columns.in_episode[slot] = episode is not None
        self.episode = episode

    def as_dict(self) -> dict[str, Any]:
        """The state as the per-sensor path's dict (the live detector in it)."""
        columns, slot = self._columns, self.slot
        return {
            "detector": self.detector,
            "last_ts": columns.last_ts.item(slot),
            "last_value": columns.last_value.item(slot),
            "last_offset": columns.last_offset.item(slot),
            "last_index": columns.last_index.item(slot),
            "episode": self.episode,
            **_jump_entry(columns.jump_from.item(slot)),
        }

    def __getitem__(self, key: str) -> Any:
        if key not in _STATE_KEYS and key != "jump_from":
            raise KeyError(key)
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(_STATE_KEYS) + bool(self._columns.jump_from.item(self.slot))

    def __repr__(self) -> str:
        return f"BankState({self.as_dict()!r})"


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
        # The bank path's bookkeeping columns (``BankState``).
        self._columns = _Columns()
        # Sensors whose last reading ``BatchResult.last`` reports even when they are in
        # no episode (the worker's watched and exported sensors: streams/ingest.py).
        self.follow: set[str] = set()
        # The detectors this batch made live from a changelog document, by id (held, so
        # no id is reused within the batch): the first use of each is its read-back
        # check (``_score_record``).
        self._restored: dict[int, Detector] = {}
        # Each kind's clock: the newest event time taken from its sensors by the end of
        # the last batch, a pending clock jump's not counted (epoch s; a kind absent:
        # none seen yet). A sensor's first reading more than ``CLOCK_JUMP`` past it is a
        # clock jump from no history (``NO_HISTORY``). Both paths read it as it was
        # before the batch (the per-sensor path raises it after each batch, the bank path
        # reads its columns), so they agree whatever the order within a batch. It only
        # rises. A kind with no clock yet (the worker's first readings of it) has nothing
        # to judge a first reading against, so every first reading of it is pending
        # (``NO_CLOCK``) until its sensor's next reading confirms it and so gives the
        # kind a clock: a fresh worker's first reading a year ahead set its sensor's
        # clock, every later real reading of it ``out_of_order`` (t206).
        self.kind_clock: dict[str, float] = {}

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

    def reregister(self, moved: Iterable[tuple[Any, str, str]]) -> int:
        """Count each (stored state, kind, grid cell) of ``moved`` -- sensors a grid
        reload registered under another kind or cell -- under its new ones from here
        on: the bank path counts a live sensor's quiet readings by the codes its slot
        was last written with (``_Columns``), not by its readings. Only this
        detection's own live states change (a dict read back takes its readings' kind
        and cell at its next batch anyway); returns how many. t156: a sensor moved to
        another cell by a reload that removed its old one was counted under the old
        cell, whose labels the batch's grid lacks (GridError): every batch holding one
        of its readings failed whole."""
        cols = self._columns
        n = 0
        for state, kind, cell in moved:
            if type(state) is not BankState or state._columns is not cols:
                continue
            slot = state.slot
            if slot >= cols.size or cols.holder[slot] != id(state):
                continue
            cols.kind_of[slot] = cols.kind_code(kind)
            cols.cell_of[slot] = cols.cell_code(cell)
            n += 1
        return n

    def process(self, batch: Sequence[Incoming], states: Mapping[str, Any]) -> BatchResult:
        """A batch of admitted readings (in offset order) and the stored states of its
        sensors (sensor id -> the state a previous batch returned, a dict read back
        from the changelog, or None) -> alerts, refusals, counts and every touched
        sensor's new state (``BatchResult.states``: a ``BankState`` on the bank path,
        else a dict). On the bank path a stored ``BankState`` is updated in place, and a
        sensor's quiet readings are counted under the kind and grid cell its state was
        last written with the per-sensor way (its first reading here, or one after a
        restart): a sensor's kind and cell do not change (``BatchAdmission`` admits
        only readings with the sensor's registered ones)."""
        result = BatchResult()
        self._restored.clear()
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
            clock = self.kind_clock
            for sensor_id, items in by_sensor.items():
                state = result.states.get(sensor_id)
                if state is None or state.get("jump_from") is not None:
                    continue
                kind = items[0].reading.kind
                if state["last_ts"] > clock.get(kind, -math.inf):
                    clock[kind] = state["last_ts"]
            return result
        self._process_bank(self.bank, batch, states, result)
        self._raise_kind_clocks(result.states)
        return result

    def _process_bank(
        self,
        bank: TailBank,
        incoming: Sequence[Incoming],
        states: Mapping[str, Any],
        result: BatchResult,
    ) -> BatchResult:
        """``process`` over the shared bank: every sensor's accepted readings scored in
        one call, in order.

        The common case at city scale -- a sensor with one reading in the batch, a live
        ``BankState`` of this detection, no open episode -- is admitted with array
        compares over the batch's columns against the bookkeeping columns, and, if its
        reading is not flagged, counted in bulk with no per-sensor dict, tuple or call.
        A sensor with no state yet is first born live with no history (``_born``) and
        is admitted as the live ones are (several readings of one sensor, ``_Multi``,
        likewise as arrays). Every other sensor (an open episode, a flagged reading, a
        state read back from the changelog) goes through the per-sensor rules
        (``_admit_sensor``, ``_record`` under ``_isolated``) with a state dict, written
        back into a ``BankState`` once its share of the batch has succeeded. Alerts,
        refusals and marks come out in the order of each sensor's first reading in the
        batch, as the per-sensor path gives them (tests/unit/streams/test_detection.py
        compares the two paths field by field)."""
        n = len(incoming)
        if not n:
            return result
        cols = self._columns
        cols.fit(bank.used)
        batch = Admitted.of(incoming)  # (the worker's admission hands its columns)
        reading = batch.reading
        sids = batch.sensor_ids
        got: list[Any] = list(map(states.get, sids))
        # Sensors seen for the first time, born with no history. By identity: ``None in
        # got`` compared each ``BankState`` (a Mapping) with ``==``, 9 % of a batch.
        if any(map(is_, got, repeat(None))):
            self._born(bank, cols, batch, sids, got)
        try:  # every sensor with a live state (most batches): one C pass
            slots = np.fromiter(map(_SLOT, got), np.int64, n)
        except AttributeError:  # a new sensor, a state read back from the changelog
            slots = np.fromiter(map(getattr, got, repeat("slot", n), repeat(-1, n)), np.int64, n)
        offsets = batch.offsets
        safe = np.clip(slots, 0, cols.size - 1)
        # This detection's own live state: its slot's holder is that very object (a
        # state read back from the changelog, or none yet, has no slot).
        known = (slots >= 0) & (cols.holder[safe] == np.fromiter(map(id, got), np.int64, n))
        per_slot = np.bincount(safe[known], minlength=cols.size)
        # A sensor with a clock jump pending or a reading jumping (``CLOCK_JUMP``) past
        # its last takes the per-sensor rules, every reading of it in the batch.
        lt_known = cols.last_ts[safe]
        odd = cols.jump_from != 0.0
        odd[safe[known & (batch.ts - lt_known > CLOCK_JUMP) & (lt_known > -np.inf)]] = True
        # ... and so does a sensor with no history whose reading is a jump past its
        # kind's clock (``NO_HISTORY``).
        first = known & (lt_known == -np.inf)
        if first.any():
            clocks = self._kind_clocks(cols)[cols.kind_of[safe]]
            ahead = batch.ts - clocks > CLOCK_JUMP
            # A kind with no clock yet makes every first reading such a jump, confirmed
            # by its sensor's next: several readings of a sensor here, in order and each
            # within a day of the one before (what ``_multi`` takes, else the per-sensor
            # rules), end confirmed as the per-sensor path leaves them, so they stay in
            # the common case (a fresh worker's packs, t106's ceiling).
            ahead &= (clocks > -np.inf) | (per_slot[safe] == 1)
            odd[safe[first & ahead]] = True
        quiet_known = known & ~cols.in_episode[safe] & ~odd[safe]
        fast = quiet_known & (offsets >= 0) & (per_slot[safe] == 1)
        f = np.flatnonzero(fast)
        new_states = result.states
        multi = self._multi(batch, slots, safe, offsets, quiet_known, per_slot)
        in_multi = np.zeros(n, np.bool_)
        if multi is not None:
            in_multi[multi.at] = True
            result.redelivered += multi.redelivered
        # Refusals of the admission, with the place of their sensor's first reading:
        # sorted by it only if both paths refused something.
        fast_refused: list[tuple[int, tuple[Incoming, str, str]]] = []
        slow_refused: list[tuple[int, tuple[Incoming, str, str]]] = []
        refused_from = len(result.rejected)

        # -- the common case, as arrays ------------------------------------------------
        # The fast readings' own fields only, from the batch's columns.
        n_fast = f.size
        ft, fv, fi = batch.ts[f], batch.values[f], batch.in_pack[f]
        fs = slots[f]
        fo = offsets[f]
        lo, li, lt = cols.last_offset[fs], cols.last_index[fs], cols.last_ts[fs]
        lv = cols.last_value[fs]
        # After the stored position, or newer than the stored event time (a log reset);
        # else a redelivery.
        fresh = (fo > lo) | ((fo == lo) & (fi > li)) | (ft > lt)
        accept = fresh & (ft > lt)
        n_fresh = int(np.count_nonzero(fresh))
        n_accept = int(np.count_nonzero(accept))
        result.redelivered += f.size - n_fresh
        if n_fresh != n_accept:
            at_last = fresh & (ft == lt)
            # (an unknown last value, NaN, compares unequal and unordered alike)
            clash = at_last & ((fv < lv) | (fv > lv))
            result.duplicates += int(np.count_nonzero(at_last & ~clash))
            for k in np.flatnonzero(clash).tolist():
                j = int(f[k])
                why = _conflicting(float(fv[k]), float(lv[k]), float(ft[k]))
                fast_refused.append((j, (batch[j], "conflicting_reading", why)))
            for k in np.flatnonzero(fresh & (ft < lt)).tolist():
                j = int(f[k])
                why = _older(float(ft[k]), float(lt[k]))
                fast_refused.append((j, (batch[j], "out_of_order", why)))
        new_lo = np.where(fresh, fo, lo)
        new_li = np.where(fresh, fi, li)
        new_lt = np.where(accept, ft, lt)
        new_lv = np.where(accept, fv, lv)
        fa = f[accept]  # batch places of the fast path's accepted readings, in order

        # -- every other sensor, one by one ---------------------------------------------
        # (place of its first reading, sensor id, its readings) in order of those places
        groups: list[tuple[int, str, list[Incoming]]] = []
        if n_fast < n:
            slow = np.flatnonzero(~fast & ~in_multi)
            live = slow[known[slow]]
            if live.size:
                # Live sensors' readings grouped by slot (a stable sort keeps each
                # sensor's in batch order): no Python per reading.
                at_slot = live[np.argsort(slots[live], kind="stable")]
                by_slot = slots[at_slot]
                starts = np.flatnonzero(np.concatenate(([True], by_slot[1:] != by_slot[:-1])))
                bounds = [*starts.tolist(), at_slot.size]
                grouped = batch.many(at_slot.tolist())
                for g, j in enumerate(at_slot[starts].tolist()):
                    groups.append((j, sids[j], grouped[bounds[g] : bounds[g + 1]]))
            others: dict[str, tuple[int, str, list[Incoming]]] = {}
            new = slow[~known[slow]].tolist()  # states read back (new ones are born live)
            for j, item in zip(new, batch.many(new), strict=True):
                sid = sids[j]
                group = others.get(sid)
                if group is None:
                    others[sid] = (j, sid, [item])
                else:
                    group[2].append(item)
            if others:
                groups.extend(others.values())
            groups.sort(key=_first)
        # (first place, state, accepted readings) of the per-sensor path's sensors
        admitted: list[tuple[int, int, int, Any]] = []
        # (sensor id, stored state) of the sensors whose state dict is written back
        to_write: list[tuple[str, Any, Reading]] = []
        slow_slots: list[int] = []
        slow_values: list[float] = []
        slow_times: list[float] = []
        rejected = result.rejected
        for j, sid, items in groups:
            stored = got[j]
            before = len(rejected)
            # Under ``_isolated``, as the per-sensor path admits (``process``): a stored
            # state that raises while it is made live or admitted costs its own sensor's
            # readings (t156: unguarded here, it failed the whole batch).
            taken = self._isolated(
                sid, items, result, partial(self._admit_stored, bank, stored, items, result)
            )
            if len(rejected) > before:
                slow_refused.extend((j, entry) for entry in rejected[before:])
            if taken is None:
                continue
            state, accepted = taken
            new_states[sid] = state
            to_write.append((sid, stored, items[-1].reading))
            if accepted:
                slot = state["detector"].slot
                admitted.append((j, j, -1, (state, accepted)))
                for one in accepted:
                    slow_slots.append(slot)
                    slow_values.append(one.reading.value)
                    slow_times.append(one.reading.ts)
        # Refusals by each sensor's first place: the per-sensor path's order, which the
        # refusals made while scoring (a detector's fault) join at the end (``_in_order``).
        refused = sorted(fast_refused + slow_refused, key=_first)
        if fast_refused:
            rejected[refused_from:] = [entry for _, entry in refused]
        late: list[tuple[int, tuple[Incoming, str, str]]] = []

        def fast_state(k: int) -> dict[str, Any]:
            """The k-th fast sensor's new state as the per-sensor path's dict."""
            stored = got[int(f[k])]
            return {
                "detector": stored.detector,
                "last_ts": float(new_lt[k]),
                "last_value": float(new_lv[k]),
                "last_offset": int(new_lo[k]),
                "last_index": int(new_li[k]),
                "episode": None,
            }

        k_fast = fa.size
        k_multi = 0 if multi is None else multi.taken.size
        if not k_fast and not k_multi and not admitted:
            self._write_fast(
                cols, f, fs, new_lt, new_lv, new_lo, new_li, None, sids, got, new_states
            )
            if multi is not None:
                multi.write(cols, None, sids, got, new_states)
            self._write_back(bank, cols, to_write, new_states)
            return result
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        # Each reading's score before the novelty gate: the anomaly marks a neighbour's
        # corroboration reads (a station still high from its first alert is anomalous).
        rarity = np.empty(k_fast + k_multi + len(slow_values))
        try:
            scores = bank.score_learn(
                np.concatenate(
                    (
                        fs[accept],
                        empty_i if multi is None else multi.slots[multi.taken],
                        np.array(slow_slots, np.int64),
                    )
                ),
                check_values(
                    np.concatenate(
                        (
                            fv[accept],
                            empty_f if multi is None else multi.values[multi.taken],
                            slow_values,
                        )
                    )
                ),
                np.concatenate(
                    (
                        ft[accept],
                        empty_f if multi is None else multi.times[multi.taken],
                        np.array(slow_times, np.float64),
                    )
                ),
                rarity=rarity,
            )
        except Exception:
            # The bank refused the batch as a whole: score sensor by sensor, so a fault
            # costs only the readings of the sensor that caused it. Every fast sensor
            # takes the per-sensor path's state dict from here.
            fast_taken = [(int(f[k]), fast_state(k)) for k in range(f.size)]
            for j, state in fast_taken:
                new_states[sids[j]] = state
                to_write.append((sids[j], got[j], reading(j)))
            accepted_at = set(fa.tolist())
            everyone = [
                (j, j, -1, (state, [batch[j]])) for j, state in fast_taken if j in accepted_at
            ]
            if multi is not None:
                for g in range(multi.groups):
                    j, state, taken_items = multi.as_dict(g, batch, got)
                    new_states[sids[j]] = state
                    to_write.append((sids[j], got[j], reading(j)))
                    if taken_items:
                        everyone.append((j, j, -1, (state, taken_items)))
            for j, _, _, (state, group) in sorted(everyone + admitted, key=_first):
                before = len(rejected)
                self._isolated(
                    group[0].reading.sensor_id,
                    group,
                    result,
                    partial(self._score_record, state, group, result),
                )
                late.extend((j, entry) for entry in rejected[before:])
            _in_order(rejected, refused_from, refused, late)
            self._write_back(bank, cols, to_write, new_states)
            return result
        flags = self.threshold.flags(scores)
        fast_scores = scores[:k_fast]
        fast_flags = flags[:k_fast]
        multi_scores = scores[k_fast : k_fast + k_multi]
        multi_flags = flags[k_fast : k_fast + k_multi]
        fast_rarity = rarity[:k_fast]
        quiet = ~fast_flags
        # Flagged fast sensors go the per-sensor way (``_record`` may open an episode):
        # their bookkeeping columns are written back only once that has succeeded.
        flagged_f = np.zeros(f.size, bool)
        flagged_f[np.flatnonzero(accept)[fast_flags]] = True
        self._write_fast(
            cols, f, fs, new_lt, new_lv, new_lo, new_li, flagged_f, sids, got, new_states
        )
        quiet_at = fa[quiet].tolist()
        n_quiet = len(quiet_at)
        if n_quiet:
            result.scored += n_quiet
            # Counted by the kind and cell codes of the sensors' slots (``_Columns``).
            quiet_slots = fs[accept][quiet]
            cols.count(cols.kind_of, cols.kinds, quiet_slots, result.scored_by_kind)
            cols.count(cols.cell_of, cols.cells, quiet_slots, result.scored_by_cell)
            if self.follow:
                quiet_scores = fast_scores[quiet].tolist()
                place = {sids[j]: k for k, j in enumerate(quiet_at)}
                for sid in self.follow.intersection(place):
                    k = place[sid]
                    r = reading(quiet_at[k])
                    result.last[sid] = (r.kind, r.grid_cell, 1, r.value, quiet_scores[k], False)
        # What is left takes Python per sensor, in the order of each sensor's first
        # reading: (first place, place, flagged fast k / -1 per-sensor path / -2 mark /
        # -3 flagged multi, its entry)
        work: list[tuple[int, int, int, Any]] = []
        mark_at = self.mark_at
        if mark_at is not None and n_quiet:
            for k in np.flatnonzero(quiet & (fast_rarity >= mark_at)).tolist():
                j = int(fa[k])
                work.append((j, j, -2, float(fast_rarity[k])))
        for k in np.flatnonzero(fast_flags).tolist():
            j = int(fa[k])
            work.append((j, j, k, None))
        if multi is not None:
            work.extend(
                multi.record(
                    cols,
                    multi_scores,
                    rarity[k_fast : k_fast + k_multi],
                    multi_flags,
                    mark_at,
                    self.follow,
                    result,
                    sids,
                    batch,
                )
            )
            multi.write(cols, multi.flagged, sids, got, new_states)
        if work:
            work.sort(key=_first_two)
            if admitted:
                work = list(merge(work, admitted, key=_first_two))
        else:
            work = admitted
        all_scores = scores.tolist()
        all_rarity = rarity.tolist()
        all_flags = flags.tolist() if flags.any() else None
        start = k_fast + k_multi
        for _, j, k, entry in work:
            before = len(rejected)
            if k == -3:  # a multi-reading sensor with a flagged reading
                assert multi is not None
                sid = sids[j]
                state, taken_items = multi.as_dict(entry, batch, got)[1:]
                new_states[sid] = state
                to_write.append((sid, got[j], reading(j)))
                lo_, hi_ = multi.score_range(entry, k_fast)
                self._isolated(
                    sid,
                    taken_items,
                    result,
                    partial(
                        self._record,
                        state,
                        taken_items,
                        all_scores[lo_:hi_],
                        [False] * (hi_ - lo_) if all_flags is None else all_flags[lo_:hi_],
                        result,
                        all_rarity[lo_:hi_],
                    ),
                )
            elif k == -2:  # a quiet fast reading scoring at least mark_at
                r = reading(j)
                result.marks.append((r.sensor_id, r.ts, entry, r.value))
            elif k >= 0:  # a flagged fast reading
                state = fast_state(int(np.searchsorted(f, j)))
                sid = sids[j]
                new_states[sid] = state
                to_write.append((sid, got[j], reading(j)))
                score, rare = all_scores[k], all_rarity[k]
                self._isolated(
                    sid,
                    [batch[j]],
                    result,
                    partial(self._record, state, [batch[j]], [score], [True], result, [rare]),
                )
            else:
                state, taken = entry
                stop = start + len(taken)
                self._record_slow(
                    state, taken, all_scores, all_rarity, all_flags, start, stop, result
                )
                start = stop
            if len(rejected) > before:  # (a detector's fault: the sensor's at its first place)
                late.extend((j, entry) for entry in rejected[before:])
        _in_order(rejected, refused_from, refused, late)
        self._write_back(bank, cols, to_write, new_states)
        return result

    def _kind_clocks(self, cols: _Columns) -> np.ndarray:
        """``kind_clock`` as an array by kind code (``-inf``: no clock yet, so every first
        reading is past it: a jump from no history, t206). O(kinds): the clock is raised
        at each batch's end by its own sensors (``_raise_kind_clocks``, t208)."""
        clock = self.kind_clock
        return np.array([clock.get(kind, -math.inf) for kind in cols.kinds], np.float64)

    def _raise_kind_clocks(self, states: Mapping[str, Any]) -> None:
        """Raise ``kind_clock`` to the times of the batch's sensors (``states``, the bank
        path's ``BatchResult.states``) as their columns now hold them, a pending clock
        jump's not counted: O(batch), as the per-sensor path raises it. Before t208 the
        bank path scanned every live sensor's columns at each batch holding a sensor's
        first reading (O(bank): 100,000 sensors read for one new one); a sensor's time
        is on the columns only once a batch wrote it, so the clock is the same. (A
        sensor a grid reload moved to another kind raises its new kind's clock at its
        next reading, not at the next batch's scan.)"""
        cols = self._columns
        slots = np.fromiter(
            (getattr(state, "slot", -1) for state in states.values()), np.int64, len(states)
        )
        slots = slots[(slots >= 0) & (slots < cols.size)]
        lt = cols.last_ts[slots]
        live = (cols.holder[slots] != 0) & (cols.jump_from[slots] == 0.0) & (lt > -np.inf)
        if not live.any():
            return
        newest = np.full(len(cols.kinds), -np.inf)
        np.maximum.at(newest, cols.kind_of[slots[live]], lt[live])
        clock = self.kind_clock
        for code in np.flatnonzero(newest > -np.inf).tolist():
            kind = cols.kinds[code]
            if newest[code] > clock.get(kind, -math.inf):
                clock[kind] = float(newest[code])

    def _admit_stored(
        self,
        bank: TailBank,
        stored: Any,
        items: list[Incoming],
        result: BatchResult,
    ) -> tuple[dict[str, Any], list[Incoming]]:
        """``_admit_sensor`` for a sensor of the bank path's per-sensor way, from its
        stored state (a ``BankState``, a dict read back, or None): (state, accepted
        readings)."""
        given = stored
        if type(stored) is BankState:
            given = stored.as_dict()
            if stored.detector.bank is not bank:
                # Another detection's (not this worker's table): read as a document.
                given["detector"] = stored.detector.get_state()
        return self._admit_sensor(items, given, result)

    def _born(
        self, bank: TailBank, cols: _Columns, batch: Admitted, sids: list[str], got: list[Any]
    ) -> None:
        """A ``BankState`` with no history (no reading, no position, no episode: what
        ``_admit_sensor`` starts a sensor with no state from) for each sensor of the
        batch that has none, in ``got`` at each of its places, its slot allocated in the
        order of the sensors' first readings (as the per-sensor path allocates them):
        the batch then admits and scores them with the live ones, as arrays. Through the
        per-sensor path, 20,000 new sensors in packs of 100 were three quarters of the
        in-process ceiling's detection (bench/ceiling.py, t106)."""
        places = [j for j, state in enumerate(got) if state is None]
        named = list(map(sids.__getitem__, places))
        last = dict(zip(named, places, strict=True))  # each one's last place: kind, cell
        born: dict[str, BankState] = {}
        for sid in dict.fromkeys(named):
            born[sid] = BankState.bare(cols, TailSlot(bank), None)  # (the prototype's clone)
        states = list(born.values())
        cols.fit(bank.used)
        n = len(states)
        readings = batch.many(list(last.values()))
        cols.write(
            list(map(_SLOT, states)),
            list(map(id, states)),
            [float("-inf")] * n,
            [UNKNOWN_VALUE] * n,
            [-1] * n,
            [0] * n,
            [False] * n,
            [cols.kind_code(item.reading.kind) for item in readings],
            [cols.cell_code(item.reading.grid_cell) for item in readings],
        )
        for j, state in zip(places, map(born.__getitem__, named), strict=True):
            got[j] = state

    def _multi(
        self,
        batch: Admitted,
        slots: np.ndarray,
        safe: np.ndarray,
        offsets: np.ndarray,
        quiet_known: np.ndarray,
        per_slot: np.ndarray,
    ) -> _Multi | None:
        """The batch's ``_Multi`` sensors, or None if there are none: live, in no
        episode, several readings, all with a Kafka position, all in the common case."""
        candidates = quiet_known & (per_slot[safe] > 1)
        if not candidates.any():
            return None
        cols = self._columns
        no_offset = quiet_known & (offsets < 0)
        if no_offset.any():  # such a sensor keeps the per-sensor rules
            marked = np.zeros(cols.size, np.bool_)
            marked[safe[no_offset]] = True
            candidates &= ~marked[safe]
        at = np.flatnonzero(candidates)
        if not at.size:
            return None
        at = at[np.argsort(slots[at], kind="stable")]
        for _ in range(2):  # once, then again without the sensors out of the common case
            ms = slots[at]
            mo = offsets[at]
            mx = batch.in_pack[at]
            mt = batch.ts[at]
            lo, li, lt = cols.last_offset[ms], cols.last_index[ms], cols.last_ts[ms]
            # After the stored position, or newer than the stored event time (a log reset).
            fresh = (mo > lo) | ((mo == lo) & (mx > li)) | (mt > lt)
            begins = np.ones(at.size, np.bool_)
            begins[1:] = ms[1:] != ms[:-1]
            same = ~begins
            out = np.zeros(at.size, np.bool_)
            # Positions increase within a sensor's readings ...
            out[1:] = same[1:] & ~((mo[1:] > mo[:-1]) | ((mo[1:] == mo[:-1]) & (mx[1:] > mx[:-1])))
            # ... and each new reading is later than the one before it (or the stored).
            before = lt.copy()
            follows = np.zeros(at.size, np.bool_)
            follows[1:] = same[1:] & fresh[:-1]
            before[follows] = mt[np.flatnonzero(follows) - 1]
            out |= fresh & ~(mt > before)
            # (a clock jump, ``CLOCK_JUMP``, takes the per-sensor rules)
            out |= fresh & (mt - before > CLOCK_JUMP) & (before > -np.inf)
            if not out.any():
                mv = batch.values[at]
                lv = cols.last_value[ms]
                return _Multi(at, ms, mo, mx, mt, mv, lo, li, lt, lv, fresh, np.flatnonzero(begins))
            group = np.cumsum(begins) - 1
            dropped = np.zeros(int(group[-1]) + 1, np.bool_)
            dropped[group[out]] = True
            at = at[~dropped[group]]
            if not at.size:
                return None
        return None  # (not reached: the second pass has no sensor out of the case)

    @staticmethod
    def _write_fast(
        cols: _Columns,
        f: np.ndarray,
        fs: np.ndarray,
        new_lt: np.ndarray,
        new_lv: np.ndarray,
        new_lo: np.ndarray,
        new_li: np.ndarray,
        flagged: np.ndarray | None,
        sids: list[str],
        got: list[Any],
        new_states: dict[str, Any],
    ) -> None:
        """The fast path's bookkeeping into the columns, and its sensors' states (the
        same ``BankState`` objects, updated in place) into ``new_states``; a flagged
        sensor's is left to ``_write_back``."""
        if flagged is not None and flagged.any():
            keep = ~flagged
            f, fs, new_lt, new_lv, new_lo, new_li = (
                f[keep],
                fs[keep],
                new_lt[keep],
                new_lv[keep],
                new_lo[keep],
                new_li[keep],
            )
        if not f.size:
            return
        cols.last_ts[fs] = new_lt
        cols.last_value[fs] = new_lv
        cols.last_offset[fs] = new_lo
        cols.last_index[fs] = new_li
        if f.size == len(sids):  # the whole batch took the fast path
            new_states.update(zip(sids, got, strict=True))
            return
        at = f.tolist()
        new_states.update(zip(map(sids.__getitem__, at), map(got.__getitem__, at), strict=True))

    @staticmethod
    def _write_back(
        bank: TailBank,
        cols: _Columns,
        to_write: list[tuple[str, Any, Reading]],
        new_states: dict[str, Any],
    ) -> None:
        """Each per-sensor state dict of the batch that succeeded, as a ``BankState``:
        the sensor's stored one updated in place, or a new one (a new sensor, a state
        read back from the changelog). A sensor ``_isolated`` dropped keeps its stored
        state untouched; a detector of another bank stays a dict."""
        slots: list[int] = []
        owners: list[int] = []
        last_ts: list[float] = []
        last_value: list[float] = []
        last_offset: list[int] = []
        last_index: list[int] = []
        in_episode: list[bool] = []
        kinds: list[int] = []
        cells: list[int] = []
        jump_from: list[float] = []
        for sid, stored, reading in to_write:
            state = new_states.get(sid)
            if type(state) is not dict:
                continue
            detector = state["detector"]
            if type(detector) is not TailSlot or detector.bank is not bank:
                continue
            episode = state["episode"]
            if type(stored) is BankState and stored.detector is detector:
                stored.episode = episode
                owner = stored
            else:
                owner = BankState.bare(cols, detector, episode)
            new_states[sid] = owner
            slots.append(detector.slot)
            owners.append(id(owner))
            last_ts.append(state["last_ts"])
            last_value.append(state["last_value"])
            last_offset.append(state["last_offset"])
            last_index.append(state["last_index"])
            in_episode.append(episode is not None)
            kinds.append(cols.kind_code(reading.kind))
            cells.append(cols.cell_code(reading.grid_cell))
            jump_from.append(state.get("jump_from") or 0.0)
        cols.write(
            slots,
            owners,
            last_ts,
            last_value,
            last_offset,
            last_index,
            in_episode,
            kinds,
            cells,
            jump_from,
        )

    def _record_slow(
        self,
        state: dict[str, Any],
        taken: list[Incoming],
        all_scores: list[float],
        all_rarity: list[float],
        all_flags: list[bool] | None,
        start: int,
        stop: int,
        result: BatchResult,
    ) -> None:
        """``_record`` for one per-sensor-path sensor of the bank path; a quiet one (no
        episode, nothing flagged: nothing can raise) counted inline, as ``_record``
        would. ``all_rarity``: the batch's scores before the novelty gate (marks)."""
        n = stop - start
        if state["episode"] is None and (all_flags is None or not any(all_flags[start:stop])):
            reading = taken[-1].reading
            kind, cell = reading.kind, reading.grid_cell
            result.scored += n
            result.scored_by_kind[kind] = result.scored_by_kind.get(kind, 0) + n
            result.scored_by_cell[cell] = result.scored_by_cell.get(cell, 0) + n
            mark_at = self.mark_at
            if mark_at is not None:
                result.marks.extend(
                    (item.reading.sensor_id, item.reading.ts, rare, item.reading.value)
                    for item, rare in zip(taken, all_rarity[start:stop], strict=True)
                    if rare >= mark_at
                )
            if reading.sensor_id in self.follow:
                result.last[reading.sensor_id] = (
                    kind,
                    cell,
                    n,
                    reading.value,
                    all_scores[stop - 1],
                    False,
                )
            return
        self._isolated(
            taken[0].reading.sensor_id,
            taken,
            result,
            partial(
                self._record,
                state,
                taken,
                all_scores[start:stop],
                [False] * n if all_flags is None else all_flags[start:stop],
                result,
                all_rarity[start:stop],
            ),
        )

    def _score_record(
        self, state: dict[str, Any], accepted: list[Incoming], result: BatchResult
    ) -> None:
        """Score ``accepted`` with the sensor's detector and record them. A detector made
        live from a changelog document this batch that raises, or scores a reading
        anything but a finite number in [0, 1], held a state it cannot use (NaN or
        infinite values, a negative variance, lists of the wrong length: a corrupt or
        foreign entry its ``set_state`` took): it starts over, and the readings are
        scored by the fresh one (``BatchResult.restarted`` says which). Before, every
        later reading of that sensor was dead-lettered as ``detector_error`` (the stored
        state kept, so the next batch failed alike) or scored NaN (never an alert), for
        good. A live detector's such score raises ``DetectorError``: the readings are
        dead-lettered (``_isolated``), not passed on as NaN."""
        detector = state["detector"]
        # A live detector's state before this batch, to put back if scoring or recording
        # raises (t205): it learns each reading in place as it scores it, so one that
        # raised on a batch's third reading had learned the first two, which were
        # dead-lettered with it (``_isolated``: "its stored state is kept"). Its memory
        # then differed from its changelog, a restart's detector from the running one's,
        # and a dead letter sent back was learned twice. A bank's row (``TailSlot``) is
        # not copied so; a detector made live from its document this batch is its
        # document again (it starts over when it raises, below).
        snapshot = (
            detector.get_state()
            if type(detector) is not TailSlot and id(detector) not in self._restored
            else None
        )
        try:
            scores, flags, rarity, far = self._score(detector, accepted)
            _check_scores(scores)
        except Exception as exc:
            if self._restored.pop(id(detector), None) is None:
                self._put_back(detector, snapshot)
                raise
            why = f"{type(exc).__name__}: {exc}"
            result.restarted.append((accepted[0].reading.sensor_id, why[:300]))
            detector = state["detector"] = self.prototype.clone()
            scores, flags, rarity, far = self._score(detector, accepted)
            _check_scores(scores)
        self._restored.pop(id(detector), None)
        try:
            self._record(state, accepted, scores, flags, result, rarity, far)
        except Exception:
            self._put_back(detector, snapshot)
            raise

    @staticmethod
    def _put_back(detector: Any, snapshot: Any) -> None:
        """Put ``detector`` back as it was before the batch: a clone of it set to
        ``snapshot`` (its ``get_state`` then), its attributes taken over in place, as
        the table's stored state (the batch's new state is a dict of its own) holds
        this very object; a fresh clone's, so no derived attribute (a cache of sorted
        values, a running sum) ``set_state`` may leave is kept. Nothing when there is
        no snapshot."""
        if snapshot is None:
            return
        fresh = detector.clone()
        fresh.set_state(snapshot)
        attributes = vars(detector)
        attributes.clear()
        attributes.update(vars(fresh))

    @staticmethod
    def _isolated(
        sensor_id: str, items: list[Incoming], result: BatchResult, work: Callable[[], _T]
    ) -> _T | None:
        """Run one sensor's share of a batch and return what it returns; if it raises,
        None, and only that sensor's readings of the batch are dead-lettered
        (``detector_error``) and its stored state is kept (the table is not written:
        ``result.states`` loses the sensor), so the next batch goes on from it. Nothing
        of another sensor is lost."""
        mark = (len(result.alerts), len(result.rejected), result.duplicates, result.redelivered)
        marks = len(result.marks)
        try:
            return work()
        except Exception as exc:
            del result.alerts[mark[0] :], result.rejected[mark[1] :], result.marks[marks:]
            result.duplicates, result.redelivered = mark[2], mark[3]
            result.states.pop(sensor_id, None)
            result.last.pop(sensor_id, None)
            why = f"detector failed on sensor {sensor_id}: {type(exc).__name__}: {exc}"
            result.rejected.extend((item, "detector_error", why[:300]) for item in items)
            return None

    def _admit_sensor(
        self, items: list[Incoming], state: dict[str, Any] | None, result: BatchResult
    ) -> tuple[dict[str, Any], list[Incoming]]:
        """The sensor's state (its detector live) and the readings to score, after the
        delivery and event-time rules of the module docstring."""
        last_ts = float("-inf")
        last_value = UNKNOWN_VALUE
        last_offset = -1
        last_index = 0
        episode: dict[str, Any] | None = None
        jump_from: float | None = None
        if state is not None:
            last_ts = state["last_ts"]
            # (judged at read-back, ``read_state``: a float, NaN where it is unknown)
            last_value = state.get("last_value", UNKNOWN_VALUE)
            last_offset = state["last_offset"]
            last_index = state.get("last_index", 0)  # absent in states written before packs
            episode = state["episode"]
            jump_from = state.get("jump_from")  # absent with no clock jump pending
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
                    check_state_document(state["detector"])  # (NaN: no detector writes it)
                    detector.set_state(state["detector"])  # as read back from the changelog
                except DetectorStateError as exc:
                    # What no detector of its kind writes: corrupt, said.
                    detector = self.prototype.clone()
                    why = f"{type(exc).__name__}: {exc}"
                    result.restarted.append((items[0].reading.sensor_id, why[:300]))
                except (DetectorError, KeyError, TypeError, ValueError):
                    # Written by another detector (the default changed between
                    # deployments): this sensor's detector starts over, the rest of
                    # its state (positions, episode) stands.
                    detector = self.prototype.clone()
                except Exception as exc:
                    # A document of this detector it cannot take (a list too short: an
                    # IndexError; a count of inf: an OverflowError): unreadable, said.
                    detector = self.prototype.clone()
                    sensor_id = items[0].reading.sensor_id
                    why = f"{type(exc).__name__}: {exc}"
                    result.restarted.append((sensor_id, why[:300]))
                else:
                    self._restored[id(detector)] = detector  # judged at its first use
        accepted: list[Incoming] = []
        if len(items) == 1 and items[0].offset >= 0 and jump_from is None:
            # One reading of the sensor in this batch (the common case at city scale):
            # the loop below, unrolled.
            item = items[0]
            ts = item.reading.ts
            if (item.offset, item.index) <= (last_offset, last_index) and ts <= last_ts:
                result.redelivered += 1
            else:
                last_offset, last_index = item.offset, item.index
                if ts > last_ts:
                    accepted.append(item)
                    if ts - last_ts > CLOCK_JUMP and last_ts > -math.inf:
                        jump_from = last_ts
                    elif last_ts == -math.inf:
                        jump_from = self._first_jump(item)
                    last_ts, last_value = ts, item.reading.value
                elif ts == last_ts:
                    self._repeat(item, last_value, result)
                else:
                    result.rejected.append((item, "out_of_order", _older(ts, last_ts)))
            items = []
        for item in items:
            ts = item.reading.ts
            if item.offset >= 0:
                if (item.offset, item.index) <= (last_offset, last_index) and ts <= last_ts:
                    result.redelivered += 1
                    continue
                last_offset, last_index = item.offset, item.index
            if ts == last_ts:
                self._repeat(item, last_value, result)
            elif ts > last_ts:
                accepted.append(item)
                # Past a jump, a reading confirms it (and may be a jump of its own).
                jump = ts - last_ts > CLOCK_JUMP and last_ts > -math.inf
                jump_from = last_ts if jump else None
                if last_ts == -math.inf:
                    jump_from = self._first_jump(item)
                last_ts, last_value = ts, item.reading.value
            elif (
                jump_from is not None
                and ts > jump_from
                and (jump_from != NO_CLOCK or last_ts - ts > CLOCK_JUMP)
            ):
                # Between the time a sensor jumped from and the jump: the jump was one
                # reading's odd time, and the sensor's clock goes back to this one.
                result.clock_back.append((item.reading.sensor_id, last_ts, ts))
                accepted.append(item)
                jump_from = None
                last_ts, last_value = ts, item.reading.value
            else:
                why = _older(ts, last_ts, jump_from)
                result.rejected.append((item, "out_of_order", why))
        state = {
            "detector": detector,
            "last_ts": last_ts,
            "last_value": last_value,
            "last_offset": last_offset,
            "last_index": last_index,
            "episode": episode,
        }
        if jump_from is not None:
            state["jump_from"] = jump_from
        return state, accepted

    def _first_jump(self, item: Incoming) -> float | None:
        """``item``'s pending jump as its sensor's first reading: ``NO_HISTORY`` when it
        is more than ``CLOCK_JUMP`` past its kind's clock (``kind_clock``), ``NO_CLOCK``
        when the kind has none yet (nothing vouches for it), else None."""
        reading = item.reading
        clock = self.kind_clock.get(reading.kind)
        if clock is None:
            return NO_CLOCK
        return NO_HISTORY if reading.ts - clock > CLOCK_JUMP else None

    @staticmethod
    def _repeat(item: Incoming, last_value: float, result: BatchResult) -> None:
        """A reading at its sensor's last event time: a duplicate (dropped, counted) if
        its value is the one taken then or that one is unknown, else refused as
        ``conflicting_reading``."""
        value = item.reading.value
        if value == last_value or last_value != last_value:  # (NaN: unknown)
            result.duplicates += 1
        else:
            why = _conflicting(value, last_value, item.reading.ts)
            result.rejected.append((item, "conflicting_reading", why))

    def _record(
        self,
        state: dict[str, Any],
        accepted: list[Incoming],
        scores: list[float],
        flags: list[bool],
        result: BatchResult,
        rarity: list[float] | None = None,
        far: list[bool] | None = None,
    ) -> None:
        """Counts, episodes and the sensor's last reading, after scoring; ``rarity``: the
        scores before the novelty gate, where the detector has one (the marks); ``far``:
        which readings the detector judged far glitches (``_far_glitches``), where it
        was asked."""
        episode = state["episode"]
        if accepted:
            kind = accepted[0].reading.kind
            n_anomalies = sum(flags)
            # Walk readings only when something can change; most batches skip this loop.
            if n_anomalies or episode is not None:
                # A copy: the stored episode stays as it was if this batch fails midway.
                episode = self._episodes(
                    accepted,
                    scores,
                    flags,
                    None if episode is None else dict(episode),
                    result,
                    _far_glitches(accepted, scores, rarity, far) if n_anomalies else None,
                )
            mark_at = self.mark_at
            # A far glitch marks no neighbour (it is no measurement): the tail detector
            # gives it a rarity of 0; another detector's score is its mark, so a reading
            # it judged a far glitch (``far``; else one beyond ABSURD_ABOVE) is left out.
            marking = scores if rarity is None else rarity
            if mark_at is not None and max(marking) >= mark_at:
                if rarity is None:
                    glitches = _far_glitches(accepted, scores, None, far)
                    marking = [
                        0.0 if glitch else score
                        for glitch, score in zip(glitches, scores, strict=True)
                    ]
                result.marks.extend(
                    (item.reading.sensor_id, item.reading.ts, float(rare), item.reading.value)
                    for item, rare in zip(accepted, marking, strict=True)
                    if rare >= mark_at
                )
            last = accepted[-1].reading
            last_score = float(scores[-1])
            # Counted last, once nothing of this sensor's batch can fail any more.
            result.scored += len(accepted)
            result.scored_by_kind[kind] = result.scored_by_kind.get(kind, 0) + len(accepted)
            cell = last.grid_cell
            result.scored_by_cell[cell] = result.scored_by_cell.get(cell, 0) + len(accepted)
            if n_anomalies:
                result.anomalies_by_kind[kind] = result.anomalies_by_kind.get(kind, 0) + n_anomalies
            if episode is not None or last.sensor_id in self.follow:
                result.last[last.sensor_id] = (
                    kind,
                    cell,
                    len(accepted),
                    last.value,
                    last_score,
                    episode is not None,
                )
        state["episode"] = episode

    def _score(
        self, detector: Detector, items: list[Incoming]
    ) -> tuple[list[float], list[bool], list[float] | None, list[bool]]:
        """Score then learn each reading: scores, anomaly flags, (for the tail
        detector's rows) the scores before its novelty gate, and which readings the
        detector judged far glitches (``Detector.far_one``, ``score_far_many``), in
        order."""
        if isinstance(detector, (TailDetector, TailSlot)):  # (marks: scores before the gate)
            values = np.array([i.reading.value for i in items], np.float64)
            times = np.array([i.reading.ts for i in items], np.float64)
            array, rarity = detector.score_rarity_many(values, times)
            far = far_glitch_rows(array, rarity).tolist()
            return array.tolist(), self.threshold.flags(array).tolist(), rarity.tolist(), far
        if len(items) <= ONE_AT_A_TIME:
            # A live batch holds a reading or two per sensor: numpy's fixed cost per call
            # on one-element arrays would be most of the work (same scores: the detector
            # contract makes score_many equal score_one then learn_one, row by row, and
            # score_far_many's judgements far_one's before it).
            scores = []
            glitches = []
            for item in items:
                r = item.reading
                score = detector.score_one(r.value, r.ts)
                scores.append(score)
                # A far glitch scores FAR_GLITCH_SCORE (1): only such a reading is asked
                # (a detector of one's own with the default far_one: any may be far).
                glitches.append(
                    (score >= FAR_GLITCH_SCORE or type(detector).far_one is Detector.far_one)
                    and detector.far_one(r.value, r.ts)
                )
                detector.learn_one(r.value, r.ts)
            threshold = self.threshold.threshold
            return scores, [score >= threshold for score in scores], None, glitches
        values = np.array([i.reading.value for i in items], np.float64)
        times = np.array([i.reading.ts for i in items], np.float64)
        array, far_rows = detector.score_far_many(values, times)
        return array.tolist(), self.threshold.flags(array).tolist(), None, far_rows.tolist()

    def _episodes(
        self,
        items: list[Incoming],
        scores: list[float],
        flags: list[bool],
        episode: dict[str, Any] | None,
        result: BatchResult,
        far: list[bool] | None = None,
    ) -> dict[str, Any] | None:
        """Open and close ``items``' episodes (their alerts into ``result``); ``far``:
        which of them were far glitches (``_far_glitches``), None for none. An episode
        that opens on one is marked so (``far_glitch`` in the episode, the alert's
        ``READING_LABEL``), its resolution too; one in an open episode keeps it open but
        is not its peak (score, value and severity of its resolution)."""
        for i, (item, score, flag) in enumerate(zip(items, scores, flags, strict=True)):
            r = item.reading
            if flag:
                if episode is None:
                    glitch = far is not None and far[i]
                    episode = {
                        "alert_id": alert_id_for(r.sensor_id, r.ts),
                        "started_at": r.ts,
                        "last_anomalous_at": r.ts,
                        "peak_score": score,
                        "peak_value": r.value,
                        "quiet": 0,
                    }
                    if glitch:
                        episode["far_glitch"] = True
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
                            glitch,
                        )
                    )
                else:
                    episode["last_anomalous_at"] = r.ts
                    episode["quiet"] = 0
                    # A far glitch keeps the episode open but is no peak of a measured
                    # one: until t175 a sentinel amid an event made its resolution score
                    # 1, severity critical, value 1e308.
                    if score > episode["peak_score"] and not (far is not None and far[i]):
                        episode["peak_score"] = score
                        episode["peak_value"] = r.value
            elif episode is not None:
                episode["quiet"] += 1
                if episode["quiet"] >= self.quiet_readings:
                    result.alerts.append(
                        AlertEvent.resolution(
                            episode, r.sensor_id, r.kind, r.grid_cell, item.received_at
                        )
                    )
                    episode = None
        return episode
