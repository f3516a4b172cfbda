"""Helper t61: a command is applied by the worker that owns its run's partition (the
``groups`` table's, ``key_partition(run_key(run_id), partitions)``). One that arrives on
another partition (a producer that keyed it by run id, or not at all) is passed on to its
run's partition, its bytes unchanged, and applied there once; before, the worker that got
it dead-lettered it ``unknown_run`` while the run existed, or applied it when it happened
to own both partitions. The end-to-end guarantee with two workers on the real broker:
tests/integration/test_two_worker_commands.py."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from streams.context import run_key
from streams.partitioning import key_partition
from streams.response import Response, misplaced_command
from tests.unit.streams.test_response_races import KEY, Event, Gate, alert
from tests.unit.streams.test_response_races import response as response


def test_a_command_belongs_on_its_runs_group_partition() -> None:
    for partitions in (1, 2, 4, 7):
        home = key_partition(b"grp-flood", partitions)
        command = {"id": "c", "run_id": "grp-flood.3", "action": "ack"}
        placed = Event(b"grp-flood", command, partition=home)
        assert misplaced_command(placed, "grp-flood.3", partitions) is None
        # Keyed by the run id (another key's partition) or placed anywhere else.
        for partition in set(range(partitions)) - {home}:
            placed = Event(b"grp-flood.3", command, partition=partition)
            assert misplaced_command(placed, "grp-flood.3", partitions) == home


class Sent:
    """The commands topic, recording what is sent to it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def send(self, **message: Any) -> asyncio.Future[None]:
        self.messages.append(message)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_a_command_on_another_partition_is_passed_on_to_its_runs_not_dead_lettered(
    response: tuple[Response, Gate],
) -> None:
    stage, _ = response
    sent, dead = Sent(), []

    async def dead_letter(*args: Any, **kwargs: Any) -> None:
        dead.append(args)

    stage.ctx.dead_letter = dead_letter  # type: ignore[method-assign]

    async def scenario() -> tuple[Any, Any]:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        run_id = stage.ctx.groups.data[KEY]["run"]["run_id"]
        stage.ctx.commands = sent  # type: ignore[assignment]
        ack = {"id": "cmd-1", "run_id": run_id, "action": "ack", "by": "duty-operator"}
        home = key_partition(run_key(run_id), 2)
        # Its producer's headers go with it (helper t81: they were dropped).
        headers = [("traceparent", b"00-ab-cd-01"), ("hop", b"\x00"), ("hop", b"b")]
        astray = Event(run_id.encode(), ack, partition=1 - home, headers=headers)
        await stage.on_command(astray)  # type: ignore[arg-type]
        not_here = stage.ctx.groups.data[KEY]["run"]["acknowledged_at"]
        # Where it was sent: applied there, once, also when it is passed on twice.
        await stage.on_command(Event(KEY, ack))  # type: ignore[arg-type]
        await stage.on_command(Event(KEY, ack))  # type: ignore[arg-type]
        return not_here, stage.ctx.groups.data[KEY]["run"], astray

    not_here, run, astray = asyncio.run(scenario())
    assert not_here is None  # not applied on the partition it arrived on
    assert dead == []  # nor dead-lettered unknown_run
    assert sent.messages == [
        {
            "key": KEY,
            "value": astray.value,
            "partition": key_partition(KEY, 2),
            "headers": [("traceparent", b"00-ab-cd-01"), ("hop", b"\x00"), ("hop", b"b")],
        }
    ]
    assert orjson.loads(sent.messages[0]["value"])["id"] == "cmd-1"
    assert run["acknowledged_by"] == "duty-operator"
    assert [a["action"] for a in run["actions"]].count("ack") == 1
