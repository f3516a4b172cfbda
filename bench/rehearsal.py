"""Rehearsal benchmark on real NYC 311 data (reads ../shared, like every benchmark):

1. fidelity: each snapshot rehearsed, over ``SEEDS`` seeds, with the resolve profile of
   all three snapshots (the committed one) and with one built from the *other two* only
   (the snapshot held out); per department, the rehearsal's median time to resolve beside
   the real median of the snapshot's closed requests (target: within 20 %). The real
   figure only sees requests closed by the snapshot's horizon (its last closure), so the
   rehearsal's is read at the same moment (``campaign_report(until=horizon)``): runs the
   rehearsal resolves later are open in both. The real median's 95 % interval is a
   bootstrap over its closed requests; the rehearsal's spread is over the seeds.
2. speed: a full day of reports, rehearsed twice (5- and 15-minute ack deadlines, with
   the units profile's simulated answers, as the CLI does) with the campaign report
   computed: the three snapshots laid onto one day (2,912 reports), and the busiest
   snapshot tiled eight times over 24 hours (7,984 reports).

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

from bench import in_dir, out_file, run_main
from bench.service_profiles import MIN_SAMPLES, OUT, nyc311_durations, resolve_entries
from citybrain.adapters import NYC_AGENCY_DEPARTMENTS, NYC_CHANNELS, GridBuilder, _slug
from citybrain.campaign import campaign_report
from citybrain.rehearse import (
    Distribution,
    Incident,
    profile_distributions,
    rehearse,
    satisfaction_model,
    units_profile,
)
from playbooks.grid import Grid
from playbooks.loader import load_grid, load_playbook
from streams.settings import REPO_ROOT

PLAYBOOK = REPO_ROOT / "playbooks" / "library" / "rehearsal" / "citizen-report.yaml"
SEEDS = 10
ZONE = "America/New_York"


def snapshot(path: Path, grid: GridBuilder) -> list[Incident]:
    raw = pd.read_csv(path, dtype=str)
    raw.columns = [c.lower().replace(" ", "_") for c in raw.columns]
    raw = raw.dropna(subset=["community_board", "borough", "incident_zip"])
    created = pd.to_datetime(raw["created_date"], format="mixed").dt.tz_localize(
        ZONE, ambiguous="NaT", nonexistent="NaT"
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


def medians(
    records: list[dict[str, Any]],
    grid: Grid,
    incidents: list[Incident],
    until: float = float("inf"),
) -> dict[str, Any]:
    start = min(i.ts for i in incidents)
    end = max(i.ts for i in incidents) + 1
    paths = {c: grid.path(c) for c in grid.cells}
    report = campaign_report(records, paths, start, end, until=until)
    return {r["name"]: r["figures"] for r in report["rows"] if r["scope"] in ("department", "city")}


def bootstrap_median(values: np.ndarray, rounds: int = 2000) -> tuple[float, float]:
    """The 95 % percentile-bootstrap interval of the median of ``values``."""
    rng = np.random.default_rng(0)
    picks = rng.choice(values, size=(rounds, values.size), replace=True)
    low, high = np.quantile(np.median(picks, axis=1), [0.025, 0.975])
    return float(low), float(high)


def fidelity_rows(
    name: str,
    incidents: list[Incident],
    real: pd.DataFrame,
    profiles: dict[str, Any],
    grid: Grid,
    playbook: Any,
) -> list[dict[str, Any]]:
    """Per department of one snapshot: the real closed median beside the rehearsal's,
    read at the snapshot's horizon, for each profile in ``profiles`` (label -> units)."""
    own = real[real["snapshot"] == name]
    horizon = own["horizon"].iloc[0].tz_localize(ZONE).timestamp()
    rehearsed: dict[str, dict[str, list[float]]] = {}
    shares: dict[str, dict[str, list[float]]] = {}
    queued: dict[str, dict[str, list[int]]] = {}
    for label, units in profiles.items():
        for seed in range(SEEDS):
            result = rehearse(incidents, playbook, grid, units, 900.0, seed)
            records = result.records
            for department in {i.department for i in incidents}:
                pool = department if department in units else "default"
                queued.setdefault(department, {}).setdefault(label, []).append(
                    result.queued_by.get(pool, 0)
                )
            for department, fig in medians(records, grid, incidents, until=horizon).items():
                shares.setdefault(department, {}).setdefault(label, []).append(
                    fig["resolved"] / fig["found"]
                )
                if fig["ttr_median"] is not None:
                    rehearsed.setdefault(department, {}).setdefault(label, []).append(
                        fig["ttr_median"]
                    )
    rows = []
    for department, group in sorted(own.groupby("department")):
        closed = group.loc[group["closed"], "seconds"].to_numpy(dtype=float)
        row: dict[str, Any] = {
            "snapshot": name,
            "department": str(department),
            "reports": len(group),
            "real_closed": int(closed.size),
            "measurable": bool(closed.size >= MIN_SAMPLES),
            "real_median_s": float(np.median(closed)) if closed.size else None,
            "real_median_95": bootstrap_median(closed) if closed.size >= MIN_SAMPLES else None,
            "real_closed_share": closed.size / len(group),
        }
        for label in profiles:
            got = rehearsed.get(str(department), {}).get(label, [])
            # No median in any seed: nothing of the department closed by the horizon.
            row[label] = {
                "seeds": len(got),
                "median_s": float(np.mean(got)) if got else None,
                "seed_range_s": [float(min(got)), float(max(got))] if got else None,
                "error": float(np.mean(got)) / row["real_median_s"] - 1
                if got and row["real_median_s"]
                else None,
                "closed_share": float(np.mean(shares[str(department)][label])),
                # Runs of the department's units pool that waited for a free unit.
                "queued_mean": float(np.mean(queued[str(department)][label])),
            }
        rows.append(row)
        print(json.dumps(row))
    return rows


def fidelity_table(rows: list[dict[str, Any]]) -> str:
    """The fidelity rows as the markdown table of docs/citizens.md."""

    def cell(row: dict[str, Any], label: str) -> str:
        got = row.get(label)
        if not got or got["median_s"] is None:
            return "none closed by the horizon"
        low, high = got["seed_range_s"]
        text = f"{got['median_s']:,.0f} s ({low:,.0f}-{high:,.0f})"
        if row["measurable"] and got["error"] is not None:
            text += f" **{100 * got['error']:+.1f} %**"
        if got.get("queued_mean"):
            text += f", {got['queued_mean']:.0f} queued"
        return text

    lines = [
        "| snapshot | department | reports | real closed | closed by the horizon, real "
        "/ all-days / held-out | real median (95 % CI) "
        f"| rehearsed, all-days profile (seed range, {SEEDS} seeds) "
        "| rehearsed, held-out profile |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["real_median_s"] is None:
            real = "-"
        elif row["measurable"]:
            low, high = row["real_median_95"]
            real = f"{row['real_median_s']:,.0f} s ({low:,.0f}-{high:,.0f})"
        else:
            real = f"{row['real_median_s']:,.0f} s (too few to measure)"
        share = " / ".join(
            [f"{100 * row['real_closed_share']:.0f} %"]
            + [
                f"{100 * row[k]['closed_share']:.0f} %"
                if row.get(k) and "closed_share" in row[k]
                else "0 %"  # no seed closed any of the department's runs by then
                for k in ("committed", "held_out")
            ]
        )
        lines.append(
            f"| {row['snapshot'].removeprefix('nyc311_')} | {row['department']} "
            f"| {row['reports']} | {row['real_closed']} | {share} | {real} "
            f"| {cell(row, 'committed')} | {cell(row, 'held_out')} |"
        )
    return "\n".join(lines)


def resolve_units(
    units_doc: dict[str, Any], response: dict[str, Distribution], durations: pd.DataFrame
) -> dict[str, Any]:
    """``units_doc``'s departments with resolve profiles built from ``durations`` (a
    department without its own entry there uses ``all``)."""
    own = {
        k: Distribution.from_entry(v, f"resolve {k}") for k, v in resolve_entries(durations).items()
    }
    departments = {
        k: {**v, "resolve": v.get("resolve", "all") if v.get("resolve") in own else "all"}
        for k, v in units_doc["departments"].items()
    }
    return units_profile({"departments": departments}, response, own)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=in_dir, default=str(REPO_ROOT.parent / "shared" / "data" / "city")
    )
    parser.add_argument(
        "--out", type=out_file, default=str(REPO_ROOT / "bench" / "results-rehearsal.json")
    )
    parser.add_argument("--only", choices=("fidelity", "speed"), help="run one part only")
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
    # The speed runs simulate reporters' answers, as `citybrain rehearse` does.
    satisfaction = satisfaction_model(units_doc)
    real = nyc311_durations(shared)
    fidelity = []
    for name, incidents in snapshots.items() if args.only != "speed" else ():
        others = real[real["snapshot"] != name]
        profiles = {"committed": units, "held_out": resolve_units(units_doc, response, others)}
        fidelity += fidelity_rows(name, incidents, real, profiles, grid, playbook)
    if fidelity:
        print(fidelity_table(fidelity))
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
    days = (("three snapshots on one day", day), ("busiest snapshot x8", tiled))
    for label, incidents in days if args.only != "fidelity" else ():
        for deadline in (300.0, 900.0):
            began = time.perf_counter()
            result = rehearse(incidents, playbook, grid, units, deadline, satisfaction=satisfaction)
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
                "answers": result.answers,
                "reopened": result.reopened,
                "satisfaction_rate": figures["satisfaction_rate"],
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
    run_main(main)
