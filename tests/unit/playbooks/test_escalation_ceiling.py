"""A playbook's ``escalate`` step never lowers a run's level, and at the city there is no
level above (t122). Before, ``target = step.level or the next level up`` was taken as
it came: a run an operator had escalated by hand to the district was taken back down to
the street by the ladder's ``escalate-street`` step at its next timeout (the street's
unit told to take it, the district's left believing it held it), and an ``escalate``
with no level at the city "escalated" to the city again, counted as an escalation, where
the operator API refuses it ("already at the city level") and the reopening rule says
``not_escalated``."""

from __future__ import annotations

from playbooks.engine import PlaybookEngine
from playbooks.grid import Grid
from playbooks.loader import PLAYBOOK_DIR, load_playbooks
from playbooks.schema import Playbook

ALERT = {
    "alert_id": "al-1",
    "kind": "water_level",
    "grid_cell": "c-bridge",
    "labels": {"source": "sensor"},
}


def test_a_ladder_step_below_a_hand_escalation_does_not_take_the_run_down(grid: Grid) -> None:
    e = PlaybookEngine(load_playbooks(PLAYBOOK_DIR)["flash-flood"], grid)
    run, _ = e.new_run("run-f", ALERT, 0.0)
    assert (run.status, run.step, run.level) == ("waiting_ack", "wait-community", "community")
    run, _ = e.escalate(run, "coordinator-1", 10.0)
    run, _ = e.escalate(run, "coordinator-1", 11.0)
    assert (run.level, run.escalations) == ("district", 2)
    run, cmds = e.timeout(run, 10_000.0)  # wait-community's deadline: escalate-street
    assert run.level == "district"
    assert run.escalations == 2
    [said] = [c for c in cmds if c.action in ("escalate", "not_escalated")]
    assert (said.action, said.level) == ("not_escalated", "district")
    assert said.detail == (
        "step escalate-street: the run is at the district level already, above street: "
        "not taken down"
    )


def test_an_escalate_step_at_the_city_says_there_is_no_level_above(grid: Grid) -> None:
    steps = [
        {"id": "up-1", "action": "escalate"},
        {"id": "up-2", "action": "escalate"},
        {"id": "up-3", "action": "escalate"},
        {"id": "up-4", "action": "escalate"},
        {"id": "wait", "action": "wait_ack", "deadline": "5m"},
    ]
    playbook = Playbook.model_validate(
        {"playbook": "p", "version": 1, "department": "d", "steps": steps}
    )
    run, cmds = PlaybookEngine(playbook, grid).new_run("run-c", ALERT, 0.0)
    ladder = [(c.action, c.level) for c in cmds if c.action in ("escalate", "not_escalated")]
    assert ladder == [
        ("escalate", "street"),
        ("escalate", "district"),
        ("escalate", "city"),
        ("not_escalated", "city"),
    ]
    assert (run.level, run.escalations, run.status) == ("city", 3, "waiting_ack")
    said = [c.detail for c in cmds if c.action == "not_escalated"]
    assert said == ["step up-4: the run is at the city level: there is no level above"]
