"""A firing alert whose grid cell the worker's grid lacks is refused at each door that
takes alerts (alerts, corroboration, routed) naming the field and value, as a reading
naming one is (t137). Before, a foreign producer's alert in cell ``nowhere`` (or a
Baltimore gauge's cell mistyped) opened a run there, told as a cell gone from the grid
to the first city's duty office by name (Aarhus). A resolution is left to end what it
ends: its cell may have left the grid by a reload since it fired, and its run must still
hear it. An alert's kind stays any text (t80)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from playbooks.loader import load_grid
from streams.context import alert_in_grid
from streams.errors import EventError
from streams.response import Response
from tests.services import FIXTURES
from tests.unit.streams.test_corroboration_messages import DEAD_RUN, stage
from tests.unit.streams.test_corroboration_messages import alert as area_alert
from tests.unit.streams.test_muted_alerts import Stage
from tests.unit.streams.test_response_races import KEY, Event, Gate, alert, response
from tests.unit.streams.test_unwritable_numbers import ALERT

__all__ = ["response"]  # the fixture, used by name

GRID = load_grid(FIXTURES / "grid.yaml")
# (the cell, what the reason says)
OFF_GRID = [
    ("c-brige", "not a cell of the grid (did you mean 'c-bridge'?)"),
    ("nowhere", "not a cell of the grid"),
]


@pytest.mark.parametrize(("cell", "said"), OFF_GRID)
def test_a_firing_alert_in_a_cell_the_grid_lacks_is_refused_naming_it(cell: str, said: str) -> None:
    with pytest.raises(EventError) as refused:
        alert_in_grid({**ALERT, "grid_cell": cell}, GRID, "bad_routed", at="alert.")
    assert refused.value.code == "bad_routed" and refused.value.field == "alert.grid_cell"
    assert str(refused.value) == f'field "alert.grid_cell" is {cell!r}: {said}'


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"sensor_id": None, "kind": "incident_burst", "grid_cell": "testcity"},  # a burst
        {"kind": "made-up-kind", "severity": "apocalyptic"},  # any text (t80)
        # A resolution whose cell a reload took out since it fired.
        {"status": "resolved", "grid_cell": "c-gone"},
    ],
)
def test_cells_of_the_grid_and_resolutions_pass(change: dict[str, Any]) -> None:
    alert_in_grid({**ALERT, **change}, GRID, "bad_alert")


@pytest.mark.parametrize(("cell", "said"), OFF_GRID)
def test_the_alerts_agent_dead_letters_it_and_routes_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cell: str, said: str
) -> None:
    on = Stage(tmp_path, monkeypatch)  # the fixtures' grid: c-bridge
    dead: list[tuple[str, str, str]] = []

    async def dead_letter(stream: str, event: Any, code: str, message: str) -> None:
        dead.append((stream, code, message))

    monkeypatch.setattr(on.ctx, "dead_letter", dead_letter)
    on.alert({**ALERT, "grid_cell": cell})
    [(stream, code, message)] = dead
    assert (stream, code) == ("alerts", "bad_alert")
    assert message == f'alert not readable: field "grid_cell" is {cell!r}: {said}'
    assert on.routed == []  # before: routed, a run opened in no cell of the grid
    on.alert({**ALERT, "alert_id": "al-y", "labels": {**ALERT["labels"], "alert_id": "al-y"}})
    assert on.run_ids() == ["al-y"]


def test_the_corroboration_agent_refuses_it_and_keeps_no_state_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on, forwarded = stage(tmp_path, monkeypatch)  # the default grid: the Dead Run gauges
    key = on.areas.area(DEAD_RUN[1]).encode()
    message = {"type": "alert", "alert": area_alert(DEAD_RUN[0], grid_cell="md-gauge-0158933")}
    event = SimpleNamespace(key=key, value=orjson.dumps(message))
    with pytest.raises(EventError) as refused:  # dead-lettered bad_alert by ``guarded``
        asyncio.run(on.on_message(event))  # type: ignore[arg-type]
    assert refused.value.code == "bad_alert" and refused.value.field == "alert.grid_cell"
    assert "(did you mean 'md-gauge-01589330'?)" in str(refused.value)
    assert on.table.data.get(key) is None and forwarded == []


def test_the_routed_agent_refuses_it_and_opens_no_run(response: tuple[Response, Gate]) -> None:
    stage_, _ = response  # the fixtures' grid
    routed = alert("al-1")
    routed["alert"] = {**routed["alert"], "grid_cell": "nowhere"}
    with pytest.raises(EventError) as refused:  # dead-lettered bad_routed by ``guarded``
        asyncio.run(stage_.on_routed(Event(KEY, routed)))  # type: ignore[arg-type]
    assert refused.value.code == "bad_routed" and refused.value.field == "alert.grid_cell"
    assert KEY not in stage_.ctx.groups.data
    asyncio.run(stage_.on_routed(Event(KEY, alert("al-2"))))  # type: ignore[arg-type]
    assert stage_.ctx.groups.data[KEY]["run"]["alerts"] == ["al-2"]
