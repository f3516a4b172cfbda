"""``campaign``: the campaign report over a period's runs and steps."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from citybrain.commands import (
    command_line,
    home_dir,
    written_path,
)
from citybrain.errors import json_error_at, utf8_text
from citybrain.files import write_output
from citybrain.text import agreeing, counted, day, warn
from playbooks.encodings import nul_block
from playbooks.errors import did_you_mean, shown
from streams.events import json_int, text_fault

if TYPE_CHECKING:
    from citybrain.rehearse import Incident
    from playbooks.grid import Grid

from citybrain.cli.base import (
    EXIT_FAILED,
    CliError,
    _need_file,
    _settings,
    check_output,
    need_all,
)
from citybrain.cli.prefixes import prefixed_settings
from citybrain.cli.runs import table_width
from streams.errors import shown_path

# Days a date option takes by name, any case, as UTC days from today's (helper brief
# t47: the README's `--from TODAY --to TOMORROW`, typed as it stands, was refused).
DAY_WORDS = {"yesterday": -1, "today": 0, "tomorrow": 1}
DATE_FORM = "expected a date like 2024-05-26, or today, yesterday or tomorrow (UTC days)"


def takes_instant(text: str) -> bool:
    """Whether ``--from``/``--to`` take ``text`` (a day's word, a date or an ISO time
    from the year 1 to 9999 in UTC); the parser's hints check a value they suggest."""
    try:
        _instant(text, "--from")
    except CliError:
        return False
    return True


def _instant(text: str, flag: str, now: datetime | None = None) -> float:
    """``2024-05-26``, an ISO 8601 time (UTC when no zone) or a day's name
    (``DAY_WORDS``: the start of that UTC day, ``now`` being the clock's) -> epoch
    seconds. Raises CliError naming ``flag`` and ``text``."""
    from datetime import UTC, datetime, timedelta

    word = text.strip().lower()
    if word in DAY_WORDS:
        day = (now or datetime.now(UTC)).astimezone(UTC).date() + timedelta(DAY_WORDS[word])
        return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    from streams.events import epoch_seconds_fault, iso_instant

    # The worker's form (a lowercase z was refused here; 2024-05-26X10:00 and week dates
    # were taken: helper t52), or a date alone; no zone is UTC.
    parsed = iso_instant(text)
    if parsed is None:
        from playbooks.errors import did_you_mean

        raise CliError(f"{flag} is {text!r}, {DATE_FORM}{did_you_mean(word, DAY_WORDS)}")
    try:
        # An instant outside UTC's years 1-9999 (0001-01-01T00:00+01:00) passed here and
        # was "year 0 is out of range", exit 70, when the report printed it; so did
        # 9999-12-31T23:59:59.999999, whose epoch seconds round up to the year 10000.
        at = parsed.astimezone(UTC).timestamp()
    except OverflowError:
        at = math.inf
    if epoch_seconds_fault(at) is not None:
        raise CliError(f"{flag} is {text!r}: outside the years 1 to 9999 in UTC, {DATE_FORM}")
    return at


def _read_records(path: Path) -> tuple[list[dict[str, object]], list[str]]:
    """Step and audit records exported as JSON lines (one record a line) or a JSON list,
    and where each is (``file:line``, ``file: record i of the list``). CliError naming
    ``file:line`` for bytes that are not UTF-8, JSON that does not parse or nests too
    deeply, and a record that is not an object (skipped silently before)."""
    text = utf8_text(path)
    # What the file should be, said with the parse error (t40: a CSV given by mistake
    # was only "not a JSON record: Expecting value").
    expected = (
        "--input takes step and audit records as JSON lines (one object a line) or a JSON "
        f"list, as `{command_line('campaign', 'report', '--prefix', 'P', '--export', 'FILE')}`"
        " writes them"
    )

    def parse(chunk: str, line: int, whole: bool) -> object:
        nul = chunk.find("\x00")
        if nul >= 0:
            # t180: an export a crash left padded with NULs was "Expecting value" there.
            at = chunk.count("\n", 0, nul)
            column = nul - (chunk.rfind("\n", 0, nul) + 1) + 1
            if block := nul_block(chunk, nul):
                raise CliError(f"{path}:{line + at}: {block} from column {column}, not text")
            raise CliError(f"{path}:{line + at}: byte 0x00 (NUL) at column {column}: not text")
        try:
            # An integer past the 4,300 digits int() converts was a ValueError (exit 70).
            return json.loads(chunk, parse_int=json_int)
        except json.JSONDecodeError as exc:
            json_line, json_end = json_error_at(exc)
            if not whole:
                json_end = json_end.replace("of the file", "of the line")  # one JSON line's end
            raise CliError(
                f"{path}:{line + json_line - 1}: not a JSON record ({exc.msg}{json_end}): "
                f"{expected}"
            ) from None
        except RecursionError:
            raise CliError(f"{path}:{line}: not a JSON record: nested too deeply") from None

    text = text.removeprefix("\ufeff")
    if text.lstrip().startswith("["):
        loaded = parse(text, 1, whole=True)
        listed: list[dict[str, object]] = []
        places: list[str] = []
        for i, record in enumerate(loaded if isinstance(loaded, list) else [loaded]):
            if not isinstance(record, dict):
                raise CliError(
                    f"{path}: record {i} of the list is {shown(record)}, expected an object"
                )
            _record_schema(record, f"{path}: record {i} of the list")
            listed.append(record)
            places.append(f"{path}: record {i} of the list")
        return listed, places
    records = []
    lines: list[str] = []
    # Lines end in \n, \r\n or a lone \r (an old Mac export: t57; JSON holds no raw CR
    # in a string, so one is only ever a line's end or blank): str.splitlines() also
    # broke at U+2028, U+2029 and U+0085, which JSON strings may hold raw (orjson writes
    # them so; trial 26).
    for number, row in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        # Exports joined with `cat` (each from `campaign report --export`, or an editor's
        # that starts with a byte order mark): a mark starting a line is no record's
        # (t180: json said "Unexpected UTF-8 BOM (decode using utf-8-sig)" at it).
        row = row.removeprefix("\ufeff")
        if not row.strip():
            continue
        doc = parse(row, number, whole=False)
        if not isinstance(doc, dict):
            raise CliError(f"{path}:{number}: the record is {shown(doc)}, expected an object")
        _record_schema(doc, f"{path}:{number}")
        records.append(doc)
        lines.append(f"{path}:{number}")
    return records, lines


RECORD_SCHEMAS = ("step/1", "audit/1")


def _record_schema(doc: dict[str, object], where: str) -> None:
    """CliError unless ``doc`` is a step or audit record (its ``schema``): any other
    object ({"a": 1}) was read as a record about no run and left out silently; nor one
    holding a lone surrogate (JSON's ``"\\ud800"``, no character: t169, the report's
    tables and HTML could not be written with it, exit 70 "a bug")."""
    import reprlib

    fault = text_fault(doc)
    if fault is not None:
        raise CliError(f"{where}: {fault}")

    schema = doc.get("schema")
    if schema not in RECORD_SCHEMAS:
        shown = reprlib.repr(schema) if "schema" in doc else "missing"
        raise CliError(
            f'{where}: field "schema" is {shown}, expected one of '
            f"{', '.join(RECORD_SCHEMAS)}{did_you_mean(schema, RECORD_SCHEMAS)} "
            "(a record of the steps or audit topic; docs/citizens.md)"
        )


def write_campaign(
    report: dict[str, Any],
    out: Path | None,
    title: str,
    as_json: bool = False,
    wide: bool = False,
) -> None:
    """The report as JSON (``.json``), HTML (``.html``) or, without ``out``, tables on
    stdout (JSON with ``as_json``) as wide as the terminal (every column with ``wide``)."""

    from citybrain.campaign import render_html, render_text

    if out is None:
        width = table_width(wide)
        print(json.dumps(report, indent=2) if as_json else render_text(report, width))
    elif out.suffix.lower() == ".html":
        write_output(out, render_html(report, title), "--out")
    elif out.suffix.lower() == ".json":
        write_output(out, json.dumps(report, indent=2) + "\n", "--out")
    else:
        raise CliError(f"--out is {str(out)!r}, expected a .html or .json file")


def cmd_campaign(args: argparse.Namespace) -> int:
    from citybrain.campaign import CampaignError, campaign_report
    from playbooks.loader import load_grid

    start, end = _instant(args.start, "--from"), _instant(args.end, "--to")
    if not end > start:
        # The period is [--from, --to): one day is `--from D --to` the day after (t48:
        # `--from today --to today` was refused without saying so).
        raise CliError(
            f"--to {args.end} is not after --from {args.start}: the period ends before --to "
            "(one day is --from that day --to the next, e.g. --from today --to tomorrow)"
        )
    check_output(
        "--out",
        args.out,
        [("--input", args.input)],
        "leave out --out for tables on stdout",
        suffixes=(".html", ".json"),
    )
    check_output(
        "--export",
        args.export,
        [("--input", args.input), ("--out", args.out)],
        suffixes=(".jsonl",),
    )
    checks: list[Callable[[], None]] = []
    if args.input:
        checks.append(
            lambda: _need_file(Path(args.input), "--input", kind="JSON lines", expects=("export",))
        )
    if args.grid:
        checks.append(lambda: _need_file(Path(args.grid), "--grid", kind="YAML", expects=("grid",)))
    need_all(checks)
    settings = _settings()
    if args.input:
        records, places = _read_records(Path(args.input))
    else:
        from citybrain.demo import read_topic, topic_records

        # The prefix chosen as `deadletters` chooses it, the running demo's by default
        # (t36: the default prefix was read, unsaid, while a demo ran).
        roles = ("steps", "audit")
        settings = prefixed_settings(args, settings, roles)
        messages = [m for role in roles for m in read_topic(settings, settings.topic(role))]
        records, places = topic_records(messages)
        if args.export:
            write_output(args.export, "".join(json.dumps(r) + "\n" for r in records), "--export")
            # On stderr: stdout may be the report's JSON (--json).
            # Named absolute, as every written file (t98: the path as given, relative).
            said = f"{counted(len(records), 'record')} exported to {written_path(args.export)}"
            print(said, file=sys.stderr)
    grid_file = Path(args.grid) if args.grid else settings.grid_file
    grid = load_grid(grid_file)
    try:
        report = campaign_report(records, {c: grid.path(c) for c in grid.cells}, start, end)
    except CampaignError as exc:
        # Named where the record is (trial 13: "record 0 (None): …", which line?).
        if exc.index is not None and exc.index < len(places):
            raise CliError(f"{places[exc.index]}: {exc.detail}") from None
        raise CliError(str(exc)) from None
    if not report["runs_in_period"]:
        # Named as the prefix read (the running demo's when none was given): t79 walked
        # `campaign report --from 2024-05-27 --to 2024-05-28` and read "in the topics of
        # were created", the prefix left blank.
        source = args.input or f"the topics of prefix {settings.topic_prefix!r}"
        raise CliError(
            empty_period(report, args.start, args.end, source, len(records), bool(args.input)),
            EXIT_FAILED,
        )
    unplaced = report["unplaced_cells"]
    if unplaced:
        listed = ", ".join(f"{c} ({counted(n, 'run')})" for c, n in list(unplaced.items())[:8])
        more = f" and {len(unplaced) - 8} more" if len(unplaced) > 8 else ""
        warn(
            f"the grid {shown_path(grid_file)} lacks the cells of "
            f"{counted(sum(unplaced.values()), 'run')}: {listed}{more}; "
            f"{agreeing(sum(unplaced.values()), 'it is', 'they are')} counted only "
            'at the city level, as city "?" (give --grid the grid the worker ran with)',
        )
    out = Path(args.out) if args.out else None
    title = f"citybrain campaign report {args.start} to {args.end}"
    write_campaign(report, out, title, args.json, args.wide)
    if out is not None:
        rows = counted(len(report["rows"]), "row")
        print(f"campaign report written to {written_path(out)} ({rows})")
    return 0


def _load_incidents(
    path: Path,
    grid: Grid,
    units: Mapping[str, Any],
    on_error: str,
    bucket_seconds: float,
    max_future_skew: float = 300.0,
) -> list[Incident]:
    """Canonical incident CSV (docs/events.md) read as replay reads it and judged as the
    worker judges it (citybrain.rehearse ``read_incidents``: ``file:line`` errors; a row
    the worker would dead-letter is a bad row, one more than ``max_future_skew`` s ahead
    of the clock too). Every bad row is listed: with
    ``--on-error stop`` (CliError after the list), or skipped with ``--on-error skip``.
    Reports the worker would drop as re-sent (``citybrain.resent``) are left out and said;
    a department from the ``department`` column, else (or when empty) from the worker's
    own text classifier; one that neither the units profile nor the classifier knows is
    warned of, with the nearest known name (any case: ``POLICE`` -> ``police``)."""
    from citybrain.rehearse import RehearsalError, nearest, read_incidents
    from streams.csvfile import BadRow
    from streams.departments import DepartmentClassifier

    known = DepartmentClassifier.departments() | (set(units) - {"default"})
    fitted: list[DepartmentClassifier] = []

    def classify(texts: list[str]) -> list[str]:
        # Fitted only when a row has no department (a few seconds' work otherwise spent
        # on every rehearsal).
        if not fitted:
            cache = home_dir(os.environ) / "models"  # as the worker keeps it
            fitted.append(DepartmentClassifier.from_training_file(cache_dir=cache))
        return fitted[0].predict(texts)

    bad: list[BadRow] = []
    try:
        # Every row is read either way, so --on-error stop lists all the bad ones at once.
        found = read_incidents(
            path,
            grid.cells,
            known,
            classify,
            bad.append,
            grid,
            bucket_seconds,
            max_future_skew,
        )
    except RehearsalError as exc:
        raise CliError(f"--incidents {exc}: fix the file") from None
    for row in bad:
        print(f"{'skipped' if on_error == 'skip' else 'bad row'} {row}", file=sys.stderr)
    if bad and on_error == "stop":
        raise CliError(
            f"--incidents {path}: {counted(len(bad), 'bad row')} (listed above; nothing was "
            "rehearsed): fix the file, or give --on-error skip"
        )
    for line in found.duplicates[:10]:
        warn(f"--incidents {line}")
    if len(found.duplicates) > 10:
        warn(
            f"--incidents {shown_path(path)}: {len(found.duplicates) - 10} more duplicate report "
            "ids left out",
        )
    for name, lines in found.unknown_departments.items():
        near = nearest(name, known, cutoff=0.5)
        hint = f" (did you mean {near!r}?)" if near else ""
        lines = sorted(lines)
        where = ", ".join(str(n) for n in lines[:5]) + (" …" if len(lines) > 5 else "")
        warn(
            f"--incidents {shown_path(path)}: department {name!r} (line(s) {where}) "
            f"is none the units profile or the classifier knows{hint}; its reports are "
            "rehearsed with the units profile's default pool. Known: " + ", ".join(sorted(known)),
        )
    if bad or found.duplicates:
        print(
            f"--incidents {path}: {counted(len(found.incidents), 'report')} rehearsed, "
            f"{counted(len(bad), 'bad row')} skipped, "
            f"{counted(len(found.duplicates), 'duplicate report id')} left out",
            file=sys.stderr,
        )
    return found.incidents


def empty_period(
    report: dict[str, Any],
    start: str,
    end: str,
    source: str,
    records: int = 0,
    from_file: bool = False,
) -> str:
    """Why a campaign report has nothing to say: no run was created in the period; what
    ``source`` (the topics' prefix or, ``from_file``, the input file) does cover, and a
    period that holds its runs. ``records``: how many records ``source`` held."""
    from datetime import UTC, timedelta

    held = report["input"]
    by_creation = "runs are counted by the date they were created"
    if held["runs"] == 0:
        what = (
            f"{counted(records, 'record')}, none a run_created step with a grid_cell"
            if records
            else "no records"
        )
        fix = (
            "export the records of a replay that ran (campaign report --prefix P --export FILE)"
            if from_file
            else "give --prefix of a replay that ran (the demo prints its own) or --input"
        )
        return (
            f"no runs in {source} at all ({what}), so none from {start} to {end} "
            f"({by_creation}); {fix}; nothing was written"
        )
    first = datetime.fromtimestamp(held["first_created"], UTC)
    last = datetime.fromtimestamp(held["last_created"], UTC)
    when = (
        f"was created at {day(first)} {first:%H:%M} UTC"
        if held["runs"] == 1
        else f"were created from {day(first)} {first:%H:%M} to {day(last)} {last:%H:%M} UTC"
    )
    try:
        after = day(last + timedelta(days=1))
    except OverflowError:  # a run on 9999-12-31: the last instant a date can show
        after = f"{day(last)}T23:59:59.9999Z"  # .999999 is no float: it is the next year
    return (
        f"no run was created from {start} to {end} ({by_creation}, when the worker made them, "
        f"not the data's event times); the {counted(held['runs'], 'run')} in {source} {when}: "
        f"e.g. --from {day(first)} --to {after}; nothing was written"
    )
