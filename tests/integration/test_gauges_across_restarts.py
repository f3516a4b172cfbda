"""The control room's gauges of keyed state (open alerts, open runs, ...) across a worker's
SIGKILL and restart, read by the committed dashboards' own queries on the real Prometheus
while it scrapes the worker: a panel shows the city's number or no data, never a number
that is not true."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from citybrain.stack import PrometheusServer
from dashboards import city_overview
from dashboards.generate import expressions, load
from tests.integration.test_pipeline import firing
from tests.integration.test_scale_out import SENSORS, warm_then_spike_all, write_grid
from tests.services import ROOT, Pipeline, prometheus_query

pytestmark = pytest.mark.integration
OVERVIEW = ROOT / "dashboards" / "generated" / "dashboards" / f"{city_overview.UID}.json"
PANELS = ("Open alerts", "Open runs")


def panel_values(url: str, exprs: dict[str, str]) -> dict[str, float | None]:
    """Each panel's answer now: its one value, or None for no data."""
    out: dict[str, float | None] = {}
    for title, expr in exprs.items():
        result = prometheus_query(url, expr)
        assert len(result) <= 1, (title, result)
        out[title] = float(result[0]["value"][1]) if result else None
    return out


def test_open_alerts_and_runs_never_read_a_false_number_across_a_restart(
    stack: PrometheusServer, run_dir: Path, tmp_path: Path
) -> None:
    """24 alerts firing and their runs open on a worker that is SIGKILLed and started
    again: until it has read its state back and counted it, the panels must show no
    data, not a number. Before t210 the restarted worker exported its gauges at 0 from
    its first scrape (made at zero at start-up) until its first deadline pass after its
    recovery, and "Open alerts" and "Open runs" read 0 with 24 alerts and their runs open."""
    exprs = dict(expressions(load(OVERVIEW)))
    exprs = {title: exprs[title] for title in PANELS}
    p = Pipeline(
        run_dir,
        extra_env={
            "CITYBRAIN_GRID_FILE": str(write_grid(tmp_path / "g.yaml")),
            "CITYBRAIN_ACK_DEADLINE_SECONDS": "600",
        },
    )
    worker = p.worker().start()
    seen: list[dict[str, float | None]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(panel_values(stack.url, exprs))
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        warm_then_spike_all(p)
        p.read("alerts", lambda m: len(firing(m)) >= len(SENSORS))
        # The runs' count is the routing's (the alerts group into fewer runs): taken
        # once every alert is counted and the answer stands for a few scrapes.
        give_up, want, last = time.monotonic() + 60, None, None
        while time.monotonic() < give_up:
            now = panel_values(stack.url, exprs)
            if now == last and now["Open alerts"] == len(SENSORS) and (now["Open runs"] or 0):
                want = now
                break
            last = now
            time.sleep(3)
        assert want is not None, last
        watcher.start()
        worker.kill()
        worker.start()
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up and (not seen or seen[-1] != want):
            time.sleep(0.5)
        time.sleep(3)  # and a few scrapes more
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join(10)
        worker.stop()
        p.close()
    assert seen and seen[-1] == want, seen[-5:]
    false = [a for a in seen if any(a[t] not in (None, want[t]) for t in PANELS)]
    assert not false, f"{len(false)} of {len(seen)} answers showed a false number: {false[:5]}"
