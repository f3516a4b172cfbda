"""Whether this worker may still be the member of its consumer group that owns its
partitions: a worker whose event loop stood still past its session (SIGSTOP, swap, a
stopped VM) has been dropped by the group while its partitions went to another worker,
and it does not know until a heartbeat's answer says so (a round trip after it runs
again). Its timers act on what they held before: t184's frozen worker, woken, escalated
a run the other worker had escalated while it was frozen (a second ``escalate`` step
under the same id with another time: a second page) before it heard it was out.

``MembershipWatch`` is ticked by a timer a few times a second; ``in_doubt`` holds from
the moment the loop's last tick is older than the session until ``grace`` seconds after
the loop runs again, by which time a dropped member's heartbeat has been answered and
faust's rebalance (``app.rebalancing``) has begun."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class MembershipWatch:
    """``session`` and ``grace`` in seconds; ``clock`` monotonic seconds."""

    def __init__(
        self, session: float, grace: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.session, self.grace, self.clock = session, grace, clock
        # None until the first tick: the worker's start (imports, recovery) is no stall.
        self.seen: float | None = None
        self.doubt_until = 0.0

    def tick(self) -> None:
        """Called by a timer every fraction of a second: a tick later than ``session``
        after the last one starts ``grace`` seconds of doubt, and is said."""
        now = self.clock()
        stood = 0.0 if self.seen is None else now - self.seen
        self.seen = now
        if stood > self.session:
            self.doubt_until = now + self.grace
            log.warning(
                "citybrain: this worker stood still for %.1f s, past its %g s session "
                "(CITYBRAIN_SESSION_TIMEOUT): the group may have given its partitions to "
                "another worker; its timers (deadlines, releases, sweeps) wait %g s for "
                "the group's answer before acting again",
                stood,
                self.session,
                self.grace,
            )

    def in_doubt(self) -> bool:
        """Whether this worker may have lost its partitions without knowing yet."""
        if self.seen is None:
            return False
        now = self.clock()
        return now - self.seen > self.session or now < self.doubt_until


async def group_answer(
    watch: MembershipWatch, dropped: Callable[[], bool], poll: float = 0.1
) -> bool:
    """Whether the group has dropped this worker (``dropped``:
    ``streams.faust_patches.group_dropped``), asked once ``watch`` is out of doubt or as
    soon as it says so: a worker woken past its session learns it from a heartbeat's
    answer, a round trip after it runs again, and a commit's changelog flush must not
    write before then what may have been another worker's for the whole freeze (t192).
    Waits at most the watch's grace (seconds), polling every ``poll`` seconds."""
    while watch.in_doubt() and not dropped():
        await asyncio.sleep(poll)
    return dropped()


async def still_member(watch: MembershipWatch, dropped: Callable[[], bool]) -> bool:
    """Whether an agent may handle the message or batch in hand (t192): not once the
    group has dropped this worker, whose partitions are then another's, which reads the
    message again from the committed offset (written here, a group's or a sensor's state
    would land after the new owner's newer one). Costs two attribute reads and a clock
    read unless the watch is in doubt; then waits for the group's answer
    (``group_answer``)."""
    if not watch.in_doubt() and not dropped():
        return True
    return not await group_answer(watch, dropped)
