"""``demo`` and ``report``: the demo's run and its summary and
what-if report."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from citybrain.cli.base import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SERVICE,
    CliError,
    _need_file,
    _settings,
    check_output,
    check_worker_files,
    need_all,
)
from citybrain.cli.feeds import _need_feed
from citybrain.cli.prefixes import prefixed_settings
from citybrain.commands import (
    RUN_DIR_SETTINGS,
    command_line,
    written_path,
)
from citybrain.text import agreeing, counted, shown_lines, warn
from streams.errors import shown_path
from streams.settings import Settings


def cmd_demo(args: argparse.Namespace) -> int:
    from citybrain.demo import (
        DEMO_DATA,
        KNOWN_EVENTS,
        KnownEvent,
        load_expected,
        refused_said,
        run_demo,
    )

    data = [Path(p) for p in args.data] if args.data else list(DEMO_DATA)
    check_output(
        "--summary",
        args.summary,
        [("--data", str(p)) for p in data] + [("--expect", args.expect)],
        "the summary table is printed on stdout anyway",
        suffixes=(".json",),
    )
    check_output(
        "--report",
        args.report,
        [("--data", str(p)) for p in data]
        + [("--expect", args.expect), ("--summary", args.summary)],
        "it is HTML: give a file name",
        suffixes=(".html",),
    )
    need_all(
        [functools.partial(_need_feed, path, "--data") for path in data]
        + [
            functools.partial(_need_file, Path(name), option, kind="YAML", expects=(role,))
            for option, name, role in (
                ("--expect", args.expect, "expect"),
                ("--grid", args.grid, "grid"),
            )
            if name
        ]
    )
    # The built-in expected events belong to the built-in data: on a user's own files
    # they would only ever be "missed".
    expected: tuple[KnownEvent, ...] = KNOWN_EVENTS if not args.data else ()
    if args.expect:
        try:
            expected = load_expected(Path(args.expect))
        except (OSError, ValueError) as exc:
            message = str(exc)  # load_expected's own messages name the option and file
            raise CliError(
                message if message.startswith("--expect") else f"--expect {args.expect}: {message}"
            ) from None
    if args.grid:
        os.environ["CITYBRAIN_GRID_FILE"] = str(Path(args.grid).resolve())
    # The grid, playbooks and routing its worker reads, read now: a bad one (`--grid` of
    # a YAML that does not parse, a CITYBRAIN_ROUTING_FILE naming an unknown playbook)
    # was found by the worker, after the demo had stopped the last demo's worker and
    # deleted its topics, and said as a worker that exited (exit 3), the demo recorded
    # as the last with it (t158).
    check_worker_files(_settings())
    from citybrain.demo import DemoInterruptedError, DemoRunningError

    try:
        summary = run_demo(
            data,
            ack_deadline=args.ack_deadline,
            summary_path=Path(args.summary) if args.summary else None,
            report_path=Path(args.report) if args.report else None,
            expected=expected,
        )
    except DemoRunningError as exc:
        raise CliError(str(exc), EXIT_SERVICE) from None
    except DemoInterruptedError as exc:
        raise CliError(str(exc), EXIT_INTERRUPTED) from None
    except KeyboardInterrupt:  # before it started anything
        from citybrain.demo import interrupted_message

        raise CliError(interrupted_message(_settings()), EXIT_INTERRUPTED) from None
    if not summary["alerts"]:
        refused = refused_said(summary)
        raise CliError(
            f"the demo raised no alert on {counted(len(data), 'file')}: nothing for the playbooks "
            "to do (the summary says how many readings were processed"
            + (f"; {refused}: see the deadletters command above)" if refused else ")"),
            EXIT_FAILED,
        )
    if args.expect:
        missed_expected(args.expect, summary["known_events"])
    return EXIT_OK


def missed_expected(expect: str, known: Sequence[Mapping[str, Any]]) -> None:
    """CliError (status 1) naming the events of ``--expect`` ``expect`` that the demo
    missed, from its summary's ``known_events`` (``{"event", "alerts", "detected"}``,
    those replayed): a CI user giving --expect expects a miss to fail (helper brief t47:
    it exited 0 under "missed my spike: 0 alerts"). The built-in events are reported
    only: the demo's own data is no test of the user's."""
    missed = [str(e["event"]) for e in known if not e["detected"]]
    if missed:
        names = ", ".join(repr(name) for name in missed)
        raise CliError(
            f"--expect {expect}: the demo missed {len(missed)} of the "
            f"{counted(len(known), 'expected event')} it replayed: {names} (no alert on "
            "its sensors in its window; the summary above lists each)",
            EXIT_FAILED,
        )


def cmd_report(args: argparse.Namespace) -> int:
    from citybrain.demo import write_report
    from citybrain.report import NotReplayedError

    files = [Path(p) for p in args.data]
    check_output("--out", args.out, [("--data", p) for p in args.data], suffixes=(".html",))
    need_all([functools.partial(_need_feed, path, "--data") for path in files])
    settings = _settings()
    # The prefix chosen as `deadletters` and `campaign report` choose it: the running
    # demo's by default, said on stderr (t40: it was "required: --prefix").
    settings = prefixed_settings(args, settings, ("readings", "incidents", "alerts"))
    prefix = settings.topic_prefix
    # t217: the demo's printed report command (four files) passed 13.5 s in silence on a
    # loaded 2-core machine before its one line: what it reads is said first.
    print(
        f"report: reading the topics of prefix {prefix!r} and "
        f"{counted(len(files), '--data file')} …",
        file=sys.stderr,
        flush=True,
    )
    try:
        replayed = write_report(
            settings,
            files,
            Path(args.out),
            args.title or f"citybrain what-if report: {', '.join(p.name for p in files)}",
        )
    except NotReplayedError as exc:
        raise CliError(f"--data: {exc}") from None
    print(f"report written to {written_path(args.out)}")
    for name, n in replayed.unreplayed():
        warn(
            f"--data {shown_path(name)}: the topics of prefix {prefix!r} hold none "
            f"of its {counted(n, 'event')}: it was not replayed under this prefix and the "
            "report leaves it out (no counts, no known events from it)",
        )
    for name, n, held in replayed.partly():
        warn(
            f"--data {shown_path(name)}: the topics hold {held:,} of its "
            f"{counted(n, 'event')} (the rest were not sent, or the worker dead-lettered "
            "them): the report counts only those",
        )
    if not replayed.worker_ran:
        print(f"citybrain: warning: {shown_lines(no_alerts_note(settings))}", file=sys.stderr)
    elsewhere = replayed.elsewhere
    if elsewhere:
        warn(
            f"{counted(elsewhere, 'alert')} under prefix {prefix!r} "
            f"{agreeing(elsewhere, 'is', 'are')} on sensors none of the --data files holds: "
            "give the files that replay sent",
        )
    return 0


def no_alerts_note(settings: Settings) -> str:
    """`report`'s warning for a prefix (``settings.topic_prefix``) with no alerts and no
    steps, its advice from what runs now (``no_alerts_advice``)."""
    from citybrain.demo import demo_worker, running_demo
    from citybrain.ports import can_bind, free_port_near

    prefix = settings.topic_prefix
    state, doc = demo_worker(settings)
    demo = running_demo(settings)
    demo_prefix = str((doc or {}).get("topic_prefix") or "")
    port = settings.worker_port
    free = can_bind(settings.worker_bind, port)
    return no_alerts_advice(
        prefix,
        WorkerState(
            demo_running=demo.pid if demo is not None and demo.prefix == prefix else None,
            demo_prefix=demo_prefix,
            demo_worker=state,
            demo_url=str((doc or {}).get("worker_url") or f"http://127.0.0.1:{port}"),
            port=port,
            port_free=free,
            free_port=port if free else free_port_near(port, settings.worker_bind),
        ),
    )


@dataclass(frozen=True)
class WorkerState:
    """What runs, for advice about a worker: a demo running now on the prefix (its pid,
    else None); the last demo's prefix ("" for none), its worker (``running``,
    ``stopped``, ``none``: ``demo_worker``) and URL; whether the worker port
    (``CITYBRAIN_WORKER_PORT``) is free, and a free one to suggest."""

    demo_running: int | None
    demo_prefix: str
    demo_worker: str
    demo_url: str
    port: int
    port_free: bool
    free_port: int | str


def no_alerts_advice(prefix: str, state: WorkerState) -> str:
    """Why the topics of ``prefix`` hold no alerts and no steps, and what to do, as
    ``state`` says: never "start a worker" while one reads the prefix (t36: the running
    demo's worker was there, and a worker started as advised failed on its port)."""
    head = f"prefix {prefix!r} has no alerts and no steps"
    only = "; the report shows readings and citizen reports only"
    if state.demo_running is not None:
        return (
            f"{head} yet: its demo is still running (pid {state.demo_running}); write the "
            f"report after the demo prints its summary{only}"
        )
    if prefix == state.demo_prefix and state.demo_worker == "running":
        return (
            f"{head}: the demo's worker, running on {state.demo_url}, reads it and raised no "
            f"alert on its events (the demo's summary says so too){only}"
        )
    if prefix == state.demo_prefix:
        return (
            f"{head}: the demo's worker, which reads it, is not running; "
            f"`{command_line('stack', 'restart-worker', only=RUN_DIR_SETTINGS)}` starts it "
            "again as the demo ran it"
            f"{only}"
        )
    env = {"CITYBRAIN_TOPIC_PREFIX": prefix}
    if state.port_free:
        start = command_line("worker", env=env)
        return f"{head}: no worker has read its events yet (start one: {start}){only}"
    taken = (
        f"the demo's worker (prefix {state.demo_prefix}) listens on port {state.port}"
        if state.demo_worker == "running"
        else f"port {state.port} is taken by another server"
    )
    env["CITYBRAIN_WORKER_PORT"] = str(state.free_port)
    return (
        f"{head}: no worker has read its events yet, or the worker that reads it has not "
        f"caught up; {taken}, so start one on another port: {command_line('worker', env=env)}"
        f"{only}"
    )
