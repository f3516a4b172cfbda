"""``citybrain detect``: score ``timestamp,value`` CSVs with a detector, strictly streaming.

Each row is scored before the detector learns it, with only the rows before it (the
detectors' ``score_many`` contract); output is ``timestamp,value,anomaly_score``, one row
per input row, same order. Bad input fails with file, line and reason.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import numpy as np

from citybrain.errors import InputError
from detectors import DEFAULT_THRESHOLD, Detector
from streams.csvfile import BadRow, decimal, field_count_reason, read_records, split_line
from streams.errors import FeedError
from streams.events import ISO_DATETIME

# Clocks stepping back for daylight saving repeat up to an hour of timestamps (NAB's
# machine_temperature file does); anything earlier than that is out of order.
MAX_STEP_BACK = timedelta(hours=1)


class DetectInputError(InputError):
    """A bad input file; the message names file, line and reason."""


# A date alone (a daily series) or the worker's ISO 8601 form (streams/events.py), the
# zone optional (none is UTC), ASCII digits only.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _when(text: str) -> datetime | None:
    """The row's time, or None. Python 3.11's ``fromisoformat`` alone also takes any
    character between date and time (``2026-11-01X10:00``), the basic format
    (``20261101T1000``), week dates (``2026-W44-1``) and a bare hour (``…T10``): a
    column of something else would have been read as times."""
    text = text.strip()
    if not (ISO_DATETIME.fullmatch(text) or _DATE.fullmatch(text)):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _looks_like_row(text: str) -> bool:
    fields = split_line(text)
    return fields is not None and len(fields) >= 2 and _when(fields[0]) is not None


def read_series(
    path: Path, on_bad_row: Callable[[str], None] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Stamps as written, times in seconds, values. Any fault (bytes that are not UTF-8,
    stray quotes, bad fields, rows out of time order; the reader is streams/csvfile.py)
    raises DetectInputError naming file, line and reason; with ``on_bad_row``, a bad row
    is passed to it as ``file:line: reason`` and skipped instead (a bad header, an empty
    file or no good rows still raise)."""
    try:
        records = list(read_records(path, _looks_like_row))
    except FeedError as exc:
        raise DetectInputError(str(exc)) from None
    if not records:
        raise DetectInputError(f"{path}:1: the file is empty, expected a header timestamp,value")
    header = records[0]
    if isinstance(header, BadRow):
        raise DetectInputError(f"{header} (in the header row)")
    if [h.strip() for h in header.fields[:2]] != ["timestamp", "value"]:
        raise DetectInputError(
            f"{path}:{header.line}: header is {','.join(header.fields)!r}, expected timestamp,value"
        )
    stamps: list[str] = []
    values: list[float] = []
    times: list[float] = []
    previous: datetime | None = None
    for record in records[1:]:
        try:
            if isinstance(record, BadRow):
                raise DetectInputError(str(record))
            # No wider than the header: `1,5` (a decimal comma) is two fields, and reading
            # the first alone took 1.5 for 1 without a word.
            if len(record.fields) > len(header.fields):
                raise DetectInputError(
                    f"{path}:{record.line}: "
                    f"{field_count_reason(record.fields, len(header.fields))} "
                    "(a decimal comma? write 1.5, or quote the value)"
                )
            when, epoch, value = _row(path, record.line, record.fields, previous)
        except DetectInputError as exc:
            if on_bad_row is None:
                raise
            on_bad_row(str(exc))
            continue
        previous = max(previous, when) if previous else when
        stamps.append(record.fields[0])
        times.append(epoch)
        values.append(value)
    if not values:
        raise DetectInputError(f"{path}:2: no data rows")
    return stamps, np.asarray(times), np.asarray(values, dtype=np.float64)


def _row(
    path: Path, line: int, row: list[str], previous: datetime | None
) -> tuple[datetime, float, float]:
    """One row's time, epoch seconds and value; DetectInputError names what is wrong."""
    if len(row) < 2:
        raise DetectInputError(
            f"{path}:{line}: row has {len(row)} field(s), expected timestamp,value"
        )
    when = _when(row[0])
    if when is None:
        raise DetectInputError(
            f'{path}:{line}: field "timestamp" is {row[0]!r}, expected YYYY-MM-DD HH:MM:SS'
        )
    try:
        value = decimal(row[1])
    except ValueError as exc:
        raise DetectInputError(f"{path}:{line}: {exc}") from None
    try:
        back = previous is not None and when < previous - MAX_STEP_BACK
        epoch = when.replace(tzinfo=UTC).timestamp() if when.tzinfo is None else when.timestamp()
        if previous is not None:
            max(previous, when)  # raises TypeError for a zone mixed with none
    except (TypeError, OverflowError, ValueError, OSError) as exc:
        # Stamps with and without a zone mixed, or one out of range.
        raise DetectInputError(f'{path}:{line}: field "timestamp" is {row[0]!r}: {exc}') from None
    if back:
        assert previous is not None
        raise DetectInputError(
            f"{path}:{line}: timestamp {row[0]!r} is before the previous row's "
            f"{previous:%Y-%m-%d %H:%M:%S}: rows must be in time order"
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


@dataclass
class Scored:
    """What scoring one or more series gave: ``rows`` scored; ``flagged`` of them at or
    above the threshold; ``leading_zeros``, the longest run of 0 scores any series
    started with (a detector's warm-up as seen, for one that declares none)."""

    rows: int = 0
    flagged: int = 0
    leading_zeros: int = 0
    series: int = 0

    def add(self, other: Scored) -> None:
        self.rows += other.rows
        self.flagged += other.flagged
        self.leading_zeros = max(self.leading_zeros, other.leading_zeros)
        self.series += other.series


def detect_file(
    src: Path,
    dst: Path | TextIO,
    prototype: Detector,
    on_bad_row: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Scored:
    """Score ``src`` into ``dst`` (one row per good input row). Raises DetectInputError
    (see ``read_series`` for ``on_bad_row``). ``warn`` hears about a series no longer
    than the detector's warm-up, or (for a detector that declares none) scored 0
    throughout. ``threshold``: rows scoring at or above it are counted as flagged.
    ``dst`` may be an open text stream (stdout) instead of a path."""
    stamps, times, values = read_series(src, on_bad_row)
    warmup = warmup_rows(prototype)
    if warn is not None and warmup is not None and len(values) <= warmup:
        warn(
            f"{src}: {len(values):,} rows, no more than the detector's warm-up of {warmup:,}: "
            "every row scored 0 (give it a longer history)"
        )
    scores = prototype.clone().score_many(values, times)  # a fresh detector per stream
    nonzero = np.flatnonzero(scores)
    leading = int(nonzero[0]) if nonzero.size else len(scores)
    if warn is not None and warmup is None and not nonzero.size:
        warn(
            f"{src}: every one of its {len(values):,} rows scored 0: the detector may still "
            "be learning on a series this short (give it a longer history)"
        )
    if isinstance(dst, Path):
        dst.parent.mkdir(parents=True, exist_ok=True)
        with dst.open("w", encoding="utf-8", newline="") as fh:
            _write_scores(fh, stamps, values, scores)
    else:
        _write_scores(dst, stamps, values, scores)
    return Scored(len(stamps), int(np.count_nonzero(scores >= threshold)), leading, 1)


def _write_scores(fh: TextIO, stamps: list[str], values: np.ndarray, scores: np.ndarray) -> None:
    writer = csv.writer(fh)
    writer.writerow(["timestamp", "value", "anomaly_score"])
    for stamp, value, score in zip(stamps, values.tolist(), scores.tolist(), strict=True):
        writer.writerow([stamp, repr(value), f"{score:.6f}"])


def detect_dir(
    src: Path,
    dst: Path,
    prototype: Detector,
    on_bad_row: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    written: list[Path] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Scored:
    """Every CSV under ``src`` (in sorted order) to the same relative path under ``dst``;
    each output finished is appended to ``written``, so a caller stopped by a bad file
    can say how far it got."""
    total = Scored()
    for path in sorted(src.rglob("*.csv")):
        out = dst / path.relative_to(src)
        total.add(detect_file(path, out, prototype, on_bad_row, warn, threshold))
        if written is not None:
            written.append(out)
    return total
