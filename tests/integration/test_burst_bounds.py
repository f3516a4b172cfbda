"""Burst windows bounded whatever the field sends (t80): one window per grid cell and
category was kept for good, and category is free text, so a feed sending a new category
per report grew the worker's table, its changelog and every burst sweep without end
(100,000 categories in one cell: 100,000 windows, the worker's RSS up 187 MB and still
rising). A cell now holds at most MAX_CATEGORIES_PER_CELL windows; a report of a new
category beyond that is valid, counted in citybrain_incidents_total and
citybrain_incidents_crowded_total, said in the log, and counted towards no burst; windows
quiet for two days of event time are forgotten by the sweep, which frees the cell."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from streams.bursts import MAX_CATEGORIES_PER_CELL
from streams.events import IncidentReport
from tests.integration.test_pipeline import START
from tests.services import Pipeline

pytestmark = pytest.mark.integration


def scrape(port: int, name: str) -> float:
    """The sum of the series of metric ``name`` exactly (not of names it begins)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if not line.startswith("#") and line.split("{")[0].split(" ")[0] == name
    )


def wait_for(port: int, name: str, value: float, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while scrape(port, name) < value and time.monotonic() < deadline:
        time.sleep(0.5)
    return scrape(port, name)


def report(ts: float, rid: str, category: str, cell: str = "c-top") -> bytes:
    return IncidentReport(ts, rid, category, "loud music", "app", cell).to_json()


def test_a_new_category_per_report_keeps_at_most_the_bound_of_windows_per_cell(
    stack: PrometheusServer, run_dir: Path
) -> None:
    p = Pipeline(run_dir, extra_env={"CITYBRAIN_BURST_SWEEP_INTERVAL": "1"})
    worker = p.worker().start()
    port = p.settings.worker_port
    try:
        n = MAX_CATEGORIES_PER_CELL + 5
        for i in range(n):
            p.send("incidents", b"c-top", report(START + i, f"flood-{i}", f"category {i:05d}"))
        p.flush()
        assert wait_for(port, "citybrain_incidents_total", n) == n  # every one valid
        assert scrape(port, "citybrain_incidents_crowded_total") == 5
        assert scrape(port, "citybrain_burst_windows") == MAX_CATEGORIES_PER_CELL
        # Said (once a minute: the first line names the first crowded report).
        said = [line for line in worker.log().splitlines() if "crowded report(s)" in line]
        assert said and "not counted towards bursts" in said[0] and "flood-1000" in said[0]
        # Another cell is not crowded by c-top's flood.
        p.send("incidents", b"c-mill", report(START + n, "mill-1", "Pothole", "c-mill"))
        p.flush()
        assert wait_for(port, "citybrain_incidents_total", n + 1) == n + 1
        assert scrape(port, "citybrain_burst_windows") == MAX_CATEGORIES_PER_CELL + 1
        assert scrape(port, "citybrain_incidents_crowded_total") == 5
        # Three days on (event time: reports in a third cell), the quiet windows are
        # forgotten and c-top takes a new category again. A new window's first report
        # more than a day past the city's clock is held aside until a next report
        # confirms it (t206: one dated a year ahead made every later report late), so the
        # clock moves on with the second.
        later = START + 3 * 86_400
        p.send("incidents", b"c-bridge", report(later, "clock-1", "Graffiti", "c-bridge"))
        p.send("incidents", b"c-bridge", report(later + 1, "clock-2", "Graffiti", "c-bridge"))
        p.flush()
        forgotten = "citybrain_burst_windows_forgotten_total"
        assert wait_for(port, forgotten, MAX_CATEGORIES_PER_CELL + 1) == MAX_CATEGORIES_PER_CELL + 1
        assert scrape(port, "citybrain_burst_windows") == 1  # c-bridge's
        p.send("incidents", b"c-top", report(later + 60, "after-1", "category new"))
        p.flush()
        assert wait_for(port, "citybrain_incidents_total", n + 4) == n + 4
        assert scrape(port, "citybrain_incidents_crowded_total") == 5
        assert scrape(port, "citybrain_burst_windows") == 2
    finally:
        worker.stop()
        p.close()
