"""What-if reports: one self-contained HTML file about a finished replay.

The known events it covers, a map per city (cells and sensors drawn from their grid
coordinates, alerts coloured by severity; no tile server), the alert timeline per data set
and city, citizen reports in the period, runs and escalations by grid level, times to
acknowledge and resolve, and per-sensor charts with units and the alert episodes marked.
Inline SVG and a few lines of script, no external assets: a coordinator can mail it, open
it offline, or compare two detectors or playbooks by replaying the same history twice.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from citybrain.campaign import quantile
from citybrain.resent import worker_duplicates
from citybrain.text import agreeing, counted, duration
from playbooks.grid import Grid
from streams.errors import MISSING, EventError
from streams.events import (
    IncidentReport,
    Reading,
    alert_fields,
    alert_time,
    epoch_seconds_fault,
)
from streams.feeds import read_canonical

# pandas (0.3 s) is imported by the functions that build frames: the operator's API
# commands (runs, silences) load this module for its hints on an unreachable worker.
if TYPE_CHECKING:
    import pandas as pd

MAX_SENSOR_CHARTS = 24
W, H, PAD = 640.0, 150.0, 28.0
SEVERITIES = ("minor", "major", "critical")  # mildest first
MIN_SPAN = 0.02  # degrees, about 2 km: the smallest area a map shows
WHAT_IF = (
    "A what-if replay feeds recorded history through the pipeline as if it were happening "
    "now, so you can see which alerts, playbook runs and escalations today's detectors and "
    "playbooks would have produced, and compare settings on the same past."
)


@dataclass
class Context:
    """What the report knows besides the topics: the grid (names, cities, positions),
    which file each sensor and each incident cell came from, the citizen reports, and
    the known events with whether they were alerted on."""

    grid: Grid | None = None
    sensor_files: dict[str, str] = field(default_factory=dict)
    incidents: pd.DataFrame | None = None
    known_events: list[dict[str, Any]] = field(default_factory=list)
    # Report id -> the --data file that holds it: a burst alert's file is its reports'.
    report_files: dict[str, str] = field(default_factory=dict)
    # Citizen reports of the files the worker dropped as re-sent (duplicates).
    repeated_reports: int = 0
    # What the figures are limited to (FromFiles.note): shown under the event time.
    scope: str = ""


# What the report calls events the topics hold that no --data file holds.
OTHER_DATA = "data not among --data"


@dataclass(frozen=True)
class TopicMessage:
    """One Kafka message as the report reads it back: where it sits and its bytes."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


class NotReplayedError(ValueError):
    """None of the --data files' events are in the topics: the report would describe
    data that were never replayed under that prefix."""


@dataclass
class Replayed:
    """What the worker accepted from a prefix's input topics, and how much of each
    --data file that is.

    ``readings``: ts (epoch s), sensor_id, kind, value, unit, file (the --data file that
    holds the reading, or ``OTHER_DATA``), one row per sensor and event time;
    ``incidents``: ts, report_id, category, grid_cell, file, one row per report the worker
    counted (``citybrain_incidents_total``: a re-sent one, which it drops as a duplicate,
    is not among them); ``repeated_reports``: the re-sent ones the worker dropped, of the
    --data files' reports; ``coverage``: per --data file name with events, (distinct
    events in the file: readings by sensor and time, reports by id, cell, category and
    time; of those, how many the topics hold)."""

    readings: pd.DataFrame
    incidents: pd.DataFrame
    repeated_reports: int
    coverage: dict[str, tuple[int, int]]
    elsewhere: int = 0  # alerts on sensors no --data file holds (set by the caller)
    worker_ran: bool = True  # whether the prefix has alerts or steps (set by the caller)

    def unreplayed(self) -> list[tuple[str, int]]:
        """The --data files none of whose events the topics hold: (name, events)."""
        return [(name, n) for name, (n, held) in self.coverage.items() if n and not held]

    def partly(self) -> list[tuple[str, int, int]]:
        """The --data files only some of whose events the topics hold."""
        return [(name, n, held) for name, (n, held) in self.coverage.items() if 0 < held < n]


def _key(ts: float) -> float:
    # Event times to the millisecond: a file's text and the replayed ISO text of the same
    # time parse to floats that may differ in the last bits.
    return round(float(ts), 3)


def accepted_events(
    readings: Iterable[TopicMessage],
    incidents: Iterable[TopicMessage],
    dead_letters: set[str],
    grid: Grid,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The readings and citizen reports of a prefix's ``readings`` and ``incidents``
    topics that the worker accepted: read as it reads them (``EventValidator`` against
    ``grid``), less those whose origin (``topic/partition/offset[#index]``, the
    ``citybrain.error.origin`` header) is in ``dead_letters``. Returns (readings: ts,
    sensor_id, kind, value, unit, one per sensor and event time; incidents: ts,
    report_id, category, grid_cell, in topic order). Never raises for a message's
    content: what the worker could not read it dead-lettered, and so is left out here."""
    import pandas as pd

    from streams.events import EventValidator

    validator = EventValidator(grid, max_future_skew=math.inf)
    rows: list[tuple[float, str, str, float, str]] = []
    for m in readings:
        origin = f"{m.topic}/{m.partition}/{m.offset}"
        if origin in dead_letters:
            continue
        try:
            packed, items = validator.readings(m.value or b"", math.inf)
        except Exception:  # the worker dead-lettered it (or will): not replayed data
            continue
        for index, item in enumerate(items):
            if not isinstance(item, Reading) or (packed and f"{origin}#{index}" in dead_letters):
                continue
            rows.append((item.ts, item.sensor_id, item.kind, item.value, item.unit))
    frame = pd.DataFrame(rows, columns=["ts", "sensor_id", "kind", "value", "unit"])
    frame = frame.drop_duplicates(["sensor_id", "ts"]).reset_index(drop=True)
    reports: list[tuple[float, str, str, str]] = []
    for m in incidents:
        if f"{m.topic}/{m.partition}/{m.offset}" in dead_letters:
            continue
        try:
            r = validator.incident(m.value or b"", math.inf)
        except Exception:  # dead-lettered by the worker
            continue
        reports.append((r.ts, r.report_id, r.category, r.grid_cell))
    return frame, pd.DataFrame(reports, columns=["ts", "report_id", "category", "grid_cell"])


def match_files(
    topic_readings: pd.DataFrame,
    topic_incidents: pd.DataFrame,
    file_readings: pd.DataFrame,
    file_incidents: pd.DataFrame,
    bucket_seconds: float = 1800.0,
) -> Replayed:
    """The topics' accepted events (``accepted_events``) with the --data file each came
    from (a reading by sensor and event time, a report by its id, cell, category and
    event time; ``OTHER_DATA`` for neither), the reports the worker dropped as re-sent
    left out (``citybrain.resent``; ``bucket_seconds``: the worker's
    ``CITYBRAIN_BURST_BUCKET_SECONDS``), and per file how many of its events the topics
    hold. ``file_*`` are ``readings_frame`` and ``incidents_frame`` of the --data files.
    ``topic_incidents`` must be in topic order (a cell's reports in offset order)."""
    import pandas as pd

    coverage: dict[str, tuple[int, int]] = {}
    held = set(zip(topic_readings["sensor_id"], topic_readings["ts"].map(_key), strict=True))
    source: dict[tuple[str, float], str] = {}
    for name, frame in file_readings.groupby("file", sort=False):
        keys = list(zip(frame["sensor_id"], frame["ts"].map(_key), strict=True))
        for key in keys:
            source.setdefault(key, str(name))
        coverage[str(name)] = (len(set(keys)), sum(1 for k in set(keys) if k in held))
    readings = topic_readings.copy()
    readings["file"] = [
        source.get((sid, _key(ts)), OTHER_DATA)
        for sid, ts in zip(readings["sensor_id"], readings["ts"], strict=True)
    ]
    topic_keys = [_report_key(r) for r in topic_incidents.itertuples(index=False)]
    by_key: dict[tuple[str, str, str, float], str] = {}
    for name, frame in file_incidents.groupby("file", sort=False):
        distinct = {_report_key(r) for r in frame.itertuples(index=False)}
        for rkey in distinct:
            by_key.setdefault(rkey, str(name))
        n, in_topics = coverage.get(str(name), (0, 0))
        coverage[str(name)] = (n + len(distinct), in_topics + len(distinct & set(topic_keys)))
    incidents = topic_incidents.copy()
    incidents["file"] = [by_key.get(key, OTHER_DATA) for key in topic_keys]
    # Left out as the worker leaves them out: its own rule, over the topic in its order.
    dropped = worker_duplicates(
        zip(
            incidents["ts"],
            incidents["report_id"],
            incidents["category"],
            incidents["grid_cell"],
            strict=True,
        ),
        bucket_seconds,
    )
    again = pd.Series(dropped, index=incidents.index, dtype=bool)
    repeated = int((again & (incidents["file"] != OTHER_DATA)).sum())
    return Replayed(readings, incidents[~again].reset_index(drop=True), repeated, coverage)


def _report_key(row: Any) -> tuple[str, str, str, float]:
    """A citizen report as a file and a topic both hold it: id, cell, category, time."""
    return (str(row.report_id), str(row.grid_cell), str(row.category), _key(row.ts))


@dataclass
class FromFiles:
    """What of a prefix's topics comes from the --data files (``limit_to_files``): the
    readings and reports (``Replayed``'s frames, rows of ``OTHER_DATA`` left out), the
    alert and step messages that come from them, and how much was left out."""

    readings: pd.DataFrame
    incidents: pd.DataFrame
    alerts: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    other_readings: int = 0
    other_incidents: int = 0
    other_alerts: int = 0
    other_runs: int = 0
    repeated_reports: int = 0

    def note(self, files: Iterable[str], prefix: str) -> str:
        """The page's sentence on what it counts (trial 6: it counted everything under
        the prefix, whatever --data said)."""
        names = ", ".join(files)
        left = [
            counted(n, noun)
            for n, noun in (
                (self.other_incidents, "citizen report"),
                (self.other_readings, "reading"),
                (self.other_alerts, "alert"),
                (self.other_runs, "run"),
            )
            if n
        ]
        text = (
            f"Every figure is limited to the events of the --data files ({names}) the worker "
            "accepted: their readings and citizen reports, and the alerts, runs and "
            "escalations that come from them (a sensor alert on a file's sensor within the "
            "times of its readings there, a burst alert raised by a file's reports, a run "
            "of such an alert)."
        )
        if left:
            text += f" Left out: {', '.join(left)} under prefix {prefix} that come from other data."
        if self.repeated_reports:
            text += (
                f" {counted(self.repeated_reports, 're-sent report')} of the files "
                f"{agreeing(self.repeated_reports, 'was', 'were')} left out as the worker "
                "leaves them out (the same report id in the same cell and category within "
                "a day: a duplicate)."
            )
        return text


def limit_to_files(
    replayed: Replayed,
    alerts: Iterable[dict[str, Any]],
    steps: Iterable[dict[str, Any]],
    bucket_seconds: float = 1800.0,
) -> FromFiles:
    """The part of a prefix's topics that comes from the --data files: their readings and
    reports (``replayed``: ``match_files``), the alerts those raised (a sensor alert whose
    sensor has readings from the files at and around its start, between their first and
    last event time; a burst alert one of whose opening reports is a file's report as the
    worker saw it: the same id, cell and category, with an event time in the alert's
    window, ``started_at`` to ``started_at + bucket_seconds``), and the steps of the runs
    with at least one such alert (``run_created``'s ``alert_id`` and each
    ``alert_joined``'s) from the first step that brought one on: a run a file's alert
    only joined keeps its ``run_created`` step (it is still counted as a run) but not
    the escalations, acknowledgements or resolutions from before the join (trial 7: a
    re-sent report two days later, in no alert, was given its id's alert and run, and a
    burst that joined an open run was given the run's earlier escalations). ``alerts``
    and ``steps`` are the topics' messages as dicts, in topic order;
    ``bucket_seconds`` is the worker's ``CITYBRAIN_BURST_BUCKET_SECONDS``. Pure."""
    readings = replayed.readings[replayed.readings["file"] != OTHER_DATA]
    incidents = replayed.incidents[replayed.incidents["file"] != OTHER_DATA]
    spans = {
        str(sid): (_key(ts.min()), _key(ts.max()))
        for sid, ts in readings.groupby("sensor_id")["ts"]
    }
    # A report as the worker saw it: the same id sent again days later is another event.
    file_reports: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for rid, cell, category, ts in zip(
        incidents["report_id"],
        incidents["grid_cell"],
        incidents["category"],
        incidents["ts"],
        strict=True,
    ):
        file_reports[(str(rid), str(cell))].append((str(category), _key(ts)))

    def opened_by_file(doc: dict[str, Any]) -> bool:
        start = _key(_ts(doc["started_at"]))
        category = (doc.get("labels") or {}).get("category")
        cell = str(doc.get("grid_cell"))
        return any(
            (category is None or category == cat) and start - 1.0 <= ts <= start + bucket_seconds
            for r in doc.get("reports") or ()
            if isinstance(r, dict)
            for cat, ts in file_reports.get((str(r.get("report_id")), cell), ())
        )

    alert_docs = list(alerts)
    mine: dict[str, bool] = {}
    for doc in alert_docs:
        aid = doc["alert_id"]
        sensor = doc.get("sensor_id") or ""
        if sensor:
            if aid not in mine:
                span = spans.get(sensor)
                start = _key(_ts(doc["started_at"]))
                mine[aid] = span is not None and span[0] <= start <= span[1]
        elif not doc.get("follow_up"):
            mine[aid] = mine.get(aid, False) or opened_by_file(doc)
        else:
            mine.setdefault(aid, False)
    step_docs = list(steps)
    run_alerts: dict[str, set[str]] = defaultdict(set)
    for st in step_docs:
        if st.get("action") == "run_created" and st.get("alert_id"):
            run_alerts[st["run_id"]].add(str(st["alert_id"]))
        elif st.get("action") == "alert_joined" and st.get("detail"):
            run_alerts[st["run_id"]].add(str(st["detail"]))
    runs = {run for run, ids in run_alerts.items() if any(mine.get(a) for a in ids)}
    # Per run, in topic order: its steps from the one that brought a file's alert on.
    from_files: set[str] = set()
    kept: list[dict[str, Any]] = []
    for st in step_docs:
        run = st.get("run_id")
        if run not in runs:
            continue
        brought = (st.get("action") == "run_created" and mine.get(str(st.get("alert_id")))) or (
            st.get("action") == "alert_joined" and mine.get(str(st.get("detail")))
        )
        if brought:
            from_files.add(str(run))
        if brought or run in from_files or st.get("action") == "run_created":
            kept.append(st)
    return FromFiles(
        readings=readings.reset_index(drop=True),
        incidents=incidents.reset_index(drop=True),
        alerts=[d for d in alert_docs if mine.get(d["alert_id"])],
        steps=kept,
        other_readings=len(replayed.readings) - len(readings),
        other_incidents=len(replayed.incidents) - len(incidents),
        other_alerts=sum(1 for v in mine.values() if not v),
        other_runs=len(run_alerts) - len(runs),
        repeated_reports=replayed.repeated_reports,
    )


def event_period(readings: pd.DataFrame, incidents: pd.DataFrame | None) -> str:
    """The event time the report shows, one range per data set that has rows
    (``readings 2019-05-12 00:00 - 2019-05-13 23:55 UTC; citizen reports ...``), and
    per file, earliest first, when a ``file`` column names more than one (``readings
    a.csv 2016-01-28 00:00 - 2016-02-10 23:00 UTC, b.csv 2019-05-06 ...``): the data
    sets of a replay need not overlap, so one range could span years no data covers."""
    parts = [
        f"{name} {_ranges(frame)}"
        for name, frame in (("readings", readings), ("citizen reports", incidents))
        if frame is not None and len(frame)
    ]
    return "; ".join(parts) if parts else "none: no readings and no citizen reports"


def _ranges(frame: pd.DataFrame) -> str:
    def span(ts: pd.Series) -> str:
        return f"{_fmt(ts.min())} - {_fmt(ts.max())} UTC"

    if "file" not in frame.columns or frame["file"].nunique() < 2:
        return span(frame["ts"])
    files = sorted(frame.groupby("file")["ts"], key=lambda item: item[1].min())
    return ", ".join(f"{name} {span(ts)}" for name, ts in files)


def _ts(text: str) -> float:
    # The worker's one reading of a time (``alert_fields`` passed it so): fromisoformat
    # here refused the lowercase "z" the worker takes, and ``report`` ended in exit 70.
    return alert_time(text, "started_at", stored=True)


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    """``45 s``, ``4.6 min`` (minutes to a tenth: medians are compared), then as every
    span is said (``text.duration``: hours, days, years; 100 days was "2400.0 h")."""
    if 120 <= seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return duration(seconds)


def sensor_chart(
    sensor_id: str,
    kind: str,
    series: pd.DataFrame,
    episodes: list[tuple[float, float, str]],
    unit: str = "",
) -> str:
    """An SVG line chart of one sensor with its alert episodes shaded by severity; the
    axis labels carry ``unit``."""
    t = series["ts"].to_numpy(dtype=float)
    v = series["value"].to_numpy(dtype=float)
    t0, t1 = float(t.min()), float(t.max()) or 1.0
    lo, hi = float(v.min()), float(v.max())
    # Halves: a kind may range over every finite number, and 1e308 - -1e308 is inf, which
    # made every point "nan" and the chart a blank box (helper t52).
    span_t, half_span = max(t1 - t0, 1.0), max(hi / 2 - lo / 2, 5e-10)

    def x(ts: float) -> float:
        return PAD + (ts - t0) / span_t * (W - 2 * PAD)

    def y(val: float) -> float:
        return H - PAD - (val / 2 - lo / 2) / half_span * (H - 2 * PAD)

    step = max(1, len(t) // 1500)  # enough points for the eye, small files
    points = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(t[::step], v[::step], strict=False))
    shades = "".join(
        f'<rect class="episode {html.escape(sev)}" x="{x(s):.1f}" y="{PAD / 2:.1f}" '
        f'width="{max(x(e) - x(s), 2.0):.1f}" height="{H - 1.5 * PAD:.1f}">'
        f"<title>{html.escape(sev)} alert {_fmt(s)} - {_fmt(e)}</title></rect>"
        for s, e, sev in episodes
    )
    return (
        f'<figure class="sensor" data-sensor="{html.escape(sensor_id)}">'
        f"<figcaption>{html.escape(sensor_id)} <small>{html.escape(kind)}"
        f"{' in ' + html.escape(unit) if unit else ''}, {counted(len(episodes), 'alert')}</small>"
        "</figcaption>"
        f'<svg viewBox="0 0 {W:.0f} {H:.0f}" role="img" aria-label="{html.escape(sensor_id)}">'
        f'{shades}<polyline class="line" points="{points}"/>'
        f'<text x="{PAD}" y="{H - 6}">{_fmt(t0)}</text>'
        f'<text x="{W - PAD}" y="{H - 6}" text-anchor="end">{_fmt(t1)}</text>'
        f'<text x="2" y="{PAD - 6}">{hi:g} {html.escape(unit)}</text>'
        f'<text x="2" y="{H - PAD}">{lo:g} {html.escape(unit)}</text>'
        f"</svg></figure>"
    )


def timelines(
    alerts: list[dict[str, Any]], gap: float = 30 * 86400, context: Context | None = None
) -> str:
    """One timeline per stretch of history: replays of data sets years apart would
    otherwise squeeze each into a sliver of one axis. Each is captioned with its cities
    and data sets."""
    if not alerts:
        return "<p>No alerts.</p>"
    context = context or Context()
    clusters: list[list[dict[str, Any]]] = [[alerts[0]]]
    for a in alerts[1:]:
        if a["start"] - max(b["end"] for b in clusters[-1]) > gap:
            clusters.append([])
        clusters[-1].append(a)
    out = []
    for cluster in clusters:
        cities = sorted({_city(context.grid, a["grid_cell"]) for a in cluster} - {""})
        by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for a in cluster:
            by_file[_alert_file(context, a)].append(a)
        # Each file with its own alerts' times: a file never claims another file's alert.
        parts = [
            f"{name} {_fmt(min(a['start'] for a in mine))} - "
            f"{_fmt(max(a['end'] for a in mine))} UTC, {counted(len(mine), 'alert')}"
            for name, mine in sorted(
                by_file.items(), key=lambda item: (item[0] == OTHER_DATA, item[0])
            )
        ]
        caption = f"{', '.join(cities) or 'unknown city'}: {'; '.join(parts)}"
        out.append(
            f'<figure class="timeline"><figcaption>{html.escape(caption)}</figcaption>'
            f"{timeline(cluster)}</figure>"
        )
    return "".join(out)


def _alert_file(context: Context, alert: dict[str, Any]) -> str:
    """The --data file an alert came from: a sensor's file, or for a citizen-report burst
    the file holding most of its reports; ``OTHER_DATA`` when none of them does."""
    if alert["sensor_id"]:
        return context.sensor_files.get(alert["sensor_id"]) or OTHER_DATA
    files = Counter(
        context.report_files[rid] for rid in alert.get("reports", ()) if rid in context.report_files
    )
    return files.most_common(1)[0][0] if files else OTHER_DATA


def _city(grid: Grid | None, cell_id: str) -> str:
    if grid is None or cell_id not in grid.cells:
        return ""
    cell = grid.cells[cell_id]
    while cell.parent is not None:
        cell = grid.cells[cell.parent]
    return cell.name


def timeline(alerts: list[dict[str, Any]]) -> str:
    """One row per alert kind, one bar per alert from its first to its last event time."""
    if not alerts:
        return "<p>No alerts.</p>"
    starts = [a["start"] for a in alerts]
    ends = [a["end"] for a in alerts]
    t0, t1 = min(starts), max(ends)
    span = max(t1 - t0, 1.0)
    kinds = sorted({a["kind"] for a in alerts})
    row = 22.0
    height = row * len(kinds) + 30
    bars = []
    for a in alerts:
        x0 = 150 + (a["start"] - t0) / span * (W - 170)
        width = max((a["end"] - a["start"]) / span * (W - 170), 3.0)
        yy = 10 + kinds.index(a["kind"]) * row
        # The severity is what the alert message said: escaped as every other text
        # from the topics (trial 29: '"><script>' in it reached the page as markup).
        severity = html.escape(str(a["severity"]))
        bars.append(
            f'<rect class="bar {severity}" x="{x0:.1f}" y="{yy:.1f}" '
            f'width="{width:.1f}" height="{row - 6:.1f}"><title>'
            f"{html.escape(a['subject'])}: {severity}, "
            f"{_fmt(a['start'])} - {_fmt(a['end'])}</title></rect>"
        )
    labels = "".join(
        f'<text x="4" y="{10 + i * row + 12:.1f}">{html.escape(k)}</text>'
        for i, k in enumerate(kinds)
    )
    return (
        f'<svg class="timeline" viewBox="0 0 {W:.0f} {height:.0f}">{labels}'
        f'{"".join(bars)}<text x="150" y="{height - 4:.0f}">{_fmt(t0)}</text>'
        f'<text x="{W - 20}" y="{height - 4:.0f}" text-anchor="end">{_fmt(t1)}</text>'
        f"</svg>"
    )


def bars(counts: Counter[str], title: str) -> str:
    if not counts:
        return f"<p>No {html.escape(title.lower())}.</p>"
    top = max(counts.values())
    rows = "".join(
        f'<tr><th>{html.escape(k)}</th><td><span class="hbar" style="width:'
        f'{120 * v / top:.0f}px"></span> {v}</td></tr>'
        for k, v in counts.most_common()
    )
    return f'<table class="bars"><caption>{html.escape(title)}</caption>{rows}</table>'


def severity_legend() -> str:
    items = "".join(
        f'<span class="key"><svg class="swatch" viewBox="0 0 12 12"><rect class="bar {sev}" '
        f'width="12" height="12"/></svg>{sev}</span>'
        for sev in SEVERITIES
    )
    return (
        f'<p class="legend">Severity: {items}<span class="key"><svg class="swatch" '
        'viewBox="0 0 12 12"><circle class="quiet" cx="6" cy="6" r="5"/></svg>no alert'
        "</span></p>"
    )


def _worst(severities: Iterable[str]) -> str:
    ranked = [s for s in severities if s in SEVERITIES]
    return max(ranked, key=SEVERITIES.index) if ranked else ""


def _cell_points(geometry: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """The rings of a GeoJSON Polygon or MultiPolygon as (lon, lat) lists."""
    polygons = geometry["coordinates"]
    if geometry["type"] == "Polygon":
        polygons = [polygons]
    return [[(float(p[0]), float(p[1])) for p in ring] for poly in polygons for ring in poly]


def _east_of(lons: Iterable[float]) -> Callable[[float], float]:
    """How to place a longitude on one city's map: as it is, or, for a city across the
    antimeridian (Fiji, Chukotka: points at 179.9 and -179.9), west longitudes moved
    360 degrees east, so its points lie side by side, not a world apart (trial 20: two
    gauges 2 km apart were drawn at the map's two ends). A city spans less than half
    the globe, so a spread of more than 180 degrees can only be that."""
    seen = list(lons)
    if not seen or max(seen) - min(seen) <= 180:
        return lambda lon: lon
    return lambda lon: lon + 360 if lon < 0 else lon


def maps(alerts: list[dict[str, Any]], grid: Grid | None, size: float = 360.0) -> str:
    """One SVG map per city: cell boundaries (GeoJSON) or cell points, and sensors at
    their coordinates, coloured by the worst severity of their alerts (a citizen-report
    burst colours its cell). Equirectangular, scaled by cos(latitude) so a city keeps its
    shape; no tiles, no network. Alerts on things without coordinates are counted below;
    with no alerts there is nothing to map, and the page says so."""
    if grid is None:
        return "<p>No grid given: no map.</p>"
    if not alerts:
        # Maps show cities something alerted in (trial 7: a file that raised none read
        # "No coordinates in the grid" though the same grid draws maps).
        return "<p>No alerts to map.</p>"
    by_sensor: dict[str, list[str]] = defaultdict(list)
    by_cell: dict[str, list[str]] = defaultdict(list)
    for a in alerts:
        if a["sensor_id"]:
            by_sensor[a["sensor_id"]].append(a["severity"])
        else:
            by_cell[a["grid_cell"]].append(a["severity"])
    # Only cities something was replayed or alerted in.
    wanted = {_city(grid, a["grid_cell"]) for a in alerts}
    figures, unplaced = [], []
    cities = [c for c in grid.cells.values() if c.parent is None and c.name in wanted]
    for city in sorted(cities, key=lambda c: c.name):
        cells = [c for c in grid.cells.values() if _city(grid, c.id) == city.name]
        sensors = [s for s in grid.sensors.values() if _city(grid, s.cell) == city.name]
        shapes = [(c, _cell_points(c.geometry)) for c in cells if c.geometry]
        points = [
            (c.lat, c.lon)
            for c in cells
            if c.lat is not None
            and c.lon is not None
            and (c.id in by_cell or c.level == "community")
        ]
        points += [(s.lat, s.lon) for s in sensors if s.lat is not None and s.lon is not None]
        points += [(lat, lon) for _, rings in shapes for ring in rings for lon, lat in ring]
        unplaced += [s.id for s in sensors if s.lat is None and s.id in by_sensor]
        unplaced += [
            c.id for c in cells if c.id in by_cell and c.lat is None and c.geometry is None
        ]
        if not points:
            continue
        east = _east_of(p[1] for p in points if p[1] is not None)
        lats = [p[0] for p in points if p[0] is not None]
        lons = [east(p[1]) for p in points if p[1] is not None]
        lat0 = math.radians((min(lats) + max(lats)) / 2)
        # At least MIN_SPAN degrees each way, centred: one gauge still gets a readable map.
        for values in (lats, lons):
            middle, half = (min(values) + max(values)) / 2, MIN_SPAN / 2
            values += [middle - half, middle + half]
        span_x = (max(lons) - min(lons)) * math.cos(lat0)
        span_y = max(lats) - min(lats)
        scale = (size - 40) / max(span_x, span_y)
        width, height = span_x * scale + 40, span_y * scale + 40

        def xy(lat: float, lon: float) -> tuple[float, float]:
            x = 20 + (east(lon) - min(lons)) * math.cos(lat0) * scale  # noqa: B023
            y = 20 + (max(lats) - lat) * scale  # noqa: B023
            return x, y

        body = []
        for cell, rings in shapes:
            d = " ".join(
                "M"
                + " L".join(f"{xy(lat, lon)[0]:.1f},{xy(lat, lon)[1]:.1f}" for lon, lat in ring)
                + "Z"
                for ring in rings
            )
            sev = _worst(by_cell.get(cell.id, []))
            body.append(
                f'<path class="cell {sev or "quiet"}" d="{d}"><title>{html.escape(cell.name)}'
                f"{': ' + counted(len(by_cell[cell.id]), 'alert') if cell.id in by_cell else ''}"
                "</title></path>"
            )
        for cell in cells:
            if cell.lat is None or cell.lon is None or cell.geometry:
                continue
            sev = _worst(by_cell.get(cell.id, []))
            if not sev and cell.level != "community":
                continue
            x, y = xy(cell.lat, cell.lon)
            body.append(
                f'<rect class="cellpoint {sev or "quiet"}" data-severity="{sev}" '
                f'x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8"><title>'
                f"{html.escape(cell.name)}"
                f"{': ' + counted(len(by_cell[cell.id]), 'citizen-report alert') if sev else ''}"
                "</title></rect>"
            )
        for sensor in sorted(
            sensors,
            key=lambda s: (
                SEVERITIES.index(_worst(by_sensor.get(s.id, []))) if by_sensor.get(s.id) else -1
            ),
        ):
            if sensor.lat is None or sensor.lon is None:
                continue
            sev = _worst(by_sensor.get(sensor.id, []))
            x, y = xy(sensor.lat, sensor.lon)
            body.append(
                f'<circle class="sensor {sev or "quiet"}" data-severity="{sev}" cx="{x:.1f}" '
                f'cy="{y:.1f}" r="{6 if sev else 4}"><title>{html.escape(sensor.id)}'
                + (f": {counted(len(by_sensor[sensor.id]), 'alert')}, worst {sev}" if sev else "")
                + "</title></circle>"
            )
        km = span_y * 111.2  # one degree of latitude is about 111.2 km
        figures.append(
            f'<figure class="map" data-city="{html.escape(city.name)}">'
            f"<figcaption>{html.escape(city.name)} <small>({km:,.1f} km north to south)"
            f"</small></figcaption>"
            f'<svg class="map" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-label="map of {html.escape(city.name)}">{"".join(body)}</svg></figure>'
        )
    note = (
        f"<p>Alerts on {counted(len(unplaced), 'sensor or cell', 'sensors or cells')} "
        "without coordinates in the grid "
        f"are not on the maps: {html.escape(', '.join(sorted(unplaced)))}.</p>"
        if unplaced
        else ""
    )
    return (
        ('<div class="maps">' + "".join(figures) + "</div>" + note)
        if figures
        else ("<p>No coordinates in the grid: no map.</p>" + note)
    )


REOPEN_ACTIONS = frozenset({"reopened", "reopen"})


def alert_record(doc: dict[str, Any]) -> None:
    """Check a message of an alerts topic is an alert the reports can read: the worker's
    own check (``streams.events.alert_fields``) and a ``started_at``. Raises
    ``EventError`` naming the field and value (a foreign JSON object there made
    ``report`` exit 70 with a KeyError, twenty-first session)."""
    alert_fields(doc)
    if doc.get("started_at") is None:
        value = doc.get("started_at", MISSING)
        raise EventError("bad_alert", "started_at", value, "expected when the alert started")


def step_record(doc: dict[str, Any]) -> None:
    """Check a message of a steps topic is a step the reports can read: ``run_id`` and
    ``action`` non-empty text, ``at`` epoch seconds (years 0001-9999), ``id`` text where given,
    an escalation's ``level`` and a ``run_created``'s ``playbook`` present. Raises
    ``EventError`` (``bad_step``) naming the field and value."""
    for name in ("run_id", "action"):
        value = doc.get(name, MISSING)
        if not isinstance(value, str) or not value:
            raise EventError("bad_step", name, value, "expected a non-empty string")
    at = doc.get("at", MISSING)
    fault = epoch_seconds_fault(at)
    if fault is not None:
        raise EventError("bad_step", "at", at, fault)
    if not isinstance(doc.get("id", ""), str):
        raise EventError("bad_step", "id", doc["id"], "expected a string")
    needed = {"escalate": "level", "run_created": "playbook"}.get(doc["action"])
    if needed is not None and not isinstance(doc.get(needed, MISSING), str):
        raise EventError("bad_step", needed, doc.get(needed, MISSING), "expected a string")


def latest_resolved(
    steps: Iterable[dict[str, Any]], created: dict[str, dict[str, Any]]
) -> dict[str, float]:
    """Seconds from creation to resolution, by run id, of the runs whose latest state is
    resolved: a reopen step (a reporter not satisfied) after the resolve undoes it, as
    ``runs show`` and ``campaign report`` count it. ``steps`` are step messages
    ``{"run_id", "action", "at"}`` (at in epoch s); ``created`` maps run id to its
    ``run_created`` step. Steps are taken in time order (topic order among equal times)."""
    resolved: dict[str, float] = {}
    for s in sorted(steps, key=lambda s: s["at"]):
        run_id = s["run_id"]
        if run_id not in created:
            continue
        if s["action"] == "resolved":
            resolved[run_id] = s["at"] - created[run_id]["at"]
        elif s["action"] in REOPEN_ACTIONS:
            resolved.pop(run_id, None)
    return resolved


def build_report(
    readings: pd.DataFrame,
    alert_messages: Iterable[dict[str, Any]],
    step_messages: Iterable[dict[str, Any]],
    title: str,
    context: Context | None = None,
) -> str:
    """The HTML page. ``readings`` has columns ts (epoch s), sensor_id, kind, value and
    optionally unit and file; ``context`` adds the grid, incidents and known events.
    Counts are of what these frames hold: give it what the worker accepted
    (``accepted_events``, ``match_files``), not a file's rows."""
    context = context or Context()
    alerts: dict[str, dict[str, Any]] = {}
    for doc in alert_messages:
        labels = doc.get("labels") or {}
        a = alerts.setdefault(
            doc["alert_id"],
            {
                "id": doc["alert_id"],
                "sensor_id": doc.get("sensor_id", ""),
                "subject": doc.get("sensor_id")
                or f"{doc['grid_cell']} {labels.get('category', '')}".strip(),
                "kind": doc["kind"],
                "grid_cell": doc["grid_cell"],
                "severity": doc["severity"],
                "start": _ts(doc["started_at"]),
                "end": _ts(doc["started_at"]),
                "reports": [],
            },
        )
        a["reports"] += [
            r["report_id"]
            for r in doc.get("reports") or ()
            if isinstance(r, dict) and isinstance(r.get("report_id"), str)
        ]
        if doc["status"] == "resolved" and doc.get("ended_at"):
            a["end"] = _ts(doc["ended_at"])
            a["severity"] = doc["severity"]
    alert_list = sorted(alerts.values(), key=lambda a: a["start"])
    steps = list(step_messages)
    created = {s["run_id"]: s for s in steps if s["action"] == "run_created"}
    acked: dict[str, float] = {}
    for s in sorted(steps, key=lambda s: s["at"]):
        # The first acknowledgement, as campaign report's time to acknowledge counts it.
        if s["action"] == "acknowledged" and s["run_id"] in created:
            acked.setdefault(s["run_id"], s["at"] - created[s["run_id"]]["at"])
    resolved = latest_resolved(steps, created)
    escalations = Counter(s["level"] for s in steps if s["action"] == "escalate")
    runs_by_playbook = Counter(s["playbook"] for s in created.values())

    def stat(values: dict[str, float]) -> str:
        if not values:
            return "none yet"
        # One definition in every report: campaign.quantile, numpy's linear one.
        vals = list(values.values())
        median, p90 = quantile(vals, 0.5), quantile(vals, 0.9)
        assert median is not None and p90 is not None  # vals is not empty
        return f"median {_duration(median)}, p90 {_duration(p90)} ({counted(len(vals), 'run')})"

    episodes: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for a in alert_list:
        if a["sensor_id"]:
            episodes[a["sensor_id"]].append((a["start"], a["end"], a["severity"]))
    ranked = sorted(episodes, key=lambda s: (-len(episodes[s]), s))
    charted = ranked[:MAX_SENSOR_CHARTS]
    by_sensor = {sid: frame for sid, frame in readings.groupby("sensor_id")}

    def unit_of(sid: str) -> str:
        frame = by_sensor.get(sid)
        if frame is None or "unit" not in frame:
            return ""
        return str(frame["unit"].iloc[0])

    charts = "".join(
        sensor_chart(
            sid, str(by_sensor[sid]["kind"].iloc[0]), by_sensor[sid], episodes[sid], unit_of(sid)
        )
        for sid in charted
        if sid in by_sensor
    )

    def sensor_row(sid: str) -> str:
        kind = str(by_sensor[sid]["kind"].iloc[0]) if sid in by_sensor else ""
        worst = _worst(e[2] for e in episodes[sid])
        return (
            f"<tr><td>{html.escape(sid)}</td><td>{html.escape(kind)}</td>"
            f"<td>{html.escape(unit_of(sid))}</td><td>{len(episodes[sid]):,}</td>"
            f'<td class="sev {worst}">{worst}</td></tr>'
        )

    sensor_rows = "".join(sensor_row(sid) for sid in ranked)
    sensor_table = (
        '<table class="list"><tr><th>sensor</th><th>kind</th><th>unit</th><th>alerts</th>'
        f"<th>worst</th></tr>{sensor_rows}</table>"
        if ranked
        else "<p>No sensor alerts.</p>"
    )
    incidents = context.incidents
    period = event_period(readings, incidents)
    n_incidents = 0 if incidents is None else len(incidents)
    summary = {
        "readings": len(readings),
        "incidents": n_incidents,
        "alerts": len(alert_list),
        "sensors with alerts": len(ranked),
        "runs": len(created),
        "escalations": sum(escalations.values()),
        "acknowledged": len(acked),
        "resolved": len(resolved),
    }
    cards = "".join(
        f'<div class="card"><b>{v:,}</b><span>{k}</span></div>' for k, v in summary.items()
    )
    if context.known_events:
        known = (
            "<ul>"
            + "".join(
                f'<li class="{"hit" if e["detected"] else "miss"}">'
                f"{'detected' if e['detected'] else 'missed'}: {html.escape(e['event'])} "
                f"({counted(e['alerts'], 'alert')})</li>"
                for e in context.known_events
            )
            + "</ul>"
        )
    else:
        known = "<p>No known events were given for these files.</p>"
    bursts = [a for a in alert_list if not a["sensor_id"]]
    if incidents is not None and len(incidents):
        by_file = Counter(incidents["file"])
        top = Counter(incidents["category"]).most_common(8)
        first, last = incidents["ts"].min(), incidents["ts"].max()
        repeated = (
            f"; {counted(context.repeated_reports, 're-sent report')} left out, as the worker "
            "drops a duplicate"
            if context.repeated_reports
            else ""
        )
        citizen = (
            f"<p>{counted(n_incidents, 'citizen report')} accepted by the worker between "
            f"{_fmt(first)} and {_fmt(last)} UTC "
            f"({', '.join(f'{html.escape(f)}: {n:,}' for f, n in by_file.items())}{repeated}); "
            f"{counted(len(bursts), 'burst')} raised an alert.</p>"
            + bars(Counter(dict(top)), "Most frequent report categories")
        )
    else:
        citizen = "<p>No citizen-report files in this replay.</p>"
    return TEMPLATE.format(
        title=html.escape(title),
        what_if=html.escape(WHAT_IF),
        period=html.escape(period),
        scope=f'<p class="scope">{html.escape(context.scope)}</p>' if context.scope else "",
        cards=cards,
        known=known,
        legend=severity_legend(),
        maps=maps(alert_list, context.grid),
        timeline=timelines(alert_list, context=context),
        citizen=citizen,
        escalations=bars(escalations, "Escalations by grid level"),
        playbooks=bars(runs_by_playbook, "Runs by playbook"),
        ack=html.escape(stat(acked)),
        resolve=html.escape(stat(resolved)),
        charts=charts or "<p>No sensor alerts.</p>",
        n_sensors=len(ranked),
        n_charts=len(charted),
        cap=MAX_SENSOR_CHARTS,
        sensor_table=sensor_table,
        # Inside <script> only "</" can end the element early; entities are not decoded.
        data=json.dumps(summary).replace("</", "<\\/"),
        generated=_fmt(datetime.now(UTC).timestamp()),
    )


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2733; }}
h1 {{ margin: 0 0 4px; font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
.cards {{ display: flex; gap: 12px; flex-wrap: wrap; }}
.card {{ background: #eef3f8; border-radius: 6px; padding: 10px 14px; min-width: 90px; }}
.card b {{ display: block; font-size: 20px; }} .card span {{ color: #556; }}
svg {{ width: 100%; max-width: 760px; background: #fafbfc; border: 1px solid #dde3ea; }}
svg text {{ font-size: 10px; fill: #556; }}
.line {{ fill: none; stroke: #2f6fb5; stroke-width: 1.2; }}
.episode {{ fill: #e8a33d; opacity: .3; }} .episode.major {{ fill: #e0703e; }}
.episode.critical {{ fill: #c62f2f; }}
.bar, .minor {{ fill: #e8a33d; }} .bar.major, .major {{ fill: #e0703e; }}
.bar.critical, .critical {{ fill: #c62f2f; }} .quiet {{ fill: #9aa7b4; }}
svg.map {{ max-width: 420px; background: #f4f7f2; }}
path.cell {{ stroke: #56626e; stroke-width: .8; fill-opacity: .35; }}
path.cell.quiet {{ fill: #dfe6d8; }}
circle.sensor {{ stroke: #fff; stroke-width: 1; }}
rect.cellpoint {{ stroke: #fff; stroke-width: .8; }}
.maps {{ display: flex; flex-wrap: wrap; gap: 14px; }}
.legend .key {{ margin-right: 14px; }} svg.swatch {{ width: 12px; height: 12px; border: 0;
  vertical-align: -1px; margin-right: 4px; background: none; }}
td.sev.minor {{ color: #a86c12; }} td.sev.major {{ color: #b8501e; }}
td.sev.critical {{ color: #c62f2f; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 14px; }}
figure {{ margin: 0 0 10px; }} figcaption {{ font-weight: 600; }}
small {{ color: #667; font-weight: 400; }}
table.bars th {{ text-align: left; padding-right: 10px; font-weight: 400; }}
table.list {{ border-collapse: collapse; }} table.list td, table.list th {{ padding: 2px 10px 2px 0;
  text-align: left; }}
.hbar {{ display: inline-block; height: 10px; background: #2f6fb5; }}
li.hit {{ color: #1d6b33; }} li.miss {{ color: #c62f2f; }}
#filter {{ padding: 4px 8px; margin: 8px 0; width: 260px; }}
</style></head>
<body data-ready="false">
<h1>{title}</h1>
<p>{what_if}</p>
<p>Event time: {period}. Generated {generated} UTC by citybrain.</p>
{scope}
<div class="cards">{cards}</div>
<h2>Known events</h2>{known}
{legend}
<h2>Map</h2>{maps}
<h2>Alert timeline</h2>{timeline}
<h2>Citizen reports</h2>{citizen}
<h2>Response</h2>
<p>Time to acknowledge: {ack}. Time to resolve: {resolve}.</p>
<div class="cards">{escalations}{playbooks}</div>
<h2>Sensors with alerts ({n_sensors})</h2>
{sensor_table}
<p>Charts for the {n_charts} with the most alerts (at most {cap}).</p>
<input id="filter" placeholder="filter sensors" aria-label="filter sensors">
<div class="grid" id="charts">{charts}</div>
<script id="summary" type="application/json">{data}</script>
<script>
(function () {{
  var input = document.getElementById("filter");
  input.addEventListener("input", function () {{
    var q = input.value.toLowerCase();
    document.querySelectorAll("figure.sensor").forEach(function (f) {{
      f.style.display = f.dataset.sensor.toLowerCase().indexOf(q) >= 0 ? "" : "none";
    }});
  }});
  var summary = JSON.parse(document.getElementById("summary").textContent);
  document.body.dataset.alerts = String(summary.alerts);
  document.body.dataset.mapped = String(document.querySelectorAll(
    "svg.map [data-severity]:not([data-severity=''])").length);
  document.body.dataset.ready = "true";
}})();
</script>
</body></html>
"""


def readings_frame(paths: Iterable[Any]) -> pd.DataFrame:
    """The readings of canonical CSVs (incident files are skipped) with epoch seconds,
    their unit and the name of the file each came from."""
    import pandas as pd

    # The replay's own reader, skipping what ``replay --on-error skip`` skipped: the report
    # shows what was sent, and a file replay could read never fails here.
    rows = [
        (e.ts, e.sensor_id, e.kind, e.value, e.unit, Path(path).name)
        for path in paths
        for e in read_canonical(path, on_bad_row=lambda bad: None)
        if isinstance(e, Reading)
    ]
    return pd.DataFrame(rows, columns=["ts", "sensor_id", "kind", "value", "unit", "file"])


def incidents_frame(paths: Iterable[Any]) -> pd.DataFrame:
    """The citizen reports of canonical incident CSVs: ts (epoch s), report_id, category,
    grid_cell, file (reading files are skipped), read as replay reads them."""
    import pandas as pd

    rows = [
        (e.ts, e.report_id, e.category, e.grid_cell, Path(path).name)
        for path in paths
        for e in read_canonical(path, on_bad_row=lambda bad: None)
        if isinstance(e, IncidentReport)
    ]
    return pd.DataFrame(rows, columns=["ts", "report_id", "category", "grid_cell", "file"])
