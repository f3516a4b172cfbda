"""The pure playbook engine: every method takes a run and the time, and returns the
updated run and the commands the host must carry out.

No I/O and no clock. Runs and commands are plain data that fit in a faust table and on a
Kafka topic. Command ids are deterministic (run id + sequence number), so a host that
redoes a step after a crash produces the same ids and consumers can drop the repeat.
Every status change is returned as a ``transition`` command: the audit trail.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from playbooks.errors import BadEventError, ForbiddenActionError
from playbooks.grid import LEVELS, PARENT_LEVEL, Grid
from playbooks.machine import (
    TERMINAL,
    ReplyEvent,
    ReplyStatus,
    RunEvent,
    RunStatus,
    next_reply_status,
    next_status,
)
from playbooks.schema import (
    AnnotateStep,
    ApprovalStep,
    DispatchStep,
    EscalateStep,
    KafkaStep,
    NotifyStep,
    ParallelStep,
    Playbook,
    ResolveStep,
    WaitAckStep,
    WebhookStep,
    fill,
    parse_duration,
)

SYSTEM = "citybrain"
MAX_REPORTS = 500  # reports one run remembers (a burst is tens; a bound keeps state small)
MAX_COMMENT = 1000  # characters of a reporter's comment that are kept
# Characters of an operator's note (ack, resolve, cancel, ...) or a silence's reason: a
# run keeps MAX_ACTIONS notes, and its state must stay one Kafka message (trial 8: two
# 600 kB notes made a 1.8 MB run, which failed after its steps had gone out).
MAX_NOTE = 2000
MAX_ACTIONS = 100  # operator actions one run remembers (newest kept)
MAX_RUN_ALERTS = 100  # alert ids one run remembers (``alerts``, ``ended_alerts``; newest kept)
_FAIL = "\x00fail"  # sentinel next-step: fail the run


@dataclass(frozen=True, slots=True)
class Command:
    """One thing the host must do, recorded as a step or audit event."""

    id: str
    run_id: str
    alert_id: str
    action: str
    at: float
    level: str | None = None
    unit: str | None = None
    detail: str = ""
    actor: str = SYSTEM
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class Run:
    run_id: str
    alert_id: str
    playbook: str
    grid_cell: str
    kind: str
    department: str
    labels: dict[str, str] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    status: str = RunStatus.PENDING.value
    step: str | None = None
    level: str = "community"
    deadline_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    resolved_at: float | None = None
    escalations: int = 0
    seq: int = 0
    sla_deadline_at: float | None = None
    sla_breached: bool = False
    pending_action: str | None = None
    last_notified_at: float | None = None
    # Alerts that joined after the last notification and are not yet in one: alert id ->
    # when it joined (epoch s); the next group flush (``flush``) notifies them.
    unnotified: dict[str, float] = field(default_factory=dict)
    # Alerts that joined since the last notification beyond ``unnotified``'s bound
    # (``MAX_RUN_ALERTS``, oldest dropped): counted, so the next notification's "and N
    # more" tells how many joined (t178: 3,000 joining one group said "and 95 more").
    unnotified_beyond: int = 0
    # Why the run's notification is held (every alert of it still firing muted when its
    # group_wait ended, or at a later flush), as last said in a ``notification_held``
    # step; "" when not held.
    held: str = ""
    # The last flush tick (epoch s) at which a started run's notification was held
    # (``hold_flush``): that tick is not checked again, the next one is.
    held_tick: float | None = None
    # The alerts of ``alerts`` whose resolution the run has seen (``alert_resolved``).
    ended_alerts: list[str] = field(default_factory=list)
    # When the last of its alerts resolved (epoch s; None while one fires): the group's
    # next flush empties it (``group_phase``).
    all_resolved_at: float | None = None
    # The alerts of the run not in its last notification (Alertmanager's notification
    # log holds the firing alerts it sent): resolved by then (``ended_alerts`` then), or
    # muted then (the response stage adds those); one of them firing again, or freed,
    # is new to the group's next flush (``join``, ``rejoin``); one that resolved after
    # it and fires again before the next flush is not (only a repeat sends it).
    left_out: list[str] = field(default_factory=list)
    # Alerts of the run that resolved after its last notification, not yet past a flush
    # of its group: alert id -> {"at": epoch s it resolved, "labels": its labels}. In
    # Alertmanager a resolved alert stays in its group until the next flush; a flush
    # that finds no alert of the group firing and not muted but one of those resolved
    # and not muted writes a notification log entry with no firing alert (``notify.go``,
    # ``DedupStage.needsUpdate``: ``len(firing) == 0`` and the last entry had some), so
    # every alert of the run firing after it is new (t202; the response stage's
    # ``_log_cleared``).
    unflushed_resolved: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The first flush (epoch s) of the fresh group an alert started by joining the run
    # after its group emptied (``join``); None otherwise.
    first_flush_at: float | None = None
    # Citizen reports the run covers: report id -> {"channel", "status"} (ReplyStatus),
    # and "also": the report's other parts, when runs of other groups cover it too
    # (``Part.to_dict`` each: its alert was routed to several routes, or it was offered
    # to several groups).
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    reopened: int = 0
    resolved_by: str | None = None
    resolution: str = ""  # what was done: the resolve note, the cancel reason
    # What people did to the run, oldest first: {"action", "by", "at", "note"} each
    # (ack, escalate, approve, reject, resolve, cancel; a reporter's answer relayed by
    # a desk, and the reopening it caused), so every note is kept; and "level": the grid
    # level an ack, resolve, cancel, approval or rejection was given at (t114), the
    # level an escalation took the run to.
    actions: list[dict[str, Any]] = field(default_factory=list)
    # The grid level the run was resolved or cancelled at: the level the closing command
    # was given at (``seen_level``), which a late one (Kafka frozen, the command queued
    # while the ladder moved the run up) keeps; None while open. The closing's counters,
    # its replies to the reporters and a reopening's undoing all use it, so the campaign's
    # closings net of reopenings add up per level.
    closed_level: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        return cls(**data)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _maybe_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _finite(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _maybe_finite(value: Any) -> bool:
    return value is None or _finite(value)


# The largest count a stored document may hold (a run's ``seq``, ``escalations`` and
# ``reopened``, a group's ``generation``, a burst window's counts): JSON's exact integers
# (2**53 - 1, JavaScript's Number.MAX_SAFE_INTEGER), far past any real count. The tables'
# encoder (orjson) writes integers up to 64 bits only, so one read back at 2**64 - 1 (a
# changelog entry written by hand) and counted once more could not be written again: every
# alert, command and new group after it failed (t128).
MAX_COUNT = 2**53 - 1


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNT


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _labels(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _times(value: Any) -> bool:
    return isinstance(value, dict) and all(_finite(v) for v in value.values())


def _resolutions(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, dict) and _finite(v.get("at")) and _labels(v.get("labels"))
        for v in value.values()
    )


def _actions(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


_RUN_STATUSES = frozenset(status.value for status in RunStatus)
_REPLY_STATUSES = frozenset(status.value for status in ReplyStatus)
# A run's stored fields (``Run.to_dict``): each one's check and what it expects. The
# first six have no default and must be there; a field added since (with its default)
# may be absent in a run stored before it.
_RUN_FIELDS: dict[str, tuple[Any, str]] = {
    "run_id": (_text, "text"),
    "alert_id": (_text, "text"),
    "playbook": (_text, "text"),
    "grid_cell": (_text, "text"),
    "kind": (_text, "text"),
    "department": (_text, "text"),
    "labels": (_labels, "an object of texts"),
    "alerts": (_texts, "a list of texts"),
    "status": (lambda v: v in _RUN_STATUSES, "a run status"),
    "step": (_maybe_text, "text or null"),
    "level": (lambda v: v in LEVELS, "a grid level"),
    "deadline_at": (_maybe_finite, "a finite number or null"),
    "created_at": (_finite, "a finite number"),
    "updated_at": (_finite, "a finite number"),
    "acknowledged_at": (_maybe_finite, "a finite number or null"),
    "acknowledged_by": (_maybe_text, "text or null"),
    "resolved_at": (_maybe_finite, "a finite number or null"),
    "escalations": (_count, "a whole number from 0 to 2**53 - 1"),
    "seq": (_count, "a whole number from 0 to 2**53 - 1"),
    "sla_deadline_at": (_maybe_finite, "a finite number or null"),
    "sla_breached": (lambda v: type(v) is bool, "true or false"),
    "pending_action": (_maybe_text, "text or null"),
    "last_notified_at": (_maybe_finite, "a finite number or null"),
    "unnotified": (_times, "an object of finite numbers"),
    "unnotified_beyond": (_count, "a whole number from 0 to 2**53 - 1"),
    "held": (_text, "text"),
    "held_tick": (_maybe_finite, "a finite number or null"),
    "ended_alerts": (_texts, "a list of texts"),
    "all_resolved_at": (_maybe_finite, "a finite number or null"),
    "left_out": (_texts, "a list of texts"),
    "unflushed_resolved": (_resolutions, "an object of {at, labels} by alert id"),
    "first_flush_at": (_maybe_finite, "a finite number or null"),
    "reports": (lambda v: isinstance(v, dict), "an object"),
    "reopened": (_count, "a whole number from 0 to 2**53 - 1"),
    "resolved_by": (_maybe_text, "text or null"),
    "resolution": (_text, "text"),
    "actions": (_actions, "a list of objects"),
    "closed_level": (lambda v: v is None or v in LEVELS, "a grid level or null"),
}
_RUN_REQUIRED = ("run_id", "alert_id", "playbook", "grid_cell", "kind", "department")


def _part_problem(part: Any) -> str | None:
    if not isinstance(part, dict) or not all(
        isinstance(part.get(name), str) for name in ("group", "playbook", "department")
    ):
        return f"is {part!r:.60}, expected an object of group, playbook and department"
    return None


def run_problem(data: Any) -> str | None:
    """What is wrong with a stored run document (``Run.to_dict``'s), as read back from
    a changelog, or None: a field missing (of the six without a default), unknown, or of
    another type (a number that is not finite; a status, level or report status no
    version wrote). Said with the field and its value: ``field 'opened' ...``. One of
    them of another shape failed later, at every use (the deadline check, a command, the
    operator API), rather than once, where it can be dropped and counted."""
    if not isinstance(data, dict):
        return f"is {data!r:.60}, expected an object"
    for name in _RUN_REQUIRED:
        if name not in data:
            return f"field {name!r} is missing"
    for name, value in data.items():
        check = _RUN_FIELDS.get(name)
        if check is None:
            return f"field {name!r:.60} is none a run has"
        if not check[0](value):
            return f"field {name!r} is {value!r:.60}, expected {check[1]}"
    for rid, report in data.get("reports", {}).items():
        if (
            not isinstance(report, dict)
            or not isinstance(report.get("channel"), str)
            or report.get("status") not in _REPLY_STATUSES
        ):
            return f"report {rid!r:.60} is {report!r:.60}, expected its channel and status"
        also = report.get("also", [])
        if not isinstance(also, list):
            return f"report {rid!r:.60}: field 'also' is {also!r:.60}, expected a list"
        for part in also:
            problem = _part_problem(part)
            if problem is not None:
                return f"report {rid!r:.60}: a part {problem}"
    return None


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a citizen report covered by several runs: the group whose run covers
    it (its runs are ``<group>.<n>``), that group's playbook and department."""

    group: str
    playbook: str
    department: str

    def to_dict(self) -> dict[str, str]:
        return {"group": self.group, "playbook": self.playbook, "department": self.department}

    @classmethod
    def from_dict(cls, data: Any) -> Part:
        """From ``to_dict``'s shape; raises ``BadEventError`` naming what is wrong."""
        problem = _part_problem(data)
        if problem is not None:
            raise BadEventError(f"a part {problem}")
        return cls(data["group"], data["playbook"], data["department"])


@dataclass(frozen=True, slots=True)
class ReportsCovered:
    """Citizen reports (id, channel) that the run's alert stands for; ``at`` in epoch s;
    ``also``: the reports' other parts (runs of other groups cover them too), if any."""

    reports: tuple[tuple[str, str], ...]
    at: float
    also: tuple[Part, ...] = ()

    @classmethod
    def from_alert(cls, alert: dict[str, Any], at: float) -> ReportsCovered:
        """From an alert document's ``reports`` list of ``{"report_id", "channel"}``;
        raises ``BadEventError`` naming the entry that is not one."""
        found = []
        for i, item in enumerate(alert.get("reports") or []):
            rid = item.get("report_id") if isinstance(item, dict) else None
            channel = item.get("channel") if isinstance(item, dict) else None
            if not isinstance(rid, str) or not rid or not isinstance(channel, str):
                raise BadEventError(f"alert reports[{i}] is {item!r}, expected report_id/channel")
            found.append((rid, channel))
        return cls(tuple(found), at)


@dataclass(frozen=True, slots=True)
class Answer:
    """A reporter's answer to a closure message: satisfied or not, an optional comment."""

    report_id: str
    satisfied: bool
    comment: str
    by: str
    at: float

    @classmethod
    def from_command(cls, cmd: dict[str, Any], at: float) -> Answer:
        """From an ``answer`` command; raises ``BadEventError`` naming the bad field."""
        for name in ("report_id", "satisfied"):
            if name not in cmd:
                raise BadEventError(f'answer: field "{name}" is missing')
        rid, satisfied, comment = cmd["report_id"], cmd["satisfied"], cmd.get("comment")
        if not isinstance(rid, str) or not rid:
            raise BadEventError(f'answer: field "report_id" is {rid!r}, expected a string')
        if not isinstance(satisfied, bool):
            raise BadEventError(f'answer: field "satisfied" is {satisfied!r}, expected a boolean')
        if comment is not None and not isinstance(comment, str):
            raise BadEventError(f'answer: field "comment" is {comment!r}, expected a string')
        return cls(rid, satisfied, (comment or "")[:MAX_COMMENT], str(cmd.get("by", "")), at)


RunInput = ReportsCovered | Answer


def newest_distinct(ids: list[str], new: str, bound: int) -> list[str]:
    """``ids`` (oldest first) with ``new`` sighted again: the newest ``bound`` distinct
    ids, each once, in the order of its latest sighting (``new`` last). A bounded memory
    that appended every sighting filled with repeats of one id (a burst's follow-ups, a
    redelivered alert) and forgot distinct ids long before it held ``bound`` of them; a
    list stored with repeats (before this rule) is cleaned at its next sighting."""
    latest_first = dict.fromkeys(reversed([*ids, new]))
    kept = list(latest_first)[:bound]
    kept.reverse()
    return kept


def _shown(run: Run, new: list[str]) -> str:
    """The first five of ``new`` (alert ids to notify) and how many more joined, those
    ``unnotified`` no longer holds (``unnotified_beyond``) counted: "al-1, …, al-5 and
    2,995 more"."""
    more = len(new) - len(new[:5]) + run.unnotified_beyond
    return ", ".join(new[:5]) + (f" and {more:,} more" if more else "")


def _notified(run: Run, now: float) -> None:
    """The run's unit was notified at ``now``: of every alert the run has."""
    run.last_notified_at = now
    run.left_out = list(run.ended_alerts)
    run.unflushed_resolved = {}  # in this flush: Alertmanager deletes them from the group
    run.unnotified = {}
    run.unnotified_beyond = 0
    run.first_flush_at = None
    run.held, run.held_tick = "", None


def unresolved(run: Run) -> list[str]:
    """The run's alerts whose resolution it has not seen."""
    ended = set(run.ended_alerts)
    return [a for a in run.alerts if a not in ended]


# What an operator may do to a run whose playbook the library no longer has: what needs
# none of its steps (an ack, an approval or a webhook outcome would take the next one).
WITHOUT_PLAYBOOK = frozenset({"resolve", "cancel", "escalate", "answer"})


def playbook_gone(run: Run, action: str) -> str:
    """Why ``action`` cannot be applied to ``run``, whose playbook the library no longer
    has (the worker's ``command_refused`` detail and the operator API's 409)."""
    return (
        f"run {run.run_id}'s playbook {run.playbook!r} is no longer in the library: "
        f"{action} cannot be applied (only {', '.join(sorted(WITHOUT_PLAYBOOK))}; or restore "
        "the playbook and reload the worker, kill -HUP, or restart it)"
    )


def next_group_flush(
    grouped_at: float, group_wait: float, group_interval: float, now: float
) -> float:
    """Seconds from ``now`` to the next flush of an Alertmanager aggregation group made at
    ``grouped_at`` (epoch s): its first flush ``group_wait`` after that, then one every
    ``group_interval`` (``dispatch/dispatch.go``, ``aggrGroup.run``: the timer is reset
    to ``group_interval`` at every flush, whether it sent anything or not); 0 at a flush.
    Alertmanager keeps a muted alert in its group, which flushes (sending nothing) while
    the mute lasts, so an alert freed from a mute goes out at that group's next tick, not
    ``group_wait`` after it is freed. ``group_interval`` must be above 0 (the loader's
    rule); a ``grouped_at`` after ``now`` counts as ``now``."""
    first = min(grouped_at, now) + group_wait
    if now <= first:
        return first - now
    ticks = math.ceil((now - first) / group_interval)
    return first + ticks * group_interval - now


class GroupPhase(enum.Enum):
    """Where a run's Alertmanager aggregation group is in its life (``group_phase``).

    WAITING: not notified yet (``group_wait`` holds it, or a fresh group's first flush
    is to come); FLUSHING: notified, flushing every ``group_interval``; EMPTIED: every
    alert of it resolved and a flush has passed since, which in Alertmanager sends the
    resolution and deletes the group (``dispatch.go``, ``aggrGroup.flush``), so the next
    alert of the group key starts a fresh group that waits ``group_wait``."""

    WAITING = "waiting"
    FLUSHING = "flushing"
    EMPTIED = "emptied"


def group_phase(run: Run, group_interval: float, now: float) -> GroupPhase:
    """The phase of ``run``'s group at ``now`` (epoch s), whether the run is open or
    closed by people: a run's status is people's, its group's timing Alertmanager's.
    A run covering citizens' reports keeps its group (it repeats, ``flush_due``)."""
    # The group's flushes run from its last notification, or a fresh group's first flush.
    base = run.first_flush_at if run.first_flush_at is not None else run.last_notified_at
    if base is None:
        return GroupPhase.WAITING
    busy = GroupPhase.WAITING if run.first_flush_at is not None else GroupPhase.FLUSHING
    ended = run.all_resolved_at
    if ended is None or unresolved(run) or run.reports or not group_interval > 0:
        return busy
    # The first flush at or after the last resolution (the last notification's own, when
    # they had all resolved by then) empties the group; an alert coming at that very
    # instant is in that flush (as ``flush_due`` counts it), one after it is not.
    emptied = base + max(0, math.ceil((ended - base) / group_interval)) * group_interval
    return GroupPhase.EMPTIED if now > emptied else busy


def group_next_tick(run: Run, group_interval: float, now: float) -> float | None:
    """Seconds from ``now`` to the next flush of ``run``'s group while it flushes
    (``GroupPhase.FLUSHING``: every ``group_interval`` after the last notification);
    None when it is not (never notified, or emptied: a new alert starts a fresh group).
    A run closed by people whose alerts still fire keeps its group in Alertmanager, so
    the next run of the group key is first notified at that tick, not ``group_wait``
    after its alert."""
    if group_phase(run, group_interval, now) is not GroupPhase.FLUSHING:
        return None
    assert run.last_notified_at is not None  # FLUSHING: notified
    ticks = max(1, math.ceil((now - run.last_notified_at) / group_interval))
    return run.last_notified_at + ticks * group_interval - now


def seen_level(run: Run, level: str | None) -> str:
    """The grid level an operator's command was given at: ``level`` (stamped by the
    operator API with the run's level when it accepted the command) if it is a grid
    level, else the run's level now (a command sent before t114, or by hand)."""
    return level if level in LEVELS else run.level


def closing_level(run: Run) -> str:
    """The grid level ``run`` was closed at (``Run.closed_level``), else its level now
    (an open run, or one stored before the field)."""
    return run.closed_level if run.closed_level in LEVELS else run.level


def is_terminal(run: Run) -> bool:
    return RunStatus(run.status) in TERMINAL


class PlaybookEngine:
    """Runs one playbook's steps; statuses move only through ``machine.TRANSITIONS``."""

    def __init__(self, playbook: Playbook, grid: Grid, deadline_override: float | None = None):
        self.playbook = playbook
        self.grid = grid
        # Rehearsals and demos shorten every wait for a person (acks, approvals);
        # production leaves this None.
        self.deadline_override = deadline_override
        self._steps = {s.id: s for s in playbook.steps}
        self._order = [s.id for s in playbook.steps]
        # Whom a run tells when its cell is gone from the grid (``unit``).
        cities = sorted((c.id, c.unit) for c in grid.cells.values() if c.level == "city")
        self._city_unit = cities[0][1] if cities else ""

    def unit(self, run: Run, level: str) -> str:
        """The unit responsible for ``run``'s cell at ``level``; for a cell gone from the
        grid (the grid file edited between restarts, the run read back from the
        changelog), the city's: the grid has no other unit for it (before t49, GridError
        at every escalation, notification and closure: the run could not even be
        resolved). The host says so once per run (``cell_gone``)."""
        if run.grid_cell in self.grid.cells:
            return self.grid.responsible_unit(run.grid_cell, level)
        return self._city_unit

    def _place(self, run: Run) -> str:
        """The name of ``run``'s cell, or its id when the grid no longer has it."""
        cell = self.grid.cells.get(run.grid_cell)
        return cell.name if cell is not None else run.grid_cell

    # -- lifecycle -------------------------------------------------------------------
    def new_run(
        self,
        run_id: str,
        alert: dict[str, Any],
        now: float,
        group_wait: float = 0.0,
        why_wait: str = "",
    ) -> tuple[Run, list[Command]]:
        """A pending run for ``alert``; it starts at once, or after ``group_wait`` seconds
        (``why_wait``, when given, says why that long in the ``run_created`` step)."""
        labels = {k: str(v) for k, v in alert.get("labels", {}).items()}
        run = Run(
            run_id=run_id,
            alert_id=alert["alert_id"],
            playbook=self.playbook.playbook,
            grid_cell=alert["grid_cell"],
            kind=alert["kind"],
            department=labels.get("department", self.playbook.department),
            labels=labels,
            alerts=[alert["alert_id"]],
            created_at=now,
            updated_at=now,
            sla_deadline_at=now + self.playbook.sla_seconds,
        )
        # What a campaign report groups by (where, which department, what), kept on the
        # record so steps and audit alone tell a run's story.
        facts = {
            "grid_cell": run.grid_cell,
            "department": run.department,
            "kind": run.kind,
            "category": labels.get("category", run.kind),
        }
        cmds = [
            self._command(
                run, "run_created", now, detail=f"group_wait {group_wait:g}s{why_wait}", data=facts
            )
        ]
        if group_wait > 0:
            run.deadline_at = now + group_wait
            return run, cmds
        run, more = self.start(run, now)
        return run, cmds + more

    def start(self, run: Run, now: float) -> tuple[Run, list[Command]]:
        cmds: list[Command] = []
        run.deadline_at = None
        self._move(run, RunEvent.START, now, cmds, reason="run started")
        run.step = self._order[0]
        self._drive(run, now, cmds)
        return run, cmds

    def join(
        self,
        run: Run,
        alert_id: str,
        now: float,
        group_interval: float = 0.0,
        group_wait: float = 0.0,
    ) -> tuple[Run, list[Command]]:
        """Another alert of the same group joins the run (no new run, no new ladder).

        Into a notified run it is notified at the group's next flush; into a run whose
        group has emptied (``GroupPhase.EMPTIED``; ``group_interval`` in seconds, 0 when
        unknown) it starts a fresh group, first flushed ``group_wait`` seconds after
        ``now`` (give 0 for an alert that started more than group_wait ago), as
        Alertmanager makes a new group for it.

        An alert of the run whose resolution it has seen fires again (t196): it is
        firing again in the group, as the same alert is in Alertmanager's; new to the
        group's next flush if it was not in the last notification (``left_out``: it had
        resolved by then, or it joined after it), else sent only with a repeat, as
        Alertmanager's DedupStage finds it in its notification log. Before, the run took
        it for the firing alert read again: it stayed resolved, never notified again, and
        a run whose alerts had all resolved repeated nothing though they fired again.
        An alert joining a group with no alert of the run firing (kept by a muted one,
        t201) or firing again into it is not sent as a repeat for a tick before it."""
        refired = alert_id in run.alerts and alert_id in run.ended_alerts
        if alert_id in run.alerts and not refired:
            return run, []
        fresh = group_phase(run, group_interval, now) is GroupPhase.EMPTIED
        last = run.last_notified_at
        if not fresh and not unresolved(run) and last is not None and now > last:
            # The group's ticks since every alert of it resolved sent nothing (no alert
            # fired then): one now firing again, or new to a group a muted alert keeps
            # (t201), is not repeated at a tick before it (before, the first check after
            # it sent a repeat for that tick, off the group's ticks from then on).
            ticks = math.ceil((now - last) / group_interval) - 1 if group_interval > 0 else 0
            if ticks >= 1:  # the ticks before now (one at now is this alert's too)
                run.held_tick = max(run.held_tick or last, last + ticks * group_interval)
        if refired:
            run.ended_alerts = [a for a in run.ended_alerts if a != alert_id]
            # Firing again at the next flush, not resolved (one fingerprint there).
            run.unflushed_resolved.pop(alert_id, None)
        else:
            run.alerts = newest_distinct(run.alerts, alert_id, MAX_RUN_ALERTS)
        run.updated_at = now
        run.all_resolved_at = None  # one fires again
        if fresh:
            run.first_flush_at = now + max(0.0, group_wait)
            run.unnotified, run.unnotified_beyond = {alert_id: now}, 0
            run.held, run.held_tick = "", None
        elif run.last_notified_at is not None and (
            not refired
            or alert_id in run.left_out
            or alert_id in run.unnotified
            # A fresh group not yet flushed: its first notification sends every alert.
            or run.first_flush_at is not None
        ):
            # Notified at the group's next flush (``flush``), as Alertmanager sends an
            # alert added to a group already notified at the next group_interval tick.
            # (Re-inserted last: an id that joins again is the newest, not kept in place.)
            unnotified = [*((k, v) for k, v in run.unnotified.items() if k != alert_id)]
            unnotified.append((alert_id, now))
            dropped = max(0, len(unnotified) - MAX_RUN_ALERTS)
            run.unnotified = dict(unnotified[dropped:])
            # Capped, as JSON's exact integers are (the changelog reads no larger count).
            run.unnotified_beyond = min(run.unnotified_beyond + dropped, 2**53 - 1)
        return run, [self._command(run, "alert_joined", now, detail=alert_id)]

    def rejoin(self, run: Run, alert_ids: list[str], now: float) -> Run:
        """Alerts of the run left out of its last notification because they were muted
        then (silenced or inhibited), firing and no longer muted at ``now``: new to the
        group's next flush, as Alertmanager's notification log holds only the alerts it
        sent (``notify.DedupStage``). No step: the flush's notification names them."""
        gone = set(alert_ids)
        run.left_out = [a for a in run.left_out if a not in gone]
        unnotified = [*((k, v) for k, v in run.unnotified.items() if k not in gone)]
        unnotified += [(a, now) for a in alert_ids]
        dropped = max(0, len(unnotified) - MAX_RUN_ALERTS)
        run.unnotified = dict(unnotified[dropped:])
        run.unnotified_beyond = min(run.unnotified_beyond + dropped, 2**53 - 1)
        return run

    def alert_resolved(
        self, run: Run, alert_id: str, now: float, labels: dict[str, str] | None = None
    ) -> tuple[Run, list[Command]]:
        """An alert of the run resolved: noted (``alert_resolved``) and kept in
        ``ended_alerts``; the run goes on (people close runs). A resolution the run
        already holds changes nothing and emits nothing: it is the same one read again
        (a routed message redelivered after a crash, or routed again by a replayed
        stage), whose note would otherwise be a second step under a new id. In a
        notified run it is kept, with its ``labels``, to the group's next flush
        (``unflushed_resolved``)."""
        if alert_id in run.ended_alerts:
            return run, []
        run.ended_alerts = newest_distinct(run.ended_alerts, alert_id, MAX_RUN_ALERTS)
        if run.last_notified_at is not None and labels is not None and alert_id in run.alerts:
            kept = {a: v for a, v in run.unflushed_resolved.items() if a in run.alerts}
            run.unflushed_resolved = {**kept, alert_id: {"at": now, "labels": dict(labels)}}
        if not unresolved(run) and run.all_resolved_at is None:
            run.all_resolved_at = now  # the group's next flush empties it
        return self.note(run, "alert_resolved", alert_id, now)

    def note(self, run: Run, action: str, detail: str, now: float) -> tuple[Run, list[Command]]:
        """Record something about the run (an alert of it resolved) without a move."""
        run.updated_at = now
        return run, [self._command(run, action, now, detail=detail)]

    def renotify(self, run: Run, reason: str, now: float) -> tuple[Run, list[Command]]:
        """Notify the unit at the run's current level again (group_interval for new
        alerts of the group, repeat_interval while nobody acknowledges)."""
        if is_terminal(run) or run.status == RunStatus.PENDING.value:
            return run, []
        unit = self.unit(run, run.level)
        _notified(run, now)
        return run, [self._command(run, "notify", now, unit=unit, detail=reason)]

    def flush(
        self,
        run: Run,
        group_interval: float,
        repeat_interval: float,
        now: float,
        muted: Collection[str] = (),
    ) -> tuple[Run, list[Command]]:
        """The group's notification at a flush (``flush_due``), if one is due."""
        due = self.flush_due(run, group_interval, repeat_interval, now, muted)
        if due is None:
            return run, []
        return self.renotify(run, due[1], now)

    def flush_due(
        self,
        run: Run,
        group_interval: float,
        repeat_interval: float,
        now: float,
        muted: Collection[str] = (),
    ) -> tuple[float, str] | None:
        """``(tick, reason)`` when the group's flush notifies the run by ``now``, else
        None; as Alertmanager's aggregation group flushes (``dispatch/dispatch.go``,
        ``notify.DedupStage``): every ``group_interval`` after the last notification,
        the run is notified again if alerts joined before that tick and are not yet in a
        notification, or if ``repeat_interval`` has passed by that tick and nobody has
        acknowledged. So an alert that joins a notified group is notified at the next
        tick, never dropped, and a repeat comes at the first tick at or after
        ``repeat_interval`` (a ``repeat_interval`` shorter than ``group_interval``
        repeats each ``group_interval``). No repeat once every alert of the run has
        resolved and it covers no citizen's report: Alertmanager deletes a group whose
        alerts have all resolved after the flush that sends their resolution
        (``dispatch.go``, ``aggrGroup.flush``), so nothing repeats; before, such a run was
        told "still unacknowledged" every ``repeat_interval`` for ever. Nothing before
        the first notification, once finished, or at a tick already held
        (``hold_flush``). Times in epoch seconds.

        ``muted``: the alerts of the run silenced or inhibited now (the response stage
        asks). One of them that joined is not new to this flush (t202), as Alertmanager's
        MuteStage drops it before its DedupStage compares the flush's firing alerts with
        its notification log: with the others already notified, nothing is sent (before,
        citybrain notified them again); it stays to be notified once freed."""
        last = run.last_notified_at
        if last is None or is_terminal(run) or not group_interval > 0 or now < last:
            return None
        # An alert that joined and resolved before the flush is in no notification (as
        # Alertmanager's DedupStage with send_resolved false: units hear of no resolution).
        ended = set(run.ended_alerts)
        if run.first_flush_at is not None:
            # A fresh group (``join`` after the group emptied): its first flush, then
            # one each group_interval while held; no repeat before it notifies.
            if now < run.first_flush_at:
                return None
            ticks = (now - run.first_flush_at) // group_interval
            tick = run.first_flush_at + ticks * group_interval
            if run.held_tick is not None and tick <= run.held_tick:
                return None
            new = [a for a, at in run.unnotified.items() if at <= tick and a not in ended]
            if not new:
                return None
            return (
                tick,
                f"new alerts in a fresh group (its alerts had all resolved): {_shown(run, new)}",
            )
        ticks = (now - last) // group_interval
        if ticks < 1:
            return None
        tick = last + ticks * group_interval
        if run.held_tick is not None and tick <= run.held_tick:
            return None  # this flush was held: the next one is checked
        new = [
            a
            for a, at in run.unnotified.items()
            if at <= tick and a not in ended and a not in muted
        ]
        if new:
            return tick, f"new alerts in the group: {_shown(run, new)}"
        if (
            run.acknowledged_at is None
            and ticks * group_interval >= repeat_interval
            and (unresolved(run) or run.reports)
        ):
            return tick, "repeat: still unacknowledged"
        return None

    def hold_flush(self, run: Run, why: str, tick: float, now: float) -> tuple[Run, list[Command]]:
        """A started run's flush at ``tick`` (``flush_due``'s) with every alert of it
        still firing silenced or inhibited (``why``: each alert and what mutes it):
        nothing is notified, as Alertmanager's MuteStage leaves nothing to send, and its
        notification log keeps the last notification, so the repeat comes at the first
        flush after the mutes end (counted from that last notification) and joined
        alerts stay to be notified. A ``notification_held`` step says so when the reason
        is new."""
        if is_terminal(run) or run.last_notified_at is None:
            return run, []
        run.held_tick = tick
        if why == run.held:
            return run, []
        run.held = why
        return run, [self._command(run, "notification_held", now, detail=why)]

    # -- what people do --------------------------------------------------------------
    @staticmethod
    def _record(run: Run, action: str, by: str, note: str, now: float, **more: Any) -> None:
        """Keep who did ``action`` when, with their note (and ``more``), in ``run.actions``."""
        entry = {"action": action, "by": by, "at": now, "note": note, **more}
        run.actions = [*run.actions, entry][-MAX_ACTIONS:]

    def acknowledge(
        self, run: Run, by: str, now: float, note: str = "", level: str | None = None
    ) -> tuple[Run, list[Command]]:
        """``by`` acknowledges ``run`` at ``now`` (epoch s, when the ack was given), seeing
        it at ``level`` (a grid level; None or an unknown one: the run's level now). An
        ack applied late (Kafka frozen, the API's command queued) after the ladder moved
        the run up is recorded, in ``run.actions`` and its ``acknowledged`` step (MTTA's
        label), at the level and time it was given, not the level the run reached."""
        if run.acknowledged_at is not None or is_terminal(run):
            return run, []  # idempotent
        cmds: list[Command] = []
        seen = seen_level(run, level)
        run.acknowledged_at, run.acknowledged_by = now, by
        self._record(run, "ack", by, note, now, level=seen)
        cmds.append(
            self._command(run, "acknowledged", now, actor=by, detail=f"by {by}", level=seen)
        )
        was_waiting = run.status == RunStatus.WAITING_ACK.value
        self._move(run, RunEvent.ACK, now, cmds, actor=by, reason="acknowledged")
        if was_waiting:
            run.deadline_at = None
            self._go_on(run, "success", now, cmds)
        return run, cmds

    def approve(
        self,
        run: Run,
        by: str,
        role: str,
        now: float,
        approved: bool = True,
        note: str = "",
        level: str | None = None,
    ) -> tuple[Run, list[Command]]:
        step = self._steps.get(run.step or "")
        gone = run.status == RunStatus.WAITING_APPROVAL.value and step is None
        if gone:
            # Its approval step gone from the edited playbook: the decision is recorded
            # and the run fails (``gone_step``), as at that step's deadline.
            return self._decided_at_gone_step(run, by, now, approved, note, level)
        if run.status != RunStatus.WAITING_APPROVAL.value or not isinstance(step, ApprovalStep):
            raise ForbiddenActionError(f"run {run.run_id} is not waiting for an approval")
        if role != step.role and role != "coordinator":
            raise ForbiddenActionError(
                f"step {step.id!r} needs a decision by a {step.role}, not a {role}"
            )
        cmds: list[Command] = []
        verdict = "approved" if approved else "rejected"
        self._record(
            run, "approve" if approved else "reject", by, note, now, level=seen_level(run, level)
        )
        cmds.append(self._command(run, verdict, now, actor=by, detail=step.question))
        self._move(
            run,
            RunEvent.APPROVE if approved else RunEvent.REJECT,
            now,
            cmds,
            actor=by,
            reason=verdict,
        )
        run.deadline_at = None
        self._go(run, step, "success" if approved else "failure", now, cmds)
        self._drive(run, now, cmds)
        return run, cmds

    def _decided_at_gone_step(
        self, run: Run, by: str, now: float, approved: bool, note: str, level: str | None
    ) -> tuple[Run, list[Command]]:
        cmds: list[Command] = []
        verdict = "approved" if approved else "rejected"
        self._record(
            run, "approve" if approved else "reject", by, note, now, level=seen_level(run, level)
        )
        cmds.append(self._command(run, verdict, now, actor=by, detail=run.step or ""))
        event = RunEvent.APPROVE if approved else RunEvent.REJECT
        self._move(run, event, now, cmds, actor=by, reason=verdict)
        run.deadline_at = None
        self._fail_gone(run, now, cmds)
        return run, cmds

    def gone_step(self, run: Run) -> str | None:
        """The step ``run`` waits at, when this playbook no longer has it (the playbook
        was edited between restarts, the run's state read back from the changelog); else
        None. Such a run cannot go on: its next move fails it (``_fail_gone``)."""
        waiting = run.status in (
            RunStatus.WAITING_ACK.value,
            RunStatus.WAITING_APPROVAL.value,
            RunStatus.WAITING_ACTION.value,
        )
        if waiting and (run.step or "") not in self._steps:
            return run.step or ""
        return None

    def fail_gone_step(self, run: Run, now: float) -> tuple[Run, list[Command]]:
        """Fail a run waiting at a step gone from the playbook (``gone_step``) at once,
        not at the gone step's deadline (an approval's may be hours away); a run that
        is not one is returned unchanged, with no commands."""
        if self.gone_step(run) is None:
            return run, []
        cmds: list[Command] = []
        self._fail_gone(run, now, cmds)
        return run, cmds

    def _fail_gone(self, run: Run, now: float, cmds: list[Command]) -> None:
        """Fail a running ``run`` whose step is gone from the playbook: a ``failed``
        step whose ``data`` says so (``{"gone": "step", "step": id}``, counted by the
        host), then the desk resolves or cancels it (its reporters' closures)."""
        gone = run.step or ""
        reason = (
            f"step {gone!r} is no longer in playbook {self.playbook.playbook!r} (edited "
            "since the run reached it): the run cannot go on; resolve or cancel it"
        )
        run.step, run.deadline_at, run.pending_action = None, None, None
        cmds.append(
            self._command(run, "failed", now, detail=reason, data={"gone": "step", "step": gone})
        )
        self._move(run, RunEvent.FAIL, now, cmds, reason=reason)

    def _go_on(self, run: Run, outcome: str, now: float, cmds: list[Command]) -> None:
        """After a wait ends with ``outcome``: the step's next step, driven on; or the
        run fails when its step is gone from the (edited) playbook."""
        step = self._steps.get(run.step or "")
        if step is None:
            self._fail_gone(run, now, cmds)
            return
        self._go(run, step, outcome, now, cmds)
        self._drive(run, now, cmds)

    def action_result(
        self, run: Run, command_id: str, ok: bool, detail: str, now: float
    ) -> tuple[Run, list[Command]]:
        """A webhook's outcome; a stale or repeated one is ignored."""
        if run.pending_action != command_id or run.status != RunStatus.WAITING_ACTION.value:
            return run, []
        cmds = [self._command(run, "action_ok" if ok else "action_failed", now, detail=detail)]
        self._move(
            run, RunEvent.ACTION_OK if ok else RunEvent.ACTION_FAILED, now, cmds, reason=detail
        )
        run.pending_action, run.deadline_at = None, None
        self._go_on(run, "success" if ok else "failure", now, cmds)
        return run, cmds

    def escalate(
        self, run: Run, by: str, now: float, note: str = "", from_level: str | None = None
    ) -> tuple[Run, list[Command]]:
        """An operator escalates one level up the grid, outside the playbook's ladder.
        With ``from_level`` (the level the operator saw the run at), nothing happens
        unless the run is still there: two coordinators who saw it at the street level,
        or one who saw it there after the ladder moved it, escalate it once (t110: two
        at once took it from street to city). Raises ``ForbiddenActionError`` for a run
        at the city level."""
        if from_level is not None and run.level != from_level:
            return run, []  # already moved from the level the operator saw
        target = PARENT_LEVEL.get(run.level)
        if target is None:
            raise ForbiddenActionError(f"run {run.run_id} is already at the city level")
        cmds: list[Command] = []
        self._record(run, "escalate", by, note, now, level=target)
        self._move(run, RunEvent.ESCALATE, now, cmds, actor=by, reason="escalated by hand")
        run.level = target
        run.escalations += 1
        unit = self.unit(run, target)
        cmds.append(self._command(run, "escalate", now, unit=unit, actor=by))
        return run, cmds

    def resolve(
        self, run: Run, by: str, note: str, now: float, level: str | None = None
    ) -> tuple[Run, list[Command]]:
        """``by`` resolves ``run`` at ``now`` (epoch s, when given); ``run.actions``
        keeps the level it was given at (``level``, as ``acknowledge``)."""
        if run.status == RunStatus.RESOLVED.value:
            return run, []  # idempotent
        cmds: list[Command] = []
        self._move(run, RunEvent.RESOLVE, now, cmds, actor=by, reason=note)
        run.resolved_at, run.deadline_at, run.pending_action = now, None, None
        run.resolved_by, run.resolution = by, note
        run.closed_level = seen_level(run, level)
        self._record(run, "resolve", by, note, now, level=run.closed_level)
        cmds.append(
            self._command(run, "resolved", now, actor=by, detail=note, level=run.closed_level)
        )
        cmds.extend(self._closures(run, now))
        return run, cmds

    def cancel(
        self, run: Run, by: str, reason: str, now: float, level: str | None = None
    ) -> tuple[Run, list[Command]]:
        """``by`` cancels ``run`` at ``now`` (epoch s, when given); ``run.actions`` keeps
        the level it was given at (``level``, as ``acknowledge``)."""
        if run.status == RunStatus.CANCELLED.value:
            return run, []  # idempotent
        cmds: list[Command] = []
        self._move(run, RunEvent.CANCEL, now, cmds, actor=by, reason=reason)
        run.deadline_at, run.pending_action = None, None
        run.resolved_by, run.resolution = by, reason
        run.closed_level = seen_level(run, level)
        self._record(run, "cancel", by, reason, now, level=run.closed_level)
        cmds.append(
            self._command(run, "cancelled", now, actor=by, detail=reason, level=run.closed_level)
        )
        for step in self.playbook.on_cancel:  # compensation
            cmds.append(self._instant(run, step, now))
        cmds.extend(self._closures(run, now))
        return run, cmds

    # -- what citizens do ------------------------------------------------------------
    def step(self, run: Run, event: RunInput) -> tuple[Run, list[Command]]:
        """Apply a citizen-side event: reports the run covers, or a reporter's answer.

        ``ReportsCovered``: new reports join the run (repeats are ignored); a report that
        joins a finished run is answered at once with the closure. ``Answer``: the report
        moves through ``machine.REPLY_TRANSITIONS``; "not satisfied" on a finished run
        reopens it at its level, and from the second reopening on also escalates it one
        level (up to the city). Raises ``ForbiddenActionError`` for a report the run does
        not cover, ``InvalidReplyTransitionError`` for an answer before the closure or a
        second answer to the same closure.
        """
        if isinstance(event, ReportsCovered):
            return self._cover(run, event)
        return self._answer(run, event)

    def _cover(self, run: Run, event: ReportsCovered) -> tuple[Run, list[Command]]:
        fresh = [(rid, ch) for rid, ch in event.reports if rid not in run.reports]
        room = max(MAX_REPORTS - len(run.reports), 0)
        also = [part.to_dict() for part in event.also]
        if also:
            # A report covered already that turns out to have other parts (a follow-up
            # routed to another route too): its closure will name them.
            for rid, _ in event.reports:
                known = run.reports.get(rid)
                if known is not None and rid not in dict(fresh):
                    parts = [*known.get("also", []), *also]
                    merged = list({p["group"]: p for p in parts}.values())
                    if merged != known.get("also", []):
                        run.reports = {**run.reports, rid: {**known, "also": merged}}
        if not fresh:
            return run, []
        run.reports = {**run.reports}
        cmds: list[Command] = []
        over = fresh[room:]
        if over:
            # Past the bound no closure can reach these reporters: said in a step with
            # their ids (and channels), so a desk can, rather than dropped without a
            # word (trial 22).
            ids = [rid for rid, _ in over]
            cmds.append(
                self._command(
                    run,
                    "reports_not_covered",
                    event.at,
                    detail=f"{len(ids)} report(s) past the {MAX_REPORTS} a run keeps, no "
                    f"closure will reach them: {', '.join(ids[:20])}"
                    + (f" and {len(ids) - 20} more" if len(ids) > 20 else ""),
                    data={"reports": [{"report_id": rid, "channel": ch} for rid, ch in over]},
                )
            )
        for rid, channel in fresh[:room]:
            entry: dict[str, Any] = {"channel": channel, "status": ReplyStatus.OPEN.value}
            data: dict[str, Any] = {"channel": channel}
            if also:
                entry["also"] = data["also"] = also
            run.reports[rid] = entry
            cmds.append(self._command(run, "report_covered", event.at, detail=rid, data=data))
        run.updated_at = event.at
        if is_terminal(run) and run.status != RunStatus.FAILED.value:
            cmds.extend(self._closures(run, event.at, only={rid for rid, _ in fresh}))
        return run, cmds

    def _answer(self, run: Run, event: Answer) -> tuple[Run, list[Command]]:
        report = run.reports.get(event.report_id)
        if report is None:
            raise ForbiddenActionError(f"run {run.run_id} covers no report {event.report_id!r}")
        cmds: list[Command] = []
        reopens = not event.satisfied and is_terminal(run) and run.status != RunStatus.FAILED.value
        # One rule for every reporter of a closure: one answer each; "not satisfied"
        # reopens a finished run, and on a run reopened already it is recorded only
        # (the report is then `unsatisfied`, not `reopened`: trial 6).
        verdict = (
            ReplyEvent.SATISFIED
            if event.satisfied
            else ReplyEvent.UNSATISFIED
            if reopens
            else ReplyEvent.UNSATISFIED_RECORDED
        )
        self._report_move(run, event.report_id, verdict, event.at, cmds, actor=event.by)
        cmds.append(
            self._command(
                run,
                "answer",
                event.at,
                actor=event.by,
                detail=event.comment,
                data={"report_id": event.report_id, "satisfied": event.satisfied},
            )
        )
        said = f"report {event.report_id}: " + ("satisfied" if event.satisfied else "not satisfied")
        said += f": {event.comment}" if event.comment else ""
        if not reopens:
            # Already reopened (by another reporter of the same closure): recorded only.
            recorded = "" if event.satisfied else f" (recorded only: the run is {run.status})"
            self._record(run, "answer", event.by, said + recorded, event.at)
            run.updated_at = event.at
            return run, cmds
        self._record(run, "answer", event.by, said, event.at)
        run.reopened += 1
        reason = said
        # Kept with the operators' actions, so `runs show` lists answers and reopenings.
        self._record(run, "reopen", event.by, reason, event.at)
        undone = run.status  # resolved or cancelled: what the reopening undoes
        # Undone at the level the closing was counted at (a late resolve's, not the
        # run's level now), so closings net of reopenings add up per level.
        undone_level = closing_level(run)
        self._move(run, RunEvent.REOPEN, event.at, cmds, actor=event.by, reason=reason)
        run.resolved_at, run.acknowledged_at, run.acknowledged_by = None, None, None
        run.closed_level = None
        # The playbook's steps do not run again: the reopened run waits to be resolved
        # at its (new) level, so no step is current (trial 6: it still read the step it
        # had been resolved at, `wait-community`, beside `level street`).
        run.step, run.deadline_at, run.pending_action = None, None, None
        run.sla_deadline_at = event.at + self.playbook.sla_seconds
        run.sla_breached = False
        cmds.append(
            self._command(
                run,
                "reopened",
                event.at,
                actor=event.by,
                level=undone_level,
                detail=reason,
                data={"report_id": event.report_id, "times": run.reopened, "outcome": undone},
            )
        )
        if run.reopened >= 2 and run.level in PARENT_LEVEL:
            run.level = PARENT_LEVEL[run.level]
            run.escalations += 1
            unit = self.unit(run, run.level)
            cmds.append(
                self._command(run, "escalate", event.at, unit=unit, detail="reopened again")
            )
        elif run.reopened >= 2:
            # The rule would escalate, but the city is the ceiling: said, so the audit
            # does not read as if the rule had been forgotten (trial 22).
            cmds.append(
                self._command(
                    run,
                    "not_escalated",
                    event.at,
                    detail=f"reopened again at the {run.level} level: there is no level above",
                )
            )
        unit = self.unit(run, run.level)
        _notified(run, event.at)
        cmds.append(self._command(run, "notify", event.at, unit=unit, detail=reason))
        return run, cmds

    def _closures(self, run: Run, now: float, only: set[str] | None = None) -> list[Command]:
        """One ``reply`` command per report still waiting to hear (all but the satisfied):
        what was done, by which unit, at which grid level."""
        cmds: list[Command] = []
        outcome = "resolved" if run.status == RunStatus.RESOLVED.value else "cancelled"
        # The level it was closed at: a late resolve keeps the level it was given at.
        level = closing_level(run)
        unit = self.unit(run, level)
        for rid in sorted(run.reports):
            if only is not None and rid not in only:
                continue
            if run.reports[rid]["status"] == ReplyStatus.SATISFIED.value:
                continue
            self._report_move(run, rid, ReplyEvent.CLOSE, now, cmds)
            what = run.resolution or outcome
            also = list(run.reports[rid].get("also", []))
            text = (
                f"Your report {rid} about {run.labels.get('category', run.kind)} at "
                f"{self._place(run)}: {outcome} by {unit} of "
                f"{run.department} ({level} level): {what}"
            )
            if also:
                # One closure per part: the reporter hears each department's, and this
                # one says it is one of several, not the whole answer.
                others = "; ".join(f"{p['department']} ({p['playbook']})" for p in also)
                text += (
                    f". This is the {run.department} part of your report; it also has "
                    f"{len(also)} other part{'s' if len(also) > 1 else ''}, by {others}, "
                    "each closed with its own message"
                )
            cmds.append(
                self._command(
                    run,
                    "reply",
                    now,
                    unit=unit,
                    level=level,
                    detail=text,
                    data={
                        "report_id": rid,
                        "channel": run.reports[rid]["channel"],
                        "outcome": outcome,
                        "what": what,
                        "by": run.resolved_by or SYSTEM,
                        "category": run.labels.get("category", run.kind),
                        "grid_cell": run.grid_cell,
                        "reopened": run.reopened,
                        "department": run.department,
                        "also": also,
                    },
                )
            )
        return cmds

    def _report_move(
        self,
        run: Run,
        report_id: str,
        event: ReplyEvent,
        now: float,
        cmds: list[Command],
        actor: str = SYSTEM,
    ) -> None:
        report = run.reports[report_id]
        before = report["status"]
        after = next_reply_status(ReplyStatus(before), event).value
        run.reports = {**run.reports, report_id: {**report, "status": after}}
        cmds.append(
            self._command(
                run,
                "report_transition",
                now,
                actor=actor,
                detail=report_id,
                data={"report_id": report_id, "from": before, "to": after, "event": event.value},
            )
        )

    # -- what time does --------------------------------------------------------------
    def approval_role(self, run: Run) -> str | None:
        """The role whose decision the run is waiting for, if it waits for one."""
        step = self._steps.get(run.step or "")
        if run.status == RunStatus.WAITING_APPROVAL.value and isinstance(step, ApprovalStep):
            return step.role
        return None

    def pending_webhook(self, run: Run) -> tuple[str, str] | None:
        """``(command id, url)`` of the webhook call the run is waiting for, if it waits
        for one: the host's call may have died with a worker, and is made again under
        the same command id (the receiver's ``delivery``)."""
        step = self._steps.get(run.step or "")
        if (
            run.status == RunStatus.WAITING_ACTION.value
            and run.pending_action
            and isinstance(step, WebhookStep)
        ):
            return run.pending_action, step.url
        return None

    def hold(self, run: Run, why: str, until: float, now: float) -> tuple[Run, list[Command]]:
        """A pending run whose group_wait ended with every alert of it muted (``why``:
        each alert and what mutes it) stays pending until ``until`` (the group's next
        flush), as Alertmanager sends no notification of a group whose alerts are all
        silenced or inhibited at a flush, and notifies it at the first flush after that
        ends. A ``notification_held`` step says so when the reason is new."""
        if run.status != RunStatus.PENDING.value:
            return run, []
        run.deadline_at = until
        if why == run.held:
            return run, []
        run.held = why
        return run, [self._command(run, "notification_held", now, detail=why)]

    def withdraw(self, run: Run, reason: str, now: float) -> tuple[Run, list[Command]]:
        """A pending run with nothing to notify when its group_wait ends (every alert of
        it resolved meanwhile, as Alertmanager then sends nothing and drops the group)
        ends ``cancelled`` by citybrain with ``reason``: no compensation steps (nothing
        was done) and no closures (the caller withdraws only a run covering no citizen
        report). See ``unresolved``."""
        if run.status != RunStatus.PENDING.value:
            return run, []
        cmds: list[Command] = []
        self._move(run, RunEvent.CANCEL, now, cmds, reason=reason)
        run.deadline_at = None
        run.resolved_by, run.resolution = SYSTEM, reason
        run.closed_level = run.level
        cmds.append(self._command(run, "cancelled", now, detail=reason))
        return run, cmds

    def is_due(self, run: Run, now: float) -> bool:
        return run.deadline_at is not None and now >= run.deadline_at and not is_terminal(run)

    def timeout(self, run: Run, now: float) -> tuple[Run, list[Command]]:
        """A deadline passed: start a pending run, or take a waiting step's timeout path."""
        if not self.is_due(run, now):
            return run, []  # a stale timer (acknowledged, moved on) is a no-op
        if run.status == RunStatus.PENDING.value:
            return self.start(run, now)
        step = self._steps.get(run.step or "")
        what = f"{step.action} {step.id}" if step is not None else f"{run.step} (gone)"
        cmds = [self._command(run, "timeout", now, detail=what)]
        self._move(run, RunEvent.TIMEOUT, now, cmds, reason=f"{run.step} deadline passed")
        run.deadline_at, run.pending_action = None, None
        self._go_on(run, "timeout", now, cmds)
        return run, cmds

    def check_sla(self, run: Run, now: float) -> tuple[Run, list[Command]]:
        if (
            run.sla_breached
            or is_terminal(run)
            or run.sla_deadline_at is None
            or now < run.sla_deadline_at
        ):
            return run, []
        run.sla_breached = True
        return run, [self._command(run, "sla_breach", now, detail=f"sla {self.playbook.sla}")]

    # -- internals -------------------------------------------------------------------
    def _drive(self, run: Run, now: float, cmds: list[Command]) -> None:
        # A run that takes more steps at once than its playbook has goes round a loop it
        # never leaves (the loader refuses such a playbook: schema.step_loop_errors);
        # failed here rather than holding the worker for good.
        taken = 0
        while run.status == RunStatus.RUNNING.value:
            taken += 1
            if taken > 2 * len(self._order) + 1 and run.step is not None:
                reason = f"step {run.step} reached again without stopping: a loop"
                run.step = None
                cmds.append(self._command(run, "failed", now, detail=reason))
                self._move(run, RunEvent.FAIL, now, cmds, reason=reason)
                return
            if run.step is None:
                if run.acknowledged_at is None:
                    cmds.append(self._command(run, "unacknowledged", now))
                self._move(run, RunEvent.STEPS_DONE, now, cmds, reason="all steps done")
                return
            step = self._steps[run.step]
            if isinstance(step, NotifyStep | DispatchStep | KafkaStep | AnnotateStep):
                cmds.append(self._instant(run, step, now))
            elif isinstance(step, ParallelStep):
                cmds.extend(self._instant(run, branch, now) for branch in step.branches)
            elif isinstance(step, EscalateStep):
                target = step.level or PARENT_LEVEL.get(run.level)
                if target is None or LEVELS.index(target) <= LEVELS.index(run.level):
                    # Never down, nor to the city again (t122): a run escalated by hand to
                    # the district was taken back to the street by the ladder's next step.
                    cmds.append(
                        self._command(
                            run, "not_escalated", now, detail=_not_escalated(step, run.level)
                        )
                    )
                else:
                    run.level = target
                    run.escalations += 1
                    unit = self.unit(run, target)
                    cmds.append(self._command(run, "escalate", now, unit=unit))
            elif isinstance(step, ResolveStep):
                run.resolved_at = now
                run.resolved_by, run.resolution = SYSTEM, step.note or step.id
                run.closed_level = run.level
                cmds.append(self._command(run, "resolved", now, detail=step.note))
                self._move(run, RunEvent.RESOLVE, now, cmds, reason=step.note or step.id)
                cmds.extend(self._closures(run, now))
                return
            elif isinstance(step, WaitAckStep):
                if run.acknowledged_at is None:
                    run.deadline_at = now + self._wait(step.deadline)
                    cmds.append(
                        self._command(run, "wait_ack", now, detail=f"{run.deadline_at - now:g}s")
                    )
                    self._move(run, RunEvent.WAIT_ACK, now, cmds, reason=step.id)
                    return
            elif isinstance(step, ApprovalStep):
                run.deadline_at = now + self._wait(step.deadline)
                cmds.append(
                    self._command(
                        run, "approval_request", now, detail=step.question, data={"role": step.role}
                    )
                )
                self._move(run, RunEvent.WAIT_APPROVAL, now, cmds, reason=step.id)
                return
            elif isinstance(step, WebhookStep):
                # A machine's deadline, not a person's: rehearsal overrides leave it alone.
                run.deadline_at = now + parse_duration(step.deadline)
                cmd = self._command(
                    run,
                    "webhook",
                    now,
                    detail=step.url,
                    data={"url": step.url, "labels": run.labels},
                )
                run.pending_action = cmd.id
                cmds.append(cmd)
                self._move(run, RunEvent.WAIT_ACTION, now, cmds, reason=step.id)
                return
            self._go(run, step, "success", now, cmds)

    def _go(self, run: Run, step: Any, outcome: str, now: float, cmds: list[Command]) -> None:
        target = self._next(step, outcome)
        if target == _FAIL:
            run.step = None
            cmds.append(self._command(run, "failed", now, detail=f"{step.id} {outcome}"))
            self._move(run, RunEvent.FAIL, now, cmds, reason=f"{step.id} {outcome}")
        else:
            run.step = target

    def _next(self, step: Any, outcome: str) -> str | None:
        explicit = getattr(step, f"on_{outcome}", None)
        if explicit is not None:
            return str(explicit)
        i = self._order.index(step.id)
        following = self._order[i + 1 :]
        if outcome == "success":
            if isinstance(step, WaitAckStep):
                # Acknowledged: skip the rest of the escalation ladder.
                rest = [
                    s
                    for s in following
                    if not isinstance(self._steps[s], EscalateStep | WaitAckStep)
                ]
                return rest[0] if rest else None
            return following[0] if following else None
        if outcome == "timeout" and isinstance(step, WaitAckStep):
            return following[0] if following else None
        if outcome == "timeout" and step.on_failure is not None:
            return str(step.on_failure)
        return _FAIL

    def _instant(self, run: Run, step: Any, now: float) -> Command:
        raw = step.text if isinstance(step, AnnotateStep) else getattr(step, "message", "")
        text = _fill(raw, run) if isinstance(raw, str) else ""
        if isinstance(step, NotifyStep):
            unit = step.unit or self.unit(run, step.level)
            _notified(run, now)
            return self._command(run, "notify", now, level=step.level, unit=unit, detail=text)
        if isinstance(step, DispatchStep):
            target = _fill(step.unit or step.department or "", run)
            return self._command(
                run,
                "dispatch",
                now,
                unit=target,
                detail=text,
                data={"department": _fill(step.department or "", run)},
            )
        if isinstance(step, KafkaStep):
            message = {
                **step.message,
                "run_id": run.run_id,
                "alert_id": run.alert_id,
                "kind": run.kind,
                "grid_cell": run.grid_cell,
            }
            return self._command(
                run, "kafka", now, detail=step.topic, data={"topic": step.topic, "message": message}
            )
        return self._command(run, "annotate", now, detail=text)

    def _wait(self, deadline: str) -> float:
        from playbooks.schema import parse_duration

        return self.deadline_override or parse_duration(deadline)

    def _move(
        self,
        run: Run,
        event: RunEvent,
        now: float,
        cmds: list[Command],
        actor: str = SYSTEM,
        reason: str = "",
    ) -> None:
        before = run.status
        after = next_status(RunStatus(before), event).value
        run.status, run.updated_at = after, now
        cmds.append(
            self._command(
                run,
                "transition",
                now,
                actor=actor,
                detail=reason,
                data={"from": before, "to": after, "event": event.value},
            )
        )

    def _command(self, run: Run, action: str, now: float, **kw: Any) -> Command:
        run.seq += 1
        kw.setdefault("level", run.level)
        return Command(
            id=f"{run.run_id}:{run.seq}",
            run_id=run.run_id,
            alert_id=run.alert_id,
            action=action,
            at=now,
            **kw,
        )


def _not_escalated(step: EscalateStep, level: str) -> str:
    """Why an ``escalate`` step left ``level`` as it is: at the city, no level above; at
    or above the step's own level (an operator escalated the run by hand meanwhile),
    not taken down."""
    if step.level is None or step.level == level == "city":
        return f"step {step.id}: the run is at the city level: there is no level above"
    if step.level == level:
        return f"step {step.id}: the run is at the {level} level already"
    return (
        f"step {step.id}: the run is at the {level} level already, above {step.level}: "
        "not taken down"
    )


def _fill(text: str, run: Run) -> str:
    """``{kind}``, ``{grid_cell}``, ``{run_id}`` and alert labels in step texts
    (``schema.fill``: an unknown name is empty)."""
    return fill(
        text, {**run.labels, "kind": run.kind, "grid_cell": run.grid_cell, "run_id": run.run_id}
    )
