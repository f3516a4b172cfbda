"""Builds the service-time profiles the rehearsal samples from (datasets/service_times/),
from the real data in the team's shared folder. The only rehearsal code that reads
../shared; everything else reads the small committed profiles.

- ``nyc311_resolve.json``: NYC 311, seconds from ``created_date`` to ``closed_date`` per
  department (the agency mapped as in citybrain.adapters), requests closed at export time
  only; a department with fewer than ``MIN_SAMPLES`` closed requests is left out (the
  rehearsal then uses the pooled ``all`` entry).
- ``sf_fire_response.json``: San Francisco fire calls, the ``Delay`` column (response
  delay of the dispatched unit, minutes, converted to seconds) per ``UnitType``.

Each entry holds the count and 21 quantiles (0, 0.05, ..., 1) of its durations: the
rehearsal samples by inverse-CDF with linear interpolation between them.

    python -m bench.service_profiles [--shared ../shared/data/city]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from citybrain.adapters import NYC_AGENCY_DEPARTMENTS
from streams.settings import REPO_ROOT

OUT = REPO_ROOT / "datasets" / "service_times"
LEVELS = [round(i * 0.05, 2) for i in range(21)]
MIN_SAMPLES = 20


def _entry(seconds: pd.Series) -> dict[str, object]:
    values = np.asarray(seconds, dtype=float)
    return {
        "n": int(values.size),
        "median_s": float(np.median(values)),
        "quantiles": [[q, round(float(np.quantile(values, q)), 1)] for q in LEVELS],
    }


def nyc311_durations(shared: Path) -> pd.DataFrame:
    """Every closed NYC 311 request of the three snapshots: department, snapshot, seconds
    from creation to closure (both in the export's local time, so the zone cancels)."""
    frames = []
    for path in sorted((shared / "nyc_311").glob("nyc311_*.csv.gz")):
        raw = pd.read_csv(path, dtype=str)
        raw.columns = [c.lower().replace(" ", "_") for c in raw.columns]
        created = pd.to_datetime(raw["created_date"], format="mixed")
        closed = pd.to_datetime(raw["closed_date"], format="mixed")
        frames.append(
            pd.DataFrame(
                {
                    "unique_key": raw["unique_key"],
                    "department": raw["agency"]
                    .map(NYC_AGENCY_DEPARTMENTS)
                    .fillna("city-management"),
                    "snapshot": path.name.removesuffix(".csv.gz"),
                    "seconds": (closed - created).dt.total_seconds(),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame[frame["seconds"].notna() & (frame["seconds"] >= 0)]


def build(shared: Path, out: Path = OUT) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    nyc = nyc311_durations(shared)
    departments = {"all": _entry(nyc["seconds"])}
    for department, group in sorted(nyc.groupby("department")):
        if len(group) >= MIN_SAMPLES:
            departments[str(department)] = _entry(group["seconds"])
    (out / "nyc311_resolve.json").write_text(
        json.dumps(
            {
                "what": "seconds from created_date to closed_date, closed requests only",
                "source": "NYC Open Data, 311 Service Requests (erm2-nwe9), three snapshots "
                "in shared/data/city/nyc_311 (2022-05-01, 2024-04-15/16, 2024-05-26/27)",
                "licence": "NYC Open Data, Local Law 11 of 2012, no usage restrictions",
                "built_by": "python -m bench.service_profiles",
                "entries": departments,
            },
            indent=1,
        )
        + "\n"
    )
    sf = pd.read_csv(shared / "sf_fire_calls" / "sf_fire_calls_sample.csv")
    sf = sf[sf["Delay"].notna() & (sf["Delay"] >= 0)]
    units = {"all": _entry(sf["Delay"] * 60)}
    for unit_type, group in sorted(sf.groupby("UnitType")):
        if len(group) >= MIN_SAMPLES:
            units[str(unit_type)] = _entry(group["Delay"] * 60)
    (out / "sf_fire_response.json").write_text(
        json.dumps(
            {
                "what": "seconds of response delay (the Delay column, minutes x 60) per unit type",
                "source": "DataSF, Fire Department Calls for Service, 1,000-row sample "
                "(Learning Spark 2nd ed. copy) in shared/data/city/sf_fire_calls",
                "licence": "Open Data Commons Public Domain Dedication and License (PDDL)",
                "built_by": "python -m bench.service_profiles",
                "entries": units,
            },
            indent=1,
        )
        + "\n"
    )
    return {"nyc311": len(nyc), "sf_fire": len(sf)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(REPO_ROOT.parent / "shared" / "data" / "city"))
    args = parser.parse_args()
    print(build(Path(args.shared)))


if __name__ == "__main__":
    main()
