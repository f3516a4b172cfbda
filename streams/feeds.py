"""Canonical replay files (CSV, plain or gzipped) and publishing them to Kafka in event-time order.

Readings: ``timestamp,sensor_id,kind,value,unit,grid_cell``.
Incidents: ``timestamp,report_id,category,text,source,grid_cell``.
Timestamps are ISO 8601 with a zone. See docs/events.md.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from streams.csvfile import (
    BadRow,
    HeaderRepeats,
    comment_line,
    cut_short,
    decimal,
    field_count_reason,
    read_records,
    repeated_column,
    row_start,
    separator_hint,
    time_shaped,
)
from streams.errors import EventError, FeedError, SeriesFileError, show, shown_path
from streams.events import (
    MAX_ID_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_TEXT_CHARS,
    IncidentReport,
    Reading,
    check_label_text,
    check_length,
    check_report_text,
    check_source,
    format_ts,
    parse_ts,
)
from streams.inputs import changed_while_read, file_version
from streams.partitioning import (
    PACK_HEAD,
    PackTooLargeError,
    ReadingPacker,
    alone_in_pack_bytes,
)

READING_COLUMNS = ["timestamp", "sensor_id", "kind", "value", "unit", "grid_cell"]
INCIDENT_COLUMNS = ["timestamp", "report_id", "category", "text", "source", "grid_cell"]

Event = Reading | IncidentReport
OnError = Literal["stop", "skip"]
__all__ = [
    "INCIDENT_COLUMNS",
    "READING_COLUMNS",
    "BadRow",
    "BadRows",
    "Event",
    "FeedCheck",
    "FeedStream",
    "FileCheck",
    "OnError",
    "ReplayStats",
    "Replayer",
    "check_feeds",
    "event_key",
    "load_events",
    "looks_like_row",
    "read_canonical",
    "send_packs",
]


def looks_like_row(columns: int) -> Callable[[str], bool]:
    """A line that would start a row: the right number of fields (or the first of them,
    when a quoted text runs on past the line) and a timestamp first, or a time written
    otherwise (``time_shaped``: the row's own fault is said under its own line)."""

    def check(text: str) -> bool:
        # A whole row, or the start of one whose text spans lines (``row_start``).
        fields = row_start(text, columns)
        if fields is None:
            return False
        if time_shaped(fields[0]):
            return True
        try:
            parse_ts(fields[0], "timestamp")
        except (EventError, ValueError, OverflowError):
            return False
        return True

    return check


_LONGEST_SLEEP = 86_400.0  # seconds
# Bytes Kafka's framing adds to a message's key and value in a record batch of one (the
# batch's 61-byte header, at most 30 of the record's own), with room to spare: a broker's
# max.message.bytes bounds the whole batch.
RECORD_FRAMING = 128
# How long a replay's last flush waits for Kafka's acknowledgements (a batch past
# kafka-python's 120 s delivery timeout is reported failed before it, on a broker that
# answers), and how long closing the producer may wait for what is left after that.
FLUSH_SECONDS = 150.0
CLOSE_SECONDS = 5.0
# How long a replay goes on handing messages to the producer while Kafka answers none
# of them (no acknowledgement, no refusal) before it stops, exit 3 with the command that
# sends the rest. kafka-python buffers 32 MB and gives a batch up only after its 120 s
# delivery timeout: with the broker gone, a paced replay said "2,000 … 3,000 … events
# sent" for as long as it ran (t164), having sent none.
STALL_SECONDS = 30.0
# The longest sleep of a paced replay while messages wait for Kafka's answer: the stall
# is noticed within this much of STALL_SECONDS.
STALL_CHECK_SECONDS = 1.0
# The longest a paced replay's ``progress`` goes unheard (seconds of wall clock), also
# while it waits for an event that is due later: the plain progress line promised every
# 5 s stood still 20 s at `--speed 3000` over 5-minute data (many waits under 0.5 s, so
# it heard of 1,000 events at a time), and for a whole wait of minutes (t209).
PROGRESS_SECONDS = 1.0


def read_canonical(
    path: str | Path,
    on_bad_row: Callable[[BadRow], None] | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    packed: bool = False,
) -> Iterator[Event]:
    """Yield the file's events in file order. A bad row raises ``FeedError`` naming file
    and line, unless ``on_bad_row`` is given, which then receives it and reading goes on.

    Any bytes give events or bad rows (streams/csvfile.py): every row read is either
    yielded or passed to ``on_bad_row``. A row whose message would be larger than
    ``max_message_bytes`` (JSON value plus key; with ``packed``, a reading's also as
    the pack of it alone, ``alone_in_pack_bytes``) is bad: Kafka would refuse it.
    Raises ``FeedError`` for a file that cannot be read, is UTF-16, or has no valid header.
    """
    for _line, event, _size in _rows(path, on_bad_row, max_message_bytes, packed):
        yield event


def _rows(
    path: str | Path,
    on_bad_row: Callable[[BadRow], None] | None,
    max_message_bytes: int,
    packed: bool = False,
) -> Iterator[tuple[int, Event, int]]:
    """``read_canonical``'s events, each with the line its row starts on (1-based) and
    its message's size in bytes when it may be ``LARGE_MESSAGE_BYTES`` or more (0 for a
    message surely smaller: most are not encoded here)."""
    path = Path(path)
    records = read_records(path, looks_like_row(len(READING_COLUMNS)))
    header = next(records, None)
    if header is None:
        raise FeedError(
            f"{shown_path(path)}:1: the file is empty, expected a header row: "
            f"{','.join(READING_COLUMNS)} or {','.join(INCIDENT_COLUMNS)}"
        )
    if isinstance(header, BadRow):
        raise FeedError(f"{header} (in the header row)")
    # Texts that repeat row after row (a sensor's id, kind, unit and cell; a report's
    # category, source and cell) are kept once: a replay holds every event of its files
    # until it sends them, and a million readings took 440 MB, 190 MB so (t121).
    shared: dict[str, str] = {}
    if header.fields == READING_COLUMNS:
        parse: Callable[[list[str]], Event] = partial(_reading, shared=shared)
    elif header.fields == INCIDENT_COLUMNS:
        parse = partial(_incident, shared=shared)
    else:
        tidy = [name.strip().lower() for name in header.fields]
        hint = (
            " (spaces or capitals around the names?)"
            if tidy in (READING_COLUMNS, INCIDENT_COLUMNS)
            else ""
        )
        message = (
            f"{shown_path(path)}:{header.line}: header is {show(','.join(header.fields))}, "
            "expected "
            f"{','.join(READING_COLUMNS)} or {','.join(INCIDENT_COLUMNS)}{hint}"
            f"{separator_hint(header.fields) or _header_difference(header.fields)}"
            f"{_portal_export(header.fields)}"
        )
        if tidy[:2] == ["timestamp", "value"]:
            raise SeriesFileError(message, path)
        raise FeedError(message)
    columns = len(header.fields)
    repeats = HeaderRepeats(header)
    for record in records:
        if isinstance(record, BadRow):
            bad = record
        else:
            try:
                again = repeats.reason(record) or comment_line(record.fields)
                if again is not None:
                    raise ValueError(again)
                reason = field_count_reason(record.fields, columns)
                if reason is not None:
                    hint = _split_number_hint(record.fields, header.fields)
                    if not hint and not reason.endswith(")"):
                        hint = _by_column(record.fields, header.fields)
                    raise ValueError(reason + hint)
                if record.spans_lines:
                    _one_line(record.fields, header.fields, multiline="text")
                event = parse(record.fields)
                size = _check_size(event, record.fields, max_message_bytes, packed)
            except (ValueError, OverflowError, OSError, EventError) as exc:
                bad = BadRow(path, record.line, f"{exc}{cut_short(record)}")
            else:
                yield record.line, event, size
                continue
        if on_bad_row is None:
            raise FeedError(str(bad))
        on_bad_row(bad)


def _header_difference(fields: list[str]) -> str:
    """What sets a header apart from the closer of the two it may be (the one sharing
    more names), as ``" (…)"``: a name given twice (``repeated_column``), the columns
    missing and those it has no use for, or another order; ``""`` when it is like neither.
    Before t109 a header missing ``grid_cell`` or giving ``value`` twice was only shown
    beside the expected ones, to be compared by eye."""
    given = [name.strip().lower() for name in fields]
    closer = max((READING_COLUMNS, INCIDENT_COLUMNS), key=lambda cols: len(set(cols) & set(given)))
    if given == closer or not set(closer) & set(given):
        return ""  # like neither, or only spaces or capitals apart (said before this)
    if len(given) > 1 and not given[-1] and given[:-1] == closer:
        # t188: "('' is not one of its columns: drop the column '')".
        return " (a comma at the end of the line: delete it, and those at the ends of the rows)"
    twice = repeated_column(given)
    if twice is not None:
        return f" ({twice})"
    missing = [name for name in closer if name not in given]
    extra = [(name, low) for name, low in zip(fields, given, strict=True) if low not in closer]
    parts = [f"missing {', '.join(missing)}"] if missing else []
    if extra:
        verb = "is" if len(extra) == 1 else "are"
        parts.append(f"{', '.join(show(name) for name, _ in extra)} {verb} not one of its columns")
    if not parts:
        return " (the same columns in another order: write them in the order above)"
    # What to do, not only what differs (t174: a newcomer's own export, `time,sensor,…,
    # cell,station`, was told the names but not that three were renames and one was over).
    renames = _renames(missing, [low for _, low in extra])
    # Each column named as the header writes it (t200: "rename 'date' to timestamp" of a
    # portal's 'Date', a name the file does not hold), and a column of the right name in
    # other capitals or with spaces renamed too: fixed as told, the header was then
    # refused for its 'Value' and 'Unit'.
    written = {low: name for name, low in extra}
    said = [f"{show(written[name])} to {column}" for name, column in renames]
    said += [
        f"{show(name)} to {low}"
        for name, low in zip(fields, given, strict=True)
        if low in closer and name != low
    ]
    todo: list[str] = []
    if said:
        todo.append(
            "rename " + (f"{', '.join(said[:-1])} and " if len(said) > 1 else "") + said[-1]
        )
    renamed = {name for name, _ in renames}
    over = [show(name) for name, low in extra if low not in renamed]
    if over:
        todo.append(f"drop the column{'s' if len(over) > 1 else ''} {', '.join(over)}")
    return f" ({'; '.join(parts)}: {'; '.join(todo)})" if todo else f" ({'; '.join(parts)})"


# Open-data portals' exports of the city's public sources (../shared/data/city), by
# columns their headers hold (compared lower-cased, without spaces and underscores: the
# portals' own pages name them "Created Date", their APIs created_date), and how each is
# made canonical incident rows.
_PORTAL_EXPORTS = (
    (
        {"uniquekey", "createddate", "complainttype"},
        "an NYC 311 export (NYC Open Data)? replay takes canonical rows; write them from it "
        "as citybrain/adapters.py does for the shared sample (nyc_311): created_date with "
        "its zone as timestamp, 'nyc311-' and unique_key as report_id, complaint_type as "
        "category, complaint_type: descriptor as text, open_data_channel_type as source "
        "(PHONE hotline, ONLINE and MOBILE app, others inspector), a grid cell of its place "
        "as grid_cell",
    ),
    (
        {"callnumber", "calltype", "incidentnumber"},
        "an SF fire calls export (DataSF)? replay takes canonical rows; write them from it: "
        "the call's time (Received DtTm; AvailableDtTm in the shared sample), San Francisco's, "
        "as ISO 8601 with its zone as timestamp, IncidentNumber as report_id, CallType as "
        "category and text, emergency as source, a grid cell of its place as grid_cell",
    ),
)


def _portal_export(fields: list[str]) -> str:
    """`` (an NYC 311 export (NYC Open Data)? replay takes canonical rows; …)`` for a
    header of a portal's export (``_PORTAL_EXPORTS``), naming the columns to make of its
    own; "" otherwise. t188: such a file, as the portal gives it, was refused with its
    header and the canonical ones shown, and no word on what it is or what to do."""
    names = {name.strip().lower().replace(" ", "").replace("_", "") for name in fields}
    for columns, hint in _PORTAL_EXPORTS:
        if columns <= names:
            return f" ({hint})"
    return ""


# The names a user's export gives the canonical columns, beyond those close in spelling.
_COLUMN_WORDS = {
    "timestamp": ("ts", "time", "datetime", "date_time", "date", "when", "time_utc"),
    "sensor_id": ("sensor", "id", "sensor_name", "station", "device", "device_id"),
    "grid_cell": ("cell", "grid", "cell_id", "area"),
    "kind": ("type", "measure", "measurement", "parameter", "metric", "variable"),
    "unit": ("units", "uom"),
    "value": ("reading", "val", "measurement_value"),
    "report_id": ("id", "report", "request_id", "ticket"),
    "category": ("type", "complaint_type"),
    "text": ("description", "descriptor", "message", "details"),
    "source": ("channel",),
}


def _renames(missing: list[str], extra: list[str]) -> list[tuple[str, str]]:
    """Each header name of ``extra`` (lower-cased) that stands for a ``missing`` column:
    one of ``_COLUMN_WORDS``, or close in spelling (``sensorid``, ``gridcell``), each
    used once, in the order of the missing columns."""
    import difflib

    pairs: list[tuple[str, str]] = []
    left = list(extra)
    for column in missing:
        words = _COLUMN_WORDS.get(column, ())
        named = [name for name in left if name in words or name.replace(" ", "_") in words]
        close = difflib.get_close_matches(column, left, n=1, cutoff=0.75)
        pick = named[0] if named else close[0] if close else None
        if pick is not None:
            pairs.append((pick, column))
            left.remove(pick)
    return pairs


# Rows whose message may be this large or larger are encoded by the check to be sized
# (``_check_size``); smaller ones only when the bound is smaller still.
LARGE_MESSAGE_BYTES = 1 << 16


def _split_number_hint(fields: list[str], columns: list[str]) -> str:
    """`` (a decimal comma? …)`` for a readings row one field too wide whose value and the
    field after it read as one number split at a comma (``1,5``, ``1,000``), as detect
    says it; "" otherwise (t162: replay said only "row has 7 fields, expected 6")."""
    if columns != READING_COLUMNS or len(fields) != len(columns) + 1:
        return ""
    at = columns.index("value")
    whole, part = fields[at].strip(), fields[at + 1].strip()
    if not (whole.lstrip("+-").isdigit() and whole.isascii() and part.isascii()):
        return ""
    digits, point, fraction = part.partition(".")
    if point and len(digits) == 3 and digits.isdigit() and (fraction.isdigit() or not fraction):
        # 1,234.5 unquoted (t188: said only "row has 7 fields, expected 6").
        return f" (a thousands separator in {whole},{part}? write {whole}{part})"
    if not part.isdigit():
        return ""
    if len(part) == 3:  # 1,000 may be either
        return (
            f" (a decimal comma or a thousands separator in {whole},{part}? write "
            f"{whole}.{part} or {whole}{part})"
        )
    return f" (a decimal comma in {whole},{part}? write {whole}.{part})"


def _by_column(fields: list[str], columns: list[str]) -> str:
    """``: read as timestamp '…', sensor_id '…', …, and none for grid_cell`` (or ``, and
    'x' over``): a row of too few or too many fields with no better hint, each field
    named with the column it would fill and its value (at most 32 characters shown), so
    the field left out or the one over can be found (t204: ``row has 5 fields, expected
    6`` alone, no field or value)."""

    def shown(text: str) -> str:
        return show(text if len(text) <= 32 else text[:29] + "...")

    parts = [f"{name} {shown(text)}" for name, text in zip(columns, fields, strict=False)]
    if len(fields) < len(columns):
        missing = columns[len(fields) :]
        rest = f"none for {', '.join(missing)}"
    else:
        over = fields[len(columns) :]
        rest = f"{', '.join(shown(text) for text in over[:3])}{', …' if len(over) > 3 else ''} over"
    return f": read as {', '.join(parts)}{',' if len(parts) > 1 else ''} and {rest}"


def _check_size(event: Event, fields: list[str], max_bytes: int, packed: bool = False) -> int:
    """The size in bytes of ``event``'s message (with ``packed``, of a reading's pack of
    one if larger) when it may be ``LARGE_MESSAGE_BYTES`` or more, else 0. Raises
    ValueError when it is more than ``max_bytes``."""
    # JSON writes a character as at most 6 bytes (\u001f) and adds < 200 of its own, so
    # only rows that might be large are encoded here.
    if 6 * sum(map(len, fields)) + 200 < min(max_bytes, LARGE_MESSAGE_BYTES):
        return 0
    size = len(event.to_json()) + len(event_key(event))
    if size > max_bytes:
        raise ValueError(
            f"the row's message is {size:,} bytes, more than the "
            f"{max_bytes:,} a Kafka message may hold here"
        )
    if packed and isinstance(event, Reading):
        # A pack of one can be up to 16 bytes larger than the reading's own message: a
        # row between the two passed here and ended the replay part-way, the packer's
        # PackTooLargeError an "unexpected error" (t162).
        size = max(size, alone_in_pack_bytes(event))
        if size > max_bytes:
            raise ValueError(
                f"the row's reading is {size:,} bytes as a pack (--pack), more than the "
                f"{max_bytes:,} a Kafka message may hold here"
            )
    return size


def _one_line(row: list[str], columns: list[str], multiline: str | None = None) -> None:
    # Only free text may span lines; a newline elsewhere is a stray quote's doing.
    for name, text in zip(columns, row, strict=True):
        if name != multiline and ("\n" in text or "\r" in text):
            raise ValueError(f'field "{name}" spans lines (a stray quote?): {text[:60]!r}')


def _reading(row: list[str], shared: dict[str, str] | None = None) -> Reading:
    """The row's reading; with ``shared``, its repeated texts are the first row's objects
    (``shared`` keeps one of each)."""
    ts = parse_ts(row[0], "timestamp")
    k = {} if shared is None else shared
    # A text met before was checked then (``_first_label``).
    return Reading(
        ts,
        k.get(row[1]) or _first_label(k, row[1], "sensor_id"),
        k.get(row[2]) or _first_label(k, row[2], "kind"),
        decimal(row[3]),
        k.get(row[4]) or _first_label(k, row[4], "unit"),
        k.get(row[5]) or _first_label(k, row[5], "grid_cell"),
    )


def _first_label(shared: dict[str, str], text: str, field: str) -> str:
    """``text``, a reading's ``field`` (sensor_id, kind, unit, grid_cell) not met before,
    kept in ``shared``; ValueError for white space around it (t188: a file written
    with ', ' between fields, or padded columns, was sent as ' s1 ' and ' pm25 ', which
    the worker dead-letters as no kind or sensor of the grid; a report's id and category
    were refused so since t109)."""
    if text != text.strip():  # spaces, tabs, a no-break space (a spreadsheet's)
        raise ValueError(
            f'field "{field}" is {show(text)}: white space around it: write it without'
        )
    return shared.setdefault(text, text)


def _incident(row: list[str], shared: dict[str, str] | None = None) -> IncidentReport:
    # The worker would dead-letter longer ones (streams.events: MAX_ID_CHARS).
    check_length("report_id", row[1], MAX_ID_CHARS)
    check_length("category", row[2], MAX_ID_CHARS)
    check_length("text", row[3], MAX_TEXT_CHARS)
    # Blank, padded or control characters: the worker would dead-letter them (t109).
    check_label_text("report_id", row[1])
    check_label_text("category", row[2])
    check_report_text(row[3])
    check_source(row[4])
    k = {} if shared is None else shared
    return IncidentReport(
        parse_ts(row[0], "timestamp"),
        row[1],
        k.setdefault(row[2], row[2]),
        row[3],
        k.setdefault(row[4], row[4]),
        k.setdefault(row[5], row[5]),
    )


def load_events(
    paths: Iterable[str | Path],
    on_error: OnError = "stop",
    bad_rows: list[BadRow] | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    headers_only: list[Path] | None = None,
    changed: list[str] | None = None,
) -> list[Event]:
    """Every event of every file, merged in event-time order (stable for ties), as a list:
    for callers that need them all at once (the demo, tests); a replay streams them
    instead (``check_feeds``, ``FeedStream``), as its memory must not grow with the
    files. Rows read = ``len(result) + len(bad_rows)`` (with ``on_error="skip"``). Each
    file with no row after its header, good or bad, is appended to ``headers_only``; a
    line saying so for each file whose size or modification time changed while it was
    read (a feed still being written: its last row may be cut) to ``changed``."""
    sink = bad_rows if bad_rows is not None else []
    events: list[Event] = []
    for path in paths:
        check = FileCheck(Path(path))
        events.extend(check.read(_skipped if on_error == "skip" else None, max_message_bytes))
        sink.extend(check.bad_rows)
        if changed is not None and check.changed:
            changed.append(check.changed)
        if headers_only is not None and check.headers_only:
            headers_only.append(check.path)
    events.sort(key=_ts)
    return events


def _ts(event: Event) -> float:
    return event.ts


# Events of a file out of time order are sorted on disk in runs of at most this many
# (about 145 bytes each held: ~15 MB), then merged. Checked events are written, and read
# back, this many at a time.
RUN_EVENTS = 100_000
RUN_BLOCK = 1_000
# Bad rows a replay's check holds per file; the rest wait on disk beside its checked
# events, read back as they are printed.
HELD_BAD_ROWS = 1_000


@dataclass(slots=True)
class FileCheck:
    """What the first pass over one file found (``read``): its events and bad rows
    counted, never held; whether its rows are in time order (``disorder``: the first row
    that is not, as ``file:line: …``); its first and last event times; a line saying it
    changed while it was read (``changed``); and where ``check_feeds`` wrote its events
    (``spill``)."""

    path: Path
    events: int = 0
    readings: int = 0
    bad: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    disorder: str = ""
    first_ts: float = math.inf
    last_ts: float = -math.inf
    late: int = 0
    first_late: float = math.inf
    changed: str = ""
    spill: Path | None = None
    largest: int = 0  # bytes of its largest message, when LARGE_MESSAGE_BYTES or more
    # Where the bad rows go past the first ``HELD_BAD_ROWS`` (check_feeds), as pickled
    # blocks of (line, reason); without it every one is held in ``bad_rows``.
    rejects: Path | None = None

    @property
    def headers_only(self) -> bool:
        """Whether the file has no row after its header, good or bad."""
        return self.events == 0 and self.bad == 0

    def read(
        self,
        on_bad_row: Callable[[BadRow], None] | None,
        max_message_bytes: int,
        late_after: float = math.inf,
        packed: bool = False,
    ) -> Iterator[Event]:
        """The file's events in file order, counting them as they pass (bad rows go to
        ``on_bad_row`` and are counted and kept in ``bad_rows``; without it the first
        raises ``FeedError``). Events later than ``late_after`` (seconds since the epoch)
        are counted in ``late``; ``packed``: readings are sent in packs (``_rows``)."""
        was = file_version(self.path)
        # The bad rows past the first HELD_BAD_ROWS, to be written to ``rejects`` a
        # block at a time: a file whose every row is bad (a Latin-1 export, every row
        # holding a byte that is not UTF-8) held each, ~250 bytes, until the replay had
        # printed them (10^6 bad rows took 250 MB more).
        unwritten: list[tuple[int, str]] = []

        def bad_row(row: BadRow) -> None:
            self.bad += 1
            if on_bad_row is None:
                return
            if self.rejects is None or len(self.bad_rows) < HELD_BAD_ROWS:
                self.bad_rows.append(row)
            else:
                unwritten.append((row.line, row.reason))
                if len(unwritten) >= RUN_BLOCK:
                    self._reject(unwritten)
            on_bad_row(row)

        previous, previous_line = -math.inf, 0
        rows = _rows(
            self.path, bad_row if on_bad_row is not None else None, max_message_bytes, packed
        )
        for line, event, message_bytes in _said_if_changed(rows, self.path, was):
            self.largest = max(self.largest, message_bytes)
            ts = event.ts
            if ts < previous and not self.disorder:
                self.disorder = (
                    f"{shown_path(self.path)}:{line}: {format_ts(ts)} is before line "
                    f"{previous_line}'s "
                    f"{format_ts(previous)}"
                )
            if ts >= previous:
                previous, previous_line = ts, line
            self.events += 1
            if isinstance(event, Reading):
                self.readings += 1
            self.first_ts = min(self.first_ts, ts)
            self.last_ts = max(self.last_ts, ts)
            if ts > late_after:
                self.late += 1
                self.first_late = min(self.first_late, ts)
            yield event
        self._reject(unwritten)
        changed = changed_while_read(self.path, was)
        if changed is not None:
            # A feed still being written: rows added after the read are not sent, and a
            # last line caught half-written reads as a row (t121: it was sent unsaid).
            self.changed = (
                f"{changed}: what was written to it after that is not sent, and its last "
                "row may have been cut short; replay it once it is complete"
            )

    def _reject(self, rows: list[tuple[int, str]]) -> None:
        """Append ``rows`` (line, reason) to ``rejects`` as one block, and empty it.
        Raises ``OSError`` when it cannot be written (``check_feeds`` names the place)."""
        if not rows or self.rejects is None:
            return
        with self.rejects.open("ab") as out:
            pickle.dump(rows, out, pickle.HIGHEST_PROTOCOL)
        rows.clear()

    def all_bad_rows(self) -> Iterator[BadRow]:
        """Every bad row kept (``on_bad_row`` given), in file order: those held, then
        those written to ``rejects``, a block at a time."""
        yield from self.bad_rows
        if self.rejects is None or not self.rejects.exists():
            return
        with self.rejects.open("rb") as rejects:
            while True:
                try:
                    block: list[tuple[int, str]] = pickle.load(rejects)
                except EOFError:
                    return
                for line, reason in block:
                    yield BadRow(self.path, line, reason)


class BadRows:
    """The bad rows a replay's check kept, file after file (``FeedCheck.bad_rows``):
    counted without being read, read back from disk a block at a time when iterated
    (again each time), while the check is open."""

    def __init__(self, files: list[FileCheck]) -> None:
        self.files = files

    def __len__(self) -> int:
        # A file keeps its bad rows (its first ones held) or none, raising at the first.
        return sum(f.bad for f in self.files if f.bad_rows)

    def __bool__(self) -> bool:
        return any(f.bad_rows for f in self.files)

    def __iter__(self) -> Iterator[BadRow]:
        for f in self.files:
            yield from f.all_bad_rows()


@dataclass(slots=True)
class FeedCheck:
    """What ``check_feeds`` found in a replay's files, in the order given: counts, bad
    rows, and the event times a replay's notes need (``late``: events after the
    ``late_after`` it was given, ``first_late`` the earliest of them). ``tmp`` holds each
    file's checked events (``FileCheck.spill``) until ``close``."""

    files: list[FileCheck]
    tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def events(self) -> int:
        return sum(f.events for f in self.files)

    @property
    def bad_rows(self) -> BadRows:
        """Every bad row kept (``on_error="skip"``), in the order of the files and their
        lines; ``len`` counts them, iterating reads them back (``BadRows``)."""
        return BadRows(self.files)

    @property
    def headers_only(self) -> list[Path]:
        return [f.path for f in self.files if f.headers_only]

    @property
    def changed(self) -> list[str]:
        return [f.changed for f in self.files if f.changed]

    @property
    def last_ts(self) -> float:
        return max((f.last_ts for f in self.files), default=-math.inf)

    @property
    def largest(self) -> int:
        """Bytes of the largest message, when ``LARGE_MESSAGE_BYTES`` or more; else 0."""
        return max((f.largest for f in self.files), default=0)

    @property
    def late(self) -> int:
        return sum(f.late for f in self.files)

    @property
    def first_late(self) -> float:
        return min((f.first_late for f in self.files), default=math.inf)

    def close(self) -> None:
        """Remove the checked events written to disk."""
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None


def check_feeds(
    paths: Iterable[str | Path],
    on_error: OnError = "stop",
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    late_after: float = math.inf,
    packed: bool = False,
) -> FeedCheck:
    """A replay's first pass: every row of every file read and checked, none held in
    memory (it does not grow with the files). A bad row raises ``FeedError`` naming file
    and line (``on_error="stop"``: nothing is sent), or is kept in the file's
    ``bad_rows`` (``"skip"``). Each file's events are written as they are checked to a
    temporary file (``FileCheck.spill``: pickled blocks of ``RUN_BLOCK``, about 33 bytes
    an event), which ``FeedStream`` reads back in time order: ten times cheaper than
    parsing the CSV again, and the events sent are those checked, whatever happens to
    the file since. ``FeedError`` when that cannot be written (a full disk), naming the
    directory. Close the result (``FeedStream`` does) to remove them. ``packed``: the
    replay sends readings in packs, so a reading is checked as a pack of it alone too."""
    tmp = tempfile.TemporaryDirectory(prefix="citybrain-replay-")
    files: list[FileCheck] = []
    path = Path()
    try:
        for index, given in enumerate(paths):
            path = Path(given)
            spill = Path(tmp.name) / f"{index}.events"
            check = FileCheck(path, spill=spill, rejects=Path(tmp.name) / f"{index}.bad")
            events = check.read(
                _skipped if on_error == "skip" else None, max_message_bytes, late_after, packed
            )
            with spill.open("wb") as out:
                while block := list(itertools.islice(events, RUN_BLOCK)):
                    pickle.dump(block, out, pickle.HIGHEST_PROTOCOL)
            files.append(check)
    except OSError as exc:
        tmp.cleanup()
        raise FeedError(
            f"{shown_path(path)}: cannot write its checked events to {tmp.name}: "
            f"{exc.strerror or exc} (a replay keeps them on disk, about 33 bytes each, "
            "until it has sent them): free space there, or set TMPDIR to a roomier place"
        ) from None
    except BaseException:
        tmp.cleanup()
        raise
    return FeedCheck(files, tmp)


def _skipped(row: BadRow) -> None:
    """A bad row ``FileCheck`` keeps (``on_error="skip"``)."""


class FeedStream:
    """A replay's second pass: the events ``check_feeds`` checked, read back from its
    temporary files and merged in event-time order (stable: a tie goes in the order the
    files were given, then the rows'), as they are sent. A k-way merge
    (``heapq.merge``) over one reader per file holds a block of ``RUN_BLOCK`` events per
    file; a file out of time order (``FileCheck.disorder``) is first sorted on disk in
    runs of ``RUN_EVENTS`` (stable), whose merge holds a block a run: so what is held
    does not grow with the rows, and the order is the one sorting all events at once
    gave before t129. Use it as a context manager (``close`` removes the temporary
    files, the check's too); ``open()`` sorts the files out of order and raises
    ``FeedError`` when that cannot be done (a full disk), before anything is yielded."""

    def __init__(self, check: FeedCheck) -> None:
        self.check = check
        self._sources: list[Iterator[Event]] = []

    def __enter__(self) -> FeedStream:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        for index, file in enumerate(self.check.files):
            if file.events == 0 or file.spill is None:
                continue
            if file.disorder:
                self._sources.append(self._sorted(index, file, file.spill))
            else:
                self._sources.append(_run_events(file.spill))

    def close(self) -> None:
        for source in self._sources:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        self.check.close()

    def __iter__(self) -> Iterator[Event]:
        if len(self._sources) == 1:
            return self._sources[0]
        return heapq.merge(*self._sources, key=_ts)

    def _sorted(self, index: int, file: FileCheck, spill: Path) -> Iterator[Event]:
        """The file's events in time order: sorted runs written to disk now, merged as
        they are read."""
        assert self.check.tmp is not None  # the spill is in it
        runs: list[Path] = []
        try:
            events = _run_events(spill)
            while run := list(itertools.islice(events, RUN_EVENTS)):
                run.sort(key=_ts)  # stable: ties stay in file order
                path = Path(self.check.tmp.name) / f"{index}-{len(runs)}.run"
                with path.open("wb") as out:
                    for start in range(0, len(run), RUN_BLOCK):
                        pickle.dump(run[start : start + RUN_BLOCK], out, pickle.HIGHEST_PROTOCOL)
                runs.append(path)
                del run
        except OSError as exc:
            raise FeedError(
                f"{file.disorder}: the file is not in time order, and sorting it on disk in "
                f"{self.check.tmp.name} failed: {exc.strerror or exc}; sort the file by its "
                "timestamp column, or free space there (TMPDIR)"
            ) from None
        spill.unlink()  # its events are in the runs now
        return heapq.merge(*map(_run_events, runs), key=_ts)


def _run_events(path: Path) -> Iterator[Event]:
    """The events of one sorted run file, ``RUN_BLOCK`` at a time."""
    for block in _run_blocks(path):
        yield from block


def _run_blocks(path: Path) -> Iterator[list[Event]]:
    """The blocks of events a run file holds, as written (``pickle``, each at most
    ``RUN_BLOCK``)."""
    with path.open("rb") as run:
        while True:
            try:
                yield pickle.load(run)
            except EOFError:
                return


def _said_if_changed(
    rows: Iterator[tuple[int, Event, int]], path: Path, was: tuple[int, int] | None
) -> Iterator[tuple[int, Event, int]]:
    """``rows``, a bad row's ``FeedError`` (``--on-error stop``) saying too that the file
    changed while it was read, when it did: t180, a feed truncated or rotated under a
    replay stopped at "big.csv:46262: row has 1 fields, expected 6", the row cut by the
    truncation, with no word of the change (said only after a whole read)."""
    try:
        yield from rows
    except FeedError as exc:
        changed = changed_while_read(path, was)
        if changed is None:
            raise
        raise FeedError(
            f"{exc} ({changed}: still being written, truncated or rotated? replay it once "
            "it is complete)"
        ) from None


def send_packs(
    producer: Any,
    topic: str,
    packs: Iterable[tuple[int, bytes, bytes]],
    on_failure: Callable[[Exception], None] | None = None,
    on_success: Callable[[Any], None] | None = None,
) -> int:
    """Send ``ReadingPacker`` output with a kafka-python producer, each pack to its
    partition (``-1``: the key's partition); returns how many. ``on_failure`` gets each
    send's exception (else one raised before sending propagates); ``on_success`` each
    acknowledged send's record metadata."""
    from kafka.errors import KafkaError, KafkaTimeoutError

    n = 0
    for partition, key, value in packs:
        try:
            future = producer.send(
                topic, key=key, value=value, partition=None if partition < 0 else partition
            )
        except KafkaError as exc:
            # e.g. MessageSizeTooLargeError, raised before sending: report, go on. Not a
            # send that waited max_block_ms for room: Kafka takes nothing, and every next
            # send would wait as long (helper t85: a frozen broker, a silent hour).
            if on_failure is None or isinstance(exc, KafkaTimeoutError):
                raise
            on_failure(exc)
        else:
            if on_success is not None:
                future.add_callback(on_success)
            if on_failure is not None:
                future.add_errback(on_failure)
        n += 1
    return n


def event_key(event: Event) -> bytes:
    """Readings are keyed by sensor (one sensor's state on one partition), incidents by cell."""
    return (event.sensor_id if isinstance(event, Reading) else event.grid_cell).encode()


@dataclass(slots=True)
class ReplayStats:
    """What a replay sent. ``failed`` counts messages Kafka refused (``first_failure``
    says why, ``largest_failed`` is the largest one's size in bytes); their events are in
    ``readings``/``incidents`` too, and in ``failed_readings``/``failed_incidents``.
    ``last`` is the last event handed to the producer (None before the first)."""

    readings: int = 0
    incidents: int = 0
    seconds: float = 0.0
    failed: int = 0
    first_failure: str = ""
    failed_readings: int = 0
    failed_incidents: int = 0
    largest_failed: int = 0
    last: Event | None = None


class Replayer:
    """Publishes events with kafka-python at ``speed`` x real time, or as fast as possible."""

    def __init__(
        self,
        bootstrap: str,
        readings_topic: str,
        incidents_topic: str,
        options: dict[str, Any] | None = None,
        packer: ReadingPacker | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        """With a ``packer``, readings go out as ``readings/1`` packs (as an edge gateway
        sends them): a pack when one fills up, and when paced (``speed``) the partial
        ones at each new event time. ``max_message_bytes`` is the largest message value
        the caller will send (read_canonical and the packer keep to it); the producer's
        max_request_size leaves room for key and framing above it, and its record batches
        hold no more than that and 64 bytes (a broker's max.message.bytes bounds a batch:
        pass its bound, less ``RECORD_FRAMING``)."""
        from kafka import KafkaProducer

        self.producer = KafkaProducer(
            **(options or {}),
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            # No record batch larger than a message may be: messages are appended to a
            # batch up to batch_size, and one the broker refuses as too large is split by
            # kafka-python, whose flush then raised UnknownError('Future not done') (t162:
            # a topic taking 200,000 bytes, packs of 199,872 and a small one after).
            batch_size=min(256 * 1024, max_message_bytes + 64),
            max_request_size=max(1_048_576, max_message_bytes + 64 * 1024),
            client_id="citybrain-replay",
        )
        self._stats = ReplayStats()
        self.readings_topic = readings_topic
        self.incidents_topic = incidents_topic
        self.packer = packer
        self._reset_answers()

    def _reset_answers(self) -> None:
        """No message handed to the producer yet, none answered (``_stalled``)."""
        self._handed = 0  # messages handed to the producer (main thread)
        self._answered = 0  # ... acknowledged or refused (the producer's I/O thread)
        self._progress_at = time.monotonic()  # the last answer, or when one became due

    def replay(
        self,
        events: Iterable[Event],
        speed: float | None,
        progress: Callable[[int], None] | None = None,
    ) -> ReplayStats:
        """Send ``events`` (in event-time order; a list, or an iterator read as they are
        sent: ``FeedStream``) at ``speed`` x the pace of their event times, the first at
        once, or as fast as Kafka takes them (``None``); ``progress`` hears of the events
        sent, every 1,000 and at least every PROGRESS_SECONDS (with 0 during a long wait
        for the next event's time, so a caller that prints every few seconds goes on
        printing). ``stats`` counts them as they go, ``stats.last`` the last one handed
        over."""
        stats = self._stats = ReplayStats()
        self._reset_answers()
        start = time.monotonic()
        t0: float | None = None
        instant = 0.0
        unreported = 0  # events sent since progress last heard of them
        heard = start  # when progress last heard (time.monotonic())
        for event in events:
            if t0 is None:
                t0 = instant = event.ts
            if speed is not None:
                if event.ts != instant and self.packer is not None:
                    # Paced: a pack holds one instant's readings, as a gateway that sends
                    # what it has on each tick (behind schedule too).
                    self._send_packs(self.packer.flush())
                    instant = event.ts
                due = (event.ts - t0) / speed
                delay = due - (time.monotonic() - start)
                if delay > 0:
                    if progress is not None and unreported and delay >= 0.5:
                        # A paced replay of sparse data can wait minutes per 1,000
                        # events: the count shown must not stand still meanwhile.
                        progress(unreported)
                        unreported, heard = 0, time.monotonic()
                    # In bounded steps: time.sleep() refuses more than about 292 years
                    # (OverflowError), which a slow --speed over a long file asks for;
                    # with a progress to tell, in steps of PROGRESS_SECONDS.
                    longest = _LONGEST_SLEEP if progress is None else PROGRESS_SECONDS
                    while delay > 0:
                        waiting = self._handed > self._answered
                        time.sleep(min(delay, STALL_CHECK_SECONDS if waiting else longest))
                        self._check_answers()
                        now = time.monotonic()
                        delay = due - (now - start)
                        if progress is not None and now - heard >= PROGRESS_SECONDS:
                            progress(unreported)
                            unreported, heard = 0, now
            if isinstance(event, Reading):
                stats.readings += 1
                if self.packer is not None:
                    try:
                        packs = self.packer.add(event)
                    except PackTooLargeError as exc:
                        # Refused alone, as Kafka refuses a message too large: it ended
                        # the replay part-way as an "unexpected error" (t162). The check
                        # refuses such rows first (``packed``); this is for callers that
                        # did not check.
                        self._failed(exc, readings=1, size=alone_in_pack_bytes(event))
                        packs = []
                    self._send_packs(packs)
                else:
                    self._send_packs([(-1, event_key(event), event.to_json())])
            else:
                stats.incidents += 1
                value = event.to_json()
                failed = partial(self._failed, incidents=1, size=len(value))
                self._handing(1)
                send_packs(
                    self.producer,
                    self.incidents_topic,
                    [(-1, event_key(event), value)],
                    failed,
                    self._acknowledged,
                )
            stats.last = event
            unreported += 1
            if unreported % 100 == 0:
                self._check_answers()
            if progress is not None and (
                unreported == 1000
                or (unreported % 50 == 0 and time.monotonic() - heard >= PROGRESS_SECONDS)
            ):
                progress(unreported)
                unreported, heard = 0, time.monotonic()
        self._send_packs(self.packer.flush() if self.packer else [])
        # Bounded: a broker frozen part-way (it takes connections, answers nothing) left
        # kafka-python's flush waiting for ever, even once it was thawed (helper t85). In
        # steps, so a Kafka that answers nothing stops it after STALL_SECONDS.
        self._flush(FLUSH_SECONDS)
        if progress is not None and unreported:
            progress(unreported)
        stats.seconds = time.monotonic() - start
        return stats

    @property
    def stats(self) -> ReplayStats:
        """What the current or last ``replay`` has handed to the producer so far (its
        events in time order: the first ``readings + incidents`` of them)."""
        return self._stats

    def drain(self, timeout: float = 30.0) -> None:
        """After an interrupted ``replay``: send the readings a packer still holds and wait
        up to ``timeout`` s for Kafka to have everything handed over, so ``stats`` counts
        what was sent."""
        if self.packer is not None:
            self._send_packs(self.packer.flush())
        self.producer.flush(timeout=timeout)

    def _flush(self, timeout: float) -> None:
        """The producer's flush, at most ``timeout`` s, in steps of STALL_CHECK_SECONDS
        between which ``_check_answers`` may stop it. Raises KafkaTimeoutError."""
        from kafka.errors import KafkaError, KafkaTimeoutError

        deadline = time.monotonic() + timeout
        while True:
            step = min(STALL_CHECK_SECONDS, max(0.0, deadline - time.monotonic()))
            try:
                self.producer.flush(timeout=step)
                return
            except KafkaTimeoutError:
                if time.monotonic() >= deadline:
                    raise
                self._check_answers()
            except KafkaError:
                # kafka-python splits a record batch the broker refused as too large and
                # sends its parts again; its flush, waiting on the refused batch, raised
                # UnknownError('Future not done') meanwhile (t204: a topic taking 1,000
                # bytes, batches of small readings: "unexpected UnknownError … a bug",
                # exit 70). The parts' answers come to the callbacks: wait for them.
                if time.monotonic() >= deadline:
                    raise KafkaTimeoutError("the producer's flush did not finish") from None
                time.sleep(min(0.05, step))
                self._check_answers()

    def _handing(self, messages: int) -> None:
        """Count ``messages`` about to be handed to the producer; the wait for an answer
        starts now when none was waiting."""
        if self._handed <= self._answered:
            self._progress_at = time.monotonic()
        self._handed += messages

    def _acknowledged(self, _metadata: Any = None) -> None:
        # The producer's I/O thread: an int increment and a float store, safe under the GIL.
        self._answered += 1
        self._progress_at = time.monotonic()

    def _check_answers(self) -> None:
        """Raise KafkaTimeoutError when messages have waited STALL_SECONDS with no answer
        from Kafka (an acknowledgement or a refusal) since the last one."""
        from kafka.errors import KafkaTimeoutError

        waiting = self._handed - self._answered
        quiet = time.monotonic() - self._progress_at
        if waiting > 0 and quiet > STALL_SECONDS:
            raise KafkaTimeoutError(
                f"no acknowledgement for {quiet:.0f} s, {waiting:,} messages waiting for it"
            )

    def _send_packs(self, packs: list[tuple[int, bytes, bytes]]) -> None:
        for pack in packs:
            # How many readings a refused message held (a pack's each have one
            # "sensor_id" key; a string holding it is written with its quotes escaped).
            value = pack[2]
            held = value.count(b'"sensor_id":') if value.startswith(PACK_HEAD) else 1
            failed = partial(self._failed, readings=held, size=len(value))
            self._handing(1)
            send_packs(self.producer, self.readings_topic, [pack], failed, self._acknowledged)

    def _failed(self, exc: Exception, readings: int = 0, incidents: int = 0, size: int = 0) -> None:
        # Called by the producer's I/O thread; an int increment is safe under the GIL.
        # A refusal is an answer too: Kafka (or the producer's own check) said no.
        self._acknowledged()
        stats = self._stats
        stats.failed += 1
        stats.failed_readings += readings
        stats.failed_incidents += incidents
        stats.largest_failed = max(stats.largest_failed, size)
        if not stats.first_failure:
            stats.first_failure = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        """Close the producer, waiting at most ``CLOSE_SECONDS`` for what it still holds
        (its own close waits for ever on a broker that stopped answering); one that
        stopped answering is the replay's own error to say, not the close's."""
        from kafka.errors import KafkaError

        with contextlib.suppress(KafkaError):
            self.producer.close(timeout=CLOSE_SECONDS)
