"""``silences``: list, add and expire silences through the operator API."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import TYPE_CHECKING, Any

from citybrain.text import agreeing, cell, counted, display_width, pad, shown_lines

if TYPE_CHECKING:
    from playbooks.grid import Grid

from citybrain.cli.api import (
    _api,
    _print_json,
    _segment,
    all_pages,
    api_command,
    api_now,
    check_free_text,
    check_text,
    listed,
)
from citybrain.cli.base import EXIT_OK, CliError, _ago, _local, _settings, _zone


def silence_duration(text: str) -> float:
    """``--duration`` in seconds: a Prometheus duration (30m, 2h, 1h30m, 1d) above zero,
    checked here so the user hears it before the API is asked. Raises CliError."""
    from playbooks.routing import MAX_SILENCE_SECONDS
    from playbooks.schema import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        if "out of range" in str(exc):  # past Prometheus's 292 years: past 100 too
            seconds = math.inf
        else:
            raise CliError(
                f"--duration: {exc}; e.g. 30m, 2h, 1h30m or 7d (a silence always ends: "
                f"expire it early with `{api_command('silences', 'expire', 'SILENCE_ID')}`)"
            ) from None
    if seconds <= 0:
        raise CliError(f"--duration is {text!r}, expected more than 0, e.g. 30m or 2h")
    if seconds > MAX_SILENCE_SECONDS:
        # The API's limit, said before it is asked (t48: 101y passed here, then HTTP 400).
        raise CliError(
            f"--duration is {text!r}: more than 100 years, the longest silence the operator "
            "API adds; e.g. 30m, 2h or 7d"
        )
    return seconds


def silence_window_args(
    duration: str | None, start: str | None, end: str | None
) -> dict[str, str | float]:
    """The request's time fields from ``--duration``, ``--start`` and ``--end`` (amtool
    silence add's; the parser takes ``--end`` or ``--duration``, not both: amtool lets
    --end win silently), checked here so the user hears of a fault before the API is
    asked: each time
    read as Alertmanager's API reads ``startsAt``/``endsAt`` (RFC 3339, no zone is UTC),
    an end not after its start refused as Alertmanager refuses it ("start time must be
    before end time"). A start in the past is sent as given: the worker moves it to now,
    as Alertmanager does, and refuses an end in the past. Raises CliError."""
    from streams.events import am_epoch

    body: dict[str, str | float] = {}
    times: dict[str, float] = {}
    for option, field, text in (("--start", "starts_at", start), ("--end", "ends_at", end)):
        if text is None:
            continue
        check_text(option, text)
        if not text.strip():
            raise CliError(f"{option} is empty: give a time, e.g. 2026-12-08T22:00:00Z")
        read = am_epoch(text)
        if isinstance(read, str):
            raise CliError(
                f"{option} is {text!r}: {read}; e.g. 2026-12-08T22:00:00Z or "
                "2026-12-08T23:00:00+01:00"
            )
        times[option], body[field] = read, text
    if duration is not None:
        silence_duration(duration)
        body["duration"] = duration
    if "--start" in times and "--end" in times and not times["--end"] > times["--start"]:
        raise CliError(
            f"--end {end!r} is not after --start {start!r} (Alertmanager: start time must "
            "be before end time)"
        )
    return body


def _check_matchers(texts: list[str]) -> list[str]:
    """Each ``--matcher`` in Alertmanager's syntax, read as the silence API reads it
    (parse_silence_matchers); CliError naming the first bad one. Returns a ``warning:``
    line per matcher taken as Alertmanager 0.25 reads it that 0.27's UTF-8 matchers read
    otherwise (routing.read_apart)."""
    from playbooks.errors import PlaybookError
    from playbooks.routing import parse_silence_matchers, read_apart_warnings

    lines: list[str] = []
    for text in texts:
        # A byte that is not UTF-8 said as the API's body fields say it (t197: the
        # matcher's own check named the lone surrogate Python keeps it as).
        check_text("--matcher", text)
        try:
            with read_apart_warnings() as read_apart:
                parse_silence_matchers(text)
        except PlaybookError as exc:
            raise CliError(f"--matcher: {exc}") from None
        lines += [f"warning: --matcher {line}" for line in read_apart]
    return lines


def _grid_silence_warnings(texts: list[str]) -> list[str]:
    """silence_warnings against CITYBRAIN_GRID_FILE; none when it cannot be read (the
    silence is for the worker's grid, which this shell may not have)."""
    from playbooks.errors import PlaybookError
    from playbooks.loader import load_grid

    try:
        grid = load_grid(_settings().grid_file)
    except (PlaybookError, OSError):
        return []
    return silence_warnings(texts, grid)


# The worker's 201 answer words the catch-all warning so (streams/api.py, t197).
_WORKER_CATCH_ALL = "matchers: this silence matches every alert"


def worker_warnings(doc: dict[str, Any], texts: list[str], said: list[str]) -> list[str]:
    """The worker's warning that the silence matches every alert (its 201 answer's
    ``warnings``, judged by the worker's own grid), as a ``warning:`` line, unless
    ``said`` (this command's own lines) already says it. t203: the line came from this
    shell's grid alone, so with CITYBRAIN_GRID_FILE unreadable here (a worker on another
    machine) ``alert_id=~".+"`` was added without a word, the answer's warning dropped.
    The answer's other warnings (0.27's readings) are said by _check_matchers already."""
    found = doc.get("warnings")
    if not isinstance(found, list) or any("this silence matches every alert" in s for s in said):
        return []
    given = " ".join(f"--matcher {text!r}" for text in texts)
    prefix = _WORKER_CATCH_ALL.split(": ", 1)[0] + ": "
    return [
        f"warning: {given}: {w.removeprefix(prefix)}"
        for w in found
        if isinstance(w, str) and w.startswith(_WORKER_CATCH_ALL)
    ][:1]


def silence_warnings(texts: list[str], grid: Grid) -> list[str]:
    """One ``warning:`` line per ``--matcher`` (already checked by _check_matchers) that
    tests a label for a value no alert can carry in ``grid``, by the definition `playbooks
    check` holds route matchers to: ``kind="road_ice"`` silences nothing,
    ``severity!="urgent"`` everything; else one line when the matchers, each possible,
    meet no one alert together (alert_labels.never_together). Alertmanager accepts such a
    silence (it cannot know which values will come), and so does citybrain; the line is
    for a typo."""
    from playbooks.alert_labels import never_together
    from playbooks.routing import (
        impossible_value,
        label_values,
        parse_matchers,
        read_apart_warnings,
        silence_matches_every_alert,
    )

    values = label_values(grid)
    lines = []
    every = []
    for text in texts:
        with read_apart_warnings():  # (said by _check_matchers already, not logged twice)
            matchers = parse_matchers(text)
        for matcher in matchers:
            why = impossible_value(matcher, values)
            if why:
                lines.append(f"warning: --matcher {text!r}: {why}")
        every += matchers
    given = " ".join(f"--matcher {text!r}" for text in texts)
    # Each matcher matching every alert (t197), as playbooks check says of a route.
    catch_all = silence_matches_every_alert(every, values)
    if catch_all:
        lines.append(f"warning: {given}: {catch_all}")
    if not lines:
        # Each may meet some alert, and all of them together none: a silence is their
        # AND (t151: sensor_id of a water gauge with kind="pm25" was taken without a word).
        why = never_together(every, grid)
        if why:
            what = (
                "this matcher"
                if len(every) == 1
                else "no one alert meets them all, so this silence"
            )
            lines.append(f"warning: {given}: {what} never matches: {why}")
    return lines


def _silence_state(silence: dict[str, Any], now: float) -> str:
    """active, pending (starts later), expired, or unreadable: what the worker does with it."""
    if silence.get("unreadable"):
        return "unreadable"
    starts, ends = silence.get("starts_at"), silence.get("ends_at")
    if isinstance(ends, int | float) and ends <= now:
        return "expired"
    if isinstance(starts, int | float) and starts > now:
        return "pending"
    return "active"


def matchers_shown(silence: dict[str, Any]) -> str:
    """A listed silence's matchers on one line, space-separated as amtool shows them,
    each a table ``cell`` (an ESC or U+202E in a value shown as its escape); a stored
    value that is no list (an unreadable silence's null, number or text) is shown as JSON
    writes it. t160: `silences list` exited 70 for every listing ("'NoneType' object is
    not iterable") while one stored silence's matchers were null, and `silences expire`
    of it likewise, after the worker had expired it; and `silences add` and `expire`
    printed a matcher's escape sequences raw to the terminal (the table did not)."""
    matchers = silence.get("matchers")
    if isinstance(matchers, list):
        return " ".join(cell(str(m)) for m in matchers)
    return "-" if matchers is None else cell(json.dumps(matchers, ensure_ascii=False))


def _ends(silence: dict[str, Any], now: float) -> str:
    ends = silence.get("ends_at")
    if ends is None:
        return "-"
    if not isinstance(ends, int | float) or isinstance(ends, bool) or not math.isfinite(ends):
        return _local(ends)
    delta = ends - now
    return f"{_local(ends)} ({'in ' + _ago(delta) if delta > 0 else _ago(-delta) + ' ago'})"


def silences_table(silences: list[dict[str, Any]], now: float) -> str:
    """Silences as a plain-text table, the columns of amtool's silence query (matchers in
    Alertmanager syntax, times in local time) plus each one's state."""
    order = {"active": 0, "pending": 1, "expired": 2, "unreadable": 3}

    def rank(x: dict[str, Any]) -> tuple[int, float]:
        state, ends = _silence_state(x, now), x.get("ends_at")
        ends = float(ends) if isinstance(ends, int | float) else 0.0
        # Those in force: soonest to end first; the ended ones: latest first.
        return order[state], -ends if state == "expired" else ends

    ranked = sorted(silences, key=rank)
    header = ("ID", "STATE", "MATCHERS", "STARTS", "ENDS", "BY", "REASON")
    rows = [
        (
            str(x.get("id", "")),
            _silence_state(x, now),
            matchers_shown(x),
            _local(x["starts_at"]) if x.get("starts_at") is not None else "-",
            _ends(x, now),
            str(x.get("author", "")),
            str(x.get("unreadable") or x.get("reason", "")),
        )
        for x in ranked
    ]
    table = [header, *(tuple(cell(c) for c in row) for row in rows)]
    widths = [max(display_width(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


def already_expired_message(
    silence_id: str, silence: dict[str, Any], already: dict[str, Any], now: float
) -> str:
    """What expiring a silence that had already ended says: who expired it (or that it
    ran out) and when, so it never reads like a first expiry."""
    matchers = matchers_shown(silence)
    how = f"been expired by {cell(str(already['by']))}" if already.get("by") else "ended"
    ended = _ends(silence, now)
    return f"unchanged: silence {silence_id} had already {how}: {matchers}, ended {ended}"


def firing_matched_line(doc: dict[str, Any], silence_id: str, url: str | None = None) -> str:
    """What the API said of a new silence's reach (``firing_matched`` of ``firing``
    alerts firing now), as one line; "" when it did not say (an older worker). Said
    plainly, every alert when it matches all: ``alert_id=~".+"`` is a valid silence."""
    matched, firing = doc.get("firing_matched"), doc.get("firing")
    if not isinstance(matched, int) or not isinstance(firing, int):
        return ""
    if firing and matched == firing:
        return (
            f"it matches every alert firing now ({counted(firing, 'alert')}): check its "
            f"matchers, or expire it: `{api_command('silences', 'expire', silence_id, url=url)}`"
        )
    return f"it matches {matched:,} of the {counted(firing, 'alert')} firing now"


def open_runs_line(args: argparse.Namespace) -> str:
    """For a silence just added: how many runs not ended carry labels its matchers all
    match, and that the silence does not stop their escalation ladders (docs/playbooks.md,
    a silence made for an alert already routed), with the `runs list --matcher` that lists
    them; "" when none does or the runs cannot be read (the silence is added: this line
    only helps). t200: a coordinator muting a flooded district for an hour was told "it
    matches 0 of the 0 alerts firing now", and its open runs went on escalating."""
    from playbooks.machine import TERMINAL
    from playbooks.routing import parse_silence_matchers, read_apart_warnings

    try:
        runs = listed(all_pages(args, "/runs", "runs"), "runs", args.url, "/runs")
    except CliError:
        return ""
    with read_apart_warnings():  # (said when the matchers were checked)
        matchers = [m for text in args.matcher for m in parse_silence_matchers(text)]
    ended = {status.value for status in TERMINAL}
    hit = [
        run
        for run in runs
        if isinstance(run, dict)
        and run.get("status") not in ended
        and all(m.matches(run.get("labels") or {}) for m in matchers)
    ]
    if not hit:
        return ""
    listing = api_command(
        "runs",
        "list",
        "--active",
        *(w for text in args.matcher for w in ("--matcher", text)),
        url=args.url,
    )
    # Said of one run as of one (t209: "1 run not ended carry labels … cancel them").
    n = len(hit)
    them, their = agreeing(n, "it", "them"), agreeing(n, "its", "their")
    alerts = agreeing(n, "alert's", "alerts'")
    return (
        f"{counted(n, 'run')} not ended {agreeing(n, 'carries', 'carry')} labels it "
        f"matches: a silence holds {their} {alerts} further "
        f"notifications, not {their} escalation {agreeing(n, 'ladder', 'ladders')}; "
        f"acknowledge, resolve or cancel {them} to stop {agreeing(n, 'that', 'those')} "
        f"(`{listing}` lists {them})"
    )


def cmd_silences(args: argparse.Namespace) -> int:

    warnings: list[str] = []
    window: dict[str, str | float] = {}
    if args.action == "add":
        window = silence_window_args(args.duration, args.start, args.end)
        warnings = _check_matchers(args.matcher)
        from playbooks.encodings import blank  # (here: charset_normalizer is slow to load)

        if blank(args.reason):  # only characters that show nothing is empty too (t137)
            raise CliError("--reason is empty: say why, for the audit trail")
        check_free_text("--reason", args.reason)
        warnings += _grid_silence_warnings(args.matcher)
    if args.action == "list":
        # Every page (t186: the list is paged), each a worker's answer, even for --json.
        doc = all_pages(args, "/silences", "silences")
    elif args.action == "expire":
        doc = _api(args, "DELETE", f"/silences/{_segment(args.silence_id, 'SILENCE_ID')}")
    else:
        doc = _api(
            args,
            "POST",
            "/silences",
            {"matchers": args.matcher, **window, "reason": args.reason},
        )
    if args.action == "add" and isinstance(doc, dict):
        warnings += worker_warnings(doc, args.matcher, warnings)
    # After the add succeeded: the warning qualifies a silence that exists.
    for line in warnings:
        # As every command's warning (t48), escapes shown, not played.
        print(f"citybrain: {shown_lines(line)}", file=sys.stderr)
    if args.json:
        _print_json(doc)
        return EXIT_OK
    now = api_now()
    if args.action == "list":
        silences = listed(doc, "silences", args.url, "/silences")
        active = sum(_silence_state(x, now) == "active" for x in silences)
        print(
            f"{counted(len(silences), 'silence')}, {active} active; times in local time ({_zone()})"
        )
        if silences:
            print(silences_table(silences, now))
        return EXIT_OK
    silence = doc.get("silence", {})
    matchers = matchers_shown(silence)
    if args.action == "add":
        print(
            f"silence {silence.get('id')} added by {cell(str(silence.get('author')))}: {matchers}, "
            f"until {_ends(silence, now)}"
        )
        line = firing_matched_line(doc, str(silence.get("id")), args.url)
        if line:
            print(line)
        line = open_runs_line(args)
        if line:
            print(line)
    elif "already" in doc:
        print(already_expired_message(args.silence_id, silence, doc["already"], now))
    else:
        print(f"silence {args.silence_id} expired: {matchers}, ended {_ends(silence, now)}")
    return EXIT_OK
