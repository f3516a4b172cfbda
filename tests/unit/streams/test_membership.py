"""streams.membership.MembershipWatch: a worker woken after standing still past its
session holds its timers until the group has had time to answer (t184)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from streams.membership import MembershipWatch, group_answer, still_member


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_loop_that_stood_still_past_the_session_is_in_doubt_until_the_grace_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    watch = MembershipWatch(session=10.0, grace=5.0, clock=clock)
    assert not watch.in_doubt()  # no tick yet: the start is no stall
    clock.now += 30.0
    watch.tick()  # the first tick after a long start
    assert not watch.in_doubt()
    for _ in range(8):
        clock.now += 0.25
        watch.tick()
        assert not watch.in_doubt()
    clock.now += 12.0  # frozen (SIGSTOP) past the session
    assert watch.in_doubt()  # before the watch's own tick has run: a timer asks first
    with caplog.at_level(logging.WARNING, "streams.membership"):
        watch.tick()
    assert "stood still for 12.0 s, past its 10 s session" in caplog.text
    assert watch.in_doubt()
    clock.now += 4.9
    assert watch.in_doubt()
    clock.now += 0.2
    assert not watch.in_doubt()


def test_a_stall_within_the_session_is_no_doubt() -> None:
    clock = Clock()
    watch = MembershipWatch(session=10.0, grace=5.0, clock=clock)
    watch.tick()
    clock.now += 9.9
    assert not watch.in_doubt()
    watch.tick()
    assert not watch.in_doubt()


def test_the_groups_answer_is_awaited_while_in_doubt_and_no_longer() -> None:
    """t192: a commit's changelog flush asks whether the group dropped this worker; just
    woken past its session, it waits for the heartbeat's answer (``dropped`` turning
    true) rather than answer "not dropped" before the group could say so."""
    clock = Clock()
    watch = MembershipWatch(session=10.0, grace=5.0, clock=clock)
    watch.tick()
    clock.now += 30.0  # stood still; the watch's timer has not ticked yet
    asked: list[float] = []

    def dropped() -> bool:
        asked.append(clock.now)
        if len(asked) == 3:  # the heartbeat's answer, a few polls after the wake
            return True
        return len(asked) > 3

    assert asyncio.run(group_answer(watch, dropped, poll=0)) is True
    assert len(asked) == 4  # three while in doubt, then the answer itself

    # Not in doubt: asked once, at once.
    calm = MembershipWatch(session=10.0, grace=5.0, clock=clock)
    calm.tick()
    answers: list[bool] = []
    assert asyncio.run(group_answer(calm, lambda: answers.append(False) or False)) is False
    assert answers == [False]

    # In doubt, never dropped (the group kept it): the answer once the grace has passed.
    watch.tick()  # the timer's tick sees the stall: doubt for the grace
    polls: list[float] = []

    def kept() -> bool:
        polls.append(clock.now)
        clock.now += 1.0
        return False

    assert asyncio.run(group_answer(watch, kept, poll=0)) is False
    assert 5 <= len(polls) <= 7


def test_an_agent_handles_nothing_once_the_group_has_dropped_the_worker() -> None:
    """t192: a message or batch fetched before a freeze past the session, still queued,
    was handled once the worker ran again, before the heartbeat's answer: its group's or
    sensor's state written over the newer one of the worker that owned the partition
    meanwhile. ``still_member`` waits out the doubt for the group's answer; healthy, it
    answers at once."""
    clock = Clock()
    watch = MembershipWatch(session=10.0, grace=5.0, clock=clock)
    watch.tick()
    assert asyncio.run(still_member(watch, lambda: False)) is True
    assert asyncio.run(still_member(watch, lambda: True)) is False  # dropped, no doubt
    clock.now += 30.0  # woken; the answer comes at the second poll
    answers = iter([False, True, True])
    assert asyncio.run(still_member(watch, lambda: next(answers))) is False
