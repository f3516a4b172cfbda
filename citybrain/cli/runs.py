"""``runs``: list, show and act on playbook runs through the operator API."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from citybrain.cli.api import (
    _api,
    _cell,
    _cell_names,
    _next_deadline,
    _print_json,
    _segment,
    all_pages,
    api_command,
    api_now,
    check_free_text,
    listed,
)
from citybrain.cli.base import EXIT_OK, CliError, _ago, _local, _settings, _zone, given_argv
from citybrain.text import cell, counted, display_width, pad, shown_lines

RUNS_HEADER = ("RUN", "PLAYBOOK", "CELL", "LEVEL", "STATUS", "AGE", "NEXT DEADLINE")
# What a narrow terminal gives up first: names and clock times (ids and "in 90 s" stay),
# then whole columns, least needed to act on a run first.
RUNS_DROP_ORDER = ("AGE", "PLAYBOOK", "LEVEL")


def table_width(wide: bool) -> int | None:
    """How wide a table on stdout may be, in characters: ``COLUMNS`` when set, else the
    terminal's when stdout is one; None (every column, however wide) with ``wide`` or
    when stdout is a pipe or a file, where a script or grep wants every column."""
    if wide:
        return None
    columns = os.environ.get("COLUMNS", "").strip()
    # ASCII digits: "²".isdigit() is true, and int("²") raised (exit 70; helper t52).
    if columns.isascii() and columns.isdigit():
        # Wider than any terminal is every column, as --wide: int() of 5,000 digits
        # raised Python's "Exceeds the limit (4300 digits)" ValueError (exit 70, t190).
        return int(columns) if len(columns.lstrip("0")) <= 6 else None
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def runs_table(
    runs: list[dict[str, Any]], names: dict[str, str], now: float, width: int | None = None
) -> str:
    """The runs as a plain-text table: one row each, columns padded to their widest.

    ``width`` (characters, e.g. the terminal's): the table is narrowed to fit -- cells
    by id without their names, deadlines as "step in 90 s" without the clock time, then
    the columns of ``RUNS_DROP_ORDER`` left out, with a last line saying what was (the
    run id, cell, status and deadline always stay). None: everything, however wide."""

    def build(short: bool, dropped: tuple[str, ...]) -> tuple[list[str], int]:
        keep = [i for i, h in enumerate(RUNS_HEADER) if h not in dropped]
        rows = [
            (
                str(r.get("run_id", "")),
                str(r.get("playbook", "")),
                str(r.get("grid_cell", "")) if short else _cell(r, names),
                str(r.get("level", "")),
                _status(r, acked=True),
                _ago(now - float(r.get("created_at") or now)),
                _next_deadline(r, now, short),
            )
            for r in runs
        ]
        table = [tuple(cell(row[i]) for i in keep) for row in [RUNS_HEADER, *rows]]
        widths = [max(display_width(row[i]) for row in table) for i in range(len(keep))]
        lines = [
            "  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
        ]
        return lines, max(display_width(line) for line in lines)

    lines, widest = build(False, ())
    if width is None or widest <= width:
        return "\n".join(lines)
    dropped: tuple[str, ...] = ()
    lines, widest = build(True, dropped)
    for column in RUNS_DROP_ORDER:
        if widest <= width:
            break
        dropped += (column,)
        lines, widest = build(True, dropped)
    left_out = ", ".join([*dropped, "cell names", "clock times"])
    return "\n".join([*lines, f"(--wide adds {left_out})"])


def run_details(run: dict[str, Any], names: dict[str, str], now: float) -> str:
    """One run as labelled lines, times in local time with the zone."""
    created = run.get("created_at")
    fields = [
        ("run", run.get("run_id")),
        ("playbook", run.get("playbook")),
        ("cell", _cell(run, names)),
        ("level", run.get("level")),
        ("status", _status(run)),
        *_not_advancing(run, now),
        ("step", run.get("step") or _no_step(run)),
        ("kind", run.get("kind")),
        *_sensor_and_labels(run),
        ("department", run.get("department")),
        ("created", f"{_local(created)} ({_ago(now - created)} ago)" if created else "-"),
        ("next deadline", _next_deadline(run, now)),
        ("SLA breached", "yes" if run.get("sla_breached") else "no"),
        ("escalations", run.get("escalations", 0)),
        (
            "acknowledged",
            f"{_local(run['acknowledged_at'])} by {run.get('acknowledged_by')}"
            if run.get("acknowledged_at")
            else "no",
        ),
        (
            "resolved",
            f"{_local(run['resolved_at'])} by {run.get('resolved_by')}"
            + (f": {run['resolution']}" if run.get("resolution") else "")
            if run.get("resolved_at")
            else "no",
        ),
        ("reopened", _times(int(run.get("reopened") or 0))),
        ("alerts", f"{len(run.get('alerts', []))}: {', '.join(run.get('alerts', []))}"),
        ("reports", _reports(run.get("reports") or {})),
    ]
    if run.get("status") == "cancelled":
        fields.append(("cancelled", f"by {run.get('resolved_by')}: {run.get('resolution')}"))
    width = max(len(k) for k, _ in [*fields, ("actions", "")])
    # A note, a reporter's comment or a report id is whatever someone typed: a newline
    # or an escape sequence in it (an answer's "\x1b[2J") is shown as its escape, so
    # it can neither clear the terminal nor forge a line of the run (trial 22).
    lines = [f"{k.ljust(width)}  {cell(str(v))}" for k, v in fields]
    actions = run.get("actions") or []
    lines.append(f"{'actions'.ljust(width)}  {len(actions) or 'none'}")
    lines += [f"  {cell(_action_line(a))}" for a in actions]
    undelivered = run.get("closures_undelivered") or []
    if undelivered:
        # A closure the citizen never got: said with the command that sends it again.
        lines.append(
            f"closures not delivered  {len(undelivered)} (re-send them: "
            f"`{api_command('runs', 'resend', str(run.get('run_id')))}`)"
        )
        for c in undelivered:
            what = f"report {c.get('report_id')} ({c.get('channel')})"
            lines.append(
                f"  {cell(what)}, given up at {_local(c.get('failed_at'))}: "
                f"{cell(str(c.get('detail')))}"
            )
    return "\n".join(lines)


def undelivered_hint(runs: Sequence[Mapping[str, Any]], url: str | None = None) -> str | None:
    """The line `runs list` adds when closures of the listed runs, or of the earlier
    (superseded) runs of their groups, which it does not list, were not delivered: how
    many, of which runs, and the command that re-sends them; None when none."""
    counts: dict[str, int] = {}
    for r in runs:
        if r.get("closures_undelivered"):
            counts[str(r.get("run_id"))] = len(r["closures_undelivered"])
        earlier = r.get("closures_undelivered_earlier")
        if isinstance(earlier, Mapping):
            for rid, k in earlier.items():
                counts[f"{rid} (superseded)"] = int(k) if isinstance(k, int) else 1
    ids = list(counts)
    if not ids:
        return None
    n = sum(counts.values())
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    return cell(
        f"{counted(n, 'closure')} to citizens not delivered (their webhook call was given "
        f"up), of run{'s' if len(ids) > 1 else ''} {shown}: re-send with "
        f"`{api_command('runs', 'resend', 'RUN_ID', url=url)}`"
    )


def _sensor_and_labels(run: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``sensor`` line (a sensor run's ``sensor_id``) and the ``labels`` line (the
    run's alert labels as matchers, ``name="value"`` each, space-separated as ``silences
    list`` shows them): what ``silences add --matcher`` takes, as typed. t189: a night
    operator told to silence a noisy sensor found no sensor id in ``runs show``, only its
    cell and kind (the id was in ``--json`` alone), so a silence meant guessing the id
    from the grid. A run without labels (one stored before they were) shows neither; a
    label no silence can name (another tool's, docs/playbooks.md) is left out."""
    from playbooks.routing import LABELS, Matcher

    labels = run.get("labels")
    if not isinstance(labels, dict) or not labels:
        return []
    shown = " ".join(
        str(Matcher(str(k), "=", str(v)))
        for k, v in labels.items()
        if k in LABELS and isinstance(v, str | int | float) and str(v) != ""
    )
    sensor = labels.get("sensor_id")
    lines = [("sensor", str(sensor))] if isinstance(sensor, str) and sensor else []
    return [*lines, ("labels", shown or "-")]


def _times(n: int) -> str:
    """How often a reporter's answer reopened the run: ``no``, ``once``, ``3 times``."""
    return "no" if n == 0 else "once" if n == 1 else f"{n} times"


def _status(run: dict[str, Any], acked: bool = False) -> str:
    """The run's status, saying when a reporter's answer reopened it (``open, reopened
    once``): open again after being resolved, which ``open`` alone does not tell; and who
    with ``acked``, who acknowledged it (``open, acked by duty-1``: the table's; `runs
    show` has a line of its own for it)."""
    status = str(run.get("status", ""))
    reopened = int(run.get("reopened") or 0)
    shown = f"{status}, reopened {_times(reopened)}" if reopened else status
    if acked and run.get("acknowledged_by"):
        # t200: an acknowledged open run read as one nobody had taken (`open` both), and a
        # coordinator's "who has acknowledged what" took a `runs show` per run.
        shown += f", acked by {run['acknowledged_by']}"
    # A run the deadline check leaves as it is: its overdue step is not escalated.
    return f"{shown}, NOT ADVANCING" if run.get("not_advancing") else shown


def _no_step(run: dict[str, Any]) -> str:
    """The step line of a run between steps: a reopened run that is open waits to be
    resolved again, not for a playbook step."""
    if run.get("reopened") and run.get("status") == "open":
        return (
            f"- (reopened: waiting to be resolved again at {run.get('level')} level; the "
            "playbook's steps do not run again)"
        )
    return "-"


def _not_advancing(run: dict[str, Any], now: float) -> list[tuple[str, str]]:
    """The ``not advancing`` line of `runs show`: since when and why the worker's
    deadline check leaves the run as it is (the API's ``not_advancing``); none when
    it advances."""
    held = run.get("not_advancing")
    if not isinstance(held, dict):
        return []
    since = held.get("since")
    when = (
        f"since {_local(since)} ({_ago(now - since)} ago): "
        if isinstance(since, int | float) and not isinstance(since, bool)
        else ""
    )
    return [("not advancing", f"{when}{held.get('reason', '')}")]


def not_advancing_hint(runs: Sequence[Mapping[str, Any]], url: str | None = None) -> str | None:
    """The one line `runs list` adds when runs are not advancing (the deadline check
    leaves them as they are: an overdue step is not escalated), or None; with the
    command that says why for one of them."""
    held = [r for r in runs if r.get("not_advancing")]
    if not held:
        return None
    example = str(held[0].get("run_id", ""))
    return (
        f"{counted(len(held), 'run')} NOT ADVANCING (the deadline check leaves "
        f"{'it' if len(held) == 1 else 'them'} as "
        f"{'it is' if len(held) == 1 else 'they are'}: an overdue step is not escalated); "
        f"why: {api_command('runs', 'show', example, url=url)}"
    )


def superseded_hint(runs: Sequence[Mapping[str, Any]], url: str | None = None) -> str | None:
    """The one line `runs list` adds when the runs it lists superseded earlier ones, or
    None: how many it hides and how to see one (a run id is ``<group>.<generation>``, so
    run ``g.3`` superseded ``g.1`` and ``g.2``; the group keeps the last
    ``streams.response.KEEP_SUPERSEDED`` readable by `runs show`; trial 7: run .1,
    reopened twice and escalated, vanished from the list with no word)."""
    hidden, example = 0, ""
    for run in runs:
        group, _, generation = str(run.get("run_id", "")).rpartition(".")
        # ASCII digits: int() of "²", which isdigit() takes, raised (helper t52).
        if group and generation.isascii() and generation.isdigit() and int(generation) > 1:
            hidden += int(generation) - 1
            example = example or f"{group}.{int(generation) - 1}"
    if not hidden:
        return None
    return (
        f"{counted(hidden, 'superseded run')} not listed (a later run of the same group "
        f"replaced each): see one with {api_command('runs', 'show', example, url=url)}"
    )


def superseded_note(doc: dict[str, Any], now: float) -> str:
    """The lines `runs show` puts above a superseded run: which run replaced it, when,
    and what may still be done (the API's advice, whole)."""
    at = doc.get("superseded_at")
    when = f" at {_local(at)} ({_ago(now - at)} ago)" if isinstance(at, int | float) else ""
    # Each line one cell, as run_details' (an API's text must not drive the terminal).
    return (
        f"SUPERSEDED by run {cell(str(doc.get('superseded_by')))}{when}: shown as it was "
        f"then; it can no longer be changed.\n{cell(str(doc.get('note', '')))}"
    )


def _reports(reports: dict[str, Any]) -> str:
    """The citizen reports a run covers, ``id (status)`` each: the ids `runs answer
    --report` takes."""
    if not reports:
        return "none"
    items = ", ".join(f"{rid} ({r.get('status', '?')})" for rid, r in reports.items())
    return f"{len(reports)}: {items}"


def _action_line(action: dict[str, Any]) -> str:
    """One operator action of ``run.actions``: when, what, who, at which grid level (an
    escalation: to which), and the note if any."""
    note = action.get("note") or ""
    level = action.get("level")
    where = "" if not level else f" {'to' if action.get('action') == 'escalate' else 'at'} {level}"
    return f"{_local(action.get('at'))}  {action.get('action')} by {action.get('by')}{where}" + (
        f": {note}" if note else ""
    )


_ALREADY = {
    "ack": "acknowledged",
    "resolve": "resolved",
    "cancel": "cancelled",
    "approve": "approved",
    "reject": "rejected",
}


def already_message(
    run_id: str, already: dict[str, Any], now: float, status: str | None = None
) -> str:
    """What a repeated action says: it had already happened, by whom and when, so a
    repeat never reads like a first success; ``status`` (the run's now, from the API's
    answer) is said when the run has ended since (an ack repeated on a resolved run)."""
    at = already.get("at")
    when = f" at {_local(at)} ({_ago(now - at)} ago)" if isinstance(at, int | float) else ""
    note = f' with note "{already["note"]}"' if already.get("note") else ""
    done = _ALREADY.get(str(already.get("action")), str(already.get("action")))
    if already.get("action") == "escalate":
        # Moved from the level the operator saw, by another coordinator or the ladder.
        who = already.get("by") or "the playbook's ladder (a deadline passed)"
        return cell(
            f"unchanged: run {run_id} was already escalated from {already.get('from_level')} "
            f"to {already.get('level')} by {who}{when}{note}; escalate it again from there "
            f"with --from {already.get('level')}"
        )
    if already.get("action") == "answer":
        # The same answer again (a desk's retry): said as given already, with the run's
        # status now, as a repeated ack is (t219: it was a 409, exit 1).
        how = "satisfied" if already.get("satisfied") else "not satisfied"
        by = f" by {already['by']}" if already.get("by") else ""
        now_is = f"; run {run_id} is {status} now" if status else ""
        said = f' with comment "{already["comment"]}"' if already.get("comment") else ""
        return cell(
            f"unchanged: report {already.get('report_id')} of run {run_id} was already "
            f"answered {how}{by}{when}{said}{now_is}"
        )
    ended = {"resolve": "resolved", "cancel": "cancelled"}.get(str(already.get("action")))
    since = (
        f"; it is {status} now"
        if status in ("resolved", "cancelled", "failed") and status != ended
        else ""
    )
    return cell(
        f"unchanged: run {run_id} was already {done} by {already.get('by') or 'someone'}"
        f"{when}{note}{since}"
    )


def accepted_message(
    action: str, run_id: str, doc: dict[str, Any], satisfied: bool, url: str | None = None
) -> str:
    """``_accepted_message`` as one line, its control and bidirectional characters shown
    as escapes (``text.cell``): the parts of a report and the actor are the API's text,
    and a report id is a citizen app's (helper t52)."""
    return cell(_accepted_message(action, run_id, doc, satisfied, url))


def _accepted_message(
    action: str, run_id: str, doc: dict[str, Any], satisfied: bool, url: str | None = None
) -> str:
    """The reply to an accepted run action; ``doc`` is the API's answer. An unsatisfied
    answer says the run was reopened when the API reports it (``"reopened": true``), else
    that such an answer reopens it: the worker applies the command after the API
    replies, so the API usually cannot know yet."""
    command = doc.get("command", {})
    line = (
        f"accepted: {action} of run {run_id} by {command.get('by')} "
        f"(command {command.get('id')}); the worker that owns the run applies it"
    )
    part = doc.get("part")
    part = part if isinstance(part, dict) else {}
    also = part.get("also")
    if isinstance(also, list) and also:
        # A report covered by runs of several groups: this answer is for this run's
        # part only; each other part has its own closure, answered on its own run.
        others = ", ".join(
            f"{p.get('department')} (runs {p.get('group')}.N)" for p in also if isinstance(p, dict)
        )
        line += (
            f"; this is the {part.get('department')} part of report {part.get('report_id')}, "
            f"which also has: {others}"
        )
    if action != "answer" or satisfied:
        return line
    reopened = doc.get("reopened", command.get("reopened"))
    if reopened is True:
        return f"{line}; run {run_id} was reopened"
    if reopened is False or doc.get("reopens") is False:
        # The run is not finished (another reporter's answer to the same closure
        # reopened it already): this answer is recorded, not a second reopening.
        return (
            f"{line}; run {run_id} is not finished (reopened already, or failed), so this "
            "answer is only recorded: it does not reopen the run again "
            f"(`{api_command('runs', 'show', run_id, url=url)}` lists the answers)"
        )
    return (
        f"{line}; an unsatisfied answer reopens the run "
        f"(`{api_command('runs', 'show', run_id, url=url)}` shows it)"
    )


def resend_message(run_id: str, doc: dict[str, Any]) -> str:
    """What `runs resend` says: the closures re-sent, or that none was undelivered."""
    closures = doc.get("closures") or []
    if not closures:
        return cell(
            f"unchanged: run {run_id} has no undelivered closure (each was delivered, is "
            "being called, or was re-sent already)"
        )
    reports = ", ".join(str(c.get("report_id")) for c in closures)
    return cell(
        f"accepted: {counted(len(closures), 'closure')} of run {run_id} to be sent again "
        f"(reports {reports}); the worker that owns the run calls the replies webhook, "
        "and `runs show` lists any that fails again"
    )


def _level_now(args: argparse.Namespace) -> str:
    """The run's level as the API shows it now, for an escalate without ``--from``; the
    retry line a 503 prints then carries it as ``--from`` (the retry is the same
    request, not one from the level the first may have moved it to)."""
    level = str(_api(args, "GET", f"/runs/{_segment(args.run_id, 'RUN_ID')}")["run"]["level"])
    args.argv = [*given_argv(args), "--from", level]
    return level


def run_matchers(texts: Sequence[str]) -> tuple[list[Any], list[str]]:
    """``runs list --matcher`` texts read as ``silences add --matcher`` reads them
    (parse_silence_matchers: ``district=md-baltimore-county``, ``street=~"a|b"``, several
    comma-separated in one), and a ``warning:`` line for each that tests a label for a
    value no alert of CITYBRAIN_GRID_FILE can carry, with the closest (a typed district
    that lists nothing is a typo more often than a quiet district). CliError naming a bad
    one."""
    from playbooks.errors import PlaybookError
    from playbooks.loader import load_grid
    from playbooks.routing import (
        impossible_value,
        label_values,
        parse_silence_matchers,
        read_apart_warnings,
    )

    matchers: list[Any] = []
    lines: list[str] = []
    for text in texts:
        try:
            with read_apart_warnings() as read_apart:
                found = parse_silence_matchers(text)
        except PlaybookError as exc:
            raise CliError(f"--matcher: {exc}") from None
        lines += [f"warning: --matcher {line}" for line in read_apart]
        matchers.append((text, found))
    try:
        values = label_values(load_grid(_settings().grid_file))
    except (PlaybookError, OSError):
        values = {}  # (the runs are the worker's grid's, which this shell may not have)
    for text, found in matchers:
        for matcher in found:
            why = impossible_value(matcher, values)
            if why:
                lines.append(f"warning: --matcher {text!r}: {why}")
    return [m for _, found in matchers for m in found], lines


def matching_runs(runs: Sequence[Mapping[str, Any]], matchers: Sequence[Any]) -> list[Any]:
    """The runs whose alert labels (``labels``, as ``runs show`` gives them, a missing
    label the empty string as a silence reads it) meet every matcher."""
    return [run for run in runs if all(m.matches(run.get("labels") or {}) for m in matchers)]


def matchers_given(args: argparse.Namespace) -> list[str]:
    """``runs list``'s ``--matcher`` texts as typed ([] without one)."""
    return list(getattr(args, "matcher", None) or [])


def cmd_runs(args: argparse.Namespace) -> int:
    from playbooks.encodings import blank  # (here: charset_normalizer is slow to load)

    if args.action in ("resolve", "cancel") and blank(args.note or ""):
        # The API refuses it (400); an empty --note (a script's unset variable) is
        # known here, as an empty id is (trial 8).
        raise CliError(
            f"--note is empty: {args.action} needs a note saying why, for the audit trail"
        )
    note = getattr(args, "note", None)
    if note is not None and blank(note):
        # t156: `runs ack R --note "$NOTE"` with NOTE unset went out as an ack with no
        # note, unsaid: the same request as no --note at all. An empty or blank value is
        # refused naming its option, as every option's is (README, exit status 2) and as
        # amtool refuses an empty --comment; leaving --note out is how to act without one.
        said = "empty" if not note else "blank"
        raise CliError(
            f"--note is {said}: give a note, or leave --note out to {args.action} without one"
        )
    comment = getattr(args, "comment", None)
    if comment is not None and blank(comment):
        # The same slip as an empty --note: `--comment "$COMMENT"` unset relayed an answer
        # with no comment, unsaid (the API takes "" as none).
        said = "empty" if not comment else "blank"
        raise CliError(
            f"--comment is {said}: give the reporter's comment, or leave --comment out to "
            "relay the answer without one"
        )
    for option, text in (("--note", note), ("--comment", comment)):
        if text is not None:
            check_free_text(option, text)  # (the API's rule, said before it is asked)

    matchers: list[Any] = []
    if args.action == "list" and args.matcher:
        # t200: a coordinator's flood across two districts had no way to list one
        # district's or street's runs, nor to escalate them in a loop; each run keeps its
        # alert's labels, which runs show gives as matchers.
        matchers, warnings = run_matchers(args.matcher)
        for line in warnings:
            print(f"citybrain: {line}", file=sys.stderr)
    if args.action == "list":
        # Every page (t186: the list is paged), each a worker's answer, even for --json.
        doc = all_pages(args, "/runs" + (f"?status={args.status}" if args.status else ""), "runs")
        every = listed(doc, "runs", args.url, "/runs")
        if not args.json:
            for line in doc.get("warnings") or ():
                # Runs some workers could not give (t194): the list, and so --ids and the
                # matches, are not all of them.
                print(f"citybrain: warning: {shown_lines(str(line))}", file=sys.stderr)
        chosen = every
        if args.active:
            # t200: `--status open` is one status (a run whose steps ran out); a flood
            # night's runs waiting for an acknowledgement were not in it.
            from playbooks.machine import TERMINAL

            ended = {status.value for status in TERMINAL}
            chosen = [run for run in chosen if run.get("status") not in ended]
        if matchers:
            chosen = matching_runs(chosen, matchers)
        if args.active or matchers:
            doc = {**doc, "runs": chosen}
        if args.ids:
            for run in doc["runs"]:
                print(run.get("run_id", ""))
            return EXIT_OK
    elif args.action == "show":
        doc = _api(args, "GET", f"/runs/{_segment(args.run_id, 'RUN_ID')}")
    elif args.action == "answer":
        body = {"report_id": args.report, "satisfied": args.satisfied, "comment": args.comment}
        doc = _api(args, "POST", f"/runs/{_segment(args.run_id, 'RUN_ID')}/answer", body)
    else:
        body = {"note": args.note or ""}
        if args.action == "escalate":
            body["from_level"] = args.from_level or _level_now(args)
        doc = _api(args, "POST", f"/runs/{_segment(args.run_id, 'RUN_ID')}/{args.action}", body)
    if args.json:
        _print_json(doc)
        return EXIT_OK
    now, names = api_now(), _cell_names()
    if args.action == "list":
        runs = listed(doc, "runs", args.url, "/runs")
        if matchers or args.active:
            given = " ".join(
                [
                    *(["--active"] if args.active else []),
                    *(f"--matcher {cell(t)}" for t in matchers_given(args)),
                ]
            )
            print(
                f"{len(runs):,} of {counted(len(every), 'run')} match {given}; times in local "
                f"time ({_zone()})"
            )
        else:
            print(f"{counted(len(runs), 'run')}; times in local time ({_zone()})")
        hints = (
            not_advancing_hint(runs, args.url),
            superseded_hint(runs, args.url),
            undelivered_hint(runs, args.url),
        )
        for hint in hints:
            if hint:
                print(hint)
        if runs:
            print(runs_table(runs, names, now, table_width(args.wide)))
    elif args.action == "show":
        if doc.get("superseded_by"):
            print(superseded_note(doc, now))
        print(run_details(doc["run"], names, now))
    elif args.action == "resend":
        print(resend_message(args.run_id, doc))
    elif "already" in doc:
        status = doc.get("status")
        print(
            already_message(
                args.run_id, doc["already"], now, status if isinstance(status, str) else None
            )
        )
    else:
        satisfied = getattr(args, "satisfied", True)
        print(accepted_message(args.action, args.run_id, doc, satisfied, args.url))
    return EXIT_OK
