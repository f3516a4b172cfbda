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


# t197: routes and inhibit rules whose matchers match every alert, each taken without a
# word by Alertmanager (as it took such silences before 0.20), and by citybrain before.
CATCH_ALL = ROOT + (
    "  routes:\n"
    "    - matchers: ['category=~\".*\"']\n"  # any category, and none
    "      playbook: flash-flood\n"
    "    - {matchers: ['source=\"citizen\"'], playbook: gas-leak}\n"
    "    - {playbook: crowd-surge}\n"  # no matchers, before a sibling
    "    - match_re: {severity: 'minor|major|critical', alert_id: '.+'}\n"
    "      playbook: sensor-check\n"
    "      continue: true\n"
    "    - {matchers: ['kind=~\"pm25|pm10\"', 'alert_id!=\"\"'], playbook: air-pollution}\n"
    "inhibit_rules:\n"
    "  - source_matchers: ['category=~\"|.+\"']\n"
    "    target_matchers: ['kind=\"pm25\"']\n"
    "    equal: [district]\n"
    "  - source_matchers: ['kind=\"power_load\"']\n"
    "    target_matchers: []\n"
    "  - source_matchers: ['{}', 'source=~\"sensor|citizen\"']\n"
    "    target_matchers: ['alert_id!=\"\"']\n"
    "  - source_matchers: ['category!~\"noise.+\"']\n"  # a negation on an open label: chooses
    "    target_matchers: ['category!=\"\"']\n"
)


def test_routes_and_inhibit_rules_matching_every_alert_are_warned_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from citybrain.cli import main

    routing = tmp_path / "routing.yaml"
    found = alerting(tmp_path, CATCH_ALL.replace("['{}', ", "["))
    assert found.never_matching == []
    assert found.catch_all == [
        f"{routing}:6: route.routes.0.matchers: this route matches every alert that reaches "
        "it ('category=~\".*\"' matches any category and an alert without category); without "
        "continue: true, the 4 routes after it (route.routes.1 to route.routes.4) never see an "
        "alert; match on a label that tells the alerts apart, or leave the matchers out if "
        "every alert is meant",
        f"{routing}:9: route.routes.2: this route has no matchers, so it takes every alert "
        "that reaches it; without continue: true, the 2 routes after it (route.routes.3 to "
        "route.routes.4) never see an alert; give it matchers, put it last, or add continue: "
        "true",
        # continue: true and the route after it is reached: its matchers still filter nothing.
        f"{routing}:10: route.routes.3.match_re: this route matches every alert that reaches "
        "it ('severity=~\"^(?:minor|major|critical)$\"' matches every severity an alert can "
        "have (minor, major, critical); 'alert_id=~\"^(?:.+)$\"' matches any alert_id); match "
        "on a label that tells the alerts apart, or leave the matchers out if every alert is "
        "meant",
        f"{routing}:15: inhibit_rules.0.source_matchers: its source side matches every alert "
        "('category=~\"|.+\"' matches any category and an alert without category), so any "
        "firing alert its target matchers do not match mutes every alert they match with the "
        "same district; give the side matchers that tell the alerts apart",
        f"{routing}:19: inhibit_rules.1.target_matchers: its target side matches every alert "
        "(it has no matchers), so every alert its source matchers do not match is muted while "
        "one they match fires; give the side matchers that tell the alerts apart",
        f"{routing}:20: inhibit_rules.2.source_matchers: both sides match every alert (source "
        "('source=~\"sensor|citizen\"' matches every source an alert can have (sensor, "
        "citizen)), target ('alert_id!=\"\"' matches any alert_id, and every alert citybrain "
        "raises has one)), so this rule mutes nothing: an alert matching both sides never "
        "mutes another that does (as in Alertmanager); give the side matchers that tell the "
        "alerts apart",
    ]
    # The check prints the same lines as warnings and keeps its status.
    assert main(["playbooks", "check", "--routing", str(routing)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [e for e in err if "no route names playbook" not in e] == [
        f"citybrain: warning: {line}" for line in found.catch_all
    ]


def test_an_entry_of_no_matchers_stays_an_error_not_a_warning(tmp_path: Path) -> None:
    # `{}` as a matchers: entry is refused (docs/playbooks.md): the warnings are of files
    # that load.
    from playbooks.errors import RoutingConfigError

    with pytest.raises(RoutingConfigError, match=r"inhibit_rules\.2\.source_matchers\.0"):
        alerting(tmp_path, CATCH_ALL)


def test_the_library_routing_matches_no_alert_wholesale(tmp_path: Path) -> None:
    text = (REPO_ROOT / "playbooks" / "library" / "routing.yaml").read_text()
    assert alerting(tmp_path, text).catch_all == []


@pytest.mark.parametrize(
    ("matchers", "why"),
    [
        ("['alert_id!~\"^$\"']", "'alert_id!~\"^$\"' matches any alert_id, and every alert"),
        ("['alert_id!~\"a{0}\"']", "'alert_id!~\"a{0}\"' matches any alert_id, and every"),
        ("['category!~\"x^\"', 'alert_id=~\".+\"']", "('x^' matches no text)"),
    ],
)
def test_routes_matching_every_alert_through_a_regex_of_no_text_are_warned_of(
    tmp_path: Path, matchers: str, why: str
) -> None:
    """t203, the silences' sibling: a route of ``!=""`` written as a regex (``!~"^$"``) on
    a label every alert carries, or of ``!~`` a regex matching nothing, takes every alert
    that reaches it, as Alertmanager routes it; said by playbooks check as a route of
    ``alert_id!=""`` is. Fails on the old code (no warning)."""
    text = ROOT + f"  routes:\n    - {{matchers: {matchers}, playbook: flash-flood}}\n"
    text += "    - {matchers: ['kind=\"pm25\"'], playbook: air-pollution}\n"
    [line] = alerting(tmp_path, text).catch_all
    assert "route.routes.0.matchers: this route matches every alert that reaches it" in line
    assert why in line, line
