"""Alerting and routing: the ``alerts`` agent's handler and the mute re-check timer.

Each alert (decoded from ``alerts``) updates the ``firing`` table, is checked against the
active silences (the ``silences`` table) and inhibition, and goes through the routing tree
(``playbooks.routing``) to one message per matched route on ``routed``, keyed by the
route's group key; suppressed alerts are audited instead, and a firing one is kept in
the ``muted`` table (keyed by alert id, on the alert's ``alerts`` partition).

As Alertmanager re-applies silences and inhibition at every flush of a group, a timer
(every ``CITYBRAIN_MUTE_CHECK_INTERVAL`` wall-clock seconds) re-checks the muted firing
alerts of this worker's ``alerts`` partitions: one whose silence ended or whose
inhibiting alert resolved is routed then, exactly as if it had arrived unmuted, and
leaves the table (audited ``alert_unmuted``). Routed before it leaves: a worker that dies
in between routes it again after its restart, which the respond stage takes as the
repeat it is (runs are idempotent per alert id).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, cast

import orjson
from faust.types import TP, EventT, Message

from playbooks.engine import ReportsCovered
from playbooks.errors import BadEventError, RoutingConfigError
from playbooks.loader import catch_all_warnings, routing_errors, unrouted_playbooks
from playbooks.routing import (
    Decision,
    Route,
    Silence,
    label_set,
    label_values,
)
from playbooks.schema import Playbook
from streams.context import BatchedMessage, Config, Context, alert_in_grid
from streams.errors import MISSING, EventError, shown_key
from streams.events import (
    MAX_ID_CHARS,
    MAX_MESSAGE_BYTES,
    alert_fields,
    alert_has_ended,
    epoch_seconds_fault,
    message_json,
    refuse_alert_ahead,
    refuse_unwritable_number,
)
from streams.logs import SayEvery
from streams.partitioning import PASS_ON_HEADROOM, key_partition, pass_on_bytes, placement_hint
from streams.tables import (
    BAD_SHAPE,
    KeyPartitionedGlobalTable,
    KeyPartitionedTable,
    Unreadable,
    UnreadableEntryError,
    key_partitioned_table,
    read_document,
)

log = logging.getLogger(__name__)


# Report ids a muted alert's entry keeps, newest last (a burst's follow-ups, muted too,
# each add theirs): the run opened at its release covers them. Bounds the entry (one
# Kafka message, about 60 bytes a report).
MUTED_REPORTS = 1_000
TABLE = "muted"
# Seconds a silence is kept after it ended (listed by `silences list`, ended), then
# forgotten: Alertmanager's --data.retention default (120 h), after which its silences'
# garbage collection drops an expired silence (silence/silence.go, ``GC``).
SILENCE_RETENTION = 120 * 3600.0


def muted_entry(
    previous: Mapping[str, Any] | None, alert: dict[str, Any], decision: Decision, now: float
) -> dict[str, Any]:
    """The ``muted`` table's entry for a firing ``alert`` that ``decision`` mutes:
    ``{"alert": the newest alert document, "mute": "silenced" | "inhibited", "by": the
    silence's or the inhibiting alert's id, "since": epoch s first muted, "noted": whether
    its groups were told of it (its ``muted`` notices on the routed topic)}``. The reports
    of the alert's earlier muted messages (``previous``' entry) stay in its ``reports``,
    the newest ``MUTED_REPORTS``, each once: a burst's follow-ups while it was muted are
    covered by the run its release opens. An entry stored before ``noted`` existed was
    told (it was stored after its notices then)."""
    reports = list(alert.get("reports") or [])
    if previous is not None and isinstance(previous.get("alert"), Mapping):
        earlier = previous["alert"].get("reports") or []
        if isinstance(earlier, list) and earlier:
            seen: set[Any] = set()
            merged = []
            for item in [*earlier, *reports]:
                rid = item.get("report_id") if isinstance(item, Mapping) else None
                if rid in seen:
                    continue
                seen.add(rid)
                merged.append(item)
            reports = merged[-MUTED_REPORTS:]
    if reports:
        alert = {**alert, "reports": reports}
    since = previous.get("since") if previous is not None else None
    return {
        "alert": alert,
        "mute": decision.mute,
        "by": decision.muted_by,
        "since": since if isinstance(since, int | float) else now,
        "noted": previous is not None and previous.get("noted", True) is True,
    }


def misplaced_alert(event: Any, alert_id: str, partitions: int) -> int | None:
    """The partition an alert with id ``alert_id`` belongs on (its id's, where the
    ``muted`` table keeps its entry: ``key_partition(alert_id, partitions)``) when
    ``event``'s Kafka message is on another, else None. An event handed to the stage
    without its message (the stage driven directly) is taken where it is."""
    msg = getattr(event, "message", None)
    if msg is None:
        return None
    home = key_partition(alert_id.encode(), partitions)
    return None if msg.partition == home else home


def checked_alert(doc: Any, *, stored: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """An alert of the alerts topic checked as the ``muted`` table's read-back checks
    its alert (the one rule for both): ``alert_fields``, its labels a label set, its
    ``reports`` a list of ``{"report_id", "channel"}`` as a run takes them. Returns the
    alert and its labels; raises ``EventError`` (``bad_alert``) naming the field and
    value (helper t59: an alert whose ``reports`` were ``"x"`` was stored while muted,
    then dropped as ``bad_shape`` at the next start, with no dead letter; labels of
    another shape were said as ``RoutingConfigError('…')``). An alert of no label with a
    value is refused as it arrives (t138, Alertmanager's rule), read back when ``stored``;
    so is one that ends before it starts (t139, ``refuse_ended_before_started``)."""
    alert = alert_fields(doc, stored=stored)
    labels = alert.get("labels", MISSING)
    if labels is MISSING:
        raise EventError("bad_alert", "labels", MISSING, "expected a mapping of names to text")
    try:
        checked = label_set(labels, need_one=not stored)
    except RoutingConfigError as exc:
        raise EventError("bad_alert", "labels", labels, str(exc)) from None
    reports = alert.get("reports")
    if reports is not None and not isinstance(reports, list):
        raise EventError("bad_alert", "reports", reports, "expected a list (or null)")
    try:
        ReportsCovered.from_alert(alert, 0.0)
    except BadEventError as exc:
        raise EventError("bad_alert", "reports", reports, str(exc)) from None
    return alert, checked


def read_muted(entry: bytes) -> dict[str, Any]:
    """A ``muted`` changelog entry as its entry (``muted_entry``'s shape), judged once
    here: its alert as the alerts agent reads one (``alert_fields``; labels a label
    set; ``reports`` as a run takes them), ``mute`` silenced or inhibited, ``by`` text,
    ``since`` epoch seconds in the years 0001-9999 (t154: a number past them, 1e300,
    was routed at each tick with a ``grouped_at`` the routed door refuses, then failed
    its audit showing it as a date, so was kept and routed again, forever).
    ``UnreadableEntryError`` as ``read_document``, and ``bad_shape``
    naming the field (before, the mute re-check met it at its first tick; a ``since`` or
    a report of another shape failed the log line or the run it was released to). Its
    alert's times are read back written as RFC 3339 in UTC (``alert_times_utc``)."""
    doc = read_document(entry)
    try:
        # Its times as the alerts door writes them on (``alert_times_utc``): released,
        # it goes to the routed door, which refuses the spellings only an earlier worker
        # took (t144: a ``…t12:00:00z`` stored before t140 was then ``bad_routed``).
        doc["alert"] = checked_alert(doc.get("alert"), stored=True)[0]
    except EventError as exc:
        raise UnreadableEntryError(BAD_SHAPE, f"muted alert: {exc}") from None
    for name, ok in (
        ("mute", doc.get("mute") in ("silenced", "inhibited")),
        # At most an id's length (a silence's or an alert's: 256): it goes into the
        # release's audit id; a larger one failed that audit after the routing, kept
        # and routed again every tick (t154, the long silence id's sibling).
        ("by", isinstance(doc.get("by"), str) and len(doc["by"]) <= MAX_ID_CHARS),
        ("since", epoch_seconds_fault(doc.get("since")) is None),
    ):
        if not ok:
            raise UnreadableEntryError(
                BAD_SHAPE, f"muted alert: field {name!r} is {doc.get(name)!r:.60}"
            )
    return doc


def muted_key_fault(key: bytes, entry: Any) -> str | None:
    """Why a ``muted`` entry read back (``read_muted``'s) does not belong under ``key``,
    or None: its alert's ``alert_id`` is its key, as the alerts agent stores it (t166:
    one stored under another alert's key, from another tool's changelog entry, was
    released under its own id once the alert of the key was no longer muted, and
    dropped when that one resolved: the listed key was never the alert routed)."""
    alert_id = entry["alert"]["alert_id"]
    if alert_id.encode("utf-8", "surrogatepass") == key:
        return None
    return (
        f"muted alert: its alert_id {shown_key(alert_id)!r} is not its key: an entry is "
        "stored under its own alert's id"
    )


# Muted alerts re-checked between two yields to the event loop.
RECHECK_YIELD_EVERY = 256


@dataclasses.dataclass
class _Freed:
    """A muted alert freed by a mute-check pass (``Alerting._recheck``), its routed
    messages queued: ``entry``, its ``muted`` entry as the pass read it (dropped only if
    still that one); ``futures``, their deliveries; ``audit``, its ``alert_unmuted``
    record (None for one whose ``ended_at`` passed while it was muted, routed as its
    resolution: neither audited nor counted unmuted); ``kind`` and ``mute``, the labels
    it is counted under."""

    key: bytes
    entry: Mapping[str, Any]
    futures: list[Awaitable[Any]]
    audit: dict[str, Any] | None  # None: its end passed, routed as its resolution (t213)
    kind: str
    mute: str


class Alerting:
    """Alerts to routed alerts: silences, inhibition and the routing tree; muted firing
    alerts re-checked and routed once no longer muted."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.metrics = ctx.metrics
        self.topic_name = ctx.settings.topic("alerts")
        # Firing alerts kept from their receivers, keyed by alert id: partitioned as the
        # alerts topic, so each worker re-checks the alerts of its own partitions (two
        # workers never route the same one) and a restarted owner recovers them.
        self.muted = cast(
            KeyPartitionedTable,
            key_partitioned_table(
                ctx.app,
                TABLE,
                ctx.settings.partitions,
                decode=read_muted,
                key_fault=muted_key_fault,
            ),
        )
        # The agent and the re-check timer both read an alert's entry, await Kafka, then
        # write or drop it: one at a time, so a resolution is never overtaken.
        self.settled = asyncio.Lock()
        self._say_recheck_failed = SayEvery(log, prefix="citybrain: ")
        self._say_passed_on = SayEvery(log, prefix="citybrain: ", what="misplaced alert")
        # A matcher on a value no alert carries (a kind the grid lacks) never matches:
        # `citybrain playbooks check` refuses it; the worker starts, and says so.
        _, self.never_matching = routing_errors(
            ctx.settings.routing_file, ctx.playbooks, label_values(ctx.grid)
        )
        # And a playbook no route names, which no alert will run (the check says it too).
        self.unrouted = unrouted_playbooks(ctx.settings.routing_file, ctx.router, ctx.playbooks)
        # And a route or inhibit rule that matches every alert (t197).
        self.catch_all = catch_all_warnings(
            ctx.settings.routing_file, ctx.router, label_values(ctx.grid)
        )
        if self.never_matching or self.unrouted or self.catch_all:

            @ctx.app.task  # type: ignore[untyped-decorator]
            async def announce_never_matching() -> None:
                for line in [*self.never_matching, *self.unrouted, *self.catch_all]:
                    log.warning("citybrain: %s (`citybrain playbooks check`)", line)

        async def forget_moved(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
            # As for runs (streams/context.py): entries of partitions now owned elsewhere,
            # whose new owner re-checks and routes them.
            async with self.settled:
                self.muted.forget_partitions(ctx.lost_partitions(assigned, "alerts"))

        ctx.app.on_partitions_assigned.connect(forget_moved)  # type: ignore[arg-type]
        # The routed messages of the alerts batch being handled, queued and not yet known
        # to be on Kafka, each with the alert message it routes (``on_alert_batch``);
        # None outside a batch (``on_alert`` awaits each alert's own).
        self._queued: list[tuple[Awaitable[Any], EventT[bytes]]] | None = None
        # The batch's alerts muted on arrival whose notices to their groups are queued
        # with the batch's (alert key, its entry as stored, its message): marked told
        # once those are delivered (``on_alert_batch``).
        self._told: list[tuple[bytes, dict[str, Any], EventT[bytes]]] = []
        # The batch's alerts routed with a muted entry left behind (resolved, or come
        # unmuted): (alert key, that entry, its message), the entry dropped once their
        # routed messages are delivered (``on_alert_batch``); their keys, which the
        # re-check timer leaves and a later message of the batch takes as unmuted.
        self._release: list[tuple[bytes, Any, EventT[bytes]]] = []
        self._releasing: set[bytes] = set()
        self._event: EventT[bytes] | None = None  # the batch's message being handled

    # -- routing ---------------------------------------------------------------------
    async def on_alert_batch(self, messages: Sequence[Message]) -> None:
        """A batch of alerts (one partition's fetch, in offset order), each handled as
        ``on_alert`` handles one (its faults dead-lettered alone), except that the routed
        messages of an alert that leaves no muted entry behind are queued and their
        delivery awaited once, at the batch's end: before, each alert awaited its own (a
        Kafka round trip), and a storm of alerts held every other alert read after it
        for as many round trips (t187, the routed agent's sibling). A routed message
        Kafka refuses dead-letters its alert with the reason, as before. Nothing of the
        batch is acked before every one is delivered (the caller acks once this returns).

        So are the notices of an alert muted on arrival to its groups (t193: each muted
        alert of a storm, silenced or inhibited, awaited its own, a round trip per
        alert); its entry is marked told once they are delivered, at the batch's end (a
        kill before tells again, as before: a notice twice is one member). And so are
        the routed messages of an alert with a muted entry (its resolution, or a message
        no longer muted; t208: each awaited its own, so a silenced storm resolving was a
        round trip per alert): its entry is dropped once they are delivered, if still
        the one it had (a kill before routes it again, a repeat to its run)."""
        queued: list[tuple[Awaitable[Any], EventT[bytes]]] = []
        self._queued, self._told, self._release = queued, [], []
        try:
            for message in messages:
                event = cast(EventT[bytes], BatchedMessage(message))
                await self.ctx.guarded("alerts", self._on_alert_queued, event)
                await asyncio.sleep(0)  # a queued send does not yield: let the rest run
        finally:
            self._queued = None
        failed: set[int] = set()
        for fut, event in queued:
            try:
                await fut
            except Exception as exc:
                if id(event) in failed:
                    continue  # one dead letter for its alert, however many routes failed
                failed.add(id(event))
                msg = event.message
                self.ctx.say_failed(
                    f"alerts:{type(exc).__name__}",
                    f"alerts: routing {msg.topic}/{msg.partition}/{msg.offset} failed",
                    exc_info=True,
                )
                text = f"{type(exc).__name__}: {exc}"
                await self.ctx.dead_letter("alerts", event, "processing_error", text[:500])
        release, self._release = self._release, []
        for key, entry, event in release:
            self._releasing.discard(key)
            if id(event) in failed:
                continue  # not routed: its entry stays, released when read again
            async with self.settled:
                if self.muted.data.get(key) is entry:
                    del self.muted[key]
        told, self._told = self._told, []
        for key, entry, event in told:
            if id(event) in failed:
                continue  # not told: its entry stays unmarked, told again when read again
            async with self.settled:
                current = self.muted.data.get(key)
                # Still the entry whose notices went out (not freed by the re-check
                # timer meanwhile, nor muted another way since, with notices of its own).
                if current is not None and all(
                    current.get(f) == entry.get(f) for f in ("alert", "mute", "by", "since")
                ):
                    await self.muted.set_many({key: {**current, "noted": True}})

    async def _on_alert_queued(self, event: EventT[bytes]) -> None:
        self._event = event
        await self.on_alert(event)

    async def on_alert(self, event: EventT[bytes]) -> None:
        # One configuration for the whole message, taken before its first await (t133,
        # t159: the cell was checked by the grid in force, and after the wait for the
        # stage's lock the alert was routed by whatever a reload put in force there).
        config = self.ctx.config
        try:
            doc = message_json(event.value)
            refuse_unwritable_number(event.value, doc, "bad_alert")  # it is routed on whole
            alert, labels = checked_alert(doc)
            refuse_alert_ahead(alert, time.time(), self.ctx.settings.max_future_skew, "bad_alert")
            # A cell the grid lacks opened a run no unit owns (t137).
            alert_in_grid(alert, config.grid, "bad_alert")
        except EventError as exc:  # says why (a tombstone, a byte not UTF-8, a field)
            await self.ctx.dead_letter("alerts", event, "bad_alert", f"alert not readable: {exc}")
            return
        alert_id, status = alert["alert_id"], alert["status"]
        home = misplaced_alert(event, alert_id, self.ctx.settings.partitions)
        if home is not None:
            # t205: its muted entry would live on a partition another worker may own.
            await self._pass_on(event, alert_id, home)
            return
        async with self.settled:
            await self._on_alert(alert, alert_id, status, labels, config)

    async def _pass_on(self, event: EventT[bytes], alert_id: str, home: int) -> None:
        """Send an alert that arrived on another partition than its id's (a producer that
        keyed it otherwise: by sensor, by cell, or not at all) on to its id's partition,
        keyed by its id, its bytes and headers unchanged; its delivery awaited before it
        is acked here (in a batch, with the batch's routed messages: a refusal
        dead-letters it). The worker owning that partition routes it, mutes it and
        re-checks it. Before t205 the worker that read it stored its muted entry under
        its id, on that other partition's changelog: with two workers its owner never
        saw it, so a silenced alert was never routed when its silence ended (and a
        firing alert and its resolution keyed apart were handled by two workers)."""
        msg = event.message
        size = pass_on_bytes(msg.value, msg.headers)
        if size > MAX_MESSAGE_BYTES - PASS_ON_HEADROOM:
            raise EventError(
                "bad_alert",
                None,
                None,
                f"the alert is on partition {msg.partition}, its alert_id's is {home}, and "
                f"passed on there with its headers it would be {size:,} bytes, more than "
                f"the worker's producer writes ({MAX_MESSAGE_BYTES:,}): send it keyed by "
                "its alert_id (docs/events.md, Alerts), or with fewer headers",
            )
        key = msg.key if isinstance(msg.key, bytes) else None
        hint = placement_hint(key, alert_id, msg.partition, self.ctx.settings.partitions)
        # Once a minute per partition: a producer that keys every alert otherwise would
        # write a line per alert.
        self._say_passed_on(
            f"{msg.topic}/{msg.partition}",
            f"alert {alert_id[:200]!r} at {msg.topic}/{msg.partition}/{msg.offset} is not "
            f"on its alert_id's partition {home}{hint}: passed on there",
        )
        fut = await self.ctx.alerts.send(
            key=alert_id.encode(), value=msg.value, partition=home, headers=msg.headers
        )
        if self._queued is not None:
            self._queued.append((fut, cast(EventT[bytes], self._event)))
            return
        await fut

    async def _on_alert(
        self,
        alert: dict[str, Any],
        alert_id: str,
        status: str,
        labels: dict[str, str],
        config: Config,
    ) -> None:
        """Route one alert by ``config``, the configuration its message began under (a
        reload at one of its awaits is the next message's)."""
        now = time.time()
        key = alert_id.encode()
        router = config.router
        if alert_has_ended(alert, now):
            # Its resolution, as Alertmanager reads an alert whose endsAt has passed
            # (t213: it opened a run, and inhibited its targets, until a resolved
            # message came); routed on as one.
            alert, status = {**alert, "status": "resolved"}, "resolved"
        if self.ctx.annotator is not None:
            tags = [
                "citybrain",
                "alert",
                alert["kind"],
                alert.get("sensor_id") or alert_id,
                alert["severity"],
            ]
            text = f"{alert['kind']} alert at {alert['grid_cell']} ({alert['severity']})"
            now_ms = int(now * 1000)
            if status == "firing":
                self.ctx.annotator.open_region(alert_id, text, tags, now_ms)
            else:
                self.ctx.annotator.close_region(alert_id, text + ", ended", tags, now_ms, now_ms)
        if status == "firing":
            self.ctx.firing[key] = labels
            # A generator: the firing table is walked only if a silence does not apply first.
            firing = self.ctx.firing_except(key)
            silences = await self._active_silences(now)
            decision = router.decide(labels, firing, silences, now)
            why = decision.mute
            if why is not None:
                detail = (
                    f"silence {decision.silenced_by.id}"
                    if decision.silenced_by
                    else f"inhibited by firing alert {decision.inhibiting}"
                )
                # Kept, to be routed when no longer muted (``recheck_muted``). An entry
                # on its way out (its alert routed earlier in the batch) is none.
                previous = None if key in self._releasing else self.muted.data.get(key)
                entry = muted_entry(previous, alert, decision, now)
                # The same message muted the same way as its stored entry: read again
                # after a crash past that store, said and counted then (t152: audited
                # and counted again at each redelivery).
                repeat = previous is not None and all(
                    previous.get(f) == entry[f] for f in ("alert", "mute", "by")
                )
                if not repeat:
                    # Before the store (a kill in between says it again, under the same
                    # id: the alert message's own digest), counted after it.
                    digest = hashlib.sha256(orjson.dumps(alert, option=orjson.OPT_SORT_KEYS))
                    await self.ctx.audit(
                        {
                            "id": f"{alert_id}:{why}:{digest.hexdigest()[:16]}",
                            "action": f"alert_{why}",
                            "alert_id": alert_id,
                            "at": now,
                            "actor": "citybrain",
                            "detail": detail,
                        }
                    )
                await self.muted.set_many({key: entry})
                if not repeat:
                    kind = self.ctx.label_kind(alert["kind"])
                    self.metrics.alerts_suppressed.labels(kind, why).inc()
                if not entry["noted"]:
                    # Its groups exist from now on, as in Alertmanager, which keeps a
                    # muted alert in its group: a run opened in one later keeps to
                    # that group's flushes (``Response._on_muted``). Told after the entry
                    # is stored and marked told after: a worker killed between the two
                    # tells again when it reads the alert again (a notice twice is one
                    # member); told only when no entry was stored, a kill there lost it
                    # (t120's open item).
                    notices = [
                        (
                            route.group_key(labels),
                            {
                                "muted": {"alert_id": alert_id},
                                "route": _route_doc(route),
                                "grouped_at": entry["since"],
                                "legacy_key": route.legacy_group_key(labels),
                            },
                        )
                        for route in decision.routes
                    ]
                    if self._queued is not None:
                        # In a batch: delivered with the batch's, marked told then.
                        futures = await self.ctx.queue_all(self.ctx.routed, notices)
                        event = cast(EventT[bytes], self._event)
                        self._queued.extend((fut, event) for fut in futures)
                        self._told.append((key, entry, event))
                        return
                    await self.ctx.send_all(self.ctx.routed, notices)
                    await self.muted.set_many({key: {**entry, "noted": True}})
                return
        else:
            self.ctx.firing.pop(key, None)
            decision = router.decide(labels, [], [], now)
        if self._queued is not None:
            # Its delivery is awaited with the batch's (``on_alert_batch``), and a muted
            # entry it leaves behind dropped then: not before its routed messages are on
            # Kafka.
            routed = self._routed(alert, labels, decision, config.playbooks)
            futures = await self.ctx.queue_all(self.ctx.routed, routed)
            event = cast(EventT[bytes], self._event)
            self._queued.extend((fut, event) for fut in futures)
            kept = None if key in self._releasing else self.muted.data.get(key)
            if kept is not None:
                self._release.append((key, kept, event))
                self._releasing.add(key)
            return
        await self._route(alert, labels, decision, config.playbooks)
        if key in self.muted.data:
            # Routed as it is now (unmuted, or resolved): nothing left to release.
            del self.muted[key]

    async def _route(
        self,
        alert: dict[str, Any],
        labels: dict[str, str],
        decision: Decision,
        playbooks: dict[str, Playbook],
        grouped_at: float | None = None,
    ) -> None:
        """Send ``alert`` to each route of ``decision`` (of the routing of ``playbooks``'
        configuration), delivery awaited; one freed from a mute carries
        ``grouped_at``, epoch s it was first muted: when Alertmanager put it in its group,
        whose flushes its run's first notification keeps to (``next_group_flush``)."""
        await self.ctx.send_all(
            self.ctx.routed, self._routed(alert, labels, decision, playbooks, grouped_at)
        )

    def _routed(
        self,
        alert: dict[str, Any],
        labels: dict[str, str],
        decision: Decision,
        playbooks: dict[str, Playbook],
        grouped_at: float | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """``_route``'s messages: (group key, routed document) per route of ``decision``."""
        extra = {} if grouped_at is None else {"grouped_at": grouped_at}
        # ``legacy_key``: the key the group had before t126, under which a run opened then
        # is stored (the response stage's group key migration, ``Response._group_home``).
        routed: list[tuple[str, dict[str, Any]]] = [
            (
                route.group_key(labels),
                {
                    "alert": alert,
                    "route": _route_doc(route),
                    **extra,
                    "legacy_key": route.legacy_group_key(labels),
                },
            )
            for route in decision.routes
        ]
        if len(routed) > 1:
            # Routed to several routes (``continue``): each group's run covers the
            # alert's citizen reports, and each closure names the others (``parts``).
            parts = [
                self.ctx.report_part(key, route, labels, playbooks)
                for (key, _), route in zip(routed, decision.routes, strict=True)
            ]
            routed = [(key, {**doc, "parts": parts}) for key, doc in routed]
        return routed

    # -- the re-check timer ----------------------------------------------------------
    async def recheck_muted(self) -> int:
        """Route the muted firing alerts of this worker's ``alerts`` partitions that no
        silence or inhibition mutes any more, each once: its routed messages queued
        under the stage's lock, their delivery awaited together at the pass's end
        without it (``_settle_freed``), then each audited ``alert_unmuted``, counted and
        dropped from the ``muted`` table. Before (t208), each freed alert awaited its
        own delivery while holding the lock, a Kafka round trip each: a silence over
        10,000 alerts ending held the alerts agent (every other alert's routing) for
        10,000 round trips. Returns how many were routed. Acts only with table
        recovery complete and no rebalance in progress (checked before each alert: one
        whose partition is moving is left to its next owner). An entry whose alert no
        longer fires (its resolution was handled) is dropped unrouted."""
        if self.ctx.reading_back() is not None:
            return 0
        failing = self.metrics.loop_items_failing.labels("mute_check")
        if not self.muted.data:
            failing.set(0)
            return 0
        freed: list[_Freed] = []
        skipped = await self._recheck_pass(freed)
        released, refused = await self._settle_freed(freed)
        failing.set(skipped + refused)  # a whole pass: how many fail now
        return released

    async def _recheck_pass(self, freed: list[_Freed]) -> int:
        """``recheck_muted``'s walk over the table: each alert freed is queued and added
        to ``freed``; returns how many could not be re-checked."""
        mine = self.ctx.owned_partitions("alerts")
        n = self.ctx.settings.partitions
        skipped = 0
        # The active silences, read again only after an await (when the table can have
        # changed): a pass over thousands of alerts still muted reads them once.
        silences: list[Silence] | None = None
        for i, key in enumerate(list(self.muted.data)):
            if i % RECHECK_YIELD_EVERY == RECHECK_YIELD_EVERY - 1:
                # An alert still muted takes no await, and taking an unlocked lock does
                # not yield: a pass over 10,000 of them held the event loop (readings,
                # heartbeats, the API) for all of it.
                await asyncio.sleep(0)
                silences = None
            if key_partition(key, n) not in mine:
                continue
            if self.settled.locked():
                silences = None  # the agent goes first: a silence may come meanwhile
            async with self.settled:
                if self.ctx.moving():
                    return skipped  # the next pass sees only this worker's alerts
                entry = self.muted.data.get(key)
                if entry is None or key in self._releasing:
                    continue  # routed or resolved by the agent (its batch ends it)
                now = time.time()
                if silences is None:
                    silences = await self._active_silences(now)
                try:
                    outcome = await self._recheck(key, entry, silences, now, freed)
                except Exception as exc:
                    # One alert that cannot be re-checked (a send that failed) costs only
                    # itself: kept, tried again next tick; the pass goes on (trial 26).
                    self._recheck_failed(key, exc)
                    silences = None
                    skipped += 1
                    continue
                if outcome != "kept":
                    silences = None
        return skipped

    def _recheck_failed(self, key: bytes, exc: Exception) -> None:
        """Said (once a minute per cause: a broker away fails all) and counted: muted
        alert ``key`` was left as it is, tried again next tick."""
        self._say_recheck_failed(
            f"{type(exc).__name__}: {exc}",
            f"mute check: muted alert {key.decode(errors='replace')} was left "
            f"as it is, tried again next tick: {type(exc).__name__}: {exc} "
            '(counted in citybrain_loop_items_skipped_total{loop="mute_check"})',
        )
        self.metrics.loop_items_skipped.labels("mute_check").inc()

    async def _settle_freed(self, freed: list[_Freed]) -> tuple[int, int]:
        """The pass's freed alerts once their routed messages are on Kafka (all queued
        already: one wait for the pass, not one per alert; the stage's lock not held, so
        the alerts agent routes meanwhile): each audited ``alert_unmuted``, and once
        Kafka has that record too (the records of the pass queued together, then
        awaited), its entry dropped if it is still the one routed (not resolved, nor
        muted anew, by the agent meanwhile: its resolution, queued after the freed
        alert's routed message on the same group key, follows it on Kafka) and counted.
        One Kafka refused (its routed messages or its record) is kept as it is, tried
        again next tick (routed again: a repeat the respond stage takes as one), and
        costs only itself. Returns (how many were routed, how many were refused).

        Before t216 the record was queued and the entry dropped at once: its tombstone
        could reach Kafka before the record, and a worker killed in between (or a record
        the audit topic refused) left the alert routed with no ``alert_unmuted`` for good
        (nothing muted left to re-check), nor counted."""
        released = refused = 0
        audited: list[tuple[_Freed, asyncio.Task[None] | None]] = []
        for i, one in enumerate(freed):
            if i % RECHECK_YIELD_EVERY == RECHECK_YIELD_EVERY - 1:
                await asyncio.sleep(0)  # a delivered future's await does not yield
            try:
                for fut in one.futures:
                    await fut
            except Exception as exc:
                self._recheck_failed(one.key, exc)
                refused += 1
                continue
            # Each record sent and awaited in a task of its own: queued together, one
            # refused costs only its alert.
            record = one.audit
            task = None if record is None else asyncio.ensure_future(self.ctx.audit_all([record]))
            audited.append((one, task))
        for one, task in audited:
            try:
                if task is not None:
                    await task
            except Exception as exc:
                self._recheck_failed(one.key, exc)
                refused += 1
                continue
            async with self.settled:
                if self.muted.data.get(one.key) is one.entry:
                    del self.muted[one.key]
                    if one.audit is None:
                        # Ended: no longer firing once its resolution is on Kafka (no
                        # message of it came since: its entry is the one read).
                        self.ctx.firing.pop(one.key, None)
            if one.audit is None:
                continue  # ended, not freed: not counted unmuted
            # Counted once routed and its entry gone (t152: counted before, again after
            # a kill).
            self.metrics.alerts_unmuted.labels(one.kind, one.mute).inc()
            released += 1
        return released, refused

    async def read_silences_ahead(self) -> bool:
        """Read the silences table into the worker's book now (``Context.read_silences``:
        in steps, an unreadable one reported), as the route agent would at its next
        alert; False, nothing read, before table recovery completes or during a
        rebalance. Run each mute-check tick: the first read after a start (10,000
        silences, seconds of parsing) began only at the first alert, which waited for it,
        and a silence added then was obeyed only once it had ended; now it starts once
        the table is recovered, and a change is read within a tick. An unchanged table
        costs a comparison of its change count."""
        if self.ctx.reading_back() is not None:
            return False
        await self.ctx.read_silences(time.time())
        return True

    async def forget_ended_silences(self) -> int:
        """Forget the silences that ended more than ``SILENCE_RETENTION`` ago (an
        ``ends_at`` before then), each by the worker that owns its key's ``alerts``
        partition: deleted with a tombstone on the ``silences`` changelog, which every
        worker applies. Returns how many. Before, an ended silence was kept for good by
        every worker and listed by ``silences list``: the table grew with every silence
        ever made, though only those not yet ended are bounded (``MAX_SILENCES``)."""
        if self.ctx.reading_back() is not None:
            return 0
        mine = self.ctx.owned_partitions("alerts")
        n, before = self.ctx.settings.partitions, time.time() - SILENCE_RETENTION
        table = cast(KeyPartitionedGlobalTable, self.ctx.silences)
        gone = [
            key
            for key, doc in list(table.data.items())
            if key_partition(key, n) in mine and _ended_before(doc, before)
        ]
        if gone:
            await table.delete_many(gone)
            self.metrics.silences_forgotten.inc(len(gone))
        return len(gone)

    async def _recheck(
        self,
        key: bytes,
        entry: Mapping[str, Any],
        silences: list[Silence],
        now: float,
        freed: list[_Freed],
    ) -> str:
        """One muted alert re-checked: ``"kept"`` (still muted by the same; no await),
        ``"moved"`` (muted by another now, stored so), ``"dropped"``, ``"ended"`` (its
        ``ended_at`` passed: its resolution queued, t213) or ``"routed"``
        (its routed messages queued, not yet delivered: added to ``freed`` for
        ``_settle_freed``, which audits, counts and drops its entry)."""
        try:
            alert = entry["alert"]
            labels = label_set(alert["labels"], need_one=False)
            mute, muted_by = str(entry["mute"]), str(entry["by"])
            # Read before routing: an entry without it was routed, then raised at its
            # audit and stayed, routed again every tick (trial 26).
            alert_id = alert["alert_id"]
        except (KeyError, TypeError, RoutingConfigError) as exc:
            # Said, counted and audited as any stored entry that cannot be read back.
            detail = f"muted alert: {type(exc).__name__}: {exc}"[:300]
            self.ctx.on_unreadable_state(TABLE, key, Unreadable(BAD_SHAPE, detail, 0))
            del self.muted[key]
            return "dropped"
        if key not in self.ctx.firing:
            del self.muted[key]  # resolved: nothing to notify
            return "dropped"
        config = self.ctx.config  # to this alert's end (t133)
        if alert_has_ended(alert, now):
            # Its ended_at passed while it was muted: its resolution, as Alertmanager
            # reads it then, never notified (t213: routed firing once its mute ended, a
            # run for an alert that had said it ended). Routed on as its resolution, so
            # its groups forget it as a muted member, as its resolved message does.
            resolved = {**alert, "status": "resolved"}
            decision = config.router.decide(labels, [], [], now)
            routed = self._routed(resolved, labels, decision, config.playbooks)
            futures = await self.ctx.queue_all(self.ctx.routed, routed)
            freed.append(_Freed(key, entry, futures, None, "", mute))
            return "ended"
        source = self.ctx.firing.get(muted_by.encode()) if mute == "inhibited" else None
        firing = self.ctx.firing_except(key)
        decision = config.router.recheck(labels, mute, muted_by, source, firing, silences, now)
        if decision.mute is not None:
            if (decision.mute, decision.muted_by) == (mute, muted_by):
                return "kept"
            # Muted by something else now: the fast path follows that one.
            await self.muted.set_many({key: muted_entry(entry, alert, decision, now)})
            return "moved"
        since = entry.get("since")
        grouped_at = float(since) if isinstance(since, int | float) else None
        routed = self._routed(alert, labels, decision, config.playbooks, grouped_at)
        futures = await self.ctx.queue_all(self.ctx.routed, routed)
        why = "silence" if mute == "silenced" else "inhibiting alert"
        audit = {
            # The same if a kill before the entry's deletion re-checks it again.
            "id": f"{alert_id}:unmuted:{mute}:{muted_by}:{entry.get('since')!r}",
            "action": "alert_unmuted",
            "alert_id": alert_id,
            "at": now,
            "actor": "citybrain",
            "detail": f"{mute} since {_utc(entry.get('since'))}; {why} {muted_by} "
            "no longer mutes it: routed",
        }
        kind = self.ctx.label_kind(alert.get("kind", ""))
        freed.append(_Freed(key, entry, futures, audit, kind, mute))
        return "routed"

    async def _active_silences(self, now: float) -> list[Silence]:
        # Read with the worker's one book (Context.read_silences): each stored version
        # parsed once, in steps; an unreadable one skipped, audited and counted once.
        return await self.ctx.read_silences(now)


def _ended_before(doc: Any, at: float) -> bool:
    """Whether a stored silence ended before ``at`` (epoch s): its ``ends_at`` a number
    before it (one unreadable is kept, listed as unreadable until expired)."""
    ends = doc.get("ends_at") if isinstance(doc, Mapping) else None
    return isinstance(ends, int | float) and not isinstance(ends, bool) and ends < at


def _utc(at: Any) -> str:
    """Epoch seconds as ISO 8601 UTC for an audit's words; never raises (``?`` for no
    number, the number itself for one no date can show): a line of words must not fail
    the act it reports."""
    if isinstance(at, bool) or not isinstance(at, int | float):
        return "?"
    if epoch_seconds_fault(at) is not None:
        return f"{at!r:.40}"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _route_doc(route: Route) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": route.id,
        "playbook": route.playbook,
        "group_wait": route.group_wait,
        "group_interval": route.group_interval,
        "repeat_interval": route.repeat_interval,
    }
    # The names only (the response stage finds them in its router at each flush), and
    # only when given: a route without them writes what it wrote before.
    if route.mute_time_intervals:
        doc["mute_time_intervals"] = list(route.mute_time_intervals)
    if route.active_time_intervals:
        doc["active_time_intervals"] = list(route.active_time_intervals)
    return doc
