"""A group's bounded memories hold distinct ids: the alert ids it has seen (500: a
redelivered alert does not join again), the command ids it has applied (200), and a run's
alerts (100). Each sighting of an id used to be appended, so a burst's follow-ups (one
routed message each, all with the burst's alert id) filled ``seen`` with one id and
pushed out the rest: a redelivery of a forgotten alert then opened a new run. No broker:
the context's sends are captured, as in test_response_races."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from playbooks.engine import MAX_RUN_ALERTS, newest_distinct
from streams.response import APPLIED_COMMANDS, SEEN_ALERTS, Response
from tests.unit.streams.test_covered_once import burst
from tests.unit.streams.test_response_races import Event
from tests.unit.streams.test_response_races import response as races_response

KEY = b"grp-noise"


@pytest.fixture
def stage(tmp_path: Path) -> Response:
    stage, _ = races_response.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    return stage  # type: ignore[no-any-return]


def test_newest_distinct_keeps_the_newest_ids_once_each() -> None:
    assert newest_distinct(["a", "b", "c"], "a", 3) == ["b", "c", "a"]
    assert newest_distinct(["a", "b", "c"], "d", 3) == ["b", "c", "d"]
    # A memory stored with repeats (before the rule) is cleaned at its next sighting.
    assert newest_distinct(["a", "x", "x", "a", "x"], "b", 5) == ["a", "x", "b"]
    memory: list[str] = []
    for n in range(2_000):
        memory = newest_distinct(memory, "hot" if n % 2 else f"id-{n}", 500)
    assert len(memory) == len(set(memory)) == 500 and memory[-1] == "hot"


def test_a_bursts_follow_ups_do_not_push_the_groups_other_alerts_out(stage: Response) -> None:
    async def scenario() -> None:
        await stage.on_routed(Event(KEY, burst("al-0", "r-0")))  # type: ignore[arg-type]
        await stage.on_routed(Event(KEY, burst("al-1", "r-1")))  # type: ignore[arg-type]
        # al-1's burst stays open: each report that follows it is a routed message of
        # its own with the same alert id (SEEN_ALERTS + 100 of them).
        for n in range(SEEN_ALERTS + 100):
            follow = burst("al-1", f"f-{n % 3}")
            await stage.on_routed(Event(KEY, follow))  # type: ignore[arg-type]
        group = stage.ctx.groups.data[KEY]
        assert group["seen"] == ["al-0", "al-1"]
        run = group["run"]
        assert run["alerts"] == ["al-0", "al-1"]
        done = {"id": "cmd-1", "run_id": run["run_id"], "action": "resolve", "by": "ana"}
        await stage.on_command(Event(KEY, done))  # type: ignore[arg-type]
        # al-0 redelivered (a consumer's restart) after the run closed: still known, so
        # no new run (before: forgotten, it opened run .2 and a second dispatch).
        await stage.on_routed(Event(KEY, burst("al-0")))  # type: ignore[arg-type]
        group = stage.ctx.groups.data[KEY]
        assert group["generation"] == 1 and group["run"]["status"] == "resolved"

    asyncio.run(scenario())


def test_a_groups_memories_hold_their_bound_of_distinct_ids(stage: Response) -> None:
    async def scenario() -> None:
        await stage.on_routed(Event(KEY, burst("al-first")))  # type: ignore[arg-type]
        for n in range(SEEN_ALERTS + 50):
            await stage.on_routed(Event(KEY, burst(f"al-{n}")))  # type: ignore[arg-type]
            if n % 10 == 0:  # the first alert, sighted again now and then
                await stage.on_routed(Event(KEY, burst("al-first")))  # type: ignore[arg-type]
        group = stage.ctx.groups.data[KEY]
        seen = group["seen"]
        assert len(seen) == len(set(seen)) == SEEN_ALERTS
        assert "al-first" in seen and seen[-1] == f"al-{SEEN_ALERTS + 49}"
        alerts = group["run"]["alerts"]
        assert len(alerts) == len(set(alerts)) == MAX_RUN_ALERTS
        run_id = group["run"]["run_id"]
        for n in range(APPLIED_COMMANDS + 20):
            ack = {"id": f"cmd-{n}", "run_id": run_id, "action": "ack", "by": "ana"}
            await stage.on_command(Event(KEY, ack))  # type: ignore[arg-type]
            await stage.on_command(Event(KEY, ack))  # type: ignore[arg-type]
        commands = stage.ctx.groups.data[KEY]["commands"]
        assert len(commands) == len(set(commands)) == APPLIED_COMMANDS
        assert commands[-1] == f"cmd-{APPLIED_COMMANDS + 19}"

    asyncio.run(scenario())


def test_a_webhook_call_made_again_is_remembered_as_the_newest(stage: Response) -> None:
    stage._remember_call("old")
    for n in range(5):
        stage._remember_call(f"c-{n}")
    stage._remember_call("old")  # made again (a run's next owner)
    assert list(stage._called)[-1] == "old"
