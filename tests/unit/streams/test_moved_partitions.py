"""After a rebalance a worker forgets the keys of every partitioned table whose source
partition it was not given (``Context.forget_moved``). faust's memory store forgets only
keys it read from a changelog: a run this worker had written stayed in its ``groups``
table, and its deadline timer went on escalating and renotifying a run that had moved to
another worker (a duplicate escalation, and a stale state written over the new owner's)."""

from __future__ import annotations

from pathlib import Path

import faust
from faust.types import TP
from prometheus_client import CollectorRegistry

from playbooks.loader import load_grid
from streams.context import Context, burst_cell, burst_key
from streams.ingest import all_windows, window_of
from streams.metrics import Metrics
from streams.partitioning import key_partition
from streams.settings import REPO_ROOT, Settings
from streams.tables import KeyPartitionedTable


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
    ctx.forget_moved(assigned)
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
    ctx.forget_moved(set())
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
