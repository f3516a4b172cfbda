"""A route on a value no alert carries (third new-user trial, item 7): `playbooks check`
refuses it; the worker starts with it and names it in its start-up log."""

from __future__ import annotations

from pathlib import Path

import faust
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.alerting import Alerting
from streams.context import Context
from streams.metrics import Metrics
from streams.settings import REPO_ROOT, Settings


def alerting(tmp_path: Path, routing: str) -> Alerting:
    path = tmp_path / "routing.yaml"
    path.write_text(routing)
    settings = Settings(run_dir_override=tmp_path, routing_file=path)
    app = faust.App("t-never-matching", broker="kafka://127.0.0.1:1", store="memory://")
    grid = load_grid(REPO_ROOT / "datasets" / "grid.yaml")
    return Alerting(Context(app, settings, grid, Metrics.create(CollectorRegistry())))


ROOT = "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [kind]\n"


def test_a_route_no_alert_can_take_is_named(tmp_path: Path) -> None:
    found = alerting(tmp_path, ROOT + "  routes:\n    - matchers: ['kind=\"road_ice\"']\n")
    [line] = found.never_matching
    assert line.endswith(
        "routing.yaml:6: route.routes.0.matchers.0: matcher 'kind=\"road_ice\"': kind is never "
        "'road_ice', so this matcher never matches: expected one of conductance, discharge, "
        "incident_burst, no2, o3, parking_occupancy, pm10, pm25, power_load, traffic_flow, "
        "traffic_speed, travel_time, turbidity, water_level"
    )
    assert [r.id for r in found.router.root.routes] == ["root.0"]  # the worker still routes


def test_the_library_routing_has_none(tmp_path: Path) -> None:
    text = (REPO_ROOT / "playbooks" / "library" / "routing.yaml").read_text()
    assert alerting(tmp_path, text).never_matching == []
