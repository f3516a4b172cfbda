"""Sensor kinds from the grid on the real broker (issue 12 item 10): a discharge gauge of
a kind the grid declares is scored, and readings that break its kind's rules go to the
dead-letter topic with their reasons, while the valid ones around them are processed."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citybrain.stack import PrometheusServer
from tests.services import FIXTURES, Pipeline, scrape_sum, start_of_hour

pytestmark = pytest.mark.integration

START = start_of_hour(1)


def discharge_grid(path: Path) -> Path:
    text = (
        (FIXTURES / "grid.yaml")
        .read_text()
        .replace(
            "cells:\n",
            "kinds:\n  - {id: water_discharge, unit: m3/s, min: 0, max: 100000}\ncells:\n",
            1,
        )
    )
    path.write_text(text + "  - {id: q1, kind: water_discharge, unit: m3/s, cell: c-bridge}\n")
    return path


def gauge(i: int, **over: object) -> bytes:
    doc = {
        "schema": "reading/1",
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + 300 * i)),
        "sensor_id": "q1",
        "kind": "water_discharge",
        "value": 10.0 + i % 3,
        "unit": "m3/s",
        "grid_cell": "c-bridge",
    }
    return json.dumps({**doc, **over}).encode()


BAD = [
    (gauge(100, value=1e308), "out_of_range", 'field "value" is 1e+308: kind water_discharge'),
    (gauge(101, value=-1), "out_of_range", "is plausible in [0, 100000] m3/s"),
    (
        gauge(102, kind="water_level", unit="ft"),
        "registration_mismatch",
        "field \"kind\" is 'water_level': sensor q1 is registered as water_discharge",
    ),
    (gauge(103, kind="water_flow"), "unknown_kind", "field \"kind\" is 'water_flow'"),
    (gauge(104, unit="ft3/s"), "bad_unit", "kind water_discharge is measured in m3/s"),
]


def test_a_declared_kind_is_scored_and_its_rules_dead_letter_the_rest(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(run_dir)
    p.env["CITYBRAIN_GRID_FILE"] = str(discharge_grid(run_dir / f"{p.name}-grid.yaml"))
    worker = p.worker().start()
    try:
        # Valid readings before, between and after the bad ones.
        for i in range(10):
            p.send("readings", b"q1", gauge(i))
        for raw, _, _ in BAD:
            p.send("readings", b"q1", raw)
        for i in range(10, 20):
            p.send("readings", b"q1", gauge(i + 200))
        p.flush()
        dead = p.read("deadletter", lambda m: len(m) >= len(BAD), settle=2)
        headers = [dict(m.headers) for m in dead]
        assert [h["citybrain.error.reason"].decode() for h in headers] == [c for _, c, _ in BAD]
        for h, (_, _, message) in zip(headers, BAD, strict=True):
            assert message in h["citybrain.error.message"].decode()
        assert [m.value for m in dead] == [raw for raw, _, _ in BAD]
        port = p.settings.worker_port
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if scrape_sum(port, 'citybrain_readings_total{kind="water_discharge"}') >= 20:
                break
            time.sleep(0.5)
        assert scrape_sum(port, 'citybrain_readings_total{kind="water_discharge"}') == 20
        assert worker.alive()
    finally:
        worker.stop()


def counter_grid(path: Path) -> Path:
    """The test grid with a kind whose plausible range is every finite float, so a 1e308
    sentinel is no out_of_range dead letter but reaches the detector."""
    wide = (
        "{id: raw_count, unit: count, min: -1.7976931348623157e+308, max: 1.7976931348623157e+308}"
    )
    text = (
        (FIXTURES / "grid.yaml").read_text().replace("cells:\n", f"kinds:\n  - {wide}\ncells:\n", 1)
    )
    path.write_text(text + "  - {id: k1, kind: raw_count, unit: count, cell: c-bridge}\n")
    return path


def count(i: int, value: float) -> bytes:
    doc = {
        "schema": "reading/1",
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + 300 * i)),
        "sensor_id": "k1",
        "kind": "raw_count",
        "value": value,
        "unit": "count",
        "grid_cell": "c-bridge",
    }
    return json.dumps(doc).encode()


FLAT = [10.0] * 40 + [1e308] + [10.0] * 30 + [20.0] + [10.0] * 10
# The ensemble warms up for 60 readings, is quiet for 50 after a firing, and a flat
# series is a stuck sensor to it: a gently varying one, the spike a hundred after.
WAVY = [10 + 0.1 * (i % 7) for i in range(150)] + [1e308]
WAVY += [10 + 0.1 * (i % 7) for i in range(100)] + [20.0] + [10.0 + 0.1 * i for i in range(10)]


@contextlib.contextmanager
def counted_through_worker(run_dir: Path, detector: str, values: list[float]) -> Iterator[Pipeline]:
    """A worker running ``detector`` on the counter grid, ``values`` sent to it as one
    raw_count sensor's readings five minutes apart; still alive when the block ends."""
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_DETECTOR": detector})
    p.env["CITYBRAIN_GRID_FILE"] = str(counter_grid(run_dir / f"{p.name}-grid.yaml"))
    worker = p.worker().start()
    try:
        for i, value in enumerate(values):
            p.send("readings", b"k1", count(i, value))
        p.flush()
        yield p
        assert worker.alive()
    finally:
        worker.stop()


def firing(messages: list[Any]) -> list[dict[str, Any]]:
    """The firing alerts among ``alerts`` messages, as documents."""
    return [d for d in map(json.loads, (m.value for m in messages)) if d["status"] == "firing"]


@pytest.mark.parametrize(
    ("detector", "values", "alerting"),
    [
        ("windowed_gaussian", FLAT, (40, 71)),
        ("ewma_cusum", FLAT, (40, 71)),
        ("ensemble", WAVY, (150, 251)),
    ],
)
def test_a_1e308_sentinel_alerts_and_a_later_spike_still_does(
    stack: PrometheusServer,
    run_dir: Path,
    detector: str,
    values: list[float],
    alerting: tuple[int, int],
) -> None:
    # t63: after one 1e308 reading windowed_gaussian's window, ewma_cusum's variance and
    # the ensemble's records held it, and a real spike after it scored about 0: one
    # alert, not two.
    with counted_through_worker(run_dir, detector, values) as p:
        alerts = firing(p.read("alerts", lambda m: len(firing(m)) >= 2, settle=3))
        # Sorted: each alert is keyed by its own id, so the two may sit on two partitions.
        assert sorted(a["started_at"] for a in alerts) == [
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + 300 * i)) for i in alerting
        ]
        assert scrape_sum(
            p.settings.worker_port, 'citybrain_readings_total{kind="raw_count"}'
        ) == len(values)


@pytest.mark.parametrize("detector", ["seasonal", "stuck"])
def test_a_1e308_sentinel_in_warm_up_alerts_through_the_worker(
    stack: PrometheusServer, run_dir: Path, detector: str
) -> None:
    # t78: seasonal (until a slot had three days) and stuck (always) scored a sentinel 0,
    # so a worker running them said nothing of a gauge whose sixth reading was 1e308.
    values = [10 + 0.1 * (i % 7) for i in range(20)]
    values[5] = 1e308
    with counted_through_worker(run_dir, detector, values) as p:
        alerts = firing(p.read("alerts", lambda m: len(firing(m)) >= 1, settle=3))
        assert [(a["started_at"], a["score"]) for a in alerts] == [
            (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + 300 * 5)), 1.0)
        ]
