"""What every stage of the worker shares: the app, settings, grid, metrics, playbooks,
topics and tables, and the ways out (send, audit, dead-letter).

The stages (``streams.ingest``, ``streams.alerting``, ``streams.response``) and the
operator API (``streams.api``) each take one ``Context``; none imports another stage or
``streams.app``, which builds them all (an import-linter contract keeps it so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
import orjson
from faust.exceptions import ConsumerNotStarted
from faust.types import TP, EventT, Message, ProducerT

from playbooks.engine import MAX_COUNT, Part, PlaybookEngine, run_problem
from playbooks.errors import RoutingConfigError
from playbooks.executors.grafana import GrafanaAnnotator
from playbooks.executors.webhook import receiver
from playbooks.grid import LEVELS, Grid
from playbooks.loader import load_playbooks, load_routing
from playbooks.routing import (
    SILENCE_PROBLEMS,
    BadSilence,
    IndexedFiring,
    InhibitRule,
    Route,
    Router,
    SilenceBook,
    SilenceList,
    SourceIndex,
    label_set,
)
from playbooks.schema import Playbook
from streams.auth import TokenStore
from streams.bursts import (
    MAX_HELD_REPORTS,
    MAX_SEEN_REPORTS,
    MIN_STEP_SECONDS,
    episode_alert_id,
)
from streams.departments import DepartmentClassifier
from streams.detection import read_state, state_bytes, state_key_fault
from streams.errors import MISSING, EventError, one_line, shown_key
from streams.events import (
    MAX_ID_CHARS,
    MAX_MESSAGE_BYTES,
    WRITTEN_MESSAGE_BYTES,
    CarriedSpend,
    alert_fields,
    dead_letter_key,
    epoch_seconds_fault,
    fit_dead_letter,
    original_record,
    record_form,
    refuse_ended_before_started,
)
from streams.faust_patches import UNREADABLE_REASON, unreadable
from streams.logs import SayEvery
from streams.membership import MembershipWatch
from streams.metrics import Metrics, bounded_label, initialise
from streams.partitioning import key_partition
from streams.settings import Settings
from streams.tables import (
    BAD_SHAPE,
    KeyPartitionedGlobalTable,
    KeyPartitionedTable,
    Skipped,
    Unreadable,
    UnreadableEntryError,
    key_partitioned_table,
    read_document,
    stored_items,
)

log = logging.getLogger(__name__)

# How long an operator API action waits for Kafka to acknowledge what it wrote (its
# command, or a silence's changelog entry and audit record) before answering 503 "Kafka
# is unreachable, retry": a few seconds, as the HTTP ingest's 5 s (docs/operations.md,
# delivery guarantees; docs/playbooks.md, Operator API).
API_KAFKA_WAIT = 5.0


BURST_KEY_SEPARATOR = b"\x1f"  # ASCII unit separator: in no grid cell id


def burst_key(cell: str, category: str) -> bytes:
    """The ``burst-windows`` key of one cell's and category's window."""
    return cell.encode() + BURST_KEY_SEPARATOR + category.encode()


def burst_cell(key: bytes) -> bytes:
    """The cell a ``burst-windows`` key belongs to (its partition's key, as on the
    ``incidents`` topic)."""
    return key.split(BURST_KEY_SEPARATOR, 1)[0]


def run_key(run_id: str) -> bytes:
    """Runs live in the ``groups`` table under their group key: ``<group key>.<n>``."""
    return run_id.rsplit(".", 1)[0].encode()


def superseded_generation(group: Any, run_id: str) -> bool:
    """Whether ``run_id`` names a run ``group`` (its ``groups`` table value) issued before
    its current run: ``<group key>.<n>`` with ``n`` written as generations are issued
    (1, 2, 3, ... in ASCII digits, no leading zero, at most ``MAX_COUNT``'s digits) from
    the group's first (``first_generation``: a group made after earlier groups of its
    partition were forgotten starts above them) to below its ``generation``. ".0", ".01",
    "²" or a number of 5,000 digits was never a run (trial 6, helper t52, t190)."""
    if not isinstance(group, Mapping) or not isinstance(group.get("run"), Mapping):
        return False
    _, dot, generation = run_id.rpartition(".")
    issued = (
        bool(dot)
        and generation.isascii()
        and generation.isdigit()
        and len(generation) <= len(str(MAX_COUNT))
        and generation == str(int(generation))
        and int(generation) >= 1
    )
    first, newest = group.get("first_generation", 1), group.get("generation", 0)
    numbers = all(type(n) is int for n in (first, newest))
    return issued and numbers and first <= int(generation) < newest


def run_ever_issued(group: Any, run_id: str) -> bool:
    """Whether ``group`` (its ``groups`` table value, or None) ever held run ``run_id``:
    its current run, one it keeps as superseded, or an earlier generation it issued
    (``superseded_generation``). A command for any other is ``unknown_run``."""
    if not isinstance(group, Mapping):
        return False
    current = group.get("run")
    if isinstance(current, Mapping) and current.get("run_id") == run_id:
        return True
    kept = group.get("superseded") or ()
    if any(isinstance(k, Mapping) and (k.get("run") or {}).get("run_id") == run_id for k in kept):
        return True
    return superseded_generation(group, run_id)


# A dead letter's message (its citybrain.error.message header and log line) is cut past
# this: one built around a field's text (``no run <run_id>``) grew with a 999,000-character
# run_id past what one Kafka message holds, and the worker stopped (trial 19).
MAX_DEAD_LETTER_MESSAGE = 1000


# Refusals of a message's form or shape, which its record's headers may explain
# (record_form): the readings' and incidents' codes, and the own topics' (each says
# what of its message could not be read).
_FORM_CODES = frozenset(
    ("bad_json", "bad_schema", "bad_alert", "bad_command", "bad_routed", "bad_mark")
)


def bounded_message(message: str) -> str:
    """``message`` cut to ``MAX_DEAD_LETTER_MESSAGE`` characters, saying so."""
    if len(message) <= MAX_DEAD_LETTER_MESSAGE:
        return message
    return f"{message[: MAX_DEAD_LETTER_MESSAGE - 40]}... ({len(message):,} characters, cut)"


def _cut_texts(value: Any) -> Any:
    """``value`` (a JSON-able audit record or part of it) with every text longer than
    ``MAX_DEAD_LETTER_MESSAGE`` characters cut as ``bounded_message`` cuts one."""
    if isinstance(value, str):
        return bounded_message(value)
    if isinstance(value, dict):
        return {_cut_texts(k): _cut_texts(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cut_texts(v) for v in value]
    return value


def audit_record(record: dict[str, Any]) -> tuple[bytes, bytes]:
    """The audit topic's key (its run or alert id, else ``api``) and value (``audit/1``
    JSON) for ``record``, never together larger than one message the producer sends
    (``MAX_MESSAGE_BYTES``). A record built from stored or incoming text that would be
    (t166: a changelog key of 1 MB in ``state_unreadable``; a send refused so failed
    the alert or batch in hand, and blocked every later unreadable entry's record) has
    each text over ``MAX_DEAD_LETTER_MESSAGE`` characters cut, saying so, and
    ``"cut": true``; one still too large (thousands of short texts) keeps only its
    ``id``, ``action``, ``at`` and ``actor`` (cut too) and says its size in ``detail``.
    A key past ``MAX_DEAD_LETTER_MESSAGE`` characters is shown as ``shown_key``."""
    name = str(record.get("run_id") or record.get("alert_id") or "api")
    if len(name) > MAX_DEAD_LETTER_MESSAGE:
        name = shown_key(name)
    key = name.encode("utf-8", "surrogatepass")
    value = orjson.dumps({"schema": "audit/1", **record})
    if len(key) + len(value) <= MAX_MESSAGE_BYTES:
        return key, value
    size = len(value)
    value = orjson.dumps({"schema": "audit/1", **_cut_texts(record), "cut": True})
    if len(key) + len(value) <= MAX_MESSAGE_BYTES:
        return key, value
    kept: dict[str, Any] = {
        k: _cut_texts(record[k]) for k in ("id", "action", "at", "actor") if k in record
    }
    kept["detail"] = f"an audit record of {size:,} bytes, too large to send: cut to these fields"
    return key, orjson.dumps({"schema": "audit/1", **kept, "cut": True})


def message_origin(topic: str, partition: int, offset: int, index: int | None = None) -> str:
    """Where a dead letter came from, for its ``citybrain.error.origin`` header:
    ``topic/partition/offset``, with ``#index`` for one reading of a ``readings/1`` pack."""
    origin = f"{topic}/{partition}/{offset}"
    return origin if index is None else f"{origin}#{index}"


# A command is applied within moments; past this, one that moved to another worker (a
# rebalance) or was lost must not hold up the run's next action for good.
PENDING_COMMAND_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class PendingCommand:
    """An operator command the API has sent for a run and the worker has not applied
    (or refused) yet: ``action`` (``ack``, ``resolve``, ...), ``at`` (monotonic seconds),
    ``applied`` set once the worker has; ``unconfirmed`` when the API answered it 503
    (Kafka had not acknowledged it in time) while it was still queued to be sent."""

    action: str
    at: float
    applied: asyncio.Event
    unconfirmed: bool = False


class PendingCommands:
    """The operator API's commands not yet applied, by run id then command id. A command
    is checked against the run as its table stands; one sent moments before and not yet
    applied would make that check stale (an escalate right after a resolve was told 202,
    then refused by the worker on the audit topic only, t61), so the API first waits
    for them (``settled``). A command applied elsewhere (its run's partition moved) or
    lost stops counting after ``PENDING_COMMAND_SECONDS``. Bounded: the oldest go first."""

    MAX = 10_000

    def __init__(self) -> None:
        # By (run id, command id), oldest first; a handful at a time in practice.
        self._held: dict[tuple[str, str], PendingCommand] = {}

    def hold(self, run_id: str, command_id: str, action: str, now: float) -> None:
        """Record ``command_id`` (``action`` on ``run_id``) as sent at ``now``."""
        held = self._held.pop((run_id, command_id), None)  # re-inserted last: oldest first
        # The same command again (a retry): whoever waits for it still hears when it is.
        applied = held.applied if held is not None else asyncio.Event()
        self._held[(run_id, command_id)] = PendingCommand(action, now, applied)
        while len(self._held) > self.MAX:
            self.release(*next(iter(self._held)))

    def unconfirm(self, run_id: str, command_id: str) -> None:
        """``command_id`` was answered 503 but is still queued: it may reach Kafka and be
        applied once the broker answers, so it stays held (``unconfirmed``) until it is
        applied, its send fails, or ``PENDING_COMMAND_SECONDS`` pass."""
        held = self._held.get((run_id, command_id))
        if held is not None:
            self._held[(run_id, command_id)] = PendingCommand(
                held.action, held.at, held.applied, unconfirmed=True
            )

    def release(self, run_id: str, command_id: str) -> None:
        """``command_id`` was applied or refused (or never reached Kafka): a request
        waiting for it goes on. Releasing an unknown one does nothing."""
        taken = self._held.pop((run_id, command_id), None)
        if taken is not None:
            taken.applied.set()

    def pending(self, run_id: str, now: float) -> list[PendingCommand]:
        """The commands on ``run_id`` sent less than ``PENDING_COMMAND_SECONDS`` before
        ``now`` and not yet applied, oldest first."""
        return [
            c
            for (run, _), c in self._held.items()
            if run == run_id and now - c.at < PENDING_COMMAND_SECONDS
        ]

    async def settled(self, run_id: str, timeout: float) -> PendingCommand | None:
        """Wait up to ``timeout`` seconds for every pending command on ``run_id`` to be
        applied: None once none is, else the oldest still pending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while waiting := self.pending(run_id, time.monotonic()):
            left = deadline - loop.time()
            if left <= 0:
                return waiting[0]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting[0].applied.wait(), left)
        return None

    def __len__(self) -> int:
        return len(self._held)


# A sliding burst window's fields and their types (``streams.bursts``); the fixed-bucket
# layout before it has no ``slot``, and only its ``baseline`` is read.
_WINDOW_FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("slot", int),
    ("counts", list),
    ("baseline", (int, float)),
    ("held", list),
    ("episode", (dict, type(None))),
)


def _check_window(window: Any, where: str) -> None:
    if not isinstance(window, dict):
        raise UnreadableEntryError(
            BAD_SHAPE, f"{where} is a {type(window).__name__}, not an object"
        )
    fields = _WINDOW_FIELDS if "slot" in window else (("baseline", (int, float)),)
    if "slot" not in window and window.get("jump") is not None:
        # A new window's first report held aside as a clock jump (t206): no slot yet.
        fields = _WINDOW_FIELDS[2:]
    for name, kind in fields:
        value = window.get(name, 0.0 if name == "baseline" and "slot" not in window else None)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UnreadableEntryError(BAD_SHAPE, f"{where}: field {name!r} is {value!r:.60}")
    baseline = window.get("baseline", 0.0)
    if not 0 <= baseline <= MAX_COUNT:
        # The baseline is a moving average of the window's counts. t163: one below 0
        # failed every report of its cell and category (sqrt of it: a ValueError, each a
        # processing_error, the window kept); one of 1e300 set the burst threshold so high
        # that the cell and category never burst again (it decays by a tenth a window).
        raise UnreadableEntryError(
            BAD_SHAPE,
            f"{where}: field 'baseline' is {baseline!r:.60}, expected a mean count from 0 to "
            "2**53 - 1",
        )
    if "slot" in window and not all(
        type(n) is int and 0 <= n <= MAX_COUNT for n in window["counts"]
    ):
        # A count past MAX_COUNT, counted once more, could not be written (orjson's 64
        # bits): every report of its cell and category failed (t128).
        odd = next(n for n in window["counts"] if not (type(n) is int and 0 <= n <= MAX_COUNT))
        raise UnreadableEntryError(
            BAD_SHAPE,
            f"{where}: field 'counts' holds {odd!r:.60}, expected whole numbers from 0 to "
            "2**53 - 1",
        )
    if "slot" in window or window.get("jump") is not None:
        problem = _window_problem(window)
        if problem is not None:
            raise UnreadableEntryError(BAD_SHAPE, f"{where}: {problem}")


def _window_problem(window: dict[str, Any]) -> str | None:
    """What is wrong inside a sliding window's lists (``streams.bursts``), or None:
    ``held`` reports ``[id, channel, slot, department]``, ``seen`` ids ``[id, slot]``,
    ``[id, slot, [partition, offset]]`` or ``[id, slot, [partition, offset] or null,
    digest]``, an open ``episode`` with its alert id, start,
    department, threshold (and severity). Judged here once: before, one of another
    shape dead-lettered every report of its cell and category, and failed the sweep."""
    # t156: how many, and how long each text, bounded as the worker writes them. A
    # window of 3,000 held reports of 300-character ids (read back whole: each was of
    # the right shape, about 1 MB) made its burst alert, which carries them, larger
    # than the alerts topic's door takes (MAX_OWN_MESSAGE_BYTES: the burst refused
    # there), and its own next entry, near 1,000,000 bytes, over the size check
    # (``check_fits``), which failed the whole incidents batch, every other report in
    # it too, at every report of its cell and category.
    for name, most in (("held", MAX_HELD_REPORTS), ("seen", MAX_SEEN_REPORTS)):
        listed = window.get(name, [])
        if isinstance(listed, list) and len(listed) > most:
            return f"field {name!r} holds {len(listed):,} reports, at most {most}"
    for held in window["held"]:
        if not (
            isinstance(held, list)
            and len(held) == 4
            and _bounded_text(held[0])
            and _bounded_text(held[1])
            and type(held[2]) is int
            and _bounded_text(held[3])
        ):
            return (
                f"a held report is {held!r:.60}, expected [id, channel, slot, department], "
                f"each text at most {MAX_ID_CHARS} characters"
            )
    for seen in window.get("seen", []) if isinstance(window.get("seen", []), list) else [None]:
        if not (
            isinstance(seen, list)
            and len(seen) in (2, 3, 4)
            and _bounded_text(seen[0])
            and type(seen[1]) is int
            and (
                len(seen) == 2
                or (isinstance(seen[2], list) and len(seen[2]) == 2)
                or (len(seen) == 4 and seen[2] is None)
            )
            and (len(seen) < 4 or _bounded_text(seen[3]))
        ):
            return (
                f"a seen report is {seen!r:.60}, expected [id, slot], [id, slot, position] "
                f"or [id, slot, position or null, digest], each text at most {MAX_ID_CHARS} "
                "characters"
            )
    step = window.get("step", 1.0)
    if not (
        isinstance(step, int | float)
        and not isinstance(step, bool)
        and MIN_STEP_SECONDS <= step < 1e12
    ):
        # A step of 5e-324 s scaled the window's baseline by infinity when a worker
        # rebased it to its own step (NaN, written as null: unreadable after, t171).
        return (
            f"field 'step' is {step!r:.60}, expected seconds from {MIN_STEP_SECONDS:.6g} "
            "(a sixth of the shortest CITYBRAIN_BURST_BUCKET_SECONDS)"
        )
    # Times the sweep and the burst alerts write as dates (``format_ts``): one past the
    # year 9999 failed each alert of its window, at every report and sweep.
    if "ts" in window and epoch_seconds_fault(window["ts"]) is not None:
        return f"field 'ts' is {window['ts']!r:.60}, {epoch_seconds_fault(window['ts'])}"
    jump = window.get("jump")
    if jump is not None and not (
        isinstance(jump, list)
        and len(jump) == 5
        and _bounded_text(jump[0])
        and _bounded_text(jump[1])
        and type(jump[2]) is int
        and _bounded_text(jump[3])
        and type(jump[4]) in (int, float)
        and epoch_seconds_fault(jump[4]) is None
    ):
        # A report held aside as a clock jump (``streams.bursts.CLOCK_JUMP``), t185.
        return f"field 'jump' is {jump!r:.60}, expected [id, channel, slot, department, ts] or null"
    episode = window["episode"]
    if episode is not None:
        for name, ok in (
            ("alert_id", _bounded_text(episode.get("alert_id"))),
            ("start", epoch_seconds_fault(episode.get("start")) is None),
            ("department", _bounded_text(episode.get("department"))),
            ("threshold", type(episode.get("threshold")) in (int, float)),
            ("severity", isinstance(episode.get("severity", ""), str | None)),
        ):
            if not ok:
                return f"episode field {name!r} is {episode.get(name)!r:.60}"
    return None


def _bounded_text(value: Any) -> bool:
    """Whether ``value`` is text of at most ``MAX_ID_CHARS`` characters (a report id, a
    channel, a department, an alert id: each travels in alerts, audits and replies)."""
    return isinstance(value, str) and len(value) <= MAX_ID_CHARS


def read_burst_window(entry: bytes) -> dict[str, Any]:
    """A ``burst-windows`` changelog entry as its window; ``UnreadableEntryError`` as
    ``read_document``, and ``bad_shape`` for a window without its fields (every report of
    that cell and category was dead-lettered, and the sweep failed every tick)."""
    window = read_document(entry)
    _check_window(window, "burst window")
    return window


def read_burst_cell(entry: bytes) -> dict[str, Any]:
    """A ``burst-state`` entry (the layout before ``burst-windows``: category -> window)."""
    cell = read_document(entry)
    for category, window in cell.items():
        _check_window(window, f"burst window {category!r:.40}")
    return cell


def _episode_fault(window: dict[str, Any], cell: str, category: str) -> str | None:
    """Why an open burst episode's ``alert_id`` is not its cell's and category's
    (``episode_alert_id`` of its ``start``), or None."""
    episode = window["episode"]
    if episode is None:
        return None
    made = episode_alert_id(cell, category, float(episode["start"]))
    if episode["alert_id"] == made:
        return None
    return (
        f"its episode's alert_id {shown_key(episode['alert_id'])!r} is not {made!r}, the "
        f"alert of cell {shown_key(cell)!r} and category {shown_key(category)!r} from "
        f"{episode['start']!r}: a window is stored under its own cell and category"
    )


def burst_window_key_fault(key: bytes, window: dict[str, Any]) -> str | None:
    """Why a ``burst-windows`` entry read back does not belong under ``key`` (``burst_key``
    of its cell and category), or None (t166: an episode stored under another cell's or
    category's key, from another tool's changelog entry, resolved that one's burst
    alert, firing on, when this window's reports fell away)."""
    cell, _, category = key.partition(BURST_KEY_SEPARATOR)
    fault = _episode_fault(window, cell.decode(), category.decode())
    return None if fault is None else f"burst window: {fault}"


def burst_cell_key_fault(key: bytes, windows: dict[str, Any]) -> str | None:
    """``burst_window_key_fault`` for a ``burst-state`` entry (its key the cell, each
    category's window in its document)."""
    for category, window in windows.items():
        fault = _episode_fault(window, key.decode(), category)
        if fault is not None:
            return f"burst window {shown_key(category)!r}: {fault}"
    return None


# A group's stored document (streams.response): every version since runs were
# introduced wrote all five.
_GROUP_FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("generation", int),
    ("run", (dict, type(None))),
    ("seen", list),
    ("commands", list),
    # None in a group holding only offers for a run not yet opened (``HELD_OFFERS``).
    ("route", (dict, type(None))),
)


def _finite(value: Any, most: float = math.inf) -> bool:
    # Compared, not converted: math.isfinite(10**400) raises OverflowError.
    return type(value) in (int, float) and 0 <= value < math.inf and value <= most


def _epoch(value: Any) -> bool:
    """Whether ``value`` is a stored time (epoch s >= 0) a date can show: to the year 9999
    (``epoch_seconds_fault``). t154: a time of 1e300 passed a check for finite numbers;
    a held offer's never expired (its group never forgotten) and failed its group's next
    offer past the bound, and an ``opened_ts`` failed every late report offered to the
    group, each shown as a date (OverflowError, a processing error with a traceback)."""
    return _finite(value) and epoch_seconds_fault(value) is None


# The longest duration a route may have: Alertmanager's (Go's time.Duration, about 292
# years), as playbooks.schema.parse_duration bounds the routing file's.
MAX_ROUTE_SECONDS = (2**63 - 1) / 1e9


def embedded_alert(alert: Any, code: str, *, ordered: bool = False) -> dict[str, Any]:
    """An alert carried inside another message (a routed message, a corroboration
    request) checked as the alerts topic checks one: ``alert_fields``, its labels a label
    set, but as an alert an earlier worker wrote (``stored``: its times in the spellings
    workers before t140 took and wrote, ``2026-01-01t12:00:00z``, ``+0100``, a space before
    a zone, and one ending before it starts, as workers before t139 routed it). These
    topics are citybrain's own: a worker upgraded while an earlier one's messages are in
    flight reads them (t146: it dead-lettered them as ``bad_routed``, and the incident's
    run never opened); only the alerts topic, the door other tools write, keeps to
    Alertmanager's rule. ``ordered`` still refuses one ending before it starts
    (``refuse_ended_before_started``): the corroboration stage forwards its alerts to
    the alerts topic, whose door refuses it, so it is said where it came in. Returns the
    alert; raises ``EventError(code, "alert.<field>", value, reason)`` (the alert itself,
    not a field, when it is no object: it was said as null). The alert returned has its
    times written as RFC 3339 in UTC (``alert_fields``)."""
    try:
        alert = alert_fields(alert, stored=True)
        if ordered:
            refuse_ended_before_started(alert)
    except EventError as exc:
        field = f"alert.{exc.field}" if exc.field else "alert"
        value = exc.value if exc.field else alert
        raise EventError(code, field, value, exc.reason) from None
    try:
        label_set(alert.get("labels", {}), need_one=False)
    except RoutingConfigError as exc:
        raise EventError(code, "alert.labels", alert.get("labels"), str(exc)) from None
    return cast(dict[str, Any], alert)


def alert_in_grid(alert: dict[str, Any], grid: Grid, code: str, at: str = "") -> None:
    """Raises ``EventError`` (``code``; the field under ``at``, ``alert.``) for a firing
    alert (``alert_fields``' shape) whose ``grid_cell`` ``grid`` lacks, said as a
    reading's ``unknown_cell`` is, with the nearest cell the grid has. Its run would
    have no unit: before t137 a foreign producer's alert in cell ``nowhere`` (or a
    Baltimore gauge's cell mistyped) opened a run there, told as a cell gone from the
    grid to the first city's duty office by name (Aarhus). A resolution is left to end
    what it ends: its cell may have left the grid by a reload since it fired, and its run
    must still hear it. Its ``kind`` and labels stay any text (t80: metrics bound them)."""
    cell = alert["grid_cell"]
    if alert["status"] == "firing" and cell not in grid.cells:
        raise EventError(
            code, f"{at}grid_cell", cell, f"not a cell of the grid{grid.near_cell(cell)}"
        )


def route_fault(route: dict[str, Any], routed: bool = False) -> tuple[str, Any, str] | None:
    """What is wrong with a group's ``route`` (``_route_doc``'s shape: ``id``,
    ``playbook``, ``group_wait``, ``group_interval``, ``repeat_interval`` in seconds;
    ``mute_time_intervals`` and ``active_time_intervals``, lists of names, optional), as
    (field, value or ``MISSING``, what was expected: ``seconds >= 0``), or None: the one
    rule for a route stored in the ``groups`` table (``read_group``) and a route arriving
    on the routed topic (``routed``: every field required, as ``_route_doc`` writes them
    all, and the durations bounded as the routing file's are), ``group_interval`` above
    0 in both (t182: stored too), so what the worker stores reads back (helper t59: a
    routed ``group_wait`` of NaN or -5, or no ``group_interval``, opened a run whose
    group was dropped as ``bad_shape`` at the next start, and failed that run's deadline
    check every tick; one of 1e300 s was never notified)."""
    most = MAX_ROUTE_SECONDS if routed else math.inf
    expected = "seconds from 0 to 9.2e9 (292 years)" if routed else "seconds >= 0"
    for name in ("group_interval", "repeat_interval", "group_wait"):  # the deadline check's
        required = routed or name != "group_wait"
        if (required or name in route) and not _finite(route.get(name), most):
            return name, route.get(name, MISSING), expected
        if name == "group_interval" and route.get(name) == 0:
            # The routing file's rule, as Alertmanager's ("group_interval cannot be
            # zero"): only a worker from before that rule (its routing file with
            # `group_interval: 0s`) or another producer writes it, and no flush can be
            # reckoned from it. t161: it was a ZeroDivisionError where a run's first flush
            # was reckoned (an alert coming to a group holding muted alerts), or opened a
            # run whose group never flushed (an alert joining it never notified). t182:
            # the groups table's read-back took it, stored so by such a worker: the run
            # was never repeated (20,000 s unacknowledged, no repeat), now bad_shape as
            # any stored value no flush can be reckoned from. A `repeat_interval` of 0
            # such a worker wrote is taken: the run repeats at each group_interval, as
            # one shorter than group_interval does.
            return (
                name,
                route[name],
                f"{'seconds above 0 to 9.2e9 (292 years)' if routed else 'seconds above 0'}"
                ": a group_interval of zero is refused, as the routing file and "
                "Alertmanager refuse it (group_interval cannot be zero): no flush of the "
                "group can be reckoned from it",
            )
    for name in ("id", "playbook"):
        value = route.get(name, MISSING)
        if (routed or name in route) and not (isinstance(value, str) and (value or not routed)):
            return name, value, "a non-empty string" if routed else "text"
    for name in ("mute_time_intervals", "active_time_intervals"):  # optional, names
        value = route.get(name, MISSING)
        if value is not MISSING and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            return name, value, "a list of time interval names"
    return None


def route_problem(route: dict[str, Any]) -> str | None:
    """``route_fault`` of a stored route, said as ``field 'group_wait' is nan, expected
    seconds >= 0``, or None."""
    fault = route_fault(route)
    if fault is None:
        return None
    name, value, expected = fault
    return f"field {name!r} is {None if value is MISSING else value!r:.60}, expected {expected}"


def _group_problem(group: dict[str, Any]) -> str | None:
    """What is wrong with a group's fields beyond their types (``read_group``), or None."""
    if not 0 <= group["generation"] <= MAX_COUNT:
        # Past MAX_COUNT, the next run's generation could not be written (orjson's 64
        # bits): every alert and command of the group failed (t128).
        generation = group["generation"]
        return f"field 'generation' is {generation}, expected a whole number from 0 to 2**53 - 1"
    if group["run"] is not None:
        problem = run_problem(group["run"])
        if problem is not None:
            return f"run: {problem}"
    for name in ("seen", "commands"):
        odd = next((v for v in group[name] if not isinstance(v, str)), None)
        if odd is not None:
            return f"field {name!r} holds {odd!r:.60}, expected ids (text)"
    if group["route"] is None and group["run"] is not None:
        return "field 'route' is None, and there is a run"
    problem = None if group["route"] is None else route_problem(group["route"])
    if problem is not None:
        return f"route: {problem}"
    held = group.get("held_offers", [])
    if not isinstance(held, list) or not all(
        isinstance(h, dict)
        and _epoch(h.get("at"))
        and isinstance(h.get("report"), dict)
        and isinstance(h["report"].get("report_id"), str)
        and isinstance(h["report"].get("channel"), str)
        for h in held
    ):
        return f"field 'held_offers' is {held!r:.60}, expected offers, each its at and report"
    first = group.get("first_generation", 1)
    if type(first) is not int or not 1 <= first <= group["generation"] + 1:
        return f"field 'first_generation' is {first!r:.60}, expected a whole number >= 1"
    opened = group.get("opened_ts")
    if opened is not None and epoch_seconds_fault(opened) is not None:
        return f"field 'opened_ts' is {opened!r:.60}, expected an event time or null"
    muted = group.get("muted", {})
    if not isinstance(muted, dict) or not all(_epoch(v) for v in muted.values()):
        return f"field 'muted' is {muted!r:.60}, expected alert ids and epoch seconds"
    gone = group.get("muted_gone")
    if gone is not None and not (
        isinstance(gone, dict)
        and _epoch(gone.get("made"))
        and (gone.get("until") is None or _epoch(gone.get("until")))
    ):
        return f"field 'muted_gone' is {gone!r:.60}, expected made and until, epoch seconds"
    superseded = group.get("superseded", [])
    if not isinstance(superseded, list):
        return f"field 'superseded' is {superseded!r:.60}, expected a list"
    for kept in superseded:
        if not isinstance(kept, dict) or not _epoch(kept.get("at")):
            return f"a superseded run is {kept!r:.60}, expected its run, at and by"
        if not isinstance(kept.get("by"), str):
            return f"a superseded run's field 'by' is {kept.get('by')!r:.60}, expected a run id"
        problem = run_problem(kept.get("run"))
        if problem is not None:
            return f"a superseded run: {problem}"
    for field in ("routed_offset", "command_offset"):
        read = group.get(field, [0, 0])
        if not (
            isinstance(read, list)
            and len(read) == 2
            and all(type(n) is int and 0 <= n <= 2**63 - 1 for n in read)
        ):
            return f"field {field!r} is {read!r:.60}, expected [partition, offset]"
    calls = group.get("reply_calls", {})
    if not isinstance(calls, dict) or not all(isinstance(c, dict) for c in calls.values()):
        return f"field 'reply_calls' is {calls!r:.60}, expected closures by reply id"
    forwards = group.get("forwards", {})
    if not isinstance(forwards, dict) or not (
        all(type(forwards.get(n, 0)) is int for n in ("sent", "back"))
        and all(0 <= forwards.get(n, 0) <= MAX_COUNT for n in ("sent", "back"))
        and _epoch(forwards.get("at", 0.0))
    ):
        return f"field 'forwards' is {forwards!r:.60}, expected counts sent and back, and at"
    resends = group.get("reply_resends", {})
    if not isinstance(resends, dict) or not all(
        type(n) is int and 0 <= n <= MAX_COUNT for n in resends.values()
    ):
        return f"field 'reply_resends' is {resends!r:.60}, expected counts by reply id"
    undelivered = group.get("closures_undelivered", {})
    if not isinstance(undelivered, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("reply"), dict) and _epoch(e.get("failed_at"))
        for e in undelivered.values()
    ):
        return (
            f"field 'closures_undelivered' is {undelivered!r:.60}, expected closures by reply "
            "id, each its reply, failed_at and detail"
        )
    # Audit records stored before they are sent (streams.response ``SAY``) and the ids
    # the group has stored (``SAID``): one of another shape failed the group's every
    # routed message, command and deadline pass at its flush.
    say = group.get("say", [])
    if not isinstance(say, list) or not all(
        isinstance(r, dict)
        and isinstance(r.get("id"), str)
        and isinstance(r.get("action"), str)
        and isinstance(r.get("detail", ""), str)
        and isinstance(r.get("data", {}), dict)
        for r in say
    ):
        return f"field 'say' is {say!r:.60}, expected audit records, each its id and action"
    said = group.get("said", [])
    if not isinstance(said, list) or not all(isinstance(i, str) for i in said):
        return f"field 'said' is {said!r:.60}, expected record ids (text)"
    # The answers first given to operator API requests made with an Idempotency-Key
    # (streams.response ``_on_command``, streams.api ``keyed_answer``): unjudged before
    # t154, one of another shape (a list) failed every such command of the run, and
    # its every keyed request to the API, with an AttributeError.
    keyed = group.get("keyed", {})
    if not isinstance(keyed, dict) or not all(isinstance(c, dict) for c in keyed.values()):
        return f"field 'keyed' is {keyed!r:.60}, expected commands by command id"
    outbox = group.get("outbox", [])
    if group["run"] is None and outbox:
        return "field 'outbox' holds outputs, and there is no run"
    if not isinstance(outbox, list):
        return f"field 'outbox' is {outbox!r:.60}, expected a list of steps"
    for cmd in outbox:
        if not _step_shape(cmd):
            return f"field 'outbox' holds {cmd!r:.60}, expected a step of the run"
    return None


_COMMAND_FIELDS = frozenset(
    ("id", "run_id", "alert_id", "action", "at", "level", "unit", "detail", "actor", "data")
)


def _step_shape(cmd: Any) -> bool:
    """Whether ``cmd`` is a stored ``Command.to_dict`` (an outbox entry)."""
    return (
        isinstance(cmd, dict)
        and cmd.keys() == _COMMAND_FIELDS
        and all(isinstance(cmd[k], str) for k in ("id", "run_id", "alert_id", "action"))
        and all(isinstance(cmd[k], str) for k in ("detail", "actor"))
        and all(cmd[k] is None or isinstance(cmd[k], str) for k in ("level", "unit"))
        and epoch_seconds_fault(cmd["at"]) is None
        and isinstance(cmd["data"], dict)
    )


def read_group(entry: bytes) -> dict[str, Any]:
    """A ``groups`` changelog entry as its group (run, seen alerts, applied commands,
    route, and those kept beside them: superseded runs, closure calls in flight, the
    run's opening in event time); ``UnreadableEntryError`` as ``read_document``, and
    ``bad_shape`` for a group without those fields or with one of another type, judged
    here once, in every field the response stage and the operator API read (the
    deadline check read every group's ``run`` and ``route``: one without them stopped
    the deadlines of every run, every tick; a run field of another type failed its
    timer, commands and API calls each time, ``superseded``, ``reply_calls`` or
    ``opened_ts`` of another type the alert, command or offer that read them)."""
    group = read_document(entry)
    for name, kind in _GROUP_FIELDS:
        value = group.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UnreadableEntryError(BAD_SHAPE, f"group: field {name!r} is {value!r:.60}")
    problem = _group_problem(group)
    if problem is not None:
        raise UnreadableEntryError(BAD_SHAPE, f"group: {problem}")
    return group


def group_key_fault(key: bytes, group: dict[str, Any]) -> str | None:
    """Why a ``groups`` entry read back (``read_group``'s) does not belong under ``key``,
    or None: its run's id is ``<key>.<generation>``, as the response stage opens every
    run (t166: a run stored under another group's key, from another tool's changelog
    entry, notified and escalated under its own id, which ``runs ack`` and the rest
    look up under another key: 404 or "superseded", so nobody could act on it); each
    superseded run's id is ``<key>.<n>`` too."""
    name = key.decode()
    if len(name) > MAX_ID_CHARS:
        # Every group key is "grp-" and 16 hex digits (playbooks.routing, now and before
        # t126): a longer one is another tool's, whose run id no request can carry, and
        # whose every change and step is larger than Kafka takes at 1 MB.
        return f"group: its key is {len(name):,} characters, no group key (at most {MAX_ID_CHARS})"
    run = group["run"]
    expected = f"{name}.{group['generation']}"
    if run is not None and run["run_id"] != expected:
        return (
            f"group: its run's id {shown_key(run['run_id'])!r} is not {shown_key(expected)!r}, "
            "its key and generation: a group is stored under its own key"
        )
    for kept in group.get("superseded", ()):
        run_id = kept["run"]["run_id"]
        if run_key(run_id) != key:
            return (
                f"group: its superseded run's id {shown_key(run_id)!r} is not of its key "
                f"{shown_key(name)!r}"
            )
    return None


def read_labels(entry: bytes) -> dict[str, Any]:
    """A ``firing`` changelog entry: a firing alert's labels (names and values text);
    ``UnreadableEntryError`` as ``read_document``, and ``bad_shape`` for labels of
    another type, judged here once (before, one failed the inhibition check of every
    alert that walked the table, and the open-alert gauges of every deadline tick)."""
    doc = read_document(entry)
    try:
        return label_set(doc, need_one=False)
    except RoutingConfigError as exc:
        raise UnreadableEntryError(BAD_SHAPE, f"firing alert: {exc}") from None


def firing_key_fault(key: bytes, labels: dict[str, Any]) -> str | None:
    """Why a ``firing`` entry read back does not belong under ``key``, or None: its key is
    an alert id, which the alerts door takes only up to ``MAX_ID_CHARS`` characters
    (t166: one longer, another tool's entry, inhibited alerts as a source no alert is,
    and each muted by it was stored "by" an id read-back refuses: dropped at the next
    start, never routed)."""
    length = len(key.decode())
    if length <= MAX_ID_CHARS:
        return None
    return f"firing alert: its key is {length:,} characters, no alert id (at most {MAX_ID_CHARS})"


def generation_floor(entry: dict[str, Any]) -> int:
    """The floor of a ``generations`` entry as ``read_generation`` gave it: a counter
    read-back never lowers (``streams.tables.ReadBack.counter_of``)."""
    return int(entry["floor"])


def read_generation(entry: bytes) -> dict[str, Any]:
    """A ``generations`` changelog entry: ``{"floor": n}``, the highest generation
    of the groups forgotten on its partition (a whole number >= 0);
    ``UnreadableEntryError`` as ``read_document``, ``bad_shape`` for another value."""
    doc = read_document(entry)
    floor = doc.get("floor")
    # Bounded as a group's generation (MAX_COUNT): a floor of 2**64 - 1 read back made
    # every new group of its partition fail to be written, its alerts dead-lettered (t128).
    if type(floor) is not int or not 0 <= floor <= MAX_COUNT:
        raise UnreadableEntryError(BAD_SHAPE, f"group generations: field 'floor' is {floor!r:.60}")
    return doc


# A grid's cell paths (cell id -> (district, street, community), "" above its level) and
# the (path, kind) pairs an alert can carry there (each sensor's, and every cell's
# incident_burst): the label values of its per-cell series.
GridSeries = tuple[dict[str, tuple[str, str, str]], frozenset[tuple[tuple[str, str, str], str]]]


@dataclass(frozen=True, slots=True)
class GridChange:
    """A new grid's ``grid_series`` (``paths``, ``pairs``) and what it changes against
    the grid in force: the cell paths and (path, kind) pairs it adds (their zero series
    to make) and the paths it drops (their gauges to remove)."""

    paths: dict[str, tuple[str, str, str]]
    pairs: frozenset[tuple[tuple[str, str, str], str]]
    added_paths: list[tuple[str, str, str]]
    added_pairs: frozenset[tuple[tuple[str, str, str], str]]
    gone_paths: list[tuple[str, str, str]]


def grid_series(grid: Grid) -> GridSeries:
    """``GridSeries`` of ``grid`` (any thread: reads the grid only)."""
    paths: dict[str, tuple[str, str, str]] = {}
    for cell in grid.cells:
        path = grid.path(cell)
        paths[cell] = (path.get("district", ""), path.get("street", ""), path.get("community", ""))
    pairs = frozenset(
        {
            *((paths[s.cell], s.kind) for s in grid.sensors.values()),
            *((path, "incident_burst") for path in paths.values()),
        }
    )
    return paths, pairs


@dataclass(frozen=True, slots=True)
class Config:
    """The configuration in force, whole and never changed (``Context.config``): the
    grid, the playbooks (name -> Playbook), the routing tree, the playbook engines (name
    -> engine, built on that grid) and the operator API's tokens. A reload puts a new
    one in force in one assignment (``Context.configured``); a message, batch, timer
    tick or API request takes it once and reads only it to its end, so a reload at one
    of its awaits is seen by the next one, never half-way (t133: a routed alert stepped
    by an engine of one library and muted by the routing of another)."""

    grid: Grid
    playbooks: dict[str, Playbook]
    router: Router
    engines: dict[str, PlaybookEngine]
    tokens: TokenStore


def engines_of(
    playbooks: dict[str, Playbook], grid: Grid, ack_deadline: float | None
) -> dict[str, PlaybookEngine]:
    """One engine per playbook, on ``grid`` (any thread)."""
    return {name: PlaybookEngine(pb, grid, ack_deadline) for name, pb in playbooks.items()}


def departments_of(classifier: frozenset[str], playbooks: dict[str, Playbook]) -> frozenset[str]:
    """The label values a run's department may take (``Context.label_department``): the
    classifier's departments and those of the playbooks in force."""
    return frozenset({*classifier, *(pb.department for pb in playbooks.values())})


def generation_keys(partitions: int) -> list[bytes]:
    """The ``generations`` key of each partition, in partition order: the first
    ``generations-<i>`` whose Kafka partition is that one, so its entry lives (and moves
    in a rebalance) with the groups it is the floor of."""
    keys: dict[int, bytes] = {}
    i = 0
    while len(keys) < partitions:
        key = b"generations-%d" % i
        keys.setdefault(key_partition(key, partitions), key)
        i += 1
    return [keys[p] for p in range(partitions)]


@dataclass(frozen=True)
class BatchedMessage:
    """A message of a batch (the batch drain hands ``Message`` objects) in the
    shape the one-at-a-time handler reads: ``value`` and ``key`` (bytes) and
    ``message`` (for its timestamp, and its origin in a dead letter)."""

    message: Message

    @property
    def value(self) -> Any:
        return self.message.value

    @property
    def key(self) -> Any:
        return self.message.key


class Context:
    """The app's topics and tables, its configuration and the shared ways out."""

    def __init__(self, app: faust.App, settings: Settings, grid: Grid, metrics: Metrics):
        self.app = app
        # A heartbeat's round trip at most after the loop runs again (t184).
        self.membership = MembershipWatch(
            settings.session_timeout, 2 * settings.heartbeat_interval + 1.0
        )
        self.settings = settings
        # The awaited sends (sensors' marks and alerts, corroborated and routed alerts) go
        # through a producer of their own, started before the app's services and stopped
        # after them: a commit queues every changed sensor state on the app's producer
        # (9.5 kB each, 19 MB at 2,000 busy sensors), and a batch's marks waited behind
        # it (docs/benchmarks.md, "Live latency").
        self.delivery: ProducerT = app.transport.create_producer(beacon=app.beacon)
        app.add_dependency(self.delivery)
        # A fault in the code that every message of a kind hits logged its traceback per
        # message; once a minute per stream and exception type, the others counted in the
        # next line (each still has its dead letter).
        self.say_failed = SayEvery(log, logging.ERROR, prefix="citybrain: ", what="failure")
        # Dead letters said once a minute per stream and reason (each on its topic).
        self._say_dead_letter = SayEvery(log, prefix="citybrain: ", what="dead letter")
        # What each message's dead letters carried of its record (t150: a pack's 10,000).
        self._carried = CarriedSpend()
        self.metrics = metrics
        playbooks = load_playbooks(settings.playbook_dir, settings.topic_prefix)
        # The configuration in force, one object (``Config``): a reload replaces it whole.
        # The operator API's tokens are swapped with it (``streams.api``).
        self.config = Config(
            grid,
            playbooks,
            load_routing(settings.routing_file, playbooks),
            engines_of(playbooks, grid, settings.ack_deadline_seconds),
            TokenStore.load(settings.api_tokens_file),
        )
        self.annotator = None
        if settings.grafana_url:
            token = settings.grafana_token.get_secret_value() if settings.grafana_token else ""
            self.annotator = GrafanaAnnotator(settings.grafana_url, token, self.on_annotation_error)
        self._cell_labels_cache: dict[str, tuple[str, str, str]] = {}
        # The (cell path, kind) pairs whose zero series exist (``grid_series``).
        self._cell_kinds: frozenset[tuple[tuple[str, str, str], str]] = frozenset()
        # Runs whose steps are being delivered before their state is stored (response
        # stage's ``advance``): the operator API waits for them instead of saying 404.
        self.storing_runs: dict[str, asyncio.Event] = {}
        self.pending_commands = PendingCommands()
        # Group key -> {"reason", "since" (epoch s)}: the runs the last whole deadline
        # pass left as they were (response stage), shown by the operator API so a run
        # overdue with no escalation says why (``not_advancing``).
        self.runs_not_advancing: dict[bytes, dict[str, Any]] = {}
        # Audit records of table entries dropped at read-back, sent by a timer (recovery
        # reads them synchronously, with no await).
        self._unreadable_audit: list[dict[str, Any]] = []
        # The label values the worker's series may take for an alert's kind and a run's
        # department (``label_kind``, ``label_department``): those ``initialise`` makes.
        # Recomputed from these by every reload (``configured``), never only grown.
        self.label_kinds = frozenset((*grid.kinds, "incident_burst"))
        # The classifier's departments: its training file is read at start only.
        self.classifier_departments = frozenset(DepartmentClassifier.departments())
        self.label_departments = departments_of(self.classifier_departments, self.playbooks)
        self.initialise_metrics()
        for problem in SILENCE_PROBLEMS:
            metrics.silences_invalid.labels(problem)

        def topic(role: str) -> faust.TopicT:
            return app.topic(
                settings.topic(role),
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.partitions,
            )

        self.readings, self.incidents = topic("readings"), topic("incidents")
        self.deadletter, self.alerts = topic("deadletter"), topic("alerts")
        self.routed, self.steps = topic("routed"), topic("steps")
        self.audit_topic, self.commands = topic("audit"), topic("commands")
        self.replies = topic("replies")
        n = settings.partitions
        # Keys are raw bytes (sensor id, grid cell, group key, alert or silence id),
        # values JSON (sensor states: binary, streams/detection.py: state_bytes); each
        # key's changelog partition is that of its source messages.
        self.sensor_state = cast(
            KeyPartitionedTable,
            key_partitioned_table(
                app,
                "sensor-state",
                n,
                encode=state_bytes,
                decode=read_state,
                key_fault=state_key_fault,
            ),
        )
        # Held while a batch updates live sensor states, so a commit's changelog flush
        # never serialises a state halfway through a batch (tables.coalesce_changelog).
        self.states_settled = asyncio.Lock()
        # Routed alerts, commands and the deadline timer each read a run, await Kafka,
        # then write it back: held across that, so no writer's change is overwritten by
        # another's older state (docs/operations.md, delivery guarantees, item 6).
        self.runs_settled = asyncio.Lock()
        # One key per cell and category (``burst_key``), on the cell's partition: a cell's
        # categories as one value could outgrow one Kafka message (each holds up to 200
        # report ids and 200 seen ids), and crash the producer at every write.
        self.burst_windows = cast(
            KeyPartitionedTable,
            key_partitioned_table(
                app,
                "burst-windows",
                n,
                decode=read_burst_window,
                partition_of=burst_cell,
                key_fault=burst_window_key_fault,
            ),
        )
        # The layout before it, a cell -> {category: window}: read through, never written
        # again, so windows open across an upgrade go on (streams.ingest ``window_of``).
        self.burst_state = cast(
            KeyPartitionedTable,
            key_partitioned_table(
                app, "burst-state", n, decode=read_burst_cell, key_fault=burst_cell_key_fault
            ),
        )
        self.groups = cast(
            KeyPartitionedTable,
            key_partitioned_table(app, "groups", n, decode=read_group, key_fault=group_key_fault),
        )
        # Per partition, the highest generation of the groups forgotten there: a group
        # key routed again after its group was forgotten starts above it, so no run id
        # (``<group key>.<n>``), and no step, webhook delivery or closure id made of it,
        # is ever used twice (streams.response, ``_forget_groups``).
        self.generations = cast(
            KeyPartitionedTable,
            key_partitioned_table(
                app, "generations", n, decode=read_generation, counter_of=generation_floor
            ),
        )
        self.generation_keys = generation_keys(n)
        self.firing = key_partitioned_table(
            app, "firing", n, is_global=True, decode=read_labels, key_fault=firing_key_fault
        )
        self.silences = key_partitioned_table(app, "silences", n, is_global=True)
        # The silences as read for routing, each stored version parsed once for both the
        # alerts stage and a run's flush (``SilenceBook``): before, each stage kept a book
        # and parsed every silence new to the worker itself.
        self.silence_book = SilenceBook()
        # One reading of the book at a time (``read_silences``): the route agent and a
        # GET /silences each parsed the same 10,000 new silences, in turns.
        self._silences_reading = asyncio.Lock()
        # The firing alerts that can inhibit, per inhibit rule, kept as the table changes
        # (from this worker and from the changelog alike): an alert an inhibit rule
        # targets looks up its sources instead of walking every firing alert.
        self.inhibiting: SourceIndex | None = None
        self._index_rules(self.router.inhibit_rules)

    # The configuration in force, read whole: a handler that awaits takes ``config``
    # once and passes it down rather than reading these again after an await.
    @property
    def grid(self) -> Grid:
        return self.config.grid

    @property
    def playbooks(self) -> dict[str, Playbook]:
        return self.config.playbooks

    @property
    def router(self) -> Router:
        return self.config.router

    @property
    def tokens(self) -> TokenStore:
        return self.config.tokens

    def _index_rules(self, rules: tuple[InhibitRule, ...]) -> None:
        """Keep ``inhibiting`` the firing alerts' index of ``rules`` (the inhibit rules in
        force): built again, from every firing alert, when they differ from the indexed
        ones (t133: after a reload that changed them, ``Router.decide`` fell back to
        walking every firing alert, 0.1 ms an alert with 5,000 firing became 225 ms);
        none when there are none. On the loop, nothing awaited."""
        old = self.inhibiting
        if (old.rules if old is not None else ()) == tuple(rules):
            return
        firing = self.firing
        if old is not None and isinstance(firing, KeyPartitionedGlobalTable):
            firing.unwatch(old)
        self.inhibiting = None
        if rules:
            index = SourceIndex(rules)
            if isinstance(firing, KeyPartitionedGlobalTable) and firing.watch(index):
                self.inhibiting = index

    def generation_floor(self, key: bytes) -> int:
        """The generation a new group of ``key`` starts from (its first run is the next):
        0 until a group was forgotten on its partition, then the highest generation
        forgotten there."""
        partition = key_partition(key, self.settings.partitions)
        entry = self.generations.data.get(self.generation_keys[partition])
        return int(entry["floor"]) if isinstance(entry, dict) else 0

    def report_part(
        self, key: str, route: Route, labels: dict[str, str], playbooks: dict[str, Playbook]
    ) -> dict[str, str]:
        """One part of a citizen report routed (or offered) to several groups
        (``Part.to_dict``): the group ``key``, its route's playbook and the department
        its run has (the alert's ``department`` label, else the playbook's, as
        ``PlaybookEngine.new_run`` sets it). ``playbooks``: those of the configuration
        the route was taken from (t133: a reload between the routing and this dropped
        the route's playbook from the live ones, a KeyError that failed the message)."""
        department = labels.get("department", playbooks[route.playbook].department)
        return Part(key, route.playbook, department).to_dict()

    async def forget_moved(self, assigned: set[TP]) -> None:
        """After a rebalance, drop from each partitioned table the keys of the partitions
        of its source topic this worker was not given (``assigned``: the worker's topic
        partitions). faust's memory store forgets only the keys it read from a changelog;
        a key this worker wrote stayed, so a run moved to another worker was still
        escalated and renotified by this worker's deadline timer, and its stale state
        written over the new owner's. Kept partitions are left alone: faust does not
        re-read the changelog of a partition it keeps.

        Runs are forgotten under ``runs_settled``: faust waits for the agents' events
        before a revocation completes, not for the deadline timer, and a run the timer
        was storing across the rebalance came back into the table once its write
        finished, to be escalated here again at every rung."""
        for table, role in (
            (self.sensor_state, "readings"),
            (self.burst_windows, "incidents"),
            (self.burst_state, "incidents"),
        ):
            table.forget_partitions(self.lost_partitions(assigned, role))
        async with self.runs_settled:
            lost = self.lost_partitions(assigned, "routed")
            self.groups.forget_partitions(lost)
            self.generations.forget_partitions(lost)

    def lost_partitions(self, assigned: set[TP], role: str) -> set[int]:
        """The partitions of the topic of ``role`` (``"readings"``, ``"alerts"``, ...)
        that are not in ``assigned`` (topic partitions): whatever this worker keeps
        for them (table keys, metric series) belongs to another worker, or to none."""
        topic = self.settings.topic(role)
        owned = {tp.partition for tp in assigned if tp.topic == topic}
        return set(range(self.settings.partitions)) - owned

    def reading_back(self, partitioned: bool = True) -> str | None:
        """Why this worker's tables may lack keys that exist, or None when they hold all
        it owns: before its first recovery ends it is still reading every changelog back
        from Kafka; and, for the partitioned tables (``partitioned``: runs, bursts,
        sensors, not the global silences and firing alerts, which a rebalance leaves
        whole), while a rebalance moves partitions and reads the ones this worker took
        over back (faust's ``app.rebalancing`` is set from the revocation to the end of
        that recovery; ``recovery.completed`` is first set when the first one ends). The
        operator API answers 503 with this reason rather than "no run" (trial 15)."""
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]
        if not recovery.completed.is_set():
            return "this worker is starting and is still reading its state back from Kafka"
        if partitioned and self.app.rebalancing:
            return (
                "a rebalance is moving partitions between workers (one joined or left) and "
                "this worker is reading the ones it takes over back from Kafka"
            )
        if partitioned and self.membership.in_doubt():
            return (
                "this worker stood still past its session and may have lost its partitions "
                "to another worker: waiting for the group's answer"
            )
        return None

    def moving(self) -> bool:
        """Whether this worker's partitions may be moving now: faust's rebalance, or its
        membership in doubt after standing still past its session (``MembershipWatch``).
        The timers ask it before each item they change, as they asked
        ``app.rebalancing``, which a frozen worker woken does not see set until a
        heartbeat's answer (t184)."""
        return bool(self.app.rebalancing) or self.membership.in_doubt()

    def owned_partitions(self, role: str) -> set[int]:
        """The partitions of the topic of ``role`` assigned to this worker now (empty
        before its first assignment): what its metrics of keyed state may count."""
        topic = self.settings.topic(role)
        try:
            assignment = self.app.consumer.assignment()
        except ConsumerNotStarted:
            return set()
        return {tp.partition for tp in assignment if tp.topic == topic}

    def stored_silences(self) -> Iterator[tuple[str, Any]]:
        """The silences table's ``(silence id, stored document)`` pairs, for
        ``playbooks.routing.SilenceBook.read``. Keys are UTF-8 as the API writes them; any
        other key is shown with replacement characters (its document is the bad one)."""
        # A generator function: nothing is read until the book walks it (an unchanged
        # table is not walked at all).
        for k, v in stored_items(self.silences):
            yield k.decode(errors="replace"), v

    def firing_except(self, key: bytes) -> Iterable[Any]:
        """The labels of every firing alert but ``key``'s, for ``Router.decide``: read
        from the store as they are walked (only for an alert an inhibit rule targets),
        and with the index of the ones that can inhibit when the store keeps one."""
        if self.inhibiting is not None and isinstance(self.firing, KeyPartitionedGlobalTable):
            return IndexedFiring(self.inhibiting, key, lambda: self._firing_except(key))
        return self._firing_except(key)

    def _firing_except(self, key: bytes) -> Iterator[Any]:
        for k, v in stored_items(self.firing):
            if k != key:
                yield v

    async def read_silences(self, now: float, report: bool = True) -> SilenceList:
        """The silences not yet expired at ``now`` (epoch s), as ``SilenceBook.reading``
        gives them: each stored version parsed once, in steps, yielding to the event loop
        between them (thousands new to this worker, at its start or from a changelog
        written by others, took seconds to parse: no readings, API or Kafka heartbeats
        meanwhile). One reading at a time: a second caller waits for the first and then
        finds the book read. A stored silence that cannot be read is skipped, logged,
        counted (``citybrain_silences_invalid_total``) and audited (``silence_unreadable``)
        once, by the first caller that reports them (``report``: the route agent; a
        listing does not, so that a GET writes nothing to Kafka)."""
        async with self._silences_reading:
            steps = self.silence_book.reading(
                self.stored_silences(), now, self.silences_version(), report
            )
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    read: tuple[SilenceList, list[BadSilence]] = done.value
                    break
                await asyncio.sleep(0)
            silences, bad = read
            for silence in bad:
                # Key and message cut (t166): a stored silence's key of 1 MB made this
                # audit record larger than the producer sends, failing the alert being
                # routed (the route agent reports), and the next one, at each alert.
                shown, detail = shown_key(silence.key), bounded_message(silence.message)
                log.warning("citybrain: skipping stored silence %s: %s", shown, detail)
                self.metrics.silences_invalid.labels(silence.problem).inc()
                await self.audit(
                    {
                        "action": "silence_unreadable",
                        "silence_id": shown,
                        "at": now,
                        "actor": "citybrain",
                        "detail": f"{silence.problem}: {detail}",
                    }
                )
            return silences

    def silences_version(self) -> int | None:
        """A number that changes whenever the silences table does (``SilenceBook.read``'s
        ``version``); None when its store cannot tell."""
        table = self.silences
        return table.change_version() if isinstance(table, KeyPartitionedGlobalTable) else None

    def label_kind(self, kind: str) -> str:
        """An alert's ``kind`` as a metric label: one of the grid's kinds or
        ``incident_burst``, else ``other`` (an alert on the alerts topic may name any)."""
        return bounded_label(kind, self.label_kinds)

    def label_department(self, department: str) -> str:
        """A run's department as a metric label: one a playbook or the classifier names,
        else ``other`` (a run takes its alert's ``department`` label, any text)."""
        return bounded_label(department, self.label_departments)

    def cell_path(self, cell: str, grid: Grid | None = None) -> tuple[str, str, str]:
        """(district, street, community) of a cell, cached: labels on hot-path metrics.
        ``grid``: the grid a batch was admitted under when a reload may have replaced
        ``self.grid`` since (its paths are not cached). Raises GridError for a cell that
        grid lacks."""
        if grid is not None and grid is not self.grid:
            path = grid.path(cell)
            return (path.get("district", ""), path.get("street", ""), path.get("community", ""))
        found = self._cell_labels_cache.get(cell)
        if found is None:
            path = self.grid.path(cell)
            found = (path.get("district", ""), path.get("street", ""), path.get("community", ""))
            self._cell_labels_cache[cell] = found
        return found

    def grid_change(self, grid: Grid) -> GridChange:
        """What putting ``grid`` in force changes in the per-cell series (``GridChange``),
        computed from the grid in force (any thread: a reload builds it off the loop, as
        a city's 100,000 cells cost a second of set work)."""
        paths, pairs = grid_series(grid)
        old = set(list(self._cell_labels_cache.values()))
        new = set(paths.values())
        return GridChange(
            paths, pairs, sorted(new - old), pairs - self._cell_kinds, sorted(old - new)
        )

    def configured(
        self,
        grid: Grid,
        playbooks: dict[str, Playbook],
        router: Router,
        tokens: TokenStore,
        engines: dict[str, PlaybookEngine],
        change: GridChange | None = None,
    ) -> None:
        """Put a reload's configuration in force (``streams.reload``; on the loop, nothing
        awaited): the grid, playbooks, routing tree and tokens, and what is derived from
        them here, recomputed rather than grown (the label values of kinds and
        departments, the cell paths, the zero series of new cells, kinds and playbooks,
        and the ``citybrain_cell_runs_open`` series of the cells gone removed: a run there
        is counted nowhere, and its gauge stayed at its last value), and the firing alerts'
        index of the inhibit rules built again when they changed. ``engines``: one per
        playbook, built on ``grid``. ``change``:
        ``grid_change(grid)``, built off the loop for a new grid."""
        cells: Iterable[tuple[str, str, str]] = ()
        pairs: Iterable[tuple[tuple[str, str, str], str]] = ()
        if grid is not self.grid:
            change = change if change is not None else self.grid_change(grid)
            cells, pairs = change.added_paths, change.added_pairs
            self._cell_labels_cache = dict(change.paths)
            self._cell_kinds = change.pairs
            for path in change.gone_paths:
                with contextlib.suppress(KeyError):  # no series of it yet
                    self.metrics.cell_runs_open.remove(*path)
        # One assignment: a handler that took the old ``config`` ends under it.
        self.config = Config(grid, playbooks, router, engines, tokens)
        self._index_rules(router.inhibit_rules)
        self.label_kinds = frozenset((*grid.kinds, "incident_burst"))
        self.label_departments = departments_of(self.classifier_departments, playbooks)
        self.initialise_metrics(cells, pairs)

    def initialise_metrics(
        self,
        cells: Iterable[tuple[str, str, str]] | None = None,
        cell_kinds: Iterable[tuple[tuple[str, str, str], str]] | None = None,
    ) -> None:
        """The zero series of the grid's kinds and the playbooks in force, and of
        ``cells`` and ``cell_kinds`` (None: all the grid's, as at start; a reload gives
        those its grid adds) (``streams.metrics.initialise``; idempotent)."""
        grid = self.grid
        if cells is None or cell_kinds is None:
            paths, self._cell_kinds = grid_series(grid)
            self._cell_labels_cache.update(paths)
            cells, cell_kinds = paths.values(), self._cell_kinds
        initialise(
            self.metrics,
            {n: pb.department for n, pb in self.playbooks.items()},
            LEVELS,
            (*grid.kinds, "incident_burst"),
            self.settings.score_threshold,
            cells,
            cell_kinds,
            self.classifier_departments,
            self.router.root.playbooks_reachable({"source": "citizen"}),
            [(n, t) for n, pb in self.playbooks.items() for t in sorted(pb.task_topics)],
        )

    async def on_annotation_error(self, annotation_id: str, detail: str) -> None:
        """Called by the Grafana annotator (off the stream) when an annotation fails."""
        self.metrics.annotations.labels("failed").inc()
        grafana = self.settings.grafana_url
        await self.audit(
            {
                "action": "annotation_failed",
                "run_id": annotation_id.rsplit(":", 1)[0],
                # Which annotation, to which Grafana (t173: the run alone, as the webhook
                # records named it).
                "annotation_id": annotation_id,
                **({"receiver": receiver(str(grafana))} if grafana else {}),
                "at": time.time(),
                "actor": "citybrain",
                "detail": bounded_message(detail),  # an audit record is one Kafka message
            }
        )

    # -- plumbing --------------------------------------------------------------------
    async def queue(
        self, topic: faust.TopicT, items: list[tuple[str, Any]]
    ) -> list[Awaitable[Any]]:
        """Queue every message on the producer; the futures resolve on delivery."""
        return [
            await topic.send(key=key.encode(), value=orjson.dumps(value)) for key, value in items
        ]

    async def send_all(self, topic: faust.TopicT, items: list[tuple[str, Any]]) -> None:
        """Send through ``delivery`` and wait until Kafka has every message (the caller's
        state comes after). Partitioned by key as ``topic.send`` does (the transport's
        partitioner). Raises faust's ``ProducerSendError`` if Kafka refuses one."""
        for fut in await self.queue_all(topic, items):
            await fut

    async def queue_all(
        self, topic: faust.TopicT, items: list[tuple[str, Any]]
    ) -> list[Awaitable[Any]]:
        """``send_all``'s messages queued through ``delivery``, in order; returns their
        delivery futures for the caller to await (a batch's, at its end)."""
        name = topic.get_topic_name()
        send = self.delivery.send
        return [
            await send(name, key.encode(), orjson.dumps(value), None, None, None)
            for key, value in items
        ]

    async def acknowledged(
        self,
        sends: Callable[[], Awaitable[list[Awaitable[Any]]]],
        timeout: float = API_KAFKA_WAIT,
    ) -> bool:
        """Whether Kafka acknowledged every message ``sends`` queues (it returns their
        delivery futures) within ``timeout`` seconds. False when it did not (the broker
        is down or slow; queueing itself can wait for metadata) or a delivery failed:
        the caller answers 503. Nothing is cancelled once queued: a message Kafka takes
        later still arrives, so a retry must be idempotent (the operator API's
        Idempotency-Key, a silence's id)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        queueing = asyncio.ensure_future(sends())
        done, _ = await asyncio.wait([queueing], timeout=timeout)
        if not done:
            queueing.cancel()  # still waiting for topic metadata: not queued
            with contextlib.suppress(BaseException):
                await queueing
            return False
        if queueing.exception() is not None:
            log.warning("citybrain: API write not queued: %r", queueing.exception())
            return False
        futures = [asyncio.ensure_future(f) for f in queueing.result()]
        if not futures:
            return True
        # asyncio.wait never cancels them: a delivery future cancelled here would break
        # the producer's own callbacks on it.
        done, pending = await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
        if pending:
            return False
        failed = [f.exception() for f in done if f.exception() is not None]
        if failed:
            log.warning("citybrain: API write not delivered: %r", failed[0])
            return False
        return True

    def audit_send(self, record: dict[str, Any]) -> tuple[bytes, bytes]:
        """The key and value ``audit`` sends for ``record`` (``audit_record``)."""
        return audit_record(record)

    def on_unreadable_state(self, table: str, key: bytes, entry: Unreadable) -> None:
        """A table's changelog entry that could not be read back (``streams.tables``),
        already dropped from the table: said in one line, counted, and audited by the next
        ``audit_unreadable_state`` (recovery calls this synchronously)."""
        # Cut (t166): a key of 1 MB, put whole into the audit record, made it larger
        # than the producer sends, and the failed send cost what was in hand.
        shown = shown_key(key)
        size = f" ({entry.size} bytes)" if entry.size else ""  # 0: found in use, not read
        why = bounded_message(f"{entry.reason}: {entry.detail}")
        log.warning(
            "citybrain: %s: dropped the stored entry of key %r%s, %s",
            table,
            shown,
            size,
            why,
        )
        self._count_unreadable(table, shown, entry.reason, f"{why}{size}")

    def _count_unreadable(self, table: str, shown: str, reason: str, detail: str) -> None:
        """Count a stored entry of ``table`` (key ``shown``) that could not be used, by
        ``reason``, and keep its ``state_unreadable`` audit record for the next
        ``audit_unreadable_state``."""
        self.metrics.state_unreadable.labels(table, reason).inc()
        self._unreadable_audit.append(
            {
                "action": "state_unreadable",
                "table": table,
                "key": shown,
                "reason": reason,
                "at": time.time(),
                "actor": "citybrain",
                "detail": detail,
            }
        )

    def keep_generation(self, key: bytes, held: list[Any]) -> None:
        """A ``groups`` entry refused at read-back (its group dropped): ``held`` is what
        its key held before (the stored group, then earlier entries' bytes, newest
        first; ``ReadBack.on_refused_history``). The highest run generation among those
        that read back becomes its partition's floor, so the key's next run takes an id
        above every one that group used (t194: junk written over a group dropped it, and
        the key's next alert opened ``<key>.1`` again). Staged for the changelog's next
        flush; said at WARNING. A group none of whose entries reads back keeps the floor
        as it is (said in the ``state_unreadable`` line)."""
        highest = 0
        for entry in held:
            group = entry
            if isinstance(entry, bytes):
                try:
                    group = read_group(entry)
                except UnreadableEntryError:
                    continue
            generation = group.get("generation") if isinstance(group, dict) else None
            if type(generation) is int and generation > highest:
                highest = generation
        at = self.generation_keys[key_partition(key, self.settings.partitions)]
        floor = self.generation_floor(key)
        if highest <= floor:
            return
        self.generations.stage_many({at: {"floor": highest}})
        log.warning(
            "citybrain: groups: the dropped group %r had used run generations up to %d: "
            "its partition's floor is raised from %d to %d, so its next run is %r, never "
            "an id it used",
            shown_key(key),
            highest,
            floor,
            highest,
            f"{shown_key(key)}.{highest + 1}",
        )

    def on_skipped_state(self, table: str, skipped: Skipped) -> None:
        """An entry of a counter table (the run-id floors, ``generations``) that read-back
        skipped (``streams.tables.ReadBack._apply_counters``): junk, a tombstone or a key
        that is not UTF-8 text, which never lowers the counter its key keeps (t194: one
        read back as "no floor" let a restarted worker reuse run ids). Said at WARNING with
        its partition and offset and the counter kept, counted and audited as an
        unreadable entry (``on_unreadable_state``)."""
        entry = skipped.entry
        shown = shown_key(skipped.key)
        size = f" ({entry.size} bytes)" if entry.size else ""
        why = bounded_message(f"{entry.reason}: {entry.detail}")
        kept = f"kept {skipped.kept:,}, its highest sound value"
        log.warning(
            "citybrain: %s: skipped the entry of key %r at changelog partition %d offset %d%s, "
            "%s; a run-id floor is never lowered: %s",
            table,
            shown,
            skipped.partition,
            skipped.offset,
            size,
            why,
            kept,
        )
        self._count_unreadable(
            table,
            shown,
            entry.reason,
            f"{why}{size}, at changelog partition {skipped.partition} offset "
            f"{skipped.offset}: skipped, {kept}",
        )

    async def audit_unreadable_state(self) -> None:
        """Send the audit records of entries dropped since the last call."""
        while self._unreadable_audit:
            await self.audit(self._unreadable_audit[0])
            del self._unreadable_audit[0]  # only once Kafka took it

    async def audit(self, record: dict[str, Any]) -> None:
        """Append ``record`` to the audit topic, keyed by its run, alert or ``api``."""
        key, value = self.audit_send(record)
        what = f"the audit record {str(record.get('action'))[:64]} ({len(value):,} bytes)"
        await self.send_said(self.audit_topic, key, value, None, what)

    async def audit_all(self, records: list[dict[str, Any]]) -> None:
        """Append ``records`` to the audit topic (as ``audit``) and wait until Kafka has
        every one: a caller that then stores "sent" (the outbox of records a stored state
        holds, streams.response ``SAY``) must not store it before they are out. Raises
        what the producer raises for a record it could not deliver."""
        futures = []
        for record in records:
            key, value = self.audit_send(record)
            futures.append(await self.audit_topic.send(key=key, value=value))
        for future in futures:
            await future

    async def dead_letter(
        self,
        stream: str,
        event: EventT[bytes] | Message,
        code: str,
        message: str,
        index: int | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Dead-letter a message (an event or a batch's message), or with ``index`` and
        ``raw`` one reading of a pack (its origin then reads
        ``topic/partition/offset#index``). A reading's dead letter is keyed by its
        ``sensor_id`` when it has one (``dead_letter_key``), any other by the message's key."""
        msg = event if isinstance(event, Message) else event.message
        skipped = unreadable(msg.headers)
        if skipped is not None:
            # An unreadable batch's offsets (faust_patches change 13), refused by whichever
            # agent for their missing value: one dead letter for the range, at its first
            # offset (the commit passes the range only once it is on Kafka); the others
            # are acked as recorded by it.
            if msg.offset != skipped.first:
                return
            code, message = UNREADABLE_REASON, skipped.describe(msg.topic, msg.partition)
            # A record read but for a header name that is not UTF-8 keeps its bytes.
            raw, index = skipped.value, None
        origin = message_origin(msg.topic, msg.partition, msg.offset, index)
        if code in _FORM_CODES and skipped is None:
            # What the record's headers say it is (a binary-mode CloudEvent, a content
            # type that is no JSON): the value alone may not tell.
            message += record_form(msg.headers)
        message = bounded_message(one_line(message))
        if self.settings.log_each_dead_letter:
            log.warning("citybrain: dead-letter %s: %s (%s)", origin, message, code)
        else:
            self._say_dead_letter(
                f"{stream}:{code}",
                f"dead-letter {origin}: {message} ({code}); each is on the dead-letter topic "
                "(`citybrain deadletters`)",
            )
        value = msg.value if raw is None else raw
        key = msg.key if skipped is None or skipped.key is None else skipped.key
        if stream == "readings" and isinstance(value, bytes):
            # A reading's dead letter is keyed by its sensor id, whatever step refused it
            # (out_of_order ones, in the detection, are too): docs/events.md.
            key = dead_letter_key(value, key if isinstance(key, bytes) else None)
        await self.send_dead_letter(stream, value, key, code, message, origin, msg)

    async def guarded(
        self,
        stream: str,
        handler: Callable[[EventT[bytes]], Awaitable[None]],
        event: EventT[bytes],
    ) -> None:
        """The one error policy for a message-at-a-time agent (the shape of Quix Streams'
        ``on_processing_error`` callback): any exception while handling one message is
        logged with its topic/partition/offset and the message goes to the dead-letter
        topic with the reason (``EventError``'s code, else ``processing_error``); the
        agent carries on. Only a failure to dead-letter propagates (the caller then
        leaves the message unacked, so no commit passes it)."""
        try:
            await handler(event)
        except Exception as exc:
            msg = event.message
            if not isinstance(exc, EventError):  # bad input is said by dead_letter, no trace
                self.say_failed(
                    f"{stream}:{type(exc).__name__}",
                    f"{stream}: processing {msg.topic}/{msg.partition}/{msg.offset} failed",
                    exc_info=True,
                )
            code = exc.code if isinstance(exc, EventError) else "processing_error"
            text = str(exc) if isinstance(exc, EventError) else f"{type(exc).__name__}: {exc}"
            await self.dead_letter(stream, event, code, text[:500])

    async def send_dead_letter(
        self,
        stream: str,
        raw: Any,
        key: Any,
        code: str,
        message: str,
        origin: str,
        original: Message | None = None,
    ) -> None:
        """Send ``raw`` (bytes, else its ``str``) to the dead-letter topic with the reason
        ``code``, ``message`` and ``origin`` (``topic/partition/offset[#index]``,
        ``message_origin``) in headers, and count it. ``original``, the Kafka message it
        came in, adds what else that record held: its timestamp and type, its key when
        ``key`` is another, whether it was a tombstone, and its headers (null values kept;
        ``events.original_record``)."""
        # Kafka Connect's convention: the value is the original bytes, the why in headers.
        # Every dead letter carries all four documented headers (docs/events.md).
        headers = [
            ("citybrain.error.stream", stream.encode()),
            ("citybrain.error.reason", code.encode()),
            ("citybrain.error.message", bounded_message(one_line(message)).encode()),
            ("citybrain.error.origin", origin.encode()),
        ]
        # A tombstone's (None) is empty, not the text "None".
        value = raw if isinstance(raw, bytes) else b"" if raw is None else str(raw).encode()
        dead_key = key if isinstance(key, bytes) else None
        carried = (
            original_record(
                original.key if isinstance(original.key, bytes) else None,
                dead_key,
                original.timestamp,
                original.timestamp_type,
                original.headers,
                # A tombstone's empty dead-letter value says so, for --replay to send null.
                tombstone=raw is None and original.value is None,
            )
            if original is not None
            else []
        )
        if carried and original is not None:
            # Whole on a message's first dead letters only: a pack's 10,000 bad readings
            # each carrying its 500 kB of headers were 5 GB of dead letters.
            place = tuple(getattr(original, a, None) for a in ("topic", "partition", "offset"))
            carried = self._carried.share(place, carried)
        if isinstance(key, bytes):
            key, value, fitted = fit_dead_letter(value, key, headers, original=carried)
        else:
            _, value, fitted = fit_dead_letter(value, None, headers, original=carried)
        size = len(key or b"") + len(value) + sum(len(n) + len(v or b"") for n, v in fitted)
        # faust types header values as bytes; aiokafka writes a None one as null (kept).
        await self.send_said(
            self.deadletter,
            key,
            value,
            cast(list[tuple[str, bytes]], fitted),
            f"the dead letter of {origin} ({code}, {size:,} bytes)",
        )
        self.metrics.dead_letters.labels(stream, code).inc()

    async def send_said(
        self,
        topic: faust.TopicT,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None,
        what: str,
    ) -> None:
        """Queue a message on ``topic`` as ``topic.send`` does (no wait for Kafka), and say
        (an ERROR, once a minute per topic and error) when Kafka refuses it: ``what``
        describes it (a dead letter, an audit record). t176: faust only logged
        ``_on_published error … MessageSizeTooLargeError`` for a refused dead letter, and
        at the worker's stop a traceback for the exception never retrieved; the message
        was lost unsaid. A topic whose ``max.message.bytes`` was lowered under the running
        worker refuses what the start-up check (citybrain.stack.topics
        ``check_message_limits``) would have refused the topic for.

        ``topic.send`` returns aiokafka's future, not the ``FutureMessage`` faust sets
        the refusal on; so the message is built and published as ``send`` does it
        (``as_future_message``, ``publish_message``: faust's channel interface; the
        worker uses no event attachments, ``stream_publish_on_commit`` is off)."""
        message = topic.as_future_message(key=key, value=value, headers=headers)
        name = topic.get_topic_name()

        def done(fut: asyncio.Future[Any]) -> None:
            exc = None if fut.cancelled() else fut.exception()  # retrieved: no traceback
            if exc is None:
                return
            hint = ""
            if "MessageSizeTooLarge" in type(exc).__name__:
                hint = (
                    f": the topic takes less than the {WRITTEN_MESSAGE_BYTES:,} bytes a "
                    "message citybrain writes may have (its max.message.bytes, lowered "
                    "since the worker started?); raise it (docs/operations.md, message sizes)"
                )
            self.say_failed(
                f"refused:{name}:{type(exc).__name__}",
                f"Kafka refused {bounded_message(what)} on {name}, which is lost: {exc!r}{hint}",
            )

        message.add_done_callback(done)
        await topic.publish_message(message)
