"""Cell positions for the control room's Geomap: one recording rule per placed community
cell of a grid file (issue 15, item 12)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from citybrain.stack.prometheus import PrometheusServer
from dashboards.generate import load
from dashboards.rules import CELL_LOCATION, location_rules
from streams.settings import REPO_ROOT, Settings


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


def test_a_cell_name_holding_a_yaml_line_break_reaches_prometheus_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t169: a grid cell's name is free text, and one holding a NEL (``"To\\Np"`` in the
    grid file) was written into the rules file raw in a single-quoted scalar, which
    Prometheus (go-yaml) and PyYAML both read as a folded line break: the series was
    labelled name="To p". promtool evaluates the rules file the stack writes. Fails on
    the old code."""
    grid = (REPO_ROOT / "tests" / "fixtures" / "grid.yaml").read_text()
    names = {"Top": "To\\Np", "Mill": "Mi\\Ll", "Bridge": "Bri\\Pdge \\N"}
    for name, written in names.items():
        grid = grid.replace(f"name: {name},", f'name: "{written}",')
    (tmp_path / "grid.yaml").write_text(grid)
    monkeypatch.setenv("CITYBRAIN_GRID_FILE", str(tmp_path / "grid.yaml"))
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path / "run"))
    prom = PrometheusServer(Settings())
    prom.write_locations()
    read = {
        r["labels"]["community"]: r["labels"]["name"]
        for r in yaml.safe_load(prom.locations.read_text())["groups"][0]["rules"]
    }
    expected = {"c-top": "To\x85p", "c-mill": "Mi\u2028l", "c-bridge": "Bri\u2029dge \x85"}
    assert read == expected
    samples = [
        {
            "labels": f'{CELL_LOCATION}{{community="{cell}",name={json.dumps(name)},'
            f'lat="{lat}",lon="{lon}"}}',
            "value": 1,
        }
        for cell, name, lat, lon in (
            ("c-bridge", expected["c-bridge"], "39.310000", "-76.720000"),
            ("c-mill", expected["c-mill"], "39.300000", "-76.700000"),
            ("c-top", expected["c-top"], "39.330000", "-76.690000"),
        )
    ]
    test = {
        "rule_files": [str(prom.locations)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [],
                "promql_expr_test": [
                    {"expr": CELL_LOCATION, "eval_time": "1m", "exp_samples": samples}
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    done = subprocess.run(
        [shutil.which("promtool") or "promtool", "test", "rules", str(tmp_path / "test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_cell_id_written_as_a_number_is_the_worker_s_id_in_the_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t190: the worker reads a grid id written as an integer as its text (``0x1F``,
    ``1_000``); the stack read the grid for the map with the plain YAML reader, and
    labelled the cell "31" and "1000": the Geomap joined no alert of either cell."""
    grid = (REPO_ROOT / "tests" / "fixtures" / "grid.yaml").read_text()
    grid = grid.replace("id: c-top,", "id: 0x1F,").replace("cell: c-top", "cell: 0x1F")
    grid = grid.replace("id: c-mill,", "id: 1_000,").replace("cell: c-mill", "cell: 1_000")
    (tmp_path / "grid.yaml").write_text(grid)
    monkeypatch.setenv("CITYBRAIN_GRID_FILE", str(tmp_path / "grid.yaml"))
    monkeypatch.setenv("CITYBRAIN_RUN_DIR", str(tmp_path / "run"))
    from playbooks.loader import load_grid

    prom = PrometheusServer(Settings())
    prom.write_locations()
    mapped = {
        r["labels"]["community"]
        for r in yaml.safe_load(prom.locations.read_text())["groups"][0]["rules"]
    }
    assert mapped == {"0x1F", "1_000", "c-bridge"}
    assert mapped <= set(load_grid(tmp_path / "grid.yaml").cells)
