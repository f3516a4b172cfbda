"""YAML 1.1 (PyYAML and go-yaml alike) reads a NEL, U+2028 or U+2029 as a line break,
which no editor shows: PyYAML's marks counted them, so every line after one was named one
further down than the file has it, and one pasted into a comment ended the comment, the
rest read as YAML and refused at a line the file does not have, with nothing said of the
character (t169). Each fails on the old code."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.errors import PlaybookError
from playbooks.loader import load_grid, load_playbook, routing_errors
from streams.settings import REPO_ROOT

GRID = (REPO_ROOT / "tests" / "fixtures" / "grid.yaml").read_text().split("\n")


def _grid(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(("char", "escape"), [("\u2028", "\\L"), ("\x85", "\\N")])
def test_a_break_yaml_alone_sees_in_a_comment_is_named_with_the_fault_it_causes(
    tmp_path: Path, char: str, escape: str
) -> None:
    lines = [*GRID]
    lines[0] += f" see{char} also"  # the rest of the comment is read as YAML
    with pytest.raises(PlaybookError) as info:
        load_grid(_grid(tmp_path, lines))
    message = str(info.value)
    column = len(GRID[0]) + 5
    assert message.startswith(f"{tmp_path / 'grid.yaml'}:2: not valid YAML: "), message
    assert f"; line 1 holds a U+{ord(char):04X} (" in message
    assert f"at column {column}, which YAML reads as a line break" in message
    assert f"write it as {escape} inside double quotes" in message


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85"])
def test_lines_after_a_quoted_yaml_only_break_are_named_as_the_file_has_them(
    tmp_path: Path, char: str
) -> None:
    lines = [*GRID]
    lines[3] = lines[3].replace("name: Test City", f'name: "Test{char}City"')
    bad = next(i for i, line in enumerate(lines) if "gauge-2" in line)
    lines[bad] = lines[bad].replace("kind: water_level", "kind: water_levl")
    with pytest.raises(PlaybookError) as info:
        load_grid(_grid(tmp_path, lines))
    assert str(info.value).startswith(f"{tmp_path / 'grid.yaml'}:{bad + 1}: sensor 'gauge-2'")
    lines[bad] = lines[bad].replace("{id: gauge-2", "{id: x, id: gauge-2")
    with pytest.raises(PlaybookError) as info:
        load_grid(_grid(tmp_path, lines))
    assert str(info.value).startswith(
        f"{tmp_path / 'grid.yaml'}:{bad + 1}: not valid YAML: key 'id' is given twice in one "
        f"mapping (first on line {bad + 1}); keep one"
    )
    assert "holds a U+" not in str(info.value)  # no syntax fault: the break is no cause


def test_a_routing_files_errors_name_the_files_lines(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "# routes for the city\n"
        "version: 1\n"
        "route:\n"
        "  playbook: sensor-anomaly\n"
        "  group_by: [grid_cell]\n"
        "  routes:\n"
        "    - matchers: ['category=\"a\u2028b\"']\n"
        "      playbook: sensor-anomaly\n"
        "      group_wait: soon\n",
        encoding="utf-8",
    )
    _, errors = routing_errors(path, {"sensor-anomaly"})
    assert any(e.startswith(f"{path}:9: ") and "group_wait" in e for e in errors), errors


def test_a_playbooks_fault_is_named_at_its_line(tmp_path: Path) -> None:
    source = (REPO_ROOT / "playbooks" / "library" / "playbooks" / "sensor-anomaly.yaml").read_text()
    lines = source.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("playbook:"))
    lines.insert(0, "# checked\u2029 by the duty officer")
    path = tmp_path / "sensor-anomaly.yaml"
    path.write_text("\n".join(lines).replace("playbook: sensor-anomaly", "playbook: ' x'"))
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    assert str(info.value).startswith(f"{path}:{at + 2}: "), str(info.value)


def test_an_expect_files_fault_is_named_at_its_line(tmp_path: Path) -> None:
    from citybrain.demo import load_expected

    path = tmp_path / "expect.yaml"
    # The U+2028 in a comment: a name holding one is refused since t186 (name_fault).
    path.write_text(
        "# dead run\u2028\n"
        "- name: dead-run\n"
        "  sensor_prefix: usgs-\n"
        "  start: 2019-05-10T18:00:00Z\n"
        "  end: 2019-05-10T19:00:00Z\n"
        "- name: fireworks\n"
        "  sensor_prefix: bj-\n"
        "  start: 2016-02-08T00:00:00Z\n"
        "  end: 2016-02-07T00:00:00Z\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError) as info:
        load_expected(path)
    assert str(info.value).startswith(f"--expect {path}:9: entry 2: end "), str(info.value)
