"""The four-level grid of responsibility (city > district > street > community) as data.

Every cell names its parent and the unit responsible for it; sensors are registered to
community cells. Escalation walks up this tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from playbooks.errors import GridError

# Lowest first: escalation moves to the next entry.
LEVELS: tuple[str, ...] = ("community", "street", "district", "city")
PARENT_LEVEL: dict[str, str] = {LEVELS[i]: LEVELS[i + 1] for i in range(len(LEVELS) - 1)}


@dataclass(frozen=True, slots=True)
class Cell:
    """A cell of the grid. ``lat``/``lon`` (WGS84 degrees) mark a point for it on a map;
    ``geometry`` is its boundary as a GeoJSON Polygon or MultiPolygon (lon, lat pairs).
    Both optional."""

    id: str
    level: str
    name: str
    unit: str
    parent: str | None
    lat: float | None = None
    lon: float | None = None
    geometry: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SensorRegistration:
    """A sensor registered to a community cell; ``lat``/``lon`` (WGS84 degrees) where
    it stands, when its source says."""

    id: str
    kind: str
    unit: str
    cell: str
    lat: float | None = None
    lon: float | None = None


@dataclass(slots=True)
class Grid:
    """Cells by id and sensors by id; build with ``Grid.build`` to get every check."""

    cells: dict[str, Cell]
    sensors: dict[str, SensorRegistration] = field(default_factory=dict)

    @classmethod
    def build(cls, cells: list[Cell], sensors: list[SensorRegistration]) -> Grid:
        by_id: dict[str, Cell] = {}
        for cell in cells:
            if cell.level not in LEVELS:
                raise GridError(
                    f"cell {cell.id!r}: level is {cell.level!r}, expected one of {list(LEVELS)}"
                )
            if cell.id in by_id:
                raise GridError(f"cell {cell.id!r} is listed twice")
            by_id[cell.id] = cell
        for cell in by_id.values():
            if cell.level == "city":
                if cell.parent is not None:
                    raise GridError(f"cell {cell.id!r}: a city cell has no parent")
                continue
            if cell.parent is None or cell.parent not in by_id:
                raise GridError(f"cell {cell.id!r}: parent {cell.parent!r} is not a cell")
            parent_level = by_id[cell.parent].level
            if parent_level != PARENT_LEVEL[cell.level]:
                raise GridError(
                    f"cell {cell.id!r}: parent {cell.parent!r} is a {parent_level}, "
                    f"expected a {PARENT_LEVEL[cell.level]}"
                )
        registered: dict[str, SensorRegistration] = {}
        for sensor in sensors:
            if sensor.id in registered:
                raise GridError(f"sensor {sensor.id!r} is registered twice")
            if sensor.cell not in by_id:
                raise GridError(f"sensor {sensor.id!r}: cell {sensor.cell!r} is not a cell")
            if by_id[sensor.cell].level != "community":
                raise GridError(
                    f"sensor {sensor.id!r}: cell {sensor.cell!r} is a "
                    f"{by_id[sensor.cell].level}, sensors register to community cells"
                )
            registered[sensor.id] = sensor
        return cls(cells=by_id, sensors=registered)

    def cell(self, cell_id: str) -> Cell:
        try:
            return self.cells[cell_id]
        except KeyError:
            raise GridError(f"grid cell {cell_id!r} is not in the grid") from None

    def ancestor(self, cell_id: str, level: str) -> Cell:
        """The cell at ``level`` that contains ``cell_id`` (the cell itself at its own level)."""
        if level not in LEVELS:
            raise GridError(f"level is {level!r}, expected one of {list(LEVELS)}")
        cell = self.cell(cell_id)
        while cell.level != level:
            if cell.parent is None:
                raise GridError(f"grid cell {cell_id!r} has no ancestor at level {level!r}")
            cell = self.cells[cell.parent]
        return cell

    def responsible_unit(self, cell_id: str, level: str) -> str:
        return self.ancestor(cell_id, level).unit

    def path(self, cell_id: str) -> dict[str, str]:
        """Ids of the cell and its ancestors by level, e.g. ``{"community": .., "city": ..}``."""
        out: dict[str, str] = {}
        cell: Cell | None = self.cell(cell_id)
        while cell is not None:
            out[cell.level] = cell.id
            cell = self.cells[cell.parent] if cell.parent else None
        return out
