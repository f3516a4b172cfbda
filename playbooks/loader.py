"""The only module that opens files: grid files and playbook YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from playbooks.errors import GridError, PlaybookConfigError
from playbooks.grid import Cell, Grid, SensorRegistration
from playbooks.schema import Playbook

GRID_KEYS = {"version", "cells", "sensors"}
CELL_KEYS = {"id", "level", "name", "unit", "parent"}
SENSOR_KEYS = {"id", "kind", "unit", "cell"}


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except OSError as exc:
        raise PlaybookConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PlaybookConfigError(f"{path}: not valid YAML: {exc}") from exc


def _entries(path: Path, doc: dict[str, Any], key: str, allowed: set[str]) -> list[dict[str, Any]]:
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        raise GridError(f"{path}: {key!r} is a {type(entries).__name__}, expected a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise GridError(f"{path}: {key} entry {i} is not a mapping")
        unknown = set(entry) - allowed
        if unknown:
            raise GridError(f"{path}: {key} entry {i}: unknown keys {sorted(unknown)}")
        missing = (allowed - {"parent"}) - set(entry)
        if missing:
            raise GridError(f"{path}: {key} entry {i}: missing keys {sorted(missing)}")
    return entries


def load_grid(path: str | Path) -> Grid:
    """Load a grid file (format in docs/events.md) and check every cross-reference."""
    path = Path(path)
    doc = _read_yaml(path)
    if not isinstance(doc, dict):
        raise GridError(f"{path}: expected a mapping with 'cells' and 'sensors'")
    unknown = set(doc) - GRID_KEYS
    if unknown:
        raise GridError(f"{path}: unknown keys {sorted(unknown)}")
    if doc.get("version") != 1:
        raise GridError(f"{path}: version is {doc.get('version')!r}, expected 1")
    cells = [
        Cell(
            id=str(e["id"]),
            level=str(e["level"]),
            name=str(e["name"]),
            unit=str(e["unit"]),
            parent=None if e.get("parent") is None else str(e["parent"]),
        )
        for e in _entries(path, doc, "cells", CELL_KEYS)
    ]
    sensors = [
        SensorRegistration(
            id=str(e["id"]), kind=str(e["kind"]), unit=str(e["unit"]), cell=str(e["cell"])
        )
        for e in _entries(path, doc, "sensors", SENSOR_KEYS)
    ]
    try:
        return Grid.build(cells, sensors)
    except GridError as exc:
        raise GridError(f"{path}: {exc}") from exc


def load_playbook(path: str | Path) -> Playbook:
    """Load and validate one playbook; errors name the file, the entry and the reason."""
    path = Path(path)
    doc = _read_yaml(path)
    try:
        return Playbook.model_validate(doc)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PlaybookConfigError(f"{path}: {reasons}") from exc


def default_playbook_path() -> Path:
    return Path(__file__).parent / "library" / "sensor-anomaly.yaml"
