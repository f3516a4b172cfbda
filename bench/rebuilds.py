"""Two rebuilds over a whole collection on a hot path, before and after t208 (docs/
benchmarks.md, "Bounded rebuilds (t208)"). ``python -m bench.rebuilds``; run it on the
commit before t208 too (``git worktree add``, the same command there) for the ratios.

- **A new sensor in a large bank**: the bank path (the worker's ``tail``) with BANK live
  sensors, then batches of 100 readings of known sensors, one of them a sensor's first
  reading: before t208 each such batch rebuilt the kind clocks from every live sensor's
  columns (``SensorDetection._kind_clocks``, O(bank)); now each batch raises them by its
  own sensors. Reported: ms per batch, with and without a new sensor.
- **An alert among many neighbours**: ``assess`` of a firing alert in a street area of N
  gauges, each neighbour marked near it with a known value: before t208 ``witness`` made
  the alert's own known readings once per neighbour; now once per alert. Reported: ms
  per assessment."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from detectors import DEFAULT_THRESHOLD, ScoreThreshold, TailDetector
from playbooks.loader import load_grid
from streams.corroboration import Areas, Policy, assess, new_area_state, record_mark
from streams.detection import Incoming, SensorDetection
from streams.events import Reading

T0 = 1_550_000_000.0


def reading(sensor: str, ts: float, offset: int) -> Incoming:
    return Incoming(Reading(ts, sensor, "water_level", 2.0, "ft", "c-bridge"), 0.0, offset)


def new_sensors(bank: int, rounds: int) -> tuple[float, float]:
    """(ms per batch of 100 known sensors, ms per such batch holding one new sensor)."""
    h = SensorDetection(TailDetector(), ScoreThreshold(DEFAULT_THRESHOLD), quiet_readings=3)
    states: dict[str, Any] = {}
    for k in range(2):
        batch = [reading(f"g{s}", T0 + 300 * k, k * bank + s) for s in range(bank)]
        states.update(h.process(batch, states).states)
    offset = 2 * bank
    timings: dict[bool, float] = {False: 0.0, True: 0.0}
    for r in range(rounds):
        for new in (False, True):
            ts = T0 + 600 + r
            batch = [reading(f"g{(r * 100 + i) % bank}", ts, offset + i) for i in range(100)]
            offset += 100
            if new:
                batch[-1] = reading(f"n{r}", ts, 0)
            start = time.perf_counter()
            states.update(h.process(batch, states).states)
            timings[new] += time.perf_counter() - start
    return timings[False] / rounds * 1e3, timings[True] / rounds * 1e3


def street(sensors: int) -> Areas:
    """One street of ``sensors`` water-level gauges, three to a community cell."""
    cells = [
        "  - {id: c, level: city, name: C, unit: u}",
        "  - {id: d, level: district, name: D, unit: u, parent: c}",
        "  - {id: s, level: street, name: S, unit: u, parent: d}",
    ] + [
        f"  - {{id: k{n}, level: community, name: K{n}, unit: u, parent: s}}"
        for n in range(sensors // 3 + 1)
    ]
    gauges = [
        f"  - {{id: g{n}, kind: water_level, unit: ft, cell: k{n // 3}}}" for n in range(sensors)
    ]
    text = "version: 1\ncells:\n" + "\n".join(cells) + "\nsensors:\n" + "\n".join(gauges)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.yaml"
        path.write_text(text + "\n")
        return Areas(load_grid(path))


def neighbours(sensors: int, marks: int, rounds: int) -> float:
    """ms per ``assess`` of an alert whose sensor has ``marks`` marks in the window,
    among ``sensors - 1`` neighbours marked near it."""
    areas, policy = street(sensors), Policy()
    state = new_area_state()
    at = T0 + 86_400
    step = 2 * policy.window / (marks + 1)
    for s in range(sensors):
        for k in range(marks):
            value = 1000.0 + k if s == 0 else float(s + k)
            record_mark(state, f"g{s}", at - policy.window + step * (k + 1), policy, value)
    start = time.perf_counter()
    for _ in range(rounds):
        c = assess("g0", at, 0.5, state["marks"], areas, policy, value=7.0, state=state)
    assert c.label == "corroborated"
    return (time.perf_counter() - start) / rounds * 1e3


def main() -> None:
    argparse.ArgumentParser(
        prog="python -m bench.rebuilds", description=__doc__.split("\n\n")[0]
    ).parse_args()
    for bank in (10_000, 100_000):
        known, new = new_sensors(bank, rounds=30)
        print(
            f"bank of {bank:7,d} sensors: batch of 100 known {known:6.2f} ms, "
            f"with one new sensor {new:6.2f} ms"
        )
    for sensors in (200, 2_000):
        per = neighbours(sensors, marks=12, rounds=20)
        print(f"alert among {sensors - 1:5,d} neighbours (12 marks each): {per:7.2f} ms/assess")


if __name__ == "__main__":
    main()
