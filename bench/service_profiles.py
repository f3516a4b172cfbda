"""Builds the service-time profiles the rehearsal samples from (datasets/service_times/),
from the real data in the team's shared folder. The only rehearsal code that reads
../shared; everything else reads the small committed profiles.

- ``nyc311_resolve.json``: NYC 311, seconds from ``created_date`` to ``closed_date`` per
  department (the agency mapped as in citybrain.adapters). Each snapshot stops recording
  closures at its *horizon* (its last ``closed_date``: no request closes after it, though
  30-70 % are still open), so a request still open is *censored* at ``horizon -
  created``: it took at least that long. The distribution is the Kaplan-Meier estimate
  over closed and censored requests alike (Kaplan & Meier 1958), not the closed requests
  alone, which keep only the requests fast enough to close before the horizon and so
  depend on when each snapshot was taken. Past the longest observed time the estimate
  has no data; the tail is extrapolated with the mean hazard of the last half of the
  observed span (an assumption, marked ``tail`` in the entry). A department with fewer
  than ``MIN_SAMPLES`` closed requests is left out (the rehearsal then uses the pooled
  ``all`` entry).
- ``sf_fire_response.json``: San Francisco fire calls, the ``Delay`` column (response
  delay of the dispatched unit, minutes, converted to seconds) per ``UnitType``.

Each entry holds the count and 21 quantiles (0, 0.05, ..., 1) of its durations: the
rehearsal samples by inverse-CDF with linear interpolation between them.

    python -m bench.service_profiles [--shared ../shared/data/city]
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench import in_dir, run_main
from citybrain.adapters import NYC_AGENCY_DEPARTMENTS
from streams.settings import REPO_ROOT

OUT = REPO_ROOT / "datasets" / "service_times"
LEVELS = [round(i * 0.05, 2) for i in range(21)]
MIN_SAMPLES = 20


TAIL_CAP = 0.999  # the q = 1 entry of an extrapolated tail is this quantile of the tail


def _entry(seconds: pd.Series) -> dict[str, object]:
    values = np.asarray(seconds, dtype=float)
    return {
        "n": int(values.size),
        "median_s": float(np.median(values)),
        "quantiles": [[q, round(float(np.quantile(values, q)), 1)] for q in LEVELS],
    }


def kaplan_meier(seconds: Sequence[float], closed: Sequence[bool]) -> list[tuple[float, float]]:
    """The Kaplan-Meier survival curve of durations ``seconds`` of which ``closed[i]``
    says whether the end was seen (else the duration is a lower bound: censored).
    Returns ``[(t, S(t)), ...]`` at each distinct observed end time, ascending; S is the
    share still open just after t (Kaplan & Meier 1958: S(t) = prod over ends t_j <= t
    of 1 - d_j / n_j, n_j still at risk at t_j, censored ones at risk up to their time).
    Raises ``ValueError`` for lengths that differ or a negative duration."""
    if len(seconds) != len(closed):
        raise ValueError(f"{len(seconds)} durations but {len(closed)} closed flags")
    pairs = sorted(zip((float(s) for s in seconds), (bool(c) for c in closed), strict=True))
    if pairs and pairs[0][0] < 0:
        raise ValueError(f"a negative duration: {pairs[0][0]} s")
    curve, survival, at_risk, i = [], 1.0, len(pairs), 0
    while i < len(pairs):
        t, ends, leaving = pairs[i][0], 0, 0
        while i < len(pairs) and pairs[i][0] == t:
            ends += pairs[i][1]
            leaving += 1
            i += 1
        if ends:
            survival *= 1.0 - ends / at_risk
            curve.append((t, survival))
        at_risk -= leaving
    return curve


def censored_quantiles(
    seconds: Sequence[float], closed: Sequence[bool], levels: Sequence[float] = LEVELS
) -> tuple[list[list[float]], dict[str, float] | None]:
    """Quantiles ``[[q, s], ...]`` of a censored duration sample: ``min{t : F(t) >= q}``
    on the Kaplan-Meier curve (F = 1 - S), q = 0 being the shortest observed end. When
    censoring leaves a share ``S_last`` open after the last end, nothing is known past
    the longest duration ``T`` (closed or open; S stays ``S_last`` up to it); the
    quantiles beyond ``1 - S_last`` come from an exponential tail ``S(t) = S_last *
    exp(-h (t - T))``, ``h`` the curve's mean hazard over the second half of the span,
    ``ln(S(T / 2) / S_last) / (T / 2)`` (over the whole span, ``-ln(S_last) / T``, when
    nothing ended in the second half); q = 1 is the tail's ``TAIL_CAP`` quantile.
    Returns the quantiles and the tail's parameters (None without a tail). Raises
    ``ValueError`` when nothing was seen to end."""
    curve = kaplan_meier(seconds, closed)
    if not curve:
        raise ValueError("no duration was seen to end: no distribution can be estimated")
    times = [t for t, _ in curve]
    shares = [1.0 - s for _, s in curve]
    s_last = curve[-1][1]
    tail = None
    if s_last > 0:
        span = max(float(s) for s in seconds)
        k = bisect.bisect_right(times, span / 2) - 1
        s_half = curve[k][1] if k >= 0 else 1.0
        if s_half > s_last:
            hazard = math.log(s_half / s_last) / (span / 2)
        else:
            hazard = -math.log(s_last) / span
        tail = {"from_q": round(1.0 - s_last, 4), "from_s": span, "hazard_per_s": hazard}
    out = []
    for q in levels:
        if q == 0:
            value = times[0]
        elif q <= shares[-1] + 1e-12:
            value = times[bisect.bisect_left(shares, q - 1e-12)]
        else:
            assert tail is not None
            open_share = max(1.0 - q, 1.0 - TAIL_CAP)
            value = span + math.log(s_last / open_share) / tail["hazard_per_s"]
        out.append([q, round(value, 1)])
    return out, tail


def _censored_entry(frame: pd.DataFrame) -> dict[str, object]:
    quantiles, tail = censored_quantiles(frame["seconds"].tolist(), frame["closed"].tolist())
    entry: dict[str, object] = {
        "n": len(frame),
        "closed": int(frame["closed"].sum()),
        "median_s": next(s for q, s in quantiles if q >= 0.5),
        "quantiles": quantiles,
    }
    if tail is not None:
        entry["tail"] = {**tail, "what": "extrapolated, an assumption (no data past from_s)"}
    return entry


def nyc311_durations(shared: Path, snapshots: Sequence[str] | None = None) -> pd.DataFrame:
    """Every NYC 311 request of the snapshots (all, or those named like
    ``nyc311_2022-05-01``): department, snapshot, ``closed`` (closed by the snapshot's
    horizon), ``seconds`` (created -> closed, or created -> horizon while still open: a
    lower bound), ``horizon`` (the snapshot's last ``closed_date``), ``created``. Both
    times are the export's local time, so the zone cancels. Requests created after
    the horizon (nothing known of them) are left out."""
    frames = []
    for path in sorted((shared / "nyc_311").glob("nyc311_*.csv.gz")):
        name = path.name.removesuffix(".csv.gz")
        if snapshots is not None and name not in snapshots:
            continue
        raw = pd.read_csv(path, dtype=str)
        raw.columns = [c.lower().replace(" ", "_") for c in raw.columns]
        created = pd.to_datetime(raw["created_date"], format="mixed")
        closed = pd.to_datetime(raw["closed_date"], format="mixed")
        horizon = closed.max()
        frames.append(
            pd.DataFrame(
                {
                    "unique_key": raw["unique_key"],
                    "department": raw["agency"]
                    .map(NYC_AGENCY_DEPARTMENTS)
                    .fillna("city-management"),
                    "snapshot": name,
                    "closed": closed.notna(),
                    "seconds": (closed.fillna(horizon) - created).dt.total_seconds(),
                    "horizon": horizon,
                    "created": created,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame[frame["seconds"].notna() & (frame["seconds"] >= 0)]


def resolve_entries(nyc: pd.DataFrame) -> dict[str, dict[str, object]]:
    """``all`` (every request), every department with ``MIN_SAMPLES`` closed requests,
    and ``others``: the departments without an entry of their own pooled, when any of
    them closed at least one request. ``others`` is the fallback for those departments:
    ``all`` is mostly police at night, which closes in minutes what housing and
    sanitation leave open for days."""
    entries = {"all": _censored_entry(nyc)}
    rest = []
    for department, group in sorted(nyc.groupby("department")):
        if int(group["closed"].sum()) >= MIN_SAMPLES:
            entries[str(department)] = _censored_entry(group)
        else:
            rest.append(group)
    if rest and int(sum(int(g["closed"].sum()) for g in rest)) > 0:
        entries["others"] = _censored_entry(pd.concat(rest))
    return entries


def build(shared: Path, out: Path = OUT) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    nyc = nyc311_durations(shared)
    departments = resolve_entries(nyc)
    (out / "nyc311_resolve.json").write_text(
        json.dumps(
            {
                "what": "seconds from created_date to closed_date; Kaplan-Meier over closed "
                "requests and open ones censored at their snapshot's last closed_date, "
                "exponential tail past the longest observed time (see tail)",
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
    parser.add_argument(
        "--shared", type=in_dir, default=str(REPO_ROOT.parent / "shared" / "data" / "city")
    )
    args = parser.parse_args()
    print(build(Path(args.shared)))


if __name__ == "__main__":
    run_main(main)
