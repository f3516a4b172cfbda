"""After a rebalance a worker forgets the keys of every partitioned table whose source
partition it was not given (``Context.forget_moved``). faust's memory store forgets only
keys it read from a changelog: a run this worker had written stayed in its ``groups``
table, and its deadline timer went on escalating and renotifying a run that had moved to
another worker (a duplicate escalation, and a stale state written over the new owner's)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry

from playbooks.engine import Run
from playbooks.loader import load_grid
from streams.context import Context, burst_cell, burst_key
from streams.detection import BatchResult
from streams.ingest import Ingest, all_windows, window_of
from streams.metrics import ALERTS_OPEN, CONSUMER_LAG, SENSOR_SCORE, SENSOR_VALUE, Metrics
from streams.partitioning import key_partition
from streams.response import Response
from streams.settings import REPO_ROOT, Settings
from streams.tables import KeyPartitionedTable
from tests.unit.streams.test_response_races import KEY, Event, Gate, _nothing, alert, response

__all__ = ["response"]  # a fixture, shared with test_response_races


def context(tmp_path: Path) -> Context:
    settings = Settings(run_dir_override=tmp_path, partitions=4)
    app = faust.App("t-moved-partitions", broker="kafka://127.0.0.1:1", store="memory://")
    grid = load_grid(REPO_ROOT / "datasets" / "grid.yaml")
    return Context(app, settings, grid, Metrics.create(CollectorRegistry()))


def fill(table: KeyPartitionedTable, prefix: str) -> list[bytes]:
    keys = [f"{prefix}-{i}".encode() for i in range(40)]
    table.stage_many({key: {"v": 1} for key in keys})
    return keys


def test_each_table_keeps_only_its_source_topics_assigned_partitions(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    s = ctx.settings
    tables = {
        "readings": (ctx.sensor_state, fill(ctx.sensor_state, "sensor")),
        "incidents": (ctx.burst_state, fill(ctx.burst_state, "cell")),
        "burst windows": (ctx.burst_windows, windows(ctx.burst_windows)),
        "routed": (ctx.groups, fill(ctx.groups, "grp")),
    }
    # Each source topic keeps different partitions, and a changelog or another topic's
    # partition must not count as the table's own.
    kept = {"readings": {0, 1}, "incidents": {2}, "routed": {1, 3}}
    assigned = {TP(s.topic(role), p) for role, ps in kept.items() for p in ps}
    kept["burst windows"] = kept["incidents"]  # a window lives on its cell's partition
    assigned |= {TP(s.topic("alerts"), p) for p in range(4)}
    asyncio.run(ctx.forget_moved(assigned))
    for role, (table, keys) in tables.items():
        expected = sorted(k for k in keys if key_partition(burst_cell(k), 4) in kept[role])
        assert 0 < len(expected) < len(keys)
        assert sorted(table.data) == expected, role
        assert table._dirty == set(expected), role  # a forgotten key is never flushed


def windows(table: KeyPartitionedTable) -> list[bytes]:
    keys = [burst_key(f"cell-{i}", category) for i in range(20) for category in ("Noise", "Rats")]
    table.stage_many({key: {"v": 1} for key in keys})
    return keys


def test_a_cells_burst_windows_share_its_partition(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    for i in range(20):
        cell = f"cell-{i}"
        expected = key_partition(cell.encode(), 4)
        for category in ("Noise", "Rats", "a\x1fb", "雨"):
            assert ctx.burst_windows.partition_for_key(burst_key(cell, category)) == expected


def test_a_worker_given_nothing_forgets_everything(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    fill(ctx.groups, "grp")
    asyncio.run(ctx.forget_moved(set()))
    assert not ctx.groups.data


def test_a_window_kept_in_the_layout_before_is_read_through_until_moved(tmp_path: Path) -> None:
    """Windows open across an upgrade go on: the cell-keyed ``burst-state`` entry of the
    workers before is read where ``burst-windows`` has none, and swept too."""
    ctx = context(tmp_path)
    old = {"slot": 7, "counts": [0] * 6, "baseline": 2.0, "held": [], "episode": None}
    ctx.burst_state.stage_many({b"c-top": {"Noise": old, "Rats": {**old, "slot": 9}}})
    assert window_of(ctx, "c-top", "Noise") == old
    assert window_of(ctx, "c-top", "Graffiti") is None
    moved = {**old, "slot": 8}
    ctx.burst_windows.stage_many({burst_key("c-top", "Noise"): moved})
    assert window_of(ctx, "c-top", "Noise") == moved
    assert sorted((where, w["slot"]) for where, w in all_windows(ctx)) == [
        (("c-top", "Noise"), 8),
        (("c-top", "Rats"), 9),
    ]


# -- state a worker keeps beside its tables ----------------------------------------------


def test_a_run_the_deadline_timer_stores_across_a_rebalance_is_still_forgotten(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """faust waits for the agents' events before a revocation completes, not for the
    deadline timer: a run it was escalating while its partition moved came back into the
    table when its write finished, after the assignment had forgotten it, and this
    worker's timer escalated it at every rung thereafter (the fault of
    ``test_a_run_moved_to_a_new_worker_is_escalated_once``, by another door)."""
    stage, gate = response
    ctx = stage.ctx

    async def scenario() -> bool:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        due(stage, monkeypatch)
        gate.hold()
        timer = asyncio.create_task(stage.check_deadlines())
        await asyncio.sleep(0.01)  # the timer is sending the escalation ...
        # ... when the new assignment arrives without the run's partition.
        forgetting = asyncio.create_task(ctx.forget_moved(set()))
        await asyncio.sleep(0.01)
        gate.release()
        await asyncio.gather(timer, forgetting)
        return KEY in ctx.groups.data

    assert not asyncio.run(scenario())


def test_a_rebalance_begun_during_a_deadline_pass_ends_the_pass(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timer checked for a rebalance once per pass; a rebalance that began while it
    was sending one run's escalation let it escalate the next runs too, though their
    partitions might be moving to a worker that would recover them without it."""
    stage, gate = response
    ctx = stage.ctx
    second = b"grp-flood-2"
    escalated: list[str] = []

    async def scenario() -> None:
        await stage.on_routed(Event(KEY, alert("al-1")))  # type: ignore[arg-type]
        await stage.on_routed(Event(second, alert("al-2")))  # type: ignore[arg-type]
        due(stage, monkeypatch)
        timeout = stage.engines["flash-flood"].timeout

        def counted(run: Run, now: float) -> Any:
            escalated.append(run.run_id)
            return timeout(run, now)

        monkeypatch.setattr(stage.engines["flash-flood"], "timeout", counted)
        gate.hold()
        timer = asyncio.create_task(stage.check_deadlines())
        await asyncio.sleep(0.01)  # the first run's escalation is being sent ...
        ctx.app.rebalancing = True  # ... when a rebalance begins
        gate.release()
        await timer

    asyncio.run(scenario())
    assert len(escalated) == 1, escalated


def test_each_worker_counts_the_open_alerts_of_its_own_alerts_partitions(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``firing`` is a global table: every worker holds every firing alert. Each worker
    counted them all in ``citybrain_alerts_open``, so the city overview's
    ``sum(citybrain_alerts_open)`` showed each alert once per worker."""
    stage, _ = response
    ctx = stage.ctx
    n = ctx.settings.partitions
    ids = [f"al-{i}".encode() for i in range(20)]
    for key in ids:
        ctx.firing.data[key] = {"grid_cell": "c-bridge", "severity": "critical"}
    due(stage, monkeypatch)
    totals = []
    for partition in range(n):  # each worker of a group that owns one partition each
        registry = CollectorRegistry()
        stage.metrics = Metrics.create(registry)
        monkeypatch.setattr(ctx, "owned_partitions", lambda role, p=partition: {p})
        asyncio.run(stage.check_deadlines())
        here = registry.get_sample_value(
            ALERTS_OPEN, {"severity": "critical", "level": "community"}
        )
        assert here == sum(1 for key in ids if key_partition(key, n) == partition)
        totals.append(here)
    assert sum(totals) == len(ids)


class Consumer:
    """The three calls ``Response._update_lag`` makes of faust's consumer."""

    def __init__(self, tps: set[TP]) -> None:
        self.tps = tps

    def assignment(self) -> set[TP]:
        return self.tps

    async def position(self, tp: TP) -> int:
        return 10

    def highwater(self, tp: TP) -> int:
        return 25


def test_a_topic_no_longer_assigned_here_has_no_lag_series_here(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A topic all of whose partitions went to other workers kept its last lag on this
    worker for ever: ``sum(citybrain_consumer_lag)`` showed the rebalance's backlog as
    if it were never consumed."""
    stage, _ = response
    registry = CollectorRegistry()
    stage.metrics = Metrics.create(registry)
    readings, alerts = stage.settings.topic("readings"), stage.settings.topic("alerts")
    # The test's app has no agents: the two topics stand for the sources they consume.
    monkeypatch.setattr("streams.response.source_topics", lambda app: frozenset({readings, alerts}))
    consumer = Consumer({TP(readings, 0), TP(readings, 1), TP(alerts, 1)})
    stage.ctx.app.consumer = consumer  # type: ignore[assignment]
    asyncio.run(stage._update_lag())
    assert registry.get_sample_value(CONSUMER_LAG, {"topic": alerts}) == 15
    consumer.tps = {TP(readings, 0)}  # alerts partition 1 went to another worker
    asyncio.run(stage._update_lag())
    assert registry.get_sample_value(CONSUMER_LAG, {"topic": readings}) == 15
    assert registry.get_sample_value(CONSUMER_LAG, {"topic": alerts}) is None


def test_a_moved_sensor_in_an_episode_loses_its_series_on_the_old_worker(
    tmp_path: Path,
) -> None:
    """A sensor in an episode (or watched) has per-sensor series on the worker that reads
    it. When its partition moved, the old worker never read it again, so nothing ended
    its series: two series for one sensor, the old one frozen at its last value."""
    registry = CollectorRegistry()
    ctx = context(tmp_path)
    ctx.metrics = Metrics.create(registry)
    ingest = Ingest(ctx)
    sensors = [f"s-{i}" for i in range(20)]
    cell = next(iter(ctx.grid.cells))
    last = {sid: ("water_level", cell, 1, 5.0, 0.99, True) for sid in sensors}
    ingest._count_readings([], BatchResult(last=last), 0.0, ctx.grid)  # type: ignore[arg-type]
    kept = {0, 1}
    s = ctx.settings
    assigned = {TP(s.topic("readings"), p) for p in kept}
    assert ingest.forget_sensors(ctx.lost_partitions(assigned, "readings")) > 0
    exported = {
        sample.labels["sensor_id"]
        for metric in registry.collect()
        if metric.name in (SENSOR_VALUE, SENSOR_SCORE)
        for sample in metric.samples
    }
    expected = {sid for sid in sensors if key_partition(sid.encode(), 4) in kept}
    assert 0 < len(expected) < len(sensors)
    assert exported == expected


def due(stage: Response, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run's deadline has passed, table recovery is complete, lag is not read."""
    monkeypatch.setattr(stage.engines["flash-flood"], "is_due", lambda run, now: True)
    monkeypatch.setattr(stage, "_update_lag", _nothing)
    monkeypatch.setattr(stage.ctx.app.tables.recovery.completed, "is_set", lambda: True)
    everything = set(range(stage.settings.partitions))
    monkeypatch.setattr(stage.ctx, "owned_partitions", lambda role: everything)


def test_a_webhook_call_that_died_with_its_worker_is_made_again_once(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook step's call and its retries live in the worker's memory. A worker
    SIGKILLed during the call left its run waiting for an outcome that never came: the
    worker that took the run over never made the call (its step deadline then took the
    timeout path). The new owner makes it again, once, under the same delivery id."""
    stage, _ = response
    ctx = stage.ctx
    calls: list[tuple[str, str, dict[str, Any]]] = []

    def submit(command_id: str, url: str, payload: dict[str, Any]) -> bool:
        calls.append((command_id, url, payload))
        return True

    monkeypatch.setattr(stage.webhooks, "submit", submit)
    due(stage, monkeypatch)
    monkeypatch.setattr(stage.engines["air-pollution"], "is_due", lambda run, now: False)
    engine = stage.engines["air-pollution"]
    doc = alert("al-air")["alert"]
    run, _ = engine.new_run("grp-air.1", {**doc, "kind": "pm25"}, 100.0)
    # As the worker that stopped stored it: waiting for the advisory webhook's outcome.
    run.step, run.status, run.pending_action = "publish-advisory", "waiting_action", "grp-air.1:9"
    route = alert("al-air")["route"]
    ctx.groups.data[b"grp-air"] = {"generation": 1, "run": run.to_dict(), "route": route}
    asyncio.run(stage.check_deadlines())
    asyncio.run(stage.check_deadlines())  # the next pass: made already, not again
    assert [(c[0], c[1]) for c in calls] == [("grp-air.1:9", "http://127.0.0.1:18081/advisories")]
    assert calls[0][2]["delivery"] == "grp-air.1:9"


class NoPosition(Consumer):
    """A consumer whose partitions' positions Kafka never gives (an offset reset to a
    frozen broker: aiokafka's ``position`` waits one request timeout after another)."""

    async def position(self, tp: TP) -> int:
        await asyncio.Event().wait()
        raise AssertionError("never")


def test_a_position_kafka_never_gives_holds_no_deadline(
    response: tuple[Response, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t92: the lag was updated at the end of every deadline pass; a position that never
    came held the pass, and with it every run's escalations, with no word. The deadline
    pass no longer asks it: the lag has its own timer (streams.app)."""
    stage, _ = response
    readings = stage.settings.topic("readings")
    monkeypatch.setattr("streams.response.source_topics", lambda app: frozenset({readings}))
    stage.ctx.app.consumer = NoPosition({TP(readings, 0)})  # type: ignore[assignment]
    monkeypatch.setattr(stage.ctx.app.tables.recovery.completed, "is_set", lambda: True)

    async def main() -> bool:
        await stage.check_deadlines()  # returns: nothing of it waits on Kafka
        lag = asyncio.ensure_future(stage.update_lag())
        await asyncio.sleep(0)
        waiting = not lag.done()
        lag.cancel()
        return waiting

    assert asyncio.run(main())  # the lag's own timer is the one that waits


def test_the_worker_updates_the_lag_on_a_timer_of_its_own(tmp_path: Path) -> None:
    from streams.app import create_app
    from streams.settings import Settings

    app = create_app(Settings(run_dir_override=tmp_path), CollectorRegistry())
    # faust 0.15.3 keeps an app's timers and tasks in ``_app_tasks`` (pinned there).
    names = {getattr(task, "__name__", "") for task in app._app_tasks}
    assert "consumer_lag" in names and "deadlines" in names
