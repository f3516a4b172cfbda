"""t193: citizen report offers held in their groups for a run not yet open
(``Response._hold_offer``) had no metric: an operator could not see how many waited, nor
for how long. The deadline pass sets ``citybrain_report_offers_held`` and
``citybrain_report_offers_held_oldest_seconds`` (docs/playbooks.md, metrics table)."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Gauge

from streams.response import Response
from tests.unit.streams.test_response_races import KEY, Event, Gate, alert, offer, response

__all__ = ["response"]  # the fixture, used by name


def sample(gauge: Gauge) -> float:
    return gauge.collect()[0].samples[0].value


def test_the_held_offers_and_the_oldest_ones_wait_are_gauges(
    response: tuple[Response, Gate],
) -> None:
    """Two offers held with no run (held 40 s and 10 s ago): the count 2 and the
    oldest's wait (about 40 s); once the group's run opens and takes them, 0 and
    0. Fails on the old code (no such metric)."""
    stage, _ = response
    gauges = stage.metrics.offers_held, stage.metrics.offers_held_oldest

    async def scenario() -> list[tuple[float, float]]:
        stage.ctx.app.tables.recovery.completed.set()  # type: ignore[attr-defined]
        seen = []
        now = time.time()
        for rid, ago in (("r-0", 40.0), ("r-1", 10.0)):
            await stage.on_routed(Event(KEY, offer(rid)))  # type: ignore[arg-type]
            held = stage.ctx.groups.data[KEY]["held_offers"]
            held[-1]["at"] = now - ago  # held then (the offer's message time)
        await stage.check_deadlines()
        seen.append((sample(gauges[0]), sample(gauges[1])))
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        await stage.check_deadlines()
        seen.append((sample(gauges[0]), sample(gauges[1])))
        return seen

    (held, oldest), (after, after_oldest) = asyncio.run(scenario())
    assert held == 2
    assert 39 <= oldest <= 60
    assert (after, after_oldest) == (0, 0)
