"""A report in no alert is offered to the run of every group its burst alert could be
routed to (streams.ingest ``Ingest._offer``): such a report has no severity yet, so a route
that matches on severity, or a group keyed by it, must not lose the offer (it was labelled
``minor`` and missed the run a ``major`` burst had opened)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from playbooks.loader import PLAYBOOK_DIR, load_grid, load_playbooks, load_routing
from streams.events import IncidentReport
from streams.ingest import Ingest
from streams.settings import REPO_ROOT

ROUTING = """\
version: 1
route:
  playbook: citizen-report-burst
  group_by: [category, community]
  routes:
    - matchers: ['severity="major"']
      playbook: citizen-report-burst
      group_by: [category, severity]
    - matchers: ['severity="critical"', 'kind="pm25"']
      playbook: citizen-report-burst
"""


def offers(tmp_path: Path, routing: str) -> list[tuple[str, Any]]:
    path = tmp_path / "routing.yaml"
    path.write_text(routing)
    grid = load_grid(REPO_ROOT / "datasets" / "grid.yaml")
    router = load_routing(path, load_playbooks(PLAYBOOK_DIR))
    cell = next(iter(grid.cells))
    report = IncidentReport(1.7e9, "r-1", "Noise", "loud", "app", cell)
    stage = SimpleNamespace(grid=grid, router=router)
    return Ingest._offer(stage, report, "environment", False)  # type: ignore[arg-type]


def test_every_severity_a_burst_could_have_is_offered(tmp_path: Path) -> None:
    found = offers(tmp_path, ROUTING)
    routes = sorted(offer["route"]["id"] for _, offer in found)
    # minor and critical fall through to the root (critical's route needs kind pm25);
    # major takes its own route, grouped by severity.
    assert routes == ["root", "root.0"]
    keys = [key for key, _ in found]
    assert len(set(keys)) == len(keys)
    assert all(offer["report"]["report_id"] == "r-1" for _, offer in found)


def test_a_route_blind_to_severity_is_offered_once(tmp_path: Path) -> None:
    found = offers(
        tmp_path, "version: 1\nroute:\n  playbook: citizen-report-burst\n  group_by: [category]\n"
    )
    assert [offer["route"]["id"] for _, offer in found] == ["root"]
