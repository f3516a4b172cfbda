"""t120: a worker killed after storing what it did but before its offsets were committed
reads again, after its restart, every routed message and command since its last commit
(each topic in its own order, the two interleaved as they come), and its timer finds
the deadlines that fell due meanwhile. A seeded loop of kill points over four scripted
incidents (``SCENARIOS``) checks that the group ends as an unkilled run leaves it: the
same runs, levels, alerts, members, reports, applied commands and closure calls, every
step and closure id once with one content, no dead letter. No broker: the context's sends are captured (as in
test_group_flushes); the tables' state survives the kill, the worker's memory does not."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.replies import RESENDS, UNDELIVERED, result_id
from streams.response import Response
from tests.unit.streams.test_group_flushes import Clock, make_stage, muted_notice, start_clock
from tests.unit.streams.test_response_races import KEY, Event, alert

RUN_A, RUN_B = f"{KEY.decode()}.1", f"{KEY.decode()}.2"
URL = "http://127.0.0.1:9/replies"
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


def reported(alert_id: str, *reports: str) -> dict[str, Any]:
    doc = alert(alert_id)
    doc["alert"]["reports"] = [{"report_id": r, "channel": "hotline"} for r in reports]
    return doc


def outcomes(ok: bool) -> Any:
    """The outcomes of the group's closure calls in flight, as the executor sends them."""

    def made(group: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "id": result_id(reply_id, (group.get(RESENDS) or {}).get(reply_id, 0)),
                "run_id": reply_id.rsplit(":", 1)[0],
                "action": "action_result",
                "command_id": reply_id,
                "ok": ok,
                "detail": "HTTP 200" if ok else "HTTP 503",
                "by": "citybrain",
            }
            for reply_id in sorted(group.get("reply_calls") or {})
        ]

    return made


def answer(cid: str, report: str, satisfied: bool) -> dict[str, Any]:
    return {
        **command(cid, RUN_A, "answer"),
        "report_id": report,
        "satisfied": satisfied,
        "comment": "" if satisfied else "still flooded",
    }


# Citizens' reports closed, a reporter unsatisfied (reopened), closures failing and re-sent.
CITIZENS: list[tuple[str, Any]] = [
    ("routed", reported("al-c", "r-1", "r-2")),
    ("tick", 1),
    ("routed", reported("al-c", "r-3")),  # a follow-up
    ("commands", command("resolve-1", RUN_A, "resolve")),
    ("tick", 1),
    ("commands", outcomes(ok=False)),  # the closures given up
    ("commands", command("resend-1", RUN_A, "resend_closures")),
    ("tick", 1),
    ("commands", outcomes(ok=True)),
    ("commands", answer("answer-1", "r-1", satisfied=False)),  # reopened
    ("tick", 1),
    ("commands", command("resolve-2", RUN_A, "resolve")),
    ("tick", 1),
    ("commands", outcomes(ok=True)),
    ("commands", answer("answer-2", "r-1", satisfied=True)),
    ("routed", resolved("al-c")),
    ("tick", 400),
]
# Escalations due while the worker was down: each once, late, at its level.
LADDER: list[tuple[str, Any]] = [
    ("routed", alert("al-e")),
    ("tick", 1),
    ("tick", 301),  # wait-community's 5 minutes passed: to the street level
    ("tick", 1000),  # down past wait-street's 10 minutes: to the district, once
    ("commands", command("ack-e", RUN_A, "ack")),
    ("tick", 1),
    ("commands", command("resolve-e", RUN_A, "resolve")),
    ("routed", resolved("al-e")),
    ("tick", 400),
]


def offer(report: str) -> dict[str, Any]:
    """A report in no alert offered to the group's run (streams.ingest ``_offer``)."""
    doc = {"report_id": report, "channel": "hotline", "grid_cell": "c-bridge", "ts": None}
    return {"report": {**doc, "category": "flooding", "late": False}}


# t124: reports offered before their group's run opens, held for it (``HELD_OFFERS``); a
# kill after the offer's offset was committed and before the run opened lost r-9, held in
# the worker's memory (its reporter never heard a closure). r-10 comes once the run is
# closed, held for the group's next run.
OFFERED: list[tuple[str, Any]] = [
    ("routed", offer("r-9")),  # no run yet: held
    ("tick", 1),
    ("routed", offer("r-8")),
    ("tick", 1),
    ("routed", reported("al-o", "r-1")),  # the run opens and takes r-9 and r-8
    ("tick", 1),
    ("routed", offer("r-9")),  # offered again (another route's group key, a re-send)
    ("commands", command("resolve-o", RUN_A, "resolve")),
    ("tick", 1),
    ("commands", outcomes(ok=True)),
    ("routed", resolved("al-o")),
    ("routed", offer("r-10")),  # the run is closed: held for the next
    ("routed", offer("r-8")),  # covered by the closed run: not held again
    ("tick", 400),
]
SCENARIOS = {
    "ladder": (LADDER, ["resolved"]),
    "incident": (SCENARIO, ["resolved", "cancelled"]),
    "freed": (FREED, ["cancelled"]),
    "citizens": (CITIZENS, ["resolved"]),
    "offered": (OFFERED, ["resolved"]),
}


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
        "reports": {r: v["status"] for r, v in group["run"].get("reports", {}).items()},
        "reply_calls": sorted(group.get("reply_calls") or {}),
        "undelivered": sorted(group.get(UNDELIVERED) or {}),
        "levels": [(r["run_id"], r["level"], r["escalations"]) for r in runs],
        "held": [h["report"]["report_id"] for h in group.get("held_offers") or []],
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
    settings = response.ctx.settings.model_copy(update={"replies_webhook_url": URL})
    response.ctx.settings = response.settings = settings
    clock: Clock = start_clock(response, monkeypatch)
    letters: list[tuple[str, str]] = []
    calls: list[str] = []

    def submit(command_id: str, url: str, payload: dict[str, Any]) -> bool:
        calls.append(command_id)
        return True

    response.webhooks.submit = submit  # type: ignore[method-assign]

    async def dead_letter(role: str, event: Any, code: str, reason: str) -> None:
        letters.append((code, reason))

    response.ctx.dead_letter = dead_letter  # type: ignore[method-assign]

    made: dict[int, list[dict[str, Any]]] = {}  # a dynamic op's messages, as first sent

    async def apply(stage: Response, i: int, topic: str, value: Any) -> None:
        if callable(value):
            if i not in made:
                made[i] = value(stage.ctx.groups.data.get(KEY) or {})
            for doc in made[i]:
                await apply(stage, i, topic, doc)
        elif topic == "tick":
            clock.now += value
            await stage.check_deadlines()
        elif topic == "routed":
            await stage.on_routed(Event(KEY, value))  # type: ignore[arg-type]
        else:
            await stage.on_command(Event(KEY, value))  # type: ignore[arg-type]

    async def scenario() -> None:
        stage = response
        for i, (topic, value) in enumerate(ops):
            await apply(stage, i, topic, value)
            if kill is not None and i == kill[0]:
                stage = Response(response.ctx)  # a new process: its memory gone
                stage._update_lag = response._update_lag  # type: ignore[method-assign]
                stage.webhooks.submit = submit  # type: ignore[method-assign]
                again = [
                    (j, *op) for j, op in enumerate(ops) if kill[1] < j <= i and op[0] != "tick"
                ]
                rng = random.Random(kill[2])
                routed = [op for op in again if op[1] == "routed"]
                commands = [op for op in again if op[1] == "commands"]
                while routed or commands:  # each topic in order, interleaved by the seed
                    side = routed if not commands or (routed and rng.random() < 0.5) else commands
                    await apply(stage, *side.pop(0))

    asyncio.run(scenario())
    return {**summary(response), "calls": sorted(set(calls))}, sent, letters


def sent_id(message: dict[str, Any]) -> tuple[str, str]:
    """A step's id, or a closure's reply id (its step carries the same id)."""
    if "reply_id" in message:
        return ("reply", message["reply_id"])
    return ("step", message["id"])


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
    assert expected["reply_calls"] == []  # every call's outcome came back
    got, sent, letters = play(tmp_path / "b", monkeypatch, ops, kill)
    assert letters == []
    assert got == expected
    # Every step id once in content: a step sent again (the outbox) is the same step.
    # Closures likewise, by reply id: one per report per closing.
    by_id: dict[tuple[str, str], bytes] = {}
    for step in sent:
        body = orjson.dumps(step, option=orjson.OPT_SORT_KEYS)
        assert by_id.setdefault(sent_id(step), body) == body, sent_id(step)
    assert set(by_id) == {sent_id(s) for s in unkilled}


@pytest.mark.parametrize("kill", [(0, 0, 1), (1, 0, 2), (2, 2, 3), (3, 2, 4), (3, 0, 5)])
def test_a_report_offered_before_its_run_opened_survives_a_kill_before_the_opening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kill: tuple[int, int, int]
) -> None:
    """t124: killed after r-9's offer (and r-8's) was committed and before the run opened,
    the restarted worker's run covers both, once, and closes them once each: held in
    memory, they were lost (r-9 in no run, no closure)."""
    expected, _, _ = play(tmp_path / "a", monkeypatch, OFFERED, None)
    got, sent, letters = play(tmp_path / "b", monkeypatch, OFFERED, kill)
    assert set(got["reports"]) == set(expected["reports"]) == {"r-1", "r-8", "r-9"}
    assert expected["held"] == ["r-10"]
    assert letters == []
    assert got == expected
    covered = [s for s in sent if s.get("action") == "report_covered"]
    # Each step and closure once (one sent again from the outbox has the same id).
    assert sorted({s["id"]: s["detail"] for s in covered}.values()) == ["r-1", "r-8", "r-9"]
    closures = {s["reply_id"]: s["report_id"] for s in sent if "reply_id" in s}
    assert sorted(closures.values()) == ["r-1", "r-8", "r-9"]
