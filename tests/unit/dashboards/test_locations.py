"""Cell positions for the control room's Geomap: one recording rule per placed community
cell of a grid file (issue 15, item 12)."""

from __future__ import annotations

import yaml

from dashboards.generate import load
from dashboards.rules import CELL_LOCATION, location_rules
from streams.settings import REPO_ROOT


def test_one_rule_per_placed_community_cell() -> None:
    grid = yaml.safe_load((REPO_ROOT / "tests" / "fixtures" / "grid.yaml").read_text())
    (group,) = location_rules(grid)["groups"]
    assert [r["labels"]["community"] for r in group["rules"]] == ["c-bridge", "c-mill", "c-top"]
    first = group["rules"][0]
    assert first == {
        "record": CELL_LOCATION,
        "expr": "vector(1)",
        "labels": {
            "community": "c-bridge",
            "name": "Bridge",
            "lat": "39.310000",
            "lon": "-76.720000",
        },
    }


def test_the_city_overview_has_a_geomap_joined_on_the_positions() -> None:
    doc = load(
        REPO_ROOT / "dashboards" / "generated" / "dashboards" / "citybrain-city-overview.json"
    )
    (panel,) = [p for p in doc["panels"] if p.get("type") == "geomap"]
    alerts, runs = panel["targets"]
    assert "citybrain_cell_alerts_total" in alerts["expr"]
    assert "citybrain_cell_runs_open" in runs["expr"]
    for target in (alerts, runs):
        assert CELL_LOCATION in target["expr"] and target["format"] == "table"
        assert target["instant"]
    layers = panel["options"]["layers"]
    # Two queries: Grafana names the value columns "Value #A" and "Value #B".
    for layer, ref in zip(layers, ("A", "B"), strict=True):
        assert layer["location"] == {"mode": "coords", "latitude": "lat", "longitude": "lon"}
        assert layer["filterData"] == {"id": "byRefId", "options": ref}
        assert layer["config"]["style"]["size"]["field"] == f"Value #{ref}"
