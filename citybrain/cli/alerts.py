"""``alerts``: the alerts firing now, through the operator API (``GET /alerts``)."""

from __future__ import annotations

import argparse
from typing import Any

from citybrain.cli.api import _print_json, all_pages, api_command, listed
from citybrain.cli.base import EXIT_OK
from citybrain.text import cell, counted, display_width, pad

# Worst first, as an operator reads a list of what is on fire.
_SEVERITY_RANK = {"critical": 0, "major": 1, "minor": 2}


def alerts_table(alerts: list[dict[str, Any]]) -> str:
    """The firing alerts (the API's label maps) as a plain-text table: alert id,
    severity, kind, what (the sensor, or a burst's report category), cell, source and
    corroboration (``-`` where the alert has none); worst severity first, then kind,
    cell and id. Text is shown escaped (``cell``); a missing label is ``-``."""

    def label(alert: dict[str, Any], name: str) -> str:
        value = alert.get(name)
        return str(value) if value not in (None, "") else "-"

    def rank(alert: dict[str, Any]) -> tuple[int, str, str, str]:
        severity = _SEVERITY_RANK.get(str(alert.get("severity")), len(_SEVERITY_RANK))
        return severity, label(alert, "kind"), label(alert, "grid_cell"), label(alert, "alert_id")

    header = ("ALERT", "SEVERITY", "KIND", "WHAT", "CELL", "SOURCE", "CORROBORATION")
    rows = [
        (
            label(a, "alert_id"),
            label(a, "severity"),
            label(a, "kind"),
            label(a, "sensor_id") if a.get("sensor_id") else label(a, "category"),
            label(a, "grid_cell"),
            label(a, "source"),
            label(a, "corroboration"),
        )
        for a in sorted(alerts, key=rank)
    ]
    table = [header, *(tuple(cell(c) for c in row) for row in rows)]
    widths = [max(display_width(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


def alerts_headline(count: int, url: str | None = None) -> str:
    """The line above the table: how many alerts fire now, and where an alert that ended
    is still found (its run), so that a count lower than the demo summary's, which counts
    every alert ever raised, does not read as alerts lost."""
    return (
        f"{counted(count, 'alert')} firing now (an alert that ended is listed no more; "
        f"its run keeps it: `{api_command('runs', 'list', url=url)}`)"
    )


def cmd_alerts(args: argparse.Namespace) -> int:
    """``alerts list``: prints the headline and the table, or with ``--json`` the API's
    document (``{"firing": [{label: value, …}, …]}``) as it is. Exit 0; the API's
    refusals and an unreachable worker are ``CliError`` (1, 3) as for ``runs``."""
    # Every page (t186: the list is paged), each a worker's answer, even for --json.
    doc = all_pages(args, "/alerts", "firing")
    alerts = listed(doc, "firing", args.url, "/alerts")
    if args.json:
        _print_json(doc)
        return EXIT_OK
    firing = [a for a in alerts if isinstance(a, dict)]
    print(alerts_headline(len(firing), args.url))
    if firing:
        print(alerts_table(firing))
    return EXIT_OK
