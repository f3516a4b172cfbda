"""A log line per key at most every so often: the first is said at once, the ones within
the next ``seconds`` are counted, and the next line says how many there were. So a fault
that repeats (a dead webhook endpoint, a gateway re-sending all day, a timer failing every
second) is visible in the worker's log without flooding it."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

# Keys a rate-limited logger remembers at most (``SayEvery``, ``RepeatFilter``), and the
# characters of a key it keeps: keys come from what fails (an exception's text, a URL,
# a run id in it), and each distinct one was kept for good.
MAX_KEYS = 1024
KEY_CHARS = 300


def _forget_stale(
    last: OrderedDict[Any, float], held: Counter[Any], now: float, seconds: float
) -> None:
    """Drop the oldest keys of ``last`` (key -> when its line was logged, oldest first)
    whose window has passed with nothing held (their next line is logged, with no note,
    whether they are remembered or not), and any past ``MAX_KEYS`` (its held count is
    then lost: its next line has no "N more" note)."""
    while last:
        key, at = next(iter(last.items()))
        if len(last) <= MAX_KEYS and (now - at < seconds or key in held):
            return
        del last[key]
        held.pop(key, None)


class SayEvery:
    """``say(key, text, count=1)`` logs ``text`` at ``level`` on ``logger`` unless a line
    for ``key`` was logged within ``seconds``; then ``count`` is held and added to the
    next line's "(N more since the last such line, not logged)". ``what`` names the held
    things in that note ("warning", "report"). Returns True when it logged.

    At most ``MAX_KEYS`` keys are remembered, each by its first ``KEY_CHARS`` characters:
    a key whose window has passed with nothing held is forgotten when a line is logged,
    and past the bound the oldest is, with its held count (its next line has no note)."""

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
        self._last: OrderedDict[str, float] = OrderedDict()  # oldest line first
        self._held: Counter[str] = Counter()

    def __call__(self, key: str, text: str, count: int = 1, exc_info: bool = False) -> bool:
        now = self.clock()
        key = key[:KEY_CHARS]
        last = self._last.get(key)
        if last is not None and now - last < self.seconds:
            self._held[key] += count
            return False
        held = self._held.pop(key, 0)
        more = f" ({held} more {self.what}s since the last such line, not logged)" if held else ""
        self.logger.log(self.level, "%s%s%s", self.prefix, text, more, exc_info=exc_info)
        self._last[key] = now
        self._last.move_to_end(key)
        _forget_stale(self._last, self._held, now, self.seconds)
        return True

    def __len__(self) -> int:
        """How many keys it remembers (at most ``MAX_KEYS``)."""
        return len(self._last)


class RepeatFilter(logging.Filter):
    """A handler filter that lets through, per logger and message template, one record
    every ``seconds`` from the loggers named by ``prefixes`` (and their children), and
    counts the rest: the next record let through ends with "(N more like it in the last
    S s, not logged)". Records of other loggers pass unchanged.

    Why: with Kafka down, aiokafka logs every reconnect, metadata and fetch attempt:
    about 4,400 lines in 40 s (trial 10), which buried everything else in the log. The
    first of each kind still shows at once, and a line a minute says it goes on."""

    def __init__(
        self,
        prefixes: tuple[str, ...] = ("aiokafka", "kafka"),
        seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes, self.seconds, self.clock = prefixes, seconds, clock
        # Oldest line first; at most MAX_KEYS, as SayEvery's.
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._held: Counter[tuple[str, str]] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if not any(name == p or name.startswith(p + ".") for p in self.prefixes):
            return True
        key = (name, str(record.msg)[:KEY_CHARS])
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.seconds:
            self._held[key] += 1
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        held = self._held.pop(key, 0)
        _forget_stale(self._last, self._held, now, self.seconds)
        if held and last is not None:
            # The message is formatted here so the note is not taken for an argument.
            record.msg = (
                f"{record.getMessage()} ({held} more like it in the last "
                f"{now - last:.0f} s, not logged)"
            )
            record.args = ()
        return True


# mode's Service lifecycle lines ("[^---Recovery]: Starting...", "…: Stopping...", as
# mode's ServiceBase._log_mundane words them): about 260 of them at a worker's start and
# stop at INFO (helper brief t47), burying citybrain's own lines.
# A label may hold brackets itself: faust shortens an agent's name to "streams.app[.]detect".
_LIFECYCLE = re.compile(r"\[\^-*.*\]: (Starting|Stopping)\.\.\.")


class LifecycleFilter(logging.Filter):
    """Drops faust's and mode's service lifecycle lines (``_LIFECYCLE``) at INFO and
    below; every other line passes, and those at WARNING and above always (a service
    that fails to start says so at ERROR)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not isinstance(record.msg, str):
            return True
        return _LIFECYCLE.fullmatch(record.msg) is None


# mode's lines, after its service's prefix (``[^-AppService]: ``).
_CRASH = re.compile(r"(\[\^[^\]]*\]: )?(Crashed reason=|Error: |We experienced a crash!)")


class CrashFilter(logging.Filter):
    """Keeps a crashing worker's traceback off its terminal: mode logs a service's crash
    (``Crashed reason=%r``) and a failed start (``Error: %r``) with the traceback, then
    "We experienced a crash! Reraising original exception...", and the worker exited 1
    with all of it on stderr (helper t85; the README's table: one line, 70 for a bug,
    the traceback with CITYBRAIN_DEBUG=1). Unless ``debug``, the first traceback is
    written to ``crash_file`` and the line names that file instead; "Reraising" is
    dropped (the command's own last line says how the worker ended)."""

    def __init__(self, crash_file: Callable[[], str], debug: bool = False) -> None:
        super().__init__()
        self.crash_file = crash_file
        self.debug = debug
        self.written = ""
        # The exception of the first crash or failed start it saw (mode keeps a crash's
        # as ``crash_reason``, a failed start's nowhere).
        self.error: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        said = _CRASH.match(record.msg)
        if said is None:
            return True
        if said.group(2) == "We experienced a crash!":
            return False
        if self.debug or not record.exc_info:
            return True
        import traceback

        error = record.exc_info[1]
        self.error = self.error or error
        if not self.written and error is not None:
            try:
                path = self.crash_file()
                with open(path, "w", encoding="utf-8") as out:
                    traceback.print_exception(error, file=out)
                self.written = path
            except OSError:
                self.written = ""
        record.exc_info = None
        record.exc_text = None
        where = f"the traceback is in {self.written}" if self.written else "no traceback kept"
        record.msg = f"citybrain: {record.msg} ({where}; CITYBRAIN_DEBUG=1 logs it here)"
        return True


def _clock_time(at: float) -> str:
    """``at`` (epoch seconds) as the log's own times are shown (local, to the second)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


class LostLines:
    """Counts the lines a log handler could not write (a log on a full, gone or read-only
    disk) and says them before the first line it writes again. Installed on a handler by
    ``install``; the handler's own faults that are no write's (a record whose arguments
    do not format) go to its handleError as before.

    Why: Python's StreamHandler hands a failed write to ``handleError``, whose report goes
    to stderr, the same full file: a worker whose log filled its disk went on alerting
    and every line it logged meanwhile was gone unsaid (t184: its configuration reload,
    its stop). Once the disk has room again, the next line is preceded by one WARNING,
    "citybrain: N log lines lost from <time> to <time>: the log could not be written
    ([Errno 28] No space left on device)". ``lost`` (lines not yet said) is readable at
    any time, also while nothing can be written."""

    def __init__(self, handler: logging.Handler, clock: Callable[[], float] = time.time) -> None:
        self.handler, self.clock = handler, clock
        self.lost = 0
        self.first = self.last = 0.0  # when the first and the last lost line came (epoch s)
        self.error = ""
        self._emit = handler.emit
        self._handle_error = handler.handleError
        self._failed = False

    @classmethod
    def install(cls, handler: logging.Handler, clock: Callable[[], float] = time.time) -> LostLines:
        """Wraps ``handler``'s ``emit`` and ``handleError`` (the instance's, not its
        class's); returns the counter."""
        lost = cls(handler, clock)
        handler.emit = lost.emit  # type: ignore[method-assign]
        handler.handleError = lost.handle_error  # type: ignore[method-assign]
        return lost

    def handle_error(self, record: logging.LogRecord) -> None:
        """The handler's handleError: a write's OSError is noted for ``emit``; any other
        fault is the handler's own to report."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            self._handle_error(record)
            return
        self._failed = True
        self.error = str(error)

    def emit(self, record: logging.LogRecord) -> None:
        if self.lost:
            if not self._write(self._note()):
                # Not tried: the note stays the first line once the disk has room.
                self._count()
                return
            self.lost = 0
        if not self._write(record):
            self._count()

    def _count(self) -> None:
        now = self.clock()
        if not self.lost:
            self.first = now
        self.lost += 1
        self.last = now

    def _write(self, record: logging.LogRecord) -> bool:
        """The handler's own emit; False when its write failed (handle_error saw it)."""
        self._failed = False
        self._emit(record)
        return not self._failed

    def _note(self) -> logging.LogRecord:
        """The WARNING saying the lost lines, written before the next line."""
        lost = self.lost
        return logging.LogRecord(
            "citybrain.log",
            logging.WARNING,
            __file__,
            0,
            "citybrain: %d log line%s lost from %s to %s: the log could not be written (%s)",
            (
                lost,
                "" if lost == 1 else "s",
                _clock_time(self.first),
                _clock_time(self.last),
                self.error,
            ),
            None,
        )
