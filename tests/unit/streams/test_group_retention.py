"""An alert group that has ended is forgotten after CITYBRAIN_GROUP_RETENTION: its run
finished, every alert of it resolved, nothing of it left to send. Before, the ``groups``
table kept every group key ever routed with its finished run, so a feed of new
categories, districts or sensors grew the table, its changelog and the worker without
end. A live group is never forgotten, and a key routed again after its group was
forgotten starts above every generation forgotten on its partition: no run id is used
twice. No broker: the tables' sends are captured, as in test_response_races."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.api import ApiError, run_in_group
from streams.context import read_group
from streams.metrics import GROUPS, GROUPS_FORGOTTEN
from streams.partitioning import key_partition
from streams.response import Response
from tests.unit.streams.test_response_races import Event, alert
from tests.unit.streams.test_response_races import response as races_response

DAY = 86_400.0


@pytest.fixture
def stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Response:
    stage, _ = races_response.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    tombstones: list[bytes] = []

    async def delete_many(keys: Any) -> None:
        for key in keys:
            stage.ctx.groups.data.pop(key, None)
            tombstones.append(key)

    async def write(key: bytes, entry: bytes) -> None:
        return None

    async def nothing() -> None:
        return None

    stage.ctx.groups.delete_many = delete_many  # type: ignore[method-assign]
    stage.ctx.generations._send = write  # type: ignore[method-assign]
    stage.tombstones = tombstones  # type: ignore[attr-defined]
    monkeypatch.setattr(stage, "_update_lag", nothing)
    monkeypatch.setattr(stage.ctx.app.tables.recovery.completed, "is_set", lambda: True)
    return stage  # type: ignore[no-any-return]


def resolved(alert_id: str) -> dict[str, Any]:
    doc = alert(alert_id)
    doc["alert"]["status"] = "resolved"
    return doc


def sample(stage: Response, name: str) -> float:
    """citybrain_groups or citybrain_groups_forgotten_total as the worker exports it."""
    metric = stage.metrics.groups if name == GROUPS else stage.metrics.groups_forgotten
    return float(metric._value.get())


async def later(stage: Response, seconds: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deadline pass ``seconds`` from now (wall clock)."""
    at = time.time() + seconds
    with monkeypatch.context() as patch:
        patch.setattr("streams.response.time.time", lambda: at)
        await stage.check_deadlines()


async def ended_groups(stage: Response, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``n`` groups, a new key per alert (a new sensor, district or category each time),
    each alert resolved within group_wait; then a pass after group_wait, which withdraws
    every run: ``n`` ended groups, kept until the retention."""
    for i in range(n):
        key = f"grp-{i}".encode()
        doc = alert(f"al-{i}")
        doc["route"]["group_wait"] = 30.0
        await stage.on_routed(Event(key, doc))  # type: ignore[arg-type]
        ended = {**doc, "alert": resolved(f"al-{i}")["alert"]}
        await stage.on_routed(Event(key, ended))  # type: ignore[arg-type]
    await later(stage, 60, monkeypatch)


def test_an_ended_group_is_forgotten_after_the_retention_and_a_live_one_is_kept(
    stage: Response, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        ctx = stage.ctx
        # Ended: its run resolved by a person and its alert resolved.
        await stage.on_routed(Event(b"grp-ended", alert("al-1")))  # type: ignore[arg-type]
        run_id = ctx.groups.data[b"grp-ended"]["run"]["run_id"]
        assert run_id == "grp-ended.1"  # the first run of a fresh key, as before
        done = {"id": "cmd-1", "run_id": run_id, "action": "resolve", "by": "ana"}
        await stage.on_command(Event(b"grp-ended", done))  # type: ignore[arg-type]
        await stage.on_routed(Event(b"grp-ended", resolved("al-1")))  # type: ignore[arg-type]
        # Live: its run open. Resolved by a person with its alert still firing: its
        # Alertmanager group lives on.
        await stage.on_routed(Event(b"grp-live", alert("al-2")))  # type: ignore[arg-type]
        await stage.on_routed(Event(b"grp-firing", alert("al-3")))  # type: ignore[arg-type]
        firing_run = ctx.groups.data[b"grp-firing"]["run"]["run_id"]
        done = {"id": "cmd-2", "run_id": firing_run, "action": "resolve", "by": "ana"}
        await stage.on_command(Event(b"grp-firing", done))  # type: ignore[arg-type]

        await stage.check_deadlines()  # within the retention: all kept
        assert set(ctx.groups.data) == {b"grp-ended", b"grp-live", b"grp-firing"}
        await later(stage, stage.settings.group_retention + 1, monkeypatch)
        assert set(ctx.groups.data) == {b"grp-live", b"grp-firing"}
        assert stage.tombstones == [b"grp-ended"]  # type: ignore[attr-defined]
        assert sample(stage, GROUPS_FORGOTTEN) == 1 and sample(stage, GROUPS) == 2
        # The ended key routed again: a new group, whose run id was never used.
        await stage.on_routed(Event(b"grp-ended", alert("al-4")))  # type: ignore[arg-type]
        group = ctx.groups.data[b"grp-ended"]
        assert group["run"]["run_id"] == "grp-ended.2"
        # The operator API: the forgotten run is no run (404), not "superseded" (409).
        assert run_in_group(group, "grp-ended.2").run_id == "grp-ended.2"
        with pytest.raises(ApiError) as refused:
            run_in_group(group, "grp-ended.1")
        assert refused.value.status == 404
        # The group reads back from its changelog entry as stored.
        assert read_group(orjson.dumps(group)) == group
        # A command for the forgotten run finds no run (dead-lettered unknown_run).
        floor_key = ctx.generation_keys[key_partition(b"grp-ended", 2)]
        assert ctx.generations.data[floor_key] == {"floor": 1}

    asyncio.run(scenario())


def test_twenty_thousand_ended_groups_leave_the_table_bounded(
    stage: Response, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new group key per alert (a new sensor, district or category each time), each
    alert resolved within group_wait: every group ends; the table keeps only those
    within the retention, whatever the number of keys."""

    async def scenario() -> None:
        ctx = stage.ctx
        await ended_groups(stage, 20_000, monkeypatch)
        assert len(ctx.groups.data) == 20_000
        await later(stage, stage.settings.group_retention + 120, monkeypatch)
        assert len(ctx.groups.data) == 0
        assert sample(stage, GROUPS_FORGOTTEN) == 20_000
        floors = [ctx.generations.data[k]["floor"] for k in ctx.generation_keys]
        assert floors == [1, 1]

    asyncio.run(scenario())


def test_a_large_pass_forgets_in_chunks_letting_routed_alerts_in_between(
    stage: Response, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,200 ended groups: forgotten in chunks of FORGET_CHUNK (500, 500, 200), each
    under its own hold of the runs lock, so an alert routed meanwhile (which takes that
    lock) is handled between two chunks, not after all of them."""

    async def scenario() -> None:
        ctx = stage.ctx
        await ended_groups(stage, 1_200, monkeypatch)
        chunks: list[int] = []
        events: list[str] = []
        delete = ctx.groups.delete_many

        async def delete_many(keys: Any) -> None:
            keys = list(keys)
            chunks.append(len(keys))
            events.append(f"chunk {len(chunks)}")
            if len(chunks) == 1:
                asyncio.get_running_loop().create_task(routed_meanwhile())
            await delete(keys)
            await asyncio.sleep(0)

        async def routed_meanwhile() -> None:
            async with ctx.runs_settled:
                events.append("routed")

        ctx.groups.delete_many = delete_many  # type: ignore[method-assign]
        await later(stage, stage.settings.group_retention + 120, monkeypatch)
        assert chunks == [500, 500, 200]
        assert len(ctx.groups.data) == 0
        assert events.index("routed") < events.index("chunk 3")

    asyncio.run(scenario())
