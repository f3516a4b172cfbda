"""Response: the ``routed`` and ``commands`` agents' handlers and the deadline timer.

A routed alert opens or joins its group's run (``playbooks.engine``, one run per group
key in the ``groups`` table); operator commands and webhook outcomes on ``commands``
advance it; the timer escalates, re-notifies and checks SLAs, and sets the open-run
gauges. Each change is stored with its outputs (step, audit, reply and task messages,
webhooks, Grafana annotations) in the run's outbox before they are sent, and sent again
from there after a crash (``advance``, ``_flush_outbox``).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import math
import re
import secrets
import time
from collections import Counter as Tally
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from faust.types import AppT, EventT, Message

from playbooks.engine import (
    MAX_COUNT,
    WITHOUT_PLAYBOOK,
    Answer,
    Command,
    GroupPhase,
    Part,
    PlaybookEngine,
    ReportsCovered,
    Run,
    group_next_tick,
    group_phase,
    is_terminal,
    newest_distinct,
    next_group_flush,
    playbook_gone,
    unresolved,
)
from playbooks.errors import BadEventError, PlaybookError, did_you_mean
from playbooks.executors.webhook import WebhookExecutor, WebhookOutcome, receiver
from playbooks.grid import LEVELS, PARENT_LEVEL, Grid
from playbooks.routing import Route, Router, Silence, label_set
from playbooks.schema import Playbook
from streams.bursts import SEEN_SECONDS
from streams.context import (
    BatchedMessage,
    Context,
    alert_in_grid,
    embedded_alert,
    route_fault,
    run_ever_issued,
    run_key,
)
from streams.errors import MISSING, EventError, one_line
from streams.events import (
    MAX_MESSAGE_BYTES,
    MESSAGE_FRAMING_BYTES,
    MIN_EVENT_TIME,
    alert_time,
    epoch_seconds_fault,
    format_ts,
    lookalike_key,
    lookalike_key_error,
    message_json,
    refuse_alert_ahead,
    refuse_unwritable_number,
    text_control,
)
from streams.logs import SayEvery
from streams.metrics import initialise_run_outcomes
from streams.partitioning import PASS_ON_HEADROOM, key_partition, pass_on_bytes
from streams.replies import (
    AUDITED,
    RESEND,
    RESENDS,
    UNDELIVERED,
    count_campaign,
    reply_document,
    result_id,
    undelivered_of,
    with_undelivered,
)

log = logging.getLogger(__name__)


class RunTooLarge(Exception):
    """A run's new state would not fit one changelog message: the change is refused
    before any of its steps is sent (the message that caused it is dead-lettered)."""


class TaskTopicUnavailable(Exception):
    """A ``kafka`` step's task topic could not be written: its message was not queued
    within ``TASK_TOPIC_WAIT`` seconds (the topic is not in Kafka's metadata and the
    broker does not create it), or one was not, less than ``TASK_TOPIC_RETRY`` seconds
    ago. ``topic``: the prefixed topic's name."""

    def __init__(self, message: str, topic: str) -> None:
        super().__init__(message)
        self.topic = topic


class TasksHeld(Exception):
    """``Response.emit`` sent every output of a change but ``commands``, ``kafka``
    steps whose task topic could not be written (``reason``, the first's): they stay in
    the run's outbox, sent again at its next touch, its other outputs not repeated."""

    def __init__(self, commands: list[Command], reason: TaskTopicUnavailable) -> None:
        held = f" (and {len(commands) - 1} more task message(s) of the run)" * (len(commands) > 1)
        super().__init__(f"{reason}{held}")
        self.commands, self.reason = commands, reason


# Seconds a kafka step's task message may wait to be queued: the producer waits for a
# topic it has no metadata for (a broker auto-creating it answers within a second or
# so), and it waited faust's producer_request_timeout, 20 minutes, in the routed agent
# or the deadline pass, where every other run waited with it (t172: a task topic Kafka
# cannot create, auto-creation off or its name colliding with another's but for '.'
# and '_', held every alert's routing to a run). Then, for TASK_TOPIC_RETRY seconds,
# a send to that topic is refused at once rather than waited for again; the step
# waits in its run's outbox meanwhile (``TasksHeld``), the run's other outputs sent.
TASK_TOPIC_WAIT = 5.0
TASK_TOPIC_RETRY = 60.0


# Finished runs a group keeps after a new run superseded them, newest last: readable by
# `runs show` (where they went), no longer changeable. Bounds the group's state.
KEEP_SUPERSEDED = 3
# A report in no alert more than this (event time) older than its group's open run's
# opening is not offered to it (trial 7: reports of 06-01 joined a run opened on 06-04 and
# got its closures). The day the burst tracker holds a report id: one incident's span.
OFFER_MAX_AGE = SEEN_SECONDS
# A group's field holding its last change's outputs (commands) until they are out:
# stored with the change, before them (``Response.advance``).
OUTBOX = "outbox"
# Webhook calls a worker remembers having made (command ids); one forgotten while its run
# still waits is made again, which its receiver dedupes by ``delivery``.
CALLS_REMEMBERED = 100_000
# Alert ids a group remembers (``seen``: a redelivered alert does not join again) and
# command ids it has applied (``commands``: a command applied twice changes nothing):
# the newest distinct ones, each once (``newest_distinct``; docs/playbooks.md).
SEEN_ALERTS = 500
# A group's field holding its alerts muted on arrival while it has no open run (alert id
# -> epoch s first muted, ``Response._on_muted``): they date the Alertmanager group whose
# flushes a run opened later keeps to. The first this many are kept.
MUTED = "muted"
# A group's field once a muted member resolved and no run is open (t196): ``made``, when
# the earliest member came (epoch s), and ``until``, the group's next flush after the
# last member resolved (None while members remain). Alertmanager keeps a resolved alert
# in its group until that flush deletes the group, so an alert coming before it keeps to
# the group's flushes; one after it starts a fresh group.
MUTED_GONE = "muted_gone"
# A group's field holding the offers that found no open run in it (``Response._hold_offer``),
# for a run the group opens soon after: catching up, a burst's alert reaches the routed
# topic a little after the offers of the reports that followed it. Stored with the group
# (the run that takes them is stored in the same entry, so a crash loses none and covers
# none twice), oldest first, each ``{"at": the offer's message time, "report": …}``. Seconds
# of those times an offer is held; how many this worker holds at most (oldest dropped),
# and one group (its entry must fit one changelog message).
HELD_OFFERS = "held_offers"
HOLD_OFFER_SECONDS = 300.0
MAX_HELD_OFFERS = 10_000
MAX_HELD_PER_GROUP = 1_000
MUTED_MEMBERS = 1_000
APPLIED_COMMANDS = 200
# Commands sent with an Idempotency-Key a group keeps whole, newest last, to answer a
# retry with its first answer (a run sees a few operator actions, not hundreds).
KEYED_COMMANDS = 50
# Ended groups forgotten per hold of the runs lock: a pass forgetting 20,000 would
# otherwise queue 20,000 tombstones while every routed alert waits.
FORGET_CHUNK = 500
# A group's field: the audit records of its last change not yet known to be out
# (``reports_not_alerted``, ``reply_webhook_failed``, ``closures_resent``: each with a
# fixed ``id``), stored with the change (delivery awaited) before they are sent, and
# sent again from there by the group's next touch after a crash (``_say``,
# ``_flush_said``), as the run's ``OUTBOX``. Before t152 they were sent before the store
# that made them idempotent: a crash in between said and counted them again.
SAY = "say"
# A group's field: the ids of the ``reports_not_alerted`` records it has stored, newest
# last (``SAID_KEPT``): one made again (an offer read again after a crash, a run refusing
# it again) is recognised, not said nor counted a second time.
SAID = "said"
SAID_KEPT = 1_000
# A group's field: the generation of its first run, when a group of its partition was
# forgotten before it was made (``Context.generation_floor``); 1 when absent.
FIRST_GENERATION = "first_generation"
# A group's field: its messages forwarded to its old key's partition (t126's key
# migration, ``Response._group_home``), ``{"sent": seq of the last sent, "back": highest
# seq come back, "at": epoch s the last was sent}``. While ``sent`` > ``back`` one is on
# its way and the key's next ones follow it. Stored, so a restart or a moved partition
# keeps it (t148: in memory, a restarted worker took a later message first).
FORWARDS = "forwards"
# A group's field: [partition, offset] of the last routed message applied to it (a join,
# a new run, a resolution or reports covered), written with that change. A firing alert
# read again from that partition below that offset was applied before it, whatever the
# group still remembers of it (``seen`` keeps 500 ids): a redelivery after a crash, not
# joined again (t187: a worker killed 2.8 s, one commit interval, into a storm of 3,000
# alerts into one group read them again, and those its ``seen`` had forgotten joined the
# run a second time, notified again).
ROUTED_OFFSET = "routed_offset"
# A group's field: [partition, offset] of the last command applied to its run, as
# ``ROUTED_OFFSET`` for the commands topic (t193): a command read again from that
# partition below that offset was handled before, whatever the group still remembers of
# it (``commands`` keeps 200 ids): a flood of thousands of commands read again after a
# SIGKILL applied those forgotten a second time (an escalation escalated again).
COMMAND_OFFSET = "command_offset"


def forwards_of(group: dict[str, Any] | None) -> tuple[int, int, float]:
    """Group ``group``'s forwarding counts (``FORWARDS``): (the seq of the last of its
    messages forwarded to its old key's partition, the highest seq come back from
    there, epoch s the last was sent); (0, 0, 0.0) with none."""
    doc = (group or {}).get(FORWARDS) or {}
    return int(doc.get("sent", 0)), int(doc.get("back", 0)), float(doc.get("at", 0.0))


def _stored_here(group: dict[str, Any] | None) -> bool:
    """Whether ``group`` (an entry under a key) is a group stored under that key: a run,
    a route, held offers or muted alerts, not only forwarding counts."""
    return group is not None and any(group.get(f) for f in ("run", "route", HELD_OFFERS, MUTED))


def _position(event: Any) -> tuple[int, int] | None:
    """(partition, offset) of the routed message ``event`` came in, or None (a message
    made by hand, as the unit tests' events, with no whole-number position)."""
    message = getattr(event, "message", None)
    partition, offset = getattr(message, "partition", None), getattr(message, "offset", None)
    if type(partition) is not int or type(offset) is not int or min(partition, offset) < 0:
        return None
    return partition, offset


def _read_before(group: dict[str, Any], event: Any, field: str = ROUTED_OFFSET) -> bool:
    """Whether routed message ``event`` was read before the last one applied to
    ``group`` (``field``: ``ROUTED_OFFSET``, or ``COMMAND_OFFSET`` for a command): on
    the same partition, at a lower offset. The routed and commands agents read a
    partition in offset order, so such a message was handled then."""
    read, position = group.get(field), _position(event)
    return (
        position is not None
        and isinstance(read, list)
        and read[0] == position[0]
        and position[1] < read[1]
    )


def _muted_gone(
    group: dict[str, Any],
    since: float,
    members: dict[str, float],
    route: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    """``MUTED_GONE`` of ``group`` once its member muted ``since`` (epoch s) resolved at
    ``now``, ``members`` left: the earliest member's time, and the group's next flush if
    none is left (Alertmanager deletes it there)."""
    old = group.get(MUTED_GONE) or {}
    made = min([since, *members.values(), *([old["made"]] if old else [])])
    if members:
        return {"made": made, "until": None}
    wait = next_group_flush(made, route["group_wait"], route["group_interval"], now)
    return {"made": made, "until": now + wait}


def _gone_alive(group: dict[str, Any], now: float) -> bool:
    """Whether ``group``'s resolved muted members still keep it (``MUTED_GONE``)."""
    gone = group.get(MUTED_GONE)
    if not gone:
        return False
    return gone["until"] is None or bool(now <= gone["until"])


def _read_after(group: dict[str, Any], event: Any) -> bool:
    """Whether routed message ``event`` surely came after the last one applied to
    ``group`` (``ROUTED_OFFSET``): on the same partition at a higher offset, or the
    group has none recorded. A message of no position (made by hand) is not."""
    read, position = group.get(ROUTED_OFFSET), _position(event)
    if position is None:
        return False
    if not isinstance(read, list):
        return True
    return bool(read[0] == position[0] and position[1] > read[1])


def _note_read(group: dict[str, Any], event: Any, field: str = ROUTED_OFFSET) -> None:
    """Record routed message (or command) ``event``'s position in ``group`` (``field``,
    as ``_read_before``), written with the change it makes."""
    position = _position(event)
    if position is not None and not _read_before(group, event, field):  # never back
        group[field] = list(position)


def _earlier_reports(group: dict[str, Any], now: float) -> dict[str, str]:
    """Report id -> the earlier run of ``group`` (its kept superseded runs) that covered
    it, for runs last changed within ``SEEN_SECONDS`` of ``now``: the span in which the
    worker takes a report id seen again for the same report (streams.bursts); an id
    seen after that is a new report."""
    out: dict[str, str] = {}
    for kept in group.get("superseded") or []:
        old = kept.get("run") if isinstance(kept, dict) else None
        if not isinstance(old, dict):
            continue
        changed = old.get("updated_at")
        if isinstance(changed, int | float) and now - changed > SEEN_SECONDS:
            continue
        for rid in old.get("reports") or {}:
            out[str(rid)] = str(old.get("run_id"))
    return out


def _event_time(value: Any) -> float | None:
    """Epoch s of an alert's ``started_at`` (ISO 8601), None if it has none."""
    try:
        return alert_time(value, "started_at", stored=True)
    except EventError:
        return None


def waited_out(alert: dict[str, Any], group_wait: float, now: float) -> bool:
    """Whether ``alert`` started (``started_at``) more than ``group_wait`` seconds before
    ``now`` (epoch s): Alertmanager then flushes its group at once if the group has not
    flushed yet (``dispatch.go``, ``aggrGroup.insert``: ``StartsAt.Add(GroupWait)
    .Before(now)``), so an alert held before routing (a corroboration grace, a replay)
    is not held a second time. False without a ``started_at`` or with ``group_wait`` 0."""
    started = _event_time(alert.get("started_at"))
    return group_wait > 0 and started is not None and started + group_wait < now


def message_time(value: Any, event: Any, now: float, floor: float | None = None) -> float:
    """When a message's change happened, the same each time it is applied: ``value`` (a
    command's ``at``, stamped when the operator API accepted it) if it is a finite
    number, else the Kafka timestamp of ``event``'s message (stamped when it was
    produced), else ``now``; never later than ``now``. A command applied again after a
    crash (its run's state was not stored) then records the same acknowledged_at,
    resolved_at and step times as the first time, so its re-emitted steps repeat the
    same ids with the same content (trial 10: an ack re-applied 12 s later got the
    restart's time). Never earlier than ``floor`` either (a command's run's creation): a
    command is given for a run that exists, so one stamped before it by a clock behind
    the run's (another worker's, or this one's stepped back) is taken at the creation,
    not as an ack or resolve before the run (t114: a negative time to acknowledge in the
    campaign report, a history out of order)."""
    taken = _message_time(value, event, now)
    # Past ``now`` only as far as the run's own creation, a time the run already holds.
    return taken if floor is None else max(taken, floor)


def _message_time(value: Any, event: Any, now: float) -> float:
    for candidate in (value, getattr(getattr(event, "message", None), "timestamp", None)):
        if (
            isinstance(candidate, int | float)
            and not isinstance(candidate, bool)
            # Compared, not converted: 10**400 is an int. A time before MIN_EVENT_TIME
            # (1990) is no clock's (a producer's CreateTime of 0 or 1): a run stamped
            # 1970 would have every deadline long past, and climb its ladder at once.
            and MIN_EVENT_TIME <= candidate < math.inf
        ):
            return float(min(candidate, now))  # (an int past a float's range is not converted)
    return now


# The operator commands that end a wait for an acknowledgement or for a decision: one
# of them taken before the wait's deadline and not yet applied holds the deadline's
# ladder step (``Response._answer_on_its_way``).
ANSWERS_TO_ACK = frozenset({"ack", "resolve", "cancel"})
ANSWERS_TO_APPROVAL = frozenset({"approve", "reject", "resolve", "cancel"})

# Why a pending run is withdrawn when its group_wait ends (``Response._all_muted``).
_NONE_FIRING = (
    "every alert of it resolved within group_wait: nothing to notify (as Alertmanager sends "
    "nothing for a group with no firing alert at its first flush)"
)
# Why such a run is held instead, when a muted alert came to its group meanwhile.
_MUTED_MEMBER = (
    "every alert of it resolved within group_wait, and an alert of its group came muted: "
    "held to the group's next flush (Alertmanager's group holds the muted alert)"
)


# The command fields ``command_fields`` and an answer's reader read (others are carried
# as they are): an answer's "C\u043emment" was dropped unsaid, its "Satisfied" said
# missing (t99).
COMMAND_KEYS = frozenset(
    {"id", "run_id", "action", "command_id", "by", "note", "role", "detail", "at"}
    | {"request", "reply", "ok", "report_id", "satisfied", "comment", "from_level", "level"}
)


# The actions a command may carry (``Response._on_command``): the operator API's (an
# approval's refusal is ``reject``; ``resend`` is sent as RESEND) and the worker's own
# outcomes of webhook calls (``action_result``).
COMMAND_ACTIONS = frozenset(
    {"ack", "resolve", "escalate", "cancel", "approve", "reject", "answer", "action_result"}
    | {RESEND}
)


def command_fields(cmd: Any) -> dict[str, Any]:
    """A command as read from the commands topic, its fields checked before any is used:
    ``id``, ``run_id`` and ``action`` non-empty text, ``command_id`` text if given,
    ``by``, ``note``, ``role``, ``comment`` and ``detail`` text or null if given (the
    first four without control characters but line breaks and tabs), ``at`` epoch
    seconds from ``MIN_EVENT_TIME`` (1990) on or null, an escalate's ``from_level`` a
    level below the city's if given, ``level`` (the run's as the API took the command)
    a grid level if given, an ``action_result``'s ``ok`` true or false, ``action`` one
    of ``COMMAND_ACTIONS``, and an ``answer``'s ``report_id`` non-empty text and
    ``satisfied`` true or false. Raises ``EventError`` naming the field and value (trial
    19: a run_id of 5 raised AttributeError in ``run_key``, a command_id list TypeError,
    each a traceback in the worker's log and ``processing_error``)."""
    if not isinstance(cmd, dict):
        raise EventError("bad_command", None, None, "expected a JSON object")
    # A key that looks like one of these without being it ("acti\u043en", "N\u043ete") was
    # ignored: a missing action said nothing of the key sent, a note was dropped (t95).
    odd = lookalike_key(cmd, COMMAND_KEYS)
    if odd is not None:
        raise lookalike_key_error(cmd, *odd, code="bad_command")
    for name in ("id", "run_id", "action"):
        value = cmd.get(name, MISSING)
        if not isinstance(value, str) or not value:
            raise EventError("bad_command", name, value, "expected a non-empty string")
    if not isinstance(cmd.get("command_id", ""), str):
        raise EventError("bad_command", "command_id", cmd["command_id"], "expected a string")
    for name in ("by", "note", "role", "detail", "comment"):
        # str() of anything else was kept: an actor "None" or a note "{'a': 1}" (trial 26).
        value = cmd.get(name)
        if value is not None and not isinstance(value, str):
            raise EventError("bad_command", name, value, "expected a string (or null)")
        # The API refuses control characters in free text (t119); a command written on
        # the topic by hand carried an ESC into the citizen's closure and the audit.
        # Not ``detail``: the worker's own action results carry a remote answer there.
        reason = text_control(value) if value and name != "detail" else None
        if reason is not None:
            raise EventError("bad_command", name, value, reason)
    at = cmd.get("at")
    if at is not None and (
        isinstance(at, bool) or not isinstance(at, int | float) or not at >= MIN_EVENT_TIME
    ):
        # Read silently before: a string fell back to the message's time, and 1 (or
        # 1e-9) was taken as 1970-01-01, from which the run's deadlines were all past
        # (a time in milliseconds, or past now, is taken as now: never later).
        raise EventError(
            "bad_command",
            "at",
            at,
            "expected epoch seconds from 1990 on (when the operator API accepted the command)",
        )
    if not isinstance(cmd.get("request", ""), str):
        raise EventError("bad_command", "request", cmd["request"], "expected a string")
    if not isinstance(cmd.get("reply", {}), dict):
        raise EventError("bad_command", "reply", cmd["reply"], "expected a JSON object")
    level = cmd.get("from_level")
    if level is not None and (not isinstance(level, str) or level not in PARENT_LEVEL):
        # An escalate "from" a level a run can be escalated from, as the API checks it.
        raise EventError(
            "bad_command", "from_level", level, f"expected one of {', '.join(PARENT_LEVEL)}"
        )
    seen = cmd.get("level")
    if seen is not None and (not isinstance(seen, str) or seen not in LEVELS):
        # The level the API saw the run at (t114): kept in the run's history and MTTA.
        raise EventError("bad_command", "level", seen, f"expected one of {', '.join(LEVELS)}")
    if cmd["action"] == "action_result" and not isinstance(cmd.get("ok", MISSING), bool):
        # bool("false") is True: a failed call read as a success (trial 26).
        raise EventError("bad_command", "ok", cmd.get("ok", MISSING), "expected true or false")
    action = cmd["action"]
    if action not in COMMAND_ACTIONS:
        # Audited as a refused command before, never dead-lettered: no replay once the
        # worker that knows the action runs, and nothing counted (t137).
        raise EventError(
            "bad_command",
            "action",
            action,
            f"expected one of {', '.join(sorted(COMMAND_ACTIONS))}"
            f"{did_you_mean(action, COMMAND_ACTIONS)}",
        )
    if action == "answer":
        # A reporter's answer: checked here as the API checks it, so that a producer's
        # malformed one is a dead letter naming the field (it was an audit record only,
        # "command_refused", from the engine's check: bool("false") is True, t137).
        rid = cmd.get("report_id", MISSING)
        if not isinstance(rid, str) or not rid:
            raise EventError("bad_command", "report_id", rid, "expected a non-empty string")
        if not isinstance(cmd.get("satisfied", MISSING), bool):
            raise EventError(
                "bad_command", "satisfied", cmd.get("satisfied", MISSING), "expected true or false"
            )
    return cmd


def misplaced_command(event: Any, run_id: str, partitions: int) -> int | None:
    """The partition a command for ``run_id`` belongs on (its group's, where the
    ``groups`` table keeps the run: ``key_partition(run_key(run_id), partitions)``) when
    ``event``'s message is on another, else None. Only the worker that owns that
    partition holds the run (docs/operations.md, Scaling out)."""
    home = key_partition(run_key(run_id), partitions)
    return None if event.message.partition == home else home


# The fields of a routed message the worker writes (``alerting._route``, ``_offer``),
# by part: a key looking like one of them without being it is refused (``routed_fields``).
ROUTED_KEYS = frozenset(
    {"alert", "route", "muted", "report", "grouped_at", "legacy_key", "probe", "checked", "seq"}
)
# The group key migration (t126: keys were the route's position, now its matcher path):
# a routed message carries the key its group had before (``legacy_key``, from
# ``Route.legacy_group_key``); one forwarded to that key's partition, to join a group
# stored there, names the key it came from (``probe``); one sent back from there, no
# such group being there, says so (``checked``) and is taken under its own key.
LEGACY_KEY, PROBE, CHECKED, SEQ = "legacy_key", "probe", "checked", "seq"
GROUP_KEY = re.compile(r"grp-[0-9a-f]{16}")
ROUTE_KEYS = frozenset({"id", "playbook", "group_wait", "group_interval", "repeat_interval"})
OFFER_KEYS = frozenset(
    {"report_id", "channel", "grid_cell", "category", "ts", "late", "offers", "offer"}
)


def _refuse_lookalike(doc: dict[str, Any], names: Collection[str], at: str = "") -> None:
    """``EventError`` (``bad_routed``) naming the first key of ``doc`` (the part ``at``)
    that looks like one of ``names`` without being it: another tool's ``"Route"`` or
    ``"group\u200b_wait"`` was ignored, the part said missing or its default taken (t99)."""
    odd = lookalike_key(doc, frozenset(names))
    if odd is not None:
        raise lookalike_key_error(doc, *odd, at=at, code="bad_routed")


def routed_fields(doc: Any) -> dict[str, Any]:
    """A message of the routed topic, its fields checked before any is used or stored
    (``alerting._route`` writes them): ``{"alert": …, "route": …}`` whose alert is one
    the alerts agent takes (``alert_fields``, its labels a label set) and whose route has
    every field ``_route_doc`` writes (``route_fault``: the rule the ``groups`` table's
    read-back applies, so a run opened from it reads back), or ``{"report": …}`` offering
    a report (``report_id`` non-empty text, ``channel`` text, ``ts`` epoch seconds or
    null). Raises ``EventError`` naming the field and value: ``bad_routed`` (helper t59:
    ``{"alert": {}, "route": {}}`` was a KeyError with a traceback, a ``group_wait`` of
    NaN opened a run whose group did not read back, an offer with no report id vanished
    without a dead letter), ``bad_reports`` for an offered report's ``ts``; a key that
    looks like one of the fields without being it (``"Route"``, ``"route.Playbook"``) is
    ``bad_routed`` naming it (``lookalike_key``)."""
    if isinstance(doc, dict):
        _refuse_lookalike(doc, ROUTED_KEYS)
    if not isinstance(doc, dict) or not (
        "report" in doc or {"alert", "route"} <= doc.keys() or {"muted", "route"} <= doc.keys()
    ):
        raise EventError(
            "bad_routed",
            None,
            None,
            'a routed message is an object with "alert" and "route", "muted" and "route", '
            'or "report"',
        )
    if "report" in doc:
        report = doc["report"]
        if not isinstance(report, dict):
            raise EventError("bad_routed", "report", report, "expected a JSON object")
        _refuse_lookalike(report, OFFER_KEYS, "report")
        rid, channel = report.get("report_id", MISSING), report.get("channel", MISSING)
        if not isinstance(rid, str) or not rid:
            raise EventError("bad_routed", "report.report_id", rid, "expected a non-empty string")
        if not isinstance(channel, str):
            raise EventError("bad_routed", "report.channel", channel, "expected a string")
        offers = report.get("offers", 1)
        if type(offers) is not int or offers < 1:
            raise EventError(
                "bad_routed", "report.offers", offers, "expected a whole number from 1"
            )
        offer = report.get("offer", 0)
        if type(offer) is not int or not 0 <= offer < offers:
            raise EventError(
                "bad_routed",
                "report.offer",
                offer,
                f"expected a whole number from 0 to {offers - 1} (one less than report.offers)",
            )
        ts = report.get("ts")
        fault = None if ts is None else epoch_seconds_fault(ts)
        if fault is not None:
            # -1e308 was compared, then written as a date: an OverflowError and a
            # traceback in the worker's log for a foreign producer's offer (helper t52).
            raise EventError("bad_reports", "report.ts", ts, fault)
        return _migration_fields(doc)
    route = doc["route"]
    if "muted" in doc:
        muted = doc["muted"]
        if not isinstance(muted, dict):
            raise EventError("bad_routed", "muted", muted, "expected a JSON object")
        _refuse_lookalike(muted, {"alert_id"}, "muted")
        alert_id = muted.get("alert_id", MISSING)
        if not isinstance(alert_id, str) or not alert_id:
            raise EventError(
                "bad_routed", "muted.alert_id", alert_id, "expected a non-empty string"
            )
        if "grouped_at" not in doc:
            raise EventError("bad_routed", "grouped_at", MISSING, "expected epoch seconds")
    else:
        # Its times as the alerts door writes them on (``alert_times_utc``); the
        # worker's own message, already so written, is taken as it is.
        alert = embedded_alert(doc["alert"], "bad_routed")
        if alert is not doc["alert"]:
            doc = {**doc, "alert": alert}
    if not isinstance(route, dict):
        raise EventError("bad_routed", "route", route, "expected a JSON object")
    _refuse_lookalike(route, ROUTE_KEYS, "route")
    wrong = route_fault(route, routed=True)
    if wrong is not None:
        name, value, expected = wrong
        raise EventError("bad_routed", f"route.{name}", value, f"expected {expected}")
    grouped_at = doc.get("grouped_at")
    fault = None if grouped_at is None else epoch_seconds_fault(grouped_at)
    if fault is not None:
        raise EventError("bad_routed", "grouped_at", grouped_at, fault)
    return _migration_fields(doc)


def _migration_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` once its group key migration fields are right: ``legacy_key`` and ``probe``
    group keys (``grp-`` and 16 hex digits), ``checked`` true; else ``EventError``
    (``bad_routed``) naming the field and value."""
    for name in (LEGACY_KEY, PROBE):
        value = doc.get(name)
        if value is not None and not (isinstance(value, str) and GROUP_KEY.fullmatch(value)):
            raise EventError("bad_routed", name, value, "expected a group key (grp-<16 hex>)")
    if CHECKED in doc and doc[CHECKED] is not True:
        raise EventError("bad_routed", CHECKED, doc[CHECKED], "expected true")
    if SEQ in doc and not (type(doc[SEQ]) is int and 1 <= doc[SEQ] <= MAX_COUNT):
        raise EventError("bad_routed", SEQ, doc[SEQ], "expected a whole number from 1")
    return doc


def _too_old_for(ts: Any, opened: Any) -> tuple[float, float] | None:
    """``(ts, opened)`` when an offered report made at ``ts`` (event time, epoch s) is too
    old for a run opened at ``opened`` (its first alert's ``started_at``, epoch s): more
    than ``OFFER_MAX_AGE`` before it; ``None`` when it is not, or either is unknown."""
    known = isinstance(ts, int | float) and isinstance(opened, int | float)
    return (float(ts), float(opened)) if known and ts < opened - OFFER_MAX_AGE else None


@dataclass
class DeferredJoins:
    """The joins of one group's open run read in one routed batch and not yet stored
    (``Response.on_routed_batch``), or the operator commands applied to it in one
    commands batch (``Response.on_command_batch``): ``before``, the group as stored
    (None: no entry), restored in memory if the change cannot be stored; ``group`` and
    ``run``, the state with every join applied (the group held in the table's memory
    meanwhile, its run as stored until ``run`` is written into it at the store; the
    batch's next message of the group reads ``run``; a command's group holds its run
    too); ``commands``, their steps and audit records in order; ``events``, the messages
    they came from (each dead-lettered if the change fails); ``pending``, the (run id,
    command id) of the operator API's commands among them, released (``PendingCommands``)
    once the change is stored or has failed, so the API never answers from a state not
    yet on the changelog."""

    before: dict[str, Any] | None
    group: dict[str, Any]
    run: Run
    commands: list[Command] = dataclasses.field(default_factory=list)
    events: list[EventT[bytes]] = dataclasses.field(default_factory=list)
    pending: list[tuple[str, str]] = dataclasses.field(default_factory=list)


class Response:
    """Routed alerts and commands to runs, their steps and their webhooks."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.settings, self.grid, self.metrics = settings, ctx.grid, ctx.metrics
        self._said_unreadable: set[bytes] = set()  # groups whose run the timer skips
        # Engines of playbooks gone from the library, by name (``_engine_for``).
        self._stand_ins: dict[str, PlaybookEngine] = {}
        # Task topics whose last send was not queued in time: topic -> when (monotonic
        # s); refused at once for TASK_TOPIC_RETRY seconds (``_send_task``). As many as
        # the playbooks name.
        self._missing_task_topics: dict[str, float] = {}
        # The (playbook, task topic) series of the held task messages' gauges set at the
        # last deadline pass (``_count_held_tasks``), those of the library at start first.
        self._task_series: set[tuple[str, str]] = {
            (n, t) for n, pb in ctx.playbooks.items() for t in pb.task_topics
        }
        # Groups whose run the timer could not advance (``_unadvanced_run``).
        self._say_unadvanced = SayEvery(log, prefix="citybrain: ")
        # (playbook, department) pairs whose once-per-run series exist at zero
        # (``_known_run``): made once per pair, not per run or per pass.
        self._outcome_series: set[tuple[str, str]] = set()
        secret = (
            settings.webhook_secret.get_secret_value().encode()
            if settings.webhook_secret
            else secrets.token_bytes(32)
        )
        if settings.webhook_secret is None:
            log.warning(
                "citybrain: CITYBRAIN_WEBHOOK_SECRET is not set: webhooks are "
                "signed with a random per-start key that receivers cannot verify"
            )
        self.webhooks = WebhookExecutor(
            secret,
            self.on_webhook_outcome,
            self.on_webhook_attempt,
            timeout=settings.webhook_timeout,
            retries=settings.webhook_retries,
            backoff=settings.webhook_backoff,
        )
        self.warn_webhook = SayEvery(log, prefix="citybrain: ")
        self.warn_task_topic = SayEvery(log, prefix="citybrain: ")
        self._lag_topics: set[str] = set()  # topics with a consumer-lag series here
        # Webhook calls (command ids) this worker has made, newest last: a run waiting
        # for a call not among them had it made by a worker that stopped (check_deadlines).
        self._called: OrderedDict[str, None] = OrderedDict()
        # How many offers the groups of this worker hold (``HELD_OFFERS``), None when it
        # must be counted again from the table (a run took some, a pass forgot groups).
        self._held_count: int | None = None
        # The held offers by age, (at, group key, report id, channel), oldest first, from
        # one scan of the groups at the bound (``_drop_oldest_held``): one drop each after
        # that, not a scan of 10,000 offers per offer (1.8 ms each at the bound).
        self._oldest_held: deque[tuple[float, bytes, str, str]] = deque()
        # The group key migration (``_group_home``): old groups said not to translate.
        # Closure calls made here as a re-send (reply id -> the outcome's command id,
        # ``result_id``), until their outcome is sent.
        self._result_ids: dict[str, str] = {}
        # Calls in the executor's hands (command id -> ``call_ids``), until their outcome
        # comes back: a failed attempt's audit record names the alert and report the call
        # was for (bounded by the executor's calls in flight, which refuses past them).
        self._calling: dict[str, dict[str, Any]] = {}
        self._said_untranslated: set[bytes] = set()
        # The joins of the routed batch being handled, by group key, stored once per
        # group at its end (``on_routed_batch``); None outside a batch (``on_routed``).
        self._deferred: dict[bytes, DeferredJoins] | None = None
        # The changes of the commands batch being handled, by group key, stored once per
        # group at its end (``on_command_batch``) or before any other writer of the
        # groups; None outside a batch (``on_command``).
        self._deferred_commands: dict[bytes, DeferredJoins] | None = None
        # The commands batch's commands passed on to their run's partition
        # (``_pass_on_command``): their delivery futures, awaited at the batch's end.
        self._passed: list[tuple[Awaitable[Any], EventT[bytes]]] | None = None

    # -- runs ------------------------------------------------------------------------
    async def on_routed(self, event: EventT[bytes]) -> None:
        async with self.ctx.runs_settled:
            await self._on_routed(event)

    async def on_routed_batch(self, messages: Sequence[Message]) -> None:
        """A batch of routed messages (one partition's fetch, in offset order), each
        handled as ``on_routed`` handles one (its faults dead-lettered alone, by the one
        error policy), except that the alerts joining a group's open run become one
        change of that run: its state stored once (one changelog write, delivery
        awaited) and the joins' steps and audit records sent together, at the batch's
        end or before any other message that changes the group's state. Before, every
        joining alert stored its own change, two Kafka round trips each: a storm of
        3,000 alerts into one group held every other group's alert read after it for
        13-16 s (docs/playbooks.md, "One group's storm").

        Nothing is acked before the batch's changes are stored and sent (the caller
        acks the batch when this returns): a worker killed mid-batch reads the whole
        batch again, whose joins stored before the kill are seen again (runs are
        idempotent per alert id) and whose others join then. Raises only what
        dead-lettering raises (then the batch stays unacked)."""
        self._deferred = {}
        try:
            for message in messages:
                event = cast(EventT[bytes], BatchedMessage(message))
                # Taken per message, as ``on_routed``: an operator's command or the
                # deadline timer waits for one message, not a batch (each stores the
                # deferred joins first, ``_store_deferred``).
                async with self.ctx.runs_settled:
                    await self.ctx.guarded("routed", self._on_routed, event)
                # A deferred join awaits nothing, and taking a free lock does not yield:
                # a batch of 2,000 held the event loop (the deadline pass, commands,
                # heartbeats, the API) for all of it, seconds under load.
                await asyncio.sleep(0)
            async with self.ctx.runs_settled:
                await self._store_deferred()
        finally:
            # Left only by a failure that stops the worker (a dead letter refused): no
            # other writer may find an unstored change in memory meanwhile.
            for key, joins in self._deferred.items():
                self._restore(key, joins.before)
            self._deferred = None

    def _restore(self, key: bytes, before: dict[str, Any] | None) -> None:
        """Group ``key``'s memory back to ``before``, as stored (None: no entry)."""
        if before is None:
            self.ctx.groups.data.pop(key, None)
        else:
            self.ctx.groups.data[key] = before

    def _plain_join(self, doc: dict[str, Any], key: bytes) -> bool:
        """Whether routed message ``doc`` (under Kafka key ``key``) can at most join
        the open run of its own group or resolve one of its alerts, or offer a citizen
        report to it, with no other write on its way (those it has store the deferred
        joins first): an alert with no citizen reports, or a report in no alert (an
        offer that finds no open run stores them first itself, ``_on_offered_report``),
        not forwarded by the group key migration (``_group_home`` returns its key
        without a write). Any other message may write a group's state, so the batch's
        deferred joins are stored before it (``_on_routed``)."""
        if any(f in doc for f in (PROBE, CHECKED, "muted")):
            return False
        if "report" in doc:
            if "alert" in doc:
                return False
        else:
            alert = doc.get("alert")
            if not isinstance(alert, dict) or alert.get("status") not in ("firing", "resolved"):
                return False
            if alert.get("reports"):
                return False
        legacy = doc.get(LEGACY_KEY)
        return legacy is None or legacy.encode() == key

    def _defer_join(
        self,
        key: bytes,
        group: dict[str, Any],
        run: Run,
        commands: list[Command],
        event: EventT[bytes],
    ) -> None:
        """Keep an alert's join of group ``key``'s run (its new ``group`` state, ``run``
        and ``commands``) for the batch's one change of that run (only within a batch).
        The table's memory holds the new group at once (no await here), its run's
        state made only when stored (``_store_deferred``), with its changelog entry."""
        assert self._deferred is not None
        self._defer_into(self._deferred, key, group, run, commands, event)

    async def _store_deferred(self, commands: bool | bytes = True) -> None:
        """Under ``runs_settled``, by every writer of the groups before its own change
        (the routed batch's next message that may write, an operator's command, the
        deadline timer, the forgetting of ended groups): the joins it finds in memory
        reach the changelog, with their steps, before any change made after them; so do
        the commands batch's changes (``commands``: False only for that batch's own next
        command, which adds to them; a group key: that group's only, for the deadline
        pass, which touches one group at a time).

        Store each group's deferred joins as one change (``advance``: its state with
        the joins' steps as its outbox, delivery awaited, then the steps and audit
        records sent together), the groups' changes side by side (each its own
        ``advance``, their Kafka round trips awaited together: a batch closing 500 runs
        waits for Kafka twice, not 1,000 times). A change that cannot be stored costs
        only its group's messages: each dead-lettered with the reason, as each was alone
        before; one refused before anything was sent (``RunTooLarge``, an entry too
        large) leaves the group as stored."""
        await self._store_changes(self._deferred, "routed")
        deferred = self._deferred_commands
        if isinstance(commands, bytes):
            if deferred and commands in deferred:
                await self._store_changes({commands: deferred.pop(commands)}, "commands")
        elif commands:
            await self._store_changes(deferred, "commands")

    async def _store_changes(
        self, deferred: dict[bytes, DeferredJoins] | None, stream: str
    ) -> None:
        """``_store_deferred``'s work for one batch's ``deferred`` changes, read from
        ``stream`` (routed or commands), emptied."""
        if not deferred:
            return
        changes = list(deferred.items())
        deferred.clear()

        async def store(key: bytes, joins: DeferredJoins) -> None:
            joins.group["run"] = joins.run.to_dict()
            await self.advance(key, joins.group, joins.run, joins.commands)

        results = await asyncio.gather(
            *(store(key, joins) for key, joins in changes), return_exceptions=True
        )
        for (key, joins), exc in zip(changes, results, strict=True):
            try:
                if isinstance(exc, BaseException) and not isinstance(exc, Exception):
                    raise exc  # cancelled: the worker stops
                if exc is not None:
                    await self._change_failed(key, joins, exc, stream)
            finally:
                for run_id, command_id in joins.pending:
                    self.ctx.pending_commands.release(run_id, command_id)

    async def _change_failed(
        self, key: bytes, joins: DeferredJoins, exc: Exception, stream: str
    ) -> None:
        """A deferred change of group ``key`` that could not be stored (``exc``): each
        of its messages dead-lettered with the reason; the group as stored when nothing
        of it was sent."""
        if isinstance(exc, RunTooLarge | EventError):  # nothing stored or sent
            self._restore(key, joins.before)
        code = exc.code if isinstance(exc, EventError) else "processing_error"
        text = f"{type(exc).__name__}: {exc}" if code == "processing_error" else str(exc)
        what = "alerts joining" if stream == "routed" else "commands applied to"
        log.warning(
            "citybrain: %s: the %d %s group %s in one batch could not be stored, each "
            "dead-lettered: %s",
            stream,
            len(joins.events),
            what,
            key.decode(errors="replace"),
            text,
        )
        for event in joins.events:
            await self.ctx.dead_letter(stream, event, code, text[:500])

    @property
    def engines(self) -> dict[str, PlaybookEngine]:
        """The playbook engines in force (``Context.config``; a handler that awaits takes
        its ``config`` once instead)."""
        return self.ctx.config.engines

    async def _on_routed(self, event: EventT[bytes]) -> None:
        # EventError: dead-lettered by guarded, bad_json or bad_routed, with no traceback.
        # One configuration for the whole message (t133): a run opened by one library's
        # engine and its reports then covered by another's after an await.
        config = self.ctx.config
        engines = config.engines
        doc = message_json(event.value)
        refuse_unwritable_number(event.value, doc, "bad_routed")  # an offered report is kept whole
        doc = routed_fields(doc)
        if "alert" in doc:  # its started_at becomes its run's opening
            skew = self.settings.max_future_skew
            refuse_alert_ahead(doc["alert"], time.time(), skew, "bad_routed", at="alert.")
            alert_in_grid(doc["alert"], config.grid, "bad_routed", at="alert.")
        key = event.key if isinstance(event.key, bytes) else str(event.key).encode()
        routed_key = key.decode(errors="replace")
        if (self._deferred or self._deferred_commands) and not self._plain_join(doc, key):
            # It may write a group's state (its own, or another's by the key migration):
            # the batch's joins so far first, in the order they were read (and a
            # commands batch's changes, read before it).
            await self._store_deferred()
        home = await self._group_home(key, doc, config.router)
        if home is None:
            return  # forwarded to the partition where its group may be stored
        key = home
        if self._deferred_commands and key in self._deferred_commands:
            # Commands applied to its run in a commands batch, not yet stored: a join
            # deferred on top of them would store their state without their steps.
            await self._store_deferred()
        pending = self.ctx.groups.get(key)
        if pending and pending.get(OUTBOX):  # the last change's outputs first
            pending = await self._flush_outbox(key, pending)
        if pending and pending.get(SAY):
            await self._flush_said(key, pending)
        if "report" in doc:
            await self._on_offered_report(
                key, doc["report"], message_time(None, event, time.time()), engines, event
            )
            return
        route = doc["route"]
        group = self.ctx.groups.get(key)
        if group is None:
            # Above every group of its partition forgotten before: a key routed again
            # after its group was forgotten never reuses a run id. ``first_generation``
            # (when above 1) tells the API's 404 for an earlier id from a 409.
            floor = self.ctx.generation_floor(key)
            group = {"generation": floor, "run": None, "seen": [], "commands": [], "route": route}
            if floor:
                group[FIRST_GENERATION] = floor + 1
        group = dict(group)
        if group["route"] is None:  # a group that only held offers until now
            group["route"] = route
        deferred = self._deferred.get(key) if self._deferred else None
        if deferred is not None:
            # The batch's changes so far (``_defer_join``): the group in memory keeps
            # the run as stored until they are, its new state written then. A shallow
            # copy: the engine replaces a run's fields, it does not change them in place.
            run: Run | None = copy.copy(deferred.run)
        else:
            run = Run.from_dict(group["run"]) if group["run"] else None
        if "muted" in doc:
            await self._on_muted(key, group, run, doc["muted"]["alert_id"], doc["grouped_at"])
            return
        alert = doc["alert"]
        group_key = key.decode(errors="replace")
        # The routed message's own time, so a run opened again after a crash (its state
        # not yet stored) has the same created_at and step times.
        alert_id, now = alert["alert_id"], message_time(None, event, time.time())
        # The reports_not_alerted records this change adds to the group (``_cover_held``),
        # sent once it is stored (``_say``).
        said: list[tuple[str, str]] = []
        members: dict[str, float] = dict(group.get(MUTED) or {})
        member_since = members.pop(alert_id, None)
        was_muted = member_since is not None
        if was_muted:
            group[MUTED] = members  # routed now: a member of a run, or resolved
        cmds: list[Command] = []
        # A join or resolution of the open run, with no reports: within a routed batch,
        # kept for the batch's one change of the run (``_defer_join``).
        deferrable = False
        # An existing run's changes use its own playbook's engine (``_engine_for``): the
        # route's may have changed since it opened.
        if alert["status"] == "resolved":
            if run is None or alert_id not in run.alerts:
                if was_muted:  # a muted member resolved: the group lives to its next flush
                    if run is None or is_terminal(run):
                        group[MUTED_GONE] = _muted_gone(
                            group, float(member_since or now), members, route, now
                        )
                    if (
                        run is not None
                        and not members
                        and run.all_resolved_at is None
                        and not unresolved(run)
                    ):
                        # The last muted member kept the group of a run whose alerts had
                        # all resolved (``_on_muted``): its next flush empties it (t201).
                        run.all_resolved_at = now
                    await self._store_deferred()  # the batch's joins' steps first
                    if run is not None:  # the run as the batch left it
                        group["run"] = run.to_dict()
                    await self.ctx.groups.set_many({key: group})
                elif (
                    run is not None
                    and not is_terminal(run)
                    and run.all_resolved_at is None
                    and not unresolved(run)
                ):
                    # A muted alert that kept the run's emptied group alive (``_on_muted``)
                    # resolved: the group's next flush empties it (t196).
                    await self._store_deferred()
                    run.all_resolved_at = now
                    group["run"] = run.to_dict()
                    await self.ctx.groups.set_many({key: group})
                return
            # Its labels (checked by ``routed_fields``) for the group's next flush, which
            # asks whether it is muted then (``_log_cleared``).
            labels = label_set(alert.get("labels") or {}, need_one=False)
            run, cmds = self._engine_for(run, engines).alert_resolved(run, alert_id, now, labels)
            if not cmds and not was_muted:
                return  # a resolution the run already holds, read again: nothing changes
            if members and run.all_resolved_at is not None and not unresolved(run):
                # The run's last alert resolved while a muted alert of its group fires
                # (``_on_muted``): Alertmanager's group holds that alert and flushes on,
                # so its next flush does not empty it (t201; before, an alert coming
                # after that flush started a fresh group, notified group_wait late, and
                # a pending run was withdrawn).
                run.all_resolved_at = None
            deferrable = True  # a change of the open run, as a join
        elif _read_before(group, event) or (
            alert_id in group["seen"]
            # One its run saw resolve fires again (t196): a join (a new run if that one
            # has finished), not the firing alert read again (it stayed resolved in the
            # run, never notified again). Again only if read after the resolution: a
            # firing message read again after a kill came before it.
            and not (run is not None and alert_id in run.ended_alerts and _read_after(group, event))
        ):
            if run is None or not alert.get("reports"):
                # Runs are idempotent per alert: a redelivered alert changes nothing but
                # its member's removal, stored as the first time (t120: a freed alert's
                # muted notice read again after a kill made it a member for good).
                if was_muted:
                    await self._store_deferred()  # its joins' steps before their state
                    if run is not None:  # the run as the batch left it
                        group["run"] = run.to_dict()
                    await self.ctx.groups.set_many({key: group})
                return
        elif run is not None and not is_terminal(run):
            # Notified at the group's next flush (the deadline timer's ``engine.flush``).
            # Into a group emptied of alerts, a fresh group: group_wait again (none for
            # an alert that started more than group_wait ago), as Alertmanager's.
            fresh_wait = 0.0 if waited_out(alert, route["group_wait"], now) else route["group_wait"]
            run, cmds = self._engine_for(run, engines).join(
                run, alert_id, now, route["group_interval"], fresh_wait
            )
            if (
                run.status == "pending"
                and not run.held  # its first flush not yet come (a held one has)
                and run.deadline_at is not None
                and waited_out(alert, route["group_wait"], now)
            ):
                run.deadline_at = min(run.deadline_at, now)
            deferrable = True
        else:
            await self._store_deferred()  # a new run: the batch's joins so far first
            if run is not None:
                # The finished run this one supersedes stays readable a while (`runs show`
                # of its id: where it went), though no longer changeable.
                by = f"{key.decode()}.{group['generation'] + 1}"
                kept = {"run": run.to_dict(), "at": now, "by": by}
                group["superseded"] = [*group.get("superseded", []), kept][-KEEP_SUPERSEDED:]
            if route["playbook"] not in engines:
                # Routed before the worker restarted, or reloaded (SIGHUP), with a library
                # without that playbook (KeyError, a traceback, before t49): said, no run
                # opened. (t159: said as a restart only, though a reload that removes a
                # playbook meets it for every alert routed to it and not yet read here.)
                raise EventError(
                    "processing_error",
                    None,
                    None,
                    f"route {route.get('id')} names playbook {route['playbook']!r}, which is "
                    "not in the library (routed before the worker restarted or reloaded "
                    "with other playbooks): no run opened",
                )
            engine = engines[route["playbook"]]
            group["generation"] += 1
            wait, why_wait = route["group_wait"], ""
            # Alertmanager's group has existed since its first alert came, muted or not
            # (this one, freed from a mute: ``grouped_at``; or others still muted), and
            # flushes each group_interval: the run's first notification is at its next
            # tick (a run opened with a fresh group_wait notified sooner).
            made = [*members.values(), *([doc["grouped_at"]] if "grouped_at" in doc else [])]
            gone = group.get(MUTED_GONE)
            if gone and (members or _gone_alive(group, now)):
                # Its muted members resolved (all or some), the group not yet deleted:
                # dated by the earliest (t196; before, by the members left, or none).
                # Some resolved while others remained (``until`` unset), the last of
                # those now freed: still the earliest (t201; before, by the freed one's
                # own mute, a group made later).
                made.append(gone["made"])
            # A run closed by people whose group still flushes (its alerts fire, or their
            # resolution is not yet flushed): Alertmanager never deleted that group, so
            # the new alert goes out at its next tick, not group_wait after it came.
            alive = None if run is None else group_next_tick(run, route["group_interval"], now)
            if run is not None and alive is not None:
                made, wait = [], alive
                why_wait = f" (the group's next flush: run {run.run_id}'s alerts still in it)"
            elif made:
                wait = next_group_flush(min(made), wait, route["group_interval"], now)
                why_wait = (
                    f" (the group's next flush: it has held muted alerts since "
                    f"{format_ts(min(made))})"
                )
            if (
                alive is None
                and (not made or now < min(made) + route["group_wait"])
                and waited_out(alert, route["group_wait"], now)
            ):
                wait, why_wait = 0.0, " (its alert started more than group_wait ago)"
            # Its muted members stay members (t202): one released later joins the run
            # (``on_routed`` takes it out), and while one fires the run's own alerts all
            # resolving do not end the group (``_on_muted``'s rule, t201, for members
            # muted after the run opened). Before, the run's opening dropped them: a
            # pending run whose alerts all resolved within group_wait was withdrawn
            # though Alertmanager's group held the muted alert and flushed on, and the
            # next alert opened a fresh group (seed 76, timeline 1: 8.5 s against 7.5 s).
            if not group.get(MUTED):
                group.pop(MUTED, None)
            group.pop(MUTED_GONE, None)
            if self.settings.ack_deadline_seconds is not None:
                wait = min(wait, self.settings.ack_deadline_seconds)
            # A flush due now in a time-muted route sends nothing: the run waits for the
            # group's next flush, held, as a first flush found muted at its deadline.
            timed = self._time_muted(route, now, config.router) if wait <= 0 else ""
            if timed:
                wait = route["group_interval"]
            run, cmds = engine.new_run(
                f"{key.decode()}.{group['generation']}",
                alert,
                now,
                group_wait=wait,
                why_wait=why_wait,
            )
            if timed:
                run, more = engine.hold(run, timed, now + wait, now)
                cmds += more
            # The run's opening in event time: how old a report offered to it may be.
            group["opened_ts"] = _event_time(alert.get("started_at"))
            run, followed = await self._cover_held(key, group, engine, run, now, said)
            cmds += followed
        if alert.get("reports"):  # citizen reports the run now covers (repeats ignored)
            engine = self._engine_for(run, engines)
            try:
                covered = ReportsCovered.from_alert(alert, now)
                # Routed to several routes: the reports' other parts (runs of the other
                # groups cover them too), named in each closure.
                # Its own part named by the key it was routed under, which a group stored
                # before t126 is not (``_group_home``).
                own = {group_key, routed_key, doc.get(PROBE)}
                also = tuple(
                    Part.from_dict(p) for p in doc.get("parts") or [] if p.get("group") not in own
                )
            except (BadEventError, AttributeError, TypeError) as exc:
                await self.ctx.dead_letter("routed", event, "bad_reports", str(exc))
                return
            if also:
                covered = ReportsCovered(covered.reports, now, also)
            # A report an earlier run of the group covered (offered to it as a follow-up
            # while its window stayed below the threshold, then carried by the burst
            # that window raised after that run closed) heard that run's closure: one
            # report, one covering run, one closure (trial 22: it heard a second).
            earlier = _earlier_reports(group, now)
            again = [rid for rid, _ in covered.reports if rid in earlier]
            if again:
                covered = ReportsCovered(
                    tuple(r for r in covered.reports if r[0] not in earlier), now, covered.also
                )
            if again and alert_id not in group["seen"]:  # said once, not per redelivery
                run, noted = engine.note(
                    run,
                    "reports_covered_before",
                    ", ".join(f"{rid} (run {earlier[rid]})" for rid in again[:20])
                    + (f" and {len(again) - 20} more" if len(again) > 20 else ""),
                    now,
                )
                cmds += noted
            run, more = engine.step(run, covered)
            cmds += more
        # Each id once: a burst's follow-ups (one routed message each, the same alert id)
        # appended it again and again, and pushed the group's other ids out early.
        group["seen"] = newest_distinct(group["seen"], alert_id, SEEN_ALERTS)
        group["route"] = route
        _note_read(group, event)
        if (
            deferrable
            and self._deferred is not None
            and not alert.get("reports")
            # Outputs an earlier change holds (a task topic refused) go out with the
            # next change's: the batch's joins never ride on them.
            and not group.get(OUTBOX)
            and not group.get(SAY)
        ):
            # Its run's state (about 15 kB of JSON) is made once, when stored: made per
            # alert it was most of a join's cost (about 3 ms of 3.9 under load).
            self._defer_join(key, group, run, cmds, event)
            return  # stored with the batch's other changes of the group's run
        group["run"] = run.to_dict()
        await self.advance(key, group, run, cmds)
        if said:
            await self._say(key)

    async def _on_muted(
        self, key: bytes, group: dict[str, Any], run: Run | None, alert_id: str, since: float
    ) -> None:
        """An alert of this group muted on arrival (``since``, epoch s): Alertmanager puts
        it in its group all the same, which then exists and flushes, sending nothing,
        every group_interval; a run opened in the group later (for this alert once freed,
        or another) notifies at that group's next flush. Kept as a member (``muted``:
        alert id -> since, the first ``MUTED_MEMBERS``) whether or not the group has an
        open run (t201; before, only with none): with one, the alert joins it when freed,
        and while it fires the run's alerts all resolving do not empty the group."""
        members: dict[str, float] = dict(group.get(MUTED) or {})
        if run is not None and not is_terminal(run):
            route = group.get("route") or {}
            interval = route.get("group_interval") or 0.0
            changed = {}
            if group_phase(run, interval, since) is GroupPhase.EMPTIED:
                pass  # a fresh group's alert: it joins the run when freed (``join``)
            elif alert_id not in members and len(members) < MUTED_MEMBERS:
                # A member of the run's group whether or not a run is open (t201): while
                # it fires, the group lives on when the run's own alerts all resolve
                # (``on_routed``'s resolutions). Before, it was kept only with no open run, so those
                # resolutions emptied the group (or withdrew the pending run), and an
                # alert coming after started a fresh group, group_wait late.
                changed[MUTED] = {**members, alert_id: since}
            if (
                run.all_resolved_at is not None
                and not unresolved(run)
                and group_phase(run, interval, since) is not GroupPhase.EMPTIED
            ):
                # Every alert of the run resolved, their flush not yet come: this muted
                # alert is in Alertmanager's group, which lives on (t196; before, the
                # flush emptied it, and the alert, freed, started a fresh group).
                run.all_resolved_at = None
                changed["run"] = run.to_dict()
            if changed:
                await self.ctx.groups.set_many({key: {**group, **changed}})
            return
        if alert_id in members or len(members) >= MUTED_MEMBERS:
            return  # the earliest are kept: they date the group
        members[alert_id] = since
        update: dict[str, Any] = {MUTED: members}
        gone = group.get(MUTED_GONE)
        if gone and gone["until"] is not None and since <= gone["until"]:
            # Its earlier muted members all resolved, the flush that would delete the
            # group not yet come: this member keeps the group alive, dated by the
            # earliest still (t202; before, once that flush's time passed, the group
            # was dated by this member's own mute, its flushes off Alertmanager's: seed
            # 55, timeline 13 of the wide draws, 7.25 s against 9.5 s).
            update[MUTED_GONE] = {**gone, "until": None}
        await self.ctx.groups.set_many({key: {**group, **update}})

    # -- the group key migration (t126) -------------------------------------------------
    async def _group_home(self, key: bytes, doc: dict[str, Any], router: Router) -> bytes | None:
        """The group key under which routed message ``doc`` (Kafka key ``key``) is taken:
        ``key``, or the key its group had before t126 (``doc["legacy_key"]``: the route's
        position, not its matcher path) while a group stored under that key translates
        to ``key`` (``_translates``): its alerts keep joining its open run, no second
        dispatch after the upgrade. None when ``doc`` was forwarded instead, to that old
        key's partition (another worker's; ``probe``), which takes it there or sends it
        back (``checked``). Forwarding goes on for a key while one of its messages is on
        that way (``FORWARDS``, stored with the key's entry), so none overtakes another.
        ``router``: the routing of the message's configuration (t133, t159)."""
        probe: str | None = doc.get(PROBE)
        if probe is not None:  # here from ``probe``: this worker holds ``key``'s partition
            new = probe.encode()
            if self._translates(key, new, router):
                return key
            returned = {k: v for k, v in doc.items() if k != PROBE}
            await self.ctx.send_all(self.ctx.routed, [(probe, {**returned, CHECKED: True})])
            return None
        stored = self.ctx.groups.get(key)
        sent, back, _ = forwards_of(stored)
        if doc.get(CHECKED):
            seq = doc.get(SEQ)
            # Back in the order they went: every one forwarded before it is back or
            # taken there. (An earlier worker's has no seq: nothing is known by it.)
            if isinstance(seq, int) and seq > back:
                await self._store_forwards(key, stored, sent, seq)
            return key
        legacy: str | None = doc.get(LEGACY_KEY)
        if legacy is None or legacy.encode() == key:
            return key
        old = legacy.encode()
        if sent <= back:  # none of the key's messages on its way there
            if _stored_here(stored):
                return key  # its group is stored under its key
            if self._holds_partition(old):
                # The old key's group, if any, is this worker's: taken here, or none
                # (or one that does not translate) and the group opens under its key.
                return old if self._translates(old, key, router) else key
        # Stored before it is sent (the offset is committed after both): a restarted
        # worker, or the partition's next owner, knows it is on its way (t148: counted
        # in memory, a restart forgot it and took a later message first).
        await self._store_forwards(key, stored, sent + 1, back)
        probe_doc = {**doc, PROBE: key.decode(), SEQ: sent + 1}
        await self.ctx.send_all(self.ctx.routed, [(legacy, probe_doc)])
        return None

    async def _store_forwards(
        self, key: bytes, stored: dict[str, Any] | None, sent: int, back: int
    ) -> None:
        """Store group ``key``'s forwarding counts (``FORWARDS``): ``sent``, the seq of
        the last message forwarded to its old key's partition, ``back``, the highest
        seq come back from there, and when (wall clock) the last was sent. A group
        with no entry gets one holding only these (no run, no route), as a group
        holding only offers."""
        if stored is None:
            floor = self.ctx.generation_floor(key)
            stored = {"generation": floor, "run": None, "seen": [], "commands": [], "route": None}
            if floor:
                stored[FIRST_GENERATION] = floor + 1
        before, _, at = forwards_of(stored)
        if sent > before:
            at = time.time()
        await self.ctx.groups.set_many(
            {key: {**stored, FORWARDS: {"sent": sent, "back": back, "at": at}}}
        )

    def _holds_partition(self, key: bytes) -> bool:
        """Whether this worker holds ``key``'s partition of the ``routed`` topic (and so
        of the ``groups`` table, whose entry for ``key`` it would hold)."""
        partition = self.ctx.groups.partition_for_key(key)
        topic = self.ctx.routed.get_topic_name()
        return any(
            tp.topic == topic and tp.partition == partition
            for tp in self.ctx.app.assignor.assigned_actives()
        )

    def _translates(self, old: bytes, new: bytes, router: Router) -> bool:
        """Whether the group stored under ``old`` (a key made before t126 from its route's
        position, ``Route.legacy_group_key``) is the group ``new`` keys now: its stored
        route's position holds, in ``router``, a route with the same playbook
        whose old key for the run's labels is ``old``, whose key for them now is ``new``,
        and which those labels still reach. A stored group that is not (its route moved
        or edited since) is said once, naming it, and left as it is: readable, its run
        changeable by its id; the new alerts open a group under ``new``."""
        group = self.ctx.groups.get(old)
        if not isinstance(group, dict):
            return False
        route_doc = group.get("route")
        if route_doc is None:
            # Held offers only (kept 5 minutes for a run the group may open): the key was
            # made from the route now at that position, nothing stored says otherwise.
            return True
        position = route_doc.get("id") if isinstance(route_doc, dict) else None
        route = self._route_at(position, router) if isinstance(position, str) else None
        run = group.get("run")
        labels = run.get("labels") if isinstance(run, dict) else None
        why = ""
        if route is None:
            why = f"no route is at its route's position {position!r} now"
        elif isinstance(route_doc, dict) and route_doc.get("playbook") != route.playbook:
            why = (
                f"the route at its position {position} opens {route.playbook} runs, "
                f"its run's was {route_doc.get('playbook')}"
            )
        elif isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values()):
            if route.legacy_group_key(labels) != old.decode(errors="replace"):
                why = f"the route at its position {position} groups its run's alert otherwise"
            elif route.group_key(labels) != new.decode(errors="replace"):
                why = f"its run's alert now has group key {route.group_key(labels)}"
            elif all(r.path != route.path for r in router.root.match(labels)):
                why = f"its run's alert no longer reaches the route at {position}"
        if why and old not in self._said_untranslated:
            self._said_untranslated.add(old)
            run_id = run.get("run_id") if isinstance(run, dict) else None
            log.warning(
                "citybrain: group %s (stored before t126 under its route's position) "
                "is not the group %s: %s; it stays as it is (run %s readable and changeable "
                "by its id), and new alerts of %s open a group of their own",
                old.decode(errors="replace"),
                new.decode(errors="replace"),
                why,
                run_id or "(none)",
                new.decode(errors="replace"),
            )
        return not why

    def _route_at(self, position: str, router: Router) -> Route | None:
        """The route at ``position`` (``root.2.0``) in ``router`` (the routing of the
        message's configuration), or None."""
        head, *rest = position.split(".")
        route = router.root if head == "root" else None
        for part in rest:
            # ASCII digits, a few: "²".isdigit() is true and int("²") raised, as did
            # int() of 5,000 digits ("Exceeds the limit (4300 digits)", t190), out of a
            # stored group's migration; no route has a billion children.
            index = int(part) if part.isascii() and part.isdigit() and len(part) <= 9 else None
            if route is None or index is None or index >= len(route.routes):
                return None
            route = route.routes[index]
        return route

    async def _on_offered_report(
        self,
        key: bytes,
        report: dict[str, Any],
        now: float,
        engines: dict[str, PlaybookEngine] | None = None,
        event: EventT[bytes] | None = None,
    ) -> None:
        """A citizen report in no alert, offered at ``now`` (its routed message's time,
        ``message_time``: the same if applied again) to its group's run (streams.ingest): an
        open run covers it as a follow-up (``report_covered``, closed with the others);
        within a routed batch, that is kept for the batch's one change of the run, with
        its joins (``_defer_join``, ``event`` the message, dead-lettered if the change
        fails): before t208 each offer was its own change, two Kafka round trips, and a
        flood of reports into one open run held every routed message read after it;
        with no run, or a finished one, the offer is held for the group's next run
        (``_hold_offer``), which takes it as if it came once it had opened: whether an
        offer is read just before or just after its run opens (a restarted worker reads
        them in another order) changes nothing. One whose event time is more than
        ``OFFER_MAX_AGE`` (a day) before the run's opening (its first alert's
        ``started_at``) is refused: a report days old is no follow-up of a run opened
        since (trial 7). That one is in no alert: a late one (never in the
        burst window, which would say so) is counted in
        ``citybrain_incidents_unalerted_total`` and audited as ``reports_not_alerted``
        here; any other is, by the window, when it leaves it in no alert."""
        stored = self.ctx.groups.get(key)
        rid, channel = report.get("report_id"), report.get("channel")
        if not isinstance(rid, str) or not rid or not isinstance(channel, str):
            return  # only the incidents stage writes these; nothing to cover
        ts = report.get("ts")
        fault = None if ts is None else epoch_seconds_fault(ts)
        if fault is not None:
            # -1e308 was compared, then written as a date: an OverflowError and a
            # traceback in the worker's log for a foreign producer's offer (helper t52).
            raise EventError("bad_reports", "report.ts", ts, fault)
        deferred = self._deferred.get(key) if self._deferred else None
        if deferred is not None:
            # The batch's changes so far: the group in memory keeps the run as stored
            # until they are (a shallow copy: the engine replaces a run's fields).
            run: Run | None = copy.copy(deferred.run)
        else:
            run = Run.from_dict(stored["run"]) if stored and stored.get("run") else None
        opened = stored.get("opened_ts") if stored else None
        unplain = run is None or is_terminal(run) or _too_old_for(ts, opened) is not None
        if unplain and (self._deferred or self._deferred_commands):
            # A write of its own (and, holding it, of other groups' offers dropped at
            # the bound): the batches' changes first, as before any message that writes
            # (``_on_routed``), then the group as stored.
            await self._store_deferred()
            stored = self.ctx.groups.get(key)
            run = Run.from_dict(stored["run"]) if stored and stored.get("run") else None
        if run is None or is_terminal(run):
            await self._hold_offer(key, stored, run, report, now)
            return
        assert stored is not None  # (a run is stored in its group)
        if (too_old := _too_old_for(ts, opened)) is not None:
            said: list[tuple[str, str]] = []
            group = dict(stored)
            self._too_old(group, run, report, rid, channel, *too_old, said=said)
            if said:  # (one read again after a crash was said already: nothing changes)
                await self.ctx.groups.set_many({key: group})
                await self._say(key)
            return
        run, cmds = self._engine_for(run, engines).step(run, ReportsCovered(((rid, channel),), now))
        if not cmds:
            return  # covered already (read again): nothing changes
        if self._deferred is not None and event is not None:
            self._defer_join(key, dict(stored), run, cmds, event)
            return  # stored with the batch's other changes of its run
        await self.advance(key, {**stored, "run": run.to_dict()}, run, cmds)

    async def _hold_offer(
        self,
        key: bytes,
        stored: dict[str, Any] | None,
        run: Run | None,
        report: dict[str, Any],
        now: float,
    ) -> None:
        """Hold an offer that found no open run in group ``key`` (``stored``, None if the
        group has no entry; ``run``, its finished run or None) for a run the group opens
        within ``HOLD_OFFER_SECONDS`` of ``now`` (the offer's message time; ``_cover_held``).
        Catching up on a backlog, a burst's alert passes the alerting stage while the
        reports after it are offered straight to the routed topic: the offer came before
        the run it follows and was dropped (helper t75: 6 of 182 closures lost after a
        worker restart). Stored in the group's entry (``HELD_OFFERS``), written before
        the offer's offset is committed: held in memory, an offer committed before its
        run opened was lost to a SIGKILL (t124). An offer read again (a redelivery) is
        held as the first time; one for a report a run of the group covered already is
        not held (its reporter heard that run's closure). At most ``MAX_HELD_PER_GROUP``
        per group and ``MAX_HELD_OFFERS`` in all, oldest dropped: a dropped or expired
        offer ends as before (its report waits in its window, or ends as
        ``reports_not_alerted``). Raises ``EventError`` (``check_fits``) if the group's
        entry would not fit one changelog message."""
        rid, channel = report["report_id"], report["channel"]
        if stored is not None and (
            (run is not None and rid in run.reports) or rid in _earlier_reports(stored, now)
        ):
            return
        if stored is None:
            floor = self.ctx.generation_floor(key)
            stored = {"generation": floor, "run": None, "seen": [], "commands": [], "route": None}
            if floor:
                stored[FIRST_GENERATION] = floor + 1
        before: list[dict[str, Any]] = list(stored.get(HELD_OFFERS) or [])
        held = [h for h in before if h["at"] >= now - HOLD_OFFER_SECONDS]
        expired = [(key, h) for h in before if h["at"] < now - HOLD_OFFER_SECONDS]
        lost: list[tuple[bytes, dict[str, Any]]] = []  # dropped at a bound
        if not any(
            h["report"]["report_id"] == rid and h["report"]["channel"] == channel for h in held
        ):
            kept = [*held, {"at": now, "report": report}]
            lost += [(key, h) for h in kept[:-MAX_HELD_PER_GROUP]]
            held = kept[-MAX_HELD_PER_GROUP:]
        elif len(held) == len(before):
            return  # held already, nothing expired: as the first time
        writes = {key: {**stored, HELD_OFFERS: held}}
        total = self._held_total() + len(held) - len(before)
        while total > MAX_HELD_OFFERS and (dropped := self._drop_oldest_held(writes)):
            lost.append(dropped)
            total -= 1
        # Said with the store (t152): each lost offer's record goes into its group's
        # ``SAY`` in the same entry that lets the offer go, and out once that is stored.
        # Before, said first: a crash before the store said and counted them again.
        said = self._offers_lost(expired, "expired", writes)
        for lost_key, records in self._offers_lost(lost, "dropped", writes).items():
            said.setdefault(lost_key, []).extend(records)
        await self.ctx.groups.set_many(writes)
        self._held_count = total
        for lost_key in said:
            await self._say(lost_key)

    def _held_total(self) -> int:
        """How many offers this worker's groups hold (``HELD_OFFERS``)."""
        if self._held_count is None:
            self._held_count = sum(
                len(g.get(HELD_OFFERS) or ()) for g in self.ctx.groups.data.values() if g
            )
        return self._held_count

    def _drop_oldest_held(
        self, writes: dict[bytes, dict[str, Any]]
    ) -> tuple[bytes, dict[str, Any]] | None:
        """Drop the oldest offer held by any group (``writes`` read over the table): its
        group goes into ``writes``. Returns (group key, the held offer dropped), None if
        no group holds one."""
        data = self.ctx.groups.data
        if not self._oldest_held:
            found = []
            for key in {*data.keys(), *writes}:
                for h in (writes.get(key) or data.get(key) or {}).get(HELD_OFFERS) or ():
                    found.append((h["at"], key, h["report"]["report_id"], h["report"]["channel"]))
            self._oldest_held = deque(sorted(found))
        while self._oldest_held:
            at, key, rid, channel = self._oldest_held.popleft()
            group = writes.get(key) or data.get(key) or {}
            held = list(group.get(HELD_OFFERS) or ())
            for i, h in enumerate(held):
                report = h["report"]
                if h["at"] == at and report["report_id"] == rid and report["channel"] == channel:
                    del held[i]
                    writes[key] = {**group, HELD_OFFERS: held}
                    return key, h
            # (gone since the scan: taken by a run, expired, or its group forgotten)
        return None

    async def _cover_held(
        self,
        key: bytes,
        group: dict[str, Any],
        engine: PlaybookEngine,
        run: Run,
        now: float,
        said: list[tuple[str, str]],
    ) -> tuple[Run, list[Command]]:
        """The run just opened at ``now`` (its routed message's time) in ``group`` takes
        the offers held for it (``_hold_offer``) as it takes an offer read once it is open
        (``_on_offered_report``): each held at most ``HOLD_OFFER_SECONDS`` before ``now``
        is covered unless its event time is more than ``OFFER_MAX_AGE`` before the run's
        opening (``group["opened_ts"]``, event time), which is refused as there
        (``_too_old``). Before, a held offer was covered only if made at or after the
        opening, one read after it by the one-day rule: a restarted second worker,
        reading offers again after their run had opened, covered 3 reports more than one
        worker's run (helper t75's harness). Every offer held is let go from ``group``
        (stored by the caller with the run, in one changelog entry); the records of those
        let go in no alert go into its ``SAY`` and ``said`` (``_note_said``), for the
        caller's ``_say`` once that entry is stored."""
        held = group.pop(HELD_OFFERS, None) or []
        if not held:
            return run, []
        self._held_count = None
        opened = group.get("opened_ts")
        follow: dict[tuple[str, str], None] = {}
        expired = [(key, h) for h in held if h["at"] < now - HOLD_OFFER_SECONDS]
        # No run took them (a late one: said).
        said += self._offers_lost(expired, "expired", {key: group}).get(key, [])
        for h in held:
            report = h["report"]
            rid, channel = report["report_id"], report["channel"]
            if h["at"] < now - HOLD_OFFER_SECONDS:
                continue  # expired: ends as an offer no run took
            if (too_old := _too_old_for(report.get("ts"), opened)) is not None:
                self._too_old(group, run, report, rid, channel, *too_old, said=said)
            else:
                follow[(rid, channel)] = None
        if not follow:
            return run, []
        return engine.step(run, ReportsCovered(tuple(follow), now))

    def _offers_lost(
        self,
        lost: list[tuple[bytes, dict[str, Any]]],
        why: str,
        groups: dict[bytes, dict[str, Any]],
    ) -> dict[bytes, list[tuple[str, str]]]:
        """Held offers (group key, ``{"at", "report"}``) let go with no run taking them:
        expired (``HOLD_OFFER_SECONDS`` of message time passed, or their group forgotten)
        or ``dropped`` (a bound). A late report's (never in its burst window, which would
        say it when it leaves) is counted in ``citybrain_incidents_unalerted_total``,
        logged and audited as ``reports_not_alerted`` (``_note_said``: into its group's
        entry in ``groups``, which the caller stores, then ``_say``), as a late one a run
        refuses (``_too_old``); before t148 it ended unsaid. Only a report offered to one
        group (``offers``, 1 when absent): one offered to several (a route grouping by
        severity, routes with ``continue``) may be covered by another group's run, which
        this group cannot know. Each record's ``id`` is the same if made again (the offer
        read again after a crash), and a group that stored it says it no more. Returns
        the (channel, detail) of the records added, by group key."""
        added: dict[bytes, list[tuple[str, str]]] = {}
        for key, h in lost:
            report = h.get("report") or {}
            if not report.get("late") or report.get("offers", 1) != 1:
                continue
            rid, channel = str(report.get("report_id")), str(report.get("channel"))
            group = key.decode(errors="replace")
            detail = (
                f"report {rid} of {report.get('category')!r} at {report.get('grid_cell')}, "
                f"late (older than its burst window), was held for a run of group {group} "
                f"from {format_ts(h['at'])} and {why} with no run taking it "
                f"(held at most {HOLD_OFFER_SECONDS:g} s): in no alert, covered by no run"
            )
            self._note_said(
                groups[key],
                report,
                rid,
                channel,
                detail,
                {"id": f"{group}:{rid}:{channel}:{h['at']!r}:not_alerted"},
                {"group": group, "held_from": h["at"]},
                added.setdefault(key, []),
            )
        return added

    def _note_said(
        self,
        group: dict[str, Any],
        report: dict[str, Any],
        rid: str,
        channel: str,
        detail: str,
        record: dict[str, Any],
        data: dict[str, Any],
        said: list[tuple[str, str]],
    ) -> None:
        """One late report in no alert, to be counted in
        ``citybrain_incidents_unalerted_total`` (by ``channel``), logged, and audited as
        ``reports_not_alerted`` with ``detail``, the report's cell, category and id, and
        ``record``'s (its ``id`` included) and ``data``'s extra fields: put in ``group``'s
        ``SAY`` and its id in ``SAID`` (``group`` changed in place, for the caller to
        store) and (channel, detail) appended to ``said``, for ``_say`` once it is
        stored. A record whose id ``group`` has stored already is a repeat (an offer read
        again after a crash): nothing is added."""
        if record["id"] in (group.get(SAID) or ()):
            return
        group[SAY] = [
            *(group.get(SAY) or []),
            {
                **record,
                "action": "reports_not_alerted",
                "at": time.time(),
                "actor": "citybrain",
                "detail": detail,
                "data": {
                    "grid_cell": report.get("grid_cell"),
                    "category": report.get("category"),
                    "report_ids": [rid],
                    "channel": channel,
                    **data,
                },
            },
        ]
        group[SAID] = newest_distinct(list(group.get(SAID) or ()), record["id"], SAID_KEPT)
        said.append((channel, detail))

    async def _say(self, key: bytes) -> None:
        """After group ``key``'s entry holding audit records to send (its ``SAY``) was
        stored: make sure that entry is on Kafka, then send them (``_flush_said``). A
        crash before the entry is on Kafka reads the change again and makes the same
        records (the same ids) anew; one after it sends them from ``SAY``."""
        group = self.ctx.groups.data.get(key)
        if not group or not group.get(SAY):
            return
        await self.ctx.groups.set_many_delivered({key: group})
        await self._flush_said(key, group)

    async def _flush_said(self, key: bytes, group: dict[str, Any]) -> dict[str, Any]:
        """``group`` with the ``reports_not_alerted`` records of its ``SAY`` sent (delivery
        awaited), then stored without them (delivered); only then each is counted in
        ``citybrain_incidents_unalerted_total`` (its ``data.channel``) and logged, with
        no await between the store and the count: a worker killed before that store
        sends them again from ``SAY`` (the same ids) and counts them then, one killed
        after it has counted them. Called after they were stored (``_say``) and by the
        group's next touch (a routed message, a command, a deadline pass) when a worker
        stopped before they were known to be out. Returns the group as stored."""
        records = group.get(SAY)
        if not records:
            return group
        await self.ctx.audit_all(list(records))
        clean = {k: v for k, v in group.items() if k != SAY}
        await self.ctx.groups.set_many_delivered({key: clean})
        for record in records:
            if record.get("action") == "reports_not_alerted":
                self.metrics.incidents_unalerted.labels(str(record["data"].get("channel"))).inc()
                log.info("incidents: %s", record["detail"])
            elif record.get("action") == "reply_webhook_failed":
                self.metrics.closures_given_up.inc()
        return clean

    def _too_old(
        self,
        group: dict[str, Any],
        run: Run,
        report: dict[str, Any],
        rid: str,
        channel: str,
        ts: float,
        opened: float,
        said: list[tuple[str, str]],
    ) -> None:
        """A report refused by its group's open run as older than its opening by more than
        ``OFFER_MAX_AGE``: if it is late (never in the window), noted in ``group`` to be
        counted, logged and audited as in no alert (``_note_said``, once per run: its
        ``id`` names the report and the run, so the offer read again after a crash is a
        repeat); otherwise its window does that when it leaves. A report offered to
        several groups (``offers``) is said only by the group of its first offer
        (``offer``, 0 when absent): each group whose run refused it counted it once before
        t152, one report counted up to 3 times per route."""
        if not report.get("late") or report.get("offer", 0) != 0:
            return
        detail = (
            f"report {rid} of {report.get('category')!r} at {report.get('grid_cell')} "
            f"({format_ts(ts)}) is more than {OFFER_MAX_AGE / 3600:g} h older than run "
            f"{run.run_id} of its group (opened {format_ts(opened)}): in no alert, not "
            "covered by that run"
        )
        record = {"id": f"{run.run_id}:{rid}:{channel}:too_old", "run_id": run.run_id}
        self._note_said(group, report, rid, channel, detail, record, {}, said)

    async def on_command(self, event: EventT[bytes]) -> None:
        """One operator command (``command_fields``), applied to its run and stored
        before this returns (``advance``)."""
        await self._command(event)

    async def on_command_batch(self, messages: Sequence[Message]) -> None:
        """A batch of commands (one partition's fetch, in offset order), each handled as
        ``on_command`` handles one (its faults dead-lettered alone, its refusal audited,
        a repeat skipped, each in the order read), except that the commands changing one
        run become one change of it: its state stored once with every command's steps
        (one changelog write with the outbox, delivery awaited, and the steps sent
        together), and the runs' changes stored side by side, at the batch's end or
        before any other writer of the groups (``_store_deferred``). Before t193 each
        command stored its own change, two Kafka round trips each: a flood of 2,000
        acknowledgements and closures held every other command (and the deadline pass,
        which waits for the same lock) for seconds (docs/playbooks.md, "A flood of
        commands").

        The operator API's answer to a command (``PendingCommands``) is released once
        its change is stored. Nothing is acked before the batch's changes are stored
        and sent (the caller acks the batch when this returns): a worker killed
        mid-batch reads the whole batch again, whose commands stored before the kill are
        repeats (by id, or by ``COMMAND_OFFSET``) and whose others apply then. Raises
        only what dead-lettering raises (then the batch stays unacked)."""
        self._deferred_commands, self._passed = {}, []
        try:
            for message in messages:
                event = cast(EventT[bytes], BatchedMessage(message))
                await self.ctx.guarded("commands", self._command, event)
                # A deferred change awaits nothing: the deadline pass, the routed agent,
                # the API and heartbeats run between two commands.
                await asyncio.sleep(0)
            async with self.ctx.runs_settled:
                await self._store_deferred()
            passed, self._passed = self._passed, None
            for fut, event in passed:
                try:
                    await fut
                except Exception as exc:  # Kafka refused it: dead-lettered, as alone
                    text = f"{type(exc).__name__}: {exc}"
                    await self.ctx.dead_letter("commands", event, "processing_error", text[:500])
        finally:
            self._passed = None
            # Left only by a failure that stops the worker (a dead letter refused): no
            # other writer may find an unstored change in memory meanwhile.
            for key, joins in self._deferred_commands.items():
                self._restore(key, joins.before)
                for run_id, command_id in joins.pending:
                    self.ctx.pending_commands.release(run_id, command_id)
            self._deferred_commands = None

    async def _command(self, event: EventT[bytes]) -> None:
        try:
            cmd = command_fields(message_json(event.value))
            if cmd.get("request"):
                # Kept whole as an Idempotency-Key request's answer (``keyed``): a number
                # its encoder cannot write failed the group's write after the engine had
                # applied the command, a processing_error with a traceback (t137). One
                # that is not kept takes such a number as before (an ``at`` past now).
                refuse_unwritable_number(event.value, cmd, "bad_command")
        except EventError as exc:  # says why (a tombstone, a byte not UTF-8, a field)
            await self.ctx.dead_letter("commands", event, "bad_command", f"not readable: {exc}")
            return
        command_id, run_id, action = cmd["id"], cmd["run_id"], cmd["action"]
        home = misplaced_command(event, run_id, self.settings.partitions)
        if home is not None:
            await self._pass_on_command(event, run_id, home)
            return
        key = run_key(run_id)
        async with self.ctx.runs_settled:
            try:
                # A routed batch's joins read before it; a commands batch's own changes
                # wait for its end, but for a command that writes its group at once.
                batched = action not in (RESEND, "action_result")
                await self._store_deferred(commands=not batched)
                await self._on_command(event, cmd, command_id, run_id, action)
            finally:
                deferred = self._deferred_commands
                if deferred is not None and key in deferred:
                    # Its run's change is stored at the batch's end: the API is told
                    # then (api.settled_run), not from a state Kafka may not have.
                    deferred[key].pending.append((str(run_id), str(command_id)))
                else:
                    # Applied or refused: the API now sees the run as it is.
                    self.ctx.pending_commands.release(str(run_id), str(command_id))

    async def _pass_on_command(self, event: EventT[bytes], run_id: str, home: int) -> None:
        """Send a command that arrived on another partition than its run's (a producer
        that keyed it otherwise: by run id, or not at all) on to its run's partition,
        under the run's key, its bytes unchanged, delivery awaited before it is acked
        here. The worker that owns the run applies it once (its id); before, the worker
        that got it dead-lettered it ``unknown_run``, or applied it when it happened to
        own both partitions (helper t61)."""
        msg = event.message
        key = run_key(run_id)
        size = pass_on_bytes(msg.value, msg.headers)
        # Its new key too: a run_id is any text, and one of 499,900 characters (its
        # value within the own topics' 500,000 bytes) was a key the headroom did not
        # hold; with a 55-byte traceparent the producer refused the whole, a
        # processing_error with a traceback (t211).
        keyed = size + len(key) + MESSAGE_FRAMING_BYTES
        if size > MAX_MESSAGE_BYTES - PASS_ON_HEADROOM or keyed > MAX_MESSAGE_BYTES:
            # Its value is within the own topics' bound, but its headers are carried too:
            # the producer refused the whole, a processing_error with a traceback (t99).
            raise EventError(
                "bad_command",
                None,
                None,
                f"the command is on partition {msg.partition}, its run's is {home}, and "
                f"passed on there with its headers it would be {size:,} bytes and "
                f"{len(key):,} of its run's group key, more than the worker's producer "
                f"writes ({MAX_MESSAGE_BYTES:,}): send it keyed by its run's group key "
                "(docs/operations.md, Scaling out), or with fewer headers",
            )
        log.warning(
            "citybrain: command %s/%s/%s for run %s is not on its run's partition %d: "
            "passed on there",
            msg.topic,
            msg.partition,
            msg.offset,
            one_line(run_id[:200]),  # a producer's, any text: one log line (t211)
            home,
        )
        # Passed on as it came, headers too (a producer's trace context, its own ids).
        fut = await self.ctx.commands.send(
            key=key,
            value=msg.value,
            partition=home,
            headers=msg.headers,
        )
        if self._passed is not None:
            # In a batch: delivery awaited with the batch's, before it is acked (t193: a
            # flood of misplaced commands cost a Kafka round trip each).
            self._passed.append((fut, event))
            return
        await fut

    async def _on_command(
        self, event: EventT[bytes], cmd: dict[str, Any], command_id: str, run_id: str, action: str
    ) -> None:
        config = self.ctx.config  # the command's configuration, to its end (t133)
        key = run_key(run_id)
        group = self.ctx.groups.get(key)
        if group is not None and group.get(OUTBOX):
            group = await self._flush_outbox(key, group)
        if group is not None and group.get(SAY):
            group = await self._flush_said(key, group)
        if action == RESEND:
            # Before the unknown_run check: a superseded run's closures can be re-sent.
            await self._resend_closures(key, group, run_id, cmd, event)
            return
        calls = (group or {}).get("reply_calls") or {}
        resends: dict[str, int] = dict((group or {}).get(RESENDS) or {})
        call = cmd.get("command_id")
        entry = calls.get(call) if isinstance(call, str) else None
        if entry is not None and (not isinstance(entry, dict) or entry.get("run_id") != run_id):
            # Not this call's outcome: the call is its run's (the worker writes each
            # outcome under the run that made the call, ``on_webhook_outcome``). A
            # producer's outcome naming another run ended the call, silently, before
            # t211: read as any other command for that run id below.
            call = None
        if (
            action == "action_result"
            and call in calls
            and command_id != result_id(str(call), resends.get(str(call), 0))
        ):
            # The outcome of an earlier call of a closure re-sent since (its first call's
            # failure read again after a crash): not the call in flight's, which is kept
            # for its own outcome; a repeat, applied once already.
            return
        if action == "action_result" and call in calls:
            # A closure webhook's outcome (ok, or failed after its retries, audited): no
            # longer to be made again. Stored at once: the run it closed may be superseded.
            # Kept as applied in the same store: read again after a crash, with the call
            # gone from ``calls``, it is known for the repeat it is (t120).
            given = calls[cmd["command_id"]]
            calls = {k: v for k, v in calls.items() if k != cmd["command_id"]}
            applied = newest_distinct(
                (group or {}).get("commands", []), command_id, APPLIED_COMMANDS
            )
            group = {**(group or {}), "reply_calls": calls, "commands": applied}
            if cmd.get("ok") is True and call in resends:
                # Delivered: never re-sent again, its count no longer needed.
                group[RESENDS] = {k: v for k, v in resends.items() if k != call}
            if cmd.get("ok") is not True:
                # Kept as undelivered, in the same store as the call's removal: shown by
                # `runs show`, counted, and re-sent by `citybrain runs resend`. Its
                # reply_webhook_failed record goes in that store too (``SAY``), out and
                # counted after it (t152: said and counted after the store, lost to a
                # kill in between, the outcome read again being a repeat).
                why = str(cmd.get("detail") or "failed")[:300]
                group = with_undelivered(group, given, why, time.time())
                group[SAY] = [*(group.get(SAY) or []), self._given_up(run_id, cmd, given)]
            await self.ctx.groups.set_many({key: group})
            if group.get(SAY):
                await self._say(key)
                group = self.ctx.groups.data.get(key) or group
            if not group.get("run") or group["run"].get("run_id") != run_id:
                # Its run superseded since (a new alert opened the next): the call was all
                # it was about, no unknown_run dead letter (trial 26).
                return
        if group is not None and (
            command_id in group["commands"] or _read_before(group, event, COMMAND_OFFSET)
        ):
            # A repeat (read again after a crash before its offset was committed), before
            # the unknown_run check: its run may be superseded since, and the repeat of a
            # command applied to it was dead-lettered "no run …" (t120). A closure re-sent
            # by `runs resend` has an outcome id of its own (``result_id``). Read again
            # below the last command applied to the group: handled then, its id perhaps
            # no longer among the 200 kept (a flood read again after a kill, t193).
            return
        if group is None or group["run"] is None or group["run"]["run_id"] != run_id:
            await self.ctx.dead_letter("commands", event, "unknown_run", f"no run {run_id}")
            return
        group = dict(group)
        run = Run.from_dict(group["run"])
        before = run.to_dict()
        engines = config.engines
        engine = self._engine_for(run, engines)
        by = cmd.get("by") or "unknown"
        now = message_time(cmd.get("at"), event, time.time(), floor=run.created_at)
        note = cmd.get("note") or ""  # every operator action keeps its note (run.actions)
        try:
            if run.playbook not in engines and action not in WITHOUT_PLAYBOOK:
                # KeyError, a traceback and a dead letter before t49, resolve included.
                raise PlaybookError(playbook_gone(run, action))
            # The level the API saw the run at when it took the command (t114): an ack
            # applied after the ladder moved the run is recorded where it was given.
            seen = cmd.get("level")
            if action == "ack":
                run, cmds = engine.acknowledge(run, by, now, note, seen)
            elif action == "resolve":
                run, cmds = engine.resolve(run, by, note, now, seen)
            elif action == "escalate":
                run, cmds = engine.escalate(run, by, now, note, cmd.get("from_level"))
            elif action == "cancel":
                run, cmds = engine.cancel(run, by, note, now, seen)
            elif action in ("approve", "reject"):
                run, cmds = engine.approve(
                    run,
                    by,
                    cmd.get("role") or "",
                    now,
                    approved=action == "approve",
                    note=note,
                    level=seen,
                )
            elif action == "answer":
                run, cmds = engine.step(run, Answer.from_command({**cmd, "by": by}, now))
            elif action == "action_result":
                run, cmds = engine.action_result(
                    run, str(cmd.get("command_id", "")), cmd["ok"], cmd.get("detail") or "", now
                )
            else:
                raise PlaybookError(f"unknown command action {action!r}")
        except PlaybookError as exc:
            # A refused command is not stored as applied, so one read again after a crash
            # is refused again: the same id lets a reader of the audit dedupe the repeat.
            await self.ctx.audit(
                {
                    "id": f"{command_id}:refused",
                    "action": "command_refused",
                    "run_id": run_id,
                    "at": now,
                    "actor": by,
                    "detail": str(exc),
                    "command": action,
                }
            )
            return
        group["commands"] = newest_distinct(group["commands"], command_id, APPLIED_COMMANDS)
        # A repeat the engine took as a no-op (an ack of a run acknowledged meanwhile,
        # a resolve of one resolved) is not kept as the request's answer: its retry then
        # hears "already" naming who did it, not the 202 of a change it never made
        # (t110: two acks answered 503 while Kafka froze, both retried, both "accepted").
        changed = bool(cmds) or run.to_dict() != before
        if cmd.get("request") and changed:
            # An operator API request made with an Idempotency-Key: its retry is answered
            # with this command as first answered (streams/api.py, keyed_answer).
            keyed = {k: v for k, v in (group.get("keyed") or {}).items() if k != command_id}
            keyed[command_id] = cmd
            group["keyed"] = dict(list(keyed.items())[-KEYED_COMMANDS:])
        _note_read(group, event, COMMAND_OFFSET)
        if self._deferred_commands is not None and not group.get(OUTBOX) and not group.get(SAY):
            self._defer_command(key, group, run, cmds, event)
            return  # stored with the batch's other changes of its run
        group["run"] = run.to_dict()
        await self.advance(key, group, run, cmds)

    def _defer_command(
        self,
        key: bytes,
        group: dict[str, Any],
        run: Run,
        commands: list[Command],
        event: EventT[bytes],
    ) -> None:
        """Keep a command's change of group ``key``'s run (its new ``group`` state,
        ``run`` and ``commands``) for the commands batch's one change of that run. The
        table's memory holds the new group, its run included, at once (no await here):
        the batch's next command of the run reads it, as the API does."""
        assert self._deferred_commands is not None
        group["run"] = run.to_dict()
        self._defer_into(self._deferred_commands, key, group, run, commands, event)

    def _defer_into(
        self,
        deferred_by_key: dict[bytes, DeferredJoins],
        key: bytes,
        group: dict[str, Any],
        run: Run,
        commands: list[Command],
        event: EventT[bytes],
    ) -> None:
        """Add a change of group ``key``'s run to ``deferred_by_key`` (the routed or the
        commands batch's changes kept for its one store), the group as stored before
        the first of them kept; the table's memory holds the new ``group`` at once."""
        deferred = deferred_by_key.get(key)
        if deferred is None:
            before = self.ctx.groups.get(key)
            deferred = deferred_by_key[key] = DeferredJoins(before, group, run)
        deferred.group, deferred.run = group, run
        deferred.commands += commands
        deferred.events.append(event)
        self.ctx.groups.data[key] = group

    async def check_deadlines(self) -> None:
        # A half-recovered table could show a deadline whose escalation is already on
        # the changelog; acting then would escalate twice.
        if self.ctx.reading_back() is not None:
            # Nor are the gauges counted: they are of the runs and alerts this worker
            # held before (or 0, made so at start), which the panels' sums took for the
            # city's (t210: "Open alerts" read 0 with 24 firing after a restart).
            self.metrics.state_counted.set(0)
            return
        now = time.time()
        open_runs: Tally[tuple[str, str]] = Tally()
        # By cell id, placed in their districts and streets at the pass's end, by the
        # grid in force then (t159: placed as the pass went, a reload at a later run's
        # await that moved a cell left the runs counted before it under its old street).
        by_cell: Tally[str] = Tally()
        approvals: Tally[str] = Tally()
        ended: dict[bytes, dict[str, Any]] = {}  # groups to forget (``_forget_groups``)
        skipped = 0  # runs left as they were for a fault of their own (counted, said)
        held: dict[bytes, str] = {}  # group key -> why its run was left as it was
        for key in list(self.ctx.groups.keys()):
            async with self.ctx.runs_settled:
                # A routed batch's joins, with their steps; a commands batch's change of
                # this run only (the others stay one change each, stored at its end).
                await self._store_deferred(commands=key)
                if self.ctx.moving():
                    # A rebalance began during this pass (an earlier key's await): this
                    # key's partition may be on its way to another worker, which would
                    # recover the run without this escalation and send its own. The
                    # next pass after the rebalance sees only the runs this worker owns
                    # (and the gauges wait for it: this pass has not counted them all).
                    self.metrics.state_counted.set(0)
                    return
                # Read under the lock: a snapshot taken before an earlier key's await
                # could be older than an acknowledgement processed meanwhile.
                group = self.ctx.groups.data.get(key)
                # This key's configuration, to its end (t133): an engine of one library
                # with the routing of another (a reload at an await of ``_check_run``).
                config = self.ctx.config
                if group and group.get(SAY):  # records a stopped worker left unsent
                    group, why = await self._send_kept(
                        key, group, self._flush_said, "its reports_not_alerted records"
                    )
                    if why:
                        skipped += 1
                        held[key] = why
                        continue
                if not group or not group["run"]:
                    if (
                        group
                        and not any(group.get(f) for f in (MUTED, "reply_calls", UNDELIVERED, SAY))
                        and not _gone_alive(group, now)
                        and not self._holds(group, now)
                        and not self._forwarding(group, now)
                    ):
                        ended[key] = group  # its muted alerts all resolved, offers expired
                    continue
                if group.get(OUTBOX):
                    group, why = await self._send_kept(
                        key, group, self._flush_outbox, "its commands"
                    )
                    if why:
                        skipped += 1
                        held[key] = why
                        continue
                try:
                    run = Run.from_dict(group["run"])
                    if run.playbook not in config.engines and not is_terminal(run):
                        await self._playbook_gone(key, run)
                        held[key] = (
                            f"its playbook {run.playbook!r} is not in the library: restore "
                            "it and reload the worker (kill -HUP) or restart it, or resolve "
                            "or cancel the run"
                        )
                        continue
                    engine = self._engine_for(run, config.engines)
                    if run.grid_cell not in config.grid.cells and not is_terminal(run):
                        await self._cell_gone(key, run, engine)
                except Exception as exc:
                    # A run this worker cannot read (its playbook gone from the library
                    # since it opened, a state of another version): said once, left as
                    # it is; one such run must not stop every other run's deadlines.
                    self._unreadable_run(key, exc)
                    skipped += 1
                    held[key] = f"its stored state cannot be read ({type(exc).__name__}: {exc})"
                    continue
                try:
                    run = await self._check_run(key, group, run, engine, now, config.router)
                except Exception as exc:
                    # One run that cannot be advanced (its current step gone from an
                    # edited playbook: KeyError in timeout) ended the pass at its key,
                    # every tick, and no run after it was escalated (trial 26). It keeps
                    # its state, is said once, and is counted as it stands.
                    self._unadvanced_run(key, exc)
                    skipped += 1
                    held[key] = (
                        f"the deadline check failed on it ({type(exc).__name__}: {exc}); "
                        "tried again at each deadline check"
                    )
                else:
                    if self._ended(self.ctx.groups.data.get(key), run, now):
                        ended[key] = self.ctx.groups.data[key]
            self._known_run(run, self.ctx.label_department(run.department))
            if not is_terminal(run):
                open_runs[(run.playbook, run.status)] += 1
                by_cell[run.grid_cell] += 1
                role = engine.approval_role(run)
                if role is not None:
                    approvals[role] += 1
        # Counted per pass (each pass tries them again): the counter's rate says how
        # long they have failed, the gauge how many fail now.
        self.metrics.loop_items_skipped.labels("deadlines").inc(skipped)
        self.metrics.loop_items_failing.labels("deadlines").set(skipped)
        # Replaced per whole pass: a run advanced again drops out; ``since`` is when
        # this worker first found it held (kept while the reason changes).
        before = self.ctx.runs_not_advancing
        self.ctx.runs_not_advancing = {
            key: {"reason": why[:500], "since": (before.get(key) or {}).get("since", now)}
            for key, why in held.items()
        }
        if ended:
            await self._forget_groups(ended)
        # Counted and ordered again from the groups this worker owns now.
        self._held_count, self._oldest_held = None, deque()
        self.metrics.groups.set(len(self.ctx.groups.data))
        self.metrics.closures_undelivered.set(
            sum(len(g.get(UNDELIVERED) or {}) for g in self.ctx.groups.data.values() if g)
        )
        for name in self.ctx.playbooks:
            for status in ("pending", "waiting_ack", "waiting_approval", "waiting_action", "open"):
                self.metrics.runs_open.labels(name, status).set(open_runs[(name, status)])
        # Every cell of the grid, so a cell whose last run closed drops back to 0 (a run
        # in a cell dropped from the grid file is counted in none).
        for cell_id in self.grid.cells:
            path = self.ctx.cell_path(cell_id)
            self.metrics.cell_runs_open.labels(*path).set(by_cell[cell_id])
        for role in ("operator", "coordinator"):
            self.metrics.approvals_waiting.labels(role).set(approvals[role])
        self._count_held_tasks(now)
        self._count_held_offers(now)
        self.metrics.sensors_tracked.set(len(self.ctx.sensor_state))
        # ``firing`` is a global table: every worker holds every firing alert. Each
        # counts those of the alerts partitions it owns, so the workers' series sum to
        # the city's (counting them all, two workers showed every alert twice).
        n, mine = self.settings.partitions, self.ctx.owned_partitions("alerts")
        firing: Tally[tuple[str, str]] = Tally()
        for key, labels in self.ctx.firing.items():
            if key_partition(key, n) not in mine:
                continue
            cell = self.grid.cells.get(labels.get("grid_cell", ""))
            # A cell a reload removed: the alert fires on and its run is told to the
            # city's unit (streams.reload), so it is counted there. Counted at level ""
            # it had no series, and "Open alerts" read 18 with 24 firing (t210).
            firing[(labels.get("severity", ""), cell.level if cell else "city")] += 1
        for severity in ("minor", "major", "critical"):
            for level in LEVELS:
                self.metrics.alerts_open.labels(severity, level).set(firing[(severity, level)])
        # Every gauge above now counts the partitions this worker owns (t210).
        self.metrics.state_counted.set(1)

    def _count_held_tasks(self, now: float) -> None:
        """Set the held task messages' gauges (``tasks_held``, ``tasks_held_oldest``:
        ``kafka`` steps waiting in the outboxes of the groups this worker owns, for a task
        topic Kafka does not take, ``TasksHeld``) by playbook and task topic as the
        playbook names it, the age of the oldest from its step's time (``at``, epoch s).
        Every (playbook, topic) of the library in force reads 0 when none is held; a pair
        neither held nor in the library any more (a reload dropped it) loses its series.
        Before t178 only the warning, once a minute per topic, showed them."""
        count: Tally[tuple[str, str]] = Tally()
        oldest: dict[tuple[str, str], float] = {}
        for group in self.ctx.groups.data.values():
            if not group or not group.get(OUTBOX) or not group.get("run"):
                continue
            for cmd in group[OUTBOX]:
                if cmd.get("action") != "kafka":
                    continue
                data = cmd.get("data") or {}
                pair = (str(group["run"]["playbook"]), str(data.get("topic", "")))
                count[pair] += 1
                oldest[pair] = min(oldest.get(pair, now), float(cmd["at"]))
        pairs = {(n, t) for n, pb in self.ctx.playbooks.items() for t in pb.task_topics}
        pairs |= count.keys()
        for pair in self._task_series - pairs:
            self.metrics.tasks_held.remove(*pair)
            self.metrics.tasks_held_oldest.remove(*pair)
        for pair in pairs:
            self.metrics.tasks_held.labels(*pair).set(count[pair])
            age = max(0.0, now - oldest[pair]) if pair in oldest else 0.0
            self.metrics.tasks_held_oldest.labels(*pair).set(age)
        self._task_series = pairs

    def _count_held_offers(self, now: float) -> None:
        """Set the held report offers' gauges (``offers_held``, ``offers_held_oldest``):
        the offers the groups this worker owns hold for a run not yet open
        (``_hold_offer``), and how long the oldest has waited, from its offer's message
        time (``at``, epoch s; 0 when none). Before t193 nothing showed them: a run that
        never opened let each go unseen until its 5 minutes were up."""
        count, oldest = 0, now
        for group in self.ctx.groups.data.values():
            for held in (group or {}).get(HELD_OFFERS) or ():
                count += 1
                oldest = min(oldest, float(held["at"]))
        self.metrics.offers_held.set(count)
        self.metrics.offers_held_oldest.set(max(0.0, now - oldest))

    async def update_lag(self) -> None:
        """The consumer-lag gauge, on a timer of its own (``streams.app``): aiokafka's
        ``position`` waits, request timeout after request timeout, for a partition whose
        offset reset Kafka has not answered (a frozen broker), and here at the end of
        ``check_deadlines`` that wait held every run's deadlines with no word (t92).
        Skipped while rebalancing or recovering, as the deadlines are."""
        recovery = self.ctx.app.tables.recovery  # type: ignore[attr-defined]
        if self.ctx.app.rebalancing or not recovery.completed.is_set():
            return
        await self._update_lag()

    def _ended(self, group: dict[str, Any] | None, run: Run, now: float) -> bool:
        """Whether ``group`` (as stored, holding ``run``) has ended and may be forgotten:
        its run finished, every alert of it resolved, nothing of it still to send (an
        outbox, a closure call in flight), no muted alert waiting, and no change for
        ``CITYBRAIN_GROUP_RETENTION`` seconds (nor within a group_interval, so its last
        flush is past: Alertmanager deletes an aggregation group once it is empty and
        that flush is done, dispatch.go). Its alert ids, applied commands and superseded
        runs are forgotten with it; ``SEEN_SECONDS`` (a day) of them matter."""
        if group is None or not is_terminal(run) or unresolved(run):
            return False
        if (
            any(group.get(f) for f in (OUTBOX, "reply_calls", MUTED, UNDELIVERED, SAY))
            or self._holds(group, now)
            or self._forwarding(group, now)
        ):
            # An undelivered closure keeps its group until it is re-sent: forgotten, no
            # one could see or re-send it.
            return False
        last = max(run.updated_at, run.all_resolved_at or 0.0, run.last_notified_at or 0.0)
        interval = group["route"]["group_interval"]
        return bool(now - last >= max(self.settings.group_retention, interval))

    def _holds(self, group: dict[str, Any], now: float) -> bool:
        """Whether ``group`` holds an offer a run could still take: one of its offers
        held (message time) within ``HOLD_OFFER_SECONDS`` and ``CITYBRAIN_GROUP_RETENTION``
        of ``now`` (wall clock). The margin: a worker restarted after a long stop reads
        the offer's run opening again, whose message time is within the hold."""
        margin = HOLD_OFFER_SECONDS + self.settings.group_retention
        return any(h["at"] >= now - margin for h in group.get(HELD_OFFERS) or ())

    def _forwarding(self, group: dict[str, Any], now: float) -> bool:
        """Whether one of ``group``'s messages may be on its way to its old key's
        partition (``FORWARDS``): sent and not back, the last sent within
        ``CITYBRAIN_GROUP_RETENTION`` of ``now`` (one taken there never comes back)."""
        sent, back, at = forwards_of(group)
        return sent > back and now - at < self.settings.group_retention

    async def _forget_groups(self, ended: dict[bytes, dict[str, Any]]) -> None:
        """Forget the ended groups found by a deadline pass (``_ended``): each still as
        found (no message changed it since), deleted with a tombstone on the ``groups``
        changelog, so neither a restart nor a rebalance reads it back. First each
        partition's generation floor is raised to the highest generation forgotten there
        and its entry delivered: a crash between the two leaves a group to forget again,
        never a key whose next run takes an id already used. In chunks of
        ``FORGET_CHUNK``, each under its own hold of the runs lock, so routed alerts and
        commands are not kept waiting behind a whole pass's tombstones."""
        keys = list(ended)
        for start in range(0, len(keys), FORGET_CHUNK):
            chunk = {key: ended[key] for key in keys[start : start + FORGET_CHUNK]}
            async with self.ctx.runs_settled:
                await self._store_deferred()  # a routed batch's joins, with their steps
                if self.ctx.moving():
                    return  # the next pass forgets them, on whichever worker owns them
                self._forget_chunk(chunk)
                await self._forget_delivered(chunk)

    def _forget_chunk(self, chunk: dict[bytes, dict[str, Any]]) -> None:
        """Keep in ``chunk`` only the groups still as found (no message changed them)."""
        data = self.ctx.groups.data
        for key in [key for key, group in chunk.items() if data.get(key) is not group]:
            del chunk[key]

    async def _forget_delivered(self, chunk: dict[bytes, dict[str, Any]]) -> None:
        """Raise the generation floors for ``chunk`` (delivered), then tombstone it."""
        n = self.settings.partitions
        floors: dict[bytes, dict[str, Any]] = {}
        for key, group in chunk.items():
            at = self.ctx.generation_keys[key_partition(key, n)]
            generation = int(group.get("generation") or 0)
            floor = floors.get(at) or self.ctx.generations.data.get(at) or {"floor": 0}
            if generation > floor["floor"]:
                floors[at] = {"floor": generation}
        if floors:
            await self.ctx.generations.set_many_delivered(floors)
        # Their held offers expired with no run (``_holds``): a late one is said, stored
        # with its group first (``SAY``), then the tombstone. A crash before the
        # tombstone forgets the group again, whose ``SAID`` knows the records: sent
        # again from ``SAY`` if not yet out, never counted again (before t152 said
        # first, and said and counted again by the next pass).
        copies = {key: dict(group) for key, group in chunk.items() if group.get(HELD_OFFERS)}
        lost = [(key, h) for key, group in copies.items() for h in group[HELD_OFFERS]]
        said = self._offers_lost(lost, "expired", copies)
        if said:
            await self.ctx.groups.set_many({key: copies[key] for key in said})
            for key in said:
                await self._say(key)
        await self.ctx.groups.delete_many(list(chunk))
        for key in chunk:
            self._said_unreadable.discard(key)
            self._said_unreadable.discard(key + b"\x00cell")
        self.metrics.groups_forgotten.inc(len(chunk))

    def _answer_on_its_way(self, run: Run) -> bool:
        """Whether an operator's answer to the wait ``run`` is at (an ack, approval,
        rejection, resolve or cancel), taken by this worker's API before the wait's
        deadline, is still on its way (Kafka slow or frozen, t114): the deadline's ladder
        step then waits for it, for at most ``PENDING_COMMAND_SECONDS``, instead of
        telling the next level about a run acknowledged in time."""
        waits = {"waiting_ack": ANSWERS_TO_ACK, "waiting_approval": ANSWERS_TO_APPROVAL}
        answers = waits.get(run.status)
        if answers is None or run.deadline_at is None or not len(self.ctx.pending_commands):
            return False
        mono, wall = time.monotonic(), time.time()
        return any(
            c.action in answers and wall - (mono - c.at) <= run.deadline_at
            for c in self.ctx.pending_commands.pending(run.run_id, mono)
        )

    async def _check_run(
        self,
        key: bytes,
        group: dict[str, Any],
        run: Run,
        engine: PlaybookEngine,
        now: float,
        router: Router,
    ) -> Run:
        """One group's part of the deadline pass (under ``runs_settled``): closure and
        webhook calls made again, the first flush, escalation, SLA and repeat
        notifications, by ``engine`` and ``router`` (of one configuration, taken before
        its first await). Returns the run as it now stands."""
        if self.settings.replies_webhook_url:
            for reply_id, reply in (group.get("reply_calls") or {}).items():
                if reply_id not in self._called:
                    resent = int((group.get(RESENDS) or {}).get(reply_id, 0))
                    self._result_ids[reply_id] = result_id(reply_id, resent)
                    await self._reply_again(run.run_id, reply)
        if is_terminal(run):
            return run
        route = group["route"]
        if engine.is_due(run, now) or (
            engine.flush_due(run, route["group_interval"], route["repeat_interval"], now)
        ):
            # A flush asks the silences (_all_muted, which cannot await): the book is
            # read first in steps, so that 10,000 silences new to this worker are not
            # parsed there in one go, the worker frozen for seconds.
            await self.ctx.read_silences(now, report=False)
        # Waiting at a step the edited playbook no longer has: failed now, said in its
        # steps and counted (before t49: KeyError every tick, stuck for good).
        run, cmds = engine.fail_gone_step(run, now)
        # True when the run changed with nothing to say (a held flush's tick, a held
        # first flush's new deadline): stored all the same, so a held flush is not
        # checked again every second, and the next is at the group's next flush.
        quiet_change = False
        if engine.is_due(run, now) and self._answer_on_its_way(run):
            pass  # the ladder waits for it (bounded: PENDING_COMMAND_SECONDS)
        elif engine.is_due(run, now):
            first = run.status == "pending"  # the group's first flush
            if first and not unresolved(run) and not run.reports and run.all_resolved_at is None:
                # Every alert of it resolved, but an alert of the group came muted before
                # this flush (``_on_muted``): Alertmanager's group holds it and flushes
                # on, so the run waits for the group's next flush rather than being
                # withdrawn (t196: the alert, once freed, opened a run of its own,
                # notified off the group's flushes).
                flush = now + group["route"]["group_interval"]
                run, more = engine.hold(run, _MUTED_MEMBER, flush, now)
                cmds += more
                quiet_change = True
            elif first and not unresolved(run) and not run.reports:
                # Every alert's resolution seen (in the routed messages, not the
                # global firing table, which another worker may see late).
                run, more = engine.withdraw(run, _NONE_FIRING, now)
                cmds += more
            elif first and (held := self._all_muted(run, now, router, group["route"])):
                flush = now + group["route"]["group_interval"]
                run, more = engine.hold(run, held, flush, now)
                cmds += more
                quiet_change = True  # its new deadline, said or not
            else:
                run, more = engine.timeout(run, now)
                cmds += more
        run, more = engine.check_sla(run, now)
        cmds += more
        # Alerts left out of the last notification because they were muted then, no
        # longer muted: new to the group's next flush (t196), as Alertmanager's
        # notification log holds only the alerts it sent.
        if run.unflushed_resolved and self._log_cleared(run, now, router, route):
            quiet_change = True
        freed = self._freed(run, now, router)
        if freed:
            run = engine.rejoin(run, freed, now)
            quiet_change = True
        # The group's flush: alerts that joined since the last notification, or
        # the repeat of an unacknowledged run, at each group_interval tick; held, as
        # Alertmanager sends nothing, when every alert of it still firing is muted.
        interval, repeat = route["group_interval"], route["repeat_interval"]
        due = engine.flush_due(run, interval, repeat, now)
        muted: list[str] = []
        if due is not None and (held := self._all_muted(run, now, router, route)):
            run, more = engine.hold_flush(run, held, due[0], now)
            quiet_change = True
        elif (
            due is not None
            and (muted := self._muted_now(run, now, router))
            and engine.flush_due(run, interval, repeat, now, muted) is None
        ):
            # The flush was due only for alerts that joined and are muted now, the
            # others firing already notified: Alertmanager's MuteStage drops them before
            # its DedupStage finds every firing alert left in its notification log, so
            # nothing is sent (t202; before, citybrain notified the others again). They
            # stay to be notified at the first flush after they are freed.
            new = [a for a in run.unnotified if a in muted]
            why = "new alerts muted, the others notified: " + ", ".join(new[:5])
            run, more = engine.hold_flush(run, why, due[0], now)
            quiet_change = True
        else:
            run, more = engine.flush(run, interval, repeat, now, muted)
        cmds += more
        if any(c.action == "notify" for c in cmds):
            # Alertmanager's notification carries the group's firing alerts not muted at
            # the flush: the muted ones are left out of it, new once freed (t196; before,
            # an alert muted at the notification and freed after went out only with a
            # repeat, or never).
            muted = [a for a in self._muted_now(run, now, router) if a not in run.left_out]
            run.left_out = [*run.left_out, *muted]
        if cmds or quiet_change:
            await self.advance(key, {**group, "run": run.to_dict()}, run, cmds)
        pending = engine.pending_webhook(run)
        if pending is not None and pending[0] not in self._called:
            await self._call_again(run, *pending)
        return run

    def _log_cleared(self, run: Run, now: float, router: Router, route: dict[str, Any]) -> bool:
        """Whether the group's last flush by ``now`` emptied Alertmanager's notification
        log of its firing alerts (t202), which makes every alert of ``run`` new to the
        flushes after it (``left_out``); the resolutions that flush took are dropped
        from ``run.unflushed_resolved`` either way. Returns whether ``run`` changed.

        A flush keeps, after its mute stages, the alerts of the group not silenced or
        inhibited, resolved ones among them (those resolved since the flush before); when
        none of them fires but one resolved, ``DedupStage.needsUpdate`` passes it on
        because the last entry had firing alerts (``len(firing) == 0``), the webhook with
        ``send_resolved: false`` sends nothing, and the notification log's entry is
        written with no firing alert. Before, citybrain kept the last notification's
        alerts: one of them firing again went out only with a repeat (seed 37, timeline
        3: 15.5 s against Alertmanager's 13.5 s). A flush whose alerts are all muted (or
        its route time-muted) writes nothing."""
        last = run.last_notified_at
        interval = route["group_interval"]
        if last is None or is_terminal(run) or not interval > 0 or now < last:
            return False
        if run.first_flush_at is not None:
            return False  # a fresh group's: its first flush notifies (``join``)
        tick = last + ((now - last) // interval) * interval
        flushed = {a: v for a, v in run.unflushed_resolved.items() if v["at"] <= tick}
        if not flushed:
            return False
        run.unflushed_resolved = {
            a: v for a, v in run.unflushed_resolved.items() if a not in flushed
        }
        if tick <= last or self._time_muted(route, now, router):
            return True
        ended = set(run.ended_alerts)
        firing = [a for a in run.alerts if a not in ended and a.encode() in self.ctx.firing]
        if len(self._muted_now(run, now, router)) < len(firing):
            return True  # one fires unmuted: the usual flush (``flush_due``)
        unnotified = run.unnotified
        if all(a in run.left_out or a in unnotified for a in run.alerts):
            return True  # the log holds no firing alert of the run already
        silences = self.ctx.silence_book.read(
            self.ctx.stored_silences(), now, self.ctx.silences_version(), report=False
        )[0]
        if all(
            router.decide(v["labels"], self.ctx.firing_except(a.encode()), silences, now).mute
            is not None
            for a, v in flushed.items()
        ):
            return True  # every resolved alert muted too: the flush writes nothing
        run.left_out = list(dict.fromkeys([*run.left_out, *run.alerts]))
        return True

    def _time_muted(self, route: dict[str, Any], now: float, router: Router) -> str:
        """Why ``route`` (a group's stored route) sends nothing at ``now`` by its time
        intervals (``Router.time_muted``, in ``router``'s routing file), or ""."""
        mute, active = route.get("mute_time_intervals"), route.get("active_time_intervals")
        if not mute and not active:
            return ""
        why = router.time_muted(mute or (), active or (), now)
        return f"route {route.get('id')} is {why}" if why else ""

    def _muted_now(self, run: Run, now: float, router: Router) -> list[str]:
        """The alerts of ``run`` still firing and silenced or inhibited at ``now``."""
        ended = set(run.ended_alerts)
        firing = [a for a in run.alerts if a not in ended and a.encode() in self.ctx.firing]
        if not firing:
            return []
        silences = self.ctx.silence_book.read(
            self.ctx.stored_silences(), now, self.ctx.silences_version(), report=False
        )[0]
        muted = []
        for alert_id in firing:
            key = alert_id.encode()
            labels = self.ctx.firing.get(key)
            if labels is None:
                continue
            decision = router.decide(labels, self.ctx.firing_except(key), silences, now)
            if decision.mute is not None:
                muted.append(alert_id)
        return muted

    def _freed(self, run: Run, now: float, router: Router) -> list[str]:
        """The alerts of ``run.left_out`` (not in its last notification) firing again
        and not muted at ``now``: left out because they were muted then (those left out
        as resolved come back through ``engine.join``)."""
        if not run.left_out or run.last_notified_at is None or is_terminal(run):
            return []
        ended = set(run.ended_alerts)
        candidates = [a for a in run.left_out if a not in ended and a.encode() in self.ctx.firing]
        if not candidates:
            return []
        muted = set(self._muted_now(run, now, router))
        return [a for a in candidates if a not in muted]

    def _all_muted(
        self, run: Run, now: float, router: Router, route: dict[str, Any] | None = None
    ) -> str:
        """Why ``run``'s notification is held at a flush (its first, when group_wait
        ends, or a later one): its ``route`` is muted by its time intervals now (the
        whole group, firing or resolved, as Alertmanager's TimeMuteStage and
        TimeActiveStage drop the flush's notification), or every alert of it still
        firing is silenced or inhibited now (each with what mutes it), as Alertmanager
        applies silences and inhibition at every flush of a group, not when an alert
        arrives (a source alert or a silence that came after a target was routed mutes
        it); "" when one is not, or none fires."""
        if route is not None and (timed := self._time_muted(route, now, router)):
            return timed
        silences: list[Silence] | None = None
        muted = []
        for alert_id in run.alerts:
            key = alert_id.encode()
            labels = self.ctx.firing.get(key)
            if labels is None:
                continue  # resolved: in no notification
            if silences is None:  # an unreadable one is audited by the alerts stage:
                # kept for it (report=False); before, one this flush read first was never
                # audited or counted, the alerts stage finding it already read.
                stored = self.ctx.stored_silences()
                version = self.ctx.silences_version()
                silences = self.ctx.silence_book.read(stored, now, version, report=False)[0]
            firing = self.ctx.firing_except(key)
            decision = router.decide(labels, firing, silences, now)
            if decision.mute is None:
                return ""
            muted.append(f"{alert_id} {decision.mute} by {decision.muted_by}")
        more = f"; and {len(muted) - 5} more" if len(muted) > 5 else ""
        return "; ".join(muted[:5]) + more

    async def _send_kept(
        self,
        key: bytes,
        group: dict[str, Any],
        flush: Callable[[bytes, dict[str, Any]], Awaitable[dict[str, Any]]],
        what: str,
    ) -> tuple[dict[str, Any], str | None]:
        """``flush(key, group)``: send what the group keeps unsent (records or commands a
        stopped worker or a failed send left). Returns the group after it and None, or,
        when the send fails, the group as it was (kept, sent again next tick; the failure
        said by ``_unadvanced_run``) and why its run is held, ``what`` leading."""
        try:
            return await flush(key, group), None
        except Exception as exc:
            self._unadvanced_run(key, exc)
            return group, (
                f"{what} could not be sent ({type(exc).__name__}: {exc}); "
                "tried again at each deadline check"
            )

    def _unadvanced_run(self, key: bytes, exc: Exception) -> None:
        """Say (a WARNING, once a minute per cause: tried again each tick) that the
        deadline check could not advance a group's run."""
        group = key.decode(errors="replace")
        # One line a minute per cause, not per group: a broker away fails every run
        # alike (the held count says how many more).
        self._say_unadvanced(
            f"{type(exc).__name__}: {exc}",
            f"deadlines: the run of group {group} could not be advanced "
            f"({type(exc).__name__}: {exc}): it keeps its state, tried again next tick; "
            "the other runs' deadlines go on (counted in "
            'citybrain_loop_items_skipped_total{loop="deadlines"})',
        )

    def _engine_for(
        self, run: Run, engines: dict[str, PlaybookEngine] | None = None
    ) -> PlaybookEngine:
        """The engine of ``run``'s playbook; for a playbook no longer in the library, a
        stand-in with no steps, enough for what needs none (an alert joining or
        resolving, reports covered, a desk's resolve or cancel and their closures)."""
        engine = (self.engines if engines is None else engines).get(run.playbook)
        if engine is None:
            engine = self._stand_ins.get(run.playbook)
        if engine is None:
            gone = Playbook.model_construct(
                playbook=run.playbook, version=1, department=run.department, steps=[]
            )
            engine = PlaybookEngine(gone, self.grid, self.settings.ack_deadline_seconds)
            self._stand_ins[run.playbook] = engine
        return engine

    async def _playbook_gone(self, key: bytes, run: Run) -> None:
        """An open run whose playbook the library no longer has (removed between
        restarts): held as it is (restoring the playbook resumes it; a desk may resolve
        or cancel it), said, audited (``run_playbook_gone``) and counted
        (``citybrain_playbook_runs_stale_total{reason="playbook_gone"}``) once per group
        and worker start; the deadline check skips it."""
        if key in self._said_unreadable:
            return
        self._said_unreadable.add(key)
        why = (
            f"no playbook {run.playbook!r} in the library): it keeps its state; restore its "
            "playbook to act on it, or resolve or cancel it"
        )
        log.warning(
            "citybrain: deadlines: the run of group %s is skipped (%s; audited as "
            "run_playbook_gone",
            key.decode(errors="replace"),
            why,
        )
        await self._stale(run, "playbook_gone", f"skipped by the deadline check ({why}")

    async def _cell_gone(self, key: bytes, run: Run, engine: PlaybookEngine) -> None:
        """An open run whose grid cell the grid no longer has (the grid file edited
        between restarts): it goes on, its units the city's (``PlaybookEngine.unit``);
        said, audited (``run_cell_gone``) and counted
        (``citybrain_playbook_runs_stale_total{reason="cell_gone"}``) once per group and
        worker start."""
        said = key + b"\x00cell"
        if said in self._said_unreadable:
            return
        self._said_unreadable.add(said)
        unit = engine.unit(run, run.level)
        why = (
            f"grid cell {run.grid_cell!r} of run {run.run_id} is no longer in the grid: the "
            f"run goes on, its notifications and escalations to {unit or 'no unit'} (the "
            "city's)"
        )
        log.warning("citybrain: deadlines: %s; audited as run_cell_gone", why)
        await self._stale(run, "cell_gone", why)

    def grid_changed(self, grid: Grid) -> None:
        """A reload put ``grid`` in force (``streams.reload``; the engines it brings are
        built on it): the stand-in engines of gone playbooks are built again on it, and
        a run whose cell is gone is said again (a cell removed, restored and removed
        again is news each time)."""
        self.grid = grid
        self._stand_ins.clear()
        self._said_unreadable = {k for k in self._said_unreadable if not k.endswith(b"\x00cell")}

    async def _stale(self, run: Run, reason: str, detail: str) -> None:
        """Count a run of an edited library (``citybrain_playbook_runs_stale_total``) and
        audit it as ``run_<reason>``, by citybrain."""
        self.metrics.runs_stale.labels(reason).inc()
        await self.ctx.audit(
            {
                "action": f"run_{reason}",
                "run_id": run.run_id,
                "at": time.time(),
                "actor": "citybrain",
                "detail": detail,
            }
        )

    def _unreadable_run(self, key: bytes, exc: Exception) -> None:
        """Say once per group (a WARNING) that its run is skipped by the deadline check."""
        if key in self._said_unreadable:
            return
        self._said_unreadable.add(key)
        why = f"no playbook {exc} in the library" if isinstance(exc, KeyError) else repr(exc)
        log.warning(
            "citybrain: deadlines: the run of group %s is skipped (%s): it keeps "
            "its state; restore its playbook to act on it",
            key.decode(errors="replace"),
            why,
        )

    async def _update_lag(self) -> None:
        """Consumer lag per source topic (one an agent consumes): high watermark minus
        position, over this worker's partitions (faust's own end-offset gauges stay empty
        with aiokafka). The tables' changelogs and faust's ``__assignor-__leader`` are
        assigned too but never read past recovery: their "lag" read 176 at rest (trial 9)."""
        consumer = self.ctx.app.consumer
        sources = source_topics(self.ctx.app)
        lag: Tally[str] = Tally()
        assignment = [tp for tp in consumer.assignment() if tp.topic in sources]
        # A topic none of whose partitions is this worker's any more: its series goes
        # (left, it showed the lag of the rebalance for ever under sum()).
        for topic in self._lag_topics - {tp.topic for tp in assignment}:
            self.metrics.consumer_lag.remove(topic)
            self._lag_topics.discard(topic)
        for tp in assignment:
            try:
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
            except Exception:  # not yet known right after a rebalance
                continue
            if position is not None and highwater is not None:
                lag[tp.topic] += max(0, highwater - position)
        for topic, value in lag.items():
            self.metrics.consumer_lag.labels(topic).set(value)
            self._lag_topics.add(topic)

    async def advance(
        self, key: bytes, group: dict[str, Any], run: Run, commands: list[Command]
    ) -> None:
        """Store the run's new ``group`` state with ``commands`` as its outbox (delivery
        awaited), carry the commands out, then store the state without the outbox.

        A crash before every output is out leaves the change stored with its outbox,
        which the run's next touch sends again (same ids, same content) before any other
        change: another change can no longer be applied to the state before this one and
        reuse its step ids (t49). An outbox too large for one message beside the state
        keeps the order before t49: outputs first, then the state. Raises
        ``RunTooLarge`` before anything is sent when the state alone would not fit.
        """
        if self.settings.replies_webhook_url and any(c.action == "reply" for c in commands):
            # Closure webhook calls are made in the background: kept with the run until
            # their outcome comes back on ``commands``, so one a SIGKILL cut is made again
            # by the run's next owner (trial 15: 1 of 96 closures never reached the
            # webhook in each of two restart storms; the topic had it).
            calls = dict(group.get("reply_calls") or {})
            calls.update((c.id, reply_document(run, c)) for c in commands if c.action == "reply")
            group = {**group, "reply_calls": calls}
        # Checked before anything goes out: a state the changelog cannot hold, found
        # after the steps were sent, left them on Kafka with the run unchanged (trial 8).
        size = len(self.ctx.groups.encode(group))
        if size > MAX_MESSAGE_BYTES:
            raise RunTooLarge(
                f"run {run.run_id}'s state would be {size:,} bytes, more than one Kafka "
                f"message holds ({MAX_MESSAGE_BYTES:,}): nothing of this change was sent"
            )
        # Task messages an earlier change holds (``TasksHeld``) go out with this one's.
        held = [Command(**cmd) for cmd in group.get(OUTBOX) or []]
        group = {k: v for k, v in group.items() if k != OUTBOX}
        staged = {**group, OUTBOX: [c.to_dict() for c in [*held, *commands]]}
        stored = self.ctx.storing_runs.setdefault(run.run_id, asyncio.Event())
        try:
            entry = self.ctx.groups.encode(staged) if commands else None
            if entry is not None and len(entry) <= MAX_MESSAGE_BYTES:
                # The new state with its outbox on the changelog first: a crash before
                # every output is out leaves a state that re-sends the same outputs
                # (``_flush_outbox``), never one from which another change could reuse
                # their ids (t49: an ack applied after a restart, before the timeout
                # whose steps were out, took the timeout's step ids).
                # Written as measured: no await since (each entry encoded once, t103).
                await self.ctx.groups.set_many_delivered({key: staged}, {key: entry})
                self._count(run, commands)
                await self._emit_holding(key, group, run, [*held, *commands])
            else:
                # An outbox too large for one message (a resolution closing hundreds of
                # reports): the steps first, then the state (a crash in between re-applies
                # the change; docs/operations.md, delivery guarantees).
                await self._emit_holding(key, group, run, [*held, *commands])
                self._count(run, commands)
        finally:
            stored.set()
            if self.ctx.storing_runs.get(run.run_id) is stored:
                del self.ctx.storing_runs[run.run_id]

    def _count(self, run: Run, commands: list[Command]) -> None:
        """The KPIs of a change, counted once its state is stored: a change whose store
        failed is made again (the deadline timer's next tick, or a redelivery after a
        crash) and counted then (before t49, at each try)."""
        for cmd in commands:
            self._kpis(run, cmd)

    async def _flush_outbox(self, key: bytes, group: dict[str, Any]) -> dict[str, Any]:
        """``group`` with its outbox sent: the outputs of its last change, stored with it
        and not yet known to be out (a worker stopped, or a send failed, before they
        were). Sent again under the same ids, with the same content, before anything
        else changes the run; returns the group without the outbox (as stored)."""
        outbox = group.get(OUTBOX)
        if not outbox:
            return group
        clean = {k: v for k, v in group.items() if k != OUTBOX}
        run = Run.from_dict(group["run"])
        commands = [Command(**cmd) for cmd in outbox]
        if self._tasks_refused(commands):
            return group  # task messages held for their topic (``TasksHeld``), as they were
        log.info(
            "citybrain: run %s: sending again the %d outputs of its last change (%s to %s), "
            "stored before a stop or failed send left them unconfirmed",
            run.run_id,
            len(commands),
            commands[0].id,
            commands[-1].id,
        )
        return await self._emit_holding(key, clean, run, commands)

    async def _emit_holding(
        self, key: bytes, group: dict[str, Any], run: Run, commands: list[Command]
    ) -> dict[str, Any]:
        """``emit`` the commands, then store ``group`` (without an outbox) as sent; or,
        when task messages of them are held (``TasksHeld``: their topic cannot be
        written), store it with those in its outbox, said once a minute per topic.
        Returns the group as stored."""
        try:
            await self.emit(run, commands)
        except TasksHeld as exc:
            group = {**group, OUTBOX: [c.to_dict() for c in exc.commands]}
            self.warn_task_topic(exc.reason.topic, str(exc))
        await self.ctx.groups.set_many({key: group})
        return group

    def _tasks_refused(self, commands: list[Command]) -> bool:
        """Whether every one of ``commands`` is a task message whose topic is refused
        at once now (``_send_task``): sending them again would change nothing."""
        now = time.monotonic()
        return all(
            cmd.action == "kafka"
            and now - self._missing_task_topics.get(self.settings.topic(cmd.data["topic"]), -1e18)
            < TASK_TOPIC_RETRY
            for cmd in commands
        )

    async def emit(self, run: Run, commands: list[Command]) -> None:
        """Carry out the engine's commands: step, audit and task messages (queued
        together, delivery awaited), webhooks (in the background); ``advance`` counts
        their KPIs once the run's state is stored."""
        steps: list[tuple[str, Any]] = []
        audit: list[tuple[str, Any]] = []
        tasks: list[tuple[Command, tuple[str, str, Any]]] = []
        replies: list[dict[str, Any]] = []
        for cmd in commands:
            body = {"schema": "step/1", "playbook": run.playbook, **cmd.to_dict()}
            (audit if cmd.action in AUDITED else steps).append((run.alert_id, body))
            if cmd.action == "reply":
                replies.append(reply_document(run, cmd))
            if cmd.action == "kafka":
                tasks.append(
                    (
                        cmd,
                        (self.settings.topic(cmd.data["topic"]), run.run_id, cmd.data["message"]),
                    )
                )
        # Task messages first, each queued within its bound (``_send_task``): a kafka
        # step whose topic cannot be written is held (``TasksHeld``, raised once the
        # other outputs are out), its step record with it, so the run's outbox holds
        # it alone and sending it again repeats nothing else.
        futures: list[Awaitable[Any]] = []
        held: list[Command] = []
        reason: TaskTopicUnavailable | None = None
        for cmd, (topic, key, message) in tasks:
            try:
                futures.append(await self._send_task(run, topic, key, message))
            except TaskTopicUnavailable as exc:
                held.append(cmd)
                reason = reason or exc
        if held:
            steps = [(k, body) for k, body in steps if body["id"] not in {c.id for c in held}]
        futures += [
            *await self.ctx.queue(self.ctx.steps, steps),
            *await self.ctx.queue(self.ctx.audit_topic, audit),
        ]
        futures += await self.ctx.queue(self.ctx.replies, [(r["report_id"], r) for r in replies])
        for reply in replies if self.settings.replies_webhook_url else []:
            url = str(self.settings.replies_webhook_url)
            self._remember_call(reply["reply_id"])
            refused = self.webhooks.refusal(url)
            if refused is not None or not self.webhooks.submit(reply["reply_id"], url, reply):
                # The topic has the closure; the webhook call failed at once, and said so:
                # its failed outcome makes it an undelivered closure (``_on_command``), to
                # be re-sent by an operator.
                refused = refused or "too many webhook calls in flight"
                outcome = WebhookOutcome(reply["reply_id"], url, False, 0, refused, 0.0)
                await self.on_webhook_outcome(outcome)
                self.warn_webhook(
                    f"{url} dropped",
                    f"closure (reply) webhook to {url} dropped for report "
                    f"{reply['report_id']}: {refused} (the "
                    "replies topic has it); audited as reply_webhook_dropped",
                )
                await self.ctx.audit(
                    {
                        # The closure emitted again after a crash drops again: one id.
                        "id": f"{reply['reply_id']}:webhook_dropped",
                        "action": "reply_webhook_dropped",
                        **call_ids(reply["reply_id"], url, reply),
                        "run_id": run.run_id,
                        "at": time.time(),
                        "actor": "citybrain",
                        "detail": f"{reply['report_id']}: {refused}",
                    }
                )
        for fut in futures:
            await fut
        for cmd in commands:
            if self.ctx.annotator is not None and cmd.action in (
                "run_created",
                "resolved",
                "cancelled",
                "failed",
            ):
                tags = ["citybrain", "run", run.playbook, run.kind]
                text = f"{run.playbook} run at {run.grid_cell}: {cmd.action}"
                if cmd.action == "run_created":
                    self.ctx.annotator.open_region(run.run_id, text, tags, int(cmd.at * 1000))
                else:
                    self.ctx.annotator.close_region(
                        run.run_id, text, tags, int(run.created_at * 1000), int(cmd.at * 1000)
                    )
            if cmd.action == "annotate" and self.ctx.annotator is not None:
                tags = ["citybrain", run.playbook, run.kind, run.run_id]
                text = f"{run.playbook}: {cmd.detail}"
                accepted = self.ctx.annotator.submit(cmd.id, text, tags, int(cmd.at * 1000))
                self.metrics.annotations.labels("sent" if accepted else "dropped").inc()
            if cmd.action == "webhook":
                await self._call_webhook(run, cmd.id, cmd.data["url"])
        if reason is not None:
            raise TasksHeld(held, reason)

    async def _send_task(self, run: Run, topic: str, key: str, message: Any) -> Awaitable[Any]:
        """Queue a ``kafka`` step's task ``message`` (JSON) on ``topic`` (prefixed),
        keyed ``key`` (the run id); returns its delivery future. Raises
        ``TaskTopicUnavailable`` naming the topic and the run when it is not queued
        within ``TASK_TOPIC_WAIT`` seconds, and at once for ``TASK_TOPIC_RETRY``
        seconds after that (nothing of it queued)."""
        now = time.monotonic()
        missing_since = self._missing_task_topics.get(topic)
        if missing_since is not None and now - missing_since < TASK_TOPIC_RETRY:
            raise TaskTopicUnavailable(self._task_topic_missing(run, topic, again=True), topic)
        task_topic = self.ctx.app.topic(topic, key_serializer="raw", value_serializer="raw")
        try:
            async with asyncio.timeout(TASK_TOPIC_WAIT):
                sent = await task_topic.send(key=key.encode(), value=orjson.dumps(message))
        except TimeoutError:
            # Cancelled while the producer waited for the topic's metadata (or for
            # room in its buffer): nothing of the message was queued.
            self._missing_task_topics[topic] = time.monotonic()
            raise TaskTopicUnavailable(self._task_topic_missing(run, topic), topic) from None
        self._missing_task_topics.pop(topic, None)
        return sent

    def _task_topic_missing(self, run: Run, topic: str, again: bool = False) -> str:
        """Why ``run``'s task message for ``topic`` was not sent (``_send_task``)."""
        when = (
            f"one was not queued within {TASK_TOPIC_WAIT:g} s less than "
            f"{TASK_TOPIC_RETRY:g} s ago, asked again {TASK_TOPIC_RETRY:g} s after it"
            if again
            else f"not queued within {TASK_TOPIC_WAIT:g} s"
        )
        return (
            f"run {run.run_id} ({run.playbook}): its kafka step's task topic {topic} "
            f"cannot be written ({when}): Kafka has no such topic and does not create "
            "it (auto-creation off, or a name that collides with another topic's but "
            "for '.' and '_'), or is not taking messages; the step waits in the run's "
            "outbox and is sent once the topic is there (create it; citybrain stack up "
            "creates the playbooks' task topics), the run's other steps and the other "
            "runs go on"
        )

    async def _call_webhook(self, run: Run, command_id: str, url: str) -> None:
        """Make a webhook step's call in the background (its outcome comes back as an
        ``action_result`` command), under ``command_id``, the receiver's ``delivery``."""
        self._remember_call(command_id)
        payload = {
            "run_id": run.run_id,
            "alert_id": run.alert_id,
            "kind": run.kind,
            "grid_cell": run.grid_cell,
            "playbook": run.playbook,
            "labels": run.labels,
            "delivery": command_id,
        }
        await self._submit(command_id, url, payload)

    async def _submit(self, command_id: str, url: str, payload: dict[str, Any]) -> None:
        """Hand a call to the executor; one it refuses (too many in flight, in all or to
        that receiver) fails at once, naming the bound, rather than waiting in a queue."""
        refused = self.webhooks.refusal(url)
        if refused is None and self.webhooks.submit(command_id, url, payload):
            self._calling[command_id] = call_ids(command_id, url, payload)
            return
        detail = refused or "too many webhook calls in flight"
        await self.on_webhook_outcome(WebhookOutcome(command_id, url, False, 0, detail, 0.0))

    def _given_up(self, run_id: str, cmd: dict[str, Any], reply: Any) -> dict[str, Any]:
        """A closure webhook call that failed after its retries: its audit record
        (``reply_webhook_failed``, id ``<outcome id>:given_up``, for the group's ``SAY``;
        counted in ``citybrain_closures_given_up_total`` once out) and a WARNING naming
        the report and why. Before, only its attempts were audited: the run is resolved,
        so the engine ignores the outcome, and nothing said the closure was given up (the
        replies topic has it)."""
        report = reply.get("report_id", "?") if isinstance(reply, dict) else "?"
        url = str(self.settings.replies_webhook_url)
        why = str(cmd.get("detail") or "failed")[:300]
        # Its own key: under the attempts' (one line per URL a minute) a give-up, which
        # an operator must act on, was never logged (t119: ten closures, no line).
        self.warn_webhook(
            f"{url} given up",
            f"closure (reply) webhook to {url} for report {report} given up: {why} (the "
            "replies topic has it); audited as reply_webhook_failed",
        )
        return {
            "id": f"{cmd['id']}:given_up",
            "action": "reply_webhook_failed",
            **call_ids(str(cmd["command_id"]), url, reply if isinstance(reply, dict) else {}),
            "run_id": run_id,
            "at": time.time(),
            "actor": "citybrain",
            "detail": f"{cmd['command_id']} for report {report} to {url}: {why}; given up "
            "(the replies topic has the closure)",
        }

    async def _resend_closures(
        self,
        key: bytes,
        group: dict[str, Any] | None,
        run_id: str,
        cmd: dict[str, Any],
        event: EventT[bytes],
    ) -> None:
        """An operator's ``resend_closures`` command: the run's undelivered closures go back
        to the group's calls in flight (stored, delivery awaited) and are called again under
        their reply ids (``X-Citybrain-Delivery``, which receivers dedupe by); audited
        ``closures_resent``. Idempotent: with none undelivered (all re-sent, or a redelivered
        command) nothing is sent, and one for a run its group never had
        (``run_ever_issued``) is dead-lettered ``unknown_run``; a worker stopped after the
        store makes them again as any call in flight (``_reply_again``). Without
        ``CITYBRAIN_REPLIES_WEBHOOK_URL`` the command is refused (audited
        ``command_refused``) and the closures stay undelivered."""
        mine = undelivered_of(group, run_id)
        by, now = str(cmd.get("by") or "unknown"), time.time()
        if not mine and not run_ever_issued(group, run_id):
            # A run its group never had (a producer's command on the topic; the API
            # answers 404 for it): consumed with nothing said before t211, where every
            # other action is dead-lettered so.
            await self.ctx.dead_letter("commands", event, "unknown_run", f"no run {run_id}")
            return
        if group is None or not mine:
            return  # nothing undelivered: delivered, or re-sent already
        url = self.settings.replies_webhook_url
        if not url:
            await self.ctx.audit(
                {
                    "id": f"{cmd.get('id')}:refused",
                    "action": "command_refused",
                    "run_id": run_id,
                    "at": now,
                    "actor": by,
                    "detail": "CITYBRAIN_REPLIES_WEBHOOK_URL is not set: the closures stay "
                    "undelivered",
                    "command": "resend",
                }
            )
            return
        calls = {**(group.get("reply_calls") or {}), **{r: e["reply"] for r, e in mine.items()}}
        left = {r: e for r, e in (group.get(UNDELIVERED) or {}).items() if r not in mine}
        # Each re-send a call of its own, its outcome an id of its own (``result_id``).
        resends = dict(group.get(RESENDS) or {})
        resends |= {r: int(resends.get(r, 0)) + 1 for r in mine}
        reports = ", ".join(str(e["reply"].get("report_id")) for e in mine.values())
        # Its record stored with the change (``SAY``) and sent after (t152: sent after
        # the store alone, lost to a kill in between: the command read again finds
        # nothing undelivered and says nothing).
        record = {
            "id": f"{cmd['id']}:closures_resent",
            "action": "closures_resent",
            "run_id": run_id,
            "at": now,
            "actor": by,
            "detail": f"{len(mine)} closure(s) re-sent to {url} (reports {reports})",
        }
        said = [*(group.get(SAY) or []), record]
        await self.ctx.groups.set_many_delivered(
            {
                key: {
                    **group,
                    "reply_calls": calls,
                    UNDELIVERED: left,
                    RESENDS: resends,
                    SAY: said,
                }
            }
        )
        await self._flush_said(key, self.ctx.groups.data[key])
        for reply_id, entry in mine.items():
            self._remember_call(reply_id)
            self._result_ids[reply_id] = result_id(reply_id, resends[reply_id])
            await self._submit(reply_id, str(url), entry["reply"])

    def _remember_call(self, command_id: str) -> None:
        self._called[command_id] = None
        self._called.move_to_end(command_id)  # made again: the newest, not evicted first
        while len(self._called) > CALLS_REMEMBERED:
            self._called.popitem(last=False)

    async def _reply_again(self, run_id: str, reply: dict[str, Any]) -> None:
        """A closure whose webhook call was made by a worker that stopped before its
        outcome came back (or that gave up the run): made again under the same
        ``X-Citybrain-Delivery`` (the reply id), which receivers dedupe by."""
        url = str(self.settings.replies_webhook_url)
        reply_id = str(reply.get("reply_id"))
        self._remember_call(reply_id)
        log.info(
            "citybrain: closure webhook %s of run %s made again: its first call was made by "
            "a worker that stopped (or gave up the run) before its outcome came back",
            reply_id,
            run_id,
        )
        await self.ctx.audit(
            {
                "action": "webhook_called_again",
                **call_ids(reply_id, url, {**reply, "run_id": run_id}),
                "at": time.time(),
                "actor": "citybrain",
                "detail": f"{reply_id} to {url}: its first call was on another worker",
            }
        )
        await self._submit(reply_id, url, reply)

    async def _call_again(self, run: Run, command_id: str, url: str) -> None:
        """A run this worker owns waits for a webhook call it never made: the worker that
        made it stopped (SIGKILL, a crash) with the call and its retries in memory, or
        still makes it (a rebalance). Made again under the same delivery id, which
        receivers dedupe by; a second outcome is ignored (its command id repeats)."""
        log.info(
            "citybrain: webhook %s of run %s made again: the run waits for it and this "
            "worker did not make it (it was made by a worker that stopped, or gave up the run)",
            command_id,
            run.run_id,
        )
        ids = {"run_id": run.run_id, "alert_id": run.alert_id}
        await self.ctx.audit(
            {
                "action": "webhook_called_again",
                **call_ids(command_id, url, ids),
                "at": time.time(),
                "actor": "citybrain",
                "detail": f"{command_id} to {url}: its first call was on another worker",
            }
        )
        await self._call_webhook(run, command_id, url)

    def _known_run(self, run: Run, department: str) -> None:
        """Make the series ``run`` observes late in its life (time to acknowledge and to
        resolve, a campaign reopening) at zero now, so its observation is counted by
        ``increase()``: for a run of a citizen playbook in another department than the
        playbook's, or one this worker holds since a start or rebalance, they were born
        at their first observation, which ``increase()`` never sees."""
        pair = (run.playbook, department)
        if pair not in self._outcome_series:
            self._outcome_series.add(pair)
            initialise_run_outcomes(self.metrics, run.playbook, department, LEVELS)

    def _kpis(self, run: Run, cmd: Command) -> None:
        m = self.metrics
        department = self.ctx.label_department(run.department)
        self._known_run(run, department)
        count_campaign(m, run, cmd, department)
        if cmd.action == "run_created":
            m.runs.labels(run.playbook, department).inc()
        elif cmd.action == "failed" and cmd.data.get("gone") == "step":
            m.runs_stale.labels("step_gone").inc()
        elif cmd.action == "escalate":
            m.escalations.labels(run.playbook, cmd.level or "").inc()
        elif cmd.action == "acknowledged":
            # At the level it was given (cmd.level), not the one the ladder took the run
            # to while it was queued (t114).
            given = cmd.level or run.level
            m.acks.labels(run.playbook, given).inc()
            # The first acknowledgement only, as the campaign report's time to
            # acknowledge: a reopened run's next one, measured from its creation, made
            # the histogram's MTTA longer than the report's (trial 22).
            if sum(1 for a in run.actions if a.get("action") == "ack") <= 1:
                m.time_to_ack.labels(run.playbook, given, department).observe(
                    max(0.0, cmd.at - run.created_at)
                )
        elif cmd.action == "resolved":
            m.runs_resolved.labels(run.playbook, department).inc()
            m.time_to_resolve.labels(run.playbook, department).observe(
                max(0.0, cmd.at - run.created_at)
            )
        elif cmd.action == "sla_breach":
            m.sla_breaches.labels(run.playbook, department).inc()

    # -- webhooks (called by the executor, off the stream) ---------------------------
    async def on_webhook_outcome(self, outcome: WebhookOutcome) -> None:
        run_id = outcome.command_id.rsplit(":", 1)[0]
        self._calling.pop(outcome.command_id, None)
        self.metrics.webhook_calls.labels("ok" if outcome.ok else "failed").inc()
        self.metrics.webhook_seconds.observe(outcome.seconds)
        # A re-sent closure's call answers under its own id; any other call as its first.
        made = self._result_ids.pop(outcome.command_id, None)
        body = {
            "id": made or result_id(outcome.command_id),
            "run_id": run_id,
            "action": "action_result",
            "command_id": outcome.command_id,
            "ok": outcome.ok,
            "detail": f"{outcome.detail} after {outcome.attempts} attempt(s)",
            "by": "citybrain",
            "at": time.time(),
        }
        await self.ctx.commands.send(key=run_key(run_id), value=orjson.dumps(body))

    async def on_webhook_attempt(
        self, command_id: str, url: str, attempt: int, detail: str
    ) -> None:
        self.metrics.webhook_failed_attempts.inc()
        replies = self.settings.replies_webhook_url
        what = "closure (reply) webhook" if replies and url == str(replies) else "webhook"
        # Attempts are counted in webhook_failed_attempts_total; calls_total{outcome=
        # "failed"} counts only calls given up (t119: the line named that one).
        self.warn_webhook(
            url,
            f"{what} call to {url} failed (attempt {attempt}, run "
            f"{command_id.rsplit(':', 1)[0]}): {detail}; audited as webhook_attempt_failed, "
            "counted in citybrain_webhook_failed_attempts_total",
        )
        ids = self._calling.get(command_id) or call_ids(
            command_id, url, {"run_id": command_id.rsplit(":", 1)[0]}
        )
        await self.ctx.audit(
            {
                "action": "webhook_attempt_failed",
                **ids,
                "attempt": attempt,
                "at": time.time(),
                "actor": "citybrain",
                "detail": f"{url}: attempt {attempt}: {detail}",
            }
        )


def call_ids(command_id: str, url: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a webhook call's audit records carry to follow it (t173: its attempts and
    calls made again named the run alone): ``command_id`` (the receiver's
    ``X-Citybrain-Delivery``), ``run_id`` and ``alert_id`` (the run's first alert) from
    ``payload`` (a step's call or a closure), ``report_id`` for a closure, and
    ``receiver`` (``scheme://host:port`` of ``url``, the unit the executor bounds calls
    by). Only the fields ``payload`` has as text."""
    ids: dict[str, Any] = {"command_id": command_id}
    for field in ("run_id", "alert_id", "report_id"):
        if isinstance(payload.get(field), str):
            ids[field] = payload[field]
    ids["receiver"] = receiver(url)
    return ids


def source_topics(app: AppT) -> frozenset[str]:
    """The topics ``app``'s agents consume (its sources), by name: not the tables'
    changelogs nor faust's internal topics, which are assigned to the consumer as well."""
    return frozenset(
        name
        for agent in app.agents.values()
        for name in getattr(agent.channel, "topics", ())
        if isinstance(name, str)
    )
