"""Memory per sensor and per worker at 100,000 sensors, measured on the structures a
worker holds for each sensor: the table's state document (as faust keeps it after
decoding the changelog) and the live detector the detection handler caches.

Every sensor gets a full window (the steady state of a long-running worker): its state
is built by the stream's own detector from real-looking readings, then pushed through
``SensorDetection.process`` with one more reading, as a batch would. Reported as the
growth of Python-allocated memory (tracemalloc) and of the process's resident set.

    python -m bench.memory [--sensors 100000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import numpy as np

from bench import count, out_file, run_main
from bench.catchup import START
from streams.detection import Incoming, SensorDetection, state_document
from streams.events import Reading
from streams.settings import REPO_ROOT, Settings


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fill(detection: SensorDetection, sensors: int, traced: bool) -> tuple[int, int, int]:
    """Hold ``sensors`` sensors as a worker does; (RSS growth, traced bytes, bytes of one
    sensor's state as JSON)."""
    settings = Settings()
    window = settings.detector_window
    rng = np.random.default_rng(0)
    # One full window of readings, learned once; every sensor starts from a copy of that
    # state and then learns a reading of its own, as a batch would make it.
    template = detection.prototype.clone()  # the configured stream detector
    template.learn_many(
        10 + rng.random(window + 1) * 4, START - 300.0 * np.arange(window + 1)[::-1]
    )
    base_state = template.get_state()
    gc.collect()
    if traced:
        tracemalloc.start()
    rss_before = rss_bytes()
    table: dict[bytes, dict[str, Any]] = {}
    for i in range(sensors):
        sid = f"s{i:06d}"
        state = {"detector": dict(base_state), "last_ts": START, "last_offset": i, "episode": None}
        reading = Reading(START + 300, sid, "traffic_flow", 12.0, "vehicles/5min", "c1")
        result = detection.process([Incoming(reading, 0.0, sensors + i)], {sid: state})
        # What faust's table holds: the state with its live detector.
        table[sid.encode()] = result.states[sid]
    gc.collect()
    growth = rss_bytes() - rss_before
    traced_bytes = tracemalloc.get_traced_memory()[0] if traced else 0
    if traced:
        tracemalloc.stop()
    state_bytes = len(json.dumps(state_document(next(iter(table.values())))))
    del table
    return growth, traced_bytes, state_bytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sensors", type=count(), default=100_000)
    parser.add_argument("--out", type=out_file, default=REPO_ROOT / "bench" / "results.json")
    args = parser.parse_args()
    settings = Settings()
    window = settings.detector_window
    detection = SensorDetection.from_settings(settings)
    rss_growth, _, state_bytes = fill(detection, args.sensors, traced=False)
    # tracemalloc's own bookkeeping would swell the resident set: trace a tenth apart.
    traced_sensors = max(1, args.sensors // 10)
    _, traced, _ = fill(detection, traced_sensors, traced=True)
    results = {
        "memory_sensors": args.sensors,
        "memory_window": window,
        "memory_bytes_per_sensor_traced": round(traced / traced_sensors),
        "memory_bytes_per_sensor_rss": round(rss_growth / args.sensors),
        "memory_worker_mb_at_sensors_rss": round(rss_growth / 2**20),
        "memory_state_json_bytes_per_sensor": state_bytes,
        "memory_machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "memory_date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    merged = json.loads(args.out.read_text()) if args.out.exists() else {}
    merged.update(results)
    args.out.write_text(json.dumps(merged, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    run_main(main)
