"""The pure engine on the shipped playbook: notify, wait, escalate up the grid, ack."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.engine import PlaybookEngine, Run
from playbooks.errors import InvalidTransitionError, PlaybookConfigError
from playbooks.grid import Grid
from playbooks.loader import default_playbook_path, load_playbook


@pytest.fixture
def engine(grid: Grid) -> PlaybookEngine:
    return PlaybookEngine(load_playbook(default_playbook_path()), grid)


def new_run() -> Run:
    return Run.for_alert("al-1", "sensor-anomaly", "c-bridge", "water_level", now=100.0)


def test_start_notifies_the_community_unit_and_waits(engine: PlaybookEngine) -> None:
    run, cmds = engine.start(new_run(), now=100.0)
    assert [(c.action, c.level, c.unit) for c in cmds] == [
        ("notify", "community", "bridge community station"),
        ("wait_ack", "community", None),
    ]
    assert run.status == "waiting_ack" and run.deadline_at == 220.0  # 120 s in the YAML
    assert [c.id for c in cmds] == ["run-al-1:1", "run-al-1:2"]


def test_no_ack_escalates_to_the_street_then_runs_out(engine: PlaybookEngine) -> None:
    run, _ = engine.start(new_run(), now=100.0)
    assert engine.timeout(run, now=219.0) == (run, [])  # not yet due: nothing happens
    run, cmds = engine.timeout(run, now=220.0)
    assert [(c.action, c.level, c.unit) for c in cmds] == [
        ("ack_timeout", "community", None),
        ("escalate", "street", "river street office"),
        ("wait_ack", "street", None),
    ]
    assert (run.status, run.level, run.escalations, run.deadline_at) == (
        "waiting_ack",
        "street",
        1,
        520.0,
    )
    run, cmds = engine.timeout(run, now=520.0)
    assert [c.action for c in cmds] == ["ack_timeout", "unacknowledged"]
    assert run.status == "unacknowledged" and run.deadline_at is None


def test_ack_stops_the_clock_and_a_second_timeout_is_a_no_op(engine: PlaybookEngine) -> None:
    run, _ = engine.start(new_run(), now=100.0)
    run, cmds = engine.acknowledge(run, by="bridge community station", now=150.0)
    assert [c.action for c in cmds] == ["acknowledged"]
    assert run.status == "acknowledged" and run.deadline_at is None
    assert engine.timeout(run, now=1000.0)[1] == []
    run, _ = engine.resolve(run, "pumped out", now=300.0)
    assert run.status == "resolved"
    with pytest.raises(InvalidTransitionError, match="'resolved' cannot take event 'ack'"):
        engine.acknowledge(run, by="x", now=301.0)


def test_deadline_override_for_rehearsals(grid: Grid) -> None:
    fast = PlaybookEngine(load_playbook(default_playbook_path()), grid, deadline_override=2.0)
    run, _ = fast.start(new_run(), now=0.0)
    assert run.deadline_at == 2.0


def test_run_survives_a_json_round_trip(engine: PlaybookEngine) -> None:
    run, _ = engine.start(new_run(), now=100.0)
    assert Run.from_dict(run.to_dict()) == run


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("playbook: p\nversion: 1\nsteps: []\n", "steps: Value error, a playbook needs"),
        ("playbook: p\nversion: 1\nsteps:\n  - {id: a, action: teleport}\n", "steps.0"),
        (
            "playbook: p\nversion: 1\nsteps:\n  - {id: a, action: wait_ack, deadline: soon}\n",
            "duration is 'soon'",
        ),
        (
            "playbook: p\nversion: 1\nsteps:\n  - {id: a, action: notify, level: planet}\n",
            "level is 'planet'",
        ),
        (
            "playbook: p\nversion: 1\ncolour: red\nsteps:\n  - {id: a, action: notify}\n",
            "colour: Extra inputs are not permitted",
        ),
        (
            "playbook: p\nversion: 1\nsteps:\n  - {id: a, action: notify}\n"
            "  - {id: a, action: notify}\n",
            "step id 'a' is used twice",
        ),
        ("playbook: [\n", "not valid YAML"),
    ],
)
def test_bad_playbooks_name_file_and_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PlaybookConfigError) as info:
        load_playbook(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
