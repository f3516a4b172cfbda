"""Sensor kinds from the grid on the real broker (issue 12 item 10): a discharge gauge of
a kind the grid declares is scored, and readings that break its kind's rules go to the
dead-letter topic with their reasons, while the valid ones around them are processed."""

from __future__ import annotations

import json
import time
from pathlib import Path

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
