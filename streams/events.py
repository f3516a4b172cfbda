"""Event schemas (version 1) and their validation: sensor readings and incident reports.

Pure: bytes in, a typed event or an ``EventError`` out. The wire format is JSON
(docs/events.md); the canonical CSV for replays has the same fields.
"""

from __future__ import annotations

import json
import math
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from types import FrameType
from typing import Any, TypeVar, cast

import msgspec
import orjson

from playbooks.encodings import (
    SCHEMA_REGISTRY,
    binary_format,
    blank,
    text_format,
    wide_encoding,
)
from playbooks.errors import character_at, did_you_mean, name_fault
from playbooks.grid import MAX_ID_CHARS as MAX_ID_CHARS  # re-exported: the streams read it here
from playbooks.grid import Grid
from streams.errors import (
    LATIN_LOOKS,
    LOOKALIKE_LETTERS,
    MISSING,
    EventError,
    likely_encoding,
    number_hint,
    show,
    underflows,
    unreadable,
)
from streams.spans import item_spans, max_depth
from streams.unknown import UNKNOWN

READING_SCHEMA = "reading/1"
# What a reading/1 document carries (besides its schema), in the order they are checked.
READING_FIELDS = ("ts", "sensor_id", "kind", "value", "unit", "grid_cell")
_READING_FIELDS = frozenset(READING_FIELDS)
# The keys a reading or a report may carry: any other is ignored unless it looks like
# one of these (``lookalike_key``).
_READING_KEYS = frozenset({"schema", *READING_FIELDS})
_PACK_KEYS = frozenset({"schema", "readings"})
INCIDENT_KEYS = frozenset({"schema", "ts", "report_id", "category", "text", "source", "grid_cell"})
PACK_SCHEMA = "readings/1"  # many readings in one message, packed by an edge gateway
INCIDENT_SCHEMA = "incident/1"
ALERT_SCHEMA = "alert/1"  # the alerts topic's; its ``schema`` may be left out
# A pack's readings share one Kafka offset; the detector's redelivery rule orders them by
# (offset, index), and a bound keeps one message's work and size in check.
MAX_PACK_READINGS = 10_000
# The largest message value citybrain produces (a pack is split below it): under Kafka's
# defaults, the producer's max.request.size (1,048,576) and the broker's message.max.bytes
# (1,048,588), with room for the key and the record's framing.
MAX_MESSAGE_BYTES = 1_000_000
# A record batch's and record's framing past key, value and headers, allowed for on top of
# MAX_MESSAGE_BYTES (aiokafka counted 130 bytes for a one-record batch).
MESSAGE_FRAMING_BYTES = 4096
# The least ``max.message.bytes`` a topic citybrain writes must take: its largest message
# in a record batch of its own. Kafka's default (1,048,588) takes it; a topic made or
# altered to take less refuses what citybrain writes within its bound (a dead letter cut
# to MAX_MESSAGE_BYTES, an audit record, a pack, a table's entry), and the message is lost
# (citybrain.stack.topics ``check_message_limits``).
WRITTEN_MESSAGE_BYTES = MAX_MESSAGE_BYTES + MESSAGE_FRAMING_BYTES
# The largest message the worker reads on its own topics (alerts, routed, commands,
# corroboration; ``message_json``): half its producer's limit, so a routed message
# wrapping an alert, a muted alert's entry with its merged reports, or a command passed on
# with its headers still fits. Its own messages are far smaller (a burst alert of 200
# report ids of 256 characters: about 60 kB).
MAX_OWN_MESSAGE_BYTES = MAX_MESSAGE_BYTES // 2
# A dead letter's key keeps at most this many bytes (its first; ``fit_dead_letter``): a
# message's key may itself be near MAX_MESSAGE_BYTES, and its dead letter must still fit.
MAX_DEAD_LETTER_KEY_BYTES = 64 * 1024
# A dead letter carries its original record whole (docs/events.md): its headers under
# this prefix, name for name and in order, so none can pass for citybrain's own
# ``citybrain.error.*`` (a producer's ``citybrain.error.reason`` header becomes
# ``citybrain.original.header.citybrain.error.reason``); its timestamp, timestamp type
# and (when the dead letter is keyed otherwise) key under ``citybrain.original.*``.
ORIGINAL_PREFIX = "citybrain.original."
ORIGINAL_HEADER_PREFIX = "citybrain.original.header."
# The original's headers keep at most this many bytes of the dead letter (names and
# values; the first headers, in order): a record's headers may fill a whole Kafka message.
MAX_ORIGINAL_HEADER_BYTES = MAX_MESSAGE_BYTES // 2
# Kafka's timestamp types, by the number a record carries.
TIMESTAMP_TYPES = {0: "CreateTime", 1: "LogAppendTime"}
# An incident's report id and category travel in every alert, offer, step, audit record
# and reply about it (a burst alert holds up to 200 report ids): bounded as the grid's ids
# are (playbooks.grid.MAX_ID_CHARS), so no message built from them can outgrow
# MAX_MESSAGE_BYTES.
MAX_TEXT_CHARS = 10_000  # a report's free text (read by the department classifier)

# Sensor kinds, their units and plausible ranges are data: the grid's registry
# (playbooks/grid.py: DEFAULT_KINDS and a grid file's ``kinds``), not a list here.
INCIDENT_SOURCES = frozenset({"hotline", "app", "inspector", "emergency"})

# Event-time sanity bounds (documented in docs/events.md): older than this is a broken
# clock, newer than wall clock + skew is a sensor in the future.
MIN_EVENT_TIME = datetime(1990, 1, 1, tzinfo=UTC).timestamp()
_YEAR_2200 = datetime(2200, 1, 1, tzinfo=UTC).timestamp()
# What ``format_ts`` can write back (years 0001-9999 in UTC); an offset can carry a
# parsed time past either end, and the event could then never be sent on.
_FIRST_TS = datetime(1, 1, 1, tzinfo=UTC).timestamp()
# The last float before the year 10000: 23:59:59.999999 is no float, and rounded up to
# the next whole second it passed here and then failed format_ts (helper t52: an alert
# ending "9999-12-31T23:59:59.9999999Z" was read and could not be written back).
_LAST_TS = math.nextafter(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() + 1, 0)
# ISO 8601 extended date-time (RFC 3339's profile, seconds optional), ASCII digits only:
# Python 3.11's fromisoformat also takes any character as the date/time separator (a
# NUL, an "X"), the basic format and week dates, which would pass unnoticed. The one rule
# for every timestamp citybrain reads (``iso_datetime``; docs/events.md, ``ts``): date,
# then ``T``, ``t`` or a space, then ``HH:MM``, optional ``:SS`` and a fraction after ``.``
# or ``,``; the zone ``Z`` or ``z`` (RFC 3339 allows either case of both letters), or an
# offset ``±HH:MM``, ``±HHMM`` or ``±HH``. The offset's digits are checked by
# ``iso_datetime``, not here, so that the error says which part is wrong: minutes 00-59
# (fromisoformat took ``+00:60`` as an hour and ``+0099`` as 1 h 39 min) and an offset a
# clock on Earth can show, -12:00 to +14:00 (``+15:00`` or ``-13:00`` is a typo or a
# device's broken zone setting, and shifted the reading by hours unsaid).
ISO_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
    r"(?P<zone>[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2})(?::?(?P<om>[0-9]{2}))?)?"
)
# The UTC offsets civil time uses: UTC-12:00 (Baker Island) to UTC+14:00 (Line Islands).
MIN_UTC_OFFSET_MINUTES = -12 * 60
MAX_UTC_OFFSET_MINUTES = 14 * 60


def iso_datetime(text: str) -> datetime:
    """``text`` in the form ``ISO_DATETIME`` -> its datetime (naive without a zone).
    Raises ValueError for any other text (``fromisoformat``'s wider forms included), for
    an offset whose minutes are past 59 or that lies outside -12:00..+14:00 (the message
    says which), and OverflowError for none here (a time past year 9999 in UTC is the
    caller's check)."""
    form = ISO_DATETIME.fullmatch(text)
    if form is None:
        raise ValueError(text)
    if form.group("sign") is not None:
        _check_offset(form.group("zone"), form.group("oh"), form.group("om") or "00")
    if form.group("zone") == "z":
        text = text[:-1] + "Z"  # fromisoformat reads only the capital
    return datetime.fromisoformat(text)


def _check_offset(offset: str, hours: str, minutes: str) -> None:
    """ValueError naming ``offset`` as sent (``+0599``) when its minutes are past 59 or it
    lies outside the offsets civil time uses (-12:00..+14:00)."""
    if int(minutes) > 59:
        raise ValueError(f"the UTC offset {offset} has minutes past 59")
    total = (1 if offset[0] == "+" else -1) * (int(hours) * 60 + int(minutes))
    if not MIN_UTC_OFFSET_MINUTES <= total <= MAX_UTC_OFFSET_MINUTES:
        raise ValueError(
            f"the UTC offset {offset} is outside the offsets clocks use (-12:00 to +14:00)"
        )


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# ISO 8601's basic format (no separators), which the extended form here does not take.
_BASIC = re.compile(r"[0-9]{8}[Tt ]?[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:[.,][0-9]+)?)?)?.*")
_EXAMPLE = "2026-11-01T10:00:00Z"
# A leap second's seconds (``:60`` and any fraction) after the hour and minute.
_LEAP_SECOND = re.compile(r"(?P<minute>[Tt ][0-9]{2}:[0-9]{2}):60(?:[.,][0-9]*)?")
_END_OF_DAY = re.compile(r"[Tt ]24:00(?::00(?:[.,]0+)?)?(?:[Zz]|[+-]|$)")
# ISO 8601's other date forms, which RFC 3339 (and so the form here) leaves out: a week
# date (2026-W49-6) and an ordinal date (2026-339), each with a time after it or not.
_WEEK_DATE = re.compile(r"(?P<y>[0-9]{4})-?W(?P<w>[0-9]{2})-?(?P<d>[1-7])(?P<rest>[Tt ].*)?")
_ORDINAL_DATE = re.compile(r"(?P<y>[0-9]{4})-(?P<n>[0-9]{3})(?P<rest>[Tt ].*)?")
# Digits alone, perhaps with a fraction: an epoch time, not ISO 8601's basic format.
_EPOCH_TEXT = re.compile(r"-?[0-9]{1,20}(?:\.[0-9]+)?")


def _next_midnight(day: str) -> str | None:
    """``2026-12-31`` -> ``2027-01-01T00:00:00``: the day after ``day``, the instant its
    24:00 stands for; None when that day is past the year 9999 (``9999-12-31T24:00``:
    ``date + 1 day`` raised OverflowError out of ``parse_ts``, which the worker took as
    an ``unreadable`` message, "OverflowError: date value out of range", naming no
    field, t171); ``_EXAMPLE`` for text that is no date."""
    try:
        start = datetime.strptime(day, "%Y-%m-%d")
    except ValueError:
        return _EXAMPLE
    if start.date() == date.max:
        return None
    return f"{_ymd(start + timedelta(days=1))}T00:00:00"


def _ymd(when: date) -> str:
    """``0001-01-02``: ``%Y`` writes the year 1 as ``1`` (glibc), a date no reader takes."""
    return f"{when.year:04d}-{when.month:02d}-{when.day:02d}"


def other_date_fault(text: str) -> str | None:
    """Why a week date, an ordinal date or an epoch time in text is not taken, naming the
    calendar date or the instant it stands for; None for any other text. Before t109 the
    first two were "expected an ISO 8601 timestamp", which they are, and epoch seconds in
    a string "ISO 8601's basic format", which they are not."""
    week, ordinal = _WEEK_DATE.fullmatch(text), _ORDINAL_DATE.fullmatch(text)
    try:
        if week is not None:
            day = datetime.fromisocalendar(int(week["y"]), int(week["w"]), int(week["d"]))
            return (
                f"an ISO week date ({text[: week.start('rest')] if week['rest'] else text}) "
                f"is not taken: send the calendar date, {_ymd(day)} "
                f"({_ymd(day)}{week['rest'] or 'T00:00:00Z'})"
            )
        if ordinal is not None:
            first = datetime(int(ordinal["y"]), 1, 1)
            day = first + timedelta(days=int(ordinal["n"]) - 1)
            if day.year != first.year or int(ordinal["n"]) < 1:
                return None
            return (
                f"an ordinal date ({text[: ordinal.start('rest')] if ordinal['rest'] else text})"
                f" is not taken: send the calendar date, {_ymd(day)} "
                f"({_ymd(day)}{ordinal['rest'] or 'T00:00:00Z'})"
            )
    except (ValueError, OverflowError):
        # No such day (2026-W54-1); past a date's range, an OverflowError that escaped
        # parse_ts: 9999-366 (the day after 9999-12-31) or 0001-000 (t171).
        return None
    if _EPOCH_TEXT.fullmatch(text):
        return epoch_text_fault(float(text))
    return None


def epoch_text_fault(number: float) -> str | None:
    """Why an epoch time is not taken where ISO 8601 is: ``1789999700 looks like epoch
    seconds: send it as ISO 8601 (2026-09-21T14:08:20Z)``, likewise milli-, micro- or
    nanoseconds; None when the number is no time from 1990 to 2200 in any of them."""
    unit = "seconds" if MIN_EVENT_TIME <= number <= _YEAR_2200 else epoch_unit_guess(number)
    if unit is None:
        return None
    factor = next((f for f, u in _EPOCH_UNITS if u == unit), 1.0)
    shown = f"{number:.0f}" if number.is_integer() else repr(number)
    return f"{shown} looks like epoch {unit}: send it as ISO 8601 ({format_ts(number / factor)})"


def timestamp_fault(text: str) -> str:
    """Why ``text`` is not a timestamp ``iso_datetime`` reads,
    for the error that names the field: spaces around it, a date alone, ISO 8601's basic
    format, a leap second, a field out of its range (``datetime``'s own words: "day is
    out of range for month"), else the expected form. Each ends with an example of the
    form that is taken."""
    if text != text.strip():
        return f"spaces around the timestamp: send it without them ({_EXAMPLE})"
    form = ISO_DATETIME.fullmatch(text)
    if form is not None:
        try:
            iso_datetime(text)
        except ValueError as exc:
            leap = _LEAP_SECOND.search(text)
            if re.fullmatch(r"second must be in 0\.\.59", str(exc)) and leap is not None:
                # The reading's own minute (t185: the hint named 2026-11-01T10:00:00Z,
                # _EXAMPLE, for any leap second, a time to copy hours or years off).
                same = text[: leap.start()] + leap.group("minute") + ":59.999" + text[leap.end() :]
                return (
                    "second 60 (a leap second) is not taken: send 59.999 of the same "
                    f"minute ({same})"
                )
            midnight = _END_OF_DAY.search(text)
            if midnight is not None and str(exc).startswith("hour must be"):
                # ISO 8601's 24:00, the end of a day: the next day's 00:00 is one instant.
                after = _next_midnight(text[:10])
                if after is None:
                    return (
                        "24:00 (the end of the day) of 9999-12-31 is 00:00 of the year "
                        "10000: outside the years 0001-9999"
                    )
                return (
                    "24:00 (the end of the day) is not taken: send 00:00 of the next day "
                    f"({after}{form.group('zone') or ''})"
                )
            return str(exc)
        return f"expected an ISO 8601 timestamp ({_EXAMPLE})"
    if _DATE.fullmatch(text):
        return f"a date alone: expected a date and a time with a zone ({_EXAMPLE})"
    other = other_date_fault(text)
    if other is not None:
        return other
    if _BASIC.fullmatch(text):
        return (
            "ISO 8601's basic format (no '-' and ':') is not taken: expected the extended "
            f"format ({_EXAMPLE})"
        )
    return foreign_form_fault(text) or f"expected an ISO 8601 timestamp ({_EXAMPLE})"


# Timestamps as exports and other tools write them, each close to the form taken (t174: a
# newcomer's CSV was told only "expected an ISO 8601 timestamp (…)" for each).
_ZONE_WORD = re.compile(r"(?P<time>.+?) ?(?P<word>UTC|GMT|Z)")
_SPACED_OFFSET = re.compile(r"(?P<time>.+?) (?P<offset>[+-][0-9]{2}(?::?[0-9]{2})?)")
_ZONE_NAME = re.compile(r"(?P<time>.+?)\[[A-Za-z_+\-/0-9]+\]")
_SLASHED_YMD = re.compile(r"[0-9]{4}/[0-9]{1,2}/[0-9]{1,2}(?:[ T].*)?")
_SLASHED_DMY = re.compile(r"(?P<date>[0-9]{1,2}[/.][0-9]{1,2}[/.][0-9]{4})(?:[ T,].*)?")


def foreign_form_fault(text: str) -> str | None:
    """What to send for a timestamp in a form other tools write, close to the one taken:
    a zone as a word (``… UTC``), an offset after a space, a zone name in brackets (Java's
    ``…+08:00[Asia/Shanghai]``), an e-mail/HTTP date (RFC 2822: said as the instant), a
    date with slashes year first, or day and month first (``01/03/2016``: which is the
    month only the writer knows); None for any other text (and any over 64 characters:
    no timestamp is that long, and the patterns are not for a field of 100,000)."""
    if len(text) > 64:
        return None
    for pattern, fix in (
        (_ZONE_WORD, lambda m: f"{m['time']}Z"),
        (_SPACED_OFFSET, lambda m: f"{m['time']}{m['offset']}"),
        (_ZONE_NAME, lambda m: m["time"]),
    ):
        match = pattern.fullmatch(text)
        if match is not None and match["time"] != text:
            fixed = fix(match)
            try:
                if iso_datetime(fixed).tzinfo is not None:
                    return (
                        f"send it as '{fixed}' (the zone written Z or ±HH:MM right after the "
                        f"time: {_EXAMPLE})"
                    )
            except ValueError:
                pass
    try:
        from email.utils import parsedate_to_datetime

        mailed = parsedate_to_datetime(text) if "," in text or text[:3].isalpha() else None
    except (TypeError, ValueError, IndexError):
        mailed = None
    if mailed is not None and mailed.tzinfo is not None:
        return (
            "an e-mail or HTTP date (RFC 2822) is not taken: send it as ISO 8601, "
            + mailed.astimezone(UTC).isoformat().replace("+00:00", "Z")
        )
    if _SLASHED_YMD.fullmatch(text):
        return (
            f"write the date with '-', year first: YYYY-MM-DD, then the time and zone ({_EXAMPLE})"
        )
    slashed = _SLASHED_DMY.fullmatch(text)
    if slashed is not None:
        first, second, year = (int(part) for part in slashed["date"].replace(".", "/").split("/"))
        if first > 12 >= second or second > 12 >= first:
            day, month = (first, second) if first > 12 else (second, first)
            return (
                f"a date written {'day' if first > 12 else 'month'} first: write it year "
                f"first, {year:04d}-{month:02d}-{day:02d}, with the time and zone ({_EXAMPLE})"
            )
        return (
            "a date written day and month first (D/M/Y or M/D/Y: which is the month, only "
            "the file's writer knows): write it year first, YYYY-MM-DD, with the time and "
            f"zone ({_EXAMPLE})"
        )
    return None


# The start of ``no_zone_fault``'s text, for callers that tell that fault apart.
NO_ZONE = "timestamp has no time zone"


def no_zone_fault(text: str) -> str:
    """Why ``text``, a timestamp ``iso_datetime`` reads but without a zone, is refused, and
    what to send: ``text`` itself with ``Z`` (UTC) or an offset added. The bare "timestamp
    has no time zone" said no next step (t174: a pandas or spreadsheet export writes
    ``2016-03-01 00:00:00``, local time, in every row), where every other fault of a
    timestamp ends with the form that is taken."""
    shown = text[:29]  # a fraction past nine digits is cut: still a time the form takes
    return (
        f"{NO_ZONE}: add the zone of the clock that wrote it, "
        f"'{shown}Z' if that was UTC, or its UTC offset ('{shown}+08:00' for UTC+8)"
    )


def iso_instant(text: str) -> datetime | None:
    """``text`` (spaces around it ignored) as an aware datetime, UTC when it has no zone,
    or None: the form ``ISO_DATETIME`` (``iso_datetime``, the worker's) or a date alone
    (``2026-11-01``). Python 3.11's ``fromisoformat`` alone also takes any character
    between date and time (``2026-11-01X10:00``), the basic format (``20261101``), week
    dates (``2026-W44-1``) and a bare hour (``…T10``), and refuses a lowercase ``z``: the
    one reading for ``citybrain detect``'s rows and the commands' ``--from``/``--to``."""
    text = text.strip()
    try:
        when = datetime.fromisoformat(text) if _DATE.fullmatch(text) else iso_datetime(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class Reading(msgspec.Struct, frozen=True, gc=False):
    """A validated sensor reading. A msgspec struct rather than a frozen dataclass: built
    once per reading on the hot path, where a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) was the largest cost of admitting a valid reading.
    """

    ts: float  # event time, seconds since the epoch (UTC)
    sensor_id: str
    kind: str
    value: float
    unit: str
    grid_cell: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "schema": READING_SCHEMA,
                "ts": format_ts(self.ts),
                "sensor_id": self.sensor_id,
                "kind": self.kind,
                "value": self.value,
                "unit": self.unit,
                "grid_cell": self.grid_cell,
            }
        )


@dataclass(frozen=True, slots=True)
class IncidentReport:
    ts: float
    report_id: str
    category: str
    text: str
    source: str
    grid_cell: str

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "schema": INCIDENT_SCHEMA,
                "ts": format_ts(self.ts),
                "report_id": self.report_id,
                "category": self.category,
                "text": self.text,
                "source": self.source,
                "grid_cell": self.grid_cell,
            }
        )


def format_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def parse_ts(value: Any, field: str = "ts") -> float:
    """ISO 8601 with a zone -> epoch seconds.

    The form is ``ISO_DATETIME`` (``iso_datetime``): ``YYYY-MM-DDTHH:MM[:SS[.fraction]]``
    (``T`` may be ``t`` or a space, as RFC 3339 allows) and a zone, ``Z`` or ``z``,
    ``±HH:MM``, ``±HHMM`` or ``±HH`` (-12:00..+14:00, the offsets clocks use; the
    operator API's silence times are read as Alertmanager reads them instead,
    ``am_epoch``); ASCII digits only;
    the time must fall in the years 0001-9999 in UTC. Raises ``EventError``
    (``bad_type``, ``bad_timestamp``) naming ``field``."""
    if not isinstance(value, str):
        reason = "expected an ISO 8601 string"
        if isinstance(value, int | float) and not isinstance(value, bool):
            # An epoch number, said as the time it looks like (t109).
            try:
                fault = epoch_text_fault(float(value))
            except OverflowError:  # an integer past a double: no time
                fault = None
            if fault is not None:
                reason = f"{reason}; {fault}"
        raise EventError("bad_type", field, value, reason)
    try:
        epoch = _epoch(value)
    except (ValueError, OverflowError):
        fault = timestamp_fault(value)
        raise EventError("bad_timestamp", field, value, fault) from None
    if epoch is None:
        raise EventError("bad_timestamp", field, value, no_zone_fault(value))
    if not _FIRST_TS <= epoch <= _LAST_TS:
        raise EventError(
            "bad_timestamp", field, value, "the time in UTC is outside the years 0001-9999"
        )
    return epoch


# Alert times (``started_at``, ``ended_at``) are read as Alertmanager 0.25's API reads an
# alert's ``startsAt``/``endsAt`` (t140): go-openapi strfmt 0.21's ``ParseDateTime`` tries
# Go's ``time.Parse`` (go1.19, the Debian build's) with these layouts in turn, the first
# that parses wins, then its ``DateTime.Validate`` re-reads the time as it writes it:
#   2006-01-02T15:04:05.000000Z07:00   2006-01-02T15:04:05.000000Z0700
#   2006-01-02T15:04:05.000Z07:00      2006-01-02T15:04:05.000Z0700
#   2006-01-02T15:04:05Z07:00 (RFC 3339; RFC3339Nano adds nothing)
#   2006-01-02T15:04:05 (no zone: UTC)   2006-01-02T15:04Z   2006-01-02T15:04 (UTC)
#   2006-01-02 15:04:05 (a space, no zone: UTC)
# Go's reading of them, measured against the real Alertmanager: capital ``T`` and ``Z``
# only; the hour one or two digits, every other field two (the year four), ASCII; seconds
# 0-59 (no leap second), a real calendar day; after the seconds a fraction of any length
# after ``.`` or ``,`` (kept to nine digits, the rest dropped), but exactly 3 or 6
# characters where a ``±HHMM`` offset follows, and there Go's ``atoi`` also takes a sign
# (``.+12345`` is 12,345 µs·10⁻³ as written: 0.012345 s; ``.-00`` is 0; ``.-01`` refused);
# an offset's hours and minutes any two digits each (``+01:60`` is +02:00, ``+25:00``
# taken) as long as the offset written back is under 100 hours (``+99:99`` refused by
# the validation). An empty string Alertmanager reads as 1970-01-01 (before 1990 here).
_AM_DATE = r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
_AM_HMS = r"(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})"
_AM_COLON_ZONE = r"(?P<z>Z|(?P<sign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))"
_AM_ZONE = r"(?P<z>Z|(?P<sign>[+-])(?P<oh>[0-9]{2}):?(?P<om>[0-9]{2}))"
_AM_TIME_FORMS = (
    # RFC 3339 (and the zone-less ISO8601LocalTime): any fraction, or none.
    re.compile(_AM_DATE + "T" + _AM_HMS + r"(?:[.,](?P<f>[0-9]+))?" + _AM_COLON_ZONE + "?"),
    # RFC3339Micro/Millis and their NoColon twins: 6 or 3 characters, a sign allowed.
    re.compile(_AM_DATE + "T" + _AM_HMS + r"[.,](?P<g>[+-]?[0-9]{5,6}|[+-]?[0-9]{2,3})" + _AM_ZONE),
    # ISO8601TimeWithReducedPrecision(Localtime): no seconds, Z or no zone.
    re.compile(_AM_DATE + "T" + r"(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{2})(?P<z>Z)?"),
    # ISO8601TimeUniversalSortableDateTimePattern: a space, no zone.
    re.compile(_AM_DATE + " " + _AM_HMS + r"(?:[.,](?P<f>[0-9]+))?"),
)
_AM_TIME_EXAMPLE = "2026-11-01T10:00:00Z"
AM_TIME_TAKEN = (
    "taken: YYYY-MM-DDTHH:MM:SS[.fraction] with Z, ±HH:MM or no zone (UTC), "
    "YYYY-MM-DDTHH:MM with Z or no zone, YYYY-MM-DD HH:MM:SS[.fraction] with no zone, "
    "±HHMM only after 3 or 6 fraction digits; capital T and Z, ASCII digits"
)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (year 0 too, as Go counts)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def am_time_ns(text: str) -> int | str:
    """Nanoseconds since the epoch (UTC) of ``text`` as Alertmanager 0.25 reads an alert's
    ``startsAt``/``endsAt``, or why it refuses it (a sentence naming the part and the
    spellings taken). Pure; no bound on the instant (the years 0000-9999 as written, an
    offset under 100 hours either way): ``alert_time`` bounds it."""
    form = next((m for f in _AM_TIME_FORMS if (m := f.fullmatch(text)) is not None), None)
    if form is None:
        return _am_time_fault(text)
    parts = form.groupdict()
    year, month, day = int(parts["y"]), int(parts["mo"]), int(parts["d"])
    hour, minute, second = int(parts["h"]), int(parts["mi"]), int(parts.get("s") or 0)
    if not 1 <= month <= 12:
        return f"month {parts['mo']} is out of range (01-12)"
    if not 1 <= day <= _days_in_month(year, month):
        return f"day {parts['d']} is out of range for {year:04d}-{month:02d}"
    if hour > 23 or minute > 59 or second > 59:
        return (
            "hour, minute or second out of range (00-23, 00-59, 00-59: no leap second, "
            f"no 24:00; {_AM_TIME_EXAMPLE})"
        )
    nanos = 0
    if parts.get("f"):
        nanos = int(parts["f"][:9].ljust(9, "0"))
    elif parts.get("g"):
        # Go's atoi over the layout's 3 or 6 characters: a sign, then digits; scaled by
        # the characters, not the digits (``.+12`` is 12 ms).
        width = 3 if len(parts["g"]) <= 3 else 6
        if len(parts["g"]) != width:
            return _am_time_fault(text)
        nanos = int(parts["g"]) * 10 ** (9 - width)
        if nanos < 0:
            return "a negative fraction of a second is not taken"
    offset = 0
    if parts.get("sign"):
        offset = int(parts["oh"]) * 60 + int(parts["om"])
        if offset > 99 * 60 + 59:
            # Go takes it; strfmt's validation refuses the time written back (+100:39).
            return f"the UTC offset {parts['z']} is 100 hours or more"
        offset = -offset if parts["sign"] == "-" else offset
    days = _days_from_civil(year, month, day)
    seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60
    return seconds * 1_000_000_000 + nanos


def _am_time_fault(text: str) -> str:
    """Why Alertmanager refuses ``text`` as an alert time, its likeliest slip first."""
    if text == "":
        return "an empty time (Alertmanager reads it as 1970-01-01T00:00:00Z, before 1990)"
    if text != text.strip():
        return f"spaces around the time are not taken; {AM_TIME_TAKEN}"
    if not text.isascii():
        return f"only ASCII digits are taken; {AM_TIME_TAKEN}"
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}t.*|.*[0-9]z", text):
        return f"a lower-case 't' or 'z' is not taken; {AM_TIME_TAKEN}"
    if re.fullmatch(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.,]*[0-9](?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)", text
    ):
        return f"a space for 'T' is taken only with no zone (UTC); {AM_TIME_TAKEN}"
    if re.fullmatch(r".*T[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]*)?)?[+-][0-9]{4}", text):
        return f"an offset without ':' is not taken here (write ±HH:MM); {AM_TIME_TAKEN}"
    return f"expected a time as Alertmanager takes it ({_AM_TIME_EXAMPLE}); {AM_TIME_TAKEN}"


def _older_alert_time(value: str) -> float | None:
    """Epoch s of ``value`` as workers before t140 read an alert's time (``parse_ts``:
    ``t``, ``z``, a space with a zone, ``±HHMM``, ``±HH``), None if they refused it: an
    alert an older worker stored in its tables still reads back."""
    try:
        return parse_ts(value)
    except EventError:
        return None


def alert_time(value: Any, field: str, *, stored: bool = False) -> float:
    """Epoch seconds of an alert's ``started_at``/``ended_at`` as Alertmanager 0.25 reads
    its ``startsAt``/``endsAt`` (``am_time_ns``; no zone is UTC), within the years
    0001-9999 in UTC. ``stored`` (an alert an earlier worker kept in its tables) also
    takes the spellings those workers took (``parse_ts``). Raises ``EventError``
    (``bad_type`` for no string, ``bad_timestamp``) naming ``field`` and the value, the
    reason saying which spellings are taken."""
    if not isinstance(value, str):
        return parse_ts(value, field)  # its bad_type, with the epoch hint
    read = am_epoch(value)
    if isinstance(read, str):
        older = _older_alert_time(value) if stored else None
        if older is None:
            raise EventError("bad_timestamp", field, value, read)
        return older
    if not _FIRST_TS <= read <= _LAST_TS:
        raise EventError(
            "bad_timestamp", field, value, "the time in UTC is outside the years 0001-9999"
        )
    return read


@lru_cache(maxsize=4096)
def am_epoch(value: str) -> float | str:
    """Epoch seconds of ``value`` as Alertmanager 0.25 reads a ``strfmt.DateTime`` (an
    alert's ``startsAt``/``endsAt``, a silence's: ``am_time_ns`` over 10**9), or why it
    refuses it (``am_time_ns``'s sentence). No bound on the instant: the caller's."""
    read = am_time_ns(value)
    return read if isinstance(read, str) else read / 10**9


# Epoch times in a smaller unit than seconds, as field devices send them (JavaScript's
# Date.now() in milliseconds, InfluxDB and Go in micro- or nanoseconds): each unit's
# factor and name, largest first.
_EPOCH_UNITS = ((1e9, "nanoseconds"), (1e6, "microseconds"), (1e3, "milliseconds"))


def epoch_unit_guess(value: float) -> str | None:
    """``"milliseconds"``, ``"microseconds"`` or ``"nanoseconds"`` when ``value`` read in
    that unit is a time from 1990 to 2200 (epoch seconds), else None: the words of the
    hint ``epoch_unit_hint`` gives (t109: only milliseconds were said; a microsecond or
    nanosecond epoch got "expected epoch seconds" alone)."""
    for factor, unit in _EPOCH_UNITS:
        if MIN_EVENT_TIME * factor <= value <= _YEAR_2200 * factor:
            return unit
    return None


def epoch_unit_hint(value: float) -> str:
    """``1790000000000000 looks like epoch microseconds: 2026-09-21T14:13:20Z in seconds;
    divide by 1,000,000`` for a number ``epoch_unit_guess`` places, else ``""``."""
    unit = epoch_unit_guess(value)
    if unit is None:
        return ""
    factor = next(f for f, u in _EPOCH_UNITS if u == unit)
    return (
        f"{value:.0f} looks like epoch {unit}: {format_ts(value / factor)} in seconds; "
        f"divide by {factor:,.0f}"
    )


def epoch_seconds_fault(value: Any) -> str | None:
    """Why ``value`` is not epoch seconds a date can show, or None when it is: a number
    (not a bool) in the years 0001-9999 in UTC, the times ``format_ts`` writes. The reason
    is ``expected epoch seconds (years 0001-9999)``, and for a number a thousand times too
    large ``; 1789999990000 looks like epoch milliseconds, 2026-09-21T14:13:10Z in seconds:
    divide by 1000``. A finite 1e308 or a time in milliseconds passed a check for finite
    numbers and ended a command that showed it as a date in a traceback (helper t52)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "expected epoch seconds"
    # Compared as given: an integer past a double (1 and 400 zeros) is no float.
    if _FIRST_TS <= value <= _LAST_TS:
        return None
    hint = epoch_unit_hint(value) if isinstance(value, int) or math.isfinite(value) else ""
    return f"expected epoch seconds (years 0001-9999){'; ' + hint if hint else ''}"


# Every field an ``alert/1`` document may carry (``AlertEvent.to_dict``, a burst's alert,
# a no-data resolution's): a key looking like one of these is refused (``alert_fields``).
ALERT_KEYS = frozenset(
    {"schema", "alert_id", "status", "sensor_id", "kind", "grid_cell", "severity", "score"}
    | {"value", "started_at", "ended_at", "labels", "reports", "follow_up", "resolved_by"}
    | {"annotation"}
)


def alert_fields(alert: Any, *, stored: bool = False) -> dict[str, Any]:
    """An alert as read from the alerts topic (``alert/1``), the fields its readers use
    checked first: ``schema`` ``alert/1`` if given; ``alert_id``, ``kind``, ``severity``
    and ``grid_cell`` non-empty text, ``status`` ``firing`` or ``resolved``; ``sensor_id``
    text or null, and ``started_at`` and ``ended_at`` ISO 8601 times from 1990 on or null,
    where given, ``ended_at`` not before ``started_at`` (``refuse_ended_before_started``,
    Alertmanager's rule; not asked of an alert ``stored`` by an earlier worker, which
    still reads back); no key that looks like one of ``ALERT_KEYS`` without being it
    (``lookalike_key``). Returns the alert, its times written as RFC 3339 in UTC
    (``alert_times_utc``: a copy, when a time was spelt otherwise). Raises
    ``EventError`` (``bad_alert``) naming the field and value (trial 19: an alert_id of 5
    raised AttributeError, a missing kind KeyError once muted: each a traceback in the
    worker's log and ``processing_error``; a ``started_at`` of 1970 opened a run whose
    reports of any age were its follow-ups)."""
    if not isinstance(alert, dict):
        raise EventError("bad_alert", None, None, "expected a JSON object")
    # A key that looks like a field without being it ("Severity", "sev\u200berity"),
    # from another tool writing the topic, was ignored: a severity of the other key
    # routed, or the field said missing with nothing naming the key sent (t99).
    odd = lookalike_key(alert, ALERT_KEYS)
    if odd is not None:
        raise lookalike_key_error(alert, *odd, code="bad_alert")
    schema = alert.get("schema", ALERT_SCHEMA)
    if schema != ALERT_SCHEMA:
        # Another version's fields may mean something else (helper t59: "alert/99" was
        # routed and opened a run); a document without one is read as alert/1.
        raise EventError("bad_alert", "schema", schema, f"expected {ALERT_SCHEMA!r}")
    for name in ("alert_id", "kind", "severity", "grid_cell"):
        value = alert.get(name, MISSING)
        if not isinstance(value, str) or not value:
            raise EventError("bad_alert", name, value, "expected a non-empty string")
    if len(alert["alert_id"]) > MAX_ID_CHARS:
        # The key of the firing and muted tables and of an area's labelled alerts (a
        # thousand kept): three ids of 400 kB made an area's state too large for Kafka,
        # and every later alert of the area was refused until they were trimmed (t99).
        # The worker's own are "al-" and 16 hex digits.
        alert_id = alert["alert_id"]
        raise EventError(
            "bad_alert",
            "alert_id",
            alert_id,
            f"{len(alert_id):,} characters, at most {MAX_ID_CHARS}",
        )
    if alert.get("status") not in ("firing", "resolved"):
        status = alert.get("status", MISSING)
        raise EventError("bad_alert", "status", status, "expected 'firing' or 'resolved'")
    sensor = alert.get("sensor_id")
    if sensor is not None and not isinstance(sensor, str):
        raise EventError("bad_alert", "sensor_id", sensor, "expected a string or null")
    for name in ("started_at", "ended_at"):
        value = alert.get(name)
        if value is None:
            continue
        try:
            at = alert_time(value, name, stored=stored)
        except EventError as exc:
            raise EventError("bad_alert", name, value, exc.reason) from None
        if at < MIN_EVENT_TIME:
            raise EventError("bad_alert", name, value, "an alert's time is before 1990-01-01")
    if not stored:
        refuse_ended_before_started(alert)
    return alert_times_utc(alert)


# An alert time as the doors write it on (``alert_time_text``): RFC 3339 in UTC, the
# fraction Go's nine digits at most.
_UTC_ALERT_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z"
)


def alert_time_text(value: str) -> str:
    """An alert time ``alert_time`` took (``stored`` spellings too) written as RFC 3339
    in UTC, ``YYYY-MM-DDTHH:MM:SS[.fraction]Z``, the same instant to the nanosecond
    (``alert_time_ns``; the fraction without trailing zeros, as Go's RFC3339Nano): what
    every reader of a time takes, an older worker's ``parse_ts`` and a person reading
    ``Z`` as UTC included. A time already so written is returned as it is. Raises
    ``ValueError`` for a text ``alert_time_ns`` refuses."""
    if _UTC_ALERT_TIME.fullmatch(value):
        return value
    ns = alert_time_ns(value)
    seconds, nanos = divmod(ns, 1_000_000_000)
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    # The year in four digits: ``%Y`` wrote the year 999 as ``999``, which no reader
    # of an alert time takes.
    return f"{_ymd(when)}T{when:%H:%M:%S}{fraction}Z"


def alert_times_utc(alert: dict[str, Any]) -> dict[str, Any]:
    """``alert`` with its ``started_at`` and ``ended_at`` written as RFC 3339 in UTC
    (``alert_time_text``), where each is text a reader of alert times takes (else left
    as it is, for the caller's check to refuse); ``alert`` itself when nothing changes.
    The alert doors (``alert_fields``) and the stored alerts' read-backs (the ``muted``
    table, a corroboration area's held alerts) pass on this one spelling, so that what
    they route, store or forward reads back the same instant at any door and in any
    worker: before t144 the text went on as sent, and a muted alert an earlier worker
    stored with ``2026-01-01t12:00:00z`` was released into a routed message the routed
    door refused (``bad_routed``: no run), an alert taken with no zone was routed in a
    form an earlier worker in the same group refused, and the demo summary listed
    ``2026-01-01T9:00:00+01:60`` under "event time (UTC)" as written."""
    changed: dict[str, str] = {}
    for name in ("started_at", "ended_at"):
        value = alert.get(name)
        if not isinstance(value, str):
            continue
        try:
            text = alert_time_text(value)
        except (ValueError, OverflowError):
            continue
        if text != value:
            changed[name] = text
    return {**alert, **changed} if changed else alert


# An ISO 8601 time's fraction of a second (``ISO_DATETIME``: only after the seconds).
_FRACTION = re.compile(r"(?<=:[0-9]{2})[.,]([0-9]+)")


def alert_time_ns(value: str) -> int:
    """Nanoseconds since the epoch of an alert's time, for comparing two times as
    Alertmanager does (``am_time_ns``: Go's ``time.Parse`` keeps a fraction to nine
    digits, where ``alert_time``'s float keeps about a tenth of a microsecond:
    ``…00.0000001Z`` and ``…00.0000009Z`` are two times there and here). A time only an
    older worker took (``alert_time``'s ``stored``) is read as it read it: its fraction
    to nine digits. Raises ``ValueError`` for a text neither takes."""
    read = am_time_ns(value)
    if not isinstance(read, str):
        return read
    fraction = _FRACTION.search(value)
    whole = value if fraction is None else value[: fraction.start()] + value[fraction.end() :]
    when = iso_datetime(whole)
    if when.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    seconds = int(when.timestamp())  # whole seconds: exact in a double, years 0001-9999
    digits = fraction.group(1)[:9] if fraction is not None else ""
    return seconds * 1_000_000_000 + int(digits.ljust(9, "0"))


def refuse_ended_before_started(alert: Mapping[str, Any]) -> None:
    """Raises ``EventError`` (``bad_alert``) naming ``ended_at`` when an alert (its times as
    ``alert_fields`` checked them) ends before it starts, to the nanosecond (the same time
    is fine): Alertmanager 0.25's API refuses such an alert (``postAlertsHandler``, then
    prometheus/common ``model.Alert.Validate``: "start time must be before end time").
    Before t139 the alerts agent routed it (a resolution ending a run before the run
    opened). A time left out (null) is none to compare: Alertmanager sets a missing
    ``startsAt`` from ``endsAt`` and a missing ``endsAt`` to now plus its
    ``resolve_timeout`` (then refusing a ``startsAt`` later than that, which
    ``refuse_alert_ahead`` bounds by ``CITYBRAIN_MAX_FUTURE_SKEW``)."""
    started, ended = alert.get("started_at"), alert.get("ended_at")
    if started is None or ended is None:
        return
    if alert_time_ns(ended) < alert_time_ns(started):
        raise EventError(
            "bad_alert",
            "ended_at",
            ended,
            f"before started_at {show(started)} (Alertmanager's API refuses such an alert: "
            '"start time must be before end time")',
        )


def alert_has_ended(alert: Mapping[str, Any], now: float) -> bool:
    """Whether ``alert`` (as ``alert_fields`` took it, or as a ``muted`` entry keeps it)
    is said ``firing`` with an ``ended_at`` not after ``now`` (epoch s): its resolution,
    as Alertmanager reads an alert whose ``endsAt`` is not after its clock
    (``types.Alert.Resolved``: it neither notifies nor inhibits; Prometheus resolves an
    alert by sending it with ``endsAt`` in the past). Before t213 the alerts stage went
    by ``status`` alone: such an alert opened a run, and as an inhibit rule's source
    muted its targets until a ``resolved`` message came. A later ``ended_at`` is kept as
    written, no timer (docs/playbooks.md, "Inhibition and silences")."""
    ended = alert.get("ended_at")
    if alert.get("status") != "firing" or ended is None:
        return False
    return alert_time(ended, "ended_at", stored=True) <= now


def refuse_alert_ahead(
    alert: dict[str, Any], now: float, ahead: float, code: str, at: str = ""
) -> None:
    """Raises ``EventError`` (``code``) naming an alert's ``started_at`` or ``ended_at``
    (as ``alert_fields`` read them) more than ``ahead`` seconds past ``now`` (the
    worker's ``CITYBRAIN_MAX_FUTURE_SKEW``, the bound of every reading's and report's
    event time, from which the worker's own alerts take theirs). An alert written on the
    alerts or routed topic with ``started_at`` in the year 9999 opened a run whose opening
    lay there: every citizen report offered to that group after it was "more than a day
    before the run opened", refused for good (t128). ``at`` prefixes the field's name
    (``alert.``: an alert inside another message)."""
    for name in ("started_at", "ended_at"):
        value = alert.get(name)
        if value is None:
            continue
        if alert_time(value, name, stored=True) > now + ahead:
            raise EventError(
                code,
                at + name,
                value,
                f"an alert's time is more than {ahead:g}s ahead of the clock "
                "(CITYBRAIN_MAX_FUTURE_SKEW)",
            )


@lru_cache(maxsize=16_384)
def _epoch(value: str) -> float | None:
    """Epoch seconds of an ISO 8601 string, None without a zone; ValueError if it is not
    ``ISO_DATETIME`` (``iso_datetime``). Cached: a city's
    sensors report on the same clock ticks, so one batch repeats a few timestamps
    thousands of times."""
    when = iso_datetime(value)
    return None if when.tzinfo is None else when.timestamp()


class EventValidator:
    """Validates wire events against the schema and the grid."""

    def __init__(self, grid: Grid, max_future_skew: float = 300.0) -> None:
        self.grid = grid
        self.max_future_skew = max_future_skew

    def reading(self, raw: bytes, now: float) -> Reading:
        return self._reading(_decode(raw, READING_SCHEMA), now)

    def reading_document(self, doc: Any, now: float) -> Reading:
        """A ``reading/1`` document already decoded (the ingest's mapped MQTT and NGSI
        messages): checked as ``reading`` checks its bytes, without a JSON round trip
        (which would write an infinite value as ``null``). Raises ``EventError``; another
        system's wrapping of a reading is named (``foreign_form``)."""
        if not isinstance(doc, dict) or doc.get("schema") != READING_SCHEMA:
            foreign = foreign_form(doc)
            if foreign is not None:
                raise foreign
        if not isinstance(doc, dict):
            raise EventError("bad_json", None, None, "expected a JSON object")
        if doc.get("schema") != READING_SCHEMA:
            raise EventError(
                "bad_schema", "schema", doc.get("schema", MISSING), f"expected {READING_SCHEMA!r}"
            )
        _check_text(doc)
        return self._reading(doc, now)

    def readings(self, raw: bytes, now: float) -> tuple[bool, list[Reading | PackedError]]:
        """A ``reading/1`` message or a ``readings/1`` pack -> (packed, its readings in
        order), a bad packed one as a ``PackedError`` in its place (so the rest of its
        pack goes on). Raises ``EventError`` when the message as a whole is unusable."""
        # Lone surrogates are looked for below, per packed reading: one in a reading's
        # text cost its whole pack (the HTTP ingest's list had the same fault).
        pinned: dict[int, EventError] = {}
        too_many = pack_too_large(raw)
        if too_many is not None:
            raise too_many
        try:
            doc = _decode(raw, (READING_SCHEMA, PACK_SCHEMA), check_text=False)
        except EventError as exc:
            # Nesting too deep or a byte that is not UTF-8 inside one packed reading
            # costs that reading alone (t95: it cost the whole pack).
            found = items_read_alone(raw, ("readings",), exc)
            if found is None or not _is_pack(found[0]):
                raise
            doc, raw, pinned = found
        # A key given twice is refused, as the ingest edge and the incidents agent refuse
        # it: read silently, {"value": 1.5, "value": 9e9} was a reading nobody sent, and a
        # pack's second "readings" list dropped the first one's readings unsaid.
        twice = duplicate_keys(raw, doc)
        escaped = b"\\u" in raw  # a lone surrogate is only ever written as an escape
        if doc["schema"] == READING_SCHEMA:
            if escaped:
                _check_text(doc)
            if twice:
                raise duplicate_key_error(*twice[0])
            return False, [self._reading(doc, now)]
        if escaped:
            _check_text({k: v for k, v in doc.items() if k != "readings"})
        odd = lookalike_key(doc, _PACK_KEYS, "pack")
        if odd is not None:  # which list, which schema, is meant? (as for a key twice)
            raise lookalike_key_error(doc, *odd)
        bad_items: dict[int, EventError] = dict(pinned)
        for key, at in twice:
            place = _PACKED_PLACE.match(at)
            if place is None:  # the pack's own keys: which list, which schema, is meant?
                raise duplicate_key_error(key, at)
            index = int(place.group(1))
            bad_items.setdefault(index, duplicate_key_error(key, at))
        items = doc.get("readings", MISSING)
        if not isinstance(items, list) or not items:
            raise EventError("bad_type", "readings", items, "expected a non-empty list")
        if len(items) > MAX_PACK_READINGS:
            raise EventError(
                "pack_too_large",
                "readings",
                len(items),
                f"a pack holds at most {MAX_PACK_READINGS} readings",
            )
        if escaped:
            for index, item in enumerate(items):
                fault = text_fault(item)
                if fault is not None and index not in bad_items:
                    bad_items[index] = EventError(
                        fault.code, f"readings[{index}].{fault.field}", fault.value, fault.reason
                    )
        return True, [
            PackedError(index, item, bad_items[index])
            if index in bad_items
            else self.packed_reading(index, item, now)
            for index, item in enumerate(items)
        ]

    def packed_reading(self, index: int, item: Any, now: float) -> Reading | PackedError:
        """The pack's reading at ``index`` (its JSON value ``item``) -> the ``Reading``, or
        a ``PackedError`` naming the field by its place in the pack (``readings[3].value``).
        Never raises: one packed reading's fault never costs its pack."""
        if not isinstance(item, dict):
            exc = EventError("bad_type", f"readings[{index}]", item, "expected an object")
            return PackedError(index, item, exc)
        try:
            return self._reading(item, now, packed=True)
        except EventError as exc:
            # Name the field by its place in the pack: readings[3].value.
            where = f"readings[{index}].{exc.field}" if exc.field else f"readings[{index}]"
            return PackedError(index, item, EventError(exc.code, where, exc.value, exc.reason))
        except Exception as exc:  # one packed reading's fault never costs its pack
            return PackedError(index, item, unreadable(exc, f"readings[{index}]"))

    def _reading(self, doc: dict[str, Any], now: float, packed: bool = False) -> Reading:
        if packed and doc.get("schema", READING_SCHEMA) != READING_SCHEMA:
            # Packed readings may leave out their schema; a different one is a mistake.
            raise EventError(
                "bad_schema", "schema", doc.get("schema"), f"expected {READING_SCHEMA!r}"
            )
        odd = lookalike_key(doc, _READING_KEYS, "reading")
        if odd is not None:
            raise lookalike_key_error(doc, *odd)
        given = doc.get("sensor_id")
        sensor = self.grid.sensors.get(given) if isinstance(given, str) else None
        if sensor is None and isinstance(given, str) and given:
            # First: whatever else the reading lacks, it would still be refused for this.
            raise EventError(
                "unknown_sensor",
                "sensor_id",
                given,
                f"sensor is not registered{self.grid.near_sensor(given)}",
            )
        missing = (
            [] if doc.keys() >= _READING_FIELDS else [n for n in READING_FIELDS if n not in doc]
        )
        if len(missing) > 1:
            # Every one at once, not one per attempt.
            others = ", ".join(f'"{name}"' for name in missing[1:])
            raise EventError(
                "missing_field",
                missing[0],
                None,
                f"so {'is' if len(missing) == 2 else 'are'} {others} (a reading carries "
                f"{', '.join(READING_FIELDS)}; docs/events.md)",
            )
        ts = self._event_time(doc, now)
        sensor_id = _string(doc, "sensor_id")
        kind_id = _string(doc, "kind")
        kind = self.grid.kinds.get(kind_id)
        if kind is None:
            raise EventError(
                "unknown_kind",
                "kind",
                kind_id,
                f"not a kind declared in the grid ({len(self.grid.kinds)} are; docs/events.md)"
                f"{self.grid.near_kind(kind_id)}",
            )
        value = doc.get("value", MISSING)
        if value is MISSING:
            raise EventError("missing_field", "value", MISSING, "field is missing")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EventError("bad_type", "value", value, f"expected a number{number_hint(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise EventError("not_finite", "value", value, "expected a finite number")
        if (tiny := underflow_fault(value)) is not None:
            raise EventError("not_finite", "value", value, tiny)
        # Compared before any float(): an integer of 400 digits is out of range, not an
        # OverflowError.
        if not kind.min <= value <= kind.max:
            raise EventError(
                "out_of_range",
                "value",
                value,
                f"kind {kind.id} is plausible in [{kind.min:g}, {kind.max:g}] {kind.unit}",
            )
        unit = _string(doc, "unit")
        if unit != kind.unit:
            raise EventError("bad_unit", "unit", unit, f"kind {kind.id} is measured in {kind.unit}")
        grid_cell = _string(doc, "grid_cell")
        if grid_cell not in self.grid.cells:
            raise EventError(
                "unknown_cell",
                "grid_cell",
                grid_cell,
                f"not a cell of the grid{self.grid.near_cell(grid_cell)}",
            )
        if sensor is None:  # (an empty sensor_id: _string above refuses it)
            raise EventError(
                "unknown_sensor",
                "sensor_id",
                sensor_id,
                f"sensor is not registered{self.grid.near_sensor(sensor_id)}",
            )
        if sensor.cell != grid_cell or sensor.kind != kind_id:
            raise EventError(
                "registration_mismatch",
                "grid_cell" if sensor.cell != grid_cell else "kind",
                grid_cell if sensor.cell != grid_cell else kind_id,
                f"sensor {sensor_id} is registered as {sensor.kind} in {sensor.cell}",
            )
        return Reading(ts, sensor_id, kind_id, float(value), unit, grid_cell)

    def incident(self, raw: bytes, now: float) -> IncidentReport:
        # Keys checked once each (not readings': their hot path): a report's id or
        # category given twice would otherwise be one of the two, silently.
        doc = _decode(raw, INCIDENT_SCHEMA, unique_keys=True)
        odd = lookalike_key(doc, INCIDENT_KEYS, "incident")
        if odd is not None:
            raise lookalike_key_error(doc, *odd)
        ts = self._event_time(doc, now)
        report_id = _label_text(doc, "report_id")
        category = _label_text(doc, "category")
        text = doc.get("text", MISSING)
        if text is MISSING:
            raise EventError("missing_field", "text", MISSING, "field is missing")
        if not isinstance(text, str):
            raise EventError("bad_type", "text", text, "expected a string")
        check_length("text", text, MAX_TEXT_CHARS)
        check_report_text(text)
        source = _string(doc, "source")
        check_source(source)
        grid_cell = _string(doc, "grid_cell")
        if grid_cell not in self.grid.cells:
            raise EventError(
                "unknown_cell",
                "grid_cell",
                grid_cell,
                f"not a cell of the grid{self.grid.near_cell(grid_cell)}",
            )
        return IncidentReport(ts, report_id, category, text, source, grid_cell)

    def _event_time(self, doc: dict[str, Any], now: float) -> float:
        if "ts" not in doc:
            raise EventError("missing_field", "ts", None, "field is missing")
        ts = parse_ts(doc["ts"])
        if ts < MIN_EVENT_TIME:
            raise EventError("too_old", "ts", doc["ts"], "event time is before 1990-01-01")
        if ts > now + self.max_future_skew:
            raise EventError(
                "in_future",
                "ts",
                doc["ts"],
                f"event time is more than {self.max_future_skew:g}s ahead of the clock",
            )
        return ts


# Past this many bytes a message could hold more than MAX_PACK_READINGS readings (none is
# shorter than 64 bytes written out), so its pack's items are counted before it is parsed.
PACK_COUNT_FROM_BYTES = MAX_PACK_READINGS * 64


class _PackItems(msgspec.Struct):
    """Just enough of a pack to count its items: each is skipped as raw bytes, not built."""

    schema: str | None = None
    readings: list[msgspec.Raw] | None = None


_pack_items = msgspec.json.Decoder(_PackItems).decode


def pack_too_large(raw: bytes) -> EventError | None:
    """``pack_too_large`` for a ``readings/1`` pack of more than ``MAX_PACK_READINGS``
    items, found by counting them (one skip over the bytes) before the pack is parsed:
    a pack 44 MB long (171 kB gzipped, within Kafka's message limit) of 300,000 readings
    was built whole first, 1.4 s of the worker's loop (t101). None for anything else
    (a shorter message, another shape, JSON that does not parse: the parse names it)."""
    if len(raw) <= PACK_COUNT_FROM_BYTES:
        return None
    try:
        doc = _pack_items(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    if doc.schema != PACK_SCHEMA or doc.readings is None:
        return None
    if len(doc.readings) <= MAX_PACK_READINGS:
        return None
    return EventError(
        "pack_too_large",
        "readings",
        len(doc.readings),
        f"a pack holds at most {MAX_PACK_READINGS} readings",
    )


@dataclass(frozen=True, slots=True)
class PackedError:
    """A bad reading inside a pack: its position, its JSON value and what is wrong."""

    index: int
    item: Any
    error: EventError

    def raw(self) -> bytes:
        """The reading's own bytes, for the dead-letter topic (written with a stack of its
        own where orjson refuses the value, e.g. an integer beyond 64 bits or nested deeper
        than 255 levels)."""
        try:
            return orjson.dumps(self.item, option=orjson.OPT_NON_STR_KEYS)
        except (TypeError, orjson.JSONEncodeError):
            pass
        # Not json.dumps: it writes a LongInt as its value, not its digits, and recurses.
        return _dumps_deep(self.item)


class _Punct(str):
    """Text to write as it is, on _dumps_deep's stack."""


def _dumps_deep(item: Any) -> bytes:
    """JSON text of a decoded value however deeply nested (orjson stops at 255 levels,
    Python's json at its recursion limit; a decoded document may hold 1,024), built with
    a stack of its own."""
    out: list[str] = []
    stack: list[Any] = [item]
    while stack:
        value = stack.pop()
        if isinstance(value, _Punct):
            out.append(value)
        elif isinstance(value, list | dict):
            pairs = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
            stack.append(_Punct("}" if isinstance(value, dict) else "]"))
            for i, (key, inner) in reversed(list(enumerate(pairs))):
                stack.append(inner)
                if isinstance(value, dict):
                    stack.append(_Punct(json.dumps(str(key)) + ":"))
                if i:
                    stack.append(_Punct(","))
            out.append("{" if isinstance(value, dict) else "[")
        elif isinstance(value, LongInt | OverflowFloat | UnderflowFloat):
            out.append(value.text)
        else:
            out.append(json.dumps(value, allow_nan=True, default=repr))
    return "".join(out).encode()


class LongInt(int):
    """A JSON integer with more digits than Python converts (``sys.int_info``'s
    ``default_max_str_digits``, 4,300): its value is +-10**4299, beyond every plausible
    range (so the value of a reading is ``out_of_range``, as a 401-digit one is), and it
    is shown and written back as its own text (trial 19: 4,301 digits made the whole
    message ``bad_json`` without naming the field, and the fast path, which skips an
    unknown field's number unread, admitted what the validator refused)."""

    text: str

    def __new__(cls, text: str) -> LongInt:
        self = super().__new__(cls, -_LONG if text.startswith("-") else _LONG)
        self.text = text
        return self

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


_LONG = 10**4299
_MAX_INT_DIGITS = 4300  # int()'s limit on the digits it converts (Python 3.11+)


class WrittenFloat(float):
    """A float read from a JSON number its double cannot hold as written, shown and
    written back as its own ``text`` (``OverflowFloat``, ``UnderflowFloat``)."""

    text: str

    def __new__(cls, text: str) -> WrittenFloat:
        self = super().__new__(cls, text)
        self.text = text
        return self

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


class OverflowFloat(WrittenFloat):
    """A JSON number too large for a double (``1e400``, ``-1e999``, 1 and 400 zeros with
    a fraction): its value is +-inf, as Python's json reads it (so the value is
    ``not_finite``), but it is shown and written back as its own text (t98: ``"value":
    1e999`` was refused as ``field "value" is inf``, a value nobody sent). The MQTT ingest
    reads a device's ``nan``/``inf`` payload as one too, shown as sent."""


class UnderflowFloat(WrittenFloat):
    """A JSON number that is not zero as written but too small for a double (``1e-400``,
    ``-1e-999``, a fraction of 400 zeros then a 1; a double's smallest is about
    4.9e-324): its value is the 0.0 or -0.0 every parser reads it as, but it is shown
    and written back as its own text, and refused where it is read as a number (t183:
    ``"value": -1e-400`` was scored as a reading of -0.0, a value nobody sent, and an
    alert's ``"score": 1e-400`` passed on as 0.0)."""


def json_float(text: str) -> float:
    """A JSON number's text with a fraction or exponent, as Python's json reads it, one
    past a double's range as an ``OverflowFloat`` and one below it (not zero as written,
    read as zero) as an ``UnderflowFloat``, each showing its text."""
    value = float(text)
    if not math.isfinite(value):
        return OverflowFloat(text)
    if underflows(text, value):
        return UnderflowFloat(text)
    return value


def underflow_fault(value: Any) -> str | None:
    """Why ``value`` (a decoded JSON value) is no number a reading may carry though it
    reads as one: not zero as written but below a double's range (``UnderflowFloat``),
    else None."""
    if type(value) is UnderflowFloat:
        return (
            "not zero as written, but too small for a double (under about 4.9e-324), so "
            f"it would be read as {float(value)!r}: send 0 if zero is meant"
        )
    return None


def json_int(text: str) -> int:
    """A JSON integer's text (ASCII digits, a sign) as Python's json reads it, one too
    long to convert as a ``LongInt``."""
    return int(text) if len(text) <= _MAX_INT_DIGITS else LongInt(text)


# orjson refuses arrays and objects nested deeper than this, with this message
# (tests/unit/streams/test_events.py pins both).
MAX_DEPTH = 1024
# How deep an item of a list may nest and still be found alone as the fault of its list
# (``items_read_alone``): deeper, its list is refused whole, so finding its end costs at
# most this many levels of scan, not the whole message's (t99: a pack whose item was a
# megabyte of "[" held the worker's loop 0.6 s to learn the item never closed).
PINNED_DEPTH = 64 * MAX_DEPTH
ORJSON_DEPTH_ERROR = "depth limit exceeded"
# decode_json's reason for such a document (the HTTP ingest pins it to one item).
TOO_DEEP = f"not valid JSON: nested deeper than {MAX_DEPTH} levels"


def _written_in(raw: bytes) -> str:
    """``; Big5 (…) text? re-encode it as UTF-8`` for JSON bytes that look written in a
    legacy encoding (``likely_encoding``: a Chinese, Japanese or Korean gateway's, or
    Latin-1 words), else empty: a stray byte of binary data says nothing."""
    guess = likely_encoding(raw)
    return f"; {guess} text? re-encode it as UTF-8" if guess else ""


def _binary(form: str) -> str:
    """What to do about bytes in a known binary form (``binary_format``): JSON is text."""
    if form.endswith("-compressed"):
        return f"{form} data, not JSON text? send the JSON itself, uncompressed"
    if form.startswith(SCHEMA_REGISTRY):
        # Its producer is configured, not broken: say which setting sends plain JSON.
        return (
            f"{form}, not plain JSON: a Schema Registry serializer or converter wrote it; "
            "send plain JSON text (a JSON serializer; Kafka Connect: "
            "value.converter=org.apache.kafka.connect.json.JsonConverter with "
            "value.converter.schemas.enable=false)"
        )
    return f"{form} data, not JSON text? send it as JSON text"


def _not_text(raw: bytes) -> str:
    """Why bytes holding a NUL are no JSON text, in the words their sender can act on:
    a binary form they start with (``binary_format``: ``gzip-compressed data, not JSON
    text? …``), UTF-16 or UTF-32 by a byte order mark or by their NULs
    (``wide_encoding``: ``UTF-16 (it starts with a UTF-16 byte order mark) text?
    re-encode it as UTF-8 …``), else binary data. Before t137 every NUL was "UTF-16 or
    UTF-32 text?", and one after a byte order mark "… without a byte order mark"."""
    binary = binary_format(raw)
    if binary is not None:
        return _binary(binary)
    wide = wide_encoding(raw)
    if wide is not None:
        return f"{wide} text? re-encode it as UTF-8: JSON is UTF-8, RFC 8259"
    return "binary data, not JSON text: JSON is UTF-8 text, RFC 8259, with no NUL byte"


def decode_json(raw: bytes, unique_keys: bool = False, check_text: bool = True) -> Any:
    """A message's JSON value, read as every edge reads it (the worker's topics, HTTP and
    MQTT ingest): orjson, and where it refuses, Python's json for the bare
    ``NaN``/``Infinity`` some producers write and past a leading UTF-8 byte order mark, so
    the reason can name the field. Raises ``EventError`` (``bad_json``) naming the offset
    of a byte that is not UTF-8, a NUL, nesting past MAX_DEPTH or (unless ``check_text``
    is False: the caller checks each part with ``text_fault``) a lone surrogate; with
    ``unique_keys`` (the ingest edge, where a sender's own JSON arrives), also naming a key
    given twice in one object, whose value either parser would pick silently."""
    doc = _decode_json(raw, check_text)
    if unique_keys:
        check_unique_keys(raw, doc)
    return doc


def message_json(value: bytes | None) -> Any:
    """A Kafka message's JSON value (``decode_json``), for the agents of citybrain's own
    topics (alerts, routed, commands, corroboration) as for readings and incidents: a
    tombstone (a null value) or a value that is not UTF-8 is ``bad_json`` saying so
    (trial 19: orjson's "Input must be bytes" and "surrogates not allowed" for a byte
    0xff were the messages, and a routed one logged a traceback). A key given twice in
    one object is ``bad_json`` naming it (``{"action": "ack", "action": "cancel"}``: which
    is meant?), as on every other topic and edge. A value over ``MAX_OWN_MESSAGE_BYTES``
    is ``bad_json`` saying its size, before anything of it is read (t99). Another
    system's wrapping of a document (``foreign_form``: JSON encoded twice, a Kafka
    Connect envelope, a structured CloudEvent) is ``bad_json`` naming it (t170)."""
    if value is not None and len(value) > MAX_OWN_MESSAGE_BYTES:
        # Another client may write up to the topic's max.message.bytes; what the worker
        # writes of such a message (the routed message carrying an alert, the firing
        # table's labels, a command passed on) could not be written: the producer's crash
        # stopped the worker, at every restart again.
        raise EventError(
            "bad_json",
            None,
            None,
            f"the message is {len(value):,} bytes: the worker takes at most "
            f"{MAX_OWN_MESSAGE_BYTES:,} on its own topics, so that what it passes on and "
            f"stores of one fits what its producer writes ({MAX_MESSAGE_BYTES:,})",
        )
    doc = decode_json(value or b"", unique_keys=True)
    if isinstance(doc, (str, dict)):
        # Another system's wrapping (a Kafka Connect envelope, a structured CloudEvent,
        # JSON encoded twice) is said as such, not as the fields it lacks.
        foreign = foreign_form(doc)
        if foreign is not None:
            raise EventError("bad_json", None, None, foreign.reason)
    return doc


def refuse_unwritable_number(raw: bytes | None, doc: Any, code: str, at: str = "") -> None:
    """Raises ``EventError`` (``code``) naming the first number of ``doc`` (decoded from
    ``raw``; its place under ``at``) that the worker's encoder cannot write as sent
    (``unwritable_number``: an integer past -2**63 to 2**64 - 1, a number past a
    double's range such as ``1e400`` or below it such as ``1e-400``, a bare ``NaN`` or
    ``Infinity``), for the agents
    that pass their message on or store it whole: an alert (routed on, held in its area,
    kept muted), a routed message (an offered report kept with its group), a command (kept
    whole as an Idempotency-Key request's answer). Costs nothing unless ``raw`` holds 19
    digits in a row, an exponent of three digits, ``NaN`` or ``Infinity``."""
    if raw is None or _UNWRITABLE_HINT.search(raw) is None:  # else every number is written
        return
    found = unwritable_number(doc, at)
    if found is not None:
        raise EventError(code, *found)


# The integers orjson writes (the worker's encoder for what it passes on and stores).
_WIDEST = (-(2**63), 2**64 - 1)
_WIDE_INTEGER = (
    "an integer past 64 bits (-2**63 to 2**64 - 1), which the worker cannot pass on or "
    "store: send it as text"
)
_WIDE_FLOAT = (
    "a number past a double's range (about 1.8e308), which the worker cannot pass on or "
    "store: send it as text"
)
_TINY_FLOAT = (
    "a number not zero as written but too small for a double (under about 4.9e-324), "
    "which the worker would pass on or store as 0.0: send 0 if zero is meant, else text"
)
_NOT_A_NUMBER = (
    "not a number JSON has (NaN and Infinity are not JSON), which the worker would pass on "
    "or store as null: send null or text"
)


def wide_integer(doc: Any, where: str = "") -> tuple[str, int] | None:
    """The first integer of ``doc`` (a decoded JSON value) that orjson cannot write, past
    -2**63 to 2**64 - 1, as (its place, ``alert.value`` or ``extra[2]``; the integer), or
    None. Python's json reads any integer; the agents of citybrain's own topics pass their
    messages on whole (an alert routed, a held alert in its area's state), and one such
    integer anywhere in them failed that write with ``TypeError: Integer exceeds 64-bit
    range``, a ``processing_error`` with a traceback (t128)."""
    found = unwritable_number(doc, where)
    return (found[0], found[1]) if found is not None and found[2] == _WIDE_INTEGER else None


def unwritable_number(doc: Any, where: str = "") -> tuple[str, Any, str] | None:
    """The first number of ``doc`` (a decoded JSON value) that orjson cannot write as it
    was sent, as (its place, ``alert.value`` or ``extra[2]``; the number; why), or None:
    an integer past -2**63 to 2**64 - 1 (orjson's ``TypeError: Integer exceeds 64-bit
    range``, t128), a number past a double's range (``1e400``, read as an
    ``OverflowFloat``: ``TypeError: Type is not JSON serializable``, t137), a number
    not zero as written but below a double's range (``1e-400``, read as an
    ``UnderflowFloat``: written as ``0.0``, t183), a bare ``NaN``, ``Infinity`` or
    ``-Infinity`` (written as ``null``: a value nobody sent).
    Walked with a stack of its own: a document may nest ``MAX_DEPTH`` levels."""
    # (the container's place, the key or index in it, the value): a place is written
    # out only for a container or the number found, not for every leaf of every alert.
    stack: list[tuple[str, str | int | None, Any]] = [(where, None, doc)]
    while stack:
        parent, key, value = stack.pop()
        kind = type(value)
        if kind is int or kind is LongInt:
            if not _WIDEST[0] <= value <= _WIDEST[1]:
                return _place(parent, key), value, _WIDE_INTEGER
        elif kind is OverflowFloat:
            return _place(parent, key), value, _WIDE_FLOAT
        elif kind is UnderflowFloat:
            return _place(parent, key), value, _TINY_FLOAT
        elif kind is float:
            if not math.isfinite(value):
                return _place(parent, key), value, _NOT_A_NUMBER
        elif isinstance(value, dict):
            place = _place(parent, key)
            stack.extend(reversed([(place, k, v) for k, v in value.items()]))  # first found first
        elif isinstance(value, list):
            place = _place(parent, key)
            stack.extend(reversed([(place, i, v) for i, v in enumerate(value)]))
    return None


def _place(parent: str, key: str | int | None) -> str:
    """``unwritable_number``'s place of ``key`` in the container at ``parent``:
    ``alert.value``, ``extra[2]``, or ``parent`` itself for the document (``None``)."""
    if key is None:
        return parent
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def json_loads_within_depth(text: str, **options: Any) -> Any:
    """``json.loads(text, **options)`` for a document nested at most ``MAX_DEPTH`` levels
    (the caller counts: ``spans.max_depth``), read whatever the caller's stack depth.
    Python's C scanner takes one recursion level per nesting level, so at the default
    limit (1,000) a NaN body 1,000 levels deep was "unexpected character … column 11"
    in one process and read (its NaN named) in another. Python's recursion limit is
    raised for it when short, never lowered: a process-wide setting, at most the
    caller's frames plus ``MAX_DEPTH`` and a margin."""
    frames, frame = 0, cast("FrameType | None", sys._getframe())
    while frame is not None:
        frames, frame = frames + 1, frame.f_back
    need = frames + MAX_DEPTH + 100  # the margin: the scanner's own and hooks' frames
    if sys.getrecursionlimit() < need:
        sys.setrecursionlimit(need)
    return json.loads(text, **options)


# 19 digits in a row: an integer that may lie past 64 bits (-9223372036854775809 does),
# or digits in text, read again at no harm.
# What a JSON text holds wherever orjson read a number other than as written: 19 digits
# (an integer past 64 bits, or a fraction long enough to fall below a double: 0.000…1),
# or a negative exponent of three digits after a digit or point (1e-400, which orjson
# reads as 0.0 unsaid; not the "e-100" of a sensor id "gauge-100").
_REREAD_HINT = re.compile(rb"[0-9]{19}|[0-9.][eE]-[0-9]{3}")
# What a JSON text holds wherever a number orjson cannot write is in it: 19 digits (an
# integer past 64 bits), an exponent of three digits (past a double: 1e400), a bare NaN
# or Infinity (which orjson refuses to read, so Python's json read them).
_UNWRITABLE_HINT = re.compile(rb"[0-9]{19}|[eE][+-]?[0-9]{3}|NaN|Infinity")


def _decode_json(raw: bytes, check_text: bool = True) -> Any:
    if not raw:
        # A tombstone reaches here as b"" (streams.columns); orjson's "Input is a
        # zero-length, empty document: line 1 column 1 (char 0)" told neither.
        raise EventError(
            "bad_json",
            None,
            None,
            "not valid JSON: the message is empty (a Kafka tombstone, whose value is null, "
            "or a producer that sent no value)",
        )
    try:
        doc = orjson.loads(raw)
        if _REREAD_HINT.search(raw) is None:
            return doc
        # orjson reads an integer past 64 bits as the nearest double, silently: the
        # reason then named a value nobody sent (18446744073709551617 as
        # 1.8446744073709552e+19); and a number below a double's range as 0.0 (t183:
        # -1e-400 scored as a reading of -0.0). Read again with its own digits (orjson
        # took the text, so it is UTF-8, within MAX_DEPTH, without NaN or lone
        # surrogates).
        return json_loads_within_depth(
            raw.decode("utf-8").removeprefix("\ufeff"), parse_int=json_int, parse_float=json_float
        )
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith(ORJSON_DEPTH_ERROR):
            # Refused whatever the lenient parser below would do: whether Python's
            # recursive json.loads gets through 1,025+ levels depends on how deep the
            # caller's stack already is, and one message must get one answer.
            raise EventError("bad_json", None, None, TOO_DEEP) from None
        # Producers written with Python's json emit bare NaN/Infinity; read them with the
        # lenient parser so the reason names the field instead of "bad JSON". Only as
        # UTF-8 (json.loads would take UTF-16 and UTF-32 bytes too), and without the lone
        # surrogates (\ud800) it lets through, which no later step could encode.
        nul = raw.find(b"\x00")
        if nul >= 0:  # never in JSON text; every other byte of UTF-16 or UTF-32 ASCII
            raise EventError(
                "bad_json",
                None,
                None,
                f"not valid JSON: byte 0x00 (NUL) at offset {nul} ({_not_text(raw)})",
            ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            binary = binary_format(raw)
            said = f"; {_binary(binary)}" if binary else _written_in(raw)
            raise EventError(
                "bad_json",
                None,
                None,
                f"not valid JSON: byte 0x{raw[bad.start]:02x} at offset {bad.start} is not "
                f"UTF-8 (JSON is UTF-8 text, RFC 8259{said})",
            ) from None
        body = text.removeprefix("\ufeff")
        # Nesting judged by counting, as orjson does, before the recursive parser: whether
        # json.loads got through 1,025+ levels depended on the process's recursion limit
        # and stack (a NaN before a deep item: refused TOO_DEEP in one process, read in
        # another).
        if max_depth(raw, past=MAX_DEPTH) > MAX_DEPTH:
            raise EventError("bad_json", None, None, TOO_DEEP) from None
        try:
            doc = json_loads_within_depth(body, parse_int=json_int, parse_float=json_float)
        except json.JSONDecodeError as bad:
            # Said in our words with where and what (trial 21: orjson's own "unexpected
            # character: line 1 column 7 (char 6)" named neither the text nor the fix).
            where = len(raw) - len(body.encode("utf-8"))  # a byte order mark's 3 bytes
            raise EventError("bad_json", None, None, json_syntax_error(body, bad, where)) from None
        except (ValueError, RecursionError):
            # RecursionError: arrays or objects nested deeper than Python's stack allows.
            raise EventError("bad_json", None, None, f"not valid JSON: {exc}") from None
        try:
            if check_text:
                _check_text(doc)
        except RecursionError:  # nested nearly as deep as json.loads allows
            raise EventError("bad_json", None, None, "not valid JSON: nested too deeply") from None
    return doc


def _is_pack(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("schema") == PACK_SCHEMA


def byte_fault(reason: str) -> bool:
    """Whether ``reason`` (``decode_json``'s) is a byte that is not UTF-8 or a NUL: a
    fault of the bytes inside one string, which leaves a list's items where they are (a
    syntax fault may not: the items' bounds are then unknown)."""
    return reason.startswith("not valid JSON: byte 0x")


def items_read_alone(
    raw: bytes, keys: tuple[str | None, ...], fault: EventError
) -> tuple[Any, bytes, dict[int, EventError]] | None:
    """For ``raw``, which ``decode_json`` refused with ``fault``: when the fault lies only
    inside some items of its list (under the first of ``keys`` found; None: the body is
    the list), nested past ``MAX_DEPTH`` or holding a byte that is not UTF-8 or a NUL,
    (the document read with ``null`` in each such item's place, the bytes it was read
    from, index -> the item's ``bad_json`` fault, ``(in readings[3])`` after its
    reason); None when the fault lies elsewhere or no list is found. So one such item
    costs only itself: before, it cost its whole pack (the worker) or body (the HTTP
    ingest, a 400 that Orion does not retry)."""
    deep = raw.count(b"[") + raw.count(b"{") > MAX_DEPTH  # only then can it be too deep
    if not (deep or byte_fault(fault.reason)):
        return None
    for key in keys:
        spans = item_spans(raw, key, outside=MAX_DEPTH, within=PINNED_DEPTH)
        if spans:
            break
    else:
        return None
    pinned: dict[int, EventError] = {}
    for i, (start, end) in enumerate(spans):
        try:
            decode_json(raw[start:end], check_text=False)
        except EventError as exc:
            if exc.reason == TOO_DEEP or byte_fault(exc.reason):
                # (a byte's offset is the item's own, the item named after it)
                where = f"{key or 'readings'}[{i}]"
                pinned[i] = EventError("bad_json", None, None, f"{exc.reason} (in {where})")
    if not pinned:
        return None
    read = raw
    for i in sorted(pinned, reverse=True):  # from the end, so earlier offsets hold
        start, end = spans[i]
        read = read[:start] + b"null" + read[end:]
    try:
        return decode_json(read, check_text=False), read, pinned
    except EventError:
        return None


# Python's json names each syntax fault with one of these (json/decoder.py, scanner):
# the same words for every edge, which orjson's do not give (its texts change by version).
_JSON_FAULTS = {
    "Expecting value": "expected a value (a number, text in double quotes, true, false, null, "
    "an object or a list)",
    "Expecting property name enclosed in double quotes": 'expected a key in double quotes ("name")',
    "Expecting ':' delimiter": "expected ':' after the key",
    "Expecting ',' delimiter": "expected ',' or the end of the list or object",
    "Unterminated string starting at": "the text in double quotes starting here is never closed",
    "Invalid control character at": "a control character inside text: escape it (\\n, \\t, "
    "\\u0000)",
    "Invalid \\escape": 'an escape JSON does not have (it has \\" \\\\ \\/ \\b \\f \\n \\r '
    "\\t \\uXXXX)",
    "Invalid \\uXXXX escape": "a \\u escape without four hexadecimal digits",
    "Extra data": "more text after the end of the JSON value (one value per body; a list for many)",
}


# JSON's white space (RFC 8259 section 2): what may stand around a value.
_JSON_BLANK = " \t\n\r"


def json_syntax_error(text: str, exc: json.JSONDecodeError, skipped: int = 0) -> str:
    """The reason for a JSON syntax fault in our words: where (line, column and byte
    offset; ``skipped`` bytes read past before ``text``, a byte order mark), what was
    found there (at most 20 characters, or the end of the text) and what JSON expected:
    ``not valid JSON: at line 1, column 7 (byte 6), found 'x}' after '{"a": ': expected
    a value (…)``."""
    pos = exc.pos
    byte = skipped + len(text[:pos].encode("utf-8"))
    found = repr(text[pos : pos + 20]) if pos < len(text) else "the end of the text"
    before = text[max(0, pos - 20) : pos]
    after = f" after {before!r}" if before.strip() else ""
    why = _JSON_FAULTS.get(exc.msg, exc.msg)
    if exc.msg == "Expecting value" and pos >= len(text) and not text.strip(_JSON_BLANK):
        # t183: white space alone (a producer's blank line) was "the text ends where a
        # value was expected (cut short?)", as if a document had been cut.
        size = skipped + len(text.encode("utf-8"))
        shown = f"{text[:20]!r}{'...' if len(text) > 20 else ''}"
        what = "white space only" if text else "a byte order mark alone"
        if text and skipped:
            shown = f"a byte order mark, then {shown}"
        return (
            f"not valid JSON: the message is {what} ({size:,} byte{'' if size == 1 else 's'}"
            f"{': ' + shown if text else ''}), no JSON value: send the document, or nothing"
        )
    if exc.msg == "Expecting value" and pos >= len(text):
        why = "the text ends where a value was expected (cut short?)"
    elif text.startswith("\ufeff", pos):
        # Python's "Unexpected UTF-8 BOM (decode using utf-8-sig)" spoke to a reader,
        # not to whoever wrote the message (t183).
        why = (
            "a byte order mark (U+FEFF) here: a message may start with one, nowhere else "
            "(texts joined, each with its own?)"
        )
    elif exc.msg == "Expecting ',' delimiter" and pos >= len(text):
        why = "the text ends inside a list or object (cut short?)"
    elif before.rstrip().endswith(",") and text[pos : pos + 1] in ("}", "]"):
        why = "a trailing comma before the end of a list or object (JSON allows none)"
    if not text[:pos].strip():
        # The text does not even start as JSON: say what it looks like (text_format).
        form = text_format(text)
        if form is not None:
            why = f"{why}; {form}"
    return (
        f"not valid JSON: at line {exc.lineno}, column {exc.colno} (byte {byte:,}), found {found}"
        f"{after}: {why}"
    )


# CloudEvents' required context attributes (CloudEvents 1.0, "Required Attributes").
_CLOUDEVENT_KEYS = frozenset(("specversion", "id", "source", "type"))


def _said(value: Any, limit: int = 60) -> str:
    """``value`` (any JSON value) as the reason quotes it: text cut to ``limit``
    characters, anything else as ``show`` bounds it."""
    if not isinstance(value, str):
        return show(value)
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def foreign_form(doc: Any) -> EventError | None:
    """The refusal of a decoded message that is another system's wrapping of a document
    rather than a document of its own, naming that wrapping and what to send (t170:
    each was "expected a JSON object", or the ``schema`` field refused with no word on
    what had come), or None:

    - a JSON string holding JSON text (``"{\"schema\": …}"``: encoded twice, a
      serializer handed JSON text instead of the object), ``bad_json``;
    - Kafka Connect's JsonConverter envelope with ``schemas.enable=true``, the default
      of many connectors: exactly ``{"schema": {…} or null, "payload": …}``,
      ``bad_schema``;
    - a CloudEvents event in structured mode (``specversion``, ``id``, ``source`` and
      ``type`` at the top, the event in ``data`` or ``data_base64``), ``bad_schema``.

    Only a message already refused is asked (no cost for a good one); the shapes never
    match a citybrain document, whose top level holds none of these keys."""
    if isinstance(doc, str):
        inner = doc.strip()
        if inner[:1] not in ("{", "["):
            return None
        try:
            orjson.loads(inner)
        except orjson.JSONDecodeError:
            return None
        return EventError(
            "bad_json",
            None,
            None,
            f"expected a JSON object, got JSON text in a JSON string ({_said(doc, 40)}): "
            "encoded twice? (a serializer handed JSON text instead of the object) send the "
            "object itself, not as a string",
        )
    if not isinstance(doc, dict):
        return None
    if doc.keys() == {"schema", "payload"} and isinstance(doc["schema"], (dict, type(None))):
        return EventError(
            "bad_schema",
            None,
            None,
            'a Kafka Connect JsonConverter envelope ({"schema": …, "payload": …}, written '
            "with schemas.enable=true), not the document itself: set the connector's "
            "value.converter.schemas.enable=false so that the payload alone is the message",
        )
    if doc.keys() >= _CLOUDEVENT_KEYS and "schema" not in doc:
        data = (
            "the bytes its data_base64 holds"
            if "data_base64" in doc and "data" not in doc
            else "its data"
        )
        return EventError(
            "bad_schema",
            None,
            None,
            f"a CloudEvents event in structured mode (specversion {_said(doc['specversion'])}, "
            f"type {_said(doc['type'])}, source {_said(doc['source'])}), not the document "
            f"itself: send {data} as the message, in CloudEvents' binary mode (the "
            "attributes as ce_* headers)",
        )
    return None


def _decode(
    raw: bytes, schema: str | tuple[str, ...], unique_keys: bool = False, check_text: bool = True
) -> dict[str, Any]:
    doc = decode_json(raw, unique_keys, check_text)
    schemas = (schema,) if isinstance(schema, str) else schema
    if isinstance(doc, list):
        # t156: a gateway's batch as a bare array. The MQTT and HTTP ingests read one
        # item by item (each door's own array form); a topic's messages name their
        # schema, and the readings topic's array form is the pack, whose envelope says
        # what the items are. Refused whole, saying what to send (it was "expected a
        # JSON object", naming neither).
        one = " or ".join(repr(s) for s in schemas if s != PACK_SCHEMA)
        hint = (
            f', or a {PACK_SCHEMA!r} pack ({{"schema": "{PACK_SCHEMA}", "readings": [...]}}) '
            "for many readings in one message"
            if PACK_SCHEMA in schemas
            else ", one per message"
        )
        items = f"{len(doc):,} item{'' if len(doc) == 1 else 's'}"
        raise EventError(
            "bad_json",
            None,
            None,
            f"a JSON array of {items}, expected a JSON object: a {one} document{hint}",
        )
    if not isinstance(doc, dict) or doc.get("schema") not in schemas:
        foreign = foreign_form(doc)
        if foreign is not None:
            raise foreign
    if not isinstance(doc, dict):
        raise EventError("bad_json", None, None, "expected a JSON object")
    if doc.get("schema") not in schemas:
        expected = " or ".join(repr(s) for s in schemas)
        raise EventError("bad_schema", "schema", doc.get("schema", MISSING), f"expected {expected}")
    return doc


class _Pairs(dict[str, Any]):
    """An object read by ``_check_unique_keys``' parser: ``twice`` is its first key given
    twice, if any."""

    twice: str | None = None


def _pairs(items: list[tuple[str, Any]]) -> _Pairs:
    out = _Pairs()
    for key, value in items:
        if key in out and out.twice is None:
            out.twice = key
        out[key] = value
    return out


# Where a key given twice is inside a pack's reading: ``readings[3]``, ``readings[3].x``.
_PACKED_PLACE = re.compile(r"readings\[([0-9]+)\](?:$|[.\[])")


def check_unique_keys(raw: bytes, doc: Any) -> None:
    """For ``doc`` as read from ``raw`` (by ``decode_json`` or orjson): raises
    ``EventError`` (``bad_json``) naming the first key given twice in one object and
    where (``{"value": 1, "value": 9}``: both parsers keep the last silently, so a
    sender's mistake would become a reading nobody sent). RFC 8259 section 4: names
    should be unique, and parsers differ on which value wins."""
    found = duplicate_keys(raw, doc)
    if found:
        raise duplicate_key_error(*found[0])


# Other scripts' look-alikes of Latin letters (streams.errors); NFKC folds the rest
# (fullwidth, ligatures, mathematical letters).
_LOOKALIKE = str.maketrans(LOOKALIKE_LETTERS, LATIN_LOOKS)
# A key longer than this cannot look like a field name (the longest is 9 characters),
# whatever it holds: looked at no further, so a megabyte-long key costs nothing.
_LOOKALIKE_MAX = 64


def key_skeleton(key: str) -> str:
    """``key`` as a reader sees it: NFKC-folded, without control, format and space
    characters (a NUL, a zero-width space, a soft hyphen), other scripts' Latin
    look-alikes mapped to Latin, case-folded: ``"v\u0430lue"``, ``"val\u0000ue"``,
    ``" Value"`` are all ``"value"``."""
    text = unicodedata.normalize("NFKC", key)
    text = "".join(c for c in text if unicodedata.category(c)[0] not in "CZ")
    return text.translate(_LOOKALIKE).casefold()


# Spellings of a field that are no misspelling of its name (a far edit) but mean it.
_ALIASES = {"timestamp": "ts", "time": "ts", "datetime": "ts"}
# Spaces, underscores, hyphens and dots are dropped before names are compared
# (``sensorid``, ``Sensor-Id``, ``grid.cell``).
_SEPARATORS = str.maketrans("", "", "_-. ")


def _edits(a: str, b: str, most: int) -> int:
    """The optimal string alignment distance of ``a`` and ``b`` (insertions, deletions,
    substitutions, adjacent transpositions: ``categroy`` is 1 from ``category``), or
    ``most + 1`` when it is larger than ``most``."""
    if abs(len(a) - len(b)) > most:
        return most + 1
    before: list[int] | None = None
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        new = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            new[j] = min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (ca != cb))
            if before is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                new[j] = min(new[j], before[j - 2] + 1)
        before, row = row, new
        if min(row) > most:
            return most + 1
    return row[-1]


def _edits_allowed(name: str) -> int:
    # A short name is one edit from many words ("ts" from "tz", "unit" from "units" is
    # still meant): none for two letters, one up to five, two from six on.
    return 0 if len(name) <= 2 else 1 if len(name) <= 5 else 2


@lru_cache(maxsize=4096)
def near_name(key: str, names: frozenset[str]) -> str | None:
    """The one of ``names`` that ``key`` (not one of them) looks like or misspells, or
    None: the same name as a reader sees it (``key_skeleton``: another script's look-alike
    letter, a control character, another case), with other separators (``sensorid``,
    ``Grid-Cell``), within ``_edits_allowed`` edits (``categroy``, ``sensr_id``), or an
    alias (``timestamp``, and its misspelling ``timestmap``, for ``ts``). The nearest
    wins; a tie goes to the first name in sorted order."""
    skeleton = key_skeleton(key)
    if skeleton in names:
        return skeleton
    bare = skeleton.translate(_SEPARATORS)
    if not bare:
        return None
    best: tuple[int, str] | None = None
    spellings = [(n, n) for n in names] + [(a, n) for a, n in _ALIASES.items() if n in names]
    for spelling, name in sorted(spellings, key=lambda pair: pair[0]):
        target = spelling.translate(_SEPARATORS)
        most = _edits_allowed(target)
        distance = 0 if bare == target else _edits(bare, target, most)
        if distance <= most and (best is None or distance < best[0]):
            best = (distance, name)
    return None if best is None else best[1]


def lookalike_key(
    doc: Mapping[str, Any], names: frozenset[str], kind: str | None = None
) -> tuple[str, str] | None:
    """The first key of ``doc`` that is none of ``names`` (ASCII, lower case) but looks
    like one or misspells it (``near_name``), as (the key, the name); None when there is
    none (a misspelling only while the field it misspells is not given too). Such a key
    was ignored like any unknown one: ``{"v\u0430lue": 9}`` (a Cyrillic a)
    was ``field "value" is missing`` with nothing naming the key that was sent, and
    ``{"value": 1, "v\u0430lue": 9}`` a reading of 1, the 9 dropped unsaid; so was
    ``{"categroy": "noise"}`` (t112). With ``kind`` (one of
    ``streams.unknown.UNKNOWN_FIELD_KINDS``), when there is none, the other unknown keys
    are counted and named once (``streams.unknown.UNKNOWN``: forward compatibility)."""
    found, unknown = _scan_keys(doc, names)
    if found is None and kind is not None and unknown:
        UNKNOWN.note(kind, unknown)
    return found


def _scan_keys(
    doc: Mapping[str, Any], names: frozenset[str]
) -> tuple[tuple[str, str] | None, list[object]]:
    """``lookalike_key``'s walk: (the first look-alike or misspelt key and its name, or
    None; the unknown keys before it, all of them when there is none), nothing counted."""
    if len(doc) <= len(names) and doc.keys() <= names:
        return None, []  # the common case: no other key
    unknown: list[object] = []
    for key in doc:
        if key in names:
            continue
        if isinstance(key, str) and len(key) <= _LOOKALIKE_MAX:
            name = near_name(key, names)
            # A misspelling stands for a field not given; beside the field itself a near
            # key ("sensor" by "sensor_id") is another field. A look-alike is refused
            # either way: it reads as the field, so which one is meant?
            if name is not None and (name not in doc or key_skeleton(key) == name):
                return (key, name), unknown
        unknown.append(key)
    return None, unknown


def reading_lookalike(doc: Any) -> bool:
    """Whether ``doc``, a decoded ``reading/1`` or ``readings/1`` pack, holds a key that
    looks like a field without being it (``lookalike_key``), in the pack or any of its
    readings: the columnar fast path (streams/columns.py), which ignores unknown keys as
    msgspec does, leaves such a message to the validator, which names the key. When
    there is none, its other unknown keys are counted as the validator counts them
    (``lookalike_key``'s ``kind``); when there is one, the validator counts them."""
    if not isinstance(doc, dict):
        return False
    if doc.get("schema") != PACK_SCHEMA:
        return lookalike_key(doc, _READING_KEYS, "reading") is not None
    found, pack_unknown = _scan_keys(doc, _PACK_KEYS)
    if found is not None:
        return True
    items = doc.get("readings")
    reading_unknown: list[object] = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            found, unknown = _scan_keys(item, _READING_KEYS)
            if found is not None:
                return True
            reading_unknown += unknown
    # Counted once, here, only for a message the fast path reads (one walk of it).
    if pack_unknown:
        UNKNOWN.note("pack", pack_unknown)
    if reading_unknown:
        UNKNOWN.note("reading", reading_unknown)
    return False


def lookalike_key_error(
    doc: Mapping[str, Any], key: str, name: str, at: str = "", code: str = "bad_json"
) -> EventError:
    """The refusal (``code``) of ``key``, which looks like the field ``name`` but is not
    it, in ``doc`` (at ``at``, a path such as ``readings[3]``): the field is the key as
    ASCII escapes show it (``v\u0430lue``, so the message shows the odd character), and
    the reason names each character that is not printable ASCII, or the case."""
    odd = [
        f"U+{ord(c):04X} {unicodedata.name(c, 'a control character')} at {i}"
        for i, c in enumerate(key)
        if not "!" <= c <= "~"
    ]
    what = ", ".join(odd[:3]) + (f" and {len(odd) - 3} more" if len(odd) > 3 else "")
    shown = ascii(key)[1:-1]
    field = f"{at}.{shown}" if at else shown
    both = f"; {name!r} is given too: which is meant?" if name in doc else ""
    if key_skeleton(key) != name:  # a misspelling, another separator or an alias
        return EventError(
            code,
            field,
            doc[key],
            f"the key is not a field: a misspelling of {name!r}? It would be ignored "
            f"(keys are matched exactly: write {name!r}; a key near no field is read past "
            "and counted, docs/ingest.md)",
        )
    return EventError(
        code,
        field,
        doc[key],
        f"the key looks like {name!r} but is not it ({what or 'letters in another case'}), "
        f"so it would be ignored{both} (keys are matched exactly: write {name!r})",
    )


def duplicate_key_error(key: str, at: str) -> EventError:
    """The ``bad_json`` refusal of ``key`` given twice in the object at ``at`` (a path,
    ``readings[3]``; empty for the document itself). No field: the object as a whole
    is not read."""
    where = f" (in {at})" if at else ""
    return EventError(
        "bad_json",
        None,
        None,
        f"not valid JSON: key {key[:60]!r} is given twice in one object{where}: which value "
        "is meant? (RFC 8259 section 4: names should be unique)",
    )


def duplicate_keys(raw: bytes, doc: Any) -> list[tuple[str, str]]:
    """Every object of ``doc`` (as read from ``raw``) that gives a key twice, in document
    order, as (its first key given twice, the object's path: ``""`` for the document,
    ``readings[3]``, ``labels``); empty when every key is given once. The common case
    costs one ``orjson.dumps``, not a second parse."""
    if b"\\u" not in raw:
        try:
            again = orjson.dumps(doc)
        except (orjson.JSONEncodeError, TypeError):  # an integer past 64 bits: the full check
            again = b""
        # Without \u escapes each string's quotes are counted alike in the sender's
        # bytes and in orjson's (which writes an inner quote as \"), so the same count
        # means no key was dropped.
        if again and raw.count(b'"') == again.count(b'"'):
            return []
    try:
        pairs = json_loads_within_depth(
            raw.decode("utf-8").removeprefix("\ufeff"),
            object_pairs_hook=_pairs,
            parse_int=json_int,
        )
    except (ValueError, RecursionError):  # read by orjson's rules above; nothing to add
        return []
    found: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(pairs, "")]
    while stack:  # depth first, document order, as _check_text
        item, at = stack.pop()
        if isinstance(item, _Pairs):
            if item.twice is not None:
                found.append((item.twice, at))
            stack.extend(
                (value, f"{at}.{key}" if at else str(key)) for key, value in reversed(item.items())
            )
        elif isinstance(item, list):
            stack.extend((value, f"{at}[{i}]") for i, value in reversed(list(enumerate(item))))
    return found


def text_fault(doc: Any) -> EventError | None:
    """The ``bad_json`` fault of the first string in ``doc`` (a decoded JSON value) holding
    a lone surrogate, its field relative to ``doc`` (``note``, ``labels.x``); None when
    there is none. For a caller that reads the parts of one document on their own (a body
    of many readings: one reading's fault costs no other)."""
    try:
        _check_text(doc)
    except EventError as exc:
        return exc
    return None


def _check_text(doc: Any, where: str = "") -> None:
    """Raises ``EventError`` (``bad_json``) at the first string, key or value, holding a
    lone UTF-16 surrogate (JSON's ``"\\ud800"``): it is not a character, and encoding it
    again (a dead letter, a forwarded incident) would fail."""
    # Depth first, in document order, with a stack of its own: a document nested 1,000
    # levels deep (the decoders take 1,024) would exhaust Python's.
    stack: list[tuple[Any, str]] = [(doc, where)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise EventError(
                    "bad_json",
                    at or None,
                    item,
                    f"a lone surrogate \\u{ord(item[exc.start]):04x} is not a character",
                ) from None
        elif isinstance(item, dict):
            for key, value in reversed(item.items()):
                stack.append((value, f"{at}.{key}" if at else str(key)))
                stack.append((key, at or "(a key)"))
        elif isinstance(item, list):
            stack.extend((value, f"{at}[{i}]") for i, value in reversed(list(enumerate(item))))


def _string(doc: dict[str, Any], field: str, limit: int | None = None) -> str:
    value = doc.get(field)
    if field not in doc:
        raise EventError("missing_field", field, None, "field is missing")
    if not isinstance(value, str) or not value:
        raise EventError("bad_type", field, value, "expected a non-empty string")
    if limit is not None:
        check_length(field, value, limit)
    return value


# Line breaks and tabs are text; every other control character (a NUL, a terminal's ESC,
# DEL, the C1 range) is a broken encoder or an attempt to drive the operator's terminal.
_TEXT_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _label_text(doc: dict[str, Any], field: str) -> str:
    """A report's ``report_id`` or ``category``: a non-empty string of at most
    ``MAX_ID_CHARS`` characters (``_string``), not blank, without spaces around it and
    without control or invisible format characters. Both travel in every alert, log line,
    Alertmanager label and reply about the report, and a report id is how a re-sent report
    is known: ``" r1 "`` and ``"r1"``, or ``"r1"`` with a zero-width space, were two
    reports that look one (t109: each was accepted). Raises ``EventError`` (``bad_type``)
    naming the field and the value as sent."""
    return check_label_text(field, _string(doc, field, MAX_ID_CHARS))


def check_label_text(field: str, value: str) -> str:
    """``value`` of a report's ``report_id`` or ``category`` (``_label_text``'s rules but
    the type and length), returned; ``EventError`` (``bad_type``) naming ``field``.
    ``citybrain replay`` checks a file's rows by it too."""
    if not value.strip():
        raise EventError("bad_type", field, value, "blank (white space only): expected text")
    if value != value.strip():
        raise EventError("bad_type", field, value, "white space around it: send it without")
    # The one check of names (errors.name_fault, t197), which also names a lone surrogate.
    fault = name_fault(value)
    if fault is not None:
        raise EventError("bad_type", field, value, f"holds {fault}: expected printable text")
    return value


def check_report_text(text: str) -> None:
    """A report's ``text``: not blank (a report says what happened: an empty one gave the
    department classifier and the reply to the reporter nothing) and without control
    characters other than line breaks and tabs. Raises ``EventError`` (``bad_type``)
    naming ``text``; ``citybrain replay`` checks a file's rows by it too."""
    if blank(text):  # white space, or only characters that show nothing (U+200B)
        raise EventError(
            "bad_type", "text", text, "blank: expected a description of what was reported"
        )
    reason = text_control(text)
    if reason is not None:
        raise EventError("bad_type", "text", text, reason)


def text_control(text: str) -> str | None:
    """Why ``text`` (free text: a report's description, an operator's note, a reporter's
    comment, a silence's reason) is refused, or None: it holds a control character other
    than a line break or a tab (a NUL, a terminal's ESC, DEL, U+0080-U+009F), named with
    its place as every refused character is (errors.character_at, t197), e.g. ``holds a
    control character (U+001B) at character 2: expected text (line breaks and tabs are
    taken)``."""
    bad = _TEXT_CONTROLS.search(text)
    if bad is None:
        return None
    return (
        f"holds {character_at(text, bad.start())}: expected text (line breaks and tabs are taken)"
    )


def check_source(source: str) -> None:
    """A report's ``source``: one of ``INCIDENT_SOURCES``. Raises EventError
    ``unknown_source`` naming it (the worker's rule; ``citybrain replay`` checks a file's
    rows by it too: t147, a CSV row of source ``web`` was "sent 1 incident", exit 0, and
    dead-lettered by the worker)."""
    if source not in INCIDENT_SOURCES:
        raise EventError(
            "unknown_source",
            "source",
            source,
            f"expected one of {', '.join(sorted(INCIDENT_SOURCES))}"
            f"{did_you_mean(source, INCIDENT_SOURCES)}",
        )


def check_length(field: str, value: str, limit: int) -> None:
    """Raises EventError ``too_long`` naming ``field`` if ``value`` has more than ``limit``
    characters (the worker's rule; ``citybrain replay`` checks a file's rows by it too)."""
    if len(value) > limit:
        raise EventError("too_long", field, value, f"{len(value):,} characters, at most {limit:,}")


def original_record(
    key: bytes | None,
    dead_key: bytes | None,
    timestamp: float | None,
    timestamp_type: int | None,
    headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None,
    *,
    tombstone: bool = False,
) -> list[tuple[str, bytes | None]]:
    """The dead-letter headers that carry the original record (docs/events.md): its
    ``timestamp`` (seconds; written as epoch milliseconds) and ``timestamp_type`` (0 or 1,
    written ``CreateTime``/``LogAppendTime``), its ``key`` when the dead letter's
    (``dead_key``) is another (a reading's is its sensor id): ``citybrain.original.key``,
    or ``citybrain.original.key_null`` when it had none; ``citybrain.original.value_null``
    (empty) when it was a ``tombstone`` (a null value, which the dead letter's empty value
    cannot tell from an empty one); then each of its ``headers`` in order, repeated names
    kept, values as bytes, a null value as null (Kafka tells it from an empty one, and
    aiokafka's producer writes it), each name under ``ORIGINAL_HEADER_PREFIX``."""
    out: list[tuple[str, bytes | None]] = []
    if timestamp is not None:
        out.append((ORIGINAL_PREFIX + "timestamp", str(round(timestamp * 1000)).encode()))
    if timestamp_type is not None:
        kind = TIMESTAMP_TYPES.get(timestamp_type, str(timestamp_type))
        out.append((ORIGINAL_PREFIX + "timestamp_type", kind.encode()))
    if key != dead_key:
        out.append(
            (ORIGINAL_PREFIX + "key", key)
            if key is not None
            else (ORIGINAL_PREFIX + "key_null", b"")
        )
    if tombstone:
        out.append((ORIGINAL_PREFIX + "value_null", b""))
    # faust types a message's headers as a list of pairs or a mapping.
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, raw in pairs:
        out.append((ORIGINAL_HEADER_PREFIX + name, None if raw is None else bytes(raw)))
    return out


# A header's value: bytes, or also None (null) where the original record's are carried.
_HeaderValue = TypeVar("_HeaderValue", bytes, bytes | None)


def shared_original(
    original: Sequence[tuple[str, _HeaderValue]], count: int
) -> list[tuple[Sequence[tuple[str, _HeaderValue]], list[tuple[str, bytes]]]]:
    """What each of the ``count`` dead letters of one message (the refused items of an
    MQTT array, an HTTP body, a pack) carries of the message's ``original`` headers, and
    the headers it adds: the first ones carry them whole while all they carry stays
    within ``MAX_ORIGINAL_HEADER_BYTES``; the others carry none and say so,
    ``citybrain.error.headers_truncated`` = ``0 of <all>``, as a dead letter whose
    original's headers were cut does. Each carrying them, a message of 500 kB of MQTT 5
    user properties and 10,000 bad items made 5 GB of dead letters (t150)."""
    size = sum(len(name.encode()) + len(value or b"") for name, value in original)
    whole = count if size == 0 else max(1, MAX_ORIGINAL_HEADER_BYTES // size)
    none = [("citybrain.error.headers_truncated", f"0 of {len(original)}".encode())]
    return [(original, []) if i < whole else ((), none) for i in range(count)]


class CarriedSpend:
    """The bytes of each message's original record (its key and headers) that its dead
    letters have carried so far, for the worker, whose pack of 10,000 readings may refuse
    every one: each dead letter carried the pack record's headers whole, and a pack of
    500 kB of headers and 10,000 bad readings made 5 GB of dead letters (t150). The
    first dead letters of a message carry them while all carried stays within
    ``MAX_ORIGINAL_HEADER_BYTES``; the others carry its timestamp alone and say so,
    ``citybrain.error.headers_truncated`` = ``0 of <n>`` (as ``shared_original``). The
    last ``kept`` messages are remembered (a pack's readings are refused together)."""

    def __init__(self, kept: int = 1024) -> None:
        self._spent: dict[tuple[object, ...], int] = {}
        self._kept = kept

    def share(
        self, place: tuple[object, ...], carried: list[tuple[str, bytes | None]]
    ) -> list[tuple[str, bytes | None]]:
        """``carried`` (``original_record``'s headers of the message at ``place``: topic,
        partition, offset) as this dead letter may carry it."""
        record = [
            (n, v)
            for n, v in carried
            if n.startswith(ORIGINAL_HEADER_PREFIX) or n == ORIGINAL_PREFIX + "key"
        ]
        size = sum(len(n.encode()) + len(v or b"") for n, v in record)
        spent = self._spent.get(place)
        if spent is None or spent + size <= MAX_ORIGINAL_HEADER_BYTES:
            if len(self._spent) >= self._kept and place not in self._spent:
                del self._spent[next(iter(self._spent))]  # the oldest message's
            self._spent[place] = (spent or 0) + size
            return carried
        kept = [(n, v) for n, v in carried if (n, v) not in record]
        return [*kept, ("citybrain.error.headers_truncated", f"0 of {len(record)}".encode())]


def fit_dead_letter(
    value: bytes,
    key: bytes | None,
    headers: list[tuple[str, bytes]],
    limit: int = MAX_MESSAGE_BYTES,
    original: Sequence[tuple[str, _HeaderValue]] = (),
) -> tuple[bytes | None, bytes, list[tuple[str, _HeaderValue]]]:
    """The dead letter's key, value and headers, within ``limit`` bytes in all: a larger
    value (a 5 MB MQTT payload, a 1 MB message from a foreign producer) keeps its first
    bytes and gains the header ``citybrain.error.truncated`` = its size in bytes. Kafka
    would refuse it whole (faust's producer takes at most 1,000,000 bytes), and the
    refused dead letter would stop the ingest or the worker, and come back with every
    restart. A key longer than ``MAX_DEAD_LETTER_KEY_BYTES`` (a foreign producer's key of
    1 MB, or a reading's ``sensor_id`` of 1 MB, which keys its dead letter) keeps its
    first that many bytes and gains ``citybrain.error.key_truncated`` = its size: the
    value alone could not make room for it (trial 19). ``original`` (``original_record``'s
    headers) follows ``headers``, as many of them, in order, as fit in
    ``MAX_ORIGINAL_HEADER_BYTES``; when some do not, ``citybrain.error.headers_truncated``
    says how many were kept of how many (``"3 of 5000"``)."""
    out: list[tuple[str, _HeaderValue]] = list(headers)
    if original:
        kept: list[tuple[str, _HeaderValue]] = []
        size = 0
        for name, raw in original:
            size += len(name.encode()) + len(raw or b"")
            if size > min(MAX_ORIGINAL_HEADER_BYTES, limit // 2):
                break
            kept.append((name, raw))
        out += kept
        if len(kept) < len(original):
            cut = f"{len(kept)} of {len(original)}".encode()
            out.append(("citybrain.error.headers_truncated", cut))
    if key is not None and len(key) > MAX_DEAD_LETTER_KEY_BYTES:
        out.append(("citybrain.error.key_truncated", str(len(key)).encode()))
        key = key[:MAX_DEAD_LETTER_KEY_BYTES]
    room = (
        limit
        - len(key or b"")
        - sum(len(k) + len(v or b"") for k, v in out)
        - MESSAGE_FRAMING_BYTES
    )
    if len(value) <= room:
        return key, value, out
    out.append(("citybrain.error.truncated", str(len(value)).encode()))
    return key, value[: max(0, room)], out


def dead_letter_key(raw: bytes, fallback: bytes | None) -> bytes | None:
    """The key of a reading's dead letter (docs/events.md): its ``sensor_id`` when
    ``raw`` is a JSON object with one (non-empty text), else ``fallback``, the key of
    the message it came in (a pack's ``pack-<n>``, an MQTT topic). One rule for every
    step that refuses a reading (trial 8: a pack's ``bad_type`` and ``wrong_partition``
    readings kept the pack's key, its ``out_of_order`` ones had their sensor's), so a
    consumer finds a sensor's dead readings under the key its readings have."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # a reading as its sender wrote it: NaN, 1e999 (the HTTP ingest's dead letters)
            doc = _decode_json(raw, check_text=False)
        except EventError:
            return fallback
    sensor = doc.get("sensor_id") if isinstance(doc, dict) else None
    if not isinstance(sensor, str) or not sensor:
        return fallback
    try:
        return sensor.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, JSON's "\ud800"
        return fallback


# Media types whose bytes are JSON text (RFC 6839's +json suffix included).
_JSON_MEDIA = re.compile(r"\s*(application|text)/([\w.+-]*\+)?json\s*(;.*)?$", re.IGNORECASE)
# A header value is quoted in a reason at most this long.
_HEADER_SAID = 60


def _header_text(value: Any) -> str | None:
    """A header value as text (``_HEADER_SAID`` characters at most), None when absent
    or not UTF-8."""
    if value is None:
        return None
    try:
        text = value.decode("utf-8") if isinstance(value, bytes | bytearray) else str(value)
    except UnicodeDecodeError:
        return None
    return text if len(text) <= _HEADER_SAID else text[: _HEADER_SAID - 3] + "..."


def record_form(headers: Any) -> str:
    """What a Kafka record's ``headers`` say its value is, for the reason that refuses
    the value as no JSON document of ours (``bad_json``, ``bad_schema``): `` (its
    headers say it is a CloudEvents event in binary mode, ce_type 'x', …: its value, the
    event's data, is read as the message)``, its ``content-type`` (or
    ``ce_datacontenttype``) when that names no JSON (``application/avro``), or a
    Confluent Schema Registry schema id carried in a header (``__value_schema_id``,
    whose value then holds no magic byte); "" when they say nothing of it. ``headers``
    as faust and aiokafka give them: ``(name, value)`` pairs or a mapping, names as
    text or bytes (a name that is not UTF-8, faust_patches change 13). Before t170 a
    binary-mode CloudEvent whose data was no reading was "field "schema" is missing"
    alone, nothing saying what had come."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    found: dict[str, str | None] = {}
    for pair in pairs:
        try:
            name, value = pair
        except (TypeError, ValueError):
            continue
        if isinstance(name, bytes | bytearray):
            name = bytes(name).decode("utf-8", "replace")
        if not isinstance(name, str):
            continue
        lowered = name.lower()
        if lowered not in found and (
            lowered.startswith("ce_")
            or lowered in ("content-type", "content_type", "__value_schema_id")
        ):
            found[lowered] = _header_text(value)
    said: list[str] = []
    if "ce_specversion" in found:
        attributes = ", ".join(
            f"{name} {found[name]!r}"
            for name in ("ce_type", "ce_source")
            if found.get(name) is not None
        )
        said.append(
            "its ce_* headers say it is a CloudEvents event in binary mode"
            + (f" ({attributes})" if attributes else "")
            + ": its value, the event's data, is read as the message"
        )
    media = (
        found.get("content-type") or found.get("content_type") or found.get("ce_datacontenttype")
    )
    if media and not _JSON_MEDIA.match(media):
        said.append(f"its content-type header says {media!r}, which is not JSON")
    if "__value_schema_id" in found:
        said.append(
            "its __value_schema_id header says a Schema Registry serializer wrote it (the "
            "schema's id in a header): send plain JSON text"
        )
    return f" ({'; '.join(said)})" if said else ""
