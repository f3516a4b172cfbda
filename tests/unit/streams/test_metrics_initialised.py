"""Every counter a dashboard reads with ``increase()`` exists at zero from start-up for the
label values the grid, the playbooks and the department list allow. A labelled series born
at its first increment starts at that value, which ``increase()`` never sees (trial 9:
after the demo, "alerts opened in the last hour" showed 2 of 21 and 17 of 19 cell series
read zero)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import faust
import pytest
from prometheus_client import CollectorRegistry

from playbooks.engine import Command, Run
from playbooks.grid import LEVELS
from playbooks.loader import load_grid
from streams.context import Context
from streams.departments import DepartmentClassifier
from streams.events import INCIDENT_SOURCES
from streams.metrics import Metrics
from streams.response import Response
from streams.settings import REPO_ROOT, Settings
from tests.unit.streams.test_group_flushes import make_stage, start_clock
from tests.unit.streams.test_response_races import KEY, Event, alert


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


def outcome_series(registry: CollectorRegistry, playbook: str, department: str) -> dict[str, int]:
    """How many series of each once-per-run metric exist for ``playbook`` in
    ``department``, at zero."""
    counts: dict[str, int] = {}
    for name in (
        "citybrain_playbook_time_to_ack_seconds_count",
        "citybrain_playbook_time_to_resolve_seconds_count",
        "citybrain_campaign_runs_reopened_total",
    ):
        found = samples(registry, name)
        mine = [
            value
            for labels, value in found.items()
            if ("playbook", playbook) in labels and ("department", department) in labels
        ]
        assert set(mine) <= {0.0}, name
        counts[name] = len(mine)
    return counts


EVERY_OUTCOME_SERIES = {
    "citybrain_playbook_time_to_ack_seconds_count": len(LEVELS),
    "citybrain_playbook_time_to_resolve_seconds_count": 1,
    "citybrain_campaign_runs_reopened_total": 2 * len(LEVELS),
}


def test_a_runs_late_observations_have_their_series_from_its_creation(tmp_path: Path) -> None:
    """A citizen-report-burst run takes its reports' department (police): its time to
    acknowledge, time to resolve and campaign reopening were born at their first
    observation (made at start only for the playbook's own department), which
    ``increase()`` never counts; the MTTA panel missed the first police acknowledgement
    after every worker start. Now made when the run is created."""
    registry = CollectorRegistry()
    settings = Settings(run_dir_override=tmp_path)
    grid = load_grid(REPO_ROOT / "datasets" / "grid.yaml")
    app = faust.App("t-metrics-outcomes", broker="kafka://127.0.0.1:1", store="memory://")
    ctx = Context(app, settings, grid, Metrics.create(registry))
    response = Response(ctx)
    cell = next(iter(grid.cells))
    run = Run("grp.1", "al-1", "citizen-report-burst", cell, "incident_burst", "police")
    assert outcome_series(registry, run.playbook, "police") == dict.fromkeys(
        EVERY_OUTCOME_SERIES, 0
    )

    response._kpis(run, Command("c-1", run.run_id, run.alert_id, "run_created", 10.0))
    assert outcome_series(registry, run.playbook, "police") == EVERY_OUTCOME_SERIES


def test_runs_held_after_a_start_have_their_series_from_the_first_deadline_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker started (or given partitions by a rebalance) holds runs it did not
    create: their series are made at its first deadline pass."""
    first, _ = make_stage(tmp_path)
    start_clock(first, monkeypatch)
    asyncio.run(_restarted_pass(first))


async def _restarted_pass(first: Response) -> None:
    await first.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
    group = dict(first.ctx.groups.data[KEY])
    group["run"] = {**group["run"], "department": "police"}
    first.ctx.groups.data[KEY] = group
    # A new process: its own registry, made at start as Context makes it.
    registry = CollectorRegistry()
    first.ctx.metrics = Metrics.create(registry)
    restarted = Response(first.ctx)
    restarted._update_lag = first._update_lag  # type: ignore[method-assign]
    playbook = group["run"]["playbook"]
    assert outcome_series(registry, playbook, "police") == dict.fromkeys(EVERY_OUTCOME_SERIES, 0)

    await restarted.check_deadlines()
    assert outcome_series(registry, playbook, "police") == EVERY_OUTCOME_SERIES
