"""t208: two rebuilds over a whole collection on a hot path, bounded to what changed.

- The bank path's kind clocks (``SensorDetection._kind_clocks``) were rebuilt from every
  live sensor's columns at each batch holding a sensor's first reading: O(bank) for one
  new sensor (a city of 100,000 sensors adding one read 100,000 times). Now each batch
  raises the clock by its own sensors, O(batch), as the per-sensor path does.
- Corroboration's ``witness`` made the alert's sensor's known readings afresh for every
  neighbour ``assess`` asked about: O(neighbours x own marks). Now once per alert.

Counted, not timed: the elements read from the bank's time column, and the calls made.
bench/rebuilds.py measures both (docs/benchmarks.md, "Bounded rebuilds (t208)")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import streams.corroboration as corroboration
from detectors import DEFAULT_THRESHOLD, ScoreThreshold, TailDetector
from playbooks.loader import load_grid
from streams.corroboration import Areas, Policy, new_area_state, on_alert, record_mark
from streams.detection import Incoming, SensorDetection
from streams.events import Reading

T0 = 1_550_000_000.0
BANK = 3_000


class CountedReads(np.ndarray):
    """A column that records the size of every indexed read of it."""

    sizes: list[int]

    def __getitem__(self, index: Any) -> Any:
        out = super().__getitem__(index)
        CountedReads.sizes.append(int(np.size(out)))
        return out


def reading(sensor: str, ts: float, offset: int) -> Incoming:
    return Incoming(Reading(ts, sensor, "water_level", 2.0, "ft", "c-bridge"), 0.0, offset)


def test_a_new_sensors_first_reading_reads_the_batch_not_the_bank() -> None:
    """A batch of one known sensor and one new one reads a few elements of the bank's
    time column (fails on the old code: the whole bank's, 3,000, to rebuild the kind
    clocks), and the clock it judges the new one by is the same."""
    h = SensorDetection(TailDetector(), ScoreThreshold(DEFAULT_THRESHOLD), quiet_readings=3)
    states: dict[str, Any] = {}
    for k in range(3):
        batch = [reading(f"g{s}", T0 + 300 * k + s * 1e-3, k * BANK + s) for s in range(BANK)]
        states.update(h.process(batch, states).states)
    # One more sensor first: the columns grow (a copy, amortised) before the count.
    states.update(h.process([reading("g-more", T0 + 650, 0)], states).states)
    cols = h._columns
    assert cols.size > BANK + 2
    CountedReads.sizes = []
    cols.last_ts = cols.last_ts.view(CountedReads)
    batch = [reading("g1", T0 + 900, 10 * BANK), reading("g-new", T0 + 900 + 3 * 86_400, 0)]
    result = h.process(batch, states)
    assert CountedReads.sizes and max(CountedReads.sizes) <= 2 * len(batch)
    # The new sensor's first reading, three days past its kind's clock: a pending jump
    # (the clock moved by g1 only).
    assert result.states["g-new"].as_dict()["jump_from"] is not None
    assert h.kind_clock == {"water_level": T0 + 900}


def street(tmp_path: Path, sensors: int) -> Areas:
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
    path = tmp_path / "grid.yaml"
    path.write_text(
        "version: 1\ncells:\n" + "\n".join(cells) + "\nsensors:\n" + "\n".join(gauges) + "\n"
    )
    return Areas(load_grid(path))


def test_an_alert_among_many_neighbours_reads_its_own_readings_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An alert whose 300 neighbours all marked near it, each with a known value: its
    own known readings made once (fails on the old code: once per neighbour, 300), and
    every neighbour counted a witness as before."""
    sensors = 301
    areas, policy = street(tmp_path, sensors), Policy()
    state = new_area_state()
    at = T0 + 86_400
    for s in range(1, sensors):
        for k in range(3):
            record_mark(state, f"g{s}", at - 600 + 300 * k, policy, float(s + k))
    for k in range(3):
        record_mark(state, "g0", at - 600 + 300 * k, policy, 1000.0 + k)
    calls: list[str] = []
    made = corroboration._known_readings

    def counted(sensor_id: str, *a: Any) -> dict[float, float]:
        calls.append(sensor_id)
        return made(sensor_id, *a)

    monkeypatch.setattr(corroboration, "_known_readings", counted)
    alert = {
        "alert_id": "al-0",
        "status": "firing",
        "sensor_id": "g0",
        "kind": "water_level",
        "score": 0.5,
        "value": 1002.0,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
        "labels": {},
    }
    [out] = on_alert(state, alert, 0.0, areas, policy)
    assert calls == ["g0"]
    assert out["labels"]["corroboration"] == "corroborated"
    assert out["labels"]["neighbours_agreeing"] == str(sensors - 1)
