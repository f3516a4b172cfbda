"""Per-mark cost of the corroboration stage in a busy area (docs/detectors.md): the path
before 2026-12-05 (copy the area's state and write it through, i.e. encode it whole, for
every mark) against recording the mark in place and staging its entry for the commit.
``python -m bench.corroboration_marks``.

Areas of 20, 200 and 2,000 sensors, each with a day's ordinary marks (7: one reading in
40 of a five-minute sensor reaches the agreement bar, thinned to one per 10 minutes).

Then (t199) the same street areas holding 50 lone alerts, held for the grace, while
marks of their neighbours two hours later arrive (a catch-up: a partition hours ahead of
the alerts'): before t199 each such mark counted every held alert's neighbours afresh
over the whole area; now it tests one witness per held alert."""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from playbooks.loader import load_grid
from streams.corroboration import (
    Areas,
    Policy,
    new_area_state,
    on_alert,
    on_mark,
    record_mark,
)

T = 1_800_000_000.0


def main() -> None:
    argparse.ArgumentParser(
        prog="python -m bench.corroboration_marks", description=__doc__.split("\n\n")[0]
    ).parse_args()
    policy = Policy()
    rng = random.Random(1)
    for sensors in (20, 200, 2000):
        state = new_area_state()
        for s in range(sensors):
            for k in range(7):
                record_mark(state, f"s{s:05d}", T + k * 3600 + rng.random(), policy)
        size = len(orjson.dumps(state))
        n = 200
        start = time.perf_counter()
        for i in range(n):
            copy = orjson.loads(orjson.dumps(state))
            record_mark(copy, f"s{i % sensors:05d}", T + 86_000 + i, policy)
            orjson.dumps(copy)  # the changelog entry, written through
        copied = (time.perf_counter() - start) / n
        start = time.perf_counter()
        for i in range(n):
            record_mark(state, f"s{i % sensors:05d}", T + 86_000 + i, policy)
        in_place = (time.perf_counter() - start) / n
        print(
            f"{sensors:5d} sensors, area state {size / 1024:4.0f} kB: copied and written "
            f"through {copied * 1e6:7.0f} us/mark, in place {in_place * 1e6:4.1f} us/mark"
        )

    for sensors in (200, 2000):
        held_alerts(sensors, policy)


def street_grid(sensors: int) -> Areas:
    """One street of ``sensors`` water-level gauges, three to a community cell."""
    cells = [
        "  - {id: c, level: city, name: C, unit: u}",
        "  - {id: d, level: district, name: D, unit: u, parent: c}",
        "  - {id: s, level: street, name: S, unit: u, parent: d}",
    ]
    cells += [
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


def held_alerts(sensors: int, policy: Policy) -> None:
    areas = street_grid(sensors)
    state = new_area_state()
    for s in range(sensors):
        record_mark(state, f"g{s}", T - 86_400 + s, policy, float(s))
    for n in range(50):
        alert: dict[str, Any] = {
            "alert_id": f"al-{n}",
            "status": "firing",
            "sensor_id": f"g{n}",
            "kind": "water_level",
            "score": 0.5,
            "value": 5.0 + n,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T)),
            "labels": {},
        }
        on_alert(state, alert, 0.0, areas, policy)
    assert len(state["held"]) == 50
    n = 200
    start = time.perf_counter()
    for i in range(n):
        on_mark(state, f"g{50 + i % (sensors - 50)}", T + 7200 + i, 1.0, areas, policy, 1.0)
    per = (time.perf_counter() - start) / n
    assert len(state["held"]) == 50
    print(f"{sensors:5d} sensors, 50 alerts held: {per * 1e6:8.1f} us/mark")


if __name__ == "__main__":
    main()
