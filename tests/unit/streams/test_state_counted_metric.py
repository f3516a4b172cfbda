"""t210: a worker exported its gauges of keyed state (open alerts, open runs, ...) from its
start, at 0, and through a rebalance, of the partitions it held before; the dashboards'
sums took them for the city's ("Open alerts" read 0 with 24 firing after a restart).
``citybrain_state_counted`` says when they count what the worker owns: 0 while it reads
its state back, 1 after a whole deadline pass (docs/control-room.md)."""

from __future__ import annotations

import asyncio

from streams.response import Response
from tests.unit.streams.test_held_offers_metric import sample
from tests.unit.streams.test_response_races import Gate, response

__all__ = ["response"]  # the fixture, used by name


def test_the_gauges_are_counted_only_after_a_whole_pass_once_the_state_is_read_back(
    response: tuple[Response, Gate],
) -> None:
    """0 from the start and while the tables are read back (the pass does nothing), 1
    after the first whole pass, 0 again when a rebalance begins. Fails on the old code
    (no such metric)."""
    stage, _ = response
    counted = stage.metrics.state_counted

    async def scenario() -> list[float]:
        seen = [sample(counted)]
        await stage.check_deadlines()  # recovery not completed: nothing counted
        seen.append(sample(counted))
        stage.ctx.app.tables.recovery.completed.set()  # type: ignore[attr-defined]
        await stage.check_deadlines()
        seen.append(sample(counted))
        stage.ctx.app.rebalancing = True  # type: ignore[attr-defined]
        await stage.check_deadlines()
        seen.append(sample(counted))
        return seen

    assert asyncio.run(scenario()) == [0, 0, 1, 0]
