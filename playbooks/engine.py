"""The pure playbook engine: ``step(run, event) -> (run, commands)``.

No I/O and no clock: the host passes the time in and carries out the returned commands
(send a notification, publish a step event). Runs and commands are plain data that fit in
a faust table and on a Kafka topic. Command ids are deterministic (run id + sequence), so
a host that redoes a step after a crash produces the same ids and consumers can drop
the repeat.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from playbooks.grid import PARENT_LEVEL, Grid
from playbooks.machine import TERMINAL, RunEvent, RunStatus, next_status
from playbooks.schema import EscalateStep, NotifyStep, Playbook, WaitAckStep


@dataclass(frozen=True, slots=True)
class Command:
    """One thing the host must do and record as a step event."""

    id: str
    run_id: str
    alert_id: str
    action: str  # notify | escalate | wait_ack | acknowledged | unacknowledged | resolved ...
    level: str | None
    unit: str | None
    at: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class Run:
    run_id: str
    alert_id: str
    playbook: str
    grid_cell: str
    kind: str
    status: str = RunStatus.PENDING.value
    step_index: int = 0
    level: str = "community"
    deadline_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    escalations: int = 0
    seq: int = 0
    history: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        return cls(**data)

    @classmethod
    def for_alert(cls, alert_id: str, playbook: str, grid_cell: str, kind: str, now: float) -> Run:
        return cls(
            run_id=f"run-{alert_id}",
            alert_id=alert_id,
            playbook=playbook,
            grid_cell=grid_cell,
            kind=kind,
            created_at=now,
            updated_at=now,
        )


class PlaybookEngine:
    """Walks a playbook's steps for a run, moving its status only through the table."""

    def __init__(self, playbook: Playbook, grid: Grid, deadline_override: float | None = None):
        self.playbook = playbook
        self.grid = grid
        # Rehearsals and demos shorten every wait; production leaves this None.
        self.deadline_override = deadline_override

    def start(self, run: Run, now: float) -> tuple[Run, list[Command]]:
        run = self._move(run, RunEvent.START, now)
        return self._advance(run, now, [])

    def acknowledge(self, run: Run, by: str, now: float) -> tuple[Run, list[Command]]:
        run = self._move(run, RunEvent.ACK, now)
        run.acknowledged_at = now
        run.acknowledged_by = by
        run.deadline_at = None
        return run, [self._command(run, "acknowledged", now, detail=f"by {by}")]

    def resolve(self, run: Run, note: str, now: float) -> tuple[Run, list[Command]]:
        run = self._move(run, RunEvent.RESOLVE, now)
        run.deadline_at = None
        return run, [self._command(run, "resolved", now, detail=note)]

    def cancel(self, run: Run, reason: str, now: float) -> tuple[Run, list[Command]]:
        run = self._move(run, RunEvent.CANCEL, now)
        run.deadline_at = None
        return run, [self._command(run, "cancelled", now, detail=reason)]

    def is_due(self, run: Run, now: float) -> bool:
        return (
            run.status == RunStatus.WAITING_ACK.value
            and run.deadline_at is not None
            and now >= run.deadline_at
        )

    def timeout(self, run: Run, now: float) -> tuple[Run, list[Command]]:
        """A wait_ack deadline passed: continue with the step after the wait."""
        if not self.is_due(run, now):
            # A stale timer (deadline moved, run acknowledged) is a no-op, not an error.
            return run, []
        commands = [self._command(run, "ack_timeout", now, detail=f"level {run.level}")]
        run.deadline_at = None
        run.step_index += 1
        return self._advance(run, now, commands, after_timeout=True)

    # -- internals -------------------------------------------------------------------
    def _advance(
        self, run: Run, now: float, commands: list[Command], after_timeout: bool = False
    ) -> tuple[Run, list[Command]]:
        steps = self.playbook.steps
        while run.step_index < len(steps):
            step = steps[run.step_index]
            if isinstance(step, NotifyStep):
                run.level = step.level
                unit = self.grid.responsible_unit(run.grid_cell, step.level)
                commands.append(self._command(run, "notify", now, unit=unit))
            elif isinstance(step, EscalateStep):
                target = step.level or PARENT_LEVEL.get(run.level, run.level)
                run.level = target
                run.escalations += 1
                unit = self.grid.responsible_unit(run.grid_cell, target)
                commands.append(self._command(run, "escalate", now, unit=unit))
            elif isinstance(step, WaitAckStep):
                wait = self.deadline_override or step.deadline_seconds
                run.deadline_at = now + wait
                commands.append(self._command(run, "wait_ack", now, detail=f"{wait:g}s"))
                if after_timeout:
                    run = self._move(run, RunEvent.ESCALATED, now)
                return run, commands
            run.step_index += 1
        if after_timeout:
            run = self._move(run, RunEvent.EXHAUSTED, now)
            commands.append(self._command(run, "unacknowledged", now))
        return run, commands

    def _move(self, run: Run, event: RunEvent, now: float) -> Run:
        new = next_status(RunStatus(run.status), event)
        run.history.append(f"{run.status}->{new.value}:{event.value}")
        # Bounded: a run's audit trail proper lives on the steps topic.
        del run.history[:-20]
        run.status = new.value
        run.updated_at = now
        return run

    def _command(
        self, run: Run, action: str, now: float, unit: str | None = None, detail: str = ""
    ) -> Command:
        run.seq += 1
        return Command(
            id=f"{run.run_id}:{run.seq}",
            run_id=run.run_id,
            alert_id=run.alert_id,
            action=action,
            level=run.level,
            unit=unit,
            at=now,
            detail=detail,
        )


def is_terminal(run: Run) -> bool:
    return RunStatus(run.status) in TERMINAL
