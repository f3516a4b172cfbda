"""The city overview's map on the real Prometheus across a restart of Prometheus itself
with a cell moved in the grid file: the map places each cell once, where the grid now
says it is."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from citybrain.stack import PrometheusServer
from dashboards import city_overview
from dashboards.generate import expressions, load
from tests.services import FIXTURES, ROOT, Pipeline, shifted_port, stack_settings

pytestmark = pytest.mark.integration
OVERVIEW = ROOT / "dashboards" / "generated" / "dashboards" / f"{city_overview.UID}.json"
MAP = "Alerts opened in the last hour and open runs, by community cell"


def instant(url: str, expr: str) -> tuple[list[dict[str, Any]] | None, str]:
    """The query's rows, or None and Prometheus' error (a panel's red triangle)."""
    full = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(full, timeout=5) as resp:
            return json.load(resp)["data"]["result"], ""
    except urllib.error.HTTPError as exc:
        return None, exc.read().decode(errors="replace")


def test_a_cell_moved_in_the_grid_is_placed_once_after_prometheus_restarts(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path
) -> None:
    """The grid's c-bridge moves (lat 39.31 to 39.41) and the stack's Prometheus starts
    again, as the docs say to do. Its rules give c-bridge a new location series, but the
    old one, never marked stale by a Prometheus that stopped, stays visible for 5 min:
    the map's ``group_left`` join on ``community`` then found two series for c-bridge
    and the whole panel failed ("many-to-many matching not allowed"; t210). Now the
    newest location of each cell is the one joined."""
    (alerts_layer,) = [e for where, e in expressions(load(OVERVIEW)) if where == MAP][:1]
    grid = tmp_path / "grid.yaml"
    grid.write_text((FIXTURES / "grid.yaml").read_text())
    settings = stack_settings(tmp_path / "run").model_copy(
        update={"prometheus_port": shifted_port(29098), "grid_file": grid}
    )
    prom = PrometheusServer(settings, scrape_interval="1s")
    p = Pipeline(run_dir)  # a worker of the same grid, its cell counters at 0
    worker = p.worker().start()
    try:
        prom.start()
        rows: list[dict[str, Any]] | None = None
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            rows, error = instant(prom.url, alerts_layer)
            if rows and any(r["metric"]["community"] == "c-bridge" for r in rows):
                break
            time.sleep(1)
        assert rows, f"the map showed no cell before the move: {error}"
        assert prom.stop()
        grid.write_text(grid.read_text().replace("lat: 39.31,", "lat: 39.41,"))
        prom.start()
        answers = []
        give_up = time.monotonic() + 20
        while time.monotonic() < give_up:
            rows, error = instant(prom.url, alerts_layer)
            answers.append((rows, error))
            time.sleep(1)
    finally:
        prom.stop()
        worker.stop()
        p.close()
    errors = [error for rows, error in answers if rows is None]
    assert not errors, f"{len(errors)} of {len(answers)} answers were errors: {errors[0]}"
    last = answers[-1][0] or []
    bridge = [r["metric"] for r in last if r["metric"]["community"] == "c-bridge"]
    assert [(b["lat"], b["lon"]) for b in bridge] == [("39.410000", "-76.720000")], last
