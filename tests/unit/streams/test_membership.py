"""streams.membership.MembershipWatch: a worker woken after standing still past its
session holds its timers until the group has had time to answer (t184)."""

from __future__ import annotations

import logging

import pytest

from streams.membership import MembershipWatch


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
