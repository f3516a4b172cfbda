"""streams.logs.RepeatFilter: aiokafka's retry lines while Kafka is down (trial 10: about
4,400 lines in 40 s) become one line per kind a minute, with a count."""

from __future__ import annotations

import errno
import io
import logging
import time

import pytest

from streams.logs import KEY_CHARS, MAX_KEYS, LostLines, RepeatFilter, SayEvery


def _record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_repeated_kafka_line_passes_once_a_minute_with_the_count_held() -> None:
    now = [0.0]
    f = RepeatFilter(seconds=60.0, clock=lambda: now[0])
    template = "Unable connect to node with id %s: %s"
    passed = []
    for second in range(0, 150):
        now[0] = float(second)
        record = _record("aiokafka.conn", template, 1, "Connect call failed")
        if f.filter(record):
            passed.append((second, record.getMessage()))
    assert [s for s, _ in passed] == [0, 60, 120]
    assert passed[0][1] == "Unable connect to node with id 1: Connect call failed"
    assert passed[1][1].endswith("(59 more like it in the last 60 s, not logged)")
    assert passed[2][1].endswith("(59 more like it in the last 60 s, not logged)")


def test_each_kind_of_line_is_counted_apart_and_other_loggers_pass() -> None:
    f = RepeatFilter(seconds=60.0, clock=lambda: 0.0)
    assert f.filter(_record("aiokafka.conn", "Unable connect to node with id %s", 1))
    assert f.filter(_record("aiokafka.cluster", "Unable to update metadata from %s", [1]))
    assert f.filter(_record("aiokafka", "Failed fetch messages from %s", 1))
    assert not f.filter(_record("aiokafka.conn", "Unable connect to node with id %s", 2))
    assert not f.filter(_record("aiokafka", "Failed fetch messages from %s", 1))
    # citybrain's own lines and other libraries' are never held back.
    for _ in range(3):
        assert f.filter(_record("streams.ingest", "citybrain: warning: %s", "x"))
        assert f.filter(_record("aiokafkaish", "not a child of aiokafka"))


def test_faust_lifecycle_lines_at_info_are_dropped_and_other_lines_kept() -> None:
    """Helper brief t47: a worker at INFO printed about 260 "[^--…]: Starting..." and
    "Stopping..." lines. A real mode Service is started and stopped, logging through a
    handler with the filter: its lifecycle lines go, its own lines and warnings stay."""
    import asyncio

    import mode

    from streams.logs import LifecycleFilter

    class Child(mode.Service):
        @property
        def shortlabel(self) -> str:  # as faust shortens an agent's name
            return "Agent: streams.app.create_app.[.]detect"

        async def on_start(self) -> None:
            self.log.info("citybrain: ready on port %s", 6066)
            self.log.warning("a faust warning")

    class Parent(mode.Service):
        def __post_init__(self) -> None:
            self.add_dependency(Child())

    seen: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    unfiltered: list[str] = []
    counter = logging.Handler(logging.INFO)
    counter.emit = lambda record: unfiltered.append(record.getMessage())  # type: ignore[method-assign]
    handler.addFilter(LifecycleFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.addHandler(counter)
    root.setLevel(logging.INFO)

    async def run() -> None:
        service = Parent()
        await service.start()
        await service.stop()

    try:
        asyncio.run(run())
    finally:
        root.removeHandler(handler)
        root.removeHandler(counter)
        root.setLevel(level)
    assert any(m.endswith("[.]detect]: Starting...") for m in unfiltered)  # mode says them
    assert not any(m.endswith(("Starting...", "Stopping...")) for m in seen), seen
    assert any(m.endswith("citybrain: ready on port 6066") for m in seen), seen
    assert any(m.endswith("a faust warning") for m in seen), seen


def test_say_every_remembers_a_bounded_number_of_keys_whatever_the_keys() -> None:
    """SayEvery kept one key per distinct message key for good (a timer's fault text
    naming a run, a webhook URL per receiver): 100,000 distinct keys kept 100,000. Now
    at most MAX_KEYS, each by its first KEY_CHARS characters; a key whose window has
    passed with nothing held is forgotten, and its next line is logged as before."""
    now = [0.0]
    logger = logging.getLogger("tests.say_every")
    say = SayEvery(logger, seconds=60.0, clock=lambda: now[0])
    for n in range(100_000):
        now[0] = n * 0.001  # all within one window: none forgotten by time
        assert say(f"fault {n} " + "x" * 10_000, "text")
    assert len(say) == MAX_KEYS
    assert all(len(key) <= KEY_CHARS for key in say._last)
    # A key still remembered holds its repeats and says how many at its next line.
    assert not say("fault 99999 " + "x" * 10_000, "text")
    now[0] = 1_000.0
    with _caught(logger) as lines:
        assert say("fault 99999 " + "x" * 10_000, "again")
        assert say("fault 0 " + "x" * 10_000, "first again")  # forgotten: said at once
    assert lines == ["again (1 more warnings since the last such line, not logged)", "first again"]
    # Their windows passed with nothing held: the old keys are forgotten at the next line.
    assert len(say) <= MAX_KEYS and set(say._last) == {
        ("fault 99999 " + "x" * 10_000)[:KEY_CHARS],
        ("fault 0 " + "x" * 10_000)[:KEY_CHARS],
    }


def test_the_repeat_filter_remembers_a_bounded_number_of_kinds() -> None:
    now = [0.0]
    f = RepeatFilter(seconds=60.0, clock=lambda: now[0])
    for n in range(5_000):
        assert f.filter(_record("aiokafka", f"line {n} %s" + "y" * 1_000, 1))
    assert len(f._last) == MAX_KEYS
    assert all(len(msg) <= KEY_CHARS for _, msg in f._last)
    now[0] = 120.0
    assert f.filter(_record("aiokafka", "one more %s", 1))
    assert len(f._last) == 1  # the others' windows passed with nothing held


class _caught:
    """The messages ``logger`` logs within the block."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger, self.lines = logger, []  # type: ignore[var-annotated]

    def __enter__(self) -> list[str]:
        outer = self

        class Catch(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                outer.lines.append(record.getMessage())

        self.handler = Catch()
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        return self.lines

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)


class FullDisk(io.StringIO):
    """A log file whose disk is full while ``full``: each write fails as the kernel's."""

    full = False

    def write(self, text: str) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(text)


def test_lines_a_full_disk_refused_are_said_once_it_has_room_and_nothing_else_is_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """t184: a worker's log on a full disk lost every line unsaid, and StreamHandler's
    handleError printed a '--- Logging error ---' traceback to stderr (faust's stderr is
    the log again: 15 WARNING lines of a traceback once the disk had room)."""
    disk = FullDisk()
    handler = logging.StreamHandler(disk)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    clock = iter([1.0e9, 1.0e9 + 5, 1.0e9 + 9])
    lost = LostLines.install(handler, clock=lambda: next(clock))
    logger = logging.getLogger("t184.full")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("before")
        disk.full = True
        for i in range(3):
            logger.info("during %d", i)
        assert lost.lost == 3
        disk.full = False
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    first, last = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) for t in (1e9, 1e9 + 9))
    assert disk.getvalue().splitlines() == [
        "INFO before",
        f"WARNING citybrain: 3 log lines lost from {first} to {last}: the log could not be "
        "written ([Errno 28] No space left on device)",
        "INFO after",
    ]
    assert lost.lost == 0
    assert capsys.readouterr().err == ""


def test_a_line_that_does_not_format_is_still_the_handlers_own_fault(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = logging.StreamHandler(io.StringIO())
    lost = LostLines.install(handler)
    handler.handle(logging.LogRecord("t184", logging.INFO, __file__, 1, "%d", ("x",), None))
    assert lost.lost == 0
    assert "--- Logging error ---" in capsys.readouterr().err
