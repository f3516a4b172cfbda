"""One reading's content or one sensor's stored entry costs at most that reading or that
sensor's readings, never the readings batch it came in (t156): the steps of a batch
between its arrival and its offsets' commit outside the detection's per-sensor guard
(counting, metric labels, corroboration, state writes). Each case runs a real app's
``Ingest.on_readings`` on a batch of Kafka messages; no broker is needed: what it sends
is kept here (the Kafka side is tests/integration's)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faust.types import Message
from prometheus_client import CollectorRegistry, generate_latest

from playbooks.loader import PLAYBOOK_DIR
from streams.app import config_reload, create_app
from streams.detection import BatchResult
from streams.events import format_ts
from streams.ingest import Ingest
from streams.reload import ConfigReload
from streams.settings import REPO_ROOT, Settings
from streams.tables import KeyPartitionedTable

GRID = (REPO_ROOT / "tests" / "fixtures" / "grid.yaml").read_text()
ROUTING = (REPO_ROOT / "playbooks" / "library" / "routing.yaml").read_text()
T0 = 1_790_000_000.0  # 2026-09-21, within the validator's bounds
GAUGE_1 = "{id: gauge-1, kind: water_level, unit: ft, cell: c-bridge}"


class Worker:
    """A worker's readings stage with what it sends kept: ``sent`` (topic, key, value),
    ``dead`` (reason, message, origin)."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.grid_file = tmp_path / "grid.yaml"
        self.grid_file.write_text(GRID)
        shutil.copytree(PLAYBOOK_DIR, tmp_path / "playbooks")
        (tmp_path / "routing.yaml").write_text(ROUTING)
        settings = Settings(
            run_dir_override=tmp_path,
            topic_prefix="t",
            partitions=1,
            grid_file=self.grid_file,
            playbook_dir=tmp_path / "playbooks",
            routing_file=tmp_path / "routing.yaml",
        )
        self.registry = CollectorRegistry()
        reload = config_reload(create_app(settings, self.registry))
        assert reload is not None
        self.reload: ConfigReload = reload
        self.ingest: Ingest = reload.ingest
        ctx = reload.ctx
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.dead: list[tuple[str, str, str]] = []

        async def send(topic: str, key: bytes, value: bytes, *rest: Any) -> Any:
            self.sent.append((topic, key, value))
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        async def changelog(table: Any, key: bytes, entry: bytes) -> None:
            return None

        async def dead_letter(
            stream: str, raw: Any, key: Any, code: str, message: str, origin: str, *rest: Any
        ) -> None:
            self.dead.append((code, message, origin))

        monkeypatch.setattr(ctx.delivery, "send", send)
        monkeypatch.setattr(KeyPartitionedTable, "_send", changelog)
        monkeypatch.setattr(ctx, "send_dead_letter", dead_letter)
        self.offset = 0

    def batch(self, *readings: dict[str, Any]) -> list[Message]:
        messages = []
        for doc in readings:
            self.offset += 1
            value = json.dumps({"schema": "reading/1", **doc}).encode()
            messages.append(Message("t.readings", 0, self.offset, T0, 0, [], None, value, None))
        return messages

    def run(self, messages: list[Message]) -> None:
        asyncio.run(self.ingest.on_readings(messages))

    def series(self, prefix: str) -> list[str]:
        text = generate_latest(self.registry).decode()
        return [line for line in text.splitlines() if line.startswith(prefix)]


def reading(
    i: int,
    value: float,
    sensor: str = "gauge-1",
    cell: str = "c-bridge",
    kind: str = "water_level",
    unit: str = "ft",
) -> dict[str, Any]:
    return {
        "ts": format_ts(T0 + 60 * i),
        "sensor_id": sensor,
        "kind": kind,
        "value": value,
        "unit": unit,
        "grid_cell": cell,
    }


def warm(worker: Worker, n: int = 100) -> None:
    """Both water gauges live, with ``n`` quiet readings each."""
    rng = np.random.default_rng(1)
    worker.run(
        worker.batch(
            *(reading(i, 2.0 + rng.normal(0, 0.05)) for i in range(n)),
            *(reading(i, 2.0 + rng.normal(0, 0.05), "gauge-2", "c-mill") for i in range(n)),
        )
    )
    assert worker.dead == []


def test_a_sensor_a_reload_moves_out_of_a_removed_cell_costs_no_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t156: a grid reload moved gauge-1 from c-bridge to c-mill and removed c-bridge.
    The bank path counted its quiet readings by the cell its slot was written with,
    c-bridge, whose labels the batch's grid lacks: GridError out of the counting, after
    the alerts went out and before the states were stored, so the whole batch failed
    (gauge-2's readings with it) and stopped the worker, at every batch holding one of
    gauge-1's readings. Now the reload recodes the moved sensors: counted under c-mill."""
    worker = Worker(tmp_path, monkeypatch)
    warm(worker)
    worker.grid_file.write_text(
        GRID.replace("  - {id: c-bridge,", "  # ").replace(
            GAUGE_1, GAUGE_1.replace("c-bridge", "c-mill")
        )
    )
    assert worker.reload.reload() is True
    worker.run(
        worker.batch(reading(100, 2.0, cell="c-mill"), reading(100, 2.0, "gauge-2", "c-mill"))
    )
    assert worker.dead == []
    mill = [s for s in worker.series("citybrain_cell_readings_total") if 'community="c-mill"' in s]
    assert mill and mill[0].endswith(" 102.0")  # 100 of gauge-2's, then one of each


def test_a_count_under_a_cell_the_grid_lacks_is_said_not_the_batchs_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The counting's own guard, for a detection whose books are out of step with the
    grid in any other way: the readings are scored and their states stored; the count
    is left out and said."""
    worker = Worker(tmp_path, monkeypatch)
    ingest = worker.ingest
    real = ingest.detection.process

    def process(*args: Any) -> BatchResult:
        result = real(*args)
        result.scored_by_cell["c-gone"] = result.scored_by_cell.pop("c-bridge")
        return result

    monkeypatch.setattr(ingest.detection, "process", process)
    worker.run(worker.batch(reading(0, 2.0)))
    assert worker.dead == []
    assert ingest.ctx.sensor_state.get_many([b"gauge-1"])[0] is not None
    said = [r.getMessage() for r in caplog.records if "c-gone" in r.getMessage()]
    assert said and "1 readings counted under grid cell 'c-gone'" in said[0]


def test_a_sensor_a_reload_gives_another_kind_loses_its_old_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t156: a sensor in an episode exports its value and score under its kind; a reload
    registered it under another kind, and its next readings exported series under the
    new one while the old ones were never removed (removed under the new kind, which
    they were not): a stale value, exported for good. Now the old series go."""
    worker = Worker(tmp_path, monkeypatch)
    warm(worker)
    worker.run(worker.batch(*(reading(100 + i, 50.0) for i in range(3))))  # a spike
    assert any(b"firing" in value for _, _, value in worker.sent)
    assert any('kind="water_level"' in s for s in worker.series("citybrain_sensor_value"))
    worker.grid_file.write_text(
        GRID.replace(GAUGE_1, GAUGE_1.replace("water_level", "pm25").replace("ft", "ug/m3"))
    )
    assert worker.reload.reload() is True
    worker.run(worker.batch(*(reading(200 + i, 2.0, kind="pm25", unit="ug/m3") for i in range(10))))
    assert worker.dead == []
    assert worker.series("citybrain_sensor_value") == []
    assert worker.series("citybrain_sensor_score") == []


def test_a_mark_of_a_sensor_a_reload_removed_mid_batch_costs_no_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t156: a reload landing at one of a batch's awaits (its dead letters) removed a
    sensor whose readings the batch admitted; its anomaly mark then raised KeyError in
    the corroboration's send (its alert was sent unlabelled, guarded): the whole batch
    failed. Now its mark goes nowhere, and the batch, retried, repeats nothing."""
    worker = Worker(tmp_path, monkeypatch)
    warm(worker)
    real = worker.ingest.ctx.send_dead_letter

    async def dead_letter(*args: Any) -> None:
        await real(*args)
        worker.grid_file.write_text(GRID.replace("  - " + GAUGE_1 + "\n", ""))
        assert worker.reload.reload() is True

    monkeypatch.setattr(worker.ingest.ctx, "send_dead_letter", dead_letter)
    bad = {**reading(100, 2.0, "gauge-2", "c-mill"), "value": "high"}
    spike = worker.batch(bad, *(reading(100 + i, 50.0) for i in range(3)))
    worker.run(spike)
    assert [code for code, _, _ in worker.dead] == ["bad_type"]
    alerts = [(t, k) for t, k, v in worker.sent if b'"firing"' in v]
    assert len(alerts) == 1
    worker.run(spike)  # the batch read again (a restart before its commit)
    assert [(t, k) for t, k, v in worker.sent if b'"firing"' in v] == alerts


def test_a_reload_mid_batch_moving_a_sensor_counts_its_readings_under_the_batchs_grid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """t159: a reload landing at one of a batch's awaits before its detection (a dead
    letter) moved gauge-1 to c-ford, a cell the new grid adds. The reload recoded the
    sensor's bank slot at once, so the batch, admitted under the old grid with gauge-1's
    readings in c-bridge, counted them under c-ford, which its grid lacks: left out of
    ``citybrain_cell_readings_total`` and said as a count under a cell the grid lacks.
    Now the slot is recoded for the first batch admitted under the new grid: this one
    counts them under c-bridge, as its labels say; the next under c-ford."""
    worker = Worker(tmp_path, monkeypatch)
    warm(worker)
    real = worker.ingest.ctx.send_dead_letter
    ford = "  - {id: c-ford, level: community, parent: s-hill, name: Ford, unit: ford post}\n"

    async def dead_letter(*args: Any) -> None:
        await real(*args)
        if worker.ingest.grid.cells.get("c-ford") is None:
            worker.grid_file.write_text(
                GRID.replace("sensors:\n", ford + "sensors:\n").replace(
                    GAUGE_1, GAUGE_1.replace("c-bridge", "c-ford")
                )
            )
            assert worker.reload.reload() is True

    monkeypatch.setattr(worker.ingest.ctx, "send_dead_letter", dead_letter)
    bad = {**reading(100, 2.0, "gauge-2", "c-mill"), "value": "high"}
    with caplog.at_level(logging.WARNING):
        worker.run(worker.batch(bad, reading(100, 2.0)))
    assert [code for code, _, _ in worker.dead] == ["bad_type"]
    assert not [r for r in caplog.records if "which the grid lacks" in r.getMessage()]

    def counted(cell: str) -> float:
        found = [
            s for s in worker.series("citybrain_cell_readings_total") if f'community="{cell}"' in s
        ]
        return float(found[0].rsplit(" ", 1)[1]) if found else 0.0

    assert counted("c-bridge") == 101.0  # warm's 100, then this batch's one
    assert counted("c-ford") == 0.0
    worker.run(worker.batch(reading(101, 2.0, cell="c-ford")))
    assert worker.dead[1:] == []
    assert (counted("c-bridge"), counted("c-ford")) == (101.0, 1.0)


def raising(monkeypatch: pytest.MonkeyPatch, metric: Any, *bad: str) -> None:
    """``metric.labels`` raises for the label values in ``bad`` (any, if none given), as
    a fault in the metrics could; the others pass."""
    real = metric.labels

    def labels(*values: str) -> Any:
        if not bad or set(bad) & set(values):
            raise ValueError(f"the metric refused {values}")
        return real(*values)

    monkeypatch.setattr(metric, "labels", labels)


def test_a_fault_counting_one_alert_or_series_costs_no_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """t205: counting a batch came after its alerts were sent and before its states were
    stored, outside every guard: a fault counting one alert (or one sensor's series)
    failed the whole batch, which stopped the worker, and its replacement read the batch
    again to the same fault. Fails on the old code (ValueError out of ``on_readings``).
    Now the states are stored, the alert sent once, the other counts made, the fault
    said with its traceback."""
    worker = Worker(tmp_path, monkeypatch)
    warm(worker)
    m = worker.ingest.metrics
    raising(monkeypatch, m.alerts)
    raising(monkeypatch, m.sensor_value, "gauge-1")
    spike = worker.batch(
        *(reading(100 + i, 50.0) for i in range(3)), reading(100, 2.0, "gauge-2", "c-mill")
    )
    with caplog.at_level(logging.ERROR):
        worker.run(spike)
    assert worker.dead == []
    alerts = [k for _, k, v in worker.sent if b'"firing"' in v]
    assert len(alerts) == 1, alerts
    state = worker.ingest.ctx.sensor_state.get_many([b"gauge-1", b"gauge-2"])
    assert state[0]["episode"] is not None  # stored with its open episode
    assert worker.series('citybrain_readings_total{kind="water_level"}')[0].endswith(" 204.0")
    said = [r.getMessage() for r in caplog.records if "counting" in r.getMessage()]
    assert said and "counting alert al-" in said[0]  # said once a minute per exception
    worker.run(spike)  # read again: nothing sent twice
    assert len([k for _, k, v in worker.sent if b'"firing"' in v]) == len(alerts)


def test_a_state_that_cannot_be_written_through_costs_no_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """t205: a state that opened an episode is written through, after its alert is sent;
    one whose changelog entry could not be made failed the whole batch there (the other
    sensors' states never stored), stopping the worker, at every start again. Fails on
    the old code (TypeError out of ``on_readings``). Now it is said and kept staged, the
    batch's other states stored."""
    worker = Worker(tmp_path, monkeypatch)
    warm(worker)
    table = worker.ingest.ctx.sensor_state
    real = table.encode

    def encode(state: Any) -> bytes:
        if state["episode"] is not None:
            raise TypeError("Type is not msgpack serializable: Detector")
        return real(state)

    monkeypatch.setattr(table, "encode", encode)
    spike = worker.batch(
        *(reading(100 + i, 50.0) for i in range(3)), reading(100, 2.0, "gauge-2", "c-mill")
    )
    with caplog.at_level(logging.ERROR):
        worker.run(spike)
    assert worker.dead == []
    assert len([k for _, k, v in worker.sent if b'"firing"' in v]) == 1
    one, two = table.get_many([b"gauge-1", b"gauge-2"])
    assert one["episode"] is not None and two["last_ts"] == T0 + 60 * 100
    said = [r.getMessage() for r in caplog.records if "could not be written" in r.getMessage()]
    assert said and "'gauge-1'" in said[0]
