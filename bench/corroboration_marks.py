"""Per-mark cost of the corroboration stage in a busy area (docs/detectors.md): the path
before 2026-12-05 (copy the area's state and write it through, i.e. encode it whole, for
every mark) against recording the mark in place and staging its entry for the commit.
``python -m bench.corroboration_marks``.

Areas of 20, 200 and 2,000 sensors, each with a day's ordinary marks (7: one reading in
40 of a five-minute sensor reaches the agreement bar, thinned to one per 10 minutes)."""

from __future__ import annotations

import argparse
import random
import time

import orjson

from streams.corroboration import Policy, new_area_state, record_mark

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


if __name__ == "__main__":
    main()
