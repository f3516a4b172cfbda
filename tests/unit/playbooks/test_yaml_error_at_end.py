"""A YAML file cut short (an unclosed quote, bracket or brace) is named by its last line,
``at the end of the file``, by every reader of YAML files: PyYAML's mark stands after the
final newline, on a line the file does not have (t151: ``expect.yaml:3`` for a file of two
lines)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from citybrain.cli.main import main
from citybrain.demo import load_expected
from playbooks.errors import PlaybookError
from playbooks.loader import load_grid, load_routing
from streams.auth import TokenStore
from streams.errors import SettingsError

CUT_SHORT = {
    "quote": ('- name: "flood\n', 1),
    "bracket": ("tokens: [\n  1,\n", 2),
    "brace": ("a: {b: 1\n", 1),
    "blank lines after": ("a: [1\n\n\n", 3),  # the file's last line, blank as it is
    "no final newline": ("a: [1", 1),
    "crlf": ("a: [1\r\n", 1),
}


def _message(reader: Callable[[Path], object], path: Path) -> str:
    try:
        reader(path)
    except (ValueError, PlaybookError, SettingsError) as exc:
        return str(exc)
    raise AssertionError(f"{path} was read")


READERS: dict[str, Callable[[Path], object]] = {
    "--expect": load_expected,
    "grid": load_grid,
    "routing": lambda path: load_routing(path, ()),
    "tokens": TokenStore.load,
}


@pytest.mark.parametrize("case", sorted(CUT_SHORT))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_file_cut_short_is_named_by_its_last_line(tmp_path: Path, reader: str, case: str) -> None:
    text, last = CUT_SHORT[case]
    path = tmp_path / "cut.yaml"
    path.write_bytes(text.encode())
    message = _message(READERS[reader], path)
    line = re.search(rf"{re.escape(str(path))}:(\d+): not valid YAML", message)
    assert line is not None, message
    assert int(line.group(1)) == last, message
    assert "at the end of the file" in message, message


def test_the_units_file_cut_short_is_named_by_its_last_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "units.yaml"
    path.write_text("response_profile: [\n  a,\n")
    incidents = tmp_path / "incidents.csv"
    incidents.write_text("x\n")
    assert main(["rehearse", "--incidents", str(incidents), "--units", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"--units {path}:2: not valid YAML" in err, err
    assert "at the end of the file" in err, err


def test_an_error_inside_the_file_keeps_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "expect.yaml"
    path.write_text("- name: a\n  b: c: d\n- name: e\n")
    message = _message(load_expected, path)
    assert f"{path}:2: not valid YAML" in message, message
    assert "column" in message and "end of the file" not in message, message
