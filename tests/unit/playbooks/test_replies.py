"""Closure to the reporter and the satisfaction loop: the reply table and the engine's
pure steps (cover, close, answer, reopen at the same level, escalate on the second)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from playbooks.engine import Answer, PlaybookEngine, ReportsCovered, Run
from playbooks.errors import (
    BadEventError,
    ForbiddenActionError,
    InvalidReplyTransitionError,
    InvalidTransitionError,
)
from playbooks.grid import Grid
from playbooks.loader import PLAYBOOK_DIR, load_playbook, load_playbooks
from playbooks.machine import (
    REPLY_TRANSITIONS,
    ReplyEvent,
    ReplyStatus,
    RunEvent,
    RunStatus,
    next_reply_status,
    next_status,
)
from streams.api import refused

PLAYBOOKS = load_playbooks(PLAYBOOK_DIR)
BURST = {
    "alert_id": "al-b",
    "kind": "incident_burst",
    "grid_cell": "c-top",
    "labels": {"source": "citizen", "category": "Noise - Residential", "department": "police"},
    "reports": [
        {"report_id": "r-1", "channel": "hotline"},
        {"report_id": "r-2", "channel": "app"},
    ],
}


def burst_run(grid: Grid) -> tuple[PlaybookEngine, Run]:
    engine = PlaybookEngine(PLAYBOOKS["citizen-report-burst"], grid)
    run, _ = engine.new_run("grp.1", BURST, 0.0)
    run, cmds = engine.step(run, ReportsCovered.from_alert(BURST, 0.0))
    assert [c.action for c in cmds] == ["report_covered", "report_covered"]
    return engine, run


def actions(cmds: list) -> list[str]:  # type: ignore[type-arg]
    return [c.action for c in cmds if c.action not in ("transition", "report_transition")]


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (s, e)
        for s, e in itertools.product(ReplyStatus, ReplyEvent)
        if (s, e) not in REPLY_TRANSITIONS
    ],
)
def test_every_reply_move_outside_the_table_raises_the_named_error(
    status: ReplyStatus, event: ReplyEvent
) -> None:
    with pytest.raises(InvalidReplyTransitionError) as info:
        next_reply_status(status, event)
    assert str(info.value) == f"report in state {status.value!r} cannot take event {event.value!r}"
    assert isinstance(info.value, InvalidTransitionError)


def test_the_reply_table() -> None:
    s = next_reply_status(ReplyStatus.OPEN, ReplyEvent.CLOSE)
    assert s is ReplyStatus.REPLIED
    assert next_reply_status(s, ReplyEvent.SATISFIED) is ReplyStatus.SATISFIED
    s = next_reply_status(s, ReplyEvent.UNSATISFIED)
    assert s is ReplyStatus.REOPENED
    assert next_reply_status(s, ReplyEvent.CLOSE) is ReplyStatus.REPLIED
    # Satisfied is final: no further closure or answer.
    assert not [k for k in REPLY_TRANSITIONS if k[0] is ReplyStatus.SATISFIED]


def test_only_resolved_and_cancelled_runs_reopen() -> None:
    assert next_status(RunStatus.RESOLVED, RunEvent.REOPEN) is RunStatus.OPEN
    assert next_status(RunStatus.CANCELLED, RunEvent.REOPEN) is RunStatus.OPEN
    with pytest.raises(InvalidTransitionError):
        next_status(RunStatus.FAILED, RunEvent.REOPEN)
    with pytest.raises(InvalidTransitionError):
        next_status(RunStatus.OPEN, RunEvent.REOPEN)


def test_resolution_sends_one_closure_per_report_saying_what_who_and_where(grid: Grid) -> None:
    engine, run = burst_run(grid)
    run, cmds = engine.resolve(run, "top community station", "music stopped", 600.0)
    replies = [c for c in cmds if c.action == "reply"]
    assert [r.data["report_id"] for r in replies] == ["r-1", "r-2"]
    first = replies[0]
    assert (first.unit, first.level) == ("top community station", "community")
    assert first.data == {
        "report_id": "r-1",
        "channel": "hotline",
        "outcome": "resolved",
        "what": "music stopped",
        "by": "top community station",
        "category": "Noise - Residential",
        "grid_cell": "c-top",
        "reopened": 0,
        "department": "police",
        "also": [],
    }
    assert first.detail == (
        "Your report r-1 about Noise - Residential at Top: resolved by top community "
        "station of police (community level): music stopped"
    )
    assert {r["status"] for r in run.reports.values()} == {"replied"}
    moves = [c.data for c in cmds if c.action == "report_transition"]
    assert [(m["from"], m["to"]) for m in moves] == [("open", "replied")] * 2


def test_cancellation_also_closes_the_loop(grid: Grid) -> None:
    engine, run = burst_run(grid)
    run, cmds = engine.cancel(run, "coordinator", "duplicate of another run", 60.0)
    [reply, _] = [c for c in cmds if c.action == "reply"]
    assert (reply.data["outcome"], reply.data["what"]) == (
        "cancelled",
        "duplicate of another run",
    )


def test_unsatisfied_reopens_at_the_same_level_then_escalates_on_the_second(grid: Grid) -> None:
    engine, run = burst_run(grid)
    run, _ = engine.resolve(run, "top community station", "music stopped", 600.0)
    run, cmds = engine.step(run, Answer("r-1", False, "still loud", "hotline", 700.0))
    assert actions(cmds) == ["answer", "reopened", "notify"]
    assert (run.status, run.level, run.reopened, run.resolved_at) == ("open", "community", 1, None)
    notify = cmds[-1]
    assert (notify.unit, notify.detail) == (
        "top community station",
        "report r-1: not satisfied: still loud",
    )
    assert [c.data for c in cmds if c.action == "transition"] == [
        {"from": "resolved", "to": "open", "event": "reopen"}
    ]
    # The other reporter of the same closure also says no: recorded, no second reopening.
    run, cmds = engine.step(run, Answer("r-2", False, "", "app", 710.0))
    assert actions(cmds) == ["answer"] and run.reopened == 1
    # Both answers and the reopening are kept with the run (trial 5: `runs show` listed
    # neither), the second saying it was only recorded.
    assert [(a["action"], a["note"]) for a in run.actions[-3:]] == [
        ("answer", "report r-1: not satisfied: still loud"),
        ("reopen", "report r-1: not satisfied: still loud"),
        ("answer", "report r-2: not satisfied (recorded only: the run is open)"),
    ]
    # Resolved again: both hear again, with the new outcome.
    run, cmds = engine.resolve(run, "top community station", "speakers taken", 900.0)
    assert [c.data["report_id"] for c in cmds if c.action == "reply"] == ["r-1", "r-2"]
    run, cmds = engine.step(run, Answer("r-2", False, "they came back", "app", 1000.0))
    assert actions(cmds) == ["answer", "reopened", "escalate", "notify"]
    assert (run.status, run.level, run.reopened, run.escalations) == ("open", "street", 2, 1)
    assert [c.unit for c in cmds if c.action in ("escalate", "notify")] == [
        "hill street office"
    ] * 2
    # Closed at the street: r-1 is satisfied, r-2 is not asked again once satisfied.
    run, cmds = engine.resolve(run, "hill street office", "permit revoked", 1200.0)
    [reply_1, _] = [c for c in cmds if c.action == "reply"]
    assert (reply_1.level, reply_1.unit, reply_1.data["reopened"]) == (
        "street",
        "hill street office",
        2,
    )
    run, _ = engine.step(run, Answer("r-1", True, "thanks", "hotline", 1300.0))
    assert run.reports["r-1"]["status"] == "satisfied" and run.status == "resolved"
    run, cmds = engine.step(run, Answer("r-2", False, "", "app", 1400.0))
    assert run.reopened == 3 and run.level == "district"
    run, cmds = engine.resolve(run, "east district office", "closed for good", 1500.0)
    assert [c.data["report_id"] for c in cmds if c.action == "reply"] == ["r-2"]


def test_answers_out_of_turn_are_refused_with_named_errors(grid: Grid) -> None:
    engine, run = burst_run(grid)
    with pytest.raises(InvalidReplyTransitionError, match="report in state 'open'"):
        engine.step(run, Answer("r-1", True, "", "hotline", 10.0))
    with pytest.raises(ForbiddenActionError, match="covers no report 'r-9'"):
        engine.step(run, Answer("r-9", True, "", "hotline", 10.0))
    run, _ = engine.resolve(run, "x", "done", 20.0)
    run, _ = engine.step(run, Answer("r-1", True, "", "hotline", 30.0))
    with pytest.raises(InvalidReplyTransitionError, match="report in state 'satisfied'"):
        engine.step(run, Answer("r-1", False, "", "hotline", 40.0))


def test_reports_joining_repeat_free_and_late_ones_hear_at_once(grid: Grid) -> None:
    engine, run = burst_run(grid)
    late = ReportsCovered((("r-2", "app"), ("r-3", "inspector")), 5.0)
    run, cmds = engine.step(run, late)
    assert [c.detail for c in cmds] == ["r-3"]
    run, _ = engine.resolve(run, "x", "done", 20.0)
    run, cmds = engine.step(run, ReportsCovered((("r-4", "app"),), 30.0))
    assert actions(cmds) == ["report_covered", "reply"]
    assert run.reports["r-4"]["status"] == "replied"


@pytest.mark.parametrize(
    ("cmd", "message"),
    [
        ({"satisfied": True}, 'field "report_id" is missing'),
        ({"report_id": "r-1", "satisfied": "yes"}, "field \"satisfied\" is 'yes'"),
        ({"report_id": "r-1", "satisfied": False, "comment": 3}, 'field "comment" is 3'),
    ],
)
def test_bad_answer_commands_name_the_field(cmd: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(BadEventError, match=message):
        Answer.from_command(cmd, 0.0)


def test_bad_report_lists_name_the_entry() -> None:
    with pytest.raises(BadEventError, match=r"reports\[1\] is \{'report_id': ''\}"):
        ReportsCovered.from_alert(
            {"reports": [{"report_id": "a", "channel": "app"}, {"report_id": ""}]}, 0.0
        )


def test_runs_with_reports_round_trip_and_old_runs_load(grid: Grid) -> None:
    _, run = burst_run(grid)
    assert Run.from_dict(run.to_dict()) == run
    old = run.to_dict()
    for name in ("reports", "reopened", "resolved_by", "resolution"):
        del old[name]
    assert Run.from_dict(old).reports == {}


def test_step_and_level_agree_after_each_reopening(grid: Grid) -> None:
    """Trial 6: after a second reopening `runs show` read `level street, escalations 1`
    beside `step wait-community`, the step the run had been resolved at. A reopened run
    runs no playbook step again: no step is current, whatever the level."""
    engine, run = burst_run(grid)
    assert run.step == "wait-community"  # resolved mid-ladder, waiting for an ack
    run, _ = engine.resolve(run, "top community station", "music stopped", 600.0)
    run, _ = engine.step(run, Answer("r-1", False, "", "hotline", 700.0))
    assert (run.status, run.level, run.step, run.deadline_at) == ("open", "community", None, None)
    run, _ = engine.resolve(run, "top community station", "speakers taken", 900.0)
    run, _ = engine.step(run, Answer("r-1", False, "", "hotline", 1000.0))
    assert (run.status, run.level, run.escalations, run.step) == ("open", "street", 1, None)
    # Acknowledging and resolving the reopened run still work without a step.
    run, _ = engine.acknowledge(run, "hill street office", 1100.0)
    run, _ = engine.resolve(run, "hill street office", "permit revoked", 1200.0)
    assert run.status == "resolved" and run.step is None


def test_one_rule_for_answers_to_a_reopened_run(grid: Grid) -> None:
    """Trial 6: on a reopened run another reporter's "not satisfied" was recorded and
    marked that report `reopened` too, while the reporter who reopened it got a 409 for
    a second answer. One rule now: one answer per closure and reporter; only the answer
    that reopened the run marks its report `reopened`; a recorded-only one is
    `unsatisfied`; both hear the next closure and may answer it."""
    engine, run = burst_run(grid)
    run, _ = engine.resolve(run, "top community station", "music stopped", 600.0)
    run, _ = engine.step(run, Answer("r-1", False, "", "hotline", 700.0))
    run, cmds = engine.step(run, Answer("r-2", False, "", "app", 710.0))
    assert actions(cmds) == ["answer"] and run.reopened == 1
    statuses = {rid: r["status"] for rid, r in run.reports.items()}
    assert statuses == {"r-1": "reopened", "r-2": "unsatisfied"}
    [move] = [c.data for c in cmds if c.action == "report_transition"]
    assert move == {
        "report_id": "r-2",
        "from": "replied",
        "to": "unsatisfied",
        "event": "unsatisfied_recorded",
    }
    for rid, channel in (("r-1", "hotline"), ("r-2", "app")):  # a second answer: refused
        with pytest.raises(InvalidReplyTransitionError):
            engine.step(run, Answer(rid, False, "", channel, 720.0))
    run, cmds = engine.resolve(run, "top community station", "speakers taken", 900.0)
    assert [c.data["report_id"] for c in cmds if c.action == "reply"] == ["r-1", "r-2"]
    assert {r["status"] for r in run.reports.values()} == {"replied"}
    run, cmds = engine.step(run, Answer("r-2", False, "", "app", 1000.0))
    assert "reopened" in actions(cmds) and run.reports["r-2"]["status"] == "reopened"


def test_reports_past_the_bound_a_run_keeps_are_said_not_dropped(grid: Grid) -> None:
    """Trial 22: a run keeps at most MAX_REPORTS reports; those past it were dropped
    without a word, and no closure ever reached their reporters."""
    from playbooks.engine import MAX_REPORTS

    engine, run = burst_run(grid)
    many = tuple((f"m-{i}", "app") for i in range(MAX_REPORTS - 3))
    run, _ = engine.step(run, ReportsCovered(many, 5.0))
    assert len(run.reports) == MAX_REPORTS - 1
    run, cmds = engine.step(
        run, ReportsCovered((("x-1", "app"), ("x-2", "hotline"), ("x-3", "sms")), 6.0)
    )
    assert actions(cmds) == ["reports_not_covered", "report_covered"]
    said = cmds[0]
    assert (
        said.detail == "2 report(s) past the 500 a run keeps, no closure will reach them: x-2, x-3"
    )
    assert said.data["reports"] == [
        {"report_id": "x-2", "channel": "hotline"},
        {"report_id": "x-3", "channel": "sms"},
    ]
    assert "x-1" in run.reports and "x-2" not in run.reports
    # A finished run answers the one it covers at once and still says the others.
    run, _ = engine.resolve(run, "ana", "done", 10.0)
    run, cmds = engine.step(run, ReportsCovered((("y-1", "app"),), 11.0))
    assert actions(cmds) == ["reports_not_covered"]


def test_reopened_again_at_the_city_says_there_is_no_level_above(grid: Grid) -> None:
    """Trial 22: at the city level a second reopening escalated nowhere without a word."""
    engine, run = burst_run(grid)
    for _ in range(3):
        run, _ = engine.escalate(run, "chief", 10.0)
    assert run.level == "city"
    run, _ = engine.resolve(run, "city hall", "done", 100.0)
    run, cmds = engine.step(run, Answer("r-1", False, "", "desk", 110.0))
    assert actions(cmds) == ["answer", "reopened", "notify"]  # the first: same level
    run, _ = engine.resolve(run, "city hall", "done again", 200.0)
    run, cmds = engine.step(run, Answer("r-2", False, "", "desk", 210.0))
    assert actions(cmds) == ["answer", "reopened", "not_escalated", "notify"]
    said = next(c for c in cmds if c.action == "not_escalated")
    assert (said.level, said.detail) == (
        "city",
        "reopened again at the city level: there is no level above",
    )
    assert (run.level, run.reopened, run.escalations) == ("city", 2, 3)


FAILING = """\
playbook: failing-burst
version: 1
description: A citizen burst whose one call fails with nowhere to go.
department: city-management
steps:
  - {id: notify-community, action: notify, level: community, message: "burst at {grid_cell}"}
  - {id: call-department, action: webhook, url: "http://127.0.0.1:9/dispatch", deadline: 1m}
"""


@pytest.mark.parametrize("finish", ["resolve", "cancel"])
def test_a_failed_run_finished_by_hand_sends_its_reporters_their_closure(
    grid: Grid, tmp_path: Path, finish: str
) -> None:
    # Before: a failed run could be neither resolved nor cancelled (409 "is failed"), so
    # its reporters never heard a closure. Now the desk finishes it by hand, as any run.
    path = tmp_path / "failing-burst.yaml"
    path.write_text(FAILING)
    engine = PlaybookEngine(load_playbook(path), grid)
    run, _ = engine.new_run("grp.1", BURST, 0.0)
    run, _ = engine.step(run, ReportsCovered.from_alert(BURST, 0.0))
    assert run.status == "waiting_action"
    run, cmds = engine.action_result(run, run.pending_action or "", False, "HTTP 503", 5.0)
    assert run.status == "failed" and "reply" not in actions(cmds)
    assert refused(run, finish) is None and refused(run, "ack") == (
        "run grp.1 is failed: cannot ack (a failed run is closed by hand: resolve or cancel it)"
    )
    if finish == "resolve":
        run, cmds = engine.resolve(run, "city desk", "dispatched by phone", 60.0)
    else:
        run, cmds = engine.cancel(run, "city desk", "duplicate of another run", 60.0)
    assert run.status == ("resolved" if finish == "resolve" else "cancelled")
    replies = [c for c in cmds if c.action == "reply"]
    assert [r.data["report_id"] for r in replies] == ["r-1", "r-2"]
    assert {run.reports[rid]["status"] for rid in ("r-1", "r-2")} == {"replied"}
    # Its reporters' answers then work as on any finished run: "not satisfied" reopens it.
    run, cmds = engine.step(run, Answer("r-1", False, "", "citizen", 70.0))
    assert run.status == "open"


def test_only_a_failed_run_resolves_or_cancels_from_a_finished_state() -> None:
    for event, to in (
        (RunEvent.RESOLVE, RunStatus.RESOLVED),
        (RunEvent.CANCEL, RunStatus.CANCELLED),
    ):
        assert next_status(RunStatus.FAILED, event) is to
    with pytest.raises(InvalidTransitionError):
        next_status(RunStatus.RESOLVED, RunEvent.CANCEL)
    with pytest.raises(InvalidTransitionError):
        next_status(RunStatus.CANCELLED, RunEvent.RESOLVE)
