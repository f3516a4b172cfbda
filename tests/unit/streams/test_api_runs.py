"""Finding a run for the operator API: the group's latest run is found; an older run of
the same group (superseded: a group keeps only its latest run) gets a 409 that names the
run that replaced it and what to do; a run that never was, a 404."""

from __future__ import annotations

from typing import Any

import pytest

from playbooks.engine import PlaybookEngine
from playbooks.grid import Grid
from playbooks.loader import load_playbook
from streams.api import ApiError, run_in_group
from streams.settings import REPO_ROOT

PLAYBOOK = load_playbook(REPO_ROOT / "playbooks" / "library" / "rehearsal" / "citizen-report.yaml")
KEY = "citizen-report|c-top|Noise"


def group(grid: Grid, generation: int) -> dict[str, Any]:
    alert = {"alert_id": "a-1", "kind": "citizen_report", "grid_cell": "c-top", "labels": {}}
    run, _ = PlaybookEngine(PLAYBOOK, grid).new_run(f"{KEY}.{generation}", alert, 100.0)
    return {"generation": generation, "run": run.to_dict(), "seen": [], "commands": []}


def test_the_latest_run_of_a_group_is_found(grid: Grid) -> None:
    assert run_in_group(group(grid, 3), f"{KEY}.3").run_id == f"{KEY}.3"


def test_an_older_run_of_the_group_is_superseded_not_missing(grid: Grid) -> None:
    with pytest.raises(ApiError) as caught:
        run_in_group(group(grid, 3), f"{KEY}.2")
    assert caught.value.status == 409
    assert caught.value.message.startswith(
        f"run {KEY}.2 was superseded by run {KEY}.3 (a later alert of the same group, "
        "citizen_report at c-top, opened it after"
    )
    assert f"answer run {KEY}.3 if it covers the report" in caught.value.message


@pytest.mark.parametrize(
    ("stored", "run_id"),
    [
        (None, f"{KEY}.1"),  # no group at all
        ("group", f"{KEY}.4"),  # a generation the group has not reached
        ("group", f"{KEY}.x"),  # not a generation
        ("empty", f"{KEY}.1"),  # a group whose run was never stored
    ],
)
def test_a_run_that_never_was_is_404(grid: Grid, stored: str | None, run_id: str) -> None:
    doc = None if stored is None else group(grid, 3)
    if stored == "empty":
        doc = {"generation": 0, "run": None}
    with pytest.raises(ApiError) as caught:
        run_in_group(doc, run_id)
    assert (caught.value.status, caught.value.message) == (404, f"no run {run_id!r}")
