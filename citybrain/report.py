"""What-if reports: one self-contained HTML file about a finished replay.

Per-sensor charts with the anomalous episodes marked, the alert timeline, runs and
escalations by grid level, times to acknowledge and resolve. Inline SVG and a few lines of
script, no external assets: a coordinator can mail it, open it offline, or compare two
detectors or playbooks by replaying the same history twice.
"""

from __future__ import annotations

import html
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from streams.events import Reading
from streams.feeds import read_canonical

MAX_SENSOR_CHARTS = 24
W, H, PAD = 640.0, 150.0, 28.0


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def sensor_chart(
    sensor_id: str, kind: str, series: pd.DataFrame, episodes: list[tuple[float, float, str]]
) -> str:
    """An SVG line chart of one sensor with its alert episodes shaded."""
    t = series["ts"].to_numpy(dtype=float)
    v = series["value"].to_numpy(dtype=float)
    t0, t1 = float(t.min()), float(t.max()) or 1.0
    lo, hi = float(v.min()), float(v.max())
    span_t, span_v = max(t1 - t0, 1.0), max(hi - lo, 1e-9)

    def x(ts: float) -> float:
        return PAD + (ts - t0) / span_t * (W - 2 * PAD)

    def y(val: float) -> float:
        return H - PAD - (val - lo) / span_v * (H - 2 * PAD)

    step = max(1, len(t) // 1500)  # enough points for the eye, small files
    points = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in zip(t[::step], v[::step], strict=False))
    shades = "".join(
        f'<rect class="episode" x="{x(s):.1f}" y="{PAD / 2:.1f}" '
        f'width="{max(x(e) - x(s), 2.0):.1f}" height="{H - 1.5 * PAD:.1f}">'
        f"<title>{html.escape(sev)} alert {_fmt(s)} - {_fmt(e)}</title></rect>"
        for s, e, sev in episodes
    )
    return (
        f'<figure class="sensor" data-sensor="{html.escape(sensor_id)}">'
        f"<figcaption>{html.escape(sensor_id)} <small>{html.escape(kind)}, "
        f"{len(episodes)} alert(s)</small></figcaption>"
        f'<svg viewBox="0 0 {W:.0f} {H:.0f}" role="img" aria-label="{html.escape(sensor_id)}">'
        f'{shades}<polyline class="line" points="{points}"/>'
        f'<text x="{PAD}" y="{H - 6}">{_fmt(t0)}</text>'
        f'<text x="{W - PAD}" y="{H - 6}" text-anchor="end">{_fmt(t1)}</text>'
        f'<text x="2" y="{PAD - 6}">{hi:g}</text><text x="2" y="{H - PAD}">{lo:g}</text>'
        f"</svg></figure>"
    )


def timelines(alerts: list[dict[str, Any]], gap: float = 30 * 86400) -> str:
    """One timeline per stretch of history: replays of data sets years apart would
    otherwise squeeze each into a sliver of one axis."""
    if not alerts:
        return "<p>No alerts.</p>"
    clusters: list[list[dict[str, Any]]] = [[alerts[0]]]
    for a in alerts[1:]:
        if a["start"] - max(b["end"] for b in clusters[-1]) > gap:
            clusters.append([])
        clusters[-1].append(a)
    return "".join(timeline(c) for c in clusters)


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
        bars.append(
            f'<rect class="bar {a["severity"]}" x="{x0:.1f}" y="{yy:.1f}" '
            f'width="{width:.1f}" height="{row - 6:.1f}"><title>'
            f"{html.escape(a['sensor_id'] or a['grid_cell'])}: {a['severity']}, "
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


def build_report(
    readings: pd.DataFrame,
    alert_messages: Iterable[dict[str, Any]],
    step_messages: Iterable[dict[str, Any]],
    title: str,
) -> str:
    """The HTML page. ``readings`` has columns ts (epoch s), sensor_id, kind, value."""
    alerts: dict[str, dict[str, Any]] = {}
    for doc in alert_messages:
        a = alerts.setdefault(
            doc["alert_id"],
            {
                "id": doc["alert_id"],
                "sensor_id": doc.get("sensor_id", ""),
                "kind": doc["kind"],
                "grid_cell": doc["grid_cell"],
                "severity": doc["severity"],
                "start": _ts(doc["started_at"]),
                "end": _ts(doc["started_at"]),
            },
        )
        if doc["status"] == "resolved" and doc.get("ended_at"):
            a["end"] = _ts(doc["ended_at"])
            a["severity"] = doc["severity"]
    alert_list = sorted(alerts.values(), key=lambda a: a["start"])
    steps = list(step_messages)
    created = {s["run_id"]: s for s in steps if s["action"] == "run_created"}
    acked = {
        s["run_id"]: s["at"] - created[s["run_id"]]["at"]
        for s in steps
        if s["action"] == "acknowledged" and s["run_id"] in created
    }
    resolved = {
        s["run_id"]: s["at"] - created[s["run_id"]]["at"]
        for s in steps
        if s["action"] == "resolved" and s["run_id"] in created
    }
    escalations = Counter(s["level"] for s in steps if s["action"] == "escalate")
    runs_by_playbook = Counter(s["playbook"] for s in created.values())

    def stat(values: dict[str, float]) -> str:
        if not values:
            return "none yet"
        vals = sorted(values.values())
        p90 = vals[min(len(vals) - 1, int(0.9 * len(vals)))]
        return (
            f"median {_duration(statistics.median(vals))}, p90 {_duration(p90)} ({len(vals)} runs)"
        )

    episodes: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for a in alert_list:
        if a["sensor_id"]:
            episodes[a["sensor_id"]].append((a["start"], a["end"], a["severity"]))
    charted = sorted(episodes, key=lambda s: -len(episodes[s]))[:MAX_SENSOR_CHARTS]
    by_sensor = {sid: frame for sid, frame in readings.groupby("sensor_id")}
    charts = "".join(
        sensor_chart(sid, str(by_sensor[sid]["kind"].iloc[0]), by_sensor[sid], episodes[sid])
        for sid in charted
        if sid in by_sensor
    )
    period = (
        f"{_fmt(readings['ts'].min())} - {_fmt(readings['ts'].max())}"
        if len(readings)
        else "no readings"
    )
    summary = {
        "readings": len(readings),
        "alerts": len(alert_list),
        "runs": len(created),
        "escalations": sum(escalations.values()),
        "acknowledged": len(acked),
        "resolved": len(resolved),
    }
    cards = "".join(
        f'<div class="card"><b>{v:,}</b><span>{k}</span></div>' for k, v in summary.items()
    )
    return TEMPLATE.format(
        title=html.escape(title),
        period=html.escape(period),
        cards=cards,
        timeline=timelines(alert_list),
        escalations=bars(escalations, "Escalations by grid level"),
        playbooks=bars(runs_by_playbook, "Runs by playbook"),
        ack=html.escape(stat(acked)),
        resolve=html.escape(stat(resolved)),
        charts=charts or "<p>No sensor alerts.</p>",
        n_charts=len(charted),
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
.episode {{ fill: #e0483e; opacity: .25; }}
.bar {{ fill: #e8a33d; }} .bar.major {{ fill: #e0703e; }} .bar.critical {{ fill: #c62f2f; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 14px; }}
figure {{ margin: 0; }} figcaption {{ font-weight: 600; }}
small {{ color: #667; font-weight: 400; }}
table.bars th {{ text-align: left; padding-right: 10px; font-weight: 400; }}
.hbar {{ display: inline-block; height: 10px; background: #2f6fb5; }}
#filter {{ padding: 4px 8px; margin: 8px 0; width: 260px; }}
</style></head>
<body data-ready="false">
<h1>{title}</h1><p>Event time {period}. Generated {generated} UTC by citybrain.</p>
<div class="cards">{cards}</div>
<h2>Alert timeline</h2>{timeline}
<h2>Response</h2>
<p>Time to acknowledge: {ack}. Time to resolve: {resolve}.</p>
<div class="cards">{escalations}{playbooks}</div>
<h2>Sensors with alerts ({n_charts})</h2>
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
  document.body.dataset.ready = "true";
}})();
</script>
</body></html>
"""


def readings_frame(paths: Iterable[Any]) -> pd.DataFrame:
    """The readings of canonical CSVs (incident files are skipped) with epoch seconds."""
    # The replay's own reader, skipping what ``replay --on-error skip`` skipped: the report
    # shows what was sent, and a file replay could read never fails here.
    rows = [
        (e.ts, e.sensor_id, e.kind, e.value)
        for path in paths
        for e in read_canonical(path, on_bad_row=lambda bad: None)
        if isinstance(e, Reading)
    ]
    return pd.DataFrame(rows, columns=["ts", "sensor_id", "kind", "value"])
