"""``replay`` and ``ingest``: feeds from files, HTTP and MQTT onto
Kafka, with their progress, summaries and resume lines."""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import itertools
import logging
import shlex
import signal
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from citybrain.cli.base import (
    EXIT_INTERRUPTED,
    EXIT_SERVICE,
    LONG_REPLAY_SECONDS,
    PROGRESS_OPTIONS,
    CliError,
    _duration,
    _interrupt,
    _need_file,
    _settings,
    given_argv,
    need_all,
    prefix_said,
    without_options,
)
from citybrain.cli.stack import (
    _require_kafka,
    _require_message_limits,
    _require_mqtt,
    _require_partition_counts,
    quiet_kafka_loggers,
)
from citybrain.commands import (
    command_line,
)
from citybrain.text import agreeing, counted, draws_live, shown_lines, warn
from streams.errors import StreamsError, show
from streams.events import NO_ZONE
from streams.settings import Settings


def cmd_replay(args: argparse.Namespace) -> int:
    # Said as every command says it (the reader's "cannot read: No such file or
    # directory" was replay's own wording, helper brief t37), every bad one at once.
    need_all([functools.partial(_need_feed, Path(name), "FILE") for name in args.files])
    s = _settings()
    # Two passes, so that memory does not grow with the files (t129: every event was
    # held until sent, ~145 bytes each, 10^7 rows 1.5 GB): every row is checked first,
    # none held (a bad row with --on-error stop stops it before anything is sent), the
    # checked events written to disk, then read back, merged in time order, as they are
    # sent (FeedStream).
    check = _check(args, s)
    try:
        return _replay_checked(args, s, check)
    finally:
        check.close()  # its events on disk (FeedStream closes it too)


def _check(args: argparse.Namespace, s: Settings) -> Any:
    """The replay's first pass over its files (``streams.feeds.check_feeds``, rows bound by
    ``args.max_message_bytes``); a file it cannot read or check is a ``CliError``."""
    from streams.errors import SeriesFileError
    from streams.feeds import check_feeds

    try:
        return check_feeds(
            args.files,
            on_error=args.on_error,
            max_message_bytes=args.max_message_bytes,
            late_after=time.time() + s.max_future_skew,
            packed=bool(args.pack),
        )
    except SeriesFileError as exc:
        # detect's input given to replay: the symmetric hint of detect's (t53 leftover).
        raise CliError(
            f"{exc}; nothing was sent: a timestamp,value file is one series, the input of "
            f"`{command_line('detect', '--input', str(exc.path.absolute()))}`; replay "
            "sends readings of named sensors (docs/events.md)"
        ) from None
    except StreamsError as exc:
        raise _unreadable(exc, args.on_error) from None


def _nothing_to_send(args: argparse.Namespace, check: Any) -> None:
    """Raise ``CliError`` when ``check`` holds no event to send, or fewer than --skip."""
    bad, headers_only, total = check.bad_rows, check.headers_only, check.events
    if not total:
        # Nothing to send was "read 0 rows: sent 0 …", exit 0, or with every row bad and
        # --on-error skip "sent 0 …, skipped N bad rows", exit 0: a script took it for a
        # replay done (t121); detect refuses such a file (exit 2), and so does replay.
        for row in bad:
            print(f"skipped {row}", file=sys.stderr)
        raise CliError(
            f"every row read is bad ({counted(len(bad), 'bad row')}, above): nothing was sent; "
            "fix them (docs/events.md)"
            if bad
            else f"{_named(headers_only)} no rows after the header: nothing was sent; give a "
            "file with reading or incident rows (docs/events.md)"
        )
    if args.skip > total:
        raise CliError(f"--skip is {args.skip}, but the files hold only {total:,} events")


def _replay_checked(args: argparse.Namespace, s: Settings, check: Any) -> int:
    """The replay after its first pass (``check``, a ``streams.feeds.FeedCheck``)."""
    from streams.feeds import RECORD_FRAMING
    from streams.partitioning import MIN_PACK_BYTES

    _nothing_to_send(args, check)
    _require_kafka(s)
    if args.pack:  # packs go to the partition computed here, single readings by key
        _require_partition_counts(s, ("readings",))
    # Asked always, once Kafka has answered (``_require_kafka``; about 0.1 s): a topic
    # may take any size, and one row larger than it takes costs every message after it
    # (t215: on a readings topic taking 30,000 bytes, one 40 kB reading among 3,000 was
    # "sent 3 readings …, Kafka refused 2,998", exit 1, no row named: the broker was
    # asked only when packing, past the default --max-message-bytes, or for a message
    # of 64 KiB or more).
    bound = _broker_bound(s)
    if bound is not None and bound[0] < args.max_message_bytes:
        # A message the broker refuses as too large is no loss of its own: kafka-python's
        # idempotent producer takes the refusal as fatal and fails every message queued
        # after it (t162: one 1.2 MB reading of 3,001 rows, "sent 2 readings, Kafka
        # refused 2,999"). So the rows are checked again against what the broker takes,
        # and refused or skipped by file:line as any other row too large; packs are split
        # below it.
        size, topic, limit = bound
        if args.pack and size < MIN_PACK_BYTES:
            # ReadingPacker bounds a pack by 1,024 bytes at least: its packs would be
            # refused, and the first refusal fails every message after it.
            raise CliError(
                f"the broker takes messages of at most {limit:,} bytes on {topic}, too "
                f"few for packs ({MIN_PACK_BYTES:,} bytes and Kafka's framing, "
                f"{RECORD_FRAMING}): nothing was sent; replay without --pack, or raise "
                "the topic's max.message.bytes",
                EXIT_SERVICE,
            )
        print(
            f"citybrain: the broker takes messages of at most {limit:,} bytes on {topic}, "
            "less than --max-message-bytes "
            f"{args.max_message_bytes:,}: the rows are checked again against {size:,} "
            "(key and value; the rest is Kafka's framing)",
            file=sys.stderr,
        )
        args.max_message_bytes = size
        check.close()
        check = _check(args, s)
        try:
            _nothing_to_send(args, check)
            return _replay_sending(args, s, check)
        finally:
            check.close()
    return _replay_sending(args, s, check)


def _broker_bound(s: Settings) -> tuple[int, str, int] | None:
    """(the largest key and value a message may have, the topic named with where its
    bound comes from, that bound: its max.message.bytes) for the replay topic that takes
    the smallest messages, or None when the broker cannot say (its answer is left to the
    sends)."""
    from kafka.errors import KafkaError

    from citybrain.errors import KafkaStoppedError
    from citybrain.stack.topics import message_limits
    from streams.feeds import RECORD_FRAMING

    unmade: set[str] = set()
    try:
        # Topics not made yet too: the broker makes them at the first send, with its
        # message.max.bytes (t204: packs of ~1 MB to a new prefix on a broker taking
        # 100,000 bytes, every one refused).
        limits = message_limits(s, ("readings", "incidents"), unmade)
    except (KafkaError, KafkaStoppedError):
        return None
    if not limits:
        return None
    topic, limit = min(limits.items(), key=lambda item: item[1])
    said = (
        f"{topic} (not made yet: the broker's message.max.bytes, which it makes it with)"
        if topic in unmade
        else f"{topic} (its max.message.bytes)"
    )
    # Not raised to --max-message-bytes' least (1,024): a topic taking 1,000 bytes then
    # got record batches of 1,088 (t204: 6 readings sent of 59, the rest refused).
    return max(limit - RECORD_FRAMING, 1), said, limit


def _replay_sending(args: argparse.Namespace, s: Settings, check: Any) -> int:
    """The replay once Kafka answers: its notes, then ``check``'s events sent."""
    from streams.feeds import FeedStream

    bad, headers_only, total = check.bad_rows, check.headers_only, check.events
    for line in replay_target(s, given_argv(args)):
        print(line)
    for row in bad:
        print(f"skipped {row}", file=sys.stderr)
    for line in check.changed:
        print(f"citybrain: warning: {shown_lines(line)}", file=sys.stderr)
    if headers_only:  # beside files with events: said, not refused
        warn(
            f"{_named(headers_only)} no rows after the header: "
            f"nothing of {'it' if len(headers_only) == 1 else 'them'} is sent",
        )
    stream = FeedStream(check)
    try:
        stream.open()  # a file out of time order is sorted on disk here, before sending
    except StreamsError as exc:
        stream.close()
        raise _unreadable(exc, args.on_error) from None
    with contextlib.closing(stream):
        events = iter(stream)
        # The last event --skip leaves out: the last one sent, if none is sent now.
        left_out = collections.deque(itertools.islice(events, args.skip), maxlen=1)
        skipped = left_out[0] if left_out else None
        first = next(events, None)
        todo: Iterator[Any] = events if first is None else itertools.chain([first], events)
        count = total - args.skip
        if args.skip:
            print(f"resuming: the first {args.skip:,} of {total:,} events are not sent again")
        if first is not None:
            # The late events are the last in time order: those --skip leaves out are late
            # only when every event sent is.
            late = min(check.late, count)
            ahead = ahead_of_clock_count(
                late,
                count,
                s.max_future_skew,
                check.first_late if check.late <= count else first.ts,
            )
            if ahead:
                print(f"citybrain: warning: {shown_lines(ahead)}", file=sys.stderr)
            slow = replay_span_note(
                count, first.ts, check.last_ts, None if args.max else args.speed
            )
            if slow:
                print(slow)
        unregistered = Unregistered(s.grid_file)
        stats = _send(args, s, unregistered.counting(todo), count, total, skipped)
    refused = stats.failed_readings + stats.failed_incidents
    print(
        replay_summary(
            total + len(bad),
            stats.readings - stats.failed_readings,
            stats.incidents - stats.failed_incidents,
            len(bad),
            args.skip,
            refused,
        )
        + f" ({stats.seconds:.1f}s)"
    )
    if stats.failed:  # what was not sent first: it decides the exit status
        print(replay_refused(stats, args.max_message_bytes), file=sys.stderr)
    note = unregistered.note(s.topic_prefix)
    if note:
        print(f"citybrain: warning: {shown_lines(note)}", file=sys.stderr)
    return 1 if stats.failed else 0


def _unreadable(exc: Exception, on_error: str) -> CliError:
    """The replay's refusal of a file it could not read or check: nothing was sent."""
    row = _row_fault(str(exc)) and on_error == "stop"
    if row and NO_ZONE in str(exc):
        # A file written without zones (a pandas or spreadsheet export) lacks one in every
        # row: --on-error skip would have sent none of them (t174).
        fix = "the file's timestamps (an export without zones has none in any row)"
    elif row:
        fix = "that row, or give --on-error skip to send the good rows and list the bad ones"
    else:
        fix = "the file, or leave it out if it is not a reading or incident CSV (docs/events.md)"
    return CliError(
        f"{exc}; nothing was sent (a replay reads every file before it sends): fix {fix}"
    )


def _send(
    args: argparse.Namespace,
    s: Settings,
    todo: Iterator[Any],
    count: int,
    total: int,
    skipped: Any,
) -> Any:
    """Send ``todo`` (``count`` events, of ``total`` in the files; ``skipped`` the last
    event --skip left out) with a progress bar; an interruption or a Kafka that stops
    answering is a ``CliError`` saying how far it got and how to send the rest."""
    from kafka.errors import KafkaTimeoutError

    from streams.feeds import Replayer
    from streams.partitioning import ReadingPacker

    replayer = Replayer(
        s.kafka_bootstrap,
        s.topic("readings"),
        s.topic("incidents"),
        s.kafka_python_options(),
        ReadingPacker(s.partitions, args.pack, args.max_message_bytes) if args.pack else None,
        max_message_bytes=args.max_message_bytes,
    )
    # A SIGTERM (kill, a service manager) ends the replay as Ctrl-C does: with how far
    # it got and the command that sends the rest.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        try:
            with replay_bar() as progress:
                task = progress.add_task("replay", total=count)
                # Not at a terminal (a pipe, a log file), the bar shows nothing until
                # the end (t134: 10 minutes without a word): a plain line every few
                # seconds on stderr instead, as `make demo` prints.
                plain = None if draws_live(progress.console) else PlainProgress(count)

                def advance(n: int) -> None:
                    progress.advance(task, n)
                    if plain is not None:
                        plain.advance(n)

                try:
                    return replayer.replay(todo, None if args.max else args.speed, advance)
                except KeyboardInterrupt:
                    # The bar hears of sent events every 1,000: show the true count,
                    # the one the message below gives, before the bar stops.
                    replayer.drain()
                    sent = replayer.stats.readings + replayer.stats.incidents
                    progress.update(task, completed=sent)
                    progress.refresh()
                    raise
        except (KeyboardInterrupt, KafkaTimeoutError) as exc:
            stats = replayer.stats
            sent = stats.readings + stats.incidents
            refused = stats.failed_readings + stats.failed_incidents
            if stats.failed:
                # Said as a finished replay says it: interrupted, the refused events were
                # counted as sent and left out of the resume command unsaid (trial 26).
                print(replay_refused(stats, args.max_message_bytes), file=sys.stderr)
            last = getattr(stats, "last", None) if sent else skipped
            stopped = replay_stopped(args, args.skip + sent, total, last, refused)
            if isinstance(exc, KeyboardInterrupt):
                raise CliError(stopped, EXIT_INTERRUPTED) from None
            # Kafka stopped taking or acknowledging messages part-way: it hung for ever,
            # silent (helper t85). Exit 3, how far it got, what may be missing.
            raise CliError(
                f"Kafka at {s.kafka_bootstrap} stopped answering part-way ({exc}): "
                f"{stopped.removeprefix('interrupted ')}; the last messages it did not "
                "acknowledge may be missing: to be sure, send again from an earlier --skip",
                EXIT_SERVICE,
            ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        replayer.close()


def replay_bar(console: Any = None) -> Any:
    """The replay's progress bar (a ``rich.progress.Progress``) on ``console`` (rich's
    stdout console by default): drawn at a terminal only. Elsewhere (a pipe, a log) it
    is disabled, as the plain lines stand for it: t143 found its last frame, ``replay
    ━━━━ 1,410/11,520 events 0:00:16 eta 0:02:02``, printed into the log at the end."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = console or Console()
    return Progress(
        TextColumn("replay"),
        BarColumn(),
        TextColumn(PROGRESS_COUNT),
        TextColumn("events"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=not draws_live(console),
    )


def _named(paths: Sequence[Path]) -> str:
    """``FILE 'a.csv' has`` or ``FILE 'a.csv' and FILE 'b.csv' have``, as the files were
    given."""
    names = [f"FILE {str(p)!r}" for p in paths]
    said = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{said} {'has' if len(names) == 1 else 'have'}"


# An unregistered sensor's first few ids are named, each with the closest registered one.
UNREGISTERED_SHOWN = 3


def unregistered_note(events: Iterable[Any], grid_file: Path, prefix: str) -> str:
    """How many of ``events`` (``streams.feeds.Event``) the worker will refuse by the grid
    in ``grid_file`` (the worker's CITYBRAIN_GRID_FILE), per reason, with the first
    ``UNREGISTERED_SHOWN`` cases of each: a sensor (a reading) or a cell (a reading or a
    report) the grid does not have, with the closest it has (``unknown_sensor``,
    ``unknown_cell``), a kind it does not declare (``unknown_kind``), a value outside the
    kind's plausible range (``out_of_range``), a unit that is not the kind's
    (``bad_unit``), a sensor sent with another kind or cell than it is registered with
    (``registration_mismatch``). A worker reading ``prefix`` dead-letters them (a
    newcomer's typo in a CSV was "sent 1 reading", exit 0; t143: a row in metres for a
    gauge in feet, ``bad_unit``, still was), and the note ends with the ``deadletters``
    command that lists them, for that prefix. "" when the worker takes all, or the grid
    cannot be read (the worker's own start says why)."""
    tally = Unregistered(grid_file)
    for event in events:
        tally.add(event)
    return tally.note(prefix)


# Per reason, in the order the worker checks a reading (streams.events.EventValidator):
# what the note says of the rows.
_GRID_REASONS: dict[str, str] = {
    "unknown_sensor": "named a sensor that {grid} does not have",
    "unknown_kind": "named a kind that {grid} does not declare",
    "out_of_range": "gave a value outside its kind's plausible range in {grid}",
    "bad_unit": "gave a unit that is not its kind's in {grid}",
    "unknown_cell": "named a cell that {grid} does not have",
    "registration_mismatch": "named a sensor with another kind or cell than {grid} registers",
}


class Unregistered:
    """``unregistered_note`` counted as the events go by (``add``, or ``counting`` over
    an iterator), so a replay need not hold them: per reason, the rows and the distinct
    cases (in the order first met); the grid is read once, up front."""

    def __init__(self, grid_file: Path) -> None:
        from playbooks.errors import PlaybookError
        from playbooks.loader import load_grid
        from streams.events import Reading

        self._reading = Reading  # imported once: ``add`` runs for every event sent
        self.grid_file = grid_file
        try:
            self.grid: Any = load_grid(grid_file)
        except (PlaybookError, OSError):
            self.grid = None
        self.rows = dict.fromkeys(_GRID_REASONS, 0)
        self.ids: dict[str, dict[Hashable, Any]] = {reason: {} for reason in self.rows}

    def add(self, event: Any) -> None:
        """Count ``event`` if the worker would refuse it by the grid (``fault``)."""
        if self.grid is None:
            return
        found = self.fault(event)
        if found is None:
            return
        reason, case = found
        self.rows[reason] += 1
        # The first event of each case is kept and written out in ``note``, for the few
        # shown only: the nearest id is a search of the grid, and a case keyed by its
        # value (a file of out-of-range rows) would keep a line per row.
        self.ids[reason].setdefault(case, event)

    def fault(self, event: Any) -> tuple[str, Hashable] | None:
        """(reason, the case's key) for an event the worker refuses by the grid, checked
        in the worker's order (EventValidator's reading: the sensor first, then kind,
        value, unit, cell, registration), or None. A case is the id, kind or pairing at
        fault (``case_text`` writes it out), not the row's value."""
        grid = self.grid
        cell = getattr(event, "grid_cell", None)
        if not isinstance(event, self._reading):
            if isinstance(cell, str) and cell not in grid.cells:
                return "unknown_cell", cell
            return None
        sensor = grid.sensors.get(event.sensor_id)
        if sensor is None:
            return "unknown_sensor", event.sensor_id
        kind = grid.kinds.get(event.kind)
        if kind is None:
            return "unknown_kind", event.kind
        if not kind.min <= event.value <= kind.max:
            return "out_of_range", kind.id
        if event.unit != kind.unit:
            return "bad_unit", (kind.id, event.unit)
        if cell not in grid.cells:
            return "unknown_cell", cell
        if sensor.cell != cell or sensor.kind != event.kind:
            return "registration_mismatch", (event.sensor_id, event.kind, cell)
        return None

    def case_text(self, reason: str, event: Any) -> str:
        """The case of ``reason`` that ``event`` (its first row) stands for, as the note
        shows it. An id is shown in its first 80 characters: a 120,000-character sensor
        id was printed whole, a 360 KB warning line."""
        grid, cell = self.grid, getattr(event, "grid_cell", None)
        if reason == "unknown_cell":
            return f"{show(cell)}{grid.near_cell(cell)}"
        if reason == "unknown_sensor":
            return f"{show(event.sensor_id)}{grid.near_sensor(event.sensor_id)}"
        if reason == "unknown_kind":
            return f"{show(event.kind)}{grid.near_kind(event.kind)}"
        kind = grid.kinds[event.kind]
        if reason == "out_of_range":
            return (
                f"{event.value:g} {kind.unit} for {kind.id} (plausible in "
                f"[{kind.min:g}, {kind.max:g}] {kind.unit})"
            )
        if reason == "bad_unit":
            return f"{show(event.unit)} for {kind.id} (measured in {kind.unit})"
        sensor = grid.sensors[event.sensor_id]
        return (
            f"{show(event.sensor_id)} as {show(event.kind)} in {show(cell)} (registered "
            f"as {sensor.kind} in {sensor.cell})"
        )

    def counting(self, events: Iterator[Any]) -> Iterator[Any]:
        """``events``, each added as it passes."""
        for event in events:
            self.add(event)
            yield event

    def note(self, prefix: str) -> str:
        """The warning for the events added (``unregistered_note``), or ""."""
        grid, rows = self.grid, self.rows
        if grid is None or not any(rows.values()):
            return ""
        where = f"{self.grid_file.name} (CITYBRAIN_GRID_FILE)"
        parts = []
        for reason, said in _GRID_REASONS.items():
            if not rows[reason]:
                continue
            firsts = list(self.ids[reason].values())[:UNREGISTERED_SHOWN]
            named = [self.case_text(reason, event) for event in firsts]
            more = len(self.ids[reason]) - len(named)
            parts.append(
                f"{counted(rows[reason], 'row')} {said.format(grid=where)}, dead-lettered "
                f"as {reason}: {', '.join(named)}" + (f" and {more:,} more" if more else "")
            )
        listed = command_line("deadletters", env={"CITYBRAIN_TOPIC_PREFIX": prefix})
        return (
            "; ".join(parts)
            + f" (by a worker reading prefix {prefix!r}, which raises no alert on them: "
            f"`{listed}`)"
        )


def replay_refused(stats: Any, max_message_bytes: int) -> str:
    """What Kafka refused of a replay (a ``ReplayStats`` with failures), and for messages
    too large for the broker what to do (trial 19: "Kafka refused 2 messages; the first:
    MessageSizeTooLargeError: None", after a summary that counted their 20,000 readings
    as sent)."""
    held = ", ".join(
        counted(n, noun)
        for n, noun in ((stats.failed_readings, "reading"), (stats.failed_incidents, "incident"))
        if n
    )
    line = (
        f"citybrain: Kafka refused {counted(stats.failed, 'message')} ({held}, not sent); "
        f"the first: {stats.first_failure}"
    )
    if "MessageSizeTooLarge" in stats.first_failure:
        line += (
            f". The largest was {stats.largest_failed:,} bytes: the broker takes smaller "
            "messages (its message.max.bytes, or the topic's max.message.bytes; Kafka's "
            f"default is 1,048,588) than --max-message-bytes {max_message_bytes:,} allows: "
            "give a smaller --max-message-bytes (with --pack, packs are split below it)"
        )
    return line


# The replay bar's count, with thousands separators like every count printed: rich's
# MofNCompleteColumn gave "15/11520" beside "11,520 events" in the lines around it.
PROGRESS_COUNT = "{task.completed:,.0f}/{task.total:,.0f}"

# Seconds between two plain progress lines (PlainProgress), as the demo's.
PLAIN_PROGRESS_SECONDS = 5.0


class PlainProgress:
    """A replay's progress as plain lines on ``stream`` (stderr), at most one every
    ``every`` seconds of ``clock`` (seconds, monotonic): ``replay: 12,345 of 100,000
    events sent (12 %), 10 s``. For a replay whose output is no terminal, where the
    bar draws nothing until it ends."""

    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        every: float = PLAIN_PROGRESS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.sent = 0
        self.stream = stream
        self.every = every
        self.clock = clock
        self.started = clock()
        self._last = self.started

    def advance(self, n: int) -> None:
        """Count ``n`` more events sent; a line when ``every`` seconds have passed."""
        self.sent += n
        now = self.clock()
        if now - self._last >= self.every:
            self._last = now
            print(self.line(now), file=self.stream or sys.stderr, flush=True)

    def line(self, now: float) -> str:
        share = 100 * self.sent / self.total if self.total else 100.0
        return (
            f"replay: {self.sent:,} of {self.total:,} events sent ({share:.0f} %), "
            f"{now - self.started:.0f} s"
        )


def replay_duration_note(events: Sequence[Any], speed: float | None) -> str:
    """One line when replaying ``events`` (in time order, each with ``ts`` in seconds)
    at ``speed`` x real time would take longer than LONG_REPLAY_SECONDS, naming the
    estimate and the options that shorten it; "" otherwise (and for ``--max``)."""
    if not events:
        return ""
    return replay_span_note(len(events), events[0].ts, events[-1].ts, speed)


def replay_span_note(count: int, first: float, last: float, speed: float | None) -> str:
    """``replay_duration_note`` of ``count`` events from event time ``first`` to ``last``
    (seconds), which is all it needs of them: a replay does not hold its events."""
    if speed is None or count < 2:
        return ""
    seconds = (last - first) / speed
    if seconds <= LONG_REPLAY_SECONDS:
        return ""
    if seconds > 100 * 365 * 86_400:  # inf for --speed 1e-320: int(inf) raised
        took = "more than a century"
        return (
            f"note: at --speed {speed:g} the replay takes {took}; give --max to send them "
            "as fast as Kafka takes them, or a higher --speed"
        )
    span = _duration(last - first)  # "12 min", not "0.2 h"
    return (
        f"note: these events span {span} of event time: at --speed {speed:g} the "
        f"replay takes about {_duration(seconds)}; give --max to send them as fast as "
        "Kafka takes them, or a higher --speed"
    )


def ahead_of_clock(events: Sequence[Any], skew: float, now: float) -> str:
    """The warning for events whose event time is more than ``skew`` seconds after
    ``now`` (the worker's rule: it dead-letters them as ``in_future`` instead of
    detecting on them), or "" when there are none."""
    late = [e.ts for e in events if e.ts > now + skew]
    return ahead_of_clock_count(len(late), len(events), skew, late[0] if late else 0.0)


def ahead_of_clock_count(late: int, count: int, skew: float, first: float) -> str:
    """``ahead_of_clock`` of ``late`` events of ``count``, the first in time order at
    ``first`` (seconds since the epoch); "" when ``late`` is 0."""
    from streams.events import format_ts

    if not late:
        return ""
    return (
        f"{counted(late, 'event')} of {count:,} {agreeing(late, 'is', 'are')} "
        f"more than {skew:g} s ahead "
        f"of this machine's clock (the first: {format_ts(first)}): the worker "
        "dead-letters them (reason in_future, CITYBRAIN_MAX_FUTURE_SKEW) instead of "
        "scoring them"
    )


def _need_feed(path: Path, option: str) -> None:
    """``_need_file`` for a reading or incident CSV given to ``option``; a directory is
    answered with the feed files in it."""
    from streams.inputs import is_dir

    _need_file(
        path,
        option,
        _replay_files_in(path) if is_dir(path) else "",
        kind="CSV",
        expects=("feed",),
    )


def _replay_files_in(directory: Path) -> str:
    """What to give instead of ``directory``: the canonical reading and incident CSVs in
    it (a glob would also take any other CSV there, e.g. the classifier's training file
    beside the slices in datasets/)."""

    from streams.csvfile import Record, csv_name, read_records
    from streams.feeds import INCIDENT_COLUMNS, READING_COLUMNS, looks_like_row

    found = []
    for path in sorted(directory.iterdir()):
        if not csv_name(path) or not path.is_file():
            continue
        try:
            header = next(read_records(path, looks_like_row(len(READING_COLUMNS))), None)
        except Exception:  # an unreadable file is simply not suggested
            continue
        if isinstance(header, Record) and header.fields in (READING_COLUMNS, INCIDENT_COLUMNS):
            found.append(str(path))
    if not found:
        return "it holds no reading or incident CSV (docs/events.md)"
    return f"name the reading and incident CSVs in it: {shlex.join(found)}"


def replay_target(settings: Settings, argv: Sequence[str]) -> list[str]:
    """Where a replay sends (Kafka and topics), and, when the last demo's worker still
    runs under another topic prefix, how to send to it instead: ``argv``, the replay's
    own arguments as given, every option kept (t40: `--max --on-error skip` were
    dropped, and the suggested command stopped at the bad row and ran 3 min at 60x) but
    those about this prefix's progress (``PROGRESS_OPTIONS``: ``--skip``)."""
    lines = [
        f"sending to Kafka at {settings.kafka_bootstrap}, topics {settings.topic('readings')} "
        f"and {settings.topic('incidents')} ({prefix_said(settings)})"
    ]
    return lines + _feed_the_demo(settings, argv, "")


def ingest_target(settings: Settings, argv: Sequence[str]) -> list[str]:
    """Where an ingest writes (Kafka and topics), and, when the last demo's worker still
    runs under another topic prefix, the exact command (``argv``: this command's
    arguments) that feeds it instead: readings written under the default prefix never
    reach a demo's worker, which reads ``demo-…`` topics."""
    from citybrain.demo import DemoFiles, demo_gateway_hint

    lines = [
        f"writing to Kafka at {settings.kafka_bootstrap}, topic {settings.topic('readings')} "
        f"(unmapped messages to {settings.topic('deadletter')}; {prefix_said(settings)})"
    ]
    env = {}
    if "http" in argv[:2] and demo_gateway_hint(settings):
        # With no tokens file an HTTP ingest refuses every POST: the demo's has a gateway
        # token (t66: the printed command, typed, answered only 401s).
        env["CITYBRAIN_API_TOKENS_FILE"] = str(DemoFiles.of(settings).tokens.absolute())
    return lines + _feed_the_demo(settings, argv, ", so it will not see these readings", env)


def _feed_the_demo(
    settings: Settings, argv: Sequence[str], consequence: str, env: dict[str, str] | None = None
) -> list[str]:
    """A note with the command (``argv`` under the demo's prefix, after ``env``'s
    settings too) that feeds the last demo's worker, when it still runs under another
    topic prefix; none otherwise."""
    from citybrain.demo import read_demo_state

    demo = read_demo_state(settings)
    prefix = demo.get("topic_prefix") if demo else None
    if not isinstance(prefix, str) or prefix == settings.topic_prefix:
        return []
    # Options that say how far THIS prefix got are not the demo's: a resumed replay's
    # `--skip 5`, carried over, left out 5 events its worker never had (t46).
    argv, dropped = without_options(argv, PROGRESS_OPTIONS)
    command = command_line(*argv, env={"CITYBRAIN_TOPIC_PREFIX": prefix, **(env or {})})
    why = f", from the first event ({shlex.join(dropped)} is this prefix's)" if dropped else ""
    return [
        f"note: the demo's worker (still running) reads the prefix {prefix!r}, not this "
        f"one{consequence}; to feed it instead{why}: {command}"
    ]


def _row_fault(message: str) -> bool:
    """Whether a reader's ``file:line: reason`` is about a data row (line > 1), the only
    kind of fault --on-error skip gets past (not a header, an empty or unreadable file)."""
    import re

    line = re.search(r":(\d+): ", message)
    return line is not None and int(line.group(1)) > 1 and "no data rows" not in message


def replay_stopped(
    args: argparse.Namespace, done: int, total: int, last: Any, refused: int = 0
) -> str:
    """How far an interrupted replay got and the command that sends the rest: ``done``
    events of ``total`` (in the replay's time order, counting any --skip) were handed to
    Kafka, the last of them ``last`` (an event; None if unknown: not named), ``refused``
    of them refused by it (said before this line). A resumed replay (``--skip N``) says
    how many this run sent apart from the N sent before (t209: resumed with --skip 340,
    it said "interrupted after sending 895 of 11,520 events", having sent 555)."""
    from streams.events import Reading, format_ts

    if done == 0:
        return (
            f"interrupted before any of the {total:,} events was sent; run it again: "
            f"{command_line(*given_argv(args))}"
        )
    if last is None:
        said = ""
    else:
        what = last.sensor_id if isinstance(last, Reading) else f"report {last.report_id}"
        said = f"{format_ts(last.ts)} {what}"
    argv = ["replay", *(str(Path(file).absolute()) for file in args.files)]
    if args.max:
        argv.append("--max")
    elif args.speed != 60.0:
        argv += ["--speed", f"{args.speed:g}"]
    if args.on_error != "stop":
        argv += ["--on-error", args.on_error]
    if args.pack:
        argv += ["--pack", str(args.pack)]
    if args.max_message_bytes != 1_000_000:
        argv += ["--max-message-bytes", str(args.max_message_bytes)]
    resume = command_line(*argv, "--skip", str(done))
    parts = [f"the last: {said}"] if said else []
    if refused:
        parts.append(
            f"Kafka refused {refused:,} of them (above), not sent by the command below either"
        )
    skip = getattr(args, "skip", 0) or 0
    if skip:
        parts.insert(0, f"{done:,} with the first {skip:,}, sent before: --skip {skip}")
    sent = f"{done - skip:,} more" if skip else f"{done:,}"
    return (
        f"interrupted after sending {sent} of {total:,} events"
        + (f" ({'; '.join(parts)})" if parts else "")
        + f"; to send the rest: {resume}"
    )


def replay_summary(
    read: int, readings: int, incidents: int, skipped: int, resumed: int = 0, refused: int = 0
) -> str:
    """The replay's last line: rows read = sent + skipped (+ those ``--skip`` left out,
    ``resumed``: the files' rows are all read, whatever --skip says; + those Kafka
    ``refused``, said below it), always."""
    before = f"left out the first {resumed:,} (--skip, sent before), " if resumed else ""
    after = f", Kafka refused {refused:,} (below)" if refused else ""
    return (
        f"read {counted(read, 'row')}: {before}sent {counted(readings, 'reading')} and "
        f"{counted(incidents, 'incident')}, skipped {counted(skipped, 'bad row')}{after}"
    )


def cmd_ingest(args: argparse.Namespace) -> int:
    from citybrain.ingest.service import IngestOptions, run_http, run_mqtt
    from streams.logs import LostLines

    logging.basicConfig(
        level=getattr(logging, args.loglevel.upper()),
        format="[%(asctime)s] %(levelname)s %(message)s",
    )
    for handler in logging.getLogger().handlers:
        # A log on a full disk: what could not be written is said once it can be.
        LostLines.install(handler)
    quiet_kafka_loggers()
    if args.max_pending < args.pack_size:  # before any connection: bad input is status 2
        raise CliError(
            f"--max-pending is {args.max_pending}, below --pack-size {args.pack_size}: "
            "give at least one pack's worth"
        )
    s = _settings()

    def require_services() -> None:
        # After the options, the grid and the listening port are checked (bad input is
        # status 2), before kafka-python and paho start retrying, silently, in the
        # background: where the readings go is said once it is the next thing to do.
        for line in ingest_target(s, given_argv(args)):
            print(line, flush=True)
        _require_kafka(s)
        _require_partition_counts(s, ("readings",))
        # Its packs and dead letters are bounded below what Kafka's default takes; a
        # topic made to take less refused one and stopped the ingest at every restart.
        _require_message_limits(s, ("readings", "deadletter"), "the ingest")
        if args.action == "mqtt":
            _require_mqtt(s)

    options = IngestOptions(
        pack_size=args.pack_size,
        pack_ms=args.pack_ms,
        max_pending=args.max_pending,
        stats_every=args.stats_every,
    )
    if args.action == "mqtt":
        options.topics = args.topic or []
        options.value_field, options.ts_field = args.value_field, args.ts_field
        options.qos, options.client_id, options.inflight = args.qos, args.client_id, args.inflight
        options.max_payload = args.max_payload
        return run_mqtt(s, options, require_services)
    options.sensor_id_template, options.max_body = args.sensor_id_template, args.max_body
    return run_http(s, options, require_services)
