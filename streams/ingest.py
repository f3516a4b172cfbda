"""Ingest and detection: the ``readings`` and ``incidents`` agents' handlers.

Each gets one batch of messages (one partition's, in offset order), decodes and validates
them (a bad message or reading is dead-lettered alone), and calls the pure handlers:
``streams.detection`` for sensor readings (alerts on ``alerts``, keyed by alert id, and
the sensor states in the ``sensor-state`` table), the department classifier and
``streams.bursts`` for citizen reports (burst alerts and their resolution, the
``burst-windows`` table, one key per cell and category; a report in no alert is offered
to its group's run on ``routed``, and one that leaves the window in no alert is counted
and audited).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import math
import sys
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from faust.types import Message

from detectors.tail import mean_interval
from playbooks.errors import GridError
from playbooks.grid import Grid
from playbooks.routing import ALL_LABELS, Router
from streams.bursts import MAX_CATEGORIES_PER_CELL, Burst, BurstTracker, newest_report_time
from streams.columns import BatchAdmission
from streams.context import BURST_KEY_SEPARATOR, Context, burst_key, message_origin
from streams.corroborating import CorroborationStage
from streams.departments import DepartmentClassifier
from streams.detection import (
    SEVERITIES,
    Admitted,
    AlertEvent,
    BatchResult,
    Incoming,
    SensorDetection,
)
from streams.errors import BAD_SHAPE, EventError, detach, unreadable
from streams.events import MIN_EVENT_TIME, EventValidator, IncidentReport, format_ts
from streams.faust_patches import Messages
from streams.logs import SayEvery
from streams.partitioning import placement_hint, sensor_partition
from streams.tables import Unreadable

log = logging.getLogger(__name__)

SAY_DROPPED_EVERY = 60.0  # seconds between INFO lines on duplicate or late reports
# Why a valid incident report counts towards no burst (streams.bursts ``dropped``).
DROPPED = {
    "duplicate": "not counted towards bursts (report_id already seen in its cell and "
    "category: a re-sent report)",
    "redelivered": "skipped (read again after a worker restart; counted when first read)",
    "late": "not counted towards bursts (older than the burst window)",
    "crowded": "not counted towards bursts (their cell holds burst windows for "
    f"{MAX_CATEGORIES_PER_CELL:,} categories already, MAX_CATEGORIES_PER_CELL; offered to "
    "their group's run as late reports are)",
    "unalerted": "in no alert (they left the burst window below the burst threshold; a run "
    "covers them only if their group's run was open when they came; audited as "
    "reports_not_alerted)",
}


def rejected_origin(events: Sequence[Message], item: Incoming) -> str:
    """The origin header of a reading detection refused (``out_of_order``,
    ``detector_error``): its message's ``topic/partition/offset``, ``#index`` when it came
    in a pack (a packed reading's ``raw`` is empty until it is dead-lettered). A batch is
    one partition's messages, so topic and partition are the batch's."""
    first = events[0]
    return message_origin(
        first.topic, first.partition, item.offset, None if item.raw else item.index
    )


def message_at(events: Sequence[Message], offset: int) -> Message | None:
    """The message of ``events`` (one partition's, in offset order) at ``offset``, or
    None; found by bisection, so a batch drain's batch builds only the messages it looks
    at (``faust_patches.Messages``)."""
    low, high = 0, len(events)
    while low < high:
        mid = (low + high) // 2
        if events[mid].offset < offset:
            low = mid + 1
        else:
            high = mid
    return events[low] if low < len(events) and events[low].offset == offset else None


def message_columns(
    messages: Sequence[Message],
) -> tuple[list[bytes | None], list[int], list[int], list[float]]:
    """A batch's values, partitions, offsets and Kafka timestamps (seconds), in order:
    read off the fetched records for a batch drain's batch (no faust ``Message`` per
    record, ``faust_patches.Messages``), else off each message."""
    if isinstance(messages, Messages):
        return messages.columns()
    return (
        [msg.value for msg in messages],
        [msg.partition for msg in messages],
        [msg.offset for msg in messages],
        [msg.timestamp for msg in messages],
    )


def arrival_times(received: Sequence[float | None], now: float) -> Sequence[float]:
    """Kafka's record timestamps (seconds) as the readings' arrival times, which
    ``citybrain_event_to_alert_seconds`` measures from. A producer sets its own
    (CreateTime): -1 (none), 0 or any time before 1990 (a gateway with no clock) is no
    arrival, and one past ``now`` (the batch's admission) not yet one; ``now`` stands for
    each. A record timestamp of 0 observed 1.7e9 s from event to alert."""
    if None not in received:
        times = cast(Sequence[float], received)
        if not times or (min(times) >= MIN_EVENT_TIME and max(times) <= now):
            return times  # the common case, checked in C
    return [t if t is not None and MIN_EVENT_TIME <= t <= now else now for t in received]


def window_of(ctx: Context, cell: str, category: str) -> dict[str, Any] | None:
    """The burst window of ``cell`` and ``category``: its ``burst-windows`` entry, else
    the one a worker before that table kept in the cell's ``burst-state`` entry (read
    through, so a window open across an upgrade goes on; the next write moves it)."""
    window = ctx.burst_windows.get(burst_key(cell, category))
    if window is None:
        window = (ctx.burst_state.get(cell.encode()) or {}).get(category)
    return cast(dict[str, Any] | None, window)


def all_windows(ctx: Context) -> list[tuple[tuple[str, str], dict[str, Any]]]:
    """Every burst window this worker holds, as ((cell, category), window): the
    ``burst-windows`` entries, then the older layout's not yet moved (``window_of``)."""
    out: list[tuple[tuple[str, str], dict[str, Any]]] = []
    for key, window in list(ctx.burst_windows.data.items()):
        cell, _, category = key.partition(BURST_KEY_SEPARATOR)
        out.append(((cell.decode(), category.decode()), window))
    for key, cell_state in list(ctx.burst_state.data.items()):
        cell = key.decode()
        out += [
            ((cell, category), window)
            for category, window in cell_state.items()
            if burst_key(cell, category) not in ctx.burst_windows.data
        ]
    return out


# States the no-data sweep reads between two yields of the event loop.
SWEEP_CHUNK = 2048
# A sensor in an episode is silent once this many of its own mean intervals have passed
# without its reading while its neighbours reported (and the timeout): one reading late
# or lost is not a silence.
NO_DATA_MISSED = 2.0


def silent_sensors(
    states: Sequence[tuple[bytes, Mapping[str, Any], int]],
    kind_of: Callable[[str], str | None],
    newest: dict[tuple[int, str], float],
    timeout: float,
    horizon: float = math.inf,
) -> list[bytes]:
    """The keys of the sensors silent in an open episode: ``states`` are (table key,
    sensor state, readings partition), ``kind_of`` a sensor id's kind (None: not in the
    grid); a sensor is silent when the newest ``last_ts`` (``jump_from`` while a clock
    jump is pending)
    among the sensors of its kind on its partition is ``timeout`` seconds (event time)
    or more past its own, and ``NO_DATA_MISSED`` of its own mean intervals
    (``detectors.tail.mean_interval``; none known: the timeout alone). ``newest``
    ((partition, kind) -> epoch s) is raised to what ``states`` show and kept by the
    caller, so a clock never goes back.

    Its own interval too: an hourly station whose reading came a minute after its
    neighbours' was an hour behind them, and at the default timeout (1 h) its episode
    was resolved for no data in that minute.

    Each readings partition keeps its own clock per kind: a catching-up worker reads one
    partition days of event time ahead of another (each partition's readings come in
    order), and one clock per kind resolved the lagging partition's sensors for no data
    while their readings were still waiting there. A sensor the grid no longer has is
    left alone, and so is one whose ``last_ts`` is past ``horizon`` (epoch s: the clock
    plus ``CITYBRAIN_MAX_FUTURE_SKEW``, beyond which no reading is accepted): a damaged
    state's far-future time set its kind's clock there for good, and every other sensor
    of the kind on the partition in an episode was resolved for no data (``ahead_of``)."""
    known = [
        (key, state, part, kind)
        for key, state, part in states
        if (kind := kind_of(key.decode(errors="replace"))) is not None
        and not state["last_ts"] > horizon
    ]
    for _, state, part, kind in known:
        # A clock jump no later reading has confirmed yet (detection.CLOCK_JUMP) moves no
        # clock: its sensor's time before it counts (t185: one reading of 2020 amid a
        # replay of 2019 resolved every other sensor's episode of its kind for no data).
        clock = state.get("jump_from") or state["last_ts"]
        if clock > newest.get((part, kind), float("-inf")):
            newest[part, kind] = clock
    return [
        key
        for key, state, part, kind in known
        if state["episode"] is not None
        and (behind := newest[part, kind] - state["last_ts"]) >= timeout
        and behind >= NO_DATA_MISSED * mean_interval(state["detector"])
    ]


def ahead_of(
    states: Sequence[tuple[bytes, Mapping[str, Any], int]], horizon: float
) -> list[tuple[bytes, float]]:
    """(key, last_ts) of the sensor ``states`` (as ``silent_sensors`` takes them) whose
    last reading time is past ``horizon`` (epoch s), which ``silent_sensors`` leaves out."""
    return [(key, state["last_ts"]) for key, state, _ in states if state["last_ts"] > horizon]


# Half-life of the gaps a kind's usual gap is made of (wall clock, s): a day, so an
# outage raises the tolerance for the day after it, not for ever.
FEED_GAP_HALF_LIFE = 86_400.0


class FeedClock:
    """When this worker last counted a reading of each kind (wall clock, epoch s) and the
    kind's usual gap between readings (s): the length-biased mean gap ``sum(g**2) /
    sum(g)`` over the gaps ``g`` between successive batches holding the kind, each
    weighted by ``2 ** (-age / FEED_GAP_HALF_LIFE)`` — the mean length of the gap a
    random moment falls in. A feed reporting in hourly bursts has a usual gap near an
    hour (its sub-second gaps inside a burst weigh nothing), a steady feed its own
    interval; 0 until a second batch.

    The worker exports both per kind (``citybrain_feed_last_reading_timestamp_seconds``,
    ``citybrain_feed_usual_gap_seconds``); ``CitybrainFeedSilent`` fires for a kind
    silent for more than three usual gaps and at least 10 min: a whole feed gone quiet
    (a dead gateway, a broken MQTT bridge) moves no event time, so the sensors' own
    no-data clocks cannot see it."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self._sums: dict[str, tuple[float, float]] = {}  # kind -> (sum g, sum g**2), decayed

    def saw(self, kinds: Iterable[str], now: float) -> None:
        """Record readings of ``kinds`` counted at ``now`` (epoch s; a clock stepped back
        counts a gap of 0)."""
        for kind in kinds:
            before = self.last.get(kind)
            self.last[kind] = now
            if before is None:
                continue
            gap = max(0.0, now - before)
            s1, s2 = self._sums.get(kind, (0.0, 0.0))
            keep = 2.0 ** (-gap / FEED_GAP_HALF_LIFE)
            self._sums[kind] = (s1 * keep + gap, s2 * keep + gap * gap)

    def usual_gap(self, kind: str) -> float:
        """``kind``'s usual gap in seconds (0 before its second batch)."""
        s1, s2 = self._sums.get(kind, (0.0, 0.0))
        return s2 / s1 if s1 > 0.0 else 0.0


def _key_bytes(message: Any) -> bytes | None:
    """A message's key as bytes, None for none (or a key faust gave as anything else)."""
    key = getattr(message, "key", None)
    return key if isinstance(key, bytes) else None


class Ingest:
    """Readings to alerts and sensor states; incident reports to burst alerts."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.grid, self.metrics = ctx.grid, ctx.metrics
        self.validator = EventValidator(ctx.grid, max_future_skew=settings.max_future_skew)
        self.admission = BatchAdmission(self.validator, settings.partitions)
        self.detection = SensorDetection.from_settings(settings)
        # The grid the detection's books (its bank slots' kind and cell codes) follow:
        # the grid of the last batch detected, so a batch is counted by the grid it was
        # admitted under (``_follow_grid``).
        self._books_grid = ctx.grid
        # Sensor alerts go through neighbour corroboration on their way to the alerts
        # topic (streams/corroborating.py; off: straight there).
        self.corroboration = CorroborationStage(ctx.app, ctx, self.detection)
        self.departments = DepartmentClassifier.from_training_file(
            cache_dir=settings.home / "models"
        )
        self.bursts = BurstTracker(
            bucket_seconds=settings.burst_bucket_seconds, min_reports=settings.burst_min_reports
        )
        # reason -> (monotonic time of the last INFO line on dropped reports, held since)
        self._say_dropped_every = SayEvery(log, logging.INFO, SAY_DROPPED_EVERY, what="report")
        # A burst window the sweep cannot expire: said once a minute per cause (it was a
        # WARNING per window every sweep, a flood), counted per pass.
        self._say_window_failed = SayEvery(log, prefix="citybrain: ")
        # A batch's count under a cell the grid lacks: said once a minute per cell.
        self._say_uncounted = SayEvery(log, prefix="citybrain: ")
        # The newest incident report's event time this worker has read (epoch s): the
        # city's clock for the burst sweep. After a restart or a rebalance the sweep takes
        # it back from its windows' newest reports (``newest_report_time``), so it never
        # runs ahead of what the reports say; before t75 it was lost, and a restarted
        # worker on a quiet city never resolved its open bursts.
        self.event_time = float("-inf")
        # Burst windows per grid cell (``all_windows``), against the bound on categories
        # per cell: counted by each sweep, counted afresh by the next batch when None
        # (at the start, after a rebalance), and raised by the windows a batch opens.
        self._cell_windows: Tally[str] | None = None
        # Held by the incidents batch and the sweep, each reading then writing cells.
        self._bursts_settled = asyncio.Lock()
        self._watch = {s.strip() for s in settings.watch_sensors.split(",") if s.strip()}
        self._exported: dict[str, str] = {}  # sensor id -> kind, with per-sensor series
        # Detection reports the last reading of these sensors (and of any in an episode)
        # in ``BatchResult.last``: the watched ones and the ones with exported series.
        self.detection.follow.update(self._watch)
        self._partitions = settings.partitions
        # The newest reading's event time of each kind among this worker's sensors on each
        # readings partition ((partition, kind) -> epoch s): the clocks of the no-data
        # sweep (``silent_sensors``), read from the stored states (so a restarted worker
        # has them from its changelog). Per kind: feeds of other eras (the demo replays
        # 2014, 2016 and 2019 data) do not make each other silent; per partition: one
        # partition read ahead of another does not either.
        self.readings_time: dict[tuple[int, str], float] = {}
        # Each kind's last counted reading and usual gap, wall clock: the gauges
        # CitybrainFeedSilent watches (a whole feed gone quiet).
        self.feeds = FeedClock()

    # -- readings --------------------------------------------------------------------
    async def on_readings(self, messages: Sequence[Message]) -> None:
        """One batch of ``readings`` messages (one partition's, in offset order): decode
        and validate them together (``BatchAdmission`` never raises for a message's
        content: a bad message or reading is dead-lettered alone), then detect over the
        batch."""
        now = time.time()
        # The grid this batch is admitted under, used to its end: a reload (SIGHUP) may
        # replace ``self.grid`` at any await, and a cell it removed failed the batch
        # as a whole (KeyError in the counts), which stops the worker.
        grid = self.grid
        values, partitions, offsets, received = message_columns(messages)
        incoming, refused = self.admission.admit(
            values, partitions, offsets, arrival_times(received, now), now
        )
        for i, r in refused:
            said = str(r.error)
            if r.error.code == "wrong_partition" and r.index is None:
                # Which key, or which producer's partitioner, put it there (t170).
                message = messages[i]
                said += placement_hint(
                    _key_bytes(message),
                    str(r.error.value),
                    message.partition,
                    self.ctx.settings.partitions,
                )
            await self.ctx.dead_letter("readings", messages[i], r.error.code, said, r.index, r.raw)
        async with self.ctx.states_settled:
            await self._detect(messages, incoming, grid)

    async def _detect(self, events: Sequence[Message], incoming: Admitted, grid: Grid) -> None:
        # The books in step with the batch's grid, with no await before the detection.
        self._follow_grid(grid)
        # The batch's sensors once each, keyed by id; each table key encoded once.
        sensors = set(incoming.sensor_ids)
        stored = self.ctx.sensor_state.get_many(map(str.encode, sensors))
        states = dict(zip(sensors, stored, strict=True))
        # Updates the live detectors in the table's states in place.
        result = self.detection.process(incoming, states)
        for sensor_id, why in result.restarted:
            # A stored detector state its detector could not use: said, counted and
            # audited as any stored entry that cannot be read back (its detector started
            # over; 0 bytes: found in use, not read).
            detail = f"sensor state: detector state unusable, started over: {why}"[:300]
            self.ctx.on_unreadable_state(
                "sensor-state", sensor_id.encode(), Unreadable(BAD_SHAPE, detail, 0)
            )
        if result.clock_back:
            # A reading a day or more ahead of its sensor's clock that the next reading
            # went back behind (detection.CLOCK_JUMP): said once a batch, naming the first.
            sensor_id, jumped, back = result.clock_back[0]
            more = len(result.clock_back) - 1
            log.warning(
                "citybrain: readings: sensor %s jumped to %s and its next reading went back to %s: "
                "the jump was one reading's odd time (a gateway's clock, a unit mistake?), "
                "the sensor's clock goes back%s",
                sensor_id,
                format_ts(jumped),
                format_ts(back),
                f" ({more} more sensor(s) in this batch)" if more else "",
            )
        for item, code, message in result.rejected:
            await self.ctx.send_dead_letter(
                "readings",
                item.raw or item.reading.to_json(),
                item.reading.sensor_id.encode(),
                code,
                message,
                rejected_origin(events, item),
                message_at(events, item.offset),
            )
        # Alerts must be on Kafka before the state that says they were sent.
        await self.corroboration.send(result, lambda alert: self._alert_doc(alert, grid))
        sent_at = time.time()
        # Counted before the next await, so a batch interrupted by a rebalance cannot be
        # processed yet uncounted (its redelivery is skipped by the offset rule).
        try:
            self._count_readings(events, result, sent_at, grid)
        except Exception:
            # t205: the counting is the batch's bookkeeping, not its work. A fault in it
            # came after the alerts were sent and before the states were stored: the
            # whole batch failed and stopped the worker, and its replacement read the
            # batch again to the same fault, at every start. Said (with its traceback,
            # once a minute per exception), the counts it did not reach left out.
            self._say_count_failed(len(events))
        # Most states are staged: each reaches the changelog once per offset commit,
        # before the offsets of its events (tables.coalesce_changelog); a worker that
        # dies first is replaced by one that replays those readings to the same result.
        # A state that opened or closed an episode is written through at once, so a
        # replay cannot send its alert a second time.
        alerted = {a.sensor_id for a in result.alerts}
        staged = dict(zip(map(str.encode, result.states), result.states.values(), strict=True))
        through = {sid.encode(): staged.pop(sid.encode()) for sid in alerted}
        table = self.ctx.sensor_state
        # t205: one state whose entry cannot be made (or is larger than a message) failed
        # the whole batch here, after its alerts were sent, at every start again. It is
        # said and kept staged (in the store; its changelog entry stays its last one,
        # so a restart may send its alert again, which the alerts and respond stages
        # take as the repeat it is); the batch's other states are written.
        entries = table.writable_entries(through) if through else {}
        for key in [k for k in through if k not in entries]:
            staged[key] = through.pop(key)
        table.stage_many(staged)
        if through:
            await table.set_many(through, entries)

    def _follow_grid(self, grid: Grid) -> int:
        """Before a batch admitted under ``grid`` is detected: when ``grid`` is not the
        one the detection's books follow (a reload put it in force since the last batch),
        recode the live sensors it registers under another kind or cell
        (``reregistered``); returns how many. Done here, not at the reload (t159): a
        reload landing at one of a batch's awaits before its detection (a dead letter,
        the states lock) recoded the batch's own sensors, and that batch, admitted under
        the old grid, counted a moved sensor's readings under its new cell, which its grid
        lacks: left out of ``citybrain_cell_readings_total``. Batches are detected one at
        a time, so the grids follow each other in the order they were put in force."""
        old = self._books_grid
        if grid is old:
            return 0
        self._books_grid = grid
        return self.reregistered(old, grid)

    def reregistered(self, old: Grid, new: Grid) -> int:
        """From a batch admitted under ``old`` to one admitted under ``new``
        (``_follow_grid``): this worker's live sensors that ``new`` registers under
        another kind or cell are counted under the new ones from their next reading
        (``SensorDetection.reregister``); returns how many. Sensors gone from ``new``
        are left: no reading of theirs is admitted any more."""
        moved = [
            (sid, reg.kind, reg.cell)
            for sid, reg in new.sensors.items()
            if (was := old.sensors.get(sid)) is not None
            and (was.kind != reg.kind or was.cell != reg.cell)
        ]
        if not moved:
            return 0
        stored = self.ctx.sensor_state.get_many(sid.encode() for sid, _, _ in moved)
        return self.detection.reregister(
            (state, kind, cell)
            for state, (_, kind, cell) in zip(stored, moved, strict=True)
            if state is not None
        )

    def _say_count_failed(self, n: int, what: str = "a batch") -> None:
        """Say (with the exception in hand's traceback, once a minute per exception type)
        that counting ``what`` of ``n`` readings failed: its readings are scored, their
        alerts sent and their states stored, the counts not reached left out."""
        exc = sys.exc_info()[1]
        self.ctx.say_failed(
            f"readings:count:{type(exc).__name__}",
            f"readings: counting {what} of {n} readings failed ({exc!r}): the readings are "
            "scored, their alerts sent and their states stored; the counts it did not reach "
            "are left out of the metrics",
            exc_info=True,
        )

    def _count_readings(
        self, events: Sequence[Message], result: BatchResult, sent_at: float, grid: Grid
    ) -> None:
        m = self.metrics
        m.batch_size.observe(len(events))
        for kind, n in result.scored_by_kind.items():
            m.readings.labels(kind).inc(n)
        if result.scored_by_kind:
            feeds = self.feeds
            feeds.saw(result.scored_by_kind, sent_at)
            for kind in result.scored_by_kind:
                m.feed_last_reading.labels(kind).set(sent_at)
                m.feed_usual_gap.labels(kind).set(feeds.usual_gap(kind))
        for kind, n in result.anomalies_by_kind.items():
            m.anomalies.labels(kind).inc(n)
        if result.duplicates:
            m.duplicates.inc(result.duplicates)
        if result.redelivered:
            m.redelivered.inc(result.redelivered)
        for alert in result.alerts:
            try:
                if alert.status == "firing":
                    level = grid.cells[alert.grid_cell].level
                    m.alerts.labels(alert.kind, level, alert.severity).inc()
                    path = self.ctx.cell_path(alert.grid_cell, grid)
                    m.cell_alerts.labels(*path, alert.kind).inc()
                    m.event_to_alert.observe(max(0.0, sent_at - alert.received_at))
                else:
                    m.alerts_resolved.labels(alert.kind).inc()
            except Exception:  # one alert's count costs no other's (t205)
                self._say_count_failed(len(events), f"alert {alert.alert_id} of a batch")
        follow = self.detection.follow
        for sid, (kind, _, _, value, score, in_episode) in result.last.items():
            try:
                self._export_sensor(sid, kind, value, score, in_episode, follow)
            except Exception:  # one sensor's series cost no other's (t205)
                self._say_count_failed(len(events), f"sensor {sid}'s series in a batch")
        for cell, n in result.scored_by_cell.items():
            try:
                path = self.ctx.cell_path(cell, grid)
            except GridError:
                # A count under a cell the batch's grid lacks (the detection's books
                # out of step with the grid: ``reregistered`` keeps them in step) is
                # said, never the batch's end: the readings are scored, their alerts
                # sent (t156: GridError failed the whole batch, and the worker).
                self._say_uncounted(
                    cell,
                    f"{n} readings counted under grid cell {cell!r}, which the grid lacks: "
                    "left out of citybrain_cell_readings_total",
                )
                continue
            m.cell_readings.labels(*path).inc(n)

    def _export_sensor(
        self,
        sid: str,
        kind: str,
        value: float,
        score: float,
        in_episode: bool,
        follow: set[str],
    ) -> None:
        """Export (or drop) sensor ``sid``'s value and score series after a batch: kept
        while it is in an episode or watched, under the ``kind`` it now has."""
        m = self.metrics
        # The kind its series were exported under: a grid reload may have registered
        # the sensor under another since (t156: its old series were then never removed,
        # a stale value exported for good).
        exported = self._exported.get(sid)
        if exported is not None and (exported != kind or not (in_episode or sid in self._watch)):
            # The episode ended: drop the sensor's series to keep cardinality bounded.
            m.sensor_value.remove(sid, exported)
            m.sensor_score.remove(sid, exported)
            del self._exported[sid]
            follow.discard(sid)
        if in_episode or sid in self._watch:
            m.sensor_value.labels(sid, kind).set(value)
            m.sensor_score.labels(sid, kind).set(score)
            self._exported[sid] = kind
            follow.add(sid)

    async def sweep_silent_sensors(self) -> int:
        """Resolve the alerts of sensors that went silent in an open episode: no reading
        for ``CITYBRAIN_NO_DATA_TIMEOUT`` seconds of event time while this worker's other
        sensors of its kind on its partition reported (``silent_sensors``: the newest
        ``last_ts`` of their states, so a replay
        sweeps as the live stream, a restarted worker resumes from its changelog, and a
        whole feed gone quiet resolves nothing). Each such episode ends with a ``resolved`` alert
        carrying ``resolved_by: "no_data"`` and ``annotation`` saying since when the
        sensor is silent (through corroboration, as every sensor alert), delivery
        awaited, then its state written through without the episode: a worker that
        dies in between sends the same resolution again after its restart (same alert
        id; the alerts and respond stages take a repeated resolution as one), never
        none. Counted (``citybrain_alerts_resolved_no_data_total{kind}``), audited
        ``alert_resolved_no_data`` and warned of. Returns how many were resolved."""
        timeout = self.ctx.settings.no_data_timeout
        if not timeout or self.ctx.reading_back() is not None:
            return 0
        grid = self.grid  # as a readings batch's: a reload may replace it at an await
        sensors = grid.sensors

        def kind_of(sensor_id: str) -> str | None:
            sensor = sensors.get(sensor_id)
            return None if sensor is None else sensor.kind

        def partition_of(key: bytes) -> int:
            return sensor_partition(key.decode(errors="replace"), self._partitions)

        # The clocks and the candidates a chunk of states at a time, the event loop let go
        # between chunks and no lock held: one pass over 100,000 states held the readings
        # agent for 0.3-0.8 s every sweep. A state a batch changes meanwhile is checked
        # again below, under the lock; one missed here (its partition's clock not yet
        # read) is found by the next sweep.
        owned = self.ctx.owned_partitions("readings")
        snapshot = list(self.ctx.sensor_state.data.items())
        candidates: list[bytes] = []
        horizon = time.time() + self.ctx.settings.max_future_skew
        ahead: list[tuple[bytes, float]] = []  # states left out of the clocks and the sweep
        for start in range(0, len(snapshot), SWEEP_CHUNK):
            chunk = [
                (key, state, part)
                for key, state in snapshot[start : start + SWEEP_CHUNK]
                if (part := partition_of(key)) in owned
            ]
            ahead += ahead_of(chunk, horizon)
            candidates += silent_sensors(chunk, kind_of, self.readings_time, timeout, horizon)
            await asyncio.sleep(0)
        self._say_ahead(ahead, horizon)
        if not candidates:
            return 0
        async with self.ctx.states_settled:
            if self.ctx.moving():  # begun since the pass: the next sweep decides
                return 0
            owned = self.ctx.owned_partitions("readings")
            current = self.ctx.sensor_state.get_many(candidates)
            states = [
                (key, state, part)
                for key, state in zip(candidates, current, strict=True)
                if state is not None and (part := partition_of(key)) in owned
            ]
            due = set(silent_sensors(states, kind_of, self.readings_time, timeout, horizon))
            silent: list[tuple[bytes, Any, AlertEvent]] = []
            for key, state, _ in states:
                if key not in due:
                    continue
                episode = state["episode"]
                sensor = sensors[key.decode(errors="replace")]
                alert = AlertEvent.resolution(
                    episode, sensor.id, sensor.kind, sensor.cell, time.time()
                )
                silent.append((key, state, alert))
            if not silent:
                return 0
            last_of = {a.sensor_id: float(s["last_ts"]) for _, s, a in silent}

            def no_data_doc(alert: AlertEvent) -> dict[str, Any]:
                doc = self._alert_doc(alert, grid)
                doc["resolved_by"] = "no_data"
                doc["annotation"] = (
                    f"sensor {alert.sensor_id} sent no reading since "
                    f"{format_ts(last_of[alert.sensor_id])} (event time; "
                    f"CITYBRAIN_NO_DATA_TIMEOUT {timeout:g} s): resolved for no data, the "
                    "sensor is silent: check it"
                )
                return doc

            await self.corroboration.send(
                BatchResult(alerts=[a for _, _, a in silent]), no_data_doc
            )
            closed: dict[bytes, Any] = {}
            for key, state, _ in silent:
                if isinstance(state, dict):
                    state["episode"] = None
                else:
                    state.put(
                        state["last_ts"],
                        state["last_offset"],
                        state["last_index"],
                        None,
                        state["last_value"],
                        state.get("jump_from"),  # (a pending clock jump stays pending)
                    )
                closed[key] = state
            await self.ctx.sensor_state.set_many(closed)
            now = time.time()
            for _, _, alert in silent:
                self.metrics.alerts_resolved.labels(alert.kind).inc()
                self.metrics.alerts_no_data.labels(alert.kind).inc()
                if alert.sensor_id in self._exported and alert.sensor_id not in self._watch:
                    # Its episode ended: its series go, as at an episode's last reading.
                    kind = self._exported.pop(alert.sensor_id)
                    self.metrics.sensor_value.remove(alert.sensor_id, kind)
                    self.metrics.sensor_score.remove(alert.sensor_id, kind)
                    self.detection.follow.discard(alert.sensor_id)
                detail = no_data_doc(alert)["annotation"]
                log.warning("citybrain: alert %s: %s", alert.alert_id, detail)
                await self.ctx.audit(
                    {
                        "action": "alert_resolved_no_data",
                        "alert_id": alert.alert_id,
                        "at": now,
                        "actor": "citybrain",
                        "detail": detail,
                        "data": {"sensor_id": alert.sensor_id, "grid_cell": alert.grid_cell},
                    }
                )
        return len(silent)

    def _say_ahead(self, ahead: list[tuple[bytes, float]], horizon: float) -> None:
        """Count (per pass) and say (once a minute) the sensor states the no-data sweep
        left out for a last reading time past ``horizon`` (``ahead_of``)."""
        self.metrics.loop_items_skipped.labels("no_data_sweep").inc(len(ahead))
        self.metrics.loop_items_failing.labels("no_data_sweep").set(len(ahead))
        if not ahead:
            return
        key, last_ts = ahead[0]
        more = f" and {len(ahead) - 1} more" if len(ahead) > 1 else ""
        self._say_window_failed(
            "no-data sweep: ahead",
            f"no-data sweep: the state of sensor {key.decode(errors='replace')[:200]!r} says "
            f"its last reading is at {last_ts:.6g} (epoch s), more than "
            f"CITYBRAIN_MAX_FUTURE_SKEW ({self.ctx.settings.max_future_skew:g} s) ahead of "
            f"the clock{more}: left out of its kind's event clock and of the sweep (a "
            "damaged state: no such reading is accepted); counted in "
            'citybrain_loop_items_skipped_total{loop="no_data_sweep"}',
        )

    def forget_sensors(self, lost: set[int]) -> int:
        """Drop the per-sensor series (``citybrain_sensor_value``/``_score``) of the
        sensors whose ``readings`` partition is in ``lost`` (partitions this worker no
        longer owns, after a rebalance); returns how many sensors. Their readings now
        reach another worker, which exports them: kept here, a sensor in an episode had
        two series, this worker's frozen at its last value for ever (no reading of it
        comes here again to end the episode)."""
        gone = [sid for sid in self._exported if sensor_partition(sid, self._partitions) in lost]
        for sid in gone:
            kind = self._exported.pop(sid)
            self.metrics.sensor_value.remove(sid, kind)
            self.metrics.sensor_score.remove(sid, kind)
            if sid not in self._watch:
                self.detection.follow.discard(sid)
        return len(gone)

    def _alert_doc(self, alert: AlertEvent, grid: Grid) -> dict[str, Any]:
        """``alert``'s ``alert/1`` document, labelled by ``grid`` (the batch's)."""
        return alert.document(grid)

    # -- incident reports ------------------------------------------------------------
    def _burst_alert(
        self, burst: Burst, ended_at: float | None, grid: Grid
    ) -> tuple[str, dict[str, Any]]:
        """A burst as its ``alerts`` message (key, ``alert/1`` document); ``ended_at``
        (epoch s) for a ``resolved`` one: when its window was seen thinned out, never
        before the episode's start (its ``started_at``). Labelled by ``grid``, the one
        its batch or sweep began under."""
        if ended_at is not None and ended_at < burst.bucket_start:
            # Alertmanager's API refuses an alert that ends before it starts, and so does
            # the alerts agent (t139): this resolution refused, its run stayed open for
            # ever. A window seen thinned out holds none of its episode's first
            # sub-bucket any more, so a report or sweep time is later, unless the window
            # was written under another CITYBRAIN_BURST_BUCKET_SECONDS (its slots counted
            # in other steps: a report older than the episode then resolves it) or damaged.
            ended_at = burst.bucket_start
        return (
            burst.alert_id,
            {
                "schema": "alert/1",
                "alert_id": burst.alert_id,
                "status": burst.status,
                "sensor_id": "",
                "kind": "incident_burst",
                "grid_cell": burst.grid_cell,
                "severity": burst.severity,
                "score": 0.0,
                "value": burst.count,
                "started_at": format_ts(burst.bucket_start),
                "ended_at": None if ended_at is None else format_ts(ended_at),
                "reports": burst.reports_doc(),
                "follow_up": not burst.first,
                "labels": {
                    **grid.cell_labels(burst.grid_cell),
                    "alert_id": burst.alert_id,
                    "kind": "incident_burst",
                    "severity": burst.severity,
                    "source": "citizen",
                    "category": burst.category,
                    "department": burst.department,
                },
            },
        )

    def _offer(
        self, report: Any, department: str, late: bool, grid: Grid, router: Router
    ) -> list[tuple[str, Any]]:
        """``routed`` messages offering ``report`` (in no alert) to the run of each group
        its burst alert would be routed to, whatever severity that alert has (a route may
        match on it, a group may be keyed by it): ``{"report": {..., "ts": event time in
        epoch s, "late": ``late``}, "route": {"id", "playbook"}}`` keyed by the group
        key, one per (group key, route). The response stage covers it if that run is open
        and the report is not more than a day older than the run's opening; with no open
        run it holds the offer, stored with its group, for a run opened within 5 minutes;
        and drops the offer otherwise (the report then waits in its window for a burst, or ends as
        ``reports_not_alerted``; a late one, never in the window, is counted and audited so
        by the response stage)."""
        labels = {
            **grid.cell_labels(report.grid_cell),
            "alert_id": "",
            "kind": "incident_burst",
            "source": "citizen",
            "category": report.category,
            "department": department,
        }
        offer = {
            "report_id": report.report_id,
            "channel": report.source,
            "grid_cell": report.grid_cell,
            "category": report.category,
            "ts": report.ts,
            "late": late,
        }
        # The report is in no alert, so it has no severity: the run of its group may
        # have been opened by a burst of any severity, and a route may match on it. So
        # at most len(SEVERITIES) offers per route the report's labels match, and one
        # with a route that neither matches nor groups on severity (the library's).
        offers: dict[tuple[str, str], tuple[str, Any]] = {}
        for severity in SEVERITIES:
            labelled = {**labels, "severity": severity}
            for route in router.root.match(labelled):  # (no silences, nothing firing)
                if ALL_LABELS in route.group_by or "alert_id" in route.group_by:
                    # A group per alert: the group of the burst this report may join
                    # is keyed by that burst's alert id, which the report does not
                    # have. Offered, it went to a group no run is ever opened in, 3
                    # messages per report held and dropped by the response stage.
                    continue
                key = route.group_key(labelled)
                doc = {
                    "report": offer,
                    "route": {"id": route.id, "playbook": route.playbook},
                    # The group's key before t126 (``Response._group_home``).
                    "legacy_key": route.legacy_group_key(labelled),
                }
                offers.setdefault((key, route.id), (key, doc))
        # How many groups it is offered to: a late one whose held offer expires is said
        # as in no alert by that group only when it is the one (``Response._offers_lost``).
        offer["offers"] = len(offers)
        # Which of them each is (0 first): a late report a run refuses as too old is said
        # as in no alert by the group of its first offer alone (``Response._too_old``),
        # not once per group that refused it (t152).
        made = []
        for n, (key, doc) in enumerate(offers.values()):
            made.append((key, {**doc, "report": {**offer, "offer": n}}))
        return made

    async def on_incidents(self, events: Sequence[Message]) -> None:
        """One batch of ``incidents`` messages: reports to burst alerts, follow-ups and
        offers. Under ``_bursts_settled``: the sweep must not write a cell's state
        between this batch's read of it and its write."""
        async with self._bursts_settled:
            await self._on_incidents(events)

    async def _on_incidents(self, events: Sequence[Message]) -> None:
        now = time.time()
        # As a readings batch: validated and labelled under one grid to its end.
        grid, validator = self.grid, self.validator
        # Its offers routed by one tree to its end, too (t133).
        router = self.ctx.router
        valid: list[tuple[Message, IncidentReport]] = []
        home_of = self.ctx.burst_windows.partition_for_key
        for event in events:
            try:
                report = validator.incident(event.value or b"", now)
                home = home_of(burst_key(report.grid_cell, report.category))
                if home != event.partition:
                    # Its cell's burst windows live with that partition's owner: counted
                    # here, another worker's copy of the window would fork (trial 19: a
                    # gateway keying reports by report_id split a burst between workers).
                    raise EventError(
                        "wrong_partition",
                        "grid_cell",
                        report.grid_cell,
                        f"the cell's reports belong on partition {home}, this message is on "
                        f"{event.partition}"
                        + placement_hint(
                            _key_bytes(event),
                            report.grid_cell,
                            event.partition,
                            self.ctx.settings.partitions,
                        ),
                    )
                valid.append((event, report))
            except EventError as exc:
                await self.ctx.dead_letter("incidents", event, exc.code, str(exc))
            except Exception as exc:  # a poison message costs only itself
                error = unreadable(exc)
                await self.ctx.dead_letter("incidents", event, error.code, str(error))
        if not valid:
            return
        departments = self._departments([r for _, r in valid])
        tally: Tally[tuple[str, str]] = Tally()
        alerts = []
        states: dict[bytes, dict[str, Any] | None] = {}
        dropped: dict[str, list[str]] = {}
        not_alerted: list[tuple[str, str, list[tuple[str, str]]]] = []
        offered: list[tuple[str, Any]] = []
        if self._cell_windows is None:
            self._cell_windows = Tally(cell for (cell, _), _ in all_windows(self.ctx))
            self.metrics.burst_windows.set(self._cell_windows.total())
        per_cell = self._cell_windows
        for (event, report), department in zip(valid, departments, strict=True):
            key = burst_key(report.grid_cell, report.category)
            try:
                if isinstance(department, Exception):
                    raise department
                if key not in states:
                    # In this worker's sub-buckets (one stored under another
                    # CITYBRAIN_BURST_BUCKET_SECONDS is converted, not misread).
                    window = window_of(self.ctx, report.grid_cell, report.category)
                    states[key] = self._rebased(window)
                position = (event.partition, event.offset)
                reason = self.bursts.dropped(states[key], report, position)
                opens = states[key] is None  # a category new to its cell: a new window
                if opens and per_cell[report.grid_cell] >= self.bursts.max_categories_per_cell:
                    reason = "crowded"
                if reason == "crowded":
                    window, made, opened = None, [], []
                    unalerted: list[tuple[str, str]] = []
                    offers = self._offer(report, str(department), True, grid, router)
                elif reason not in ("duplicate", "redelivered", "reused_id"):
                    # On a copy: a fold that raises halfway leaves the window as it was.
                    # (the city's clock judges a new window's first report: t206)
                    clock = self.event_time if self.event_time > -math.inf else None
                    window, bursts, unalerted = self.bursts.observe_all(
                        copy.deepcopy(states[key]), report, department, reason, position, clock
                    )
                    made = [
                        self._burst_alert(b, report.ts if b.status == "resolved" else None, grid)
                        for b in bursts
                    ]
                    opened = [
                        (grid.cells[b.grid_cell].level, b)
                        for b in bursts
                        if b.first and b.status != "resolved"  # not follow-ups, nor the end
                    ]
                    # In no alert (yet): offered to the run of the group its burst alert
                    # would have, which covers it as a follow-up if that run is open
                    # (trial 6: reports arriving while a run for their cell and category
                    # waited for an acknowledgement reached no run).
                    offers = (
                        []
                        if any(b.status == "firing" for b in bursts)
                        else self._offer(report, str(department), reason == "late", grid, router)
                    )
            except Exception as exc:
                # One report that cannot be folded costs only itself (its window is kept
                # as it was); the batch and its other reports go on.
                self.ctx.say_failed(
                    f"incidents:{type(exc).__name__}",
                    f"incidents: report {report.report_id!r} could not be processed",
                    exc_info=True,
                )
                text = f"{type(exc).__name__}: {exc}"
                await self.ctx.dead_letter("incidents", event, "processing_error", text[:500])
                continue
            if reason == "reused_id":
                # Another report under an id seen here: kept whole on the dead-letter
                # topic, not dropped as a re-send (t109).
                await self.ctx.dead_letter(
                    "incidents",
                    event,
                    "reused_report_id",
                    f'field "report_id" is {report.report_id!r}: {report.grid_cell}/'
                    f"{report.category} had a report with that id and another text or source "
                    "(a re-send is the same report); give each report its own id",
                )
                continue
            if reason is not None:
                # Counted and said, never silent (trial 5: 12 re-sent reports vanished).
                counter = {
                    "duplicate": self.metrics.incidents_duplicate,
                    "redelivered": self.metrics.incidents_redelivered,
                    "late": self.metrics.incidents_late,
                    "crowded": self.metrics.incidents_crowded,
                }[reason]
                counter.labels(report.source).inc()
                dropped.setdefault(reason, []).append(report.report_id)
                if reason not in ("late", "crowded"):
                    continue  # counted once already: not in incidents_total again
            elif opens:
                per_cell[report.grid_cell] += 1
                self.metrics.burst_windows.inc()
            states[key] = window
            tally[(report.source, str(department))] += 1
            if unalerted:
                # Below the threshold to the end: no alert, no run, no closure. Counted,
                # said and audited, so no valid report ends silently (trial 6).
                self._unalerted(report.grid_cell, report.category, unalerted, not_alerted, dropped)
            if reason in ("late", "crowded") and not offers:
                # Never in its window, and offered to no group (each route it reaches
                # keeps a group per alert): no run can take it, nothing else would say it
                # (t148: it ended unsaid).
                only = [(report.report_id, report.source)]
                self._unalerted(report.grid_cell, report.category, only, not_alerted, dropped)
            offered += offers
            alerts += made
            try:
                for level, burst in opened:
                    self.metrics.alerts.labels("incident_burst", level, burst.severity).inc()
                    self.metrics.incident_bursts.labels(burst.department).inc()
            except Exception:  # a count costs no report nor batch (t205)
                self._say_incidents_count_failed(f"report {report.report_id!r}'s burst")
        await self.ctx.send_all(self.ctx.alerts, alerts)
        await self.ctx.send_all(self.ctx.routed, offered)
        await self._audit_unalerted(not_alerted)
        # (None: only duplicates of a window never opened.) Straight to the producer, as
        # the sweep writes them, then awaited: the offsets commit after.
        await self.ctx.burst_windows.set_many({k: w for k, w in states.items() if w is not None})
        # The city's clock for the sweep: the newest report its windows counted, as the
        # sweep takes it back from them (a report held aside as a clock jump moves no
        # clock until its time is reached: t185, one report dated a year ahead resolved
        # every cell's bursts and said their reports in no alert at the next sweep).
        for w in states.values():
            newest = newest_report_time(w, self.bursts.step)
            if newest is not None and newest > self.event_time:
                self.event_time = newest
        await self.ctx.app.producer.flush()
        try:
            self._count_unalerted(not_alerted)
            for (source, department), n in tally.items():
                self.metrics.incidents.labels(source, department).inc(n)
            self._say_dropped(dropped)
        except Exception:
            # t205: after the windows are stored, so a fault here failed a batch already
            # done and stopped the worker (its reports then read again as redelivered).
            self._say_incidents_count_failed(f"a batch of {len(events)} reports")

    def _say_incidents_count_failed(self, what: str) -> None:
        """Say (with the exception in hand's traceback, once a minute per exception type)
        that counting ``what`` failed: its reports are folded, alerts sent and windows
        stored, the counts not reached left out of the metrics."""
        exc = sys.exc_info()[1]
        self.ctx.say_failed(
            f"incidents:count:{type(exc).__name__}",
            f"incidents: counting {what} failed ({exc!r}): the reports are folded, their "
            "alerts sent and windows stored; the counts it did not reach are left out of "
            "the metrics",
            exc_info=True,
        )

    def _departments(self, reports: list[IncidentReport]) -> list[str | Exception]:
        """Each report's department, or the exception its text raised in the classifier
        (asked one report at a time only when the batch as a whole raised)."""
        try:
            return list(self.departments.predict([f"{r.category}: {r.text}" for r in reports]))
        except Exception:
            out: list[str | Exception] = []
            for r in reports:
                try:
                    out.append(self.departments.predict([f"{r.category}: {r.text}"])[0])
                except Exception as exc:
                    detach(exc)  # kept in the batch's list: no frames held with it
                    out.append(exc)
            return out

    async def sweep_bursts(self) -> int:
        """End what event time has passed in cells and categories that had no report of
        their own since: a burst whose window has thinned out resolves (its alert's
        ``ended_at`` is the event time it was seen at), and reports that left their window
        in no alert are counted, said and audited (``reports_not_alerted``), as the next
        report of their cell and category would have done (``BurstTracker.expire``).
        Event time is the newest report this worker has read in any cell, so a replay
        sweeps as the live stream does, and a quiet city is never swept by the wall
        clock. Skipped while tables recover or partitions move (another worker may own a
        cell by then). Windows ``BurstTracker.forgettable`` allows are deleted, with a
        tombstone, and counted; the windows per cell are counted afresh (the bound on
        categories per cell). Returns how many windows changed or were forgotten."""
        if self.ctx.reading_back() is not None:
            self._cell_windows = None  # windows come and go: the next batch counts afresh
            return 0
        async with self._bursts_settled:
            windows = [(where, self._rebased(w)) for where, w in all_windows(self.ctx)]
            # No report further ahead of the clock than this was accepted (``in_future``):
            # a window claiming one is damaged (a changelog entry), and its time set every
            # window's clock there, failing each episode's resolution (``ended_at`` past
            # the year 9999) at every sweep. It is left out of the clock and the sweep.
            horizon = time.time() + self.ctx.settings.max_future_skew
            ahead: dict[tuple[str, str], float] = {}
            # The reports read before a restart (or by the worker that held a cell
            # before a rebalance) are in the windows recovered from the changelog.
            for where, window in windows:
                newest = newest_report_time(window, self.bursts.step)
                if newest is not None and newest > horizon:
                    ahead[where] = newest
                elif newest is not None and newest > self.event_time:
                    self.event_time = newest
            if self.event_time == float("-inf"):
                return 0
            slot = math.floor(self.event_time / self.bursts.step)
            alerts: list[tuple[str, dict[str, Any]]] = []
            not_alerted: list[tuple[str, str, list[tuple[str, str]]]] = []
            dropped: dict[str, list[str]] = {}
            changed: dict[bytes, dict[str, Any]] = {}
            # Windows quiet for two days (``BurstTracker.forgettable``): dropped, so the
            # table holds the categories of the last days, not every one ever sent.
            forget: list[bytes] = []
            per_cell: Tally[str] = Tally()
            skipped = 0  # windows left as they were for a fault of their own
            grid = self.grid  # to the sweep's end, as a batch's (a reload may replace it)
            for (cell, category), state in windows:
                per_cell[cell] += 1
                if cell not in grid.cells:
                    # Kept from before a grid change dropped its cell: its labels cannot be
                    # had; it stays as it was (its reports were said or alerted then).
                    continue
                try:
                    if (cell, category) in ahead:
                        raise ValueError(
                            f"its newest report is at {ahead[(cell, category)]:.6g} (epoch s), "
                            "ahead of the clock by more than CITYBRAIN_MAX_FUTURE_SKEW "
                            f"({self.ctx.settings.max_future_skew:g} s)"
                        )
                    new, bursts, unalerted = self.bursts.expire(state, (cell, category), slot)
                    made = [self._burst_alert(b, self.event_time, grid) for b in bursts]
                except Exception as exc:  # one odd window costs only itself, not the timer
                    skipped += 1
                    self._say_window_failed(
                        f"{type(exc).__name__}: {exc}",
                        f"burst sweep: the window of {category!r:.80} at {cell} was left as "
                        f"it is, tried again next sweep: {exc!r:.300}; counted in "
                        'citybrain_loop_items_skipped_total{loop="burst_sweep"}',
                    )
                    continue
                key = burst_key(cell, category)
                if key in self.ctx.burst_windows.data and self.bursts.forgettable(new, slot):
                    forget.append(key)
                    per_cell[cell] -= 1
                elif new is state or new is None:
                    continue
                else:
                    changed[key] = new
                alerts += made
                if unalerted:
                    self._unalerted(cell, category, unalerted, not_alerted, dropped)
            self._cell_windows = per_cell
            self.metrics.burst_windows.set(per_cell.total())
            self.metrics.loop_items_skipped.labels("burst_sweep").inc(skipped)
            self.metrics.loop_items_failing.labels("burst_sweep").set(skipped)
            if not changed and not forget:
                return 0
            # As the incidents batch: alerts first, then the audit, then the states.
            await self.ctx.send_all(self.ctx.alerts, alerts)
            await self._audit_unalerted(not_alerted)
            # A rebalance during those awaits may have moved some cells away (and the
            # assignment forgotten their windows): they are not written back here, where
            # this worker would sweep them again; their new owner sweeps its own.
            owned = self.ctx.owned_partitions("incidents")
            kept = self.ctx.burst_windows.partition_for_key
            changed = {k: w for k, w in changed.items() if kept(k) in owned}
            forget = [k for k in forget if kept(k) in owned]
            await self.ctx.burst_windows.set_many(changed)
            await self.ctx.burst_windows.delete_many(forget)
            self.metrics.burst_windows_forgotten.inc(len(forget))
            await self.ctx.app.producer.flush()
            self._count_unalerted(not_alerted)
        self._say_dropped(dropped)
        return len(changed) + len(forget)

    def _rebased(self, window: dict[str, Any] | None) -> dict[str, Any] | None:
        """``window`` in this worker's sub-buckets (``BurstTracker.rebase``); one whose
        conversion raises (a damaged entry) as it is, for its own checks to judge."""
        try:
            return self.bursts.rebase(window)
        except Exception:
            return window

    def _unalerted(
        self,
        cell: str,
        category: str,
        unalerted: list[tuple[str, str]],
        not_alerted: list[tuple[str, str, list[tuple[str, str]]]],
        dropped: dict[str, list[str]],
    ) -> None:
        """Reports (id, channel) that left their window in no alert: noted for
        ``_audit_unalerted``, ``_count_unalerted`` (once their window is stored) and
        ``_say_dropped``."""
        dropped.setdefault("unalerted", []).extend(rid for rid, _ in unalerted)
        not_alerted.append((cell, category, list(unalerted)))

    def _count_unalerted(self, not_alerted: list[tuple[str, str, list[tuple[str, str]]]]) -> None:
        """Count the reports ``_audit_unalerted`` said, once the windows that let them go
        are stored (t152: counted before, so a kill before the store counted them again
        when the batch or sweep was made again)."""
        for _, _, unalerted in not_alerted:
            for _, source in unalerted:
                self.metrics.incidents_unalerted.labels(source).inc()

    async def _audit_unalerted(
        self, not_alerted: list[tuple[str, str, list[tuple[str, str]]]]
    ) -> None:
        """One ``reports_not_alerted`` record per window's reports (id, channel) that left
        it in no alert, sent before the window's store: a kill in between makes them again
        from the same stored window, so each record's ``id`` is made of its cell,
        category and report ids, the same when made again (a reader dedupes by it;
        before t152 a record had no id)."""
        for cell, category, unalerted in not_alerted:
            ids = [rid for rid, _ in unalerted]
            digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
            await self.ctx.audit(
                {
                    "id": f"{cell}:{category}:{digest}:not_alerted",
                    "action": "reports_not_alerted",
                    "at": time.time(),
                    "actor": "citybrain",
                    "detail": (
                        f"{len(ids)} report(s) of {category!r} at {cell} "
                        "left the burst window below the burst threshold: in no alert (a run "
                        "of their group open when they came covers them: report_covered)"
                    ),
                    "data": {"grid_cell": cell, "category": category, "report_ids": ids},
                }
            )

    def _say_dropped(self, dropped: dict[str, list[str]]) -> None:
        """An INFO line per reason on reports counted towards no burst: once a minute per
        reason (a gateway re-sending all day must not flood the log), the ones between
        counted on the next line."""
        for reason, ids in dropped.items():
            more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
            self._say_dropped_every(
                reason,
                f"incidents: {len(ids)} {reason} report(s) {DROPPED[reason]}: "
                f"{', '.join(ids[:5])}{more}",
                len(ids),
            )
