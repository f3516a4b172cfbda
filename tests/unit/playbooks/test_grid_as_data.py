"""The grid and sensor registry as data: each kind of fault trial 24 found in a grid file
is a `file:line: reason` naming the field and value (docs/events.md, "Grid file";
siblings of issue 12 item 10 and issue 15 item 12)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from playbooks.errors import GridError, PlaybookError
from playbooks.loader import load_grid
from tests.unit.citybrain.test_cli_errors import worker_refusal

CELLS = """cells:
  - {id: c, level: city, name: C, unit: u}
  - {id: d, level: district, parent: c, name: D, unit: u}
  - {id: s, level: street, parent: d, name: S, unit: u}
  - {id: k, level: community, parent: s, name: K, unit: u}
  - {id: k2, level: community, parent: s, name: K2, unit: u}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(PlaybookError) as err:
        load_grid(path)
    return str(err.value)


def _boundary(geometry: str) -> str:
    return "version: 1\n" + CELLS.replace(
        "name: K2, unit: u}", f"name: K2, unit: u, geometry: {geometry}}}"
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # true and 1.0 equal 1 in Python: both were taken for version 1.
        ("version: true\n" + CELLS, 1, "version is true, expected 1"),
        ("version: 1.0\n" + CELLS, 1, "version is 1.0, expected 1"),
        # A grid without cells loaded, and its worker dead-lettered every reading.
        ("version: 1\n", 1, "cells is missing, expected at least one city cell"),
        ("version: 1\ncells: []\nsensors: []\n", 2, "cells is empty, expected at least one"),
        # A single-value range: every varying reading out_of_range.
        (
            "version: 1\nkinds:\n  - {id: wd, unit: m3/s, min: 1, max: 1}\n" + CELLS,
            3,
            "kind 'wd': min and max are both 1, expected min below max",
        ),
        # Padded or empty text never equals what a reading sends.
        (
            "version: 1\nkinds:\n  - {id: wd, unit: ' m3/s', min: 0, max: 1}\n" + CELLS,
            3,
            "kinds entry 1: unit is ' m3/s', expected text without leading or trailing spaces",
        ),
        (
            "version: 1\n"
            + CELLS
            + "  - {id: '', level: community, parent: s, name: E, unit: u}\n",
            8,
            "cells entry 6: id is '', expected non-empty text",
        ),
        # Look-alike spellings: µ/μ, ³, fullwidth solidus, subscript digits.
        (
            'version: 1\nkinds:\n  - {id: wd, unit: "\u00b5g/m\u00b3", min: 0, max: 1}\n' + CELLS,
            3,
            "kinds entry 1: unit is '\u00b5g/m\u00b3', which has look-alike characters; "
            "write it 'ug/m3'",
        ),
        (
            "version: 1\n" + CELLS + "sensors:\n  - {id: x, kind: traffic_speed, "
            'unit: "km\uff0fh", cell: k}\n',
            9,
            "sensors entry 1: unit is 'km\uff0fh', which has look-alike characters; write it 'km/h'",
        ),
        (
            "version: 1\n" + CELLS + 'sensors:\n  - {id: x, kind: "pm\u2082\u2085", '
            "unit: ug/m3, cell: k}\n",
            9,
            "sensors entry 1: kind is 'pm\u2082\u2085', which has look-alike characters; "
            "write it 'pm25'",
        ),
        # Invisible format characters: 'x\u200b' looks like the 'x' a feed sends, and
        # every reading of it was dead-lettered as unknown_sensor (t54).
        (
            "version: 1\n" + CELLS + 'sensors:\n  - {id: "x\u200b", kind: pm25, '
            "unit: ug/m3, cell: k}\n",
            9,
            "sensors entry 1: id is 'x\\u200b', which holds an invisible format character",
        ),
        (
            "version: 1\n" + CELLS + 'sensors:\n  - {id: x, kind: pm25, unit: "ug/m3\u200e", '
            "cell: k}\n",
            9,
            "sensors entry 1: unit is 'ug/m3\\u200e', which holds an invisible format",
        ),
        (
            "version: 1\n"
            + CELLS
            + '  - {id: "k\ufeff3", level: community, parent: s, name: E, unit: u}\n',
            8,
            "cells entry 6: id is 'k\\ufeff3', which holds an invisible format character",
        ),
        # t186: a line or paragraph separator in an id, and a NEL or other control
        # character in a unit, kind, cell or parent (only an id's were refused).
        (
            "version: 1\n" + CELLS + 'sensors:\n  - {id: "x\\u2028y", kind: pm25, '
            "unit: ug/m3, cell: k}\n",
            9,
            "sensors entry 1: id is 'x\\u2028y', which holds a line separator (U+2028) at character 2, "
            "expected visible text",
        ),
        (
            "version: 1\n" + CELLS + "sensors:\n  - {id: x, kind: pm25, unit: ug/m3, "
            'cell: "k\\u2029"}\n',
            9,
            "sensors entry 1: cell is 'k\\u2029', which holds a paragraph separator (U+2029)",
        ),
        (
            "version: 1\n" + CELLS + 'sensors:\n  - {id: x, kind: pm25, unit: "ug/m3\\N", '
            "cell: k}\n",
            9,
            "sensors entry 1: unit is 'ug/m3\\x85', which holds a control character (U+0085)",
        ),
        (
            "version: 1\n" + CELLS + "sensors:\n  - {id: x, kind: pm25, unit: ug/m3, "
            'cell: "\\u2067k"}\n',
            9,
            "sensors entry 1: cell is '\\u2067k', which holds an invisible format character "
            "(U+2067, RIGHT-TO-LEFT ISOLATE, a bidirectional control) at character 1",
        ),
        # One sensor in two cells: which registration judges its readings is no guess.
        (
            "version: 1\n" + CELLS + "sensors:\n  - {id: x, kind: pm25, unit: ug/m3, cell: k}\n"
            "  - {id: x, kind: pm10, unit: ug/m3, cell: k2}\n",
            10,
            "sensor 'x' is registered twice: first as pm25 in cell 'k', again as pm10 in cell 'k2'",
        ),
        # lat 91 with lon 39: the pair given the other way round.
        (
            "version: 1\n" + CELLS + "sensors:\n  - {id: x, kind: pm25, unit: ug/m3, cell: k, "
            "lat: 116.4, lon: 39.9}\n",
            9,
            "sensor 'x': lat is 116.4, expected degrees in [-90, 90] (lat and lon swapped?)",
        ),
        # A merge list whose mappings both bring `kind`: the YAML spec lets the first win,
        # PyYAML the last; the sensor silently took the second's kind and cell.
        (
            "version: 1\n" + CELLS + "sensors:\n  - &a {id: x, kind: pm25, unit: ug/m3, cell: k}\n"
            "  - &b {id: y, kind: pm10, unit: ug/m3, cell: k2}\n  - {<<: [*a, *b], id: z}\n",
            11,
            "key 'kind' comes from two mappings of one merge (lines 9 and 10)",
        ),
    ],
)
def test_a_registry_fault_is_a_line_naming_field_and_value(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    error = _error(tmp_path, text)
    assert f"{tmp_path / 'grid.yaml'}:{line}: " in error
    assert message in error, error


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        # true was taken for the number 1.
        (
            "{type: Polygon, coordinates: [[[0, 0], [true, 0], [1, 1], [0, 0]]]}",
            "geometry ring 0 position 1 is [true, 0], expected [lon, lat] in degrees",
        ),
        (
            "{type: Polygon, coordinates: [[[0, 0], [.nan, 0], [1, 1], [0, 0]]]}",
            "geometry ring 0 position 1 is [NaN, 0], expected [lon, lat] in degrees",
        ),
        # An integer past a double raised OverflowError (a traceback) instead.
        (
            "{type: Polygon, coordinates: [[[0, 0], [1, 1.0e+999999], [1, 1], [0, 0]]]}",
            "geometry ring 0 position 1 is [1, Infinity], expected [lon, lat] in degrees",
        ),
        (
            "{type: Polygon, coordinates: [[[0, 0], [1, 0, 2, 3], [1, 1], [0, 0]]]}",
            "geometry ring 0 position 1 is [1, 0, 2, 3], expected [lon, lat]",
        ),
        (
            "{type: Polygon, coordinates: [[[0, 0], [0, 100], [1, 1], [0, 0]]]}",
            "geometry ring 0 position 1 is [0, 100]: longitude must be in [-180, 180] and "
            "latitude in [-90, 90], [lon, lat] in that order (lat and lon swapped?)",
        ),
        (
            "{type: Polygon, coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1]]]}",
            "geometry rings must be closed: ring 0 starts at [0.0, 0.0] and ends at [0.0, 1.0]",
        ),
        (
            "{type: MultiPolygon, coordinates: [[[0, 0], [1, 0], [1, 1], [0, 0]]]}",
            "geometry polygon 0 ring 0 is [0, 0], expected a closed list of at least four",
        ),
        ("{type: Polygon, coordinates: []}", "geometry is [], expected a list of rings"),
        ("{type: MultiPolygon, coordinates: []}", "geometry coordinates are [], expected a list"),
        (
            "{type: Polygon, coordinates: [[[0, 0], [1, 1], [2, 2], [0, 0]]]}",
            "geometry ring 0 encloses no area",
        ),
        (
            "{type: Polygon, coordinates: [[[0, 0], [1, 0], [1, 1], [0, 0]]], fill: red}",
            "geometry has unknown keys ['fill'], expected type and coordinates",
        ),
        (
            "{type: Point, coordinates: [1, 2]}",
            "geometry must be a GeoJSON Polygon or MultiPolygon (type is 'Point')",
        ),
    ],
)
def test_a_bad_boundary_names_ring_position_and_value(
    tmp_path: Path, geometry: str, message: str
) -> None:
    error = _error(tmp_path, _boundary(geometry))
    assert f"{tmp_path / 'grid.yaml'}:7: cell 'k2': " in error
    assert message in error, error


@pytest.mark.parametrize("position", ["[1, " + "9" * 400 + "]", "[1, 0, " + "9" * 400 + "]"])
def test_a_boundary_position_of_400_digits_is_refused_where_it_is_written(
    tmp_path: Path, position: str
) -> None:
    # An integer past a double (an OverflowError before 294450dc) is refused as the YAML
    # is read, as every YAML number past the largest float is since t190, at its line.
    geometry = f"{{type: Polygon, coordinates: [[[0, 0], {position}, [1, 1], [0, 0]]]}}"
    error = _error(tmp_path, _boundary(geometry))
    assert error.startswith(f"{tmp_path / 'grid.yaml'}:7: the number '9999"), error
    assert "(400 characters) is too large" in error, error


def _signed_area(ring: list[list[float]]) -> float:
    return sum(a[0] * b[1] - b[0] * a[1] for a, b in itertools.pairwise(ring))


def test_a_boundary_of_either_winding_is_taken_and_rewound_to_the_right_hand_rule(
    tmp_path: Path,
) -> None:
    # RFC 7946 3.1.6: do not refuse the other winding. An SVG path (nonzero fill) draws
    # a hole wound like its outer ring as filled, so rings are rewound on load.
    outer_cw = "[[0, 0], [0, 4], [4, 4], [4, 0], [0, 0]]"
    hole_ccw = "[[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]]"
    grid = load_grid(
        _write(tmp_path, _boundary(f"{{type: Polygon, coordinates: [{outer_cw}, {hole_ccw}]}}"))
    )
    geometry = grid.cells["k2"].geometry
    assert geometry is not None
    outer, hole = geometry["coordinates"]
    assert _signed_area(outer) > 0 > _signed_area(hole)
    assert sorted(map(tuple, outer)) == sorted([(0, 0), (0, 4), (4, 4), (4, 0), (0, 0)])


def test_a_boundary_across_the_antimeridian_is_wound_as_the_small_cell_it_is(
    tmp_path: Path,
) -> None:
    # Counter-clockwise across 180 (179 -> 181 east); in raw longitudes it reads the
    # other way round, which rewinding by raw area would have reversed.
    ring = "[[179, 0], [-179, 0], [-179, 1], [179, 1], [179, 0]]"
    grid = load_grid(_write(tmp_path, _boundary(f"{{type: Polygon, coordinates: [{ring}]}}")))
    geometry = grid.cells["k2"].geometry
    assert geometry is not None
    assert geometry["coordinates"][0][:2] == [[179.0, 0.0], [-179.0, 0.0]]


def test_a_merge_whose_own_keys_settle_it_loads_as_yaml_means(tmp_path: Path) -> None:
    text = (
        "version: 1\n" + CELLS + "sensors:\n  - &a {id: x, kind: pm25, unit: ug/m3, cell: k}\n"
        "  - &b {id: y, kind: pm10, unit: ug/m3, cell: k2}\n"
        "  - {<<: [*a, *b], id: z, kind: pm10, cell: k2}\n  - {<<: *a, id: w}\n"
    )
    grid = load_grid(_write(tmp_path, text))
    assert (grid.sensors["z"].kind, grid.sensors["z"].cell) == ("pm10", "k2")
    assert (grid.sensors["w"].kind, grid.sensors["w"].cell) == ("pm25", "k")


def test_an_alias_of_a_whole_sensor_is_a_second_registration(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        + CELLS
        + "sensors:\n  - &a {id: x, kind: pm25, unit: ug/m3, cell: k}\n  - *a\n"
    )
    # The line is the anchor's: an alias is the very node it names.
    with pytest.raises(GridError, match=r"grid.yaml:9: sensor 'x' is registered twice"):
        load_grid(_write(tmp_path, text))


def test_the_worker_refuses_such_a_grid_with_the_same_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path, _boundary("{type: Polygon, coordinates: [[[0, 0], [true, 0], [1, 1], [0, 0]]]}")
    )
    assert worker_refusal(tmp_path, {"CITYBRAIN_GRID_FILE": str(path)}) == [
        f"citybrain: CITYBRAIN_GRID_FILE {path}:7: cell 'k2': geometry ring 0 position 1 is "
        "[true, 0], expected [lon, lat] in degrees"
    ]
