"""The corroboration stage: sensor alerts meet their neighbours' anomaly marks.

Flow (docs/detectors.md, "Broken sensor or real event?"): the detect agent sends each
batch's anomaly marks (readings whose rarity, the tail detector's score before its novelty
gate, is >= ``CITYBRAIN_CORROBORATION_AGREE``, at most one
per sensor per window/6 of event time) and its sensor alerts to ``<prefix>.corroboration``,
keyed by *area* (``streams.corroboration.Areas``): a mark goes to every area that counts
its sensor as a neighbour, an alert to its own sensor's area. So an alert and every mark
that can corroborate it share a partition, whichever worker scored them. The
``corroborate`` agent keeps each area's recent marks, held alerts and given labels in
the changelogged ``corroboration`` table, labels each alert (``corroboration``,
``neighbours_agreeing``, ``assessment``) and forwards it, alert id unchanged, to
``<prefix>.alerts`` (keyed by alert id, as before).

When: a corroborated or decisive alert goes on at once (a flood is never delayed by
this stage); a lone, non-decisive one waits up to ``CITYBRAIN_CORROBORATION_GRACE``
wall-clock seconds (30 s: the neighbours of one site or district report the same
timestamp, scored on other workers within a batch or two) for a neighbour's mark, then
goes on ``isolated`` as a suspected sensor fault. Delivery is at-least-once: forwards
reach Kafka before the state that records them; a replayed forward has the same alert id,
which the route and respond stages already take idempotently.

Thin wiring: the decisions are ``streams.corroboration``'s pure functions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any, cast

import faust
import orjson
from faust.types import TP, EventT

from streams.context import Context, alert_in_grid
from streams.corroboration import (
    ASSESSMENT_LABEL,
    LABEL,
    Areas,
    MarkThinner,
    Policy,
    checked_message,
    new_area_state,
    on_alert,
    on_mark,
    on_tick,
    record_mark,
    record_suspect,
    suspect_notes,
)
from streams.detection import AlertEvent, BatchResult, SensorDetection
from streams.errors import EventError
from streams.events import (
    MAX_MESSAGE_BYTES,
    alert_time,
    alert_times_utc,
    message_json,
    refuse_unwritable_number,
)
from streams.logs import SayEvery
from streams.partitioning import key_partition
from streams.tables import (
    BAD_SHAPE,
    KeyPartitionedTable,
    UnreadableEntryError,
    key_partitioned_table,
    read_document,
)

log = logging.getLogger(__name__)

ROLE = "corroboration"
TABLE = "corroboration"


# An area's stored state: its fields and their types (``new_area_state``).
_AREA_FIELDS = (("marks", dict), ("held", dict), ("labelled", dict))


def read_area_state(entry: bytes) -> dict[str, Any]:
    """An area's changelog entry as its state (``new_area_state``'s shape); raises
    ``UnreadableEntryError`` as ``read_document`` does, and ``bad_shape`` for a state
    without ``marks``, ``held`` or ``labelled`` objects or with a ``newest`` that is not a
    number or null (the release timer read ``held`` of every area: one without it crashed
    the worker at each start)."""
    state = read_document(entry)
    for name, kind in _AREA_FIELDS:
        if not isinstance(state.get(name), kind):
            raise UnreadableEntryError(
                BAD_SHAPE, f"area state: field {name!r} is {state.get(name, 'missing')!r:.60}"
            )
    newest = state.get("newest")
    if newest is not None and (isinstance(newest, bool) or not isinstance(newest, int | float)):
        raise UnreadableEntryError(BAD_SHAPE, f"area state: field 'newest' is {newest!r:.60}")
    problem = _area_problem(state)
    if problem is not None:
        raise UnreadableEntryError(BAD_SHAPE, f"area state: {problem}")
    # The held alerts' times as the alerts door writes them on (``alert_times_utc``):
    # released, they go to the alerts door, which refuses the spellings only an earlier
    # worker took (t144: one held with ``…t12:00:00z`` before t140 was ``bad_alert``).
    for held in state["held"].values():
        held["alert"] = alert_times_utc(held["alert"])
        if isinstance(held.get("resolved"), dict):
            held["resolved"] = alert_times_utc(held["resolved"])
    return state


def _number(value: Any) -> bool:
    return type(value) in (int, float)


def _mark_value(message: dict[str, Any]) -> float | None:
    """A checked mark's reading value (``checked_message``); None when a worker before
    t199 sent none."""
    value = message.get("value")
    return None if value is None else float(value)


def _held_alert(alert: Any) -> bool:
    """An alert as ``_assess_alert`` and the release read it."""
    if not isinstance(alert, dict) or not isinstance(alert.get("alert_id", ""), str):
        return False
    if not isinstance(alert.get("sensor_id"), str) or not _number(alert.get("score")):
        return False
    try:
        alert_time(alert.get("started_at"), "started_at", stored=True)
    except EventError:
        return False
    return True


def _area_problem(state: dict[str, Any]) -> str | None:
    """What is wrong inside an area's fields (``read_area_state``), or None: each judged
    here once, where before a mark list, a held alert or a label set of another shape
    failed every alert, mark or release tick of its area (the timer's fault said once a
    minute, the alert dead-lettered) for as long as the area lived."""
    for sensor, times in state["marks"].items():
        if not isinstance(times, list) or not all(_number(t) for t in times):
            return f"marks of {sensor!r:.40} are {times!r:.60}, expected event times"
        if any(a > b for a, b in pairwise(times)):
            return f"marks of {sensor!r:.40} are not in time order"
    values = state.get("values", {})
    if not isinstance(values, dict):
        return f"values are {values!r:.60}, expected each sensor's mark values"
    for sensor, got in values.items():
        # Aligned with the sensor's marks (``record_mark``): the values a witness is
        # judged by (t199).
        times = state["marks"].get(sensor, [])
        if (
            not isinstance(got, list)
            or len(got) != len(times)
            or not all(v is None or _number(v) for v in got)
        ):
            return f"values of {sensor!r:.40} are {got!r:.60}, expected one per mark"
    suspects = state.get("suspects", {})
    if not isinstance(suspects, dict):
        return f"suspects are {suspects!r:.60}, expected each sensor's suspected faults"
    for sensor, times in suspects.items():
        if (
            not isinstance(times, list)
            or not all(_number(t) for t in times)
            or any(a > b for a, b in pairwise(times))
        ):
            return f"suspects of {sensor!r:.40} are {times!r:.60}, expected event times in order"
    for alert_id, held in state["held"].items():
        if (
            not isinstance(held, dict)
            or not _number(held.get("held_at"))
            or not _held_alert(held.get("alert"))
            or ("resolved" in held and not isinstance(held["resolved"], dict | None))
        ):
            return f"held alert {alert_id!r:.40} is {held!r:.60}, expected its alert and held_at"
        # t166: held under another alert's id (another tool's entry), it was released as
        # its own alert but labelled, and its resolution held, under the other id: the
        # resolution of the alert released went on alone, labelled afresh.
        resolved = held.get("resolved")
        for what, alert in (("alert", held["alert"]), ("resolution", resolved)):
            inner = alert.get("alert_id") if isinstance(alert, dict) else alert_id
            if inner != alert_id:
                return (
                    f"held alert {alert_id!r:.40} holds the {what} of {inner!r:.40}: "
                    "an alert is held under its own id"
                )
    for alert_id, labels in state["labelled"].items():
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            return f"labels of {alert_id!r:.40} are {labels!r:.60}, expected text"
    return None


class CorroborationStage:
    """Owns the corroboration topic, table, agent and timer; ``send`` is the detect
    agent's one call. With ``CITYBRAIN_CORROBORATION=false`` alerts go straight to the
    alerts topic, unlabelled (the stage of before issue 13)."""

    def __init__(self, app: faust.App, ctx: Context, detection: SensorDetection):
        settings = ctx.settings
        self.app, self.ctx, self.enabled = app, ctx, settings.corroboration
        self.areas = Areas(ctx.grid)
        self.policy = Policy(
            window=settings.corroboration_window,
            decisive=settings.corroboration_decisive,
            grace=settings.corroboration_grace,
        )
        # Well inside the window, so a thinned-out mark still lands within it.
        self.thinner = MarkThinner(settings.corroboration_window / 6)
        self.topic_name = settings.topic(ROLE)
        self.topic = app.topic(
            self.topic_name,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        self.table = cast(
            KeyPartitionedTable,
            key_partitioned_table(app, TABLE, settings.partitions, decode=read_area_state),
        )
        # The agent and the timer both rewrite an area's state across awaits.
        self.lock = asyncio.Lock()
        self._say_release_failed = SayEvery(log, prefix="citybrain: ")
        if not self.enabled:
            return
        detection.mark_at = settings.corroboration_agree
        self.initialise_kinds(ctx.grid.kinds)

        async def corroborate(stream: faust.StreamT[bytes]) -> None:
            manual = cast(faust.Stream[bytes], stream).noack()  # acked once handled
            async for event in manual.events():
                await ctx.guarded(ROLE, self.on_message, event)
                await manual.ack(event)

        say_release_fault = SayEvery(log, logging.ERROR, prefix="citybrain: timer ")

        async def release_held() -> None:
            # faust ends a timer, and crashes the worker, on its first exception: one
            # area's state no code reads must not stop every area's releases.
            try:
                await self.release_due()
            except Exception as exc:
                self.ctx.metrics.timer_failures.labels("corroboration release").inc()
                say_release_fault(
                    "corroboration release",
                    f"releasing held alerts failed, tried again next tick: {exc!r}",
                    exc_info=True,
                )

        async def forget_moved(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
            # As for sensor states (streams/app.py): areas of partitions now owned elsewhere.
            kept = {tp.partition for tp in assigned if tp.topic == self.topic_name}
            self.table.forget_partitions(set(range(settings.partitions)) - kept)

        app.agent(self.topic)(corroborate)
        app.timer(interval=min(5.0, max(0.5, self.policy.grace / 3)))(release_held)
        app.on_partitions_assigned.connect(forget_moved)  # type: ignore[arg-type]

    def initialise_kinds(self, kinds: Iterable[str]) -> None:
        """The zero series of ``citybrain_alerts_corroboration_total`` for ``kinds`` (the
        grid's; a reload that brings new kinds calls it again). Idempotent; none when
        corroboration is off."""
        if not self.enabled:
            return
        for kind in kinds:
            for label, assessment in (
                ("corroborated", "event"),
                ("isolated", "event"),
                ("isolated", "suspected_sensor_fault"),
            ):
                self.ctx.metrics.alerts_corroboration.labels(kind, label, assessment)

    # -- the detect agent's side ---------------------------------------------------------
    async def send(
        self, result: BatchResult, alert_doc: Callable[[AlertEvent], dict[str, Any]]
    ) -> None:
        """Send a detected batch's marks and sensor alerts on, awaiting delivery (the
        caller's state write comes after). Marks first: an alert then finds the marks of
        its own batch."""
        direct = [(a.alert_id, alert_doc(a)) for a in result.alerts]
        if not self.enabled:
            await self.ctx.send_all(self.ctx.alerts, direct)
            return
        areas, items, alone = self.areas, [], []
        n_marks = 0
        for sensor_id, ts, score, value in result.marks:
            try:
                to = areas.mark_areas(sensor_id)
            except KeyError:
                # A sensor the grid in force no longer holds: a reload (at one of the
                # batch's awaits) removed it after its readings were admitted. It is
                # nobody's neighbour now, so its mark goes nowhere, as its alert goes
                # unlabelled below (t156: the KeyError failed the whole batch).
                continue
            if self.thinner.admit(sensor_id, ts):
                n_marks += 1
                mark = {
                    "type": "mark",
                    "sensor_id": sensor_id,
                    "ts": ts,
                    "score": score,
                    "value": value,  # t199: a copy or a stuck sensor is no witness
                }
                items += [(area, mark) for area in to]
        for alert_id, doc in direct:
            try:
                items.append((areas.area(doc["sensor_id"]), {"type": "alert", "alert": doc}))
            except KeyError:  # a sensor the grid of this worker does not know: unlabelled
                alone.append((alert_id, doc))
        await self.ctx.send_all(self.topic, items)
        await self.ctx.send_all(self.ctx.alerts, alone)
        self.ctx.metrics.corroboration_marks.inc(n_marks)

    # -- the corroborate agent -----------------------------------------------------------
    async def on_message(self, event: EventT[bytes]) -> None:
        """One mark or alert for an area: update the area's state, forward what is due."""
        # The grid and the areas built from it, taken once before the first await and
        # used to the message's end (t159: the cell was checked by the grid in force and,
        # after the wait for the lock, the alert assessed by the areas a reload put in
        # force there: its sensor removed, a neighbour's marks counted for nothing).
        grid, areas = self.ctx.config.grid, self.areas
        key = event.key if isinstance(event.key, bytes) else str(event.key).encode()
        message = message_json(event.value)  # EventError: dead-lettered bad_json by guarded
        # EventError, dead-lettered naming the field: what an area keeps must read back.
        message = checked_message(message, time.time(), self.ctx.settings.max_future_skew)
        # An area keeps its held alerts whole and forwards them: each number must be one
        # its encoder writes (t128, t137: a TypeError with a traceback). After the fields'
        # own rules, which name a score of 1e400 as no score from 0 to 1.
        code = "bad_alert" if message["type"] == "alert" else "bad_mark"
        refuse_unwritable_number(event.value, message, code)
        if message["type"] == "alert":  # held, then forwarded to the alerts agent (t137)
            alert_in_grid(message["alert"], grid, "bad_alert", at="alert.")
        async with self.lock:
            if message["type"] == "mark" and self._mark_in_place(key, message):
                return
            if message["type"] == "suspect":
                # Releases nothing (a suspect only takes a witness away): in place, its
                # entry staged for the commit, as a mark for an area holding no alert.
                stored = self.table.data.get(key)
                state = new_area_state() if stored is None else stored
                record_suspect(state, str(message["sensor_id"]), float(message["ts"]), self.policy)
                self.table.stage_many({key: state})
                return
            state = self._state(key)
            before = len(state["held"])
            if message["type"] == "mark":
                out = on_mark(
                    state,
                    str(message["sensor_id"]),
                    float(message["ts"]),
                    time.time(),
                    areas,
                    self.policy,
                    _mark_value(message),
                )
            else:  # an alert (the type was checked above)
                out = on_alert(state, message["alert"], time.time(), areas, self.policy)
            entry = self.table.encode(state)  # measured here, written as is
            size = len(entry)
            if size > MAX_MESSAGE_BYTES:
                # Checked before anything goes out: the area keeps every alert it holds in
                # one changelog entry, and one the producer refused was a processing_error
                # with a traceback naming no area (t99: four alerts of 400 kB held at once).
                code = "bad_alert" if message["type"] == "alert" else "bad_mark"
                raise EventError(
                    code,
                    None,
                    None,
                    f"area {key.decode(errors='replace')[:200]!r}'s state with it would be "
                    f"{size:,} bytes ({before} alerts held), more than one Kafka message "
                    f"holds ({MAX_MESSAGE_BYTES:,}): not taken, the area kept as it was",
                )
            await self._forward(key, state, out, entry)
            # At once (the timer recounts exactly): the demo waits for held alerts.
            self.ctx.metrics.corroboration_held.inc(len(state["held"]) - before)

    async def release_due(self) -> None:
        """Forward the held alerts whose grace period is over (this worker's areas)."""
        if self.ctx.reading_back() is not None:
            return
        mine = {
            tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.topic_name
        }
        n = self.ctx.settings.partitions
        now = time.time()
        async with self.lock:
            held = skipped = 0
            for key, stored in list(self.table.data.items()):
                if self.ctx.moving():
                    # Begun during this pass (an earlier area's await): this area may be
                    # moving to a worker that recovers it without this release and
                    # releases it again. The next pass, after the rebalance, sees only
                    # this worker's areas (and sets the gauge; this one counted part).
                    return
                if not stored or not stored["held"] or key_partition(key, n) not in mine:
                    continue
                if not any(
                    abs(now - h["held_at"]) >= self.policy.grace for h in stored["held"].values()
                ):
                    # Nothing due (``on_tick``'s rule): not copied. Every tick copied each
                    # area holding an alert, whole, to find nothing due: 8 ms a tick for a
                    # street of 2,000 gauges with a day's marks, for the grace of each of
                    # its lone alerts (t199).
                    held += len(stored["held"])
                    continue
                try:
                    state = orjson.loads(orjson.dumps(stored))
                    out = on_tick(state, now, self.areas, self.policy)
                    if out:  # an area with nothing due is not rewritten
                        await self._forward(key, state, out)
                except Exception as exc:
                    # One area that cannot be released (a send that failed, a state of
                    # another version) keeps its held alerts for the next tick; it ended
                    # the pass, and faust ends a timer, and the worker, on its first
                    # exception (trial 26). Said once a minute per cause.
                    area = key.decode(errors="replace")
                    self._say_release_failed(
                        f"{type(exc).__name__}: {exc}",  # per cause: a broker away fails all
                        f"corroboration: the held alerts of area {area} were left as they "
                        f"are, tried again next tick: {type(exc).__name__}: {exc} (counted in "
                        'citybrain_loop_items_skipped_total{loop="corroboration_release"})',
                    )
                    held += len(stored["held"])
                    skipped += 1
                    continue
                held += len(state["held"])
            # Read by the demo, which waits for held alerts before its summary.
            self.ctx.metrics.corroboration_held.set(held)
            # Areas left as they were this pass (each tried again next tick).
            self.ctx.metrics.loop_items_skipped.labels("corroboration_release").inc(skipped)
            self.ctx.metrics.loop_items_failing.labels("corroboration_release").set(skipped)

    def _mark_in_place(self, key: bytes, message: dict[str, Any]) -> bool:
        """Record a mark for an area holding no alert (nearly every mark) in the stored
        state itself, its changelog entry staged for the next commit; False (nothing
        done) for an area holding alerts, which the mark may release.

        Copying the area's state and writing it through for every mark cost a busy area
        (thousands of sensors' marks) its whole state twice per mark: 16 % of a
        catch-up worker's time with 200 sensors per community (issue 14). A mark
        changes nothing downstream, so its entry can wait for the commit (as sensor
        states do, ``coalesce_changelog``): a worker that dies before it is replaced by
        one that reads the uncommitted marks again, and recording one is idempotent. No
        await between the read and the write: the state is never seen half-changed."""
        stored = self.table.data.get(key)
        if stored is not None and stored["held"]:
            return False
        state = new_area_state() if stored is None else stored
        record_mark(
            state,
            str(message["sensor_id"]),
            float(message["ts"]),
            self.policy,
            _mark_value(message),
        )
        self.table.stage_many({key: state})
        return True

    def _state(self, key: bytes) -> dict[str, Any]:
        stored = self.table.data.get(key)
        # A copy: the stored state stays as it was if forwarding fails midway.
        return orjson.loads(orjson.dumps(stored)) if stored else new_area_state()

    async def _forward(
        self,
        key: bytes,
        state: dict[str, Any],
        out: list[dict[str, Any]],
        entry: bytes | None = None,
    ) -> None:
        # Alerts on Kafka before the state that says they were forwarded. ``entry``:
        # the state's changelog bytes, measured by the caller (the state is its own
        # copy, which nothing else reaches until it is stored).
        await self.ctx.send_all(self.ctx.alerts, [(a["alert_id"], a) for a in out])
        # Before the state that records the forward: a crash in between sends them again,
        # and recording a suspect twice is once (t199).
        area = key.decode(errors="replace")
        await self.ctx.send_all(self.topic, suspect_notes(out, area, self.areas))
        for alert in out:
            if alert["status"] == "firing":
                labels = alert["labels"]
                self.ctx.metrics.alerts_corroboration.labels(
                    self.ctx.label_kind(alert["kind"]), labels[LABEL], labels[ASSESSMENT_LABEL]
                ).inc()
        await self.table.set_many({key: state}, None if entry is None else {key: entry})
