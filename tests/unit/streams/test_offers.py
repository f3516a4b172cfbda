"""A report in no alert is offered to the run of every group its burst alert could be
routed to (streams.ingest ``Ingest._offer``): such a report has no severity yet, so a route
that matches on severity, or a group keyed by it, must not lose the offer (it was labelled
``minor`` and missed the run a ``major`` burst had opened)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from playbooks.loader import PLAYBOOK_DIR, load_grid, load_playbooks, load_routing
from streams.detection import SEVERITIES
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
    return Ingest._offer(stage, report, "environment", False, grid, router)  # type: ignore[arg-type]


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


def test_a_group_per_alert_is_offered_nothing(tmp_path: Path) -> None:
    """A route grouping by every label (``[...]``) or by ``alert_id`` keeps a group per
    alert: the one a report could join is keyed by its burst's alert id, which a report
    in no alert does not have. Offered, each report made one routed message per severity
    to a group keyed by ``alert_id=""``, where no run ever opens (held in memory by the
    response stage, then dropped): 3 wasted messages per report."""
    for group_by in ("['...']", "[alert_id]", "[category, alert_id]"):
        routing = f"version: 1\nroute:\n  playbook: citizen-report-burst\n  group_by: {group_by}\n"
        assert offers(tmp_path, routing) == []
    # Beside a route that can hold the report's run, only that one is offered.
    routing = """\
version: 1
route:
  playbook: citizen-report-burst
  group_by: [category, community]
  routes:
    - matchers: ['source="citizen"']
      playbook: citizen-report-burst
      group_by: ['...']
      continue: true
    - matchers: ['source="citizen"']
      playbook: citizen-report-burst
      group_by: [category]
"""
    assert [offer["route"]["id"] for _, offer in offers(tmp_path, routing)] == ["root.1"]


def test_offers_per_report_are_bounded_by_severities_times_routes(tmp_path: Path) -> None:
    """Whatever the report (its category and cell are the field's), its offers are at
    most one per severity a burst could have and route its labels match: a constant of
    the routing file, 1 with the library's routing."""
    routing = """\
version: 1
route:
  playbook: citizen-report-burst
  group_by: [category]
  routes:
    - matchers: ['source="citizen"']
      playbook: citizen-report-burst
      group_by: [category, severity]
      continue: true
    - matchers: ['source="citizen"']
      playbook: citizen-report-burst
      group_by: [severity]
"""
    found = offers(tmp_path, routing)
    assert len(found) == len(SEVERITIES) * 2
    library = (REPO_ROOT / "playbooks" / "library" / "routing.yaml").read_text()
    assert len(offers(tmp_path, library)) == 1
