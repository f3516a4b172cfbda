"""``citybrain detect``: score ``timestamp,value`` CSVs with a detector, strictly streaming.

Each row is scored before the detector learns it, with only the rows before it (the
detectors' ``score_many`` contract); output is ``timestamp,value,anomaly_score``, one row
per input row, same order. Bad input fails with file, line and reason.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from detectors import Detector

# Clocks stepping back for daylight saving repeat up to an hour of timestamps (NAB's
# machine_temperature file does); anything earlier than that is out of order.
MAX_STEP_BACK = timedelta(hours=1)


class DetectInputError(ValueError):
    """A bad input file; the message names file, line and reason."""


def read_series(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Stamps as written, times in seconds, values; raises DetectInputError."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
            raise DetectInputError(f"{path}:1: header is {header!r}, expected timestamp,value")
        stamps: list[str] = []
        values: list[float] = []
        times: list[float] = []
        previous: datetime | None = None
        for row in reader:
            line = reader.line_num
            if len(row) < 2:
                raise DetectInputError(
                    f"{path}:{line}: row has {len(row)} field(s), expected timestamp,value"
                )
            try:
                when = datetime.fromisoformat(row[0].strip())
            except ValueError:
                raise DetectInputError(
                    f'{path}:{line}: field "timestamp" is {row[0]!r}, expected YYYY-MM-DD HH:MM:SS'
                ) from None
            try:
                value = float(row[1])
            except ValueError:
                raise DetectInputError(
                    f'{path}:{line}: field "value" is {row[1]!r}, expected a number'
                ) from None
            if not math.isfinite(value):
                raise DetectInputError(
                    f'{path}:{line}: field "value" is {row[1]!r}, expected a finite number'
                )
            if previous is not None and when < previous - MAX_STEP_BACK:
                raise DetectInputError(
                    f"{path}:{line}: timestamp {row[0]!r} is before the previous row's "
                    f"{previous:%Y-%m-%d %H:%M:%S}: rows must be in time order"
                )
            previous = max(previous, when) if previous else when
            stamps.append(row[0])
            times.append(
                when.replace(tzinfo=UTC).timestamp() if when.tzinfo is None else when.timestamp()
            )
            values.append(value)
    if not values:
        raise DetectInputError(f"{path}:2: no data rows")
    return stamps, np.asarray(times), np.asarray(values, dtype=np.float64)


def warmup_rows(detector: Detector) -> int | None:
    """Rows a fresh ``detector`` scores 0 while it learns (its ``warmup`` or
    ``min_samples``), or None when it declares none."""
    for name in ("warmup", "min_samples"):
        value = getattr(detector, name, None)
        if isinstance(value, int):
            return value
    return None


def detect_file(
    src: Path, dst: Path, prototype: Detector, warn: Callable[[str], None] | None = None
) -> int:
    """Score one file into ``dst``; rows written. ``warn`` hears about a series shorter
    than the detector's warm-up (all of it scored 0 for want of history)."""
    stamps, times, values = read_series(src)
    warmup = warmup_rows(prototype)
    if warn is not None and warmup is not None and len(values) <= warmup:
        warn(
            f"{src}: {len(values)} rows, no more than the detector's warm-up of {warmup}: "
            "every row scored 0 (give it a longer history)"
        )
    scores = prototype.clone().score_many(values, times)  # a fresh detector per stream
    dst.parent.mkdir(parents=True, exist_ok=True)
    with dst.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for stamp, value, score in zip(stamps, values.tolist(), scores.tolist(), strict=True):
            writer.writerow([stamp, repr(value), f"{score:.6f}"])
    return len(stamps)


def detect_dir(
    src: Path, dst: Path, prototype: Detector, warn: Callable[[str], None] | None = None
) -> int:
    """Every CSV under ``src`` to the same relative path under ``dst``."""
    total = 0
    for path in sorted(src.rglob("*.csv")):
        total += detect_file(path, dst / path.relative_to(src), prototype, warn)
    return total
