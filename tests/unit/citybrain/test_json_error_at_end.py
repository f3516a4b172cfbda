"""A JSON file cut short (a list or object left open) is named by its last line, ``at
the end of the file``, by every reader of JSON files: json's own line there is the one
after the final newline, which the file does not have (t151: ``labels.json:2`` for a file
of one line, as the YAML files' errors were)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citybrain.cli.main import main
from citybrain.errors import InputError, json_error_at
from citybrain.nab import read_windows

CUT_SHORT = {
    "list": ('[{"schema": "step/1"},\n', 1),
    "object": ('{"a": [1,\n  2,\n', 2),
    "blank lines after": ('{"a": 1,\n\n\n', 1),
    "no final newline": ('{"a": 1', 1),
}


@pytest.mark.parametrize("case", sorted(CUT_SHORT))
def test_the_line_of_an_error_at_the_end_is_the_files_last(case: str) -> None:
    text, last = CUT_SHORT[case]
    with pytest.raises(json.JSONDecodeError) as err:
        json.loads(text)
    assert json_error_at(err.value) == (last, ", at the end of the file")
    with pytest.raises(json.JSONDecodeError) as inside:
        json.loads('{"a": 1}\n{"b": 2}\n')
    assert json_error_at(inside.value) == (2, "")


@pytest.mark.parametrize(
    ("text", "line", "end"),
    [
        ('[{"schema": "step/1"},\n', 1, "file"),  # a JSON list, read whole
        ('[{"schema": "step/1"},\n  {"schema": "audit/1"},\n\n', 2, "file"),
        ('{"schema": "step/1"}\n{"schema": \n', 2, "line"),  # JSON lines: that line's
    ],
)
def test_campaign_input_cut_short_names_its_last_line(
    tmp_path: Path, text: str, line: int, end: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.json"
    path.write_text(text)
    argv = ["campaign", "report", "--from", "2026-01-01", "--to", "2026-01-02"]
    assert main([*argv, "--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: {path}:{line}: not a JSON record ("), err
    assert f", at the end of the {end})" in err, err


def test_nab_labels_cut_short_name_their_last_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text('{"a/b.csv": [\n')
    with pytest.raises(InputError) as err:
        read_windows(path)
    assert str(err.value) == f"{path}:1: not JSON: Expecting value, at the end of the file"
