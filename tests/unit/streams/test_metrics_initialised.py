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


def test_campaign_counters_start_at_zero_for_every_department_a_report_can_take(
    tmp_path: Path,
) -> None:
    """Helper t102: a citizen-report-burst run takes its reports' department (police,
    sanitation, …), but its counters and the campaign's were made at zero only for the
    playbook's own department (city-management). After a worker restart the first police
    answer was born at 1 and "Reporters satisfied (24h)", "Resolved by department" and
    the resolution rate never counted it."""
    registry = CollectorRegistry()
    settings = Settings(run_dir_override=tmp_path)
    grid = load_grid(REPO_ROOT / "datasets" / "grid.yaml")
    app = faust.App("t-metrics-campaign", broker="kafka://127.0.0.1:1", store="memory://")
    ctx = Context(app, settings, grid, Metrics.create(registry))
    reported = DepartmentClassifier.departments()
    # The library's routes that citizen alerts may take (gas-leak and crowd-surge by
    # category, the burst's catch-all, and the routes before them that do not say
    # source="sensor").
    citizen = ctx.router.root.playbooks_reachable({"source": "citizen"})
    assert {"citizen-report-burst", "gas-leak", "crowd-surge"} <= citizen
    assert not {"flash-flood", "air-pollution", "traffic-incident"} & citizen

    answers = samples(registry, "citybrain_campaign_answers_total")
    closed = samples(registry, "citybrain_campaign_runs_closed_total")
    runs = samples(registry, "citybrain_playbook_runs_total")
    for department in reported:
        for level in LEVELS:
            for satisfied in ("true", "false"):
                key = (("department", department), ("level", level), ("satisfied", satisfied))
                assert answers[key] == 0.0
            key = (("department", department), ("level", level), ("outcome", "resolved"))
            assert closed[key] == 0.0
        for playbook in citizen:
            assert runs[(("department", department), ("playbook", playbook))] == 0.0
    # A sensor playbook's runs keep their own department only.
    assert (("department", "police"), ("playbook", "flash-flood")) not in runs
