"""The four-level grid: lookups up the tree and strict loading with exact messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playbooks.errors import GridError, PlaybookError
from playbooks.grid import MAX_ID_CHARS, Grid
from playbooks.loader import load_grid

ROOT = Path(__file__).resolve().parents[3]


def test_ancestors_and_responsible_units(grid: Grid) -> None:
    assert grid.responsible_unit("c-bridge", "community") == "bridge community station"
    assert grid.responsible_unit("c-bridge", "street") == "river street office"
    assert grid.ancestor("c-top", "district").id == "d-east"
    assert grid.path("c-mill") == {
        "community": "c-mill",
        "street": "s-river",
        "district": "d-east",
        "city": "testcity",
    }


def test_committed_grid_loads_and_registers_every_sensor_to_a_community() -> None:
    g = load_grid(ROOT / "datasets" / "grid.yaml")
    assert len(g.sensors) >= 40
    assert all(g.cells[s.cell].level == "community" for s in g.sensors.values())
    assert {c.id for c in g.cells.values() if c.level == "city"} >= {"beijing", "aarhus"}


def test_unknown_cell_lookup(grid: Grid) -> None:
    with pytest.raises(GridError, match="grid cell 'nope' is not in the grid"):
        grid.cell("nope")


BAD_GRIDS = [
    ("cells: []\n", "version is missing, expected 1"),
    ("version: 1\nzones: []\n", "unknown keys ['zones']"),
    (
        "version: 1\ncells:\n  - {id: a, level: city, name: A, unit: u, colour: red}\n",
        "cells entry 1: unknown keys ['colour']",
    ),
    (
        "version: 1\ncells:\n  - {id: a, level: city, name: A}\n",
        "cells entry 1: missing keys ['unit']",
    ),
    (
        "version: 1\ncells:\n  - {id: a, level: town, name: A, unit: u}\n",
        "cell 'a': level is 'town'",
    ),
    (
        "version: 1\ncells:\n  - {id: a, level: district, name: A, unit: u, parent: zz}\n",
        "cell 'a': parent 'zz' is not a cell",
    ),
    (
        "version: 1\ncells:\n  - {id: a, level: city, name: A, unit: u}\n"
        "  - {id: b, level: street, name: B, unit: u, parent: a}\n",
        "cell 'b': parent 'a' is a city, expected a district",
    ),
    (
        "version: 1\ncells:\n  - {id: a, level: city, name: A, unit: u}\n"
        "sensors:\n  - {id: s, kind: pm25, unit: ug/m3, cell: a}\n",
        "sensor 's': cell 'a' is a city, sensors register to community cells",
    ),
    (
        "version: 1\ncells:\n  - {id: a, level: city, name: A, unit: u}\n"
        "  - {id: a, level: city, name: A, unit: u}\n",
        "cell 'a' is listed twice",
    ),
]


CHAIN = (
    "version: 1\ncells:\n  - {id: x, level: city, name: X, unit: u}\n"
    "  - {id: d, level: district, name: D, unit: u, parent: x}\n"
    "  - {id: s1, level: street, name: S, unit: u, parent: d}\n"
    "  - {id: c, level: community, name: C, unit: u, parent: s1}\n"
    "kinds:\n  - {id: k, unit: u, min: 0, max: 1}\n"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Each was str()'d and accepted: the unit "['u']", the sensor "[7]", the cell "['c']".
        (
            CHAIN.replace("{id: k, unit: u,", "{id: k, unit: [u],"),
            ":8: kinds entry 1: unit is ['u'], expected text",
        ),
        (
            CHAIN + "sensors:\n  - {id: [7], kind: k, unit: u, cell: c}\n",
            ":10: sensors entry 1: id is [7], expected text",
        ),
        (
            CHAIN.replace("{id: c,", "{id: {c: 1},"),
            ":6: cells entry 4: id is {'c': 1}, expected text",
        ),
        (
            CHAIN + "sensors:\n  - {id: s, kind: k, unit: u, cell: true}\n",
            ":10: sensors entry 1: cell is true, expected text (YAML reads an unquoted yes, "
            "no, on, off, true or false as true: quote the text, as 'on' or 'NO')",
        ),
        (CHAIN.replace("name: C,", "name: ~,"), ":6: cells entry 4: name is null, expected text"),
        # Ids are Kafka keys and parts of table keys (a burst window's joins cell and
        # category with the unit separator).
        (
            CHAIN.replace("{id: c,", '{id: "c\\x1fx",'),
            ":6: cells entry 4: id 'c\\x1fx' holds a control character, expected printable text",
        ),
        # Ids are label values Grafana's variables put unescaped inside PromQL strings.
        (
            CHAIN.replace("{id: c,", """{id: 'Old "Mill"',"""),
            """:6: cells entry 4: id 'Old "Mill"' holds a double quote or a backslash, """
            "expected an id without them (it is a label value the dashboards put in PromQL "
            "strings); a cell's name may hold any text",
        ),
        (
            CHAIN + "sensors:\n  - {id: 'gauge\\1', kind: k, unit: u, cell: c}\n",
            ":10: sensors entry 1: id 'gauge\\\\1' holds a double quote or a backslash, "
            "expected an id without them (it is a label value the dashboards put in PromQL "
            "strings); a cell's name may hold any text",
        ),
        # NaN passed `abs(value) > 90` as in range.
        (
            CHAIN + "sensors:\n  - {id: s, kind: k, unit: u, cell: c, lat: .nan, lon: 1}\n",
            ":10: sensor 's': lat is nan, expected degrees in [-90, 90]",
        ),
    ],
)
def test_grid_fields_of_the_wrong_type_are_file_line_errors(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(GridError) as info:
        load_grid(path)
    assert f"{path}{message}" in str(info.value).splitlines()


@pytest.mark.parametrize("section", ["sensors", "cells"])  # a kind's id: at most 64
def test_an_id_longer_than_any_message_about_it_may_carry_is_refused(
    tmp_path: Path, section: str
) -> None:
    """t198 found the grid took a sensor id of 1.1 MB: every reading of it was too large
    for one Kafka message. An id of ``MAX_ID_CHARS`` characters loads; one more is a
    file:line error naming the entry and the length (fails on the old code: it loaded)."""
    entry = {
        "sensors": "sensors:\n  - {id: ID, kind: k, unit: u, cell: c}\n",
        "cells": "  - {id: ID, level: community, name: C2, unit: u, parent: s1}\n",
    }[section]
    text = {
        "sensors": CHAIN + entry,
        "cells": CHAIN.replace("kinds:", entry.rstrip("\n") + "\nkinds:", 1),
    }[section]
    path = tmp_path / "grid.yaml"
    path.write_text(text.replace("ID", "s" * MAX_ID_CHARS))
    load_grid(path)
    long = "s" * (MAX_ID_CHARS + 1)
    path.write_text(text.replace("ID", long))
    with pytest.raises(GridError) as info:
        load_grid(path)
    said = str(info.value)
    assert f"id '{long[:60]}'... is {MAX_ID_CHARS + 1:,} characters long" in said, said
    assert f"expected at most {MAX_ID_CHARS}" in said


def test_an_integer_id_is_read_as_its_digits(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(CHAIN + "sensors:\n  - {id: 7, kind: k, unit: u, cell: c}\n")
    assert list(load_grid(path).sensors) == ["7"]


def test_a_key_given_twice_in_a_grid_is_a_file_line_error(tmp_path: Path) -> None:
    # PyYAML kept the second `kind:` silently: the sensor changed kind unseen.
    path = tmp_path / "grid.yaml"
    path.write_text(
        "version: 1\ncells:\n  - {id: a, level: community, name: A, unit: u}\n"
        "sensors:\n  - id: s\n    kind: pm25\n    unit: ug/m3\n    cell: a\n    kind: no2\n"
    )
    with pytest.raises(PlaybookError) as info:
        load_grid(path)
    assert str(info.value) == (
        f"{path}:9: not valid YAML: key 'kind' is given twice in one mapping (first on line 6); "
        "keep one (column 5)"
    )


@pytest.mark.parametrize(("text", "message"), BAD_GRIDS)
def test_bad_grid_files_name_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(GridError) as info:
        load_grid(path)
    assert re.match(rf"{re.escape(str(path))}:\d+: ", str(info.value))
    assert message in str(info.value)


def test_every_fault_of_a_grid_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    """Third new-user trial, item 7: one run names every mistake. An entry refused for its
    own keys is not reported again where others refer to it."""
    path = tmp_path / "grid.yaml"
    path.write_text(
        "version: 1\n"
        "kinds:\n"
        "  - {id: road_ice, unit: mm, min: 5, max: 1}\n"
        "cells:\n"
        "  - {id: x, level: city, name: X, unit: u}\n"
        "  - {id: d, level: district, name: D, unit: u, parnet: x}\n"
        "  - {id: s, level: street, name: S, unit: u, parent: d}\n"
        "  - {id: c, level: town, name: C, unit: u, parent: s}\n"
        "sensors:\n"
        "  - {id: a, kind: pm25, unit: ppm, cell: c}\n"
        "  - {id: b, kind: road_ice, unit: mm, cell: nowhere}\n"
    )
    with pytest.raises(GridError) as info:
        load_grid(path)
    assert str(info.value).splitlines() == [
        f"{path}:3: kind 'road_ice': min 5 is above max 1",
        f"{path}:6: cells entry 2: unknown keys ['parnet']: did you mean 'parent' for 'parnet'?",
        f"{path}:8: cell 'c': level is 'town', expected one of community, street, district, city",
        f"{path}:10: sensor 'a': unit is 'ppm', kind pm25 is measured in 'ug/m3'",
        f"{path}:11: sensor 'b': cell 'nowhere' is not a cell",
    ]


def test_an_entry_under_the_wrong_list_is_said_with_the_list_it_belongs_to(
    tmp_path: Path,
) -> None:
    """t200: a new city's cells appended at the end of a grid whose last list is
    `sensors:` were "unknown keys ['level', 'name']" and "missing keys ['cell', 'kind']",
    two lines an entry, none saying the entry is a cell under the wrong list. Each such
    entry (a cell, sensor or kind in another's list) is now one line naming its list."""
    path = tmp_path / "grid.yaml"
    path.write_text(
        "version: 1\n"
        "cells:\n"
        "  - {id: x, level: city, name: X, unit: u}\n"
        "  - {id: dd, level: district, name: DD, unit: u, parent: x}\n"
        "  - {id: st, level: street, name: ST, unit: u, parent: dd}\n"
        "  - {id: c, level: community, name: C, unit: u, parent: st}\n"
        "  - {id: s1, kind: pm25, unit: ug/m3, cell: c}\n"
        "sensors:\n"
        "  - {id: s2, kind: pm25, unit: ug/m3, cell: c}\n"
        "  - {id: d, level: district, name: D, unit: u, parent: x}\n"
        "  - {id: road_ice, unit: mm, min: 0, max: 50}\n"
        "  - {id: s3, kind: pm25, unit: ug/m3, cell: c, level: city}\n"
    )
    with pytest.raises(GridError) as info:
        load_grid(path)
    assert str(info.value).splitlines() == [
        f"{path}:7: cells entry 5 is a sensor (keys cell, id, kind, unit), not a cell: move "
        "it under sensors: (a list's entries run until the next top-level key)",
        f"{path}:10: sensors entry 2 is a cell (keys id, level, name, parent, unit), not a "
        "sensor: move it under cells: (a list's entries run until the next top-level key)",
        f"{path}:11: sensors entry 3 is a kind (keys id, max, min, unit), not a sensor: move "
        "it under kinds: (a list's entries run until the next top-level key)",
        # Keys of no one list: as before, the keys that are not the list's own.
        f"{path}:12: sensors entry 4: unknown keys ['level']",
    ]
