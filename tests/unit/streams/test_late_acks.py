"""t114: an operator's command applied late (Kafka frozen, the API's command queued)
after the playbook's ladder moved the run up a level. The ack was counted, in the
acknowledgements and the time-to-acknowledge histogram (MTTA), under the level the run
had reached, and the run's history and ``acknowledged`` step said that level too. The
API stamps each command with the level the run was at when it took it; the worker
records the command there, at the time it was given."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from playbooks.engine import (
    Answer,
    PlaybookEngine,
    ReportsCovered,
    Run,
    closing_level,
    run_problem,
)
from playbooks.grid import Grid
from playbooks.loader import PLAYBOOK_DIR, load_playbooks
from streams.metrics import (
    CAMPAIGN_REOPENED,
    CAMPAIGN_REPLIES,
    CAMPAIGN_RUNS_CLOSED,
    TIME_TO_ACK,
    Metrics,
)
from streams.response import EventError, Response, command_fields
from tests.unit.streams.test_campaign_metrics import stub_stage, value

PLAYBOOKS = load_playbooks(PLAYBOOK_DIR)
ALERT = {"alert_id": "al-1", "kind": "water_level", "grid_cell": "c-bridge", "labels": {}}


def laddered(grid: Grid) -> tuple[PlaybookEngine, Run, float]:
    """A sensor-anomaly run the ladder took from community to street at its ack
    deadline, and that deadline (epoch s)."""
    engine = PlaybookEngine(PLAYBOOKS["sensor-anomaly"], grid)
    run, _ = engine.new_run("run-l", ALERT, 0.0)
    assert run.status == "waiting_ack" and run.level == "community"
    deadline = run.deadline_at
    assert deadline is not None
    run, cmds = engine.timeout(run, deadline)
    assert run.level == "street", [c.action for c in cmds]
    return engine, run, deadline


def test_an_ack_applied_after_the_ladder_moved_the_run_counts_where_it_was_given(
    grid: Grid,
) -> None:
    engine, run, deadline = laddered(grid)
    registry = CollectorRegistry()
    stage = stub_stage(Metrics.create(registry))
    given = deadline - 5.0  # the operator acked before the deadline, at community
    run, cmds = engine.acknowledge(run, "ana", given, "on my way", level="community")
    for cmd in cmds:
        Response._kpis(stage, run, cmd)  # type: ignore[arg-type]
    [acked] = [c for c in cmds if c.action == "acknowledged"]
    assert (acked.level, acked.at) == ("community", given)
    [entry] = [a for a in run.actions if a["action"] == "ack"]
    assert (entry["level"], entry["at"], entry["by"]) == ("community", given, "ana")
    assert run.acknowledged_at == given and run.level == "street"  # the run stays moved
    assert value(registry, f"{TIME_TO_ACK}_count", level="community") == 1
    assert value(registry, f"{TIME_TO_ACK}_count", level="street") == 0
    assert value(registry, f"{TIME_TO_ACK}_sum", level="community") == given
    assert value(registry, "citybrain_playbook_acks_total", level="community") == 1


def test_a_command_without_a_level_is_recorded_at_the_runs_level(grid: Grid) -> None:
    engine, run, deadline = laddered(grid)
    run, cmds = engine.acknowledge(run, "ana", deadline + 1.0)
    assert [c.level for c in cmds if c.action == "acknowledged"] == ["street"]
    assert run.actions[-1]["level"] == "street"


@pytest.mark.parametrize(
    ("action", "apply"),
    [
        ("resolve", lambda e, r: e.resolve(r, "ana", "fixed", 7.0, "community")),
        ("cancel", lambda e, r: e.cancel(r, "ana", "duplicate", 7.0, "community")),
    ],
)
def test_a_late_resolve_or_cancel_is_in_the_history_at_the_level_given(
    grid: Grid, action: str, apply: Any
) -> None:
    engine, run, _ = laddered(grid)
    run, _ = apply(engine, run)
    assert run.actions[-1] == {
        "action": action,
        "by": "ana",
        "at": 7.0,
        "note": run.resolution,
        "level": "community",
    }


@pytest.mark.parametrize("level", ["town", 3, "", ["street"]])
def test_a_commands_level_that_is_no_grid_level_is_refused_naming_it(level: object) -> None:
    cmd = {"id": "c", "run_id": "r", "action": "ack", "level": level}
    with pytest.raises(EventError) as err:
        command_fields(cmd)
    assert "level" in str(err.value)


def test_the_ladder_waits_for_an_answer_taken_before_its_deadline_and_still_on_its_way(
    grid: Grid,
) -> None:
    # An ack the API took before the deadline, queued while Kafka froze: the ladder told
    # the street office about a run acknowledged in time (t114). It now waits for it.
    import time
    from types import SimpleNamespace

    from streams.context import PendingCommands

    engine = PlaybookEngine(PLAYBOOKS["sensor-anomaly"], grid)
    wait = engine.new_run("run-w", ALERT, 0.0)[0].deadline_at
    assert wait is not None
    run, _ = engine.new_run("run-w", ALERT, time.time() - wait - 10.0)  # past 10 s ago
    assert run.status == "waiting_ack" and run.deadline_at is not None
    pending = PendingCommands()
    stage = SimpleNamespace(ctx=SimpleNamespace(pending_commands=pending))

    def on_its_way() -> bool:
        return Response._answer_on_its_way(stage, run)  # type: ignore[arg-type]

    assert not on_its_way()
    mono = time.monotonic()
    given = mono - (time.time() - run.deadline_at) - 1.0  # a second before the deadline
    pending.hold(run.run_id, "c-escalate", "escalate", given)
    assert not on_its_way()  # not an answer to the wait
    pending.hold(run.run_id, "c-late", "ack", mono)  # taken after the deadline
    assert not on_its_way()
    pending.hold(run.run_id, "c-ack", "ack", given)
    assert on_its_way()
    pending.release(run.run_id, "c-ack")  # applied (or refused): the ladder goes on
    assert not on_its_way()


@pytest.mark.parametrize(
    ("outcome", "close"),
    [
        ("resolved", lambda e, r: e.resolve(r, "ana", "fixed", 7.0, "community")),
        ("cancelled", lambda e, r: e.cancel(r, "ana", "duplicate", 7.0, "community")),
    ],
)
def test_a_late_closing_counts_replies_and_is_undone_at_the_level_given(
    grid: Grid, outcome: str, close: Any
) -> None:
    # A resolve (or cancel) given at community, applied after the ladder took the run to
    # the street: its closing was counted, its reply sent and its reopening undone at the
    # street level, so the campaign's first-line share said the street closed it.
    engine, run, _ = laddered(grid)
    registry = CollectorRegistry()
    stage = stub_stage(Metrics.create(registry))
    run, _ = engine.step(run, ReportsCovered((("r-1", "app"),), 5.0))
    run, closing = close(engine, run)
    run, reopening = engine.step(run, Answer("r-1", False, "still broken", "desk", 20.0))
    for cmd in [*closing, *reopening]:
        Response._kpis(stage, run, cmd)  # type: ignore[arg-type]
    [closed] = [c for c in closing if c.action == outcome]
    [reply] = [c for c in closing if c.action == "reply"]
    [reopened] = [c for c in reopening if c.action == "reopened"]
    assert (closed.level, reply.level, reopened.level) == ("community",) * 3
    assert "(community level)" in reply.detail and reply.unit == engine.unit(run, "community")
    for level, count in (("community", 1), ("street", 0)):
        assert value(registry, CAMPAIGN_RUNS_CLOSED, level=level, outcome=outcome) == count
        assert value(registry, CAMPAIGN_REOPENED, level=level, outcome=outcome) == count
        assert value(registry, CAMPAIGN_REPLIES, level=level, outcome=outcome) == count
    # Reopened, the run is open at the level it had reached; a new closing is its own.
    assert (run.level, run.closed_level) == ("street", None)
    run, cmds = engine.resolve(run, "bo", "fixed again", 30.0)
    assert [c.level for c in cmds if c.action == "resolved"] == ["street"]


def test_a_run_stored_before_the_closing_level_was_kept_reads_back(grid: Grid) -> None:
    engine, run, _ = laddered(grid)
    run, _ = engine.resolve(run, "ana", "fixed", 7.0, "community")
    stored = run.to_dict()
    assert stored["closed_level"] == "community"
    assert run_problem(stored) is None
    del stored["closed_level"]  # written before the field existed
    assert run_problem(stored) is None
    old = Run.from_dict(stored)
    assert closing_level(old) == "street"  # none kept: the run's level, as before
    assert "closed_level" in (run_problem({**run.to_dict(), "closed_level": "town"}) or "")
