"""Engine behaviour beyond the rehearsals: ids, grouping waits, roles, stale results,
and the playbook loader's file:line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.engine import PlaybookEngine, ReportsCovered, Run
from playbooks.errors import ForbiddenActionError, PlaybookConfigError
from playbooks.grid import Grid
from playbooks.loader import PLAYBOOK_DIR, load_playbook, load_playbooks, playbook_errors

PLAYBOOKS = load_playbooks(PLAYBOOK_DIR)
ALERT = {
    "alert_id": "al-1",
    "kind": "water_level",
    "grid_cell": "c-bridge",
    "labels": {"source": "sensor"},
}


def engine(grid: Grid, name: str = "sensor-anomaly", **kw: float) -> PlaybookEngine:
    return PlaybookEngine(PLAYBOOKS[name], grid, **kw)


def test_command_ids_are_deterministic(grid: Grid) -> None:
    a = engine(grid).new_run("run-x", ALERT, 100.0)[1]
    b = engine(grid).new_run("run-x", ALERT, 100.0)[1]
    assert [c.id for c in a] == [c.id for c in b] == [f"run-x:{i}" for i in range(1, len(a) + 1)]


def test_group_wait_holds_the_first_notification_back(grid: Grid) -> None:
    e = engine(grid)
    run, cmds = e.new_run("run-x", ALERT, 100.0, group_wait=30.0)
    assert run.status == "pending" and [c.action for c in cmds] == ["run_created"]
    run, cmds = e.join(run, "al-2", 110.0)
    assert run.alerts == ["al-1", "al-2"] and [c.action for c in cmds] == ["alert_joined"]
    assert e.join(run, "al-2", 111.0)[1] == []  # idempotent per alert
    assert e.timeout(run, 129.0)[1] == []
    run, cmds = e.timeout(run, 130.0)
    assert run.status == "waiting_ack"
    assert [c.action for c in cmds if c.action != "transition"] == ["notify", "wait_ack"]


def test_approval_by_the_wrong_role_is_forbidden(grid: Grid) -> None:
    e = engine(grid, "crowd-surge")
    run, _ = e.new_run("run-c", ALERT, 0.0)
    run, _ = e.acknowledge(run, "hill street office", 10.0)
    assert run.status == "waiting_approval" and e.approval_role(run) == "coordinator"
    assert engine(grid).approval_role(engine(grid).new_run("r2", ALERT, 0.0)[0]) is None
    with pytest.raises(ForbiddenActionError, match="needs a decision by a coordinator, not a"):
        e.approve(run, "someone", "operator", 20.0)
    with pytest.raises(ForbiddenActionError, match="is not waiting for an approval"):
        engine(grid).approve(engine(grid).new_run("r", ALERT, 0.0)[0], "x", "coordinator", 1.0)


def test_stale_webhook_results_are_ignored(grid: Grid) -> None:
    e = engine(grid, "air-pollution")
    run, _ = e.new_run("run-a", {**ALERT, "grid_cell": "c-top"}, 0.0)
    run, _ = e.acknowledge(run, "east district office", 1.0)
    run, _ = e.approve(run, "c", "coordinator", 2.0)
    assert run.status == "waiting_action"
    assert e.action_result(run, "run-a:999", True, "late", 3.0)[1] == []
    run, cmds = e.action_result(run, run.pending_action or "", False, "HTTP 503", 4.0)
    assert [c.action for c in cmds if c.action != "transition"] == ["action_failed", "annotate"]


def test_manual_escalation_climbs_and_stops_at_the_city(grid: Grid) -> None:
    e = engine(grid)
    run, _ = e.new_run("run-m", ALERT, 0.0)
    units = []
    for _ in range(3):
        run, cmds = e.escalate(run, "operator-7", 1.0)
        units += [c.unit for c in cmds if c.action == "escalate"]
    assert units == ["river street office", "east district office", "city command centre"]
    with pytest.raises(ForbiddenActionError, match="already at the city level"):
        e.escalate(run, "operator-7", 2.0)


def test_resolve_and_cancel_are_idempotent(grid: Grid) -> None:
    e = engine(grid)
    run, _ = e.new_run("run-r", ALERT, 0.0)
    run, _ = e.resolve(run, "op", "done", 5.0)
    assert e.resolve(run, "op", "again", 6.0)[1] == []
    assert e.acknowledge(run, "op", 7.0)[1] == []


def test_deadline_override_and_json_round_trip(grid: Grid) -> None:
    run, _ = engine(grid, deadline_override=2.0).new_run("run-d", ALERT, 0.0)
    assert run.deadline_at == 2.0
    assert Run.from_dict(run.to_dict()) == run


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "playbook: p\nversion: 1\ndepartment: d\nsteps: []\n",
            ":4: steps: a playbook needs at least one step",
        ),
        (
            "playbook: p\nversion: 1\ndepartment: d\nsteps:\n  - {id: a, action: teleport}\n",
            ":5: steps.0: action is 'teleport': expected one of",
        ),
        (
            "playbook: p\nversion: 1\ndepartment: d\nsteps:\n  - id: a\n    action: wait_ack\n"
            "    deadline: soon\n",
            ":7: steps.0.wait_ack.deadline: duration is 'soon'",
        ),
        (
            "playbook: p\nversion: 1\ndepartment: d\nsteps:\n  - {id: a, action: notify, level: planet}\n",
            ":5: steps.0.notify.level: level is 'planet'",
        ),
        (
            "playbook: p\nversion: 1\ndepartment: d\ncolour: red\nsteps:\n  - {id: a, action: notify}\n",
            ":4: colour: unknown key 'colour': expected one of",
        ),
        (
            "playbook: p\nversion: 1\ndepartment: d\nsteps:\n  - {id: a, action: notify}\n"
            "  - {id: a, action: notify}\n",
            ":6: steps.1.id: step id 'a' is used twice",
        ),
        (
            "playbook: p\nversion: 1\ndepartment: d\nsteps:\n"
            "  - {id: a, action: wait_ack, deadline: 1m, on_timeout: b}\n",
            ":5: steps.0.on_timeout: on_timeout names step 'b', which does not exist",
        ),
        (
            "playbook: p\nversion: 1\ndepartment: d\nsteps:\n  - {id: a, action: dispatch}\n",
            ":5: steps.0.dispatch: dispatch needs exactly one of unit or department",
        ),
        ("playbook: [\n", ":1: not valid YAML"),  # its last line, not the one after (t151)
        (
            "playbook: p\nversion: 1\ndepartment: d\nsteps:\n  - {id: a, action: notify}\n"
            "department: e\n",
            ":6: not valid YAML: key 'department' is given twice in one mapping (first on line 3)",
        ),
    ],
)
def test_bad_playbooks_name_file_line_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PlaybookConfigError) as info:
        load_playbook(path)
    assert str(info.value).startswith(f"{path}{expected}")


def test_every_error_of_a_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("playbook: p\nversion: 2\nsteps:\n  - {id: a, action: notify, colour: x}\n")
    _, errors = playbook_errors(path)
    assert [e.split(": ", 1)[0] for e in errors] == [f"{path}:1", f"{path}:2", f"{path}:4"]


def test_every_operator_action_keeps_who_when_and_note(grid: Grid) -> None:
    e = engine(grid, "crowd-surge")
    run, _ = e.new_run("run-n", ALERT, 0.0)
    run, _ = e.acknowledge(run, "hill street office", 10.0, note="on my way")
    run, _ = e.approve(run, "coord", "coordinator", 20.0, approved=False, note="not needed")
    run, _ = e.escalate(run, "coord", 25.0, note="crowd growing")
    run, _ = e.resolve(run, "hill street office", "dispersed", 30.0)
    assert [(a["action"], a["by"], a["at"], a["note"]) for a in run.actions] == [
        ("ack", "hill street office", 10.0, "on my way"),
        ("reject", "coord", 20.0, "not needed"),
        ("escalate", "coord", 25.0, "crowd growing"),
        ("resolve", "hill street office", 30.0, "dispersed"),
    ]
    assert Run.from_dict(run.to_dict()).actions == run.actions
    # A repeat changes nothing, so records nothing.
    assert e.resolve(run, "op", "again", 31.0)[0].actions == run.actions


LOOPING = """\
playbook: looping
version: 1
description: notifies round and round
department: water-utility
sla: 1h
steps:
  - {id: first, action: notify, message: "a"}
  - {id: ask, action: wait_ack, deadline: 5m, on_timeout: first}
  - {id: again, action: dispatch, department: water-utility, message: "b"}
  - {id: back, action: escalate, on_success: again}
"""


def test_a_loop_a_run_never_leaves_is_a_file_line_error(tmp_path: Path) -> None:
    """Before: it passed `playbooks check`, and the first alert routed to it held the
    worker's response agent for good (its commands growing without bound). A loop left
    on a wait_ack's timeout (re-notify until acknowledged) is fine."""
    path = tmp_path / "looping.yaml"
    path.write_text(LOOPING)
    playbook, errors = playbook_errors(path)
    assert playbook is None
    assert errors == [
        f"{path}:10: steps.3.on_success: steps again -> back -> again loop without stopping "
        "(each is left at once, a wait_ack too once the run is acknowledged, a webhook as soon "
        "as its receiver answers): a run would go round for good; put a wait_ack or an "
        "approval in the loop, or leave it on timeout only"
    ]
    acked = LOOPING.replace("on_timeout: first}", "on_timeout: first, on_success: first}")
    path.write_text(acked.replace("on_success: again", "on_success: ask"))
    # Its `again` and `back` are now no run's steps either (t122: each said as never reached).
    loop, *unreached = playbook_errors(path)[1]
    assert "steps first -> ask -> first loop without stopping" in loop
    assert [e.split(": ")[2].split(" is never")[0] for e in unreached] == [
        "step 'again'",
        "step 'back'",
    ]
    path.write_text(LOOPING.replace(", on_success: again", ""))  # the timeout loop alone
    assert playbook_errors(path)[1] == []


@pytest.mark.parametrize(
    ("steps", "closing"),
    [
        # A receiver that refuses at once (400, or no one listening): notify, call, again.
        (
            [
                "{id: tell, action: notify, message: a}",
                '{id: call, action: webhook, url: "http://127.0.0.1:1/hook", on_failure: tell}',
                "{id: done, action: resolve}",
            ],
            "8: steps.1.on_failure: steps tell -> call -> tell",
        ),
        # A receiver that answers 200 at once, called again on its success.
        (
            [
                "{id: tell, action: notify, message: a}",
                '{id: call, action: webhook, url: "http://127.0.0.1:1/hook", on_success: call}',
            ],
            "8: steps.1.on_success: steps call -> call",
        ),
        # Through an acknowledged wait_ack: the ack does not stop the run there.
        (
            [
                '{id: call, action: webhook, url: "http://127.0.0.1:1/hook", on_failure: ask}',
                "{id: ask, action: wait_ack, deadline: 5m, on_success: call, on_timeout: call}",
            ],
            "8: steps.1.on_success: steps call -> ask -> call",
        ),
    ],
)
def test_a_loop_through_a_webhooks_outcome_is_a_file_line_error(
    tmp_path: Path, grid: Grid, steps: list[str], closing: str
) -> None:
    """Before (t177): a webhook stopped a loop for the check, but its outcome can come at
    once: the first playbook here passed `playbooks check`, and a run of it notified and
    called again at each failure, as fast as the receiver refused, for good (10 failures
    within 0.1 s were 10 more notifications and 10 more calls). A loop left on the webhook's timeout only waits
    its deadline, and is fine."""
    path = tmp_path / "hook-loop.yaml"
    head = LOOPING.split("steps:")[0]
    path.write_text(head + "steps:\n" + "".join(f"  - {s}\n" for s in steps))
    playbook, errors = playbook_errors(path)
    assert playbook is None
    assert [e.split(" loop without stopping")[0] for e in errors] == [f"{path}:{closing}"]
    assert "put a wait_ack or an approval in the loop" in errors[0]
    timeout_only = [steps[0], steps[1].replace("on_failure: tell", "on_timeout: tell")]
    if "on_timeout: tell" in timeout_only[1]:
        path.write_text(head + "steps:\n" + "".join(f"  - {s}\n" for s in timeout_only))
        assert playbook_errors(path)[1] == []


def test_a_run_caught_in_a_loop_fails_rather_than_holding_the_worker(grid: Grid) -> None:
    import yaml

    from playbooks.schema import Playbook

    doc = yaml.safe_load(LOOPING)
    doc["steps"] = doc["steps"][2:]  # again -> back -> again, built past the loader's check
    run, cmds = PlaybookEngine(Playbook.model_validate(doc), grid).new_run("run-l", ALERT, 0.0)
    assert run.status == "failed"
    failed = [c for c in cmds if c.action == "failed"]
    assert [c.detail for c in failed] == ["step back reached again without stopping: a loop"]
    assert len(cmds) < 20


@pytest.mark.parametrize(
    ("step", "written"),
    [
        ("{id: ask, action: wait_ack, deadline: 0s, on_timeout: first}", "0s"),
        ("{id: ask, action: approval, role: coordinator, question: go?, deadline: 0m}", "0m"),
        ('{id: ask, action: webhook, url: "http://127.0.0.1:1/hook", deadline: 0ms}', "0ms"),
    ],
)
def test_a_deadline_of_zero_is_a_file_line_error(tmp_path: Path, step: str, written: str) -> None:
    """Before: accepted, and a wait_ack looping back on its timeout notified once a
    second for good (61 notifications in a minute), as repeat_interval: 0s did."""
    path = tmp_path / "zero.yaml"
    head = LOOPING.split("steps:")[0]
    path.write_text(f"{head}steps:\n  - {{id: first, action: notify, message: a}}\n  - {step}\n")
    assert playbook_errors(path)[1] == [
        f"{path}:8: steps.1.{step.split('action: ')[1].split(',')[0]}.deadline: deadline "
        f"cannot be zero (it is {written!r}): the step would not wait"
    ]


@pytest.mark.parametrize(
    ("step", "written"),
    [
        ("{id: ask, action: wait_ack, deadline: 1ms, on_timeout: first}", "1ms"),
        ("{id: ask, action: approval, role: coordinator, question: go?, deadline: 999ms}", "999ms"),
        ('{id: ask, action: webhook, url: "http://127.0.0.1:1/hook", deadline: 500ms}', "500ms"),
    ],
)
def test_a_deadline_below_a_second_is_a_file_line_error(
    tmp_path: Path, grid: Grid, step: str, written: str
) -> None:
    """Before (t177): `deadline: 0s` was refused but `1ms` passed, and the worker acts on
    deadlines at its check, once a second: a wait_ack looping back on its timeout notified
    at every check all the same (60 checks, 60 notifications). A second is taken."""
    path = tmp_path / "tiny.yaml"
    head = LOOPING.split("steps:")[0]
    path.write_text(f"{head}steps:\n  - {{id: first, action: notify, message: a}}\n  - {step}\n")
    assert playbook_errors(path)[1] == [
        f"{path}:8: steps.1.{step.split('action: ')[1].split(',')[0]}.deadline: deadline "
        f"is {written!r}, less than a second: the step would not wait (the worker acts on "
        "deadlines at its check, once a second); give 1s or more"
    ]
    path.write_text(path.read_text().replace(written, "1s"))
    assert playbook_errors(path)[1] == []


def test_an_sla_of_zero_is_a_file_line_error(tmp_path: Path) -> None:
    """Before: accepted, and every run of the playbook breached its SLA the moment it
    opened (the zero-interval kind of ``deadline: 0s`` and ``repeat_interval: 0s``)."""
    path = tmp_path / "zero-sla.yaml"
    head = LOOPING.split("steps:")[0].replace("sla: 1h", "sla: 0m")
    path.write_text(f"{head}steps:\n  - {{id: first, action: notify, message: a}}\n")
    assert playbook_errors(path)[1] == [
        f"{path}:5: sla: sla cannot be zero (it is '0m'): every run would breach it at once"
    ]
    # t177: below a second, the same at the worker's first deadline check.
    path.write_text(path.read_text().replace("sla: 0m", "sla: 1ms"))
    assert playbook_errors(path)[1] == [
        f"{path}:5: sla: sla is '1ms', less than a second: every run would breach it at the "
        "worker's first deadline check; give 1s or more"
    ]


def _gone(run: Run) -> Run:
    """``run`` as read back after its playbook was edited: its step no longer there."""
    return Run.from_dict({**run.to_dict(), "step": "retired-step"})


def test_a_run_at_a_step_gone_from_its_playbook_fails_at_its_next_move(grid: Grid) -> None:
    """t49: a run read back waiting at a step the edited playbook no longer has raised
    KeyError at its deadline, ack, approval or webhook outcome: stuck for good. Each of
    those moves now fails it, saying why; the desk resolves it (its reporters' closures)."""
    why = (
        "step 'retired-step' is no longer in playbook '{}' (edited since the run reached "
        "it): the run cannot go on; resolve or cancel it"
    )
    flood = engine(grid, "flash-flood")
    waiting, _ = flood.new_run("run-g", ALERT, 0.0)
    assert waiting.status == "waiting_ack" and flood.gone_step(waiting) is None
    assert flood.fail_gone_step(waiting, 1.0)[1] == []
    air = engine(grid, "air-pollution")
    approving, _ = air.new_run("run-a", {**ALERT, "grid_cell": "c-top"}, 0.0)
    approving, _ = air.acknowledge(approving, "east district office", 1.0)
    assert approving.status == "waiting_approval"
    # (copied: the engine changes the run it is given)
    acting, _ = air.approve(Run.from_dict(approving.to_dict()), "c", "coordinator", 2.0)
    assert acting.status == "waiting_action"
    moves = [
        (flood, lambda r: flood.timeout(r, 400.0), waiting),
        (flood, lambda r: flood.acknowledge(r, "op", 10.0), waiting),
        (flood, lambda r: flood.fail_gone_step(r, 10.0), waiting),
        (air, lambda r: air.approve(r, "c", "coordinator", 10.0), approving),
        (air, lambda r: air.approve(r, "c", "coordinator", 10.0, approved=False), approving),
        (air, lambda r: air.action_result(r, r.pending_action or "", True, "ok", 10.0), acting),
        (air, lambda r: air.fail_gone_step(r, 10.0), acting),
    ]
    for e, move, run in moves:
        gone = _gone(run)
        assert e.gone_step(gone) == "retired-step"
        after, cmds = move(gone)
        [failed] = [c for c in cmds if c.action == "failed"]
        assert failed.detail == why.format(e.playbook.playbook)
        assert failed.data == {"gone": "step", "step": "retired-step"}
        assert (after.status, after.step, after.deadline_at) == ("failed", None, None)
        assert after.pending_action is None
        resolved, closing = e.resolve(after, "desk", "done by hand", 20.0)
        assert resolved.status == "resolved" and "resolved" in [c.action for c in closing]


def test_a_run_whose_cell_is_gone_from_the_grid_goes_on_and_can_be_resolved(
    grid: Grid,
) -> None:
    """t49: a run read back whose cell the edited grid file no longer has raised GridError
    at every escalation (the deadline check's warning, every minute, for good) and at
    every resolve or cancel (refused: its closures name the cell's unit), so it could
    never be finished. Its units are now the city's, and its closures name the cell id."""
    e = engine(grid, "flash-flood")
    run, _ = e.new_run("run-c", ALERT, 0.0)
    run = Run.from_dict({**run.to_dict(), "grid_cell": "c-demolished"})
    run, _ = e.step(run, ReportsCovered((("r-1", "app"),), 1.0))
    run, cmds = e.timeout(run, 1000.0)
    assert [(c.action, c.unit) for c in cmds if c.action == "escalate"] == [
        ("escalate", "city command centre")
    ]
    run, cmds = e.escalate(run, "op", 1001.0)
    assert [c.unit for c in cmds if c.action == "escalate"] == ["city command centre"]
    run, cmds = e.resolve(run, "desk", "pumped out", 1002.0)
    [reply] = [c for c in cmds if c.action == "reply"]
    assert reply.detail.startswith("Your report r-1 about water_level at c-demolished: resolved")
    assert run.status == "resolved"
