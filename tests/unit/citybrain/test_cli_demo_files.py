"""The demo reads the grid, playbooks and routing its worker will read before it does
anything (t158's newcomer walk: `demo --grid grid.yaml` with a YAML slip stopped the
last demo's worker, deleted the last demo's topics, started Kafka and a worker, and
only then said "the demo's worker exited" (exit 3), recorded as the last demo with
that grid in every command it printed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from citybrain.cli import main


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The demo's runs: none may start (it would stop a worker, delete topics)."""
    runs: list[Any] = []
    # The demo sets CITYBRAIN_GRID_FILE to its --grid in the process: undone after (set
    # first, so that monkeypatch records it to restore; delenv of an unset one does not).
    monkeypatch.setenv("CITYBRAIN_GRID_FILE", "")
    monkeypatch.delenv("CITYBRAIN_GRID_FILE")

    def run_demo(*args: Any, **kwargs: Any) -> dict[str, Any]:
        runs.append(args)
        raise KeyboardInterrupt  # never the stack: stop here, as a Ctrl-C

    monkeypatch.setattr("citybrain.demo.run_demo", run_demo)
    return runs


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a: [1,\n", ":1: not valid YAML: did not find expected node content"),
        ("a,b\n1,2\n", ":1: expected a mapping with 'cells' and 'sensors'"),
        ("version: 1\ncells: []\n", "cells is empty, expected at least one city cell"),
    ],
)
def test_a_grid_the_worker_cannot_read_is_refused_before_the_demo_starts(
    text: str,
    says: str,
    tmp_path: Path,
    started: list[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(text)
    assert main(["demo", "--grid", str(grid)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: --grid {grid}:"), err
    assert says in err and not started


def test_a_routing_or_playbook_setting_the_worker_cannot_read_is_refused_first(
    tmp_path: Path,
    started: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text("route:\n  playbook: no-such-playbook\n")
    monkeypatch.setenv("CITYBRAIN_ROUTING_FILE", str(routing))
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: CITYBRAIN_ROUTING_FILE {routing}:"), err
    assert "'no-such-playbook'" in err and not started

    monkeypatch.delenv("CITYBRAIN_ROUTING_FILE")
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "p.yaml").write_bytes(b"playbook:\n  name: caf\xe9\n")
    monkeypatch.setenv("CITYBRAIN_PLAYBOOK_DIR", str(playbooks))
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"citybrain: CITYBRAIN_PLAYBOOK_DIR {playbooks}/p.yaml:2: byte 0xe9"), err
    assert not started


def test_the_demos_own_files_let_it_start(
    started: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The check reads the checkout's grid, playbooks and routing, and passes them."""
    assert main(["demo"]) == 130
    assert len(started) == 1
