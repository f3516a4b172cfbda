"""Every sample playbook rehearsed from data: scripted alert, acks and timeouts in,
the expected step sequence, units and final state out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from playbooks.grid import Grid
from playbooks.loader import PLAYBOOK_DIR, load_playbooks
from playbooks.rehearsal import rehearse

REHEARSALS = sorted((Path(__file__).resolve().parents[2] / "rehearsals").glob("*.yaml"))
PLAYBOOKS = load_playbooks(PLAYBOOK_DIR)


def test_every_sample_playbook_has_a_rehearsal() -> None:
    """t200: a developer's new playbook, added to the library as docs/operations.md says,
    failed `make test-unit` with a bare set difference ('Extra items in the right set:
    'flood-night-desk''), saying nothing of the file to write."""
    rehearsed = {yaml.safe_load(p.read_text())["playbook"] for p in REHEARSALS}
    folder = REHEARSALS[0].parent
    missing = sorted(set(PLAYBOOKS) - rehearsed)
    assert not missing, (
        f"playbook(s) {', '.join(missing)} of {PLAYBOOK_DIR} have no rehearsal: write "
        f"{', '.join(str(folder / f'{name}.yaml') for name in missing)} (an alert, a "
        f"script of acks and timeouts, the expected actions and final status, as "
        f"{folder / 'sensor-check.yaml'}; docs/playbooks.md, Tests)"
    )
    unknown = sorted(rehearsed - set(PLAYBOOKS))
    assert not unknown, f"rehearsals of playbook(s) {PLAYBOOK_DIR} lacks: {', '.join(unknown)}"


@pytest.mark.parametrize("path", REHEARSALS, ids=lambda p: p.stem)
def test_rehearsal(path: Path, grid: Grid) -> None:
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    outcome = rehearse(PLAYBOOKS[spec["playbook"]], grid, spec)
    assert outcome.actions == spec["expect"]["actions"]
    assert outcome.run.status == spec["expect"]["final"]
    if "units" in spec["expect"]:
        units = [
            [c.action, c.unit]
            for c in outcome.commands
            if c.action in ("notify", "dispatch", "escalate")
        ]
        assert units == spec["expect"]["units"]
    # The audit trail: every status change is a transition from the previous status.
    statuses = ["pending", *outcome.statuses]
    moves = [c.data for c in outcome.commands if c.action == "transition"]
    assert [m["from"] for m in moves] == statuses[:-1]
