"""The campaign report: how each area and department handled its problems, from the step
and audit records of playbook runs (``step/1``, docs/events.md). Pure: records in, figures
out; ``citybrain campaign report`` and ``citybrain rehearse`` do the reading and writing.

A *problem* is a playbook run (citizen-report bursts and sensor alerts alike); it belongs
to the period in which it was created. For each scope (every community, street, district,
the city, every department) over ``[start, end)`` and the period of the same length
before it:

- ``found``: runs created; ``reports``: citizen reports they covered;
- ``resolved``: runs whose last outcome by ``end`` is resolved (a reopened run counts
  once it is resolved again); ``resolution_rate`` = resolved / found;
- ``tta_median``/``tta_p90``: seconds from creation to the first acknowledgement, over
  acknowledged runs; ``ttr_median``/``ttr_p90``: creation to the last resolution, over
  resolved runs; quantiles by linear interpolation between order statistics (numpy's
  default, Hyndman and Fan's type 7);
- ``first_line_share``: resolved at community or street level / resolved (the "solved at
  the first line" measure);
- ``escalated_district``: runs whose own level reached district or city (an escalation
  by a step, an operator or a second reopening; a notify step addressed to the district
  does not move the run);
- ``reopened``: runs reopened at least once (a reporter not satisfied);
- ``answers``, ``satisfaction_rate``: reports with an answer, and the share whose last
  answer was "satisfied";
- ``repeat_reports``: reports covered by a run about a (grid cell, category) that already
  had a run resolved (at least once, even if reopened later) before this one was
  created (the petition-reduction measure: a problem that came back after it was called
  solved).

``change`` is this period minus the previous one (rates in fractions, times in seconds);
None where either side is None.
"""

from __future__ import annotations

import html
import math
import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from citybrain.errors import InputError
from citybrain.text import cell as one_line
from citybrain.text import day, display_width, pad
from playbooks.routing import brief
from streams.events import epoch_seconds_fault

FIRST_LINE = frozenset({"community", "street"})
HIGH_LEVELS = frozenset({"district", "city"})
SCOPES = ("community", "street", "district", "city", "department")
FIGURES = (
    "found",
    "reports",
    "resolved",
    "resolution_rate",
    "tta_median",
    "tta_p90",
    "ttr_median",
    "ttr_p90",
    "first_line_share",
    "escalated_district",
    "reopened",
    "answers",
    "satisfaction_rate",
    "repeat_reports",
)


class CampaignError(InputError):
    """A record the report cannot use; the message names the record and the field.
    ``index`` is the bad record's position in the records given (None when no one
    record is at fault) and ``detail`` the message without it, so a caller that knows
    where the record came from (``file:line``) can say that instead."""

    def __init__(self, message: str, index: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.index = index
        self.detail = detail or message


def _bad_record(i: int, rec: Mapping[str, Any], detail: str) -> CampaignError:
    return CampaignError(f"record {i} ({_record_id(rec)}): {detail}", i, detail)


@dataclass(slots=True)
class RunFacts:
    """What the records tell about one run."""

    run_id: str
    grid_cell: str
    department: str
    category: str
    created_at: float
    acknowledged_at: float | None = None
    outcome: str | None = None  # resolved / cancelled / None (open); the last one
    outcome_at: float | None = None
    outcome_level: str | None = None
    resolved_at: float | None = None  # the last resolution, if the last outcome is one
    first_resolved_at: float | None = None  # when it was first called solved
    top_level: str = "community"
    reopened: int = 0
    reports: dict[str, str] = field(default_factory=dict)  # report id -> channel
    answers: dict[str, bool] = field(default_factory=dict)  # report id -> last answer


LEVEL_RANK = {"community": 0, "street": 1, "district": 2, "city": 3}


def runs_from_records(records: Iterable[Mapping[str, Any]], until: float) -> dict[str, RunFacts]:
    """Fold step and audit records (any order) into one ``RunFacts`` per run, using only
    records at or before ``until`` (epoch seconds). Records of runs without a
    ``run_created`` record (or without its ``grid_cell`` data, written by versions before
    the campaign report) are left out; a step whose ``id`` repeats (re-emitted after a
    crash) counts once, at its earliest time. Raises ``CampaignError`` for a record whose ``at``
    is not epoch seconds, whose ``data`` is not an object, or an answer whose
    ``data.satisfied`` is not true or false."""
    ordered = []
    for i, rec in enumerate(records):
        if "run_id" not in rec or "action" not in rec:
            continue  # API refusals and other audit records about no run
        at = rec.get("at")
        fault = epoch_seconds_fault(at)
        if fault is not None or not isinstance(at, int | float):
            # Years 0001-9999 only: 1e308 or a time in milliseconds passed as finite,
            # and the report's "created from ... to ..." ended in a traceback (exit 70).
            raise _bad_record(i, rec, f'field "at" is {brief(at)}, {fault}')
        data = rec.get("data")
        if data is not None and not isinstance(data, Mapping):
            # A list or text here raised TypeError/AttributeError ("a bug", exit 70).
            raise _bad_record(i, rec, f'field "data" is {brief(data)}, expected an object')
        answer = data if rec["action"] == "answer" and isinstance(data, Mapping) else {}
        satisfied = answer.get("satisfied")
        if "report_id" in answer and not isinstance(satisfied, bool):
            # bool("false") is True: a hand-edited export's answer read as satisfied.
            raise _bad_record(
                i, rec, f'field "data.satisfied" is {brief(satisfied)}, expected true or false'
            )
        if at <= until:
            ordered.append((float(at), _seq(rec), i, rec))
    ordered.sort(key=lambda t: (t[0], t[1], t[2]))
    runs: dict[str, RunFacts] = {}
    seen: set[str] = set()
    for at, _, _, rec in ordered:
        step_id = rec.get("id")
        if isinstance(step_id, str):
            # A step re-emitted after a crash (docs/operations.md, delivery guarantees)
            # repeats its id, the deadline timer's with a later time: the first counts
            # (t49: a timer's resolution counted at its repeat's time lengthened TTR).
            if step_id in seen:
                continue
            seen.add(step_id)
        action, run_id = rec["action"], str(rec["run_id"])
        data = rec.get("data") or {}
        if action == "run_created":
            if "grid_cell" not in data:
                continue
            runs[run_id] = RunFacts(
                run_id,
                str(data["grid_cell"]),
                str(data.get("department", "")),
                str(data.get("category", data.get("kind", ""))),
                at,
            )
            continue
        run = runs.get(run_id)
        if run is None:
            continue
        level = rec.get("level")
        # A notify step's level is whom it told (air-pollution tells the district at
        # once), not where the run stands: counted, such a run was "escalated to the
        # district" and "solved at the first line" at once (trial 22).
        if (
            action != "notify"
            and isinstance(level, str)
            and LEVEL_RANK.get(level, -1) > LEVEL_RANK[run.top_level]
        ):
            run.top_level = level
        if action == "acknowledged" and run.acknowledged_at is None:
            run.acknowledged_at = at
        elif action in ("resolved", "cancelled"):
            run.outcome, run.outcome_at, run.outcome_level = action, at, level
            run.resolved_at = at if action == "resolved" else None
            if action == "resolved" and run.first_resolved_at is None:
                run.first_resolved_at = at
        elif action == "reopened":
            run.reopened += 1
            run.outcome = run.outcome_at = run.outcome_level = run.resolved_at = None
        elif action == "report_covered":
            run.reports[str(rec.get("detail", ""))] = str(data.get("channel", ""))
        elif action == "answer" and "report_id" in data:
            run.answers[str(data["report_id"])] = data["satisfied"]
    return runs


def _record_id(rec: Mapping[str, Any]) -> str:
    value = rec.get("id")
    return value[:60] if isinstance(value, str) else brief(value)


def created_times(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Run id -> when it was created, for every run the records hold a readable
    ``run_created`` of (at any time: what an input covers)."""
    out: dict[str, float] = {}
    for rec in records:
        at = rec.get("at")
        if (
            rec.get("action") == "run_created"
            and isinstance(rec.get("data"), Mapping)
            and "grid_cell" in rec["data"]
            and isinstance(at, int | float)
            and epoch_seconds_fault(at) is None
        ):
            out[str(rec.get("run_id"))] = float(at)
    return out


def _seq(rec: Mapping[str, Any]) -> int:
    """The engine's sequence number in a step id ``<run id>:<n>`` (orders same-time steps)."""
    try:
        return int(str(rec.get("id", "")).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def quantile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation (numpy's default); None if empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def figures(runs: list[RunFacts], repeats: Mapping[str, bool]) -> dict[str, Any]:
    """Every figure of the module docstring for one scope's runs of one period."""
    resolved = [r for r in runs if r.outcome == "resolved"]
    tta = [r.acknowledged_at - r.created_at for r in runs if r.acknowledged_at is not None]
    ttr = [r.resolved_at - r.created_at for r in resolved if r.resolved_at is not None]
    answers = [ok for r in runs for ok in r.answers.values()]
    return {
        "found": len(runs),
        "reports": sum(len(r.reports) for r in runs),
        "resolved": len(resolved),
        "resolution_rate": _ratio(len(resolved), len(runs)),
        "tta_median": quantile(tta, 0.5),
        "tta_p90": quantile(tta, 0.9),
        "ttr_median": quantile(ttr, 0.5),
        "ttr_p90": quantile(ttr, 0.9),
        "first_line_share": _ratio(
            sum(1 for r in resolved if r.outcome_level in FIRST_LINE), len(resolved)
        ),
        "escalated_district": sum(1 for r in runs if r.top_level in HIGH_LEVELS),
        "reopened": sum(1 for r in runs if r.reopened),
        "answers": len(answers),
        "satisfaction_rate": _ratio(sum(answers), len(answers)),
        "repeat_reports": sum(len(r.reports) for r in runs if repeats.get(r.run_id)),
    }


def repeat_runs(runs: Iterable[RunFacts]) -> dict[str, bool]:
    """Run id -> whether an earlier run of the same (cell, category) was resolved before
    this one was created: some run created strictly before it whose first resolution is
    at or before its creation. One sort and one sweep per place, O(n log n): comparing
    every pair took 5 s for 8,000 runs in one cell and category, and grew with the
    square (a year of one street's noise reports; trial 26)."""
    out: dict[str, bool] = {}
    by_place: dict[tuple[str, str], list[RunFacts]] = {}
    for run in runs:
        by_place.setdefault((run.grid_cell, run.category), []).append(run)
    for same in by_place.values():
        same.sort(key=lambda r: r.created_at)
        earliest = math.inf  # the first resolution of the runs created before this one
        before = 0
        for run in same:
            while before < len(same) and same[before].created_at < run.created_at:
                resolved = same[before].first_resolved_at
                if resolved is not None:
                    earliest = min(earliest, resolved)
                before += 1
            out[run.run_id] = earliest <= run.created_at
    return out


def campaign_report(
    records: Iterable[Mapping[str, Any]],
    paths: Mapping[str, Mapping[str, str]],
    start: float,
    end: float,
    until: float | None = None,
) -> dict[str, Any]:
    """The report over ``[start, end)`` (epoch s) and the period of the same length
    before it. ``paths``: grid cell -> {level: ancestor cell id} (``Grid.path``); a cell
    not in it is counted at the city level only, as ``city: "?"``. Returns
    ``{"period", "previous_period", "rows": [{"scope", "name", "figures", "previous",
    "change"}], "runs_in_period", "input": {"runs", "first_created", "last_created"},
    "unplaced_cells": {cell: runs}}`` (the cells of runs in either period ``paths`` lacks)
    (runs count in the period they were created in; ``input`` covers every run in
    ``records``); rows sorted by scope (community first), then name. Raises
    ``CampaignError`` for an empty period or a bad record. ``until`` (default ``end``):
    the last moment whose records count (a rehearsal runs its cases to the end); the
    previous period's figures count records up to ``until`` minus the period's length
    (by default its own end), as a report of that period would."""
    if not end > start:
        raise CampaignError(f"the period is empty: from {start} to {end}")
    length = end - start
    prev_start = start - length
    records = list(records)
    until = end if until is None else until
    runs = runs_from_records(records, until=until)
    # The previous period is read as its own report would read it, by its own end (the
    # same time after it as ``until`` is after ``end``): read by ``end`` like this one, a
    # run of it resolved, acknowledged, reopened or answered only in this period counted
    # there, and its report for that period alone said otherwise.
    as_before = runs_from_records(records, until=until - length)
    repeats = repeat_runs(runs.values())
    groups: dict[tuple[str, str], tuple[list[RunFacts], list[RunFacts]]] = {}
    in_period = 0
    unplaced: Counter[str] = Counter()
    for run in runs.values():
        if prev_start <= run.created_at < start:
            if run.run_id not in as_before:
                continue  # created after the previous period's reading (an ``until`` < ``end``)
            slot, run = 1, as_before[run.run_id]
        elif start <= run.created_at < end:
            slot = 0
            in_period += 1
        else:
            continue
        path = paths.get(run.grid_cell)
        if path is None:
            unplaced[run.grid_cell] += 1
            path = {"city": "?"}
        keys = [(level, cell) for level, cell in path.items() if level in SCOPES]
        keys.append(("department", run.department or "?"))
        for key in keys:
            groups.setdefault(key, ([], []))[slot].append(run)
    rows = []
    order = {s: i for i, s in enumerate(SCOPES)}
    for (scope, name), (now, before) in sorted(
        groups.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])
    ):
        cur, prev = figures(now, repeats), figures(before, repeats)
        rows.append(
            {
                "scope": scope,
                "name": name,
                "figures": cur,
                "previous": prev,
                "change": {k: _diff(cur[k], prev[k]) for k in FIGURES},
            }
        )
    created = list(created_times(records).values())
    return {
        "period": {"from": start, "to": end},
        "previous_period": {"from": prev_start, "to": start},
        # Runs count in the period they were created in; what the input holds in all.
        "runs_in_period": in_period,
        "input": {
            "runs": len(created),
            "first_created": min(created) if created else None,
            "last_created": max(created) if created else None,
        },
        "rows": rows,
        # Cells of runs in either period that ``paths`` lacks: counted as city "?" only.
        "unplaced_cells": dict(sorted(unplaced.items())),
    }


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def figure_text(key: str, value: Any, none: str = "-") -> str:
    """One figure as a person reads it: rates and shares in %, times in minutes."""
    if value is None:
        return none
    if key.endswith(("_rate", "_share")):
        return f"{100 * value:.1f} %"
    if key.startswith(("tta", "ttr")):
        return f"{value / 60:.1f} min"
    return f"{value:g}" if isinstance(value, float) else str(value)


def change_text(key: str, value: Any) -> str:
    """A figure's change on the previous period: points for rates, minutes for times."""
    if value is None:
        return ""
    if key.endswith(("_rate", "_share")):
        return f"{100 * value:+.1f} pt"
    if key.startswith(("tta", "ttr")):
        return f"{value / 60:+.1f} min"
    return f"{value:+g}"


NEW = "new"  # the change shown when the previous period had no runs in a row's scope


def row_changes(row: Mapping[str, Any]) -> dict[str, str]:
    """Each figure's change text for one report row: ``change_text``, except against a
    previous period with no runs in the row's scope, where nothing is compared (a
    "+5" found against none, beside rates with no change, read as a trend): ``found``
    then says ``new`` and the other figures nothing."""
    if not (row.get("previous") or {}).get("found"):
        return {k: NEW if k == "found" else "" for k in FIGURES}
    return {k: change_text(k, row["change"][k]) for k in FIGURES}


# The columns a narrow terminal keeps, most wanted first (the rest: --wide, --json, --out).
NARROW_ORDER = (
    "found",
    "resolved",
    "resolution_rate",
    "tta_median",
    "ttr_median",
    "satisfaction_rate",
    "reopened",
    "first_line_share",
    "escalated_district",
    "reports",
    "answers",
    "repeat_reports",
    "tta_p90",
    "ttr_p90",
)
GAP = "  "
MIN_NAME = 12  # a name column narrower than this is no longer readable


def _cut(text: str, width: int, head: int) -> str:
    """``text`` in at most ``width`` terminal columns: its first ``head`` columns, "…",
    and as much of its end as fits. Columns, not characters: a wide (CJK) name cut by
    characters was twice as wide as its column and pushed the table past the terminal
    (trial 20: 91 columns at 80)."""
    if display_width(text) <= width:
        return text
    start, used = "", 0
    for c in text:
        if used + display_width(c) > head:
            break
        start, used = start + c, used + display_width(c)
    end, room = "", width - 1 - used
    for c in reversed(text[len(start) :]):
        if display_width(c) > room:
            break
        end, room = c + end, room - display_width(c)
    return start + "…" + end


def cut_labels(labels: Sequence[str], width: int) -> list[str]:
    """``labels`` cut to at most ``width`` terminal columns (>= 2) each, in the middle: the
    start and the end kept around a "…", since ids of one place often share a long start
    and differ at the end (nyc-cb-10-queens-…). Labels that would still look the same
    keep less of their start and more of their end, down to "…" and the end alone."""
    first = (width - 1) // 2
    cut = [_cut(t, width, first) for t in labels]
    for head in range(first - 1, -1, -1):
        seen = Counter(cut)
        clash = [i for i, c in enumerate(cut) if seen[c] > 1 and display_width(labels[i]) > width]
        if not clash:
            break
        for i in clash:
            cut[i] = _cut(labels[i], width, head)
    return cut


def utc(ts: Any) -> str:
    """Epoch seconds as ``2024-05-27 00:00 UTC`` ("?" for no number); a time outside
    the years 1 to 9999 as ``before 0001-01-01 00:00 UTC`` or ``after 9999-12-31 23:59
    UTC``. The previous period is computed, not given: ``--from 0001-01-01`` puts its
    start thousands of years before the year 1, and the HTML page, which shows it, ended
    in "unexpected ValueError: year -9998 is out of range" (exit 70)."""
    from datetime import UTC, datetime

    if not isinstance(ts, int | float):
        return "?"
    try:
        when = datetime.fromtimestamp(ts, UTC)
    except (ValueError, OverflowError, OSError):
        return "before 0001-01-01 00:00 UTC" if ts < 0 else "after 9999-12-31 23:59 UTC"
    return f"{day(when)} {when:%H:%M} UTC"


def render_text(report: Mapping[str, Any], width: int | None = None) -> str:
    """The report as plain-text tables, one per scope, a row per area or department and a
    column per figure (its change on the previous period in brackets). ``width`` (in
    characters, e.g. the terminal's): keep only the figures that fit, in the order of
    ``NARROW_ORDER``, the same ones in every table, and say which were left out; names
    longer than what is left are cut in the middle with "…" (``cut_labels``). None:
    every figure."""
    period = report.get("period", {})
    lines = [
        f"runs counted by the date they were created, {utc(period.get('from'))} to "
        f"{utc(period.get('to'))}; change on the previous period of the same length in "
        f"brackets, ({NEW}) where it had no runs there to compare with (definitions: "
        "docs/citizens.md)"
    ]
    tables: list[tuple[str, list[tuple[str, dict[str, str]]]]] = []
    for scope in SCOPES:
        rows = [r for r in report["rows"] if r["scope"] == scope]
        if not rows:
            continue
        body = []
        for row in rows:
            cells = {}
            changes = row_changes(row)
            for k in FIGURES:
                delta = changes[k]
                cells[k] = figure_text(k, row["figures"][k]) + (f" ({delta})" if delta else "")
            # A department is what a record or an incident file said: a control
            # character in it is shown as its escape, not sent to the terminal.
            body.append((one_line(str(row["name"])), cells))
        tables.append((scope, body))

    def column(k: str) -> int:  # a figure's width over every table, header included
        return max([len(k), *(len(c[k]) for _, body in tables for _, c in body)])

    names = max(
        [len(scope) for scope, _ in tables] + [display_width(n) for _, b in tables for n, _ in b]
    )
    names = max(names, 1)
    shown: list[str] = list(FIGURES)
    if width is not None:
        room = width - min(names, MIN_NAME)
        shown = []
        for k in NARROW_ORDER:
            if len(GAP) + column(k) <= room:
                shown.append(k)
                room -= len(GAP) + column(k)
        shown = [k for k in FIGURES if k in shown]  # keep the report's own order
        names = min(names, max(MIN_NAME, width - sum(len(GAP) + column(k) for k in shown)))
        left = [k for k in FIGURES if k not in shown]
        if left:
            lines.append(
                f"{len(left)} of {len(FIGURES)} figures left out to fit {width} columns "
                f"({', '.join(left)}): --wide shows every one, --json or --out all of them"
            )
        lines = [wrapped for line in lines for wrapped in textwrap.wrap(line, max(width, 20))]

    for scope, body in tables:
        labels = cut_labels([scope.upper(), *(name for name, _ in body)], names)
        table = [(labels[0], *(k.upper() for k in shown))]
        table += [
            (label, *(cells[k] for k in shown))
            for label, (_, cells) in zip(labels[1:], body, strict=True)
        ]
        widths = [max(display_width(r[i]) for r in table) for i in range(len(table[0]))]
        lines.append("")
        lines.extend(
            GAP.join(pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
        )
    return "\n".join(lines)


def render_html(
    report: Mapping[str, Any], title: str = "citybrain campaign report", page: bool = True
) -> str:
    """The report as one self-contained HTML page: a table per scope. ``page`` False:
    the same without the page's head (doctype, title, style), for a further report on
    one page (a rehearsal's versions: several whole pages in one file were several
    doctypes and titles, trial 22)."""

    def cell(key: str, value: Any) -> str:
        return figure_text(key, value, none="&ndash;")

    def change(delta: str) -> str:
        return f" <small>({html.escape(delta)})</small>" if delta else ""

    period = report.get("period", {})
    previous = report.get("previous_period", {})

    head = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "th:first-child,td:first-child{text-align:left}small{color:#666}</style>",
    ]
    unplaced = report.get("unplaced_cells") or {}
    parts = [
        *(head if page else []),
        f"<h1>{html.escape(title)}</h1>",
        # The period, as the text tables' first line gives it (the page said none but
        # the title's --from/--to as typed, and a rehearsal's page not even that).
        f"<p>Period: {html.escape(utc(period.get('from')))} to "
        f"{html.escape(utc(period.get('to')))}; the previous period: "
        f"{html.escape(utc(previous.get('from')))} to {html.escape(utc(previous.get('to')))}."
        "</p>",
        "<p>Runs are counted by the date they were created. "
        "Change against the previous period of the same length in brackets; "
        f"({NEW}) where that period had no runs to compare with. "
        "Definitions: docs/citizens.md.</p>",
    ]
    if unplaced:
        # As the text report's warning says (the page said nothing of them).
        listed = ", ".join(f"{html.escape(str(c))} ({n})" for c, n in unplaced.items())
        parts.append(
            "<p>Runs in cells the grid lacks, counted at the city level only, as city "
            f"&ldquo;?&rdquo; (cell, runs): {listed}.</p>"
        )
    for scope in SCOPES:
        rows = [r for r in report["rows"] if r["scope"] == scope]
        if not rows:
            continue
        parts.append(f"<h2>By {scope}</h2><table><tr><th>{scope}</th>")
        parts.extend(f"<th>{k.replace('_', ' ')}</th>" for k in FIGURES)
        parts.append("</tr>")
        for row in rows:
            parts.append(f"<tr><td>{html.escape(row['name'])}</td>")
            changes = row_changes(row)
            parts.extend(
                f"<td>{cell(k, row['figures'][k])}{change(changes[k])}</td>" for k in FIGURES
            )
            parts.append("</tr>")
        parts.append("</table>")
    return "\n".join(parts) + "\n"
