"""t193: the commands agent takes a batch (one partition's fetch) at a time, and the
commands of the batch changing one run are one change of it: its state stored once, the
commands' steps sent together; the runs' changes stored side by side. Before, every
command stored its own change (two Kafka round trips), and a flood of acknowledgements
and closures held every other command behind it (docs/playbooks.md, "A flood of
commands").

No broker: the context's changelog writes and sends are counted (the fixture of
tests/unit/streams/test_response_races.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streams.partitioning import key_partition
from streams.replies import AUDITED
from streams.response import Response
from tests.unit.streams.test_response_races import (
    KEY,
    Event,
    Gate,
    alert,
    captured,
    dead_letters_and_audit,
    response,
)
from tests.unit.streams.test_routed_batches import batch, writes_of

__all__ = ["response"]  # the fixture, used by name

OTHER = b"grp-other"
RUN, OTHER_RUN = f"{KEY.decode()}.1", f"{OTHER.decode()}.1"


def cmd(cid: str, action: str, run_id: str = RUN, **more: Any) -> dict[str, Any]:
    return {"id": cid, "run_id": run_id, "action": action, "by": "duty", **more}


def key_of(run_id: str) -> bytes:
    return run_id.rsplit(".", 1)[0].encode()


async def opened(stage: Response) -> None:
    """Both runs open (one alert each)."""
    await stage.on_routed_batch(batch((KEY, alert("al-0")), (OTHER, alert("ot-0"))))
    await stage.check_deadlines()


def actions(sent: list[tuple[str, Any]], *names: str) -> list[tuple[str, str]]:
    return [(b["run_id"], b["action"]) for _, b in sent if b.get("action") in names]


def test_a_batch_of_commands_on_one_run_is_one_change_of_it(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ack, 200 acks again under new ids (a script re-sending it), an escalation and
    a resolution of one run in one batch: two changelog writes (its state with the
    outbox, then without), every step in order. Fails on the old code (no batch: 403
    writes, one or two per command)."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)
    flood = [
        cmd("ack", "ack"),
        *(cmd(f"again-{n}", "ack") for n in range(200)),
        cmd("esc", "escalate"),
        cmd("done", "resolve"),
    ]

    async def scenario() -> list[bytes]:
        await opened(stage)
        written = writes_of(stage)
        await stage.on_command_batch(batch(*((KEY, c) for c in flood)))
        return written

    assert asyncio.run(scenario()) == [KEY, KEY]
    assert actions(sent, "acknowledged", "escalate", "resolved") == [
        (RUN, "acknowledged"),
        (RUN, "escalate"),
        (RUN, "resolved"),
    ]
    group = stage.ctx.groups.data[KEY]
    assert group["run"]["status"] == "resolved" and group["run"]["level"] == "street"
    assert "outbox" not in group and {"esc", "done"} <= set(group["commands"])  # the newest 200


def test_the_batch_gives_the_states_and_steps_one_command_at_a_time_gives(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs' commands interleaved, a repeat by id, a refused one (an escalation past
    the city) and one for an unknown run among them: the same states, step ids, audit
    records and dead letters as the one-at-a-time handler."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)
    items = [
        cmd("a1", "ack"),
        cmd("b1", "escalate", OTHER_RUN),
        cmd("a1", "ack"),  # read again: a repeat
        cmd("a2", "escalate"),
        cmd("b2", "escalate", OTHER_RUN),
        cmd("b3", "escalate", OTHER_RUN),
        cmd("b4", "escalate", OTHER_RUN),  # past the city: refused
        cmd("x1", "ack", "grp-nowhere.1"),
        cmd("a3", "resolve", note="fixed"),
    ]

    def run_both() -> tuple[list[Any], ...]:
        results = []
        for mode in ("batch", "alone"):
            stage.ctx.groups.data.clear()
            sent.clear()
            letters, audited = dead_letters_and_audit(stage, monkeypatch)

            async def scenario(mode: str = mode) -> None:
                await opened(stage)
                if mode == "batch":
                    await stage.on_command_batch(batch(*((key_of(c["run_id"]), c) for c in items)))
                else:
                    for c in items:
                        await stage.on_command(Event(key_of(c["run_id"]), c))  # type: ignore[arg-type]

            asyncio.run(scenario())
            groups = {k: dict(v) for k, v in stage.ctx.groups.data.items()}
            steps = [(b["id"], b["action"], b["run_id"]) for _, b in sent]
            refused = [(r["id"], r["action"]) for r in audited if r["action"] == "command_refused"]
            results.append((groups, steps, refused, [(c, w[:40]) for _, c, w in letters]))
        return tuple(results)

    (groups, steps, refused, letters), (groups_1, steps_1, refused_1, letters_1) = run_both()
    for run_id in (RUN, OTHER_RUN):  # each run's in its order on each topic (the runs'
        for audit in (True, False):  # changes side by side; steps and audit apart)
            assert [s for s in steps if s[2] == run_id and (s[1] in AUDITED) is audit] == [
                s for s in steps_1 if s[2] == run_id and (s[1] in AUDITED) is audit
            ]
    assert sorted(steps) == sorted(steps_1)
    assert refused == refused_1 == [("b4:refused", "command_refused")]
    assert letters == letters_1 and [c for c, _ in letters] == ["unknown_run"]
    for key in (KEY, OTHER):
        for field in ("status", "level", "acknowledged_by", "escalations"):
            assert groups[key]["run"][field] == groups_1[key]["run"][field], field
        done = [{k: v for k, v in a.items() if k != "at"} for a in groups[key]["run"]["actions"]]
        alone = [{k: v for k, v in a.items() if k != "at"} for a in groups_1[key]["run"]["actions"]]
        assert done == alone  # (the clock's times apart)
        assert groups[key]["commands"] == groups_1[key]["commands"]


def test_a_runs_change_that_cannot_be_stored_costs_only_its_own_commands(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run's change refused before anything is sent (too large): each of its
    commands dead-lettered with the reason, its group left as stored; the other run's
    commands in the same batch applied and stored."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)

    async def scenario() -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        await opened(stage)
        before = dict(stage.ctx.groups.data[KEY])
        letters, _ = dead_letters_and_audit(stage, monkeypatch)
        sizes = stage.ctx.groups.encode

        def encode(group: Any) -> bytes:
            big = isinstance(group, dict) and (group.get("run") or {}).get("run_id") == RUN
            return b"x" * 2_000_000 if big and "outbox" not in group else sizes(group)

        monkeypatch.setattr(stage.ctx.groups, "encode", encode)
        await stage.on_command_batch(
            batch(
                (KEY, cmd("a1", "ack")),
                (OTHER, cmd("b1", "ack", OTHER_RUN)),
                (KEY, cmd("a2", "escalate")),
            )
        )
        return before, letters

    before, letters = asyncio.run(scenario())
    assert stage.ctx.groups.data[KEY] == before
    assert [(role, code) for role, code, _ in letters] == [("commands", "processing_error")] * 2
    assert all("RunTooLarge" in why for _, _, why in letters)
    assert stage.ctx.groups.data[OTHER]["run"]["acknowledged_by"] == "duty"
    assert actions(sent, "acknowledged") == [(OTHER_RUN, "acknowledged")]


def test_the_apis_wait_for_a_command_ends_once_its_change_is_stored(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command the operator API sent (held in ``pending_commands``) is released only
    once its run's change is on the changelog, not when it is applied in memory: the
    API never answers from a state a crash could undo."""
    stage, _ = response
    captured(stage, monkeypatch)
    seen: list[int] = []

    async def scenario() -> None:
        await opened(stage)
        stage.ctx.pending_commands.hold(RUN, "a1", "ack", 0.0)
        store = stage.advance

        async def advance(*args: Any) -> None:
            seen.append(len(stage.ctx.pending_commands))
            await store(*args)

        monkeypatch.setattr(stage, "advance", advance)
        await stage.on_command_batch(batch((KEY, cmd("a1", "ack")), (KEY, cmd("a2", "escalate"))))

    asyncio.run(scenario())
    assert seen == [1]  # one change, stored while the API still waited
    assert len(stage.ctx.pending_commands) == 0


def test_a_flood_read_again_after_a_crash_applies_each_command_once(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed before its offsets were committed reads its commands again; an
    ack, an escalation and 250 acks again under new ids outlast the 200 command ids a
    group keeps. The escalation, forgotten, escalated the run a second time (fails on
    the old code: street, then district). Now the group keeps the offset of the last
    command applied (``command_offset``): one read below it is a repeat."""
    stage, _ = response
    _, sent = captured(stage, monkeypatch)
    flood = [cmd("ack", "ack"), cmd("esc", "escalate"), *(cmd(f"a-{n}", "ack") for n in range(250))]

    async def scenario() -> None:
        await opened(stage)
        for _ in range(2):  # read again from the committed offset (0), as after a SIGKILL
            for n, c in enumerate(flood, 1):
                event = Event(KEY, c)
                event.message.offset = n
                await stage.on_command(event)  # type: ignore[arg-type]

    asyncio.run(scenario())
    assert actions(sent, "escalate") == [(RUN, "escalate")]
    group = stage.ctx.groups.data[KEY]
    assert group["run"]["level"] == "street"
    assert group["command_offset"] == [Event(KEY, {}).message.partition, len(flood)]


def test_a_command_offset_of_another_shape_is_unreadable() -> None:
    from streams.context import read_group
    from streams.tables import UnreadableEntryError

    group = {"generation": 0, "run": None, "seen": [], "commands": [], "route": None}
    read_group(orjson.dumps({**group, "command_offset": [1, 5]}))
    for odd in ([1], [1, -5], [1, True], "1:5", [1, 2**63]):
        with pytest.raises(UnreadableEntryError, match="command_offset"):
            read_group(orjson.dumps({**group, "command_offset": odd}))


def test_commands_passed_on_to_their_runs_partition_await_kafka_once_a_batch(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 commands on another partition than their run's (a producer keyed them by run
    id): each passed on there, every one sent before any delivery is awaited (fails on
    the old code: each awaited its own, a Kafka round trip per command); one Kafka
    refuses is dead-lettered with the reason, alone."""
    stage, _ = response
    log: list[str] = []

    async def delivery(cid: str) -> None:
        log.append(f"delivered {cid}")
        if cid == "c-7":
            raise OSError("Kafka refused c-7")

    class Commands:
        async def send(self, **message: Any) -> Any:
            cid = orjson.loads(message["value"])["id"]
            log.append(f"sent {cid}")
            return delivery(cid)

    monkeypatch.setattr(stage.ctx, "commands", Commands())
    letters, _ = dead_letters_and_audit(stage, monkeypatch)
    home = key_partition(KEY, 2)
    astray = []
    for n in range(50):
        message = Event(RUN.encode(), cmd(f"c-{n}", "ack"), partition=1 - home).message
        astray.append(message)
    asyncio.run(stage.on_command_batch(astray))
    sent = [line for line in log if line.startswith("sent")]
    assert len(sent) == 50 and log[:50] == sent  # all sent, then awaited
    assert [(role, code) for role, code, _ in letters] == [("commands", "processing_error")]
    assert "Kafka refused c-7" in letters[0][2]
