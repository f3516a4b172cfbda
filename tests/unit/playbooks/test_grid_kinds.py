"""Sensor kinds are data (issue 12 item 10): declared in the grid with unit and range."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.errors import GridError, PlaybookError
from playbooks.grid import DEFAULT_KINDS, SensorKind
from playbooks.loader import load_grid

CELLS = """\
cells:
  - {id: city, level: city, name: City, unit: u}
  - {id: d, level: district, parent: city, name: D, unit: u}
  - {id: s, level: street, parent: d, name: S, unit: u}
  - {id: c, level: community, parent: s, name: C, unit: u}
"""
DISCHARGE = "  - {id: water_discharge, unit: m3/s, min: 0, max: 100000}\n"


def grid_file(tmp_path: Path, kinds: str, sensors: str) -> Path:
    path = tmp_path / "grid.yaml"
    text = "version: 1\n" + (f"kinds:\n{kinds}" if kinds else "") + CELLS
    path.write_text(text + f"sensors:\n{sensors}")
    return path


def test_a_declared_kind_is_registered_with_its_unit_and_range(tmp_path: Path) -> None:
    sensors = "  - {id: q1, kind: water_discharge, unit: m3/s, cell: c}\n"
    grid = load_grid(grid_file(tmp_path, DISCHARGE, sensors))
    assert grid.kinds["water_discharge"] == SensorKind("water_discharge", "m3/s", 0.0, 100000.0)
    assert grid.kinds["pm25"] == DEFAULT_KINDS["pm25"]  # built-ins stay


def test_grids_without_kinds_get_the_built_in_ones(tmp_path: Path) -> None:
    grid = load_grid(grid_file(tmp_path, "", "  - {id: a, kind: pm25, unit: ug/m3, cell: c}\n"))
    assert grid.kinds == DEFAULT_KINDS


def test_a_declared_kind_may_replace_a_built_in_range(tmp_path: Path) -> None:
    kinds = "  - {id: pm25, unit: ug/m3, min: 0, max: 1500}\n"
    grid = load_grid(grid_file(tmp_path, kinds, ""))
    assert grid.kinds["pm25"].max == 1500.0


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("1e5", 1e5),
        ("1E5", 1e5),
        ("+1e5", 1e5),
        ("1.5e308", 1.5e308),
        (".5e3", 500.0),
        ("1.7976931348623157e308", 1.7976931348623157e308),
        ("1.0e+5", 1e5),  # YAML 1.1's own form, read as before
    ],
)
def test_a_bound_with_an_exponent_is_the_number_it_is_everywhere(
    tmp_path: Path, written: str, value: float
) -> None:
    # t63: PyYAML's YAML 1.1 resolver left 1e5 text ('max is '1e5', expected a number'),
    # though a reading's value, a CSV row and YAML 1.2 (go-yaml too) read it as 100000.
    kinds = f"  - {{id: q, unit: m3/s, min: -{written.lstrip('+')}, max: {written}}}\n"
    grid = load_grid(grid_file(tmp_path, kinds, ""))
    assert (grid.kinds["q"].min, grid.kinds["q"].max) == (-value, value)


def test_an_id_written_like_a_number_with_an_exponent_stays_its_text(tmp_path: Path) -> None:
    sensors = "  - {id: 1e5, kind: water_discharge, unit: m3/s, cell: c}\n"
    grid = load_grid(grid_file(tmp_path, DISCHARGE, sensors))
    assert list(grid.sensors) == ["1e5"]


def test_a_bound_past_a_double_written_with_an_exponent_is_not_finite(tmp_path: Path) -> None:
    path = grid_file(tmp_path, "  - {id: q, unit: m3/s, min: 0, max: 1e999}\n", "")
    with pytest.raises(GridError, match=r"grid.yaml:3: .*max is inf"):
        load_grid(path)


@pytest.mark.parametrize(
    ("kinds", "sensors", "line", "message"),
    [
        (
            "",
            "  - {id: q1, kind: water_discharge, unit: m3/s, cell: c}\n",
            8,
            "sensor 'q1': kind 'water_discharge' is not declared",
        ),
        (
            DISCHARGE,
            "  - {id: a, kind: pm25, unit: ug/m3, cell: c}\n"
            "  - {id: q1, kind: water_discharge, unit: ft3/s, cell: c}\n",
            11,
            "sensor 'q1': unit is 'ft3/s', kind water_discharge is measured in 'm3/s'",
        ),
        (DISCHARGE + DISCHARGE, "", 4, "kind 'water_discharge' is declared twice"),
        ("  - {id: q, unit: m3/s, min: 5, max: 1}\n", "", 3, "min 5 is above max 1"),
        ("  - {id: q, unit: m3/s, min: 0, max: .inf}\n", "", 3, "max is inf"),
        ("  - {id: q, unit: m3/s, min: low, max: 1}\n", "", 3, "min is 'low', expected a number"),
        ("  - {id: Water Flow, unit: m3/s, min: 0, max: 1}\n", "", 3, "lower-case letters"),
        ("  - {id: incident_burst, unit: n, min: 0, max: 1}\n", "", 3, "reserved"),
        ("  - {id: q, unit: m3/s, max: 1}\n", "", 3, "kinds entry 1: missing keys ['min']"),
    ],
)
def test_kind_faults_name_file_and_line(
    tmp_path: Path, kinds: str, sensors: str, line: int, message: str
) -> None:
    path = grid_file(tmp_path, kinds, sensors)
    with pytest.raises(GridError) as info:
        load_grid(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert message in str(info.value)


def test_a_latin1_grid_is_a_file_line_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_bytes(b"version: 1\ncells:\n  - {id: a, level: city, name: Ca\xf1ada, unit: u}\n")
    with pytest.raises(PlaybookError) as info:
        load_grid(path)
    assert str(info.value).startswith(f"{path}:3: byte 0xf1 at column 34 is not UTF-8")
