"""Rehearsal: real citizen reports replayed through the real playbook engine, with
simulated field units that answer and finish after delays drawn from real service-time
distributions (datasets/service_times/). No Kafka: the pure engine and a simulated clock.

Each report becomes one run of the rehearsal playbook (one report, one case, like a 311
request). The simulation, event by event in time order:

- a new run's department asks for a unit. A department has ``units`` units with a
  ``capacity`` of incidents each (default 1: a busy unit takes no second one), busy from
  acknowledging until the resolution or, with ``busy`` set, for that many seconds (for
  departments whose cases stay open for days after a short visit), on duty
  during its ``shifts`` (UTC hours ``[start, end)``). With no unit free and on duty the run
  queues (first come, first served) until one is;
- a unit asked does not answer with probability ``no_answer`` (it stays free; the run
  waits for its deadline, escalates, and the next level asks again); otherwise it
  acknowledges after a delay drawn from the ``response`` profile (SF fire calls, response
  delay per unit type) and resolves at ``created + resolve`` (NYC 311 created -> closed per
  department), or a minute after its acknowledgement if that is later;
- deadlines (the playbook's ``wait_ack`` steps, or ``ack_deadline`` for all of them) fire
  through ``PlaybookEngine.timeout``, so escalation is the engine's own;
- with a ``SatisfactionModel``, a reporter answers a closure with probability
  ``answer_rate``, ``answer_after`` seconds after it, not satisfied with a probability
  that rises with the time from the report to that closure. The answer goes through
  ``PlaybookEngine.step(run, Answer(...))``: not satisfied reopens the run (escalating it
  from the second reopening on, the engine's rule), the department is asked for a unit
  again, and the unit resolves ``resolve`` after the reopening. A reporter answers at
  most ``max_answers`` closures.

Sampling is inverse-CDF with linear interpolation between the profile's quantiles, from a
seeded ``random.Random``: the same seed gives the same rehearsal, and two playbook
versions rehearsed with one seed see the same draws for the same report, in order.

Output: the engine's step records, ready for ``citybrain.campaign.campaign_report``.
"""

from __future__ import annotations

import bisect
import difflib
import heapq
import math
import random
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citybrain.errors import InputError
from citybrain.resent import worker_duplicates
from playbooks.engine import Answer, Command, PlaybookEngine, ReportsCovered, Run, is_terminal
from playbooks.errors import did_you_mean
from playbooks.grid import Grid
from playbooks.schema import Playbook
from streams.csvfile import (
    BadRow,
    HeaderRepeats,
    comment_line,
    cut_short,
    field_count_reason,
    read_records,
    row_start,
    separator_hint,
    time_shaped,
)
from streams.errors import EventError, FeedError, show, shown_path
from streams.events import EventValidator, IncidentReport, parse_ts

MIN_WORK = 60.0  # seconds from an acknowledgement to the earliest resolution

# The longest simulated duration (a response, a unit's busy time, a reporter's delay to
# answer): 1.0e+300 in a units profile was taken, and the rehearsal ended in a refusal of
# one of its own records ("record 15891 … field \"at\" is 1e+300"), not of the profile.
MAX_SIMULATED_SECONDS = 365 * 86_400.0


# The most answers a simulated reporter gives (``max_answers``). Each answer not
# satisfied reopens the run, which the department resolves again, whose closure the
# reporter answers again: 1,000,000,000 was taken, and a profile whose units always
# answer and whose reporters are never satisfied went round that cycle for good (the
# rehearsal of one day's reports never ended, t177). Twenty is past any reporter's
# patience, at twenty rounds a run.
MAX_ANSWERS = 20


class RehearsalError(InputError):
    """A units profile or service-time profile that cannot be used; names the field."""


@dataclass(frozen=True, slots=True)
class Distribution:
    """A duration distribution given by quantiles ``[(q, seconds), ...]``, q from 0 to 1."""

    qs: tuple[float, ...]
    values: tuple[float, ...]

    @classmethod
    def from_entry(cls, entry: Any, where: str) -> Distribution:
        """From a profile entry ``{"quantiles": [[q, seconds], ...]}``: at least two pairs,
        q rising from 0 to 1, seconds finite, >= 0 and not falling. Raises
        ``RehearsalError`` naming the entry and the pair (a pair that was no pair, or a
        text, was a TypeError or IndexError, "a bug"; a negative or infinite duration was
        rehearsed: an acknowledgement before its report, an ``at`` of inf)."""
        if not isinstance(entry, Mapping):
            raise RehearsalError(f'{where} is {entry!r}, expected {{"quantiles": [[q, s], ...]}}')
        pairs = entry.get("quantiles")
        if not isinstance(pairs, list) or len(pairs) < 2:
            raise RehearsalError(f'{where}: "quantiles" is {pairs!r}, expected [[q, s], ...]')
        qs, values = [], []
        for i, pair in enumerate(pairs):
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(_number(x) and math.isfinite(x) for x in pair)
            ):
                raise RehearsalError(
                    f'{where}: "quantiles"[{i}] is {pair!r}, expected [q, seconds] (two '
                    "finite numbers)"
                )
            if not 0 <= pair[0] <= 1 or not 0 <= pair[1] <= MAX_SIMULATED_SECONDS:
                raise RehearsalError(
                    f'{where}: "quantiles"[{i}] is {pair!r}, expected 0 <= q <= 1 and seconds '
                    f"0..{MAX_SIMULATED_SECONDS:,.0f} (a year)"
                )
            qs.append(float(pair[0]))
            values.append(float(pair[1]))
        if qs[0] != 0.0 or qs[-1] != 1.0 or qs != sorted(qs) or values != sorted(values):
            raise RehearsalError(f"{where}: quantiles must rise from q=0 to q=1")
        return cls(tuple(qs), tuple(values))

    def sample(self, u: float) -> float:
        """The duration at cumulative probability ``u`` (0..1), interpolated."""
        i = min(max(bisect.bisect_right(self.qs, u) - 1, 0), len(self.qs) - 2)
        q0, q1 = self.qs[i], self.qs[i + 1]
        v0, v1 = self.values[i], self.values[i + 1]
        return v0 + (v1 - v0) * ((u - q0) / (q1 - q0) if q1 > q0 else 0.0)


def _number(value: Any) -> bool:
    """An int or float, not a bool (YAML's and JSON's ``true`` is an int to Python)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def profile_distributions(doc: Mapping[str, Any], where: str) -> dict[str, Distribution]:
    """A service-time profile file (bench/service_profiles.py) -> name -> Distribution."""
    entries = doc.get("entries") if isinstance(doc, Mapping) else None
    if not isinstance(entries, dict) or "all" not in entries:
        raise RehearsalError(f'{where}: expected "entries" with an "all" entry')
    return {k: Distribution.from_entry(v, f"{where}: entry {k!r}") for k, v in entries.items()}


def nearest(word: str, known: Collection[str], cutoff: float = 0.6) -> str | None:
    """The known name ``word`` most likely means, whatever its case (``POLICE`` and
    ``Polce`` -> ``police``), or None when none is close (difflib's ratio >= ``cutoff``)."""
    by_folded: dict[str, str] = {}
    for name in sorted(known):
        by_folded.setdefault(name.casefold(), name)
    match = difflib.get_close_matches(word.casefold(), sorted(by_folded), n=1, cutoff=cutoff)
    return by_folded[match[0]] if match else None


def unknown_fields(unknown: Collection[Any], known: Collection[str], what: str = "field") -> str:
    """``unknown field(s) ['capcity'] (did you mean 'capacity' for 'capcity'?); expected …``
    (``what``: "field", or "column" for a CSV header)."""
    names = sorted(str(u) for u in unknown)
    near = [f"{m!r} for {u!r}" for u in names for m in [nearest(u, known)] if m]
    hint = f" (did you mean {', '.join(near)}?)" if near else ""
    return f"unknown {what}(s) {names}{hint}; expected {', '.join(sorted(known))}"


@dataclass(frozen=True, slots=True)
class DepartmentUnits:
    units: int
    capacity: int
    no_answer: float
    shifts: tuple[tuple[float, float], ...]
    response: Distribution
    resolve: Distribution
    # Seconds a unit stays busy after acknowledging; None: until the resolution.
    busy: float | None = None

    def on_duty(self, t: float) -> bool:
        hour = (t % 86400.0) / 3600.0
        return any(start <= hour < end for start, end in self.shifts)

    def next_shift_start(self, t: float) -> float:
        """The next time (after ``t``) a shift starts."""
        day = t - t % 86400.0
        starts = sorted(day + s * 3600.0 + k * 86400.0 for s, _ in self.shifts for k in (0, 1))
        return next(s for s in starts if s > t)


def units_profile(
    doc: Mapping[str, Any],
    response: Mapping[str, Distribution],
    resolve: Mapping[str, Distribution],
) -> dict[str, DepartmentUnits]:
    """The ``departments`` of a units profile (YAML, see datasets/service_times/README.md)
    -> department -> DepartmentUnits; ``default`` is used for departments not listed.
    Raises ``RehearsalError`` naming the department and field."""
    departments = doc.get("departments")
    if not isinstance(departments, dict) or "default" not in departments:
        raise RehearsalError('units profile: expected "departments" with a "default" entry')
    out = {}
    for name, spec in departments.items():
        where = f"units profile: departments.{name}"
        if not isinstance(spec, dict):
            raise RehearsalError(f"{where} is {spec!r}, expected a mapping")
        known = {"units", "capacity", "no_answer", "shifts", "response", "resolve", "busy"}
        unknown = set(spec) - known
        if unknown:
            raise RehearsalError(f"{where}: {unknown_fields(unknown, known)}")
        units, capacity = spec.get("units"), spec.get("capacity", 1)
        # ``true`` is an int to Python: it was taken as one unit.
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise RehearsalError(f"{where}.units is {units!r}, expected a whole number >= 1")
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise RehearsalError(f"{where}.capacity is {capacity!r}, expected a whole number >= 1")
        no_answer = spec.get("no_answer", 0.0)
        if not _number(no_answer) or not 0 <= no_answer < 1:
            raise RehearsalError(f"{where}.no_answer is {no_answer!r}, expected 0 <= p < 1")
        shifts = spec.get("shifts", [[0, 24]])
        try:
            pairs = tuple((float(a), float(b)) for a, b in shifts)
        except (TypeError, ValueError):
            raise RehearsalError(
                f"{where}.shifts is {shifts!r}, expected [[start, end], ...]"
            ) from None
        if not pairs or any(not 0 <= a < b <= 24 for a, b in pairs):
            night = [(a, b) for a, b in pairs if 0 <= b < a <= 24]
            hint = (
                f"; a shift past midnight is two: [[{night[0][0]:g}, 24], [0, {night[0][1]:g}]]"
                if night
                else ""
            )
            raise RehearsalError(
                f"{where}.shifts is {shifts!r}, expected hours 0 <= start < end <= 24{hint}"
            )
        picks = {}
        for key, table in (("response", response), ("resolve", resolve)):
            pick = str(spec.get(key, "all"))
            if pick not in table:
                raise RehearsalError(
                    f"{where}.{key} is {pick!r}, expected one of {', '.join(sorted(table))}"
                    f"{did_you_mean(pick, table)}"
                )
            picks[key] = table[pick]
        busy = spec.get("busy")
        # NaN passed "busy <= 0" and infinity held the unit forever.
        if busy is not None and (
            not _number(busy) or not math.isfinite(busy) or not 0 < busy <= MAX_SIMULATED_SECONDS
        ):
            raise RehearsalError(
                f"{where}.busy is {busy!r}, expected seconds > 0, at most "
                f"{MAX_SIMULATED_SECONDS:,.0f} (a year)"
            )
        out[str(name)] = DepartmentUnits(
            units,
            capacity,
            float(no_answer),
            pairs,
            picks["response"],
            picks["resolve"],
            None if busy is None else float(busy),
        )
    return out


@dataclass(frozen=True, slots=True)
class SatisfactionModel:
    """How simulated reporters answer closures. An assumption, not data: no open data on
    311 reporters' satisfaction against their waiting time was found. The defaults
    (``DEFAULT_SATISFACTION``) put about 8.5 % of answers at "not satisfied" for a
    report closed at the police's median time in the NYC profile (43 min), near the
    91.65 % satisfied of the campaign issue 16 cites, and let waiting weigh on it.

    P(not satisfied | t) = min(``unsatisfied_max``, ``unsatisfied_base`` +
    ``unsatisfied_per_hour`` * t / 3600), t = seconds from the report to the closure
    answered (so a reopened case that closes later is judged on the longer wait)."""

    answer_rate: float  # share of closures a reporter answers, 0..1
    answer_after: float  # seconds from a closure to its answer
    unsatisfied_base: float  # P(not satisfied) for a closure at the moment of the report
    unsatisfied_per_hour: float  # added per hour from the report to the closure
    unsatisfied_max: float  # the ceiling of P(not satisfied)
    max_answers: int  # closures one reporter answers at most

    def unsatisfied(self, seconds: float) -> float:
        """P(not satisfied) for a closure ``seconds`` after the report."""
        raised = self.unsatisfied_base + self.unsatisfied_per_hour * max(seconds, 0.0) / 3600.0
        return min(self.unsatisfied_max, raised)


SATISFACTION_FIELDS = {
    "answer_rate": 0.3,
    "answer_after": 3600.0,
    "unsatisfied_base": 0.05,
    "unsatisfied_per_hour": 0.05,
    "unsatisfied_max": 0.5,
    "max_answers": 2,
}
DEFAULT_SATISFACTION = SatisfactionModel(**SATISFACTION_FIELDS)  # type: ignore[arg-type]


def satisfaction_model(doc: Mapping[str, Any]) -> SatisfactionModel | None:
    """The ``satisfaction`` mapping of a units profile -> its model (fields not given take
    ``SATISFACTION_FIELDS``' values), or None without one. Raises ``RehearsalError``
    naming the field."""
    spec = doc.get("satisfaction")
    if spec is None:
        return None
    where = "units profile: satisfaction"
    if not isinstance(spec, dict):
        raise RehearsalError(f"{where} is {spec!r}, expected a mapping")
    unknown = set(spec) - set(SATISFACTION_FIELDS)
    if unknown:
        raise RehearsalError(f"{where}: {unknown_fields(unknown, set(SATISFACTION_FIELDS))}")
    values: dict[str, Any] = {**SATISFACTION_FIELDS, **spec}
    for name, value in values.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if name == "max_answers":
            whole = isinstance(value, int) and not isinstance(value, bool)
            ok = whole and 1 <= value <= MAX_ANSWERS
            expected = f"a whole number from 1 to {MAX_ANSWERS}"
        elif name == "answer_after":
            # Infinity was taken, and its answers' records were dated inf.
            ok = ok and math.isfinite(value) and 0 <= value <= MAX_SIMULATED_SECONDS
            expected = f"seconds >= 0, at most {MAX_SIMULATED_SECONDS:,.0f} (a year)"
        else:
            ok = ok and 0 <= value <= 1
            expected = "a probability 0 <= p <= 1"
        if not ok:
            raise RehearsalError(f"{where}.{name} is {value!r}, expected {expected}")
    return SatisfactionModel(
        answer_rate=float(values["answer_rate"]),
        answer_after=float(values["answer_after"]),
        unsatisfied_base=float(values["unsatisfied_base"]),
        unsatisfied_per_hour=float(values["unsatisfied_per_hour"]),
        unsatisfied_max=float(values["unsatisfied_max"]),
        max_answers=int(values["max_answers"]),
    )


@dataclass(frozen=True, slots=True)
class Incident:
    """One report to replay: epoch seconds, id, channel, category, cell, department."""

    ts: float
    report_id: str
    source: str
    category: str
    grid_cell: str
    department: str


INCIDENT_FIELDS = ("timestamp", "report_id", "category", "text", "source", "grid_cell")


@dataclass
class IncidentFile:
    """What ``read_incidents`` found: the reports to rehearse, the rows left out as
    duplicates (``file:line: …``: a report id given again in its cell and category, which
    the worker would drop as a re-sent report), and the departments no one knows (name ->
    the lines giving it)."""

    incidents: list[Incident] = field(default_factory=list)  # in event-time order
    duplicates: list[str] = field(default_factory=list)
    unknown_departments: dict[str, list[int]] = field(default_factory=dict)


def read_incidents(
    path: Path,
    cells: Collection[str],
    departments: Collection[str],
    classify: Callable[[list[str]], list[str]],
    on_bad_row: Callable[[BadRow], None] | None = None,
    grid: Grid | None = None,
    bucket_seconds: float = 1800.0,
    max_future_skew: float = 300.0,
    now: float | None = None,
) -> IncidentFile:
    """The canonical incident CSV (docs/events.md; columns in any order, plus an optional
    ``department``) -> the reports, read as the replay reads them (streams.csvfile:
    every bad row is ``file:line: reason``; ``timestamp`` ISO 8601 with a zone; only
    ``text`` may span lines). A bad row raises ``RehearsalError`` naming file and line,
    unless ``on_bad_row`` takes it. Also bad: an empty ``report_id``, a ``grid_cell`` not
    in ``cells``, and with ``grid`` every row the worker would dead-letter (its own
    ``EventValidator``: a ``source`` none of hotline, app, inspector, emergency, an event
    time before 1990, one more than ``max_future_skew`` s, the worker's
    ``CITYBRAIN_MAX_FUTURE_SKEW``, ahead of ``now``: epoch s, the wall clock if None). A
    row the worker would drop as a re-sent report
    (``citybrain.resent``: the same ``report_id`` in the same cell and category within a
    day, in replay's order: event time, then line) is left out and listed
    (``duplicates``). An empty ``department`` (or none: no column) is the text
    classifier's (``classify``, of "category: text"); one that is none of
    ``departments`` is kept (the units profile's ``default`` pool takes it) and listed.
    ``bucket_seconds``: the worker's ``CITYBRAIN_BURST_BUCKET_SECONDS``, which the
    duplicate rule counts its day in. Raises ``RehearsalError`` for a file that cannot be
    read or lacks a column."""
    # The worker's own check against the wall clock (trial 7: a row dated 2099 was
    # rehearsed, though the worker dead-letters it as in_future).
    validator = EventValidator(grid, max_future_skew) if grid is not None else None
    clock = time.time() if now is None else now
    shape: list[int] = []  # the header's width and its timestamp column, once read

    def looks_like_row(text: str) -> bool:
        # Stray-quote recovery, as replay's: a line that starts a row as wide as the
        # header, with a time in its timestamp column, is a row of its own.
        fields = row_start(text, shape[0]) if shape else None
        if fields is None or len(fields) <= shape[1]:
            return False
        if time_shaped(fields[shape[1]]):  # a time written otherwise: its row's own fault
            return True
        try:
            parse_ts(fields[shape[1]], "timestamp")
        except (EventError, ValueError, OverflowError):
            return False
        return True

    records = read_records(path, looks_like_row)
    try:
        header = next(records, None)
        if header is None or isinstance(header, BadRow):
            raise RehearsalError(
                f"{header or f'{shown_path(path)}:1: the file is empty'} (expected a header row)"
            )
        columns = [name.strip() for name in header.fields]
        # A column named twice, or one not read (``Department``, ``departmnet``), was
        # read first-wins or not at all, silently: the file's departments were then the
        # classifier's guesses (trial 26).
        twice = sorted({name for name in columns if columns.count(name) > 1})
        if twice:
            places = {n: [str(i + 1) for i, c in enumerate(columns) if c == n] for n in twice}
            where = ", ".join(f"{n!r} (columns {', '.join(places[n])})" for n in twice)
            raise RehearsalError(
                f"{shown_path(path)}:{header.line}: header names {where} more than once: which one "
                "is "
                "meant cannot be known"
            )
        known = (*INCIDENT_FIELDS, "department")
        unknown = [name for name in columns if name not in known]
        if unknown:
            raise RehearsalError(
                f"{shown_path(path)}:{header.line}: header has "
                f"{unknown_fields(unknown, known, 'column')} "
                f"(department is optional){separator_hint(header.fields)}"
            )
        missing = [name for name in INCIDENT_FIELDS if name not in columns]
        if missing:
            raise RehearsalError(
                f"{shown_path(path)}:{header.line}: header lacks {', '.join(missing)} (a canonical "
                f"incident file has {','.join(INCIDENT_FIELDS)}, and may add department)"
            )
        shape[:] = [len(columns), columns.index("timestamp")]
        at = {
            name: columns.index(name)
            for name in (*INCIDENT_FIELDS, "department")
            if name in columns
        }
        out = IncidentFile()
        rows: list[tuple[int, float, list[str]]] = []
        # A header row again, as replay's (t188: one in another column order made the
        # reports under it have their category for text, unsaid).
        repeats = HeaderRepeats(header, at["timestamp"])
        for record in records:
            try:
                if isinstance(record, BadRow):
                    raise _Bad(record)
                line, row = record.line, record.fields
                # A comment line only where a row starts with its timestamp: a text first
                # may start with a # of its own.
                not_row = repeats.reason(record) or (
                    comment_line(row) if at["timestamp"] == 0 else None
                )
                if not_row is not None:
                    raise _Bad(BadRow(path, line, not_row))
                count = field_count_reason(row, len(columns))
                if count is not None:
                    raise _Bad(BadRow(path, line, count))
                for name, i in at.items():
                    if name != "text" and ("\n" in row[i] or "\r" in row[i]):
                        reason = f'field "{name}" spans lines (a stray quote?): {row[i][:60]!r}'
                        raise _Bad(BadRow(path, line, reason))
                rid = row[at["report_id"]]
                if not rid.strip():
                    raise _Bad(BadRow(path, line, 'field "report_id" is empty'))
                cell = row[at["grid_cell"]]
                if cell not in cells:
                    reason = f'field "grid_cell" is {show(cell)}: not a cell of the grid'
                    raise _Bad(BadRow(path, line, reason))
                try:
                    ts = parse_ts(row[at["timestamp"]], "timestamp")
                except (EventError, ValueError, OverflowError) as exc:
                    raise _Bad(BadRow(path, line, str(exc))) from None
                if validator is not None:
                    # What the worker would dead-letter is no report to rehearse.
                    raw = IncidentReport(
                        ts, rid, row[at["category"]], row[at["text"]], row[at["source"]], cell
                    ).to_json()
                    try:
                        validator.incident(raw, clock)
                    except EventError as exc:
                        reason = f"{exc} (the worker would dead-letter it: {exc.code})"
                        raise _Bad(BadRow(path, line, reason)) from None
            except _Bad as bad:
                row_bad = bad.row
                if not isinstance(record, BadRow) and record.unended:
                    row_bad = BadRow(path, row_bad.line, row_bad.reason + cut_short(record))
                if on_bad_row is None:
                    raise RehearsalError(str(row_bad)) from None
                on_bad_row(row_bad)
                continue
            rows.append((line, ts, row))
    except FeedError as exc:
        raise RehearsalError(str(exc)) from None
    # Replay sends in event-time order, ties in file order: the order the worker judges.
    rows.sort(key=lambda r: (r[1], r[0]))
    keys = [
        (ts, row[at["report_id"]], row[at["category"]], row[at["grid_cell"]]) for _, ts, row in rows
    ]
    first: dict[tuple[str, str, str], int] = {}
    kept = []
    for (line, ts, row), key, again in zip(
        rows, keys, worker_duplicates(keys, bucket_seconds), strict=True
    ):
        rid, same = key[1], (key[1], key[2], key[3])
        if again:
            out.duplicates.append(
                f"{shown_path(path)}:{line}: report_id {show(rid)} again in cell {show(key[3])}, "
                "category "
                f"{show(key[2])} (first at line {first.get(same, '?')}): left out, as the worker "
                "drops a re-sent report"
            )
            continue
        first.setdefault(same, line)
        kept.append((line, ts, row))
    rows = kept
    given = [row[at["department"]].strip() if "department" in at else "" for _, _, row in rows]
    guess_for = [i for i, d in enumerate(given) if not d]
    guessed = (
        classify([f"{rows[i][2][at['category']]}: {rows[i][2][at['text']]}" for i in guess_for])
        if guess_for
        else []
    )
    for i, d in zip(guess_for, guessed, strict=True):
        given[i] = d
    for (line, ts, row), department in zip(rows, given, strict=True):
        if department not in departments:
            out.unknown_departments.setdefault(department, []).append(line)
        out.incidents.append(
            Incident(
                ts,
                row[at["report_id"]],
                row[at["source"]],
                row[at["category"]],
                row[at["grid_cell"]],
                department,
            )
        )
    return out


class _Bad(Exception):
    def __init__(self, row: BadRow) -> None:
        super().__init__(str(row))
        self.row = row


@dataclass(slots=True)
class _Case:
    run: Run
    incident: Incident
    # no-answer, response, resolve, answers, satisfied: fixed per report
    draws: tuple[float, float, float, float, float]
    attempts: int = 0
    since: float = 0.0  # when the current piece of work began: the report, or a reopening
    answers: int = 0  # closures the reporter has answered
    unit: bool = False  # holds a unit slot
    queued: bool = False
    waited: bool = False  # has queued at least once (counted once in ``Rehearsal.queued``)
    # (step, level) of each wait whose deadline passed: a second one at the same step and
    # level is a loop going round again (``rehearse``).
    timed_out: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Rehearsal:
    """The outcome: every step record and a few counters of the simulation itself."""

    records: list[dict[str, Any]] = field(default_factory=list)
    queued: int = 0  # runs that waited for a free unit at least once
    queued_by: dict[str, int] = field(default_factory=dict)  # the same per units pool
    unanswered: int = 0  # unit requests not answered
    answers: int = 0  # reporters' answers to closures
    reopened: int = 0  # answers "not satisfied" that reopened a run
    looped: int = 0  # waits a run looped back to, left after their first round (``rehearse``)
    events: int = 0


def rehearse(
    incidents: Sequence[Incident],
    playbook: Playbook,
    grid: Grid,
    units: Mapping[str, DepartmentUnits],
    ack_deadline: float | None = None,
    seed: int = 0,
    satisfaction: SatisfactionModel | None = None,
) -> Rehearsal:
    """Replay ``incidents`` (any order; sorted by time here) to the end: every run
    acknowledged and resolved, or left open with nobody to answer; with
    ``satisfaction``, reporters answer closures and reopen runs. Pure and deterministic
    for a seed. A wait the playbook loops back to on its timeout is rehearsed one round
    at each level (``Rehearsal.looped`` counts the waits left there)."""
    engine = PlaybookEngine(playbook, grid, deadline_override=ack_deadline)
    rng = random.Random(seed)
    out = Rehearsal()
    busy: dict[str, int] = {}
    queues: dict[str, deque[str]] = {}
    cases: dict[str, _Case] = {}
    heap: list[tuple[float, int, str, str]] = []
    seq = 0

    def push(t: float, kind: str, run_id: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, run_id))

    def pool(case: _Case) -> str:
        name = case.incident.department
        return name if name in units else "default"

    def dept(case: _Case) -> DepartmentUnits:
        return units[pool(case)]

    def full(name: str) -> bool:
        return busy.get(name, 0) >= units[name].units * units[name].capacity

    def record(case: _Case, cmds: list[Command], asking: bool = True) -> None:
        for cmd in cmds:
            out.records.append({"playbook": playbook.playbook, **cmd.to_dict()})
            if cmd.action == "wait_ack" and case.run.deadline_at is not None:
                push(case.run.deadline_at, "deadline", case.run.run_id)
            if cmd.action == "escalate" and asking and not case.unit and not case.queued:
                ask(case, cmd.at)  # the next level asks again
            if cmd.action == "reply" and satisfaction is not None:
                # The report's own draw decides its first answer; later ones draw afresh.
                u = case.draws[3] if case.answers == 0 else rng.random()
                if case.answers < satisfaction.max_answers and u < satisfaction.answer_rate:
                    push(cmd.at + satisfaction.answer_after, "answer", case.run.run_id)

    def ask(case: _Case, t: float) -> None:
        """Ask the department for a unit: queue without one free on duty; else it answers
        (taking the slot) or not."""
        d, name = dept(case), pool(case)
        if full(name) or not d.on_duty(t):
            if not case.queued:
                case.queued = True
                if not case.waited:
                    # Once per run: one taken off the queue may queue again (all units
                    # busy again at its shift's start, or unanswered and asking again),
                    # and counted at each wait it made "runs that waited" 9 of 3 (trial 22).
                    case.waited = True
                    out.queued += 1
                    out.queued_by[name] = out.queued_by.get(name, 0) + 1
                queues.setdefault(name, deque()).append(case.run.run_id)
                if not d.on_duty(t):
                    push(d.next_shift_start(t), "shift", name)
            return
        # Each later attempt draws afresh; the first uses the report's own draw.
        u = case.draws[0] if case.attempts == 0 else rng.random()
        case.attempts += 1
        if u < d.no_answer:
            out.unanswered += 1
            return
        busy[name] = busy.get(name, 0) + 1
        case.unit = True
        push(t + d.response.sample(case.draws[1]), "ack", case.run.run_id)

    def release(name: str, t: float) -> None:
        busy[name] -= 1
        queue = queues.get(name)
        if queue and not units[name].on_duty(t):
            # Freed after the shift ended: the queue waits, in its order, for the next
            # shift (asked now, its head went to the back, behind reports that came after
            # it: trial 22).
            push(units[name].next_shift_start(t), "shift", name)
            return
        while queue and not full(name):
            waiting = cases[queue.popleft()]
            waiting.queued = False
            ask(waiting, t)
            if waiting.queued:
                break

    again: dict[str, int] = {}  # run id -> the last suffix given to a repeat of it
    for inc in sorted(incidents, key=lambda i: (i.ts, i.report_id)):
        # The draws are made in report order, so versions compare report by report.
        draws = (rng.random(), rng.random(), rng.random(), rng.random(), rng.random())
        run_id = f"rh-{inc.report_id}"
        if run_id in cases:
            # One id in two cells or categories is two reports to the worker: two runs,
            # ``~2``, ``~3``, ... the next one free. Counted from the ids taken, without
            # that check, a report "A~3" before two "A"s made the second "A" rh-A~3 too,
            # and its case replaced the first's (trial 26); counting scanned every case.
            n = again.get(run_id, 1) + 1
            while f"{run_id}~{n}" in cases:
                n += 1
            again[run_id] = n
            run_id = f"{run_id}~{n}"
        cases[run_id] = _Case(Run(run_id, "", "", "", "", ""), inc, draws, since=inc.ts)
        push(inc.ts, "report", run_id)

    while heap:
        t, _, kind, key = heapq.heappop(heap)
        out.events += 1
        if kind == "shift":
            queue = queues.get(key)
            for _ in range(len(queue or ())):
                assert queue is not None
                case = cases[queue.popleft()]
                case.queued = False
                ask(case, t)
            continue
        case = cases[key]
        if kind == "report":
            inc = case.incident
            alert = {
                "alert_id": f"report-{inc.report_id}",
                "kind": "citizen_report",
                "grid_cell": inc.grid_cell,
                "labels": {"category": inc.category, "department": inc.department},
            }
            case.run, cmds = engine.new_run(key, alert, t)
            case.run, more = engine.step(
                case.run, ReportsCovered(((inc.report_id, inc.source),), t)
            )
            ask(case, t)
            record(case, cmds + more)
        elif kind == "deadline":
            at = (case.run.step or "", case.run.level)
            if engine.is_due(case.run, t) and at in case.timed_out:
                # A wait_ack looping back on its timeout (notify again until someone
                # acknowledges) at the same level as its last round: the rounds after it
                # repeat it until the unit's ack, which asking only at a new level
                # schedules already, or for good when nobody answers: the rehearsal never
                # ended, its records growing (t177). The run waits here for its ack.
                out.looped += 1
                continue
            case.timed_out.add(at)
            case.run, cmds = engine.timeout(case.run, t)
            record(case, cmds)
        elif kind == "ack":
            case.run, cmds = engine.acknowledge(case.run, "field unit", t)
            record(case, cmds)
            u = case.draws[2] if case.since == case.run.created_at else rng.random()
            resolve_at = max(case.since + dept(case).resolve.sample(u), t + MIN_WORK)
            push(resolve_at, "resolve", key)
            hold = dept(case).busy
            if hold is not None and t + hold < resolve_at:
                push(t + hold, "free", key)  # the unit's part is done; the case stays open
        elif kind == "free":
            if case.unit:
                case.unit = False
                release(pool(case), t)
        elif kind == "resolve":
            if not is_terminal(case.run):
                case.run, cmds = engine.resolve(case.run, "field unit", "done", t)
                record(case, cmds)
            if case.unit:
                case.unit = False
                release(pool(case), t)
        elif kind == "answer":
            assert satisfaction is not None
            wait = case.run.resolved_at or t
            u = case.draws[4] if case.answers == 0 else rng.random()
            satisfied = u >= satisfaction.unsatisfied(wait - case.run.created_at)
            case.answers += 1
            out.answers += 1
            answer = Answer(case.incident.report_id, satisfied, "", "reporter", t)
            case.run, cmds = engine.step(case.run, answer)
            if not is_terminal(case.run):  # reopened: the department is asked again
                out.reopened += 1
                case.since = t
                if not case.unit and not case.queued:
                    ask(case, t)
            record(case, cmds, asking=False)
    return out
