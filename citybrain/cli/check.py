"""``playbooks check`` and ``route-test``: the playbooks, routing and grid
validated offline, and where an alert would go."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from citybrain.text import counted, shown_lines, warn
from playbooks.alert_labels import inconsistent_labels, worker_labels
from streams.settings import Settings

if TYPE_CHECKING:
    from playbooks.grid import Grid

from citybrain.cli.api import _matcher_labels, check_text
from citybrain.cli.base import CliError, _need_dir, _need_file, _settings, need_all
from citybrain.commands import shell_word
from streams.errors import text_lines


def cmd_playbooks(args: argparse.Namespace) -> int:
    from playbooks.errors import PlaybookError
    from playbooks.loader import load_playbooks, load_routing

    s = _settings()
    if args.action == "check":
        return playbooks_check(args, s)
    # route-test: like amtool config routes test, labels parsed as amtool parses them.
    from playbooks.loader import load_grid
    from playbooks.routing import ALL_LABELS, parse_label, read_apart_warnings

    _need_playbook_dir(Path(args.dir or s.playbook_dir), "--dir" if args.dir else "")
    _need_file(Path(args.routing or s.routing_file), "--routing", kind="YAML", expects=("routing",))
    labels: dict[str, str] = {}
    typed: dict[str, str] = {}
    typed_empty: list[str] = []
    _need_joined_labels(args.labels)
    for pair in args.labels:
        if pair.split("=", 1)[0].strip() == "alertname":
            # Every amtool user types it; citybrain alerts route on kind and source.
            # A warning, on stderr: `route-test … > routes.txt` kept it in the answer (t83).
            warn(
                f"ignored {pair!r}: citybrain alerts carry no alertname "
                "label (they route on kind, source, severity and the grid's labels)",
            )
            continue
        # A byte that is not UTF-8 said as every argument's (t197: as a lone surrogate).
        typed_as = pair.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        check_text(f"label '{typed_as}'", pair)
        try:
            with read_apart_warnings() as read_apart:
                name, value = parse_label(pair)
        except PlaybookError as exc:
            raise CliError(str(exc)) from None
        # Taken as Alertmanager 0.25 reads it; 0.27's UTF-8 matchers read it otherwise.
        for line in read_apart:
            print(f"citybrain: warning: {shown_lines(line)}", file=sys.stderr)
        if name in typed:
            # An alert carries one value per label (trial 8: the last one won silently).
            raise CliError(
                f"label {name} given twice ({name}={typed[name]!r} and {name}={value!r}): "
                "an alert carries one value of each label"
            )
        typed[name] = value
        if not value:
            # Alertmanager drops a label with an empty value (amtool routes `district=`
            # as an alert without district); t127: refused as a value not in the grid.
            typed_empty.append(name)
            continue
        labels[name] = value
    warnings: list[str] = []
    router = load_routing(
        Path(args.routing or s.routing_file),
        load_playbooks(args.dir or s.playbook_dir),
        warnings=warnings,
    )
    for line in warnings:
        print(f"citybrain: warning: {shown_lines(line)}", file=sys.stderr)
    grid_file = Path(args.grid) if args.grid else s.grid_file
    if args.grid:
        _need_file(grid_file, "--grid", kind="YAML", expects=("grid",))
    grid = load_grid(grid_file)
    if typed_empty:
        print(
            f"given empty, so not a label (Alertmanager drops a label with an empty value): "
            f"{', '.join(typed_empty)}"
        )
    bad = unknown_label_value(labels, grid) or inconsistent_labels(labels, grid)
    if bad:
        raise CliError(bad)
    filled, notes = worker_labels(labels, grid)
    for note in notes:
        print(note)
    if filled:
        added = ", ".join(f"{k}={v}" for k, v in filled.items())
        print(f"filled in as the worker does (from {grid_file.name}): {added}")
    labels = {**labels, **filled}
    missing = sorted(_matcher_labels(router.root) - set(labels))
    if missing:
        # As in the worker, a label an alert lacks matches as "".
        print(f"not given, so matched as empty: {', '.join(missing)}")
        if labels.get("source") == "sensor" and "corroboration" in missing:
            print(
                "  (the worker sets corroboration and assessment on a sensor alert once its "
                "neighbours are checked; give corroboration=isolated "
                "assessment=suspected_sensor_fault to see where a lone alert goes)"
            )
            if labels.get("reading") == "far_glitch":
                # Never decisive alone (t175): its score of 1 would make it look so.
                print(
                    "  (a far glitch alone is always assessment=suspected_sensor_fault, "
                    "whatever its score; with a neighbour agreeing, assessment=event)"
                )
    for route in router.root.match(labels):
        by = ", ".join(
            f"{name}={labels.get(name, '')}" for name in route.group_by if name != ALL_LABELS
        )
        empty = [n for n in route.group_by if n != ALL_LABELS and not labels.get(n)]
        print(
            f"route {route.id}: playbook {route.playbook}, group {route.group_key(labels)} "
            f"(group_by {list(route.group_by)}: {by or 'every label'}; "
            f"group_wait {route.group_wait:g}s, group_interval {route.group_interval:g}s, "
            f"repeat_interval {route.repeat_interval:g}s)"
        )
        for name in empty:
            print(f"  group_by label {name} is empty: {FILLED_BY.get(name, f'give {name}=…')}")
        if route.mute_time_intervals or route.active_time_intervals:
            # What the worker's flush would decide now (docs/playbooks.md, Time intervals).
            why = router.time_muted(
                route.mute_time_intervals, route.active_time_intervals, time.time()
            )
            given = "; ".join(
                f"{key} {', '.join(_interval_name(n) for n in names)}"
                for key, names in (
                    ("mute_time_intervals", route.mute_time_intervals),
                    ("active_time_intervals", route.active_time_intervals),
                )
                if names
            )
            now = f"held now: {why}" if why else "notifies now"
            print(f"  {given}: {now}")
    return 0


def _interval_name(name: str) -> str:
    """A time interval's name as route-test shows it: bare when plain (``night``), else
    quoted with escapes (``'night\\x1b[31m'``, ``'a, b'``, ``''``): a name from the file
    with an escape sequence or a bidirectional mark once reached the terminal raw, and
    one with ", " read as two."""
    if name and not any(c in ",'\"" or c.isspace() or not c.isprintable() for c in name):
        return name
    return repr(name)


def _need_playbook_dir(directory: Path, option: str) -> None:
    """CliError (status 2) naming ``option`` (the setting when "") unless ``directory``
    is a directory holding playbooks (``*.yaml``), as the worker's settings require:
    t79's `playbooks check /…/checkout/playbooks` (the package, not its library) listed
    every route's playbook as unknown ("does not exist (known: )")."""
    from playbooks.loader import library_parts, looks_like_playbook

    library = Settings.model_fields["playbook_dir"].default
    _need_dir(directory, option or "CITYBRAIN_PLAYBOOK_DIR", missing=f"(the library's: {library})")
    if parts := library_parts(directory):
        inner, routing = parts
        also = f" and --routing {routing}" if routing and option else ""
        raise CliError(
            f"{option or 'CITYBRAIN_PLAYBOOK_DIR'} {str(directory)!r} is a playbook library, "
            f"not its playbook directory: give {inner}{also}"
        )
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CliError(
            f"{option or 'CITYBRAIN_PLAYBOOK_DIR'} {str(directory)!r} holds no playbooks "
            f"(*.yaml files); the library's are in {library}"
        )
    if not any(map(looks_like_playbook, files)):
        # t134: `playbooks check /tmp` (other YAML there) gave an error per file and a
        # "does not exist (known: )" per route, 15 lines for one cause.
        some = (
            "its one .yaml file is no playbook"
            if len(files) == 1
            else f"none of its {len(files)} .yaml files is a playbook"
        )
        raise CliError(
            f"{option or 'CITYBRAIN_PLAYBOOK_DIR'} {str(directory)!r} holds no playbooks: "
            f"{some} (no top-level playbook: key); the library's are in {library}"
        )


def playbooks_check(args: argparse.Namespace, s: Settings) -> int:
    """``playbooks check``: every error of the playbooks, the routing file and the grid in
    one run, file by file in line order (each file is checked whatever the others hold),
    on stderr; status 1 if any, else 0 and one line naming what is valid. Warnings (a
    ``matchers:`` entry Alertmanager 0.27's UTF-8 matchers read otherwise than 0.25) go
    to stderr as ``citybrain: warning: file:line: …`` lines and leave the status as is."""
    from playbooks.errors import PlaybookError
    from playbooks.loader import (
        catch_all_warnings,
        check_playbooks,
        load_grid,
        routing_errors,
        unrouted_playbooks,
    )
    from playbooks.routing import label_values

    directory = Path(args.dir or s.playbook_dir)
    routing = Path(args.routing or s.routing_file)
    grid_file = Path(args.grid or s.grid_file)
    need_all(
        [
            lambda: _need_playbook_dir(directory, "the playbook directory" if args.dir else ""),
            lambda: _need_file(
                routing,
                "--routing" if args.routing else "CITYBRAIN_ROUTING_FILE",
                kind="YAML",
                expects=("routing",),
            ),
            lambda: _need_file(
                grid_file,
                "--grid" if args.grid else "CITYBRAIN_GRID_FILE",
                kind="YAML",
                expects=("grid",),
            ),
        ]
    )
    playbooks, names, errors = check_playbooks(directory, s.topic_prefix)
    grid = None
    try:
        grid = load_grid(grid_file)
    except PlaybookError as exc:
        grid_errors = text_lines(str(exc))
    else:
        grid_errors = []
    warnings: list[str] = []
    try:
        # Routes may name a playbook whose own file has errors: those are reported there.
        values = label_values(grid)
        router, route_errors = routing_errors(routing, names, values, warnings)
    except PlaybookError as exc:
        route_errors = text_lines(str(exc))
    else:
        # As the worker logs them at start (streams/alerting.py).
        if router is not None:
            warnings += unrouted_playbooks(routing, router, names)
            # Routes and inhibit rules that match every alert (t197).
            warnings += catch_all_warnings(routing, router, values)
    errors += route_errors + grid_errors
    for line in warnings:
        print(f"citybrain: warning: {shown_lines(line)}", file=sys.stderr)
    for line in errors:
        print(shown_lines(line), file=sys.stderr)
    if errors:
        return 1
    # Paths in full (t102): "routing.yaml and grid.yaml are valid" after `check COPY/playbooks`
    # read as if the copy's routing file had been checked, where the default one was.
    print(
        f"{counted(len(playbooks), 'playbook')} in {directory.resolve()}, "
        f"{routing.resolve()} and {grid_file.resolve()} are valid: {', '.join(playbooks)}"
    )
    return 0


# What fills each group_by label that a route-test left empty (worker_labels).
FILLED_BY = {
    **{
        level: f"give grid_cell=CELL (or a registered sensor_id=…): the worker derives {level} "
        "from the cell"
        for level in ("community", "street", "district", "city")
    },
    "grid_cell": "give grid_cell=CELL, or a registered sensor_id=… (its cell)",
    "kind": "give kind=…, or a registered sensor_id=… (its kind)",
    "source": "give source=sensor|citizen, or a sensor_id, a sensor kind or a category",
}


def unknown_label_value(labels: dict[str, str], grid: Grid) -> str:
    """Why one of ``labels`` has a value no alert can carry (a severity, source,
    corroboration or assessment outside LABEL_VALUES; a kind, a grid_cell, a sensor_id or
    a community, street, district or city not in the grid), or "" when every value is one
    an alert may have: the same test `playbooks check` puts route matchers to."""
    from playbooks.routing import LABEL_VALUES, SHOWN_VALUES, expected_values, label_values

    for name, value in labels.items():
        known = label_values(grid).get(name)
        if known is None or value in known:
            continue
        # A list too long to show says itself where its values are listed.
        where = (
            ""
            if name in LABEL_VALUES or len(known) > SHOWN_VALUES
            else {
                "kind": " (the grid kinds and incident_burst)",
                "grid_cell": " (the grid's cells)",
                "sensor_id": " (the grid's sensors)",
            }.get(name, f" (the grid's {name} cells)")
        )
        return f"label {name}={value!r}: {expected_values(name, known, value, where)}"
    return ""


def _need_joined_labels(words: list[str]) -> None:
    """Refuse a label split by spaces around its ``=`` (``kind = pm25``, ``kind =pm25``,
    ``kind= pm25``), naming the one word to type (t147: ``label 'kind' has no '='``, as
    if none had been typed; t134 says ``--matcher kind = pm25`` so). Raises CliError."""
    for index, word in enumerate(words):
        after = words[index + 1] if index + 1 < len(words) else ""
        if "=" not in word and after.startswith("=") and not after.startswith("=~"):
            pieces = [word, after]
            if after == "=" and index + 2 < len(words) and "=" not in words[index + 2]:
                pieces.append(words[index + 2])
        elif word.endswith("=") and word.count("=") == 1 and after and "=" not in after:
            pieces = [word, after]
        else:
            continue
        joined = "".join(pieces)
        raise CliError(
            f"label {' '.join(pieces)!r} is split by spaces: write {shell_word(joined)}, one "
            "word (quoted if its value has spaces)"
        )
