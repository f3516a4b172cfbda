"""Prometheus recording rules for the KPIs and alerting rules for the pipeline itself,
as code. Each alert keeps its measured expression (``base``) apart from its condition so
tests can check the measurement returns series on a healthy pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams import metrics as m

WORKERS = 'job="citybrain-worker"'


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str


@dataclass(frozen=True)
class Alert:
    name: str
    base: str
    condition: str  # appended to base: "> 1000", "== 0 and …"
    duration: str
    severity: str
    summary: str

    @property
    def expr(self) -> str:
        return f"{self.base} {self.condition}"


def _q(q: float, metric: str, by: str, window: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket[{window}])))"


RECORDINGS = [
    Recording("citybrain:readings:rate1m", f"sum by (kind) (rate({m.READINGS}[1m]))"),
    Recording(
        "citybrain:alerts_opened:increase1h", f"sum by (kind, level) (increase({m.ALERTS}[1h]))"
    ),
    Recording("citybrain:time_to_ack_seconds:p50_1h", _q(0.5, m.TIME_TO_ACK, "playbook", "1h")),
    Recording("citybrain:time_to_ack_seconds:p90_1h", _q(0.9, m.TIME_TO_ACK, "playbook", "1h")),
    Recording(
        "citybrain:time_to_resolve_seconds:p50_1h", _q(0.5, m.TIME_TO_RESOLVE, "playbook", "1h")
    ),
    Recording(
        "citybrain:time_to_resolve_seconds:p90_1h", _q(0.9, m.TIME_TO_RESOLVE, "playbook", "1h")
    ),
    Recording(
        "citybrain:resolution_ratio:1h",
        f"sum by (playbook) (increase({m.RUNS_RESOLVED}[1h])) / "
        f"clamp_min(sum by (playbook) (increase({m.RUNS}[1h])), 1)",
    ),
    Recording(
        "citybrain:sla_breaches:increase1d",
        f"sum by (playbook, department) (increase({m.SLA_BREACHES}[1d]))",
    ),
    Recording(
        "citybrain:escalations:increase1h",
        f"sum by (playbook, level) (increase({m.ESCALATIONS}[1h]))",
    ),
]

ALERTS = [
    # A worker that was up in the last hour and is not now; ports nobody ever ran are quiet.
    Alert(
        "CitybrainWorkerDown",
        f"up{{{WORKERS}}}",
        f"== 0 and on (instance) max_over_time(up{{{WORKERS}}}[1h]) == 1",
        "1m",
        "critical",
        "citybrain worker {{ $labels.instance }} is down",
    ),
    Alert(
        "CitybrainConsumerLagGrowing",
        f"sum by (instance, topic) ({m.CONSUMER_LAG})",
        f"> 1000 and sum by (instance, topic) (deriv({m.CONSUMER_LAG}[5m])) > 0",
        "5m",
        "warning",
        "{{ $labels.topic }} lag is {{ $value }} and growing",
    ),
    Alert(
        "CitybrainDeadLettersUp",
        # The HTTP ingest's refused readings are its dead letters (it answers 400 instead).
        f"(sum by (instance) (rate({m.DEAD_LETTERS}[5m])) or "
        f"sum by (instance) (rate({m.INGEST_REFUSED}[5m])))",
        "> 1",
        "5m",
        "warning",
        "{{ $value }} dead letters/s on {{ $labels.instance }}",
    ),
    Alert(
        "CitybrainEventToAlertSlow",
        f"histogram_quantile(0.99, sum by (le) (rate({m.EVENT_TO_ALERT}_bucket[5m])))",
        "> 0.25",
        "10m",
        "warning",
        "event-to-alert p99 is {{ $value }}s",
    ),
]


def rules_file() -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": "citybrain-kpis",
                "interval": "30s",
                "rules": [{"record": r.record, "expr": r.expr} for r in RECORDINGS],
            },
            {
                "name": "citybrain-pipeline",
                "rules": [
                    {
                        "alert": a.name,
                        "expr": a.expr,
                        "for": a.duration,
                        "labels": {"severity": a.severity},
                        "annotations": {"summary": a.summary},
                    }
                    for a in ALERTS
                ],
            },
        ]
    }


CELL_LOCATION = "citybrain:cell_location"
LOCATIONS_FILE = "citybrain-locations.yml"


def location_rules(grid: dict[str, Any]) -> dict[str, Any]:
    """One ``citybrain:cell_location`` series (value 1) per community cell of a grid file
    (docs/events.md) that has ``lat``/``lon``, labelled community, name, lat, lon: a
    Geomap joins alert counts by cell to it. Prometheus keeps the grid's positions, the
    worker's metrics stay free of them."""
    rules = [
        {
            "record": CELL_LOCATION,
            "expr": "vector(1)",
            "labels": {
                "community": str(cell["id"]),
                "name": str(cell["name"]),
                "lat": f"{float(cell['lat']):.6f}",
                "lon": f"{float(cell['lon']):.6f}",
            },
        }
        for cell in grid.get("cells") or []
        if cell.get("level") == "community" and "lat" in cell and "lon" in cell
    ]
    # The global evaluation interval: a longer one would leave the map empty for up to
    # that long after Prometheus starts (groups start at a random offset).
    return {"groups": [{"name": "citybrain-locations", "rules": rules}]}
