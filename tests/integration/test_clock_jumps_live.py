"""Odd event times on the real broker (t195): a new sensor whose first reading is a year
ahead of its kind's other sensors (before the worker's clock, so not ``in_future``) is a
clock jump from no history (``streams.detection.NO_HISTORY``): its later real readings
take its clock back, none dead-lettered. Before, that first reading set the sensor's
clock, and every later real reading of it was dead-lettered ``out_of_order``."""

from __future__ import annotations

import time

import pytest

from streams.events import Reading, format_ts
from tests.services import Pipeline, scrape_sum, start_of_hour

pytestmark = pytest.mark.integration

START = start_of_hour(400)  # over a year before the clock: the odd time is not in_future
YEAR = 365 * 86_400.0


def wait_scored(p: Pipeline, readings: int, why: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while scrape_sum(p.settings.worker_port, "citybrain_readings_total") < readings:
        assert time.monotonic() < deadline, why
        time.sleep(0.5)


def test_a_new_sensors_first_reading_a_year_ahead_costs_none_of_its_later_readings(
    pipeline: Pipeline,
) -> None:
    worker = pipeline.worker().start()
    try:
        # Its kind's clock: gauge-2's readings, scored before gauge-1 sends anything.
        for i in range(30):
            r = Reading(START + 300 * i, "gauge-2", "water_level", 2.0, "ft", "c-mill")
            pipeline.send("readings", b"gauge-2", r.to_json())
        pipeline.flush()
        wait_scored(pipeline, 30, "gauge-2's readings not scored")
        odd = Reading(START + 300 * 29 + YEAR, "gauge-1", "water_level", 2.0, "ft", "c-bridge")
        pipeline.send("readings", b"gauge-1", odd.to_json())
        pipeline.flush()
        wait_scored(pipeline, 31, "gauge-1's first reading not scored")
        for i in range(30, 60):
            r = Reading(START + 300 * i, "gauge-1", "water_level", 2.0, "ft", "c-bridge")
            pipeline.send("readings", b"gauge-1", r.to_json())
        pipeline.flush()
        wait_scored(pipeline, 61, "gauge-1's real readings not all scored (out_of_order?)")
        port = pipeline.settings.worker_port
        assert scrape_sum(port, "citybrain_readings_total") == 61
        assert scrape_sum(port, "citybrain_dead_letters_total") == 0
        said = f"sensor gauge-1 jumped to {format_ts(odd.ts)} and its next reading went back"
        deadline = time.monotonic() + 30
        while said not in worker.log():
            assert time.monotonic() < deadline, "the clock going back not said"
            time.sleep(0.5)
        assert worker.alive()
    finally:
        worker.stop()


def test_a_fresh_workers_very_first_reading_a_year_ahead_costs_none_of_its_later_readings(
    pipeline: Pipeline,
) -> None:
    """t206: the worker's very first reading of its kind a year ahead (no kind's clock to
    judge it by) is a jump from no history too: its sensor's real readings after it are
    scored, the clock going back said. Before, it set its sensor's clock, and all 30 later
    real readings were dead-lettered ``out_of_order`` (fails on the old code)."""
    worker = pipeline.worker().start()
    try:
        odd = Reading(START + YEAR, "gauge-1", "water_level", 2.0, "ft", "c-bridge")
        pipeline.send("readings", b"gauge-1", odd.to_json())
        pipeline.flush()
        wait_scored(pipeline, 1, "gauge-1's first reading not scored")
        for i in range(30):
            r = Reading(START + 300 * i, "gauge-1", "water_level", 2.0, "ft", "c-bridge")
            pipeline.send("readings", b"gauge-1", r.to_json())
        pipeline.flush()
        wait_scored(pipeline, 31, "gauge-1's real readings not all scored (out_of_order?)")
        port = pipeline.settings.worker_port
        assert scrape_sum(port, "citybrain_readings_total") == 31
        assert scrape_sum(port, "citybrain_dead_letters_total") == 0
        said = f"sensor gauge-1 jumped to {format_ts(odd.ts)} and its next reading went back"
        deadline = time.monotonic() + 30
        while said not in worker.log():
            assert time.monotonic() < deadline, "the clock going back not said"
            time.sleep(0.5)
        assert worker.alive()
    finally:
        worker.stop()
