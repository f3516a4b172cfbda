"""The transition table: allowed moves and the named error for every other one."""

from __future__ import annotations

import itertools

import pytest

from playbooks.errors import InvalidTransitionError
from playbooks.machine import TERMINAL, TRANSITIONS, RunEvent, RunStatus, next_status


def test_a_run_from_start_to_resolution() -> None:
    s = next_status(RunStatus.PENDING, RunEvent.START)
    s = next_status(s, RunEvent.WAIT_ACK)
    s = next_status(s, RunEvent.TIMEOUT)
    s = next_status(s, RunEvent.WAIT_ACK)
    s = next_status(s, RunEvent.ACK)
    s = next_status(s, RunEvent.STEPS_DONE)
    assert next_status(s, RunEvent.RESOLVE) is RunStatus.RESOLVED


@pytest.mark.parametrize(
    ("status", "event"),
    [(s, e) for s, e in itertools.product(RunStatus, RunEvent) if (s, e) not in TRANSITIONS],
)
def test_every_move_outside_the_table_raises(status: RunStatus, event: RunEvent) -> None:
    with pytest.raises(InvalidTransitionError) as info:
        next_status(status, event)
    assert str(info.value) == f"run in state {status.value!r} cannot take event {event.value!r}"


def test_terminal_states_have_no_way_out_but_a_reopening_or_a_failed_run_finished_by_hand() -> None:
    assert [k for k in TRANSITIONS if k[0] in TERMINAL] == [
        (RunStatus.FAILED, RunEvent.RESOLVE),
        (RunStatus.FAILED, RunEvent.CANCEL),
        (RunStatus.RESOLVED, RunEvent.REOPEN),
        (RunStatus.CANCELLED, RunEvent.REOPEN),
    ]


def test_every_live_state_and_a_failed_run_can_be_cancelled_and_resolved() -> None:
    # A failed run too: its citizen reporters hear their closure only then.
    live = set(RunStatus) - TERMINAL | {RunStatus.FAILED}
    assert {s for s, e in TRANSITIONS if e is RunEvent.CANCEL} == live
    assert {s for s, e in TRANSITIONS if e is RunEvent.RESOLVE} == live
