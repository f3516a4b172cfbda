"""``citybrain detect``: score ``timestamp,value`` CSVs with a detector, strictly streaming.

Each row is scored before the detector learns it, with only the rows before it (the
detectors' ``score_many`` contract); output is ``timestamp,value,anomaly_score``, one row
per input row, same order. Bad input fails with file, line and reason.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from citybrain.commands import shell_word
from citybrain.errors import InputError
from citybrain.text import counted
from detectors import DEFAULT_THRESHOLD, DETECTORS, Detector, default_threshold
from streams.csvfile import (
    BadRow,
    HeaderRepeats,
    Record,
    RowWriter,
    comment_line,
    csv_name,
    cut_short,
    decimal,
    field_count_reason,
    gzip_name,
    read_records,
    repeated_column,
    row_start,
    separator_hint,
    time_shaped,
)
from streams.errors import FeedError, show, shown_path
from streams.events import iso_instant, other_date_fault
from streams.inputs import changed_while_read, file_version, not_a_regular_file

# Clocks stepping back for daylight saving repeat up to an hour of timestamps (NAB's
# machine_temperature file does); anything earlier than that is out of order.
MAX_STEP_BACK = timedelta(hours=1)
# A row more than this after the latest time so far is a clock jump, as the worker's
# (``streams.detection.CLOCK_JUMP``, a day): the next row may go back to between the two,
# taking the clock back (the jump was one row's odd time), as the stream takes it (t185).
CLOCK_JUMP = timedelta(days=1)
# ``jump_from`` of the file's first row: nothing before it vouches for its time, so a
# next row more than CLOCK_JUMP before it takes the clock back (the first row was the
# jump), as the stream takes a kind's first reading (``streams.detection.NO_CLOCK``,
# t206); one going back less is refused as before. Before, a file whose first row was
# dated a year ahead stopped at its second row, naming that one (or, with --on-error
# skip, skipped every later row).
NO_CLOCK = datetime(1, 1, 1, tzinfo=UTC)


def _back_to(previous: datetime, when: datetime, jump_from: datetime | None) -> bool:
    """Whether a row at ``when``, more than MAX_STEP_BACK before ``previous``, takes the
    clock back: ``previous`` was a jump (from ``jump_from``, when is after it), or the
    first row with ``when`` more than CLOCK_JUMP before it."""
    if jump_from is None or not when > jump_from:
        return False
    return jump_from is not NO_CLOCK or previous - when > CLOCK_JUMP


# Rows scored at once: large enough for the vectorised detectors' batches, small enough
# that a chunk's parsed rows and arrays stay a few tens of MB.
CHUNK_ROWS = 65_536


class DetectInputError(InputError):
    """A bad input file; the message names file, line and reason."""


# A date alone (a daily series) or the worker's ISO 8601 form (streams/events.py
# ``iso_datetime``, a reading's ``ts``), ASCII digits only. The zone may be left out,
# unlike in a reading: NAB's corpus and most exported series have none. Without one a
# time is UTC, so times with and without a zone compare in one file.
TIMESTAMP_FORM = (
    "expected ISO 8601 as a reading's ts, 2026-11-01T10:00:00Z or 2026-11-01 10:00:00+08:00 "
    "(T, t or a space before the time; a zone: Z, z, ±HH:MM, ±HHMM or ±HH; none is UTC), "
    "or a date alone"
)


def _when(text: str) -> datetime | None:
    """The row's time (with its zone, UTC when it has none), or None: the worker's form
    or a date alone (``streams.events.iso_instant``); a column of something else would
    have been read as times."""
    return iso_instant(text)


@dataclass
class TimeOrder:
    """Rows whose time the stream would not score: ``repeated``, at the previous row's
    time (the stream drops them as duplicates), and ``earlier``, before it by at most
    ``MAX_STEP_BACK`` (a clock set back; the stream dead-letters them ``out_of_order``).
    detect scores both, and says how many there were."""

    repeated: int = 0
    earlier: int = 0
    # Rows more than a day ahead of the row before them (CLOCK_JUMP) whose next row went
    # back behind them, or a first row whose next went back more than a day (scored; the
    # rows after them are too, as the stream takes them).
    jumps_back: int = 0


@dataclass
class Extras:
    """A file's columns after timestamp,value (``names``, as in its header) and each
    scored row's fields there (``rows``, as written; "" where a row stops short): detect
    keeps them, after anomaly_score (trial 9: they were dropped without a word)."""

    names: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def _looks_like_row(text: str) -> bool:
    # A whole row, or the start of one whose extra text column spans lines.
    fields = row_start(text)
    return (
        fields is not None
        and len(fields) >= 2
        and (time_shaped(fields[0]) or _when(fields[0]) is not None)
    )


def read_series(
    path: Path,
    on_bad_row: Callable[[str], None] | None = None,
    order: TimeOrder | None = None,
    extras: Extras | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Stamps as written, times in seconds, values, the whole file at once (``detect``
    itself streams: ``good_rows``). Any fault (bytes that are not UTF-8, stray quotes,
    bad fields, rows more than ``MAX_STEP_BACK`` out of time order; the reader is
    streams/csvfile.py) raises DetectInputError naming file, line and reason; with
    ``on_bad_row``, a bad row is passed to it as ``file:line: reason`` and skipped
    instead (a bad header, an empty file or no good rows still raise). ``order``, if
    given, counts the rows at or a little before the latest time so far (``TimeOrder``).
    ``extras``, if given, receives the columns after timestamp,value (``Extras``); a
    column named anomaly_score there raises (the output has its own)."""
    stamps: list[str] = []
    times: list[float] = []
    values: list[float] = []
    for stamp, epoch, value, rest in good_rows(path, on_bad_row, order, extras):
        stamps.append(stamp)
        times.append(epoch)
        values.append(value)
        if extras is not None:
            extras.rows.append(rest)
    return stamps, np.asarray(times), np.asarray(values, dtype=np.float64)


def _other_format(path: Path, header: list[str], records: Iterator[Any]) -> str:
    """What to do with a CSV of replay's formats given to detect (t40: the multi-sensor
    readings file was only "expected timestamp,value"): replay it, or cut one sensor's
    series out of it (the command, for its first sensor); "" for any other header."""
    from citybrain.commands import command_line
    from streams.feeds import INCIDENT_COLUMNS, READING_COLUMNS
    from streams.inputs import own_file_role

    # Typed in a new shell, from another directory, the file is still found (t51).
    path = path.absolute()
    if header == INCIDENT_COLUMNS:
        return (
            ": this is replay's incident-report format, no series to score; "
            f"`{command_line('replay', str(path))}` sends it to the stream worker"
        )
    if header != READING_COLUMNS:
        # t76: `--input-dir datasets` skipped the classifier's training data saying
        # only its header; a checkout file is named for what it is, as --input names it.
        found = own_file_role(path)
        return f": this is {found[1]}, no series to score" if found is not None else ""
    try:
        first = next((r for r in records if isinstance(r, Record) and len(r.fields) > 3), None)
    except FeedError:  # a fault further on is not this message's
        first = None
    sensor = first.fields[1] if first is not None else "SENSOR_ID"
    quoted = shell_word(str(path))
    cut = (
        f"(echo timestamp,value; gzip -cdf {quoted} | awk -F, "
        + shell_word(f'NR > 1 && $2 == "{sensor}" {{print $1 "," $4}}')
        + f") > {shell_word(sensor + '.csv')}"
    )
    return (
        ": this is replay's multi-sensor readings format (one row per reading of many "
        f"sensors); `{command_line('replay', str(path))}` sends it to the stream worker, "
        "which scores each sensor, or score one sensor here after cutting its series out: "
        f"`{cut}`"
    )


def _series_renames(header: list[str]) -> str:
    """What to rename in a two-or-more-column header that is not ``timestamp,value``:
    `` (rename 'time' to timestamp and 'pm25' to value, the column scored)``; "" when the
    first two are those in another order or there are fewer than two (t174: a newcomer's
    `time,value` or `timestamp,pm25` was only told the header expected)."""
    if len(header) < 2:
        return ""
    first, second = header[0], header[1]
    if {first, second} == {"timestamp", "value"}:
        return " (the same columns in another order: timestamp first, then value)"
    said = []
    if first != "timestamp":
        said.append(f"{show(first)} to timestamp")
    if second != "value":
        said.append(f"{show(second)} to value, the column scored")
    kept = "; the columns after them are kept beside the scores" if len(header) > 2 else ""
    return f" (rename {' and '.join(said)}{kept})"


def good_rows(
    path: Path,
    on_bad_row: Callable[[str], None] | None = None,
    order: TimeOrder | None = None,
    extras: Extras | None = None,
) -> Iterator[tuple[str, float, float, list[str]]]:
    """Each good row of ``path`` as (stamp as written, epoch seconds, value, its fields
    after timestamp,value padded to the header's), read as it goes: memory is one row,
    not the file (trial 9: 666 MB for a million rows). Faults as ``read_series`` (the
    header's as soon as it is read, "no data rows" at the end); ``extras.names`` is set
    from the header, ``extras.rows`` left alone."""
    try:
        records = read_records(path, _looks_like_row)
        header = next(records, None)
    except FeedError as exc:
        raise DetectInputError(str(exc)) from None
    if header is None:
        raise DetectInputError(
            f"{shown_path(path)}:1: the file is empty, expected a header timestamp,value"
        )
    if isinstance(header, BadRow):
        raise DetectInputError(f"{header} (in the header row)")
    if [h.strip() for h in header.fields[:2]] != ["timestamp", "value"]:
        tidy = [h.strip() for h in header.fields]
        hint = _other_format(path, tidy, records) or separator_hint(header.fields)
        raise DetectInputError(
            f"{shown_path(path)}:{header.line}: header is {show(','.join(header.fields))}, "
            f"expected timestamp,value{hint or _series_renames(tidy)}"
        )
    names = [h.strip() for h in header.fields[2:]]
    # `timestamp,value,value`: the first was scored and the second kept beside the
    # score as an extra column, so the output named two columns `value`, unsaid.
    twice = repeated_column([h.strip() for h in header.fields])
    if twice is not None:
        raise DetectInputError(f"{shown_path(path)}:{header.line}: {twice}")
    if "anomaly_score" in names:
        raise DetectInputError(
            f"{shown_path(path)}:{header.line}: the header has a column 'anomaly_score' (column "
            f"{names.index('anomaly_score') + 3}): the output adds its own; rename or drop it"
        )
    if extras is not None:
        extras.names = names
    width = len(header.fields)
    repeats = HeaderRepeats(header)
    good = 0
    last_line = header.line
    previous: datetime | None = None
    latest = ""  # the latest time so far as the file writes it
    jump_from: datetime | None = None  # the latest time before a jump to ``previous``
    try:
        for record in records:
            last_line = record.line
            try:
                if isinstance(record, BadRow):
                    raise DetectInputError(str(record))
                # As replay says it (t162: detect said the timestamp 'timestamp' is no
                # time); one unlike the file's costs the rows under it too (t188).
                again = repeats.reason(record) or comment_line(record.fields)
                if again is not None:
                    raise DetectInputError(f"{shown_path(path)}:{record.line}: {again}")
                # No wider than the header: `1,5` (a decimal comma) is two fields, and
                # reading the first alone took 1.5 for 1 without a word.
                if len(record.fields) > width:
                    reason = field_count_reason(record.fields, width) or ""
                    if not reason.endswith(")"):  # not a comma at its end (t188)
                        reason += " (a decimal comma? write 1.5, or quote the value)"
                    raise DetectInputError(f"{shown_path(path)}:{record.line}: {reason}")
                when, epoch, value = _row(
                    path, record.line, record.fields, previous, latest, jump_from
                )
            except DetectInputError as exc:
                cut = "" if isinstance(record, BadRow) else cut_short(record)
                if on_bad_row is None:
                    if cut:
                        raise DetectInputError(f"{exc}{cut}") from None
                    raise
                on_bad_row(f"{exc}{cut}")
                continue
            if (
                previous is not None
                and previous - when > MAX_STEP_BACK
                and _back_to(previous, when, jump_from)
            ):
                # Between the time the rows jumped from and the jump: that row's time
                # was odd, and the clock goes back to this one.
                previous, latest, jump_from = when, record.fields[0].strip(), None
                if order is not None:
                    order.jumps_back += 1
            elif previous is not None and order is not None:
                if when == previous:
                    order.repeated += 1
                elif when < previous:
                    order.earlier += 1
            if previous is None or when > previous:
                ahead = previous is not None and when - previous > CLOCK_JUMP
                jump_from = previous if ahead else NO_CLOCK if previous is None else None
                previous, latest = when, record.fields[0].strip()
            good += 1
            rest = record.fields[2:]
            yield record.fields[0], epoch, value, rest + [""] * (len(names) - len(rest))
    except FeedError as exc:
        raise DetectInputError(str(exc)) from None
    if not good:
        # Named at a line the file has (a one-line file was "file:2: no data rows").
        if last_line == header.line:
            raise DetectInputError(
                f"{shown_path(path)}:{header.line}: no data rows: only the header"
            )
        raise DetectInputError(
            f"{shown_path(path)}:{last_line}: no data rows: every one was bad (skipped above)"
        )


def _row(
    path: Path,
    line: int,
    row: list[str],
    previous: datetime | None,
    latest: str = "",
    jump_from: datetime | None = None,
) -> tuple[datetime, float, float]:
    """One row's time, epoch seconds and value; DetectInputError names what is wrong
    (``latest``: the latest time so far, ``previous``, as the file writes it;
    ``jump_from``: the latest time before ``previous`` when that was a clock jump, after
    which a row is taken back to it)."""
    if len(row) < 2:
        raise DetectInputError(
            f"{shown_path(path)}:{line}: row has {len(row)} field(s), expected timestamp,value"
        )
    when = _when(row[0])
    if when is None:
        shown = show(row[0])
        # Epoch seconds or milliseconds, a week or an ordinal date: said as what they are,
        # with the ISO 8601 time to write, as replay says them (t162: detect gave only
        # the expected form for 1557525600).
        other = other_date_fault(row[0].strip(" \t"))
        said = f", {TIMESTAMP_FORM}" if other is None else f": {other}"
        raise DetectInputError(f'{shown_path(path)}:{line}: field "timestamp" is {shown}{said}')
    try:
        value = decimal(row[1])
    except ValueError as exc:
        raise DetectInputError(f"{shown_path(path)}:{line}: {exc}") from None
    try:
        # Every time is aware (UTC when written without a zone): these never mix.
        # As a difference: ``previous - MAX_STEP_BACK`` for a row in the first hour of
        # 0001-01-01 raised OverflowError, and every later row was refused as "outside
        # the years 0001-9999", 1970 and 2019 alike (t171).
        back = previous is not None and previous - when > MAX_STEP_BACK
        if back and previous is not None and _back_to(previous, when, jump_from):
            back = False  # (the jump was one row's odd time: the clock goes back)
        epoch = when.timestamp()
    except (OverflowError, ValueError, OSError):
        raise DetectInputError(
            f'{shown_path(path)}:{line}: field "timestamp" is {show(row[0])}: the time in UTC is '
            "outside the "
            "years 0001-9999"
        ) from None
    if back:
        assert previous is not None
        raise DetectInputError(
            f"{shown_path(path)}:{line}: timestamp {row[0]!r} is before the latest time so far, "
            f"{latest or previous.isoformat()!r}: rows must be in time order (a clock set back "
            f"by up to {MAX_STEP_BACK.seconds // 3600} h is scored and counted)"
        )
    return when, epoch, value


def warmup_rows(detector: Detector) -> int | None:
    """Rows a fresh ``detector`` scores 0 while it learns, as it declares them (its
    ``warmup`` or ``min_samples``), or None when it declares no fixed count (the
    ensemble, whose members learn at different paces; detectors that wait on time)."""
    for name in ("warmup", "min_samples"):
        value = getattr(detector, name, None)
        if isinstance(value, int):
            return value
    return None


# The reading detect measures reach with: this many standard deviations away from a
# steady noisy level (a 6x spike on a level of 10 with a spread of 0.5 is 100 of them).
EXTREME_SPREADS = 100.0
# Detectors whose reach is measured (cheap and deterministic); the one suggested instead.
_MEASURED = ("tail",)
ALTERNATIVE = "robust_zscore"


@functools.lru_cache(maxsize=16)
def rows_to_reach(name: str, threshold: float, limit: int = 1000) -> int | None:
    """The fewest rows of history after which a fresh detector ``name`` (a DETECTORS key)
    scores a reading ``EXTREME_SPREADS`` standard deviations above a steady noisy level
    (10 +- 1, a fixed seed, one row every 5 minutes) at or above ``threshold``; None if
    not within ``limit`` rows. Measured with the real detector, not declared: the tail
    detector caps its scores by how little it has seen, so it needs more history than
    its warm-up before even such a reading reaches its threshold (trial 9)."""
    history = 10.0 + np.random.default_rng(0).normal(0.0, 1.0, limit)
    for n in range(1, limit + 1):
        values = np.append(history[:n], 10.0 + EXTREME_SPREADS)
        score = DETECTORS[name]().score_many(values, np.arange(n + 1, dtype=np.float64) * 300.0)[-1]
        if score >= threshold:
            return n
    return None


def reach_warning(src: Path, rows: int, name: str, threshold: float) -> str | None:
    """The warning for a short series scored by ``name`` at ``threshold``: which of its
    rows reach the threshold only for a reading more than ``EXTREME_SPREADS`` standard
    deviations out (a farther one can: a 500-sigma spike at row 46 scores 0.28, so
    "cannot reach" was false), and from which row ``ALTERNATIVE`` can (at its own
    threshold); None when every row past the warm-up can, or the series is long (more
    than twice the history needed: the blind rows are then its start only, which the
    summary line names)."""
    if name not in _MEASURED:
        return None
    need = rows_to_reach(name, threshold)
    warmup = warmup_rows(DETECTORS[name]()) or 0
    if need is None or rows <= warmup or need <= warmup or rows > 2 * need:
        return None
    blind = f"rows {warmup + 1:,}-{min(rows, need):,}"
    other = rows_to_reach(ALTERNATIVE, default_threshold(ALTERNATIVE))
    instead = (
        f"; --detector {ALTERNATIVE} can from row {other + 1:,} "
        f"(at its threshold {default_threshold(ALTERNATIVE):g})"
        if other is not None and other < need
        else ""
    )
    return (
        f"{shown_path(src)}: {counted(rows, 'row')}: with {name}, {blind} reach {threshold:g} only "
        "for a "
        f"reading more than {EXTREME_SPREADS:g} standard deviations out (it needs "
        f"{need:,} rows of history first){instead}"
    )


@dataclass
class Scored:
    """What scoring one or more series gave: ``rows`` scored; ``flagged`` of them at or
    above the threshold; ``leading_zeros``, the longest run of rows any series started
    with before its first nonzero score on a reading that is no far glitch (a
    detector's warm-up as seen, for one that declares none: a far glitch scores 1 in
    warm-up too), and ``leading_far``, the far glitches in that run; ``far_flagged``, the
    far glitches among the ``flagged`` rows (a series beyond ABSURD_ABOVE is all of them)."""

    rows: int = 0
    flagged: int = 0
    leading_zeros: int = 0
    series: int = 0
    order: TimeOrder = field(default_factory=TimeOrder)
    leading_far: int = 0
    far_flagged: int = 0

    def add(self, other: Scored) -> None:
        self.rows += other.rows
        self.flagged += other.flagged
        self.far_flagged += other.far_flagged
        if other.leading_zeros > self.leading_zeros:
            self.leading_zeros, self.leading_far = other.leading_zeros, other.leading_far
        self.series += other.series
        self.order.repeated += other.order.repeated
        self.order.earlier += other.order.earlier
        self.order.jumps_back += other.order.jumps_back


@dataclass
class Checked:
    """A file's first pass (``check_file``): its good ``rows``, their time ``order`` and
    its ``extras`` (the column names only), all detect keeps of it until scoring."""

    rows: int
    order: TimeOrder
    extras: Extras
    version: tuple[int, int] | None = None  # its size and mtime (ns) as the check began


def check_file(src: Path, on_bad_row: Callable[[str], None] | None = None) -> Checked:
    """Read every row of ``src`` without scoring (memory is a row): raises
    DetectInputError as ``read_series`` does; with ``on_bad_row`` a bad row is passed to
    it and counted out."""
    order = TimeOrder()
    extras = Extras()  # its names, from the header, head the output
    version = file_version(src)
    try:
        rows = sum(1 for _ in good_rows(src, on_bad_row, order, extras))
    except DetectInputError as exc:
        # t180: a series truncated or rotated under detect stopped at the row the cut made,
        # with no word that the file changed (as replay's streams.feeds._said_if_changed).
        changed = changed_while_read(src, version)
        if changed is None:
            raise
        raise DetectInputError(
            f"{exc} ({changed}: still being written, truncated or rotated? score it once "
            "it is complete)"
        ) from None
    return Checked(rows, order, extras, version)


def detect_file(
    src: Path,
    dst: Path | TextIO,
    prototype: Detector,
    on_bad_row: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    name: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    checked: Checked | None = None,
) -> Scored:
    """Score ``src`` into ``dst`` (one row per good input row, ``chunk_rows`` at a time:
    the output is the same whatever the chunk). Raises DetectInputError
    (see ``read_series`` for ``on_bad_row``). ``warn`` hears about a series no longer
    than the detector's warm-up, or (for a detector that declares none) scored 0
    throughout, or (``name``, the detector's DETECTORS key) one so short that many of its
    rows reach ``threshold`` only for an extreme reading (``reach_warning``). ``threshold``: rows
    scoring at or above it are counted as flagged.
    ``dst`` may be an open text stream (stdout) instead of a path; a path is written
    whole or not at all (an exception, Ctrl-C included, leaves it as it was).
    ``checked``: this file's ``check_file``, when the caller has already checked it
    (``detect_dir`` checks every file before scoring any); else it is checked here."""
    # Two passes, each a row at a time: the first checks every row (a bad file writes
    # nothing; bad rows are reported once) and counts them for the warnings; the second
    # scores chunk by chunk as it writes. Memory is a chunk, not the file.
    if checked is None:
        checked = check_file(src, on_bad_row)
    rows, order, extras = checked.rows, checked.order, checked.extras
    warmup = warmup_rows(prototype)
    if warn is not None and warmup is not None and rows <= warmup:
        # As ``reach_warning`` does: name the detector that can score such a short series.
        other = (
            None
            if name in (None, ALTERNATIVE)
            else rows_to_reach(ALTERNATIVE, default_threshold(ALTERNATIVE))
        )
        instead = (
            f", or --detector {ALTERNATIVE}, which scores from row {other + 1:,} at its "
            f"threshold {default_threshold(ALTERNATIVE):g}"
            if other is not None and other < rows
            else ""
        )
        warn(
            f"{shown_path(src)}: {counted(rows, 'row')}, no more than the detector's warm-up of "
            f"{warmup:,}: "
            f"every row scored 0; give it a longer history{instead}"
        )
    reach = None
    if warn is not None and name is not None:
        reach = reach_warning(src, rows, name, threshold)
    if reach is not None and warn is not None:
        warn(reach)
    # The rows the first pass reported are skipped quietly the second time.
    stream = good_rows(src, None if on_bad_row is None else _ignore, None, extras)
    if isinstance(dst, Path):
        # Written beside it and renamed when whole: an interrupted or failed scoring
        # leaves ``dst`` as it was, never a truncated file that reads as a finished one
        # (new-user walk, t17: Ctrl-C left 458,753 of 1,500,001 lines in place).
        partial = dst.with_name(f".{dst.name}.partial-{os.getpid()}")
        try:
            with partial.open("w", encoding="utf-8", newline="") as fh:
                flagged, leading, far, far_flagged = _score_chunks(
                    fh, stream, extras, prototype, threshold, chunk_rows
                )
            os.replace(partial, dst)
        finally:
            partial.unlink(missing_ok=True)
    else:
        flagged, leading, far, far_flagged = _score_chunks(
            dst, stream, extras, prototype, threshold, chunk_rows
        )
    changed = changed_while_read(src, checked.version)
    if warn is not None and changed is not None:
        # A series still being written: rows added after the check are not scored, and a
        # last line caught half-written reads as a row (t121: both unsaid).
        warn(
            f"{changed}: what was written to it after the first pass is not scored, and its "
            "last row may have been cut short; score it again once it is complete"
        )
    if warn is not None and warmup is None and leading == rows:
        but = f" but its {counted(far, 'far glitch', 'far glitches')} (scored 1)" if far else ""
        warn(
            f"{shown_path(src)}: every one of its {rows:,} rows{but} scored 0: the detector may "
            "still "
            "be learning on a series this short (give it a longer history)"
        )
    return Scored(rows, flagged, leading, 1, order, far, far_flagged)


def _ignore(_: str) -> None:
    """A bad row already reported by the first pass."""


def _score_chunks(
    fh: TextIO,
    stream: Iterator[tuple[str, float, float, list[str]]],
    extras: Extras,
    prototype: Detector,
    threshold: float,
    chunk_rows: int,
) -> tuple[int, int, int, int]:
    """Score ``stream`` ``chunk_rows`` rows at a time with one fresh detector (its state
    carries from chunk to chunk, so the scores are those of one pass over the file) and
    write them; (rows at or above ``threshold``, the rows before the first nonzero score
    on a reading that is no far glitch, the far glitches among those, the far glitches
    at or above ``threshold``)."""
    detector = prototype.clone()  # a fresh detector per stream
    # LF line ends (csv's default is \r\n, whatever the input), a text's CR quoted.
    writer = RowWriter(fh)
    writer.writerow(["timestamp", "value", "anomaly_score", *extras.names])
    flagged = leading = far_rows = far_flagged = 0
    seen_nonzero = False
    # Every detector scores a far glitch 1, in warm-up too: judged apart (by the
    # detector itself, score_far_many: the judgement the stream labels
    # reading="far_glitch"), it does not end the warm-up as seen (t78: a 1e308 first row
    # made a detector without a declared warm-up "score 0 for the first 0 rows").
    while chunk := list(itertools.islice(stream, chunk_rows)):
        values = np.fromiter((r[2] for r in chunk), dtype=np.float64, count=len(chunk))
        times = np.fromiter((r[1] for r in chunk), dtype=np.float64, count=len(chunk))
        scores, far = detector.score_far_many(values, times)
        flagged += int(np.count_nonzero(scores >= threshold))
        # Judged on every row: a series at 1e300 (beyond ABSURD_ABOVE) is all far glitches,
        # every row scored 1, and the summary said only "the first 32 rows are warm-up,
        # scored 0" and "100 rows scored at or above 0.22" (t121).
        far_flagged += int(np.count_nonzero(far & (scores >= threshold)))
        if not seen_nonzero:
            nonzero = np.flatnonzero((scores != 0) & ~far)
            seen_nonzero = bool(nonzero.size)
            upto = int(nonzero[0]) if seen_nonzero else len(chunk)
            leading += upto
            far_rows += int(np.count_nonzero(far[:upto]))
        writer.writerows(
            [
                [stamp, repr(value), f"{score:.6f}", *more]
                for (stamp, _, _, more), value, score in zip(
                    chunk, values.tolist(), scores.tolist(), strict=True
                )
            ]
        )
    return flagged, leading, far_rows, far_flagged


def detect_dir(
    src: Path,
    dst: Path,
    prototype: Detector,
    on_bad_row: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    written: list[Path] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    name: str | None = None,
    on_bad_file: Callable[[str], None] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Scored:
    """Every CSV under ``src``, plain or gzip (``input_files``), in sorted order, to the
    same relative path under ``dst`` (a ``.csv.gz`` as plain ``.csv``); each output
    finished is appended to ``written``, so a caller stopped by a bad file can say how far
    it got. With ``on_bad_file`` (``--on-error skip``), a file that cannot be scored at
    all (empty, a bad header, only a header, no good row) is passed to it as its
    DetectInputError message and left out, and the others are scored (trial 9: a
    header-only file stopped the whole batch). Every file is checked before any is
    scored (a row at a time, one pass each): a bad file raises with nothing written
    (helper brief t47: a bad row in the second file left the first one's scores behind,
    a partly filled output directory)."""
    checked: list[tuple[Path, Checked]] = []
    for path in input_files(src):
        try:
            if not path.is_file():
                # A pipe named x.csv was opened and waited on for ever, silent (t121); a
                # link to nothing said "No such file or directory" of a file listed.
                raise DetectInputError(f"{shown_path(path)}{not_a_regular_file(path)}")
            checked.append((path, check_file(path, on_bad_row)))
        except DetectInputError as exc:
            if on_bad_file is None:
                raise
            on_bad_file(str(exc))
    total = Scored()
    for path, check in checked:
        out = output_path(src, dst, path)
        # The output tree mirrors the input's; a lone --output's folder must exist.
        out.parent.mkdir(parents=True, exist_ok=True)
        # The check pass reported the bad rows; they are skipped quietly now.
        quiet = None if on_bad_row is None else _ignore
        scored = detect_file(path, out, prototype, quiet, warn, threshold, name, chunk_rows, check)
        total.add(scored)
        if written is not None:
            written.append(out)
    return total


def input_files(src: Path) -> list[Path]:
    """The CSVs under ``src``, ``*.csv`` and gzip ``*.csv.gz`` (as ``--input`` takes),
    sorted. Raises DetectInputError when a plain and a gzip file would write the same
    output (``a.csv`` and ``a.csv.gz``)."""
    # A folder named like a CSV (``2026.csv/``) is walked into, not read as one (t121:
    # "cannot read: Is a directory" stopped the batch); ``X.CSV`` is a CSV (t121: a
    # folder of them had "no .csv or .csv.gz files under it").
    found = sorted(p for p in src.rglob("*") if csv_name(p) and not p.is_dir())
    seen: dict[Path, Path] = {}
    for path in found:
        out = output_path(src, Path(), path)
        if out in seen:
            raise DetectInputError(
                f"{seen[out]} and {shown_path(path)} would both be scored into {out}: keep one of "
                "them"
            )
        seen[out] = path
    return found


def output_path(src: Path, dst: Path, path: Path) -> Path:
    """Where the scores of ``path`` (under ``src``) go under ``dst``: the same relative
    path, a gzip input's without ``.gz`` (the scores are plain CSV)."""
    relative = path.relative_to(src)
    if gzip_name(relative):
        relative = relative.with_suffix("")
    return dst / relative
