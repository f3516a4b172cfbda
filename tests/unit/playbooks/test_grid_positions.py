"""Optional positions in the grid file: lat/lon on sensors and cells, GeoJSON cell
boundaries (docs/events.md, issue 15 item 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.errors import GridError
from playbooks.loader import load_grid
from streams.settings import REPO_ROOT

HEAD = """version: 1
cells:
  - {id: c, level: city, name: C, unit: u}
  - {id: d, level: district, name: D, unit: u, parent: c}
  - {id: s, level: street, name: S, unit: u, parent: d}
"""
SQUARE = "{type: Polygon, coordinates: [[[10.0, 56.0], [10.1, 56.0], [10.1, 56.1], [10.0, 56.0]]]}"


def _grid(tmp_path: Path, community: str, sensor: str = "") -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(
        HEAD
        + f"  - {{id: k, level: community, name: K, unit: u, parent: s{community}}}\n"
        + f"sensors:\n  - {{id: x, kind: pm25, unit: ug/m3, cell: k{sensor}}}\n"
    )
    return path


def test_positions_and_a_boundary_load(tmp_path: Path) -> None:
    grid = load_grid(
        _grid(tmp_path, f", lat: 56.05, lon: 10.05, geometry: {SQUARE}", ", lat: 56.04, lon: 10.02")
    )
    cell, sensor = grid.cells["k"], grid.sensors["x"]
    assert (cell.lat, cell.lon, sensor.lat, sensor.lon) == (56.05, 10.05, 56.04, 10.02)
    assert cell.geometry is not None and cell.geometry["type"] == "Polygon"
    assert grid.cells["c"].lat is None and grid.cells["c"].geometry is None


@pytest.mark.parametrize(
    ("community", "sensor", "message"),
    [
        ("", ", lat: 56.0", "sensor 'x': give both lat and lon, or neither"),
        ("", ", lat: 91, lon: 0", "sensor 'x': lat is 91, expected degrees in [-90, 90]"),
        (", lat: 0, lon: east", "", "cell 'k': lon is 'east', expected degrees in [-180, 180]"),
        (
            ", geometry: {type: Point, coordinates: [1, 2]}",
            "",
            "cell 'k': geometry must be a GeoJSON Polygon or MultiPolygon",
        ),
        (
            ", geometry: {type: Polygon, coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1]]]}",
            "",
            "geometry rings must be closed",
        ),
        (", height: 3", "", "unknown keys ['height']"),
    ],
)
def test_bad_positions_are_named(tmp_path: Path, community: str, sensor: str, message: str) -> None:
    with pytest.raises(GridError, match=None) as err:
        load_grid(_grid(tmp_path, community, sensor))
    assert message in str(err.value)


def test_the_committed_grid_places_the_sensors_its_sources_place() -> None:
    grid = load_grid(REPO_ROOT / "datasets" / "grid.yaml")
    placed = {s.id for s in grid.sensors.values() if s.lat is not None}
    assert {s for s in grid.sensors if s.startswith("aarhus-")} <= placed
    assert {s for s in grid.sensors if s.startswith("usgs-01589330-")} <= placed
    # Aarhus is at about 56.2 N, 10.2 E; Baltimore's Dead Run at 39.3 N, 76.7 W.
    aarhus = grid.sensors["aarhus-158324-traffic_flow"]
    assert aarhus.lat is not None and aarhus.lon is not None
    assert 56.0 < aarhus.lat < 56.4 and 9.9 < aarhus.lon < 10.4
    # A ZIP cell is placed when some request in it has a position (most do).
    nyc = [c for c in grid.cells.values() if c.id.startswith("nyc-") and c.level == "community"]
    placed_nyc = [c for c in nyc if c.lat is not None]
    assert len(placed_nyc) > 0.8 * len(nyc)
    assert all(c.lat is not None and 40.4 < c.lat < 41.0 for c in placed_nyc)
