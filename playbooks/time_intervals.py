"""Alertmanager's time intervals, parsed and checked as Alertmanager 0.25 does.

A routing file names intervals at the top (``time_intervals:``, or its deprecated alias
``mute_time_intervals:``), each a list of ``TimeInterval`` mappings::

    time_intervals:
      - name: night
        time_intervals:
          - times: [{start_time: "22:00", end_time: "24:00"}]
            weekdays: ["monday:friday"]
            days_of_month: ["1:10", "-3:-1"]
            months: ["january:march", "12"]
            years: ["2026:2030"]
            location: Asia/Shanghai

The model is ``timeinterval/timeinterval.go`` (``TimeInterval.ContainsTime`` and the
``UnmarshalYAML`` methods) and ``config/config.go`` (names, references): an interval
contains an instant when every field it gives matches; a list of intervals when any of
them does. ``times`` are minutes of the day, start inclusive, end exclusive; ``weekdays``
count Sunday as 0; ``days_of_month`` may be negative (-1 is the month's last day) and
are clamped to the month; ``location`` is an IANA zone name (``UTC`` when absent).

One deliberate difference: Alertmanager 0.25 counts a month's days as the hours from its
first midnight to the next month's divided by 24, so a month with a spring-forward
daylight-saving change has one day less in a ``location`` that has one (March in
Europe/Berlin has 30 and ``-1`` is the 30th); Alertmanager fixed that after 0.25 (#5447)
and citybrain counts the calendar's days.

No I/O; the loader reads the file and gives the values as YAML loaded them.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from playbooks.errors import PlaybookError, name_fault, quote_hint, shown
from playbooks.schema import go_int

Loc = tuple[str | int, ...]

INTERVAL_KEYS = ("times", "weekdays", "days_of_month", "months", "years", "location")
TIME_RANGE_KEYS = ("start_time", "end_time")
NAMED_KEYS = ("name", "time_intervals")

WEEKDAYS = {
    "sunday": 0,
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
}
MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}

# Go's strconv.Atoi: an optional sign and ASCII digits, nothing else (no spaces, no '_').
_ATOI = re.compile(r"[+-]?[0-9]+")
_ATOI_MAX = 2**63 - 1
# timeinterval.go's validTime: HH:MM from 00:00 to 23:59, or 24:00 alone.
_TIME = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00")


class TimeIntervalError(PlaybookError):
    """A time interval as written is invalid. ``loc`` is where in the routing document
    (``("time_intervals", 0, "time_intervals", 1, "weekdays", 0)``) so the loader can name
    the line; ``str()`` is ``"<dotted loc>: <reason>"``."""

    def __init__(self, loc: Loc, reason: str) -> None:
        self.loc = loc
        self.reason = reason
        super().__init__(f"{'.'.join(str(part) for part in loc)}: {reason}")


@dataclass(frozen=True)
class TimeRange:
    """Minutes of a day, ``start_minute`` included, ``end_minute`` excluded (0-1440)."""

    start_minute: int
    end_minute: int


Range = tuple[int, int]  # inclusive (begin, end)


@dataclass(frozen=True)
class TimeInterval:
    """One interval; a field left out (``None``) matches any instant, an empty tuple none
    (as Alertmanager's ``weekdays: []`` matches nothing)."""

    times: tuple[TimeRange, ...] | None = None
    weekdays: tuple[Range, ...] | None = None
    days_of_month: tuple[Range, ...] | None = None
    months: tuple[Range, ...] | None = None
    years: tuple[Range, ...] | None = None
    location: str | None = None  # an IANA name, "UTC", or "Local" (the machine's zone)

    def contains(self, instant: datetime) -> bool:
        """Whether ``instant`` (an aware datetime, any zone) falls in this interval, read
        in the interval's ``location`` (UTC when none). Raises ValueError for a naive
        datetime: its zone would be a guess."""
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError(f"time {instant.isoformat()} has no time zone")
        t = _in_location(instant, self.location)
        minute = t.hour * 60 + t.minute
        weekday = t.isoweekday() % 7  # Go's time.Weekday: Sunday is 0
        return (
            (self.times is None or any(r.start_minute <= minute < r.end_minute for r in self.times))
            and (self.days_of_month is None or any(_day_in(t, r) for r in self.days_of_month))
            and _within(self.months, t.month)
            and _within(self.weekdays, weekday)
            and _within(self.years, t.year)
        )


def _within(ranges: tuple[Range, ...] | None, value: int) -> bool:
    """A field left out matches; a given one when any of its inclusive ranges does."""
    return ranges is None or any(begin <= value <= end for begin, end in ranges)


def contains_any(intervals: Iterable[TimeInterval], instant: datetime) -> bool:
    """Whether any of ``intervals`` contains ``instant`` (a named interval's list, or all
    the intervals a route names): False for none."""
    return any(interval.contains(instant) for interval in intervals)


def _in_location(instant: datetime, location: str | None) -> datetime:
    if location is None or location in ("", "UTC"):
        return instant.astimezone(UTC)
    if location == "Local":
        return instant.astimezone()
    return instant.astimezone(_zone(location))


_ZONES: dict[str, tzinfo] = {}


def _zone(name: str) -> tzinfo:
    zone = _ZONES.get(name)
    if zone is None:
        zone = _ZONES[name] = ZoneInfo(_zone_key(name))
    return zone


def _zone_key(name: str) -> str:
    """The IANA key of a location as Go's ``time.LoadLocation`` finds it: it opens the
    zoneinfo directory's ``/`` + ``name`` as a path, so ``Europe//Berlin``,
    ``./America/New_York`` and ``Australia/./Sydney`` are the file of ``Europe/Berlin``,
    ``America/New_York`` and ``Australia/Sydney`` there (Alertmanager 0.25 takes them),
    where zoneinfo refuses any key not written in its normal form (t182). Empty and ``.``
    parts are dropped, but a name ending in ``/`` or ``/.`` is kept as written, refused
    as there (a zone is a file, not a directory); ``..`` was refused before."""
    parts = name.split("/")
    if parts[-1] in ("", "."):
        return name
    return "/".join(part for part in parts if part not in ("", "."))


def _days_in_month(t: datetime) -> int:
    """The calendar's days in ``t``'s month (not Alertmanager 0.25's hours / 24)."""
    return calendar.monthrange(t.year, t.month)[1]


def _day_in(t: datetime, r: Range) -> bool:
    days = _days_in_month(t)
    begin = days + r[0] + 1 if r[0] < 0 else r[0]
    end = days + r[1] + 1 if r[1] < 0 else r[1]
    if begin > days:  # a range starting past this month's end (31 in April)
        return False
    # Clamped to the month so -31:-1 in February starts at its first day.
    begin = min(max(begin, -days), days)
    end = min(max(end, -days), days)
    return begin <= t.day <= end


# -- parsing ------------------------------------------------------------------------------


def _text(value: Any, loc: Loc, what: str) -> str:
    """A scalar as the text go-yaml hands Alertmanager: an integer keeps the text it was
    written as (the loader's WrittenInt: ``010`` stays ``010``, ``17:00`` is not 1020)."""
    written = getattr(value, "written", None)
    if isinstance(written, str):
        return written
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TimeIntervalError(loc, f"{what} is {shown(value)}, expected text{quote_hint(value)}")


def _atoi(text: str, loc: Loc, what: str) -> int:
    value = go_int(text, _ATOI_MAX) if _ATOI.fullmatch(text) else None
    if value is None:
        raise TimeIntervalError(loc, f"{what} {shown(text)} is not a whole number")
    return value


def _split(text: str, loc: Loc, what: str) -> tuple[str, str]:
    """``"a:b"`` or ``"a"`` (a range of one), lower-cased as Alertmanager does."""
    text = text.lower()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2:
            raise TimeIntervalError(
                loc, f"{what} {shown(text)} is not a range: expected 'start:end' or one value"
            )
        return parts[0], parts[1]
    return text, text


def _weekday(value: Any, loc: Loc) -> Range:
    text = _text(value, loc, "weekday")
    ends = []
    for part in _split(text, loc, "weekday"):
        if part not in WEEKDAYS:
            raise TimeIntervalError(
                loc, f"weekday {part!r} is not a day's name (sunday, monday, … saturday)"
            )
        ends.append(WEEKDAYS[part])
    if ends[0] > ends[1]:
        raise TimeIntervalError(
            loc,
            f"weekdays {text!r}: the end day is before the start day (the week starts on "
            "sunday: a weekend is two entries, saturday and sunday)",
        )
    return ends[0], ends[1]


def _day_of_month(value: Any, loc: Loc) -> Range:
    text = _text(value, loc, "day of the month")
    begin, end = (_atoi(p, loc, "day of the month") for p in _split(text, loc, "day of the month"))
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            raise TimeIntervalError(
                loc, f"day of the month {day} is out of range: 1 to 31, or -31 to -1 from the end"
            )
    if begin < 0 < end:
        raise TimeIntervalError(
            loc, f"days of the month {text!r}: the end day must be negative if the start is"
        )
    # 28 days, the shortest month, as Alertmanager checks: a range always empty is an error.
    if (28 + begin if begin < 0 else begin) > (28 + end if end < 0 else end):
        raise TimeIntervalError(
            loc, f"days of the month {text!r}: the end day {end} is always before the start {begin}"
        )
    return begin, end


def _month(value: Any, loc: Loc) -> Range:
    text = _text(value, loc, "month")
    ends = []
    for part in _split(text, loc, "month"):
        if part in MONTHS:
            ends.append(MONTHS[part])
        elif _ATOI.fullmatch(part) and (number := go_int(part, _ATOI_MAX)) is not None:
            # Alertmanager 0.25 takes any number here (13 matches no month), not only 1-12.
            ends.append(number)
        else:
            raise TimeIntervalError(
                loc, f"month {shown(part)} is not a month's name (january … december) or number"
            )
    if ends[0] > ends[1]:
        raise TimeIntervalError(loc, f"months {text!r}: the end month is before the start month")
    return ends[0], ends[1]


def _year(value: Any, loc: Loc) -> Range:
    text = _text(value, loc, "year")
    begin, end = (_atoi(p, loc, "year") for p in _split(text, loc, "year"))
    if begin > end:
        raise TimeIntervalError(loc, f"years {text!r}: the end year is before the start year")
    return begin, end


def _minute(value: Any, loc: Loc, key: str) -> int:
    text = _text(value, loc, key)
    if not _TIME.fullmatch(text):
        raise TimeIntervalError(loc, f"{key} {text!r} is not a time of day HH:MM (00:00 to 24:00)")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _time_range(value: Any, loc: Loc) -> TimeRange:
    if not isinstance(value, Mapping):
        raise TimeIntervalError(
            loc, f"a time range is {shown(value)}, expected a mapping with start_time, end_time"
        )
    _no_unknown(value, TIME_RANGE_KEYS, loc)
    missing = [k for k in TIME_RANGE_KEYS if value.get(k) in (None, "")]
    if missing:
        raise TimeIntervalError(
            loc, f"a time range needs both start_time and end_time; {missing[0]} is missing"
        )
    start = _minute(value["start_time"], (*loc, "start_time"), "start_time")
    end = _minute(value["end_time"], (*loc, "end_time"), "end_time")
    if start >= end:
        raise TimeIntervalError(
            loc,
            f"start_time {value['start_time']!s} is not before end_time {value['end_time']!s}"
            " (a range over midnight is two ranges: to 24:00 and from 00:00)",
        )
    return TimeRange(start, end)


def _location(value: Any, loc: Loc) -> str:
    name = _text(value, loc, "location")
    if name in ("", "UTC", "Local"):
        return name or "UTC"
    # Go's time.LoadLocation refuses these before looking; zoneinfo would too, less plainly.
    if ".." in name or name.startswith(("/", "\\")):
        raise TimeIntervalError(loc, f"location {name!r} is not a time zone name")
    try:
        _zone(name)
    except (ValueError, KeyError, OSError):
        raise TimeIntervalError(
            loc, f"location {name!r} is not a time zone of the IANA database (e.g. Asia/Shanghai)"
        ) from None
    return name


def _no_unknown(value: Mapping[Any, Any], allowed: Sequence[str], loc: Loc) -> None:
    for key in value:
        if key not in allowed:
            raise TimeIntervalError(
                (*loc, str(key)), f"unknown key {str(key)!r}: expected one of {', '.join(allowed)}"
            )


def _list(value: Any, loc: Loc, parse: Any) -> tuple[Any, ...] | None:
    if value is None:  # a key with no value: as if left out, like Alertmanager
        return None
    if not isinstance(value, list):
        raise TimeIntervalError(loc, f"is {shown(value)}, expected a list")
    out = []
    for i, item in enumerate(value):
        if item is None:
            # Alertmanager 0.25 reads a null item as its zero value (weekdays: [~] is sunday,
            # a null day of the month matches no day): refused here as surely a mistake.
            raise TimeIntervalError((*loc, i), "is null, expected a value")
        out.append(parse(item, (*loc, i)))
    return tuple(out)


def parse_time_interval(value: Any, loc: Loc = ()) -> TimeInterval:
    """One ``TimeInterval`` mapping as YAML loaded it. Raises TimeIntervalError naming the
    field (``loc``) and the value for what Alertmanager 0.25 refuses (and a null list item)."""
    if value is None:
        return TimeInterval()
    if not isinstance(value, Mapping):
        raise TimeIntervalError(loc, f"a time interval is {shown(value)}, expected a mapping")
    _no_unknown(value, INTERVAL_KEYS, loc)
    location = value.get("location")
    return TimeInterval(
        times=_list(value.get("times"), (*loc, "times"), _time_range),
        weekdays=_list(value.get("weekdays"), (*loc, "weekdays"), _weekday),
        days_of_month=_list(value.get("days_of_month"), (*loc, "days_of_month"), _day_of_month),
        months=_list(value.get("months"), (*loc, "months"), _month),
        years=_list(value.get("years"), (*loc, "years"), _year),
        location=None if location is None else _location(location, (*loc, "location")),
    )


def parse_named_intervals(
    doc: Mapping[str, Any],
    problems: list[TimeIntervalError] | None = None,
) -> dict[str, tuple[TimeInterval, ...]]:
    """The routing document's named intervals: ``time_intervals:`` and its deprecated
    alias ``mute_time_intervals:`` (both may be given; a name is unique across them), as
    ``{name: (TimeInterval, ...)}``. Raises TimeIntervalError for a bad interval, a
    missing or repeated name; with ``problems``, appends each entry's error there instead
    and goes on to the next entry (a bad entry's name still counts as defined, so a route
    naming it is not a second error)."""
    named: dict[str, tuple[TimeInterval, ...]] = {}
    for key in ("mute_time_intervals", "time_intervals"):
        entries = doc.get(key)
        if entries is None:
            continue
        try:
            if not isinstance(entries, list):
                raise TimeIntervalError((key,), f"is {shown(entries)}, expected a list")
        except TimeIntervalError as exc:
            if problems is None:
                raise
            problems.append(exc)
            continue
        for i, entry in enumerate(entries):
            try:
                _named_entry(entry, (key, i), named)
            except TimeIntervalError as exc:
                if problems is None:
                    raise
                problems.append(exc)
    return named


def _named_entry(entry: Any, loc: Loc, named: dict[str, tuple[TimeInterval, ...]]) -> None:
    if not isinstance(entry, Mapping):
        raise TimeIntervalError(loc, f"is {shown(entry)}, expected a mapping")
    name = entry.get("name")
    if name is None or name == "":
        _no_unknown(entry, NAMED_KEYS, loc)
        raise TimeIntervalError(loc, "missing name: each time interval needs one")
    name = _text(name, (*loc, "name"), "name")
    if name in named:
        raise TimeIntervalError(
            (*loc, "name"), f"time interval {name!r} is defined twice; names are unique"
        )
    named[name] = ()  # defined from here on, even if what follows is refused
    fault = name_fault(name)
    if fault is not None:
        # The one check of names an operator writes (t197): a name is said in the worker's
        # log and route-test's answer ("in its mute time interval 'night'"); an ESC, a
        # U+2028 or a zero-width space in one played, cut or hid there. Alertmanager takes
        # any name; a route naming it is still checked against it (defined above).
        raise TimeIntervalError(
            (*loc, "name"),
            f"time interval name {shown(name)} holds {fault}, expected printable text",
        )
    _no_unknown(entry, NAMED_KEYS, loc)
    named[name] = _list(entry.get("time_intervals"), (*loc, "time_intervals"), _entry) or ()


def _entry(value: Any, loc: Loc) -> TimeInterval:
    return parse_time_interval(value, loc)


def time_mute(
    mute: Iterable[str],
    active: Iterable[str],
    defined: Mapping[str, tuple[TimeInterval, ...]],
    instant: datetime,
) -> str:
    """Why a route sends nothing at ``instant``, or "" when it may notify, as
    Alertmanager's notification pipeline decides at each flush of a group (notify.go,
    TimeActiveStage then TimeMuteStage): not while none of its ``active`` intervals
    holds (when it names some), not while one of its ``mute`` intervals holds. Names not
    in ``defined`` are skipped (an ``active`` list of only those is as if not given)."""
    active = [name for name in active if name in defined]
    if active and not any(contains_any(defined[name], instant) for name in active):
        return "outside its active time intervals " + ", ".join(repr(n) for n in active)
    for name in mute:
        if name in defined and contains_any(defined[name], instant):
            return f"in its mute time interval {name!r}"
    return ""


def check_references(names: Iterable[str], defined: Mapping[str, Any], loc: Loc) -> None:
    """Refuse a route's ``mute_time_intervals`` / ``active_time_intervals`` entry naming
    an interval that ``defined`` lacks (Alertmanager: 'undefined time interval')."""
    for i, name in enumerate(names):
        if name not in defined:
            known = ", ".join(sorted(defined)) or "none is defined"
            raise TimeIntervalError(
                (*loc, i), f"undefined time interval {name!r} (defined: {known})"
            )


__all__ = [
    "MONTHS",
    "WEEKDAYS",
    "TimeInterval",
    "TimeIntervalError",
    "TimeRange",
    "check_references",
    "contains_any",
    "parse_named_intervals",
    "parse_time_interval",
    "time_mute",
]
