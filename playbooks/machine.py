"""The run state machine as a plain transition table (after orquesta's ``machines.py``).

``running`` is transient: the engine passes through it while it issues instant steps, so
outside the engine a run is always pending, waiting for something, open or finished.
"""

from __future__ import annotations

from enum import StrEnum

from playbooks.errors import InvalidReplyTransitionError, InvalidTransitionError


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


# What `runs list --status` and GET /runs?status= take: a run status, or ``reopened``
# (runs a reporter's unsatisfied answer reopened at least once, whatever their status).
RUN_LIST_STATUSES = (*(status.value for status in RunStatus), "reopened")


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
    REOPEN = "reopen"  # a reporter was not satisfied with the closure


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
    # A failed run (a step failed with nowhere to go) is the desk's to finish by hand:
    # resolving or cancelling it sends its reporters their closure, which a failed run
    # alone never would. It runs no step, timer or repeat meanwhile (still TERMINAL).
    # A run waiting at a step its playbook no longer has (edited between restarts)
    # cannot go on: it fails at once (``PlaybookEngine.fail_gone_step``).
    **{(w, E.FAIL): S.FAILED for w in WAITING},
    (S.FAILED, E.RESOLVE): S.RESOLVED,
    (S.FAILED, E.CANCEL): S.CANCELLED,
    # The way back from a finished run: a reporter's "not satisfied" brings it back to
    # open (every step done, someone must resolve it again). A failed run stays failed
    # (its reporters have heard nothing yet).
    (S.RESOLVED, E.REOPEN): S.OPEN,
    (S.CANCELLED, E.REOPEN): S.OPEN,
}


def next_status(status: RunStatus, event: RunEvent) -> RunStatus:
    """The status after ``event``; raises ``InvalidTransitionError`` for a move not in the table."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransitionError(status.value, event.value) from None


class ReplyStatus(StrEnum):
    """Where one citizen report stands with its reporter (a run covers many reports)."""

    OPEN = "open"  # covered by a live run; the reporter has heard nothing yet
    REPLIED = "replied"  # a closure message went out; waiting for the answer
    SATISFIED = "satisfied"
    REOPENED = "reopened"  # answered "not satisfied", and that answer reopened the run
    # Answered "not satisfied" while the run was already reopened (by another reporter
    # of the same closure): recorded only; hears the next closure like the others.
    UNSATISFIED = "unsatisfied"


class ReplyEvent(StrEnum):
    CLOSE = "close"  # the covering run resolved or was cancelled: closure sent
    SATISFIED = "satisfied"
    UNSATISFIED = "unsatisfied"  # not satisfied, on a finished run: it reopens it
    # Not satisfied, on a run another reporter's answer reopened already: recorded only.
    UNSATISFIED_RECORDED = "unsatisfied_recorded"


R, RE = ReplyStatus, ReplyEvent
REPLY_TRANSITIONS: dict[tuple[ReplyStatus, ReplyEvent], ReplyStatus] = {
    (R.OPEN, RE.CLOSE): R.REPLIED,
    (R.REOPENED, RE.CLOSE): R.REPLIED,
    # A run reopened by another reporter closes again: the silent reporter hears again.
    (R.REPLIED, RE.CLOSE): R.REPLIED,
    (R.REPLIED, RE.SATISFIED): R.SATISFIED,
    (R.REPLIED, RE.UNSATISFIED): R.REOPENED,
    (R.REPLIED, RE.UNSATISFIED_RECORDED): R.UNSATISFIED,
    (R.UNSATISFIED, RE.CLOSE): R.REPLIED,
}


def next_reply_status(status: ReplyStatus, event: ReplyEvent) -> ReplyStatus:
    """The report's status after ``event``; raises ``InvalidReplyTransitionError`` for a
    move not in ``REPLY_TRANSITIONS`` (an answer before any closure, a second answer)."""
    try:
        return REPLY_TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidReplyTransitionError(status.value, event.value) from None
