"""A route on a value no alert carries (third new-user trial, item 7): `playbooks check`
refuses it; the worker starts with it and names it in its start-up log."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest
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
    assert [r.id for r in found.ctx.router.root.routes] == ["root.0"]  # the worker still routes


def test_the_library_routing_has_none(tmp_path: Path) -> None:
    text = (REPO_ROOT / "playbooks" / "library" / "routing.yaml").read_text()
    assert alerting(tmp_path, text).never_matching == []


def test_a_playbook_no_route_names_is_said_by_the_check_and_the_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # t122: a playbook written and never routed to was taken without a word by both.
    from citybrain.cli import main

    found = alerting(
        tmp_path, ROOT + "  routes:\n    - {matchers: ['source=\"citizen\"'], playbook: gas-leak}\n"
    )
    routing = tmp_path / "routing.yaml"
    assert found.never_matching == []
    assert found.unrouted == [
        f"{routing}:3: route: no route names playbook {name!r}, so no alert will run it; add "
        "a route to it, or remove its file from the playbook directory"
        for name in (
            "air-pollution",
            "citizen-report-burst",
            "crowd-surge",
            "flash-flood",
            "sensor-check",
            "sensor-failure",
            "traffic-incident",
        )
    ]
    # The check prints the same lines as warnings and keeps its status.
    assert main(["playbooks", "check", "--routing", str(routing)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"citybrain: warning: {line}" for line in found.unrouted]


def test_the_library_routes_to_every_playbook(tmp_path: Path) -> None:
    text = (REPO_ROOT / "playbooks" / "library" / "routing.yaml").read_text()
    assert alerting(tmp_path, text).unrouted == []
