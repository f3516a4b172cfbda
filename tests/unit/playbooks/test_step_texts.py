"""Step texts and the values put in them (helper t52): a label's value is put in as it is,
whatever it holds (``{{ }}``, ``%s``, ``{kind}``, a newline); a text's own odd
placeholder is a ``file:line`` error when the playbook loads, where str.format_map
failed every run of the playbook (``{grid_cell.real}``: AttributeError;
``{category[x]}``: TypeError) or built a gigabyte (``{category:>1000000000}``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.errors import PlaybookError
from playbooks.loader import load_playbook
from playbooks.schema import fill

VALUES = {"category": "noise", "grid_cell": "c-1", "kind": "incident_burst"}


@pytest.mark.parametrize(
    ("value", "filled"),
    [
        ("{{ 7*7 }}", "report: {{ 7*7 }} at c-1"),
        ("%s%s%n", "report: %s%s%n at c-1"),
        ("{kind}", "report: {kind} at c-1"),
        ("{0}{grid_cell.real}", "report: {0}{grid_cell.real} at c-1"),
        ("two\nlines\u202e", "report: two\nlines\u202e at c-1"),
        ("x" * 10_000, "report: " + "x" * 10_000 + " at c-1"),
    ],
)
def test_a_label_value_is_put_in_as_it_is(value: str, filled: str) -> None:
    assert fill("report: {category} at {grid_cell}", {**VALUES, "category": value}) == filled


@pytest.mark.parametrize(
    ("text", "filled"),
    [
        ("{{literal}} {kind}", "{literal} incident_burst"),
        ("{unknown} at {grid_cell}", " at c-1"),
        # Each raised, or built a gigabyte, through str.format_map; never refused by now.
        ("{grid_cell.real}", "{grid_cell.real}"),
        ("{category[x]}", "{category[x]}"),
        ("{category:>1000000000}", "{category:>1000000000}"),
        ("{0} { {category}", "{0} { noise"),
    ],
)
def test_a_text_is_filled_without_ever_raising(text: str, filled: str) -> None:
    assert fill(text, VALUES) == filled


PLAYBOOK = """playbook: odd
version: 1
description: odd texts
department: public-works
sla: 1h
steps:
  - {{id: notify, action: notify, level: community, message: "a {{{{literal}}}} {{kind}}"}}
  - id: dispatch
    action: dispatch
    department: public-works
    message: {text}
"""


@pytest.mark.parametrize(
    ("text", "odd"),
    [
        ("'at {grid_cell.real}'", "'{grid_cell.real}'"),
        ("'at {category[x]}'", "'{category[x]}'"),
        ("'at {category:>1000000000}'", "'{category:>1000000000}'"),
        ("'at {0}'", "'{0}'"),
        ("'at {category!r}'", "'{category!r}'"),
        ("'a lone { at {grid_cell}'", "'{ at {grid_cell}'"),
        ("'a lone } brace'", "'}'"),
    ],
)
def test_an_odd_placeholder_is_a_file_line_error(tmp_path: Path, text: str, odd: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(PLAYBOOK.format(text=text))
    with pytest.raises(PlaybookError) as info:
        load_playbook(path)
    said = str(info.value)
    assert said.startswith(f"{path}:11: steps.1.dispatch.message: placeholder {odd} in "), said
    assert "a text takes {name} only" in said and "write {{ and }} for a brace" in said


def test_braces_written_twice_and_placeholders_load(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(PLAYBOOK.format(text="'{{category}} is {category} at {grid_cell}'"))
    assert load_playbook(path).playbook == "odd"
