"""Rehearsal benchmark on real NYC 311 data (reads ../shared, like every benchmark):

1. fidelity: each snapshot rehearsed with the committed profiles (units-nyc.yaml); per
   department, the rehearsal's median time to resolve beside the real median of the same
   snapshot's closed requests (target: within 20 %). Also with a profile built from that
   snapshot alone (the simulation reproducing what it was built from).
2. speed: a full day of reports, rehearsed twice (5- and 15-minute ack deadlines) with the
   campaign report computed: the three snapshots laid onto one day (2,924 reports), and
   the busiest snapshot tiled eight times over 24 hours (~8,000 reports).

    python -m bench.rehearsal [--shared ../shared/data/city] [--out bench/results-rehearsal.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from bench.service_profiles import LEVELS, OUT, nyc311_durations
from citybrain.adapters import NYC_AGENCY_DEPARTMENTS, NYC_CHANNELS, GridBuilder, _slug
from citybrain.campaign import campaign_report
from citybrain.rehearse import (
    Distribution,
    Incident,
    profile_distributions,
    rehearse,
    units_profile,
)
from playbooks.grid import Grid
from playbooks.loader import load_grid, load_playbook
from streams.settings import REPO_ROOT

PLAYBOOK = REPO_ROOT / "playbooks" / "library" / "rehearsal" / "citizen-report.yaml"


def snapshot(path: Path, grid: GridBuilder) -> list[Incident]:
    raw = pd.read_csv(path, dtype=str)
    raw.columns = [c.lower().replace(" ", "_") for c in raw.columns]
    raw = raw.dropna(subset=["community_board", "borough", "incident_zip"])
    created = pd.to_datetime(raw["created_date"], format="mixed").dt.tz_localize(
        "America/New_York", ambiguous="NaT", nonexistent="NaT"
    )
    out = []
    for (_, row), ts in zip(raw.iterrows(), created, strict=True):
        if pd.isna(ts):
            continue
        board, zip_code = str(row["community_board"]), str(row["incident_zip"]).split(".")[0]
        cell = grid.chain(
            [
                ("city", "nyc", "New York City"),
                ("district", f"nyc-{_slug(row['borough'])}", str(row["borough"]).title()),
                ("street", f"nyc-cb-{_slug(board)}", f"Community Board {board}"),
                ("community", f"nyc-cb-{_slug(board)}-zip-{zip_code}", f"ZIP {zip_code}"),
            ]
        )
        out.append(
            Incident(
                ts.timestamp(),
                f"nyc311-{row['unique_key']}",
                NYC_CHANNELS.get(str(row.get("open_data_channel_type")), "inspector"),
                str(row["complaint_type"]),
                cell,
                NYC_AGENCY_DEPARTMENTS.get(str(row["agency"]), "city-management"),
            )
        )
    return out


def medians(records: list[dict[str, Any]], grid: Grid, incidents: list[Incident]) -> dict[str, Any]:
    start = min(i.ts for i in incidents)
    end = max(i.ts for i in incidents) + 1
    paths = {c: grid.path(c) for c in grid.cells}
    report = campaign_report(records, paths, start, end, until=float("inf"))
    return {r["name"]: r["figures"] for r in report["rows"] if r["scope"] in ("department", "city")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(REPO_ROOT.parent / "shared" / "data" / "city"))
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results-rehearsal.json"))
    args = parser.parse_args()
    shared = Path(args.shared)
    builder = GridBuilder()
    snapshots = {
        p.name.removesuffix(".csv.gz"): snapshot(p, builder)
        for p in sorted((shared / "nyc_311").glob("nyc311_*.csv.gz"))
    }
    with tempfile.TemporaryDirectory() as tmp:
        builder.write(Path(tmp) / "grid.yaml")
        grid = load_grid(Path(tmp) / "grid.yaml")
    playbook = load_playbook(PLAYBOOK)
    units_doc = yaml.safe_load((OUT / "units-nyc.yaml").read_text())
    response = profile_distributions(json.loads((OUT / "sf_fire_response.json").read_text()), "r")
    resolve = profile_distributions(json.loads((OUT / "nyc311_resolve.json").read_text()), "s")
    units = units_profile(units_doc, response, resolve)
    real = nyc311_durations(shared)
    fidelity = []
    for name, incidents in snapshots.items():
        closed = real[real["snapshot"] == name]
        own = {
            "all": Distribution(
                tuple(LEVELS), tuple(float(np.quantile(closed["seconds"], q)) for q in LEVELS)
            )
        }
        for department, group in closed.groupby("department"):
            if len(group) >= 20:
                own[str(department)] = Distribution(
                    tuple(LEVELS), tuple(float(np.quantile(group["seconds"], q)) for q in LEVELS)
                )
        own_units = units_profile(
            {
                "departments": {
                    k: {
                        **v,
                        "resolve": v.get("resolve", "all") if v.get("resolve") in own else "all",
                    }
                    for k, v in units_doc["departments"].items()
                }
            },
            response,
            own,
        )
        committed = medians(
            rehearse(incidents, playbook, grid, units, 900.0).records, grid, incidents
        )
        same = medians(
            rehearse(incidents, playbook, grid, own_units, 900.0).records, grid, incidents
        )
        for department, group in sorted(closed.groupby("department")):
            if len(group) < 20:
                continue
            truth = float(np.median(group["seconds"]))
            row = {
                "snapshot": name,
                "department": str(department),
                "real_closed": len(group),
                "real_median_s": truth,
                "rehearsed_committed_profile_s": committed[str(department)]["ttr_median"],
                "rehearsed_same_snapshot_profile_s": same[str(department)]["ttr_median"],
            }
            row["error_committed"] = row["rehearsed_committed_profile_s"] / truth - 1
            row["error_same_snapshot"] = row["rehearsed_same_snapshot_profile_s"] / truth - 1
            fidelity.append(row)
            print(json.dumps(row))
    # Speed: a full day.
    day = []
    for k, incidents in enumerate(snapshots.values()):
        base = min(i.ts for i in incidents)
        day += [
            Incident(
                1716768000.0 + k * 8 * 3600 + (i.ts - base),
                i.report_id,
                i.source,
                i.category,
                i.grid_cell,
                i.department,
            )
            for i in incidents
        ]
    busiest = max(snapshots.values(), key=len)
    base = min(i.ts for i in busiest)
    tiled = [
        Incident(
            1716768000.0 + k * 3 * 3600 + (i.ts - base),
            f"{i.report_id}-{k}",
            i.source,
            i.category,
            i.grid_cell,
            i.department,
        )
        for k in range(8)
        for i in busiest
    ]
    speed = []
    for label, incidents in (("three snapshots on one day", day), ("busiest snapshot x8", tiled)):
        for deadline in (300.0, 900.0):
            began = time.perf_counter()
            result = rehearse(incidents, playbook, grid, units, deadline)
            figures = medians(result.records, grid, incidents)["nyc"]
            seconds = time.perf_counter() - began
            row = {
                "day": label,
                "reports": len(incidents),
                "ack_deadline_s": deadline,
                "seconds": round(seconds, 2),
                "records": len(result.records),
                "escalated_district": figures["escalated_district"],
                "tta_median_s": figures["tta_median"],
                "ttr_median_s": figures["ttr_median"],
                "first_line_share": figures["first_line_share"],
            }
            speed.append(row)
            print(json.dumps(row))
    Path(args.out).write_text(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.node()} {platform.machine()} {platform.processor()}",
                "python": platform.python_version(),
                "fidelity": fidelity,
                "speed": speed,
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
