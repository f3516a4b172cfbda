"""The run state machine as a plain transition table (after orquesta's ``machines.py``).

``running`` is transient: the engine passes through it while it issues instant steps, so
outside the engine a run is always pending, waiting for something, open or finished.
"""

from __future__ import annotations

from enum import StrEnum

from playbooks.errors import InvalidTransitionError


class RunStatus(StrEnum):
    PENDING = "pending"  # created; first notification held back for group_wait
    RUNNING = "running"
    WAITING_ACK = "waiting_ack"
    WAITING_APPROVAL = "waiting_approval"
    WAITING_ACTION = "waiting_action"  # a webhook's outcome
    OPEN = "open"  # every step done; waits for someone to resolve it
    RESOLVED = "resolved"
    CANCELLED = "cancelled"
    FAILED = "failed"


class RunEvent(StrEnum):
    START = "start"
    WAIT_ACK = "wait_ack"
    WAIT_APPROVAL = "wait_approval"
    WAIT_ACTION = "wait_action"
    ACK = "ack"
    APPROVE = "approve"
    REJECT = "reject"
    ACTION_OK = "action_ok"
    ACTION_FAILED = "action_failed"
    TIMEOUT = "timeout"
    ESCALATE = "escalate"  # by an operator, outside the playbook's own ladder
    STEPS_DONE = "steps_done"
    RESOLVE = "resolve"
    CANCEL = "cancel"
    FAIL = "fail"


S, E = RunStatus, RunEvent
TERMINAL = frozenset({S.RESOLVED, S.CANCELLED, S.FAILED})
WAITING = frozenset({S.WAITING_ACK, S.WAITING_APPROVAL, S.WAITING_ACTION})

TRANSITIONS: dict[tuple[RunStatus, RunEvent], RunStatus] = {
    (S.PENDING, E.START): S.RUNNING,
    (S.RUNNING, E.WAIT_ACK): S.WAITING_ACK,
    (S.RUNNING, E.WAIT_APPROVAL): S.WAITING_APPROVAL,
    (S.RUNNING, E.WAIT_ACTION): S.WAITING_ACTION,
    (S.RUNNING, E.STEPS_DONE): S.OPEN,
    (S.RUNNING, E.FAIL): S.FAILED,
    (S.WAITING_ACK, E.ACK): S.RUNNING,
    (S.WAITING_APPROVAL, E.APPROVE): S.RUNNING,
    (S.WAITING_APPROVAL, E.REJECT): S.RUNNING,
    (S.WAITING_ACTION, E.ACTION_OK): S.RUNNING,
    (S.WAITING_ACTION, E.ACTION_FAILED): S.RUNNING,
    # An acknowledgement while the run waits for something else is recorded, no move.
    (S.WAITING_APPROVAL, E.ACK): S.WAITING_APPROVAL,
    (S.WAITING_ACTION, E.ACK): S.WAITING_ACTION,
    (S.OPEN, E.ACK): S.OPEN,
    (S.PENDING, E.ACK): S.PENDING,
    **{(w, E.TIMEOUT): S.RUNNING for w in WAITING},
    **{(w, E.ESCALATE): w for w in (*WAITING, S.OPEN)},
    **{(s, E.RESOLVE): S.RESOLVED for s in (S.PENDING, S.RUNNING, *WAITING, S.OPEN)},
    **{(s, E.CANCEL): S.CANCELLED for s in (S.PENDING, S.RUNNING, *WAITING, S.OPEN)},
}


def next_status(status: RunStatus, event: RunEvent) -> RunStatus:
    """The status after ``event``; raises ``InvalidTransitionError`` for a move not in the table."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransitionError(status.value, event.value) from None
