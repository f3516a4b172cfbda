"""The run state machine as a plain transition table (after orquesta's ``machines.py``)."""

from __future__ import annotations

from enum import StrEnum

from playbooks.errors import InvalidTransitionError


class RunStatus(StrEnum):
    PENDING = "pending"
    WAITING_ACK = "waiting_ack"
    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"  # every step ran out with nobody acting
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


class RunEvent(StrEnum):
    START = "start"
    ACK = "ack"
    TIMEOUT = "timeout"  # a wait_ack deadline passed
    ESCALATED = "escalated"  # the timeout led to a further wait
    EXHAUSTED = "exhausted"  # the timeout found no further step
    RESOLVE = "resolve"
    CANCEL = "cancel"


TERMINAL = frozenset({RunStatus.RESOLVED, RunStatus.CANCELLED})

TRANSITIONS: dict[tuple[RunStatus, RunEvent], RunStatus] = {
    (RunStatus.PENDING, RunEvent.START): RunStatus.WAITING_ACK,
    (RunStatus.WAITING_ACK, RunEvent.ACK): RunStatus.ACKNOWLEDGED,
    (RunStatus.WAITING_ACK, RunEvent.ESCALATED): RunStatus.WAITING_ACK,
    (RunStatus.WAITING_ACK, RunEvent.EXHAUSTED): RunStatus.UNACKNOWLEDGED,
    (RunStatus.UNACKNOWLEDGED, RunEvent.ACK): RunStatus.ACKNOWLEDGED,
    (RunStatus.WAITING_ACK, RunEvent.RESOLVE): RunStatus.RESOLVED,
    (RunStatus.ACKNOWLEDGED, RunEvent.RESOLVE): RunStatus.RESOLVED,
    (RunStatus.UNACKNOWLEDGED, RunEvent.RESOLVE): RunStatus.RESOLVED,
    (RunStatus.PENDING, RunEvent.CANCEL): RunStatus.CANCELLED,
    (RunStatus.WAITING_ACK, RunEvent.CANCEL): RunStatus.CANCELLED,
    (RunStatus.ACKNOWLEDGED, RunEvent.CANCEL): RunStatus.CANCELLED,
    (RunStatus.UNACKNOWLEDGED, RunEvent.CANCEL): RunStatus.CANCELLED,
}


def next_status(status: RunStatus, event: RunEvent) -> RunStatus:
    """The status after ``event``; raises ``InvalidTransitionError`` for a move not in the table."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise InvalidTransitionError(status.value, event.value) from None
