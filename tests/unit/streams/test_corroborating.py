"""The corroboration stage is wired from settings (no broker needed: nothing connects)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.app import create_app
from streams.context import Context
from streams.corroborating import CorroborationStage, read_area_state
from streams.corroboration import new_area_state
from streams.detection import SensorDetection
from streams.metrics import Metrics
from streams.settings import Settings
from streams.tables import BAD_SHAPE, NEWER_FORMAT, UnreadableEntryError


def agent_topics(app: faust.App) -> set[str]:
    return {name for agent in app.agents.values() for name in agent.channel.topics}  # type: ignore[attr-defined]


def test_the_stage_has_its_topic_table_and_agent(tmp_path: Path) -> None:
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t")
    registry = CollectorRegistry()
    app = create_app(settings, registry)
    assert "t.corroboration" in agent_topics(app)
    assert "corroboration" in app.tables
    assert "t.corroboration" in settings.topics.values()  # created with the others
    # Zero series for every kind, so dashboards show 0 rather than no data.
    value = registry.get_sample_value(
        "citybrain_alerts_corroboration_total",
        {"kind": "water_level", "label": "isolated", "assessment": "suspected_sensor_fault"},
    )
    assert value == 0.0


def test_switched_off_alerts_go_straight_to_the_alerts_topic(tmp_path: Path) -> None:
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t", corroboration=False)
    app = create_app(settings, CollectorRegistry())
    assert "t.corroboration" not in agent_topics(app)
    assert "t.alerts" in agent_topics(app)


def test_a_rebalance_begun_during_a_release_pass_ends_the_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release timer checked for a rebalance once per pass, as the deadline timer did:
    a rebalance that began while it was forwarding one area's held alerts let it release
    the next areas too, though they might be moving to a worker that would recover them
    without the release and forward the same alerts again."""
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t")
    app = faust.App("t-release", store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    stage = CorroborationStage(app, ctx, SensorDetection.from_settings(settings))
    areas = [b"area-1", b"area-2"]
    for key in areas:
        stage.table.data[key] = {**new_area_state(), "held": {"al": {"held_at": 0.0}}}
    released: list[str] = []
    gate = asyncio.Event()

    def tick(state: dict[str, Any], now: float, areas: Any, policy: Any) -> list[Any]:
        state["held"] = {}
        return [{"alert_id": f"al-{len(released)}", "status": "resolved"}]

    async def send_all(topic: Any, items: list[tuple[str, Any]]) -> None:
        released.extend(key for key, _ in items)
        await gate.wait()

    async def write(key: bytes, entry: bytes) -> None:
        return None

    monkeypatch.setattr("streams.corroborating.on_tick", tick)
    monkeypatch.setattr(ctx, "send_all", send_all)
    monkeypatch.setattr(stage.table, "_send", write)
    monkeypatch.setattr(app.tables.recovery.completed, "is_set", lambda: True)
    assignment = {TP(stage.topic_name, p) for p in range(settings.partitions)}
    monkeypatch.setattr(app.consumer, "assignment", lambda: assignment)

    async def scenario() -> None:
        releasing = asyncio.create_task(stage.release_due())
        await asyncio.sleep(0.01)  # the first area's alert is being forwarded ...
        app.rebalancing = True  # ... when a rebalance begins
        gate.set()
        await releasing

    asyncio.run(scenario())
    assert len(released) == 1, released


def test_one_area_that_cannot_be_released_costs_the_others_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Trial 26: the release timer had no guard of its own (the deadline, burst and mute
    timers are run by streams.app's tick): a send that raised for one area ended the pass
    there, and faust ends a timer, and crashes the worker, on its first exception. Now
    the area keeps its held alerts for the next tick, said once a minute; the others are
    released in the same pass."""
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t")
    app = faust.App("t-release-fault", store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    stage = CorroborationStage(app, ctx, SensorDetection.from_settings(settings))
    for key in (b"area-1", b"area-2"):
        stage.table.data[key] = {**new_area_state(), "held": {"al": {"held_at": 0.0}}}
    released: list[str] = []
    failures = [1]

    def tick(state: dict[str, Any], now: float, areas: Any, policy: Any) -> list[Any]:
        state["held"] = {}
        return [{"alert_id": f"al-of-{state['name']}", "status": "resolved"}]

    async def send_all(topic: Any, items: list[tuple[str, Any]]) -> None:
        if failures and items[0][0] == "al-of-area-1":
            failures.pop()
            raise ConnectionError("broker away")
        released.extend(key for key, _ in items)

    async def write(key: bytes, entry: bytes) -> None:
        return None

    for key in (b"area-1", b"area-2"):
        stage.table.data[key]["name"] = key.decode()
    monkeypatch.setattr("streams.corroborating.on_tick", tick)
    monkeypatch.setattr(ctx, "send_all", send_all)
    monkeypatch.setattr(stage.table, "_send", write)
    monkeypatch.setattr(app.tables.recovery.completed, "is_set", lambda: True)
    assignment = {TP(stage.topic_name, p) for p in range(settings.partitions)}
    monkeypatch.setattr(app.consumer, "assignment", lambda: assignment)

    asyncio.run(stage.release_due())
    assert released == ["al-of-area-2"]
    assert stage.table.data[b"area-1"]["held"]  # kept for the next tick
    assert "corroboration: the held alerts of area area-1 were left as they are" in caplog.text
    # Counted, and the gauge says one area fails now; 0 once it went through.
    assert ctx.metrics.loop_items_skipped.labels("corroboration_release")._value.get() == 1
    assert ctx.metrics.loop_items_failing.labels("corroboration_release")._value.get() == 1
    asyncio.run(stage.release_due())
    assert released == ["al-of-area-2", "al-of-area-1"]
    assert ctx.metrics.loop_items_skipped.labels("corroboration_release")._value.get() == 1
    assert ctx.metrics.loop_items_failing.labels("corroboration_release")._value.get() == 0


def test_an_area_state_of_another_shape_is_refused_at_read_back() -> None:
    # Trial 27: the release timer reads every area's "held"; an area stored without it
    # (another version's, a damaged entry) crashed the worker at each start.
    good = new_area_state()
    assert read_area_state(orjson.dumps(good)) == good
    for bad in (
        {"marks": {}},
        {**good, "held": []},
        {**good, "labelled": None},
        {**good, "newest": "late"},
        {**good, "newest": True},
    ):
        with pytest.raises(UnreadableEntryError) as refused:
            read_area_state(orjson.dumps(bad))
        assert refused.value.reason == BAD_SHAPE and "area state: field" in str(refused.value)
    with pytest.raises(UnreadableEntryError) as refused:
        read_area_state(b'{"format": 2}')
    assert refused.value.reason == NEWER_FORMAT


def test_what_an_area_holds_is_judged_at_read_back() -> None:
    # Each mark list, held alert and label set judged once here: before, one of another
    # shape failed every alert, mark or release tick of its area while the area lived.
    alert = {
        "alert_id": "al-1",
        "sensor_id": "gauge-1",
        "score": 0.9,
        "started_at": "2026-12-01T10:00:00Z",
    }
    good = {
        "marks": {"gauge-2": [1.0, 2.0]},
        "held": {"al-1": {"alert": alert, "held_at": 5.0}},
        "labelled": {"al-0": {"corroboration": "isolated"}},
        "newest": 2.0,
    }
    assert read_area_state(orjson.dumps(good)) == good
    # A state of t199 on: values (null: unknown) and suspects.
    later = {**good, "values": {"gauge-2": [0.5, None]}, "suspects": {"gauge-2": [1.0]}}
    assert read_area_state(orjson.dumps(later)) == later
    held = good["held"]["al-1"]
    for bad, why in (
        ({**good, "marks": {"gauge-2": "1.0"}}, "marks of 'gauge-2'"),
        ({**good, "marks": {"gauge-2": [1.0, None]}}, "marks of 'gauge-2'"),
        ({**good, "marks": {"gauge-2": [3.0, 2.0]}}, "not in time order"),
        ({**good, "held": {"al-1": {"alert": alert}}}, "held alert 'al-1'"),
        ({**good, "held": {"al-1": {**held, "held_at": "5"}}}, "held alert 'al-1'"),
        ({**good, "held": {"al-1": {**held, "alert": {**alert, "score": "high"}}}}, "held alert"),
        ({**good, "held": {"al-1": {**held, "alert": {**alert, "started_at": 5}}}}, "held alert"),
        ({**good, "held": {"al-1": {**held, "alert": {**alert, "sensor_id": None}}}}, "held"),
        ({**good, "held": {"al-1": {**held, "resolved": "yes"}}}, "held alert 'al-1'"),
        # t166 (fail on the old code): held under another alert's id, it was released as
        # its own but labelled, and its resolution held, under the other.
        ({**good, "held": {"al-9": held}}, "'al-9' holds the alert of 'al-1': an alert is"),
        (
            {**good, "held": {"al-1": {**held, "resolved": {**alert, "alert_id": "al-2"}}}},
            "'al-1' holds the resolution of 'al-2'",
        ),
        ({**good, "labelled": {"al-0": ["isolated"]}}, "labels of 'al-0'"),
        # t199: each mark's reading value, aligned with the marks, and the suspects' times.
        ({**good, "values": {"gauge-2": [1.0]}}, "values of 'gauge-2' are \\[1.0\\], expected one"),
        ({**good, "values": {"gauge-2": [1.0, "x"]}}, "values of 'gauge-2'"),
        ({**good, "values": []}, "values are \\[\\]"),
        ({**good, "suspects": {"gauge-2": [3.0, 2.0]}}, "suspects of 'gauge-2'"),
        ({**good, "suspects": {"gauge-2": ["3"]}}, "suspects of 'gauge-2'"),
        ({**good, "labelled": {"al-0": {"count": 2}}}, "labels of 'al-0'"),
    ):
        with pytest.raises(UnreadableEntryError, match=why) as refused:
            read_area_state(orjson.dumps(bad))
        assert refused.value.reason == BAD_SHAPE


def test_the_release_timer_copies_no_area_with_nothing_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t199 (fails on the old code): each tick copied every area holding an alert, whole
    (a busy street's marks: 8 ms for 2,000 gauges), and ran its release, to find the
    alert held 2 s ago not due. Now an area with nothing due is only counted."""
    settings = Settings(run_dir_override=tmp_path, topic_prefix="t")
    app = faust.App("t-release-due", store="memory://", datadir=str(tmp_path))
    ctx = Context(app, settings, load_grid(settings.grid_file), Metrics.create(CollectorRegistry()))
    stage = CorroborationStage(app, ctx, SensorDetection.from_settings(settings))
    now = time.time()
    stage.table.data[b"area-1"] = {**new_area_state(), "held": {"al": {"held_at": now - 2.0}}}
    ticked: list[Any] = []

    def tick(*args: Any) -> list[Any]:
        ticked.append(args)
        return []

    monkeypatch.setattr("streams.corroborating.on_tick", tick)
    monkeypatch.setattr(app.tables.recovery.completed, "is_set", lambda: True)
    assignment = {TP(stage.topic_name, p) for p in range(settings.partitions)}
    monkeypatch.setattr(app.consumer, "assignment", lambda: assignment)
    asyncio.run(stage.release_due())
    assert ticked == []
    assert ctx.metrics.corroboration_held._value.get() == 1
    # Once due, released as before.
    stage.table.data[b"area-1"]["held"]["al"]["held_at"] = now - stage.policy.grace - 1
    asyncio.run(stage.release_due())
    assert len(ticked) == 1
