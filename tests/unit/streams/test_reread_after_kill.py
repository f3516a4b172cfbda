"""t120: a worker killed after storing what it did but before its offsets were committed
reads again, after its restart, every routed message and command since its last commit
(each topic in its own order, the two interleaved as they come). A seeded loop of kill
points over one scripted incident (a muted alert freed, acknowledged, joined, resolved,
the group's next run opened and cancelled) checks that the group ends as an unkilled
run leaves it: the same runs, alerts, members and applied commands, every step id once
with one content, no dead letter. No broker: the context's sends are captured (as in
test_group_flushes); the tables' state survives the kill, the worker's memory does not."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.response import Response
from tests.unit.streams.test_group_flushes import Clock, make_stage, muted_notice, start_clock
from tests.unit.streams.test_response_races import KEY, Event, alert

RUN_A, RUN_B = f"{KEY.decode()}.1", f"{KEY.decode()}.2"
T0 = 1_000_000.0


def resolved(alert_id: str) -> dict[str, Any]:
    doc = alert(alert_id)
    doc["alert"]["status"] = "resolved"
    return doc


def command(cid: str, run_id: str, action: str) -> dict[str, Any]:
    return {"id": cid, "run_id": run_id, "action": action, "by": "op"}


# (topic, message) or ("tick", seconds): the deadline timer after the clock moved.
SCENARIO: list[tuple[str, Any]] = [
    ("routed", muted_notice("al-m", T0)),
    ("tick", 5),
    ("routed", {**alert("al-m"), "grouped_at": T0}),  # its silence ended: run A
    ("tick", 1),
    ("commands", command("ack-a", RUN_A, "ack")),
    ("routed", alert("al-2")),  # joins A
    ("tick", 301),  # the group's next flush
    ("routed", resolved("al-m")),
    ("routed", alert("al-2")),  # sent again by the alerts stage
    ("routed", resolved("al-2")),
    ("commands", command("resolve-a", RUN_A, "resolve")),
    ("tick", 2),
    ("routed", alert("al-3")),  # the group's next run: B
    ("tick", 1),
    ("commands", command("cancel-b", RUN_B, "cancel")),
    ("routed", resolved("al-3")),
    ("tick", 400),
]
# A silence ends on a firing alert: freed, its run cancelled while it still fires.
FREED: list[tuple[str, Any]] = [
    ("routed", muted_notice("al-m", T0)),
    ("tick", 5),
    ("routed", {**alert("al-m"), "grouped_at": T0}),
    ("tick", 1),
    ("commands", command("cancel-a", RUN_A, "cancel")),
    ("tick", 400),
]
SCENARIOS = {"incident": (SCENARIO, ["resolved", "cancelled"]), "freed": (FREED, ["cancelled"])}


def summary(response: Response) -> dict[str, Any]:
    """What must not depend on a kill: the group's runs, alerts, members and memory."""
    group = response.ctx.groups.data[KEY]
    runs = [kept["run"] for kept in group.get("superseded", [])] + [group["run"]]
    return {
        "runs": [
            (r["run_id"], r["status"], sorted(r["alerts"]), sorted(r.get("ended_alerts", [])))
            for r in runs
        ],
        "seen": sorted(group["seen"]),
        "commands": sorted(group["commands"]),
        "muted": sorted(group.get("muted") or {}),
        "outbox": group.get("outbox"),
    }


def play(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ops: list[tuple[str, Any]],
    kill: tuple[int, int, int] | None,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[tuple[str, str]]]:
    """The scenario ``ops``, killed after op ``kill[0]`` with the offsets committed up to op
    ``kill[1]`` (the restart reads the messages in between again, interleaved by the
    seed ``kill[2]``); the summary, the sent messages and the dead letters."""
    response, sent = make_stage(tmp_path)
    clock: Clock = start_clock(response, monkeypatch)
    letters: list[tuple[str, str]] = []

    async def dead_letter(role: str, event: Any, code: str, reason: str) -> None:
        letters.append((code, reason))

    response.ctx.dead_letter = dead_letter  # type: ignore[method-assign]

    async def apply(stage: Response, topic: str, value: Any) -> None:
        if topic == "tick":
            clock.now += value
            await stage.check_deadlines()
        elif topic == "routed":
            await stage.on_routed(Event(KEY, value))  # type: ignore[arg-type]
        else:
            await stage.on_command(Event(KEY, value))  # type: ignore[arg-type]

    async def scenario() -> None:
        stage = response
        for i, (topic, value) in enumerate(ops):
            await apply(stage, topic, value)
            if kill is not None and i == kill[0]:
                stage = Response(response.ctx)  # a new process: its memory gone
                stage._update_lag = response._update_lag  # type: ignore[method-assign]
                again = [op for op in ops[kill[1] + 1 : i + 1] if op[0] != "tick"]
                rng = random.Random(kill[2])
                routed = [op for op in again if op[0] == "routed"]
                commands = [op for op in again if op[0] == "commands"]
                while routed or commands:  # each topic in order, interleaved by the seed
                    side = routed if not commands or (routed and rng.random() < 0.5) else commands
                    await apply(stage, *side.pop(0))

    asyncio.run(scenario())
    return summary(response), sent, letters


def kills(seed: int, n: int) -> list[tuple[str, tuple[int, int, int]]]:
    """``n`` kill points per scenario: (scenario, (after op, committed up to op, seed))."""
    rng = random.Random(seed)
    points = []
    for name, (ops, _) in SCENARIOS.items():
        for _ in range(n):
            at = rng.randrange(len(ops))
            points.append((name, (at, rng.randrange(-1, at + 1), rng.randrange(1 << 30))))
    return points


@pytest.mark.parametrize(("name", "kill"), kills(120, 30))
def test_a_kill_anywhere_in_the_incident_ends_as_an_unkilled_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, kill: tuple[int, int, int]
) -> None:
    ops, statuses = SCENARIOS[name]
    expected, unkilled, no_letters = play(tmp_path / "a", monkeypatch, ops, None)
    assert no_letters == []
    assert [r[1] for r in expected["runs"]] == statuses
    got, sent, letters = play(tmp_path / "b", monkeypatch, ops, kill)
    assert letters == []
    assert got == expected
    # Every step id once in content: a step sent again (the outbox) is the same step.
    by_id: dict[str, bytes] = {}
    for step in sent:
        if "id" in step:
            body = orjson.dumps(step, option=orjson.OPT_SORT_KEYS)
            assert by_id.setdefault(step["id"], body) == body, step["id"]
    want = {s["id"] for s in unkilled if "id" in s}
    assert set(by_id) == want
