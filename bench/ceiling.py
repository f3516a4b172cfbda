"""The pipeline's own work without Kafka or faust: the most one core could drain.

The catch-up's messages (bench/catchup.py, the same readings) are held in memory and put
through the worker's per-batch code -- validation and admission (``BatchAdmission``), detection
(``SensorDetection.process``, live detectors kept in a dict as the table keeps them) and
each touched sensor's changelog entry (``state_bytes``, once per commit's worth of readings) --
beside the decode floor, ``orjson.loads`` of the same messages (what the aiokafka floor
does per message). Reported as readings/s and ratios: the gap between the floor and this
ceiling is citybrain's own Python, the gap between this ceiling and the catch-up
pipeline is faust's and Kafka's.

    python -m bench.ceiling [--readings 1000000] [--sensors 20000] [--pack 100]

No services needed. Writes ``ceiling`` (or ``ceiling_packed``) into bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import machine
from bench.catchup import catchup_messages, catchup_readings, write_grid
from playbooks.grid import Grid
from playbooks.loader import load_grid
from streams.app import settle_garbage_collector
from streams.columns import BatchAdmission
from streams.detection import SensorDetection, state_bytes
from streams.events import EventValidator
from streams.settings import REPO_ROOT, load_settings

PARTITIONS = 2


def timed(run: Callable[[], int]) -> tuple[float, int]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def decode_floor(messages: list[tuple[int, bytes, bytes]]) -> int:
    """Readings decoded, the aiokafka floor's per-message work."""
    seen = 0
    for _, _, value in messages:
        doc = orjson.loads(value)
        seen += len(doc["readings"]) if "readings" in doc else 1
    return seen


def own_work(
    messages: list[tuple[int, bytes, bytes]],
    grid: Grid,
    batch: int,
    detect: bool = True,
    commit_every: int = 100_000,
) -> int:
    """Firing alerts after the worker's per-batch code over every message, the touched
    sensors' states encoded every ``commit_every`` readings (a commit's worth: 2.8 s at
    the catch-up's rate); with ``detect`` False, validation and admission only (returns
    readings admitted)."""
    admission = BatchAdmission(EventValidator(grid), PARTITIONS)
    detection = SensorDetection.from_settings(load_settings())
    states: dict[str, dict[str, Any]] = {}
    touched: set[str] = set()
    since_commit = 0
    firing = admitted_total = 0
    now = time.time()
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        incoming, refused = admission.admit(
            [value for _, _, value in chunk],
            [partition for partition, _, _ in chunk],
            range(start, start + len(chunk)),
            [now] * len(chunk),
            now,
        )
        assert not refused, refused[:1]
        admitted_total += len(incoming)
        if not detect:
            continue
        result = detection.process(incoming, states)
        firing += sum(a.status == "firing" for a in result.alerts)
        states.update(result.states)
        touched.update(result.states)
        since_commit += len(incoming)
        if since_commit >= commit_every:
            # The worker writes each touched sensor's state once per offset commit.
            for sensor_id in touched:
                state_bytes(states[sensor_id])
            touched.clear()
            since_commit = 0
    return firing if detect else admitted_total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--sensors", type=int, default=20_000)
    parser.add_argument("--pack", type=int, default=0, metavar="N")
    parser.add_argument(
        "--batch", type=int, default=5000, help="messages per batch (the catch-up worker's)"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results.json")
    args = parser.parse_args()
    readings = catchup_readings(args.readings, args.sensors)
    messages = list(catchup_messages(readings, args.pack, PARTITIONS))
    batch = args.batch
    with tempfile.TemporaryDirectory() as tmp:
        write_grid(Path(tmp) / "grid.yaml", args.sensors)
        grid = load_grid(Path(tmp) / "grid.yaml")
    settle_garbage_collector()  # as the worker does
    floor_s, decoded = timed(lambda: decode_floor(messages))
    admit_s, admitted = timed(lambda: own_work(messages, grid, batch, detect=False))
    own_s, firing = timed(lambda: own_work(messages, grid, batch))
    assert decoded == admitted == args.readings, (decoded, admitted)
    rate = {
        name: args.readings / s
        for name, s in (("floor", floor_s), ("admit", admit_s), ("own", own_s))
    }
    results = {
        "readings": args.readings,
        "readings_per_message": round(args.readings / len(messages), 1),
        "messages_per_batch": batch,
        "decode_floor_readings_per_s": round(rate["floor"]),
        "admission_readings_per_s": round(rate["admit"]),
        "own_work_readings_per_s": round(rate["own"]),
        # Detection, episodes and state encoding alone: own work less admission.
        "detection_readings_per_s": round(args.readings / max(own_s - admit_s, 1e-9)),
        "ratio_own_work_vs_decode_floor": round(rate["own"] / rate["floor"], 3),
        "share_of_own_work_in_admission": round(admit_s / own_s, 3),
        "firing_alerts": firing,
        **machine(),
    }
    print(json.dumps(results, indent=2))
    merged = json.loads(args.out.read_text()) if args.out.exists() else {}
    merged["ceiling_packed" if args.pack else "ceiling"] = results
    args.out.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    main()
