"""Every counter a dashboard reads with ``increase()`` exists at zero from start-up for the
label values the grid, the playbooks and the department list allow. A labelled series born
at its first increment starts at that value, which ``increase()`` never sees (trial 9:
after the demo, "alerts opened in the last hour" showed 2 of 21 and 17 of 19 cell series
read zero)."""

from __future__ import annotations

from pathlib import Path

import faust
from prometheus_client import CollectorRegistry

from playbooks.grid import LEVELS
from playbooks.loader import load_grid
from streams.context import Context
from streams.departments import DepartmentClassifier
from streams.events import INCIDENT_SOURCES
from streams.metrics import Metrics
from streams.settings import REPO_ROOT, Settings


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_alert_and_report_counters_start_at_zero_for_every_allowed_label_set(
    tmp_path: Path,
) -> None:
    registry = CollectorRegistry()
    settings = Settings(run_dir_override=tmp_path)
    grid = load_grid(REPO_ROOT / "datasets" / "grid.yaml")
    app = faust.App("t-metrics-zero", broker="kafka://127.0.0.1:1", store="memory://")
    ctx = Context(app, settings, grid, Metrics.create(registry))

    alerts = samples(registry, "citybrain_alerts_total")
    kinds = [*grid.kinds, "incident_burst"]
    assert len(alerts) == len(kinds) * len(LEVELS) * 3 and set(alerts.values()) == {0.0}

    cell_alerts = samples(registry, "citybrain_cell_alerts_total")
    assert set(cell_alerts.values()) == {0.0}
    for sensor in grid.sensors.values():
        district, street, community = ctx.cell_path(sensor.cell)
        labels = (
            ("community", community),
            ("district", district),
            ("kind", sensor.kind),
            ("street", street),
        )
        assert labels in cell_alerts, sensor.id
    bursts = [k for k in cell_alerts if ("kind", "incident_burst") in k]
    assert len(bursts) == len({ctx.cell_path(c) for c in grid.cells})

    incidents = samples(registry, "citybrain_incidents_total")
    departments = DepartmentClassifier.departments() | {
        pb.department for pb in ctx.playbooks.values()
    }
    assert set(incidents) == {
        (("department", d), ("source", s)) for d in departments for s in INCIDENT_SOURCES
    }
    assert len(samples(registry, "citybrain_cell_readings_total")) == len(
        {ctx.cell_path(c) for c in grid.cells}
    )
