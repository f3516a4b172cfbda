"""``rehearse``: past incidents played against playbook versions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from citybrain.commands import (
    written_path,
)
from citybrain.errors import json_error_at, utf8_text
from citybrain.files import write_output
from citybrain.text import counted, duration
from playbooks.errors import shown
from streams.events import duplicate_keys, json_int

if TYPE_CHECKING:
    from citybrain.rehearse import DepartmentUnits, Incident

from citybrain.cli.base import CliError, _need_file, _settings, check_output, need_all
from citybrain.cli.campaign import _load_incidents


def cmd_rehearse(args: argparse.Namespace) -> int:
    import time

    import yaml

    from citybrain.campaign import campaign_report, render_html
    from citybrain.rehearse import (
        RehearsalError,
        profile_distributions,
        rehearse,
        satisfaction_model,
        units_profile,
    )
    from playbooks.loader import load_grid, load_playbook, load_yaml

    units_path = Path(args.units)
    check_output(
        "--out",
        args.out,
        [
            ("--units", args.units),
            ("--incidents", args.incidents),
            ("--playbook", args.playbook),
            ("--grid", args.grid),
        ],
        "leave out --out for the comparison on stdout",
        suffixes=(".html", ".json"),
    )
    need_all(
        [
            lambda: _need_file(units_path, "--units", kind="YAML", expects=("units",)),
            lambda: _need_file(Path(args.incidents), "--incidents", kind="CSV", expects=("feed",)),
            lambda: _need_file(
                Path(args.playbook), "--playbook", kind="YAML", expects=("playbook",)
            ),
            *(
                [lambda: _need_file(Path(args.grid), "--grid", kind="YAML", expects=("grid",))]
                if args.grid
                else []
            ),
        ]
    )

    units_text = utf8_text(units_path, "--units")
    try:
        doc = load_yaml(units_text)
        if not isinstance(doc, dict):
            raise CliError(
                f"--units {units_path}: "
                + ("the file is empty" if doc is None else f"is {shown(doc)}")
                + ", expected a mapping with "
                "response_profile, resolve_profile and the departments (docs/citizens.md)"
            )
        tables = {}
        for key in ("response_profile", "resolve_profile"):
            name = doc.get(key)
            if not isinstance(name, str) or not name.strip():
                raise CliError(
                    f"--units {units_path}: {key} is "
                    + ("missing" if name is None else repr(name))
                    + ", expected the name of a service-time profile (JSON), e.g. "
                    "sf_fire_response.json, found next to the units YAML"
                )
            # A relative path is read next to the units YAML, not the current directory.
            profile = units_path.parent / name
            if not profile.is_file():
                raise CliError(
                    f"--units {units_path}: {key} is {name!r}: no file {profile} (profile "
                    f"paths resolve next to the units YAML, in {units_path.parent.resolve()}; "
                    "copy the profile there too or give its path)"
                )
            try:
                loaded = json.loads(utf8_text(profile, "--units"), parse_int=json_int)
            except json.JSONDecodeError as exc:
                json_line, json_end = json_error_at(exc)
                raise CliError(
                    f"--units {units_path}: {profile}:{json_line}: {exc.msg}{json_end}"
                ) from None
            except RecursionError:
                raise CliError(f"--units {units_path}: {profile}: nested too deeply") from None
            for twice, at in duplicate_keys(profile.read_bytes(), loaded)[:1]:
                # json.loads kept the last: an entry given twice lost the first (t54).
                where = f" (in {at})" if at else ""
                raise CliError(
                    f"--units {units_path}: {profile}: key {twice[:60]!r} is given "
                    f"twice{where}: which is meant?"
                )
            tables[key] = profile_distributions(loaded, str(profile))
        units = units_profile(doc, tables["response_profile"], tables["resolve_profile"])
        satisfaction = satisfaction_model(doc)
    except yaml.YAMLError as exc:
        from playbooks.loader import yaml_error

        raise CliError(f"--units {yaml_error(units_path, exc, units_text)}") from None
    except (OSError, AttributeError) as exc:
        raise CliError(f"--units {units_path}: {exc}") from None
    except RehearsalError as exc:
        raise CliError(f"--units {units_path}: {exc}") from None
    grid = load_grid(Path(args.grid) if args.grid else _settings().grid_file)
    settings = _settings()
    # t217: 21 s passed without a word on a loaded 2-core machine (reading and
    # classifying 1,000 reports, then 5-6 s per --ack-deadline): each step is said first.
    print(f"rehearse: reading the reports of {args.incidents} …", file=sys.stderr, flush=True)
    incidents = _load_incidents(
        Path(args.incidents),
        grid,
        units,
        args.on_error,
        settings.burst_bucket_seconds,
        settings.max_future_skew,
    )
    if not incidents:
        raise CliError(f"--incidents {args.incidents}: no reports")
    playbook = load_playbook(Path(args.playbook))
    paths = {c: grid.path(c) for c in grid.cells}
    start = min(i.ts for i in incidents)
    end = max(i.ts for i in incidents) + 1.0
    versions = []
    deadlines = args.ack_deadline or [None]
    for n, deadline in enumerate(deadlines, 1):
        print(
            f"rehearse: {counted(len(incidents), 'report')} through the engine on a simulated "
            f"clock, {_ack_head(deadline)}"
            + (f" ({n} of {len(deadlines)})" if len(deadlines) > 1 else "")
            + " …",
            file=sys.stderr,
            flush=True,
        )
        began = time.perf_counter()
        result = rehearse(
            incidents, playbook, grid, units, deadline, seed=args.seed, satisfaction=satisfaction
        )
        report = campaign_report(result.records, paths, start, end, until=float("inf"))
        seconds = time.perf_counter() - began
        versions.append(
            {
                "ack_deadline": deadline,
                "seconds": round(seconds, 3),
                "queued": result.queued,
                "unanswered": result.unanswered,
                "answers": result.answers,
                "reopened": result.reopened,
                "looped": result.looped,
                "report": report,
            }
        )
    _print_comparison(versions)
    print(pools_note(incidents, units))
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() == ".json":
            write_output(out, json.dumps({"versions": versions}, indent=2) + "\n", "--out")
        elif out.suffix.lower() == ".html":
            pages = (
                render_html(v["report"], f"rehearsal, {_ack_head(v['ack_deadline'])}", page=i == 0)
                for i, v in enumerate(versions)
            )
            write_output(out, "\n".join(pages), "--out")
        else:
            raise CliError(f"--out is {str(out)!r}, expected a .html or .json file")
        print(f"rehearsal report written to {written_path(out)}")
    return 0


def pools_note(incidents: Sequence[Incident], units: Mapping[str, DepartmentUnits]) -> str:
    """Which units pool rehearsed how many reports and the median of its resolve profile:
    ``units pools:`` then a line each, ``  police 5 reports (resolve median 43.0 min)``,
    ``  default 2 reports of 'POLICE', 'Police' (resolve median 9.6 days)``, and when
    the medians lie far apart,
    why ttr_p90 can be far above ttr_median (trial 6: 72,718 min against 58.9 min for 7
    reports, two of them in the default pool by a misspelt department)."""
    pools: dict[str, list[Incident]] = {}
    for inc in incidents:
        pools.setdefault(inc.department if inc.department in units else "default", []).append(inc)
    medians = {name: units[name].resolve.sample(0.5) for name in pools}

    def span(seconds: float) -> str:
        # Minutes to a tenth, as the report's medians; longer as every span is said.
        return f"{seconds / 60:.1f} min" if seconds < 7200 else duration(seconds)

    parts = []
    for name, mine in sorted(pools.items(), key=lambda item: -len(item[1])):
        unlisted = sorted({i.department for i in mine} - {name})
        of = f" of {', '.join(repr(d) for d in unlisted[:5])}" if unlisted else ""
        parts.append(
            f"{name} {counted(len(mine), 'report')}{of} (resolve median {span(medians[name])})"
        )
    # One pool a line (t60's walk: the NYC rehearsal's pools, on one line, ran to 539
    # characters).
    note = "units pools:" + "".join(f"\n  {part}" for part in parts)
    if len(medians) > 1 and max(medians.values()) > 10 * max(min(medians.values()), 1.0):
        note += (
            "\neach pool resolves on its own profile: reports in a pool whose cases stay "
            "open for days raise ttr_p90 far above ttr_median (a real tail of the profile, "
            "not a unit that never answered)"
        )
    return note


def _ack_head(deadline: float | None, short: bool = False) -> str:
    """A rehearsal version's name: ``ack deadline 300 s``, or the playbook's own;
    ``short`` for a column head, ``ack 300 s`` or ``playbook's acks`` (were "ack 300.0"
    and "ack playbook")."""
    if short:
        return f"ack {deadline:g} s" if deadline else "playbook's acks"
    return f"ack deadline {deadline:g} s" if deadline else "the playbook's ack deadlines"


def _print_comparison(versions: list[dict[str, Any]]) -> None:
    """City-level figures of each version side by side."""
    from citybrain.campaign import FIGURES

    # All the campaign's figures but the counts of reports: every version has the same.
    compared = [k for k in FIGURES if k not in ("reports", "repeat_reports")]
    heads = [_ack_head(v["ack_deadline"], short=True) for v in versions]
    print(f"{'figure':22}" + "".join(f"{h:>16}" for h in heads))
    cities = [
        next((r for r in v["report"]["rows"] if r["scope"] == "city"), None) for v in versions
    ]
    for key in compared:
        cells = []
        for city in cities:
            value = city["figures"][key] if city else None
            if value is None:
                cells.append("-")
            elif key.startswith(("tta", "ttr")):
                cells.append(f"{value / 60:.1f} min")
            elif key.endswith(("_rate", "_share")):
                cells.append(f"{100 * value:.1f} %")
            else:
                cells.append(f"{value:g}")
        print(f"{key:22}" + "".join(f"{c:>16}" for c in cells))
    print(f"{'seconds (wall)':22}" + "".join(f"{v['seconds']:>16}" for v in versions))
