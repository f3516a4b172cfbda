"""A log line per key at most every so often: the first is said at once, the ones within
the next ``seconds`` are counted, and the next line says how many there were. So a fault
that repeats (a dead webhook endpoint, a gateway re-sending all day, a timer failing every
second) is visible in the worker's log without flooding it."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable


class SayEvery:
    """``say(key, text, count=1)`` logs ``text`` at ``level`` on ``logger`` unless a line
    for ``key`` was logged within ``seconds``; then ``count`` is held and added to the
    next line's "(N more since the last such line, not logged)". ``what`` names the held
    things in that note ("warning", "report"). Returns True when it logged."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.WARNING,
        seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = "",
        what: str = "warning",
    ) -> None:
        self.logger, self.level, self.seconds, self.clock = logger, level, seconds, clock
        self.prefix, self.what = prefix, what
        self._last: dict[str, float] = {}
        self._held: Counter[str] = Counter()

    def __call__(self, key: str, text: str, count: int = 1, exc_info: bool = False) -> bool:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.seconds:
            self._held[key] += count
            return False
        held = self._held.pop(key, 0)
        more = f" ({held} more {self.what}s since the last such line, not logged)" if held else ""
        self.logger.log(self.level, "%s%s%s", self.prefix, text, more, exc_info=exc_info)
        self._last[key] = now
        return True
