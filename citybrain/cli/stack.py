"""``stack`` and ``worker``: the local services, the demo's worker,
and the checks that Kafka and Mosquitto answer before a command uses them."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from citybrain.commands import (
    absolute_setting,
    command_line,
    make_command,
    start_stack_hint,
)
from citybrain.errors import ListenError
from citybrain.text import counted, shown_lines
from streams.settings import Settings

if TYPE_CHECKING:
    import faust


from citybrain.cli.base import (
    EXIT_BUG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SERVICE,
    EXIT_USAGE,
    CliError,
    _kafka_reason,
    _settings,
    check_worker_files,
    prefix_said,
)
from streams.errors import text_lines

# Seconds a service may take to answer after `stack up` started it before `stack status`
# calls it "not answering" rather than "starting" (Kafka takes at most 90 s on 2 cores).
STARTUP_GRACE = 180.0


def cmd_stack(args: argparse.Namespace) -> int:
    from citybrain.stack import KafkaBroker, MosquittoBroker, PrometheusServer
    from citybrain.stack.dirs import require_writable
    from citybrain.stack.process import (
        StackError,
        StateFileError,
        frozen,
        other_run_dir,
        read_pid,
        running_seconds,
        stack_lock,
        stop_other_stack,
    )
    from citybrain.stack.topics import (
        REFUSED_TOPICS_HINT,
        PartitionCountError,
        TopicsRefusedError,
        create_topics,
    )

    s = _settings()
    kafka, prom, mqtt = KafkaBroker(s), PrometheusServer(s), MosquittoBroker(s)
    if args.action == "up":
        from playbooks.loader import load_grid

        # The grid before anything starts: Prometheus' location rules are written from it,
        # and a grid that could not be read there left Kafka running behind an unexpected
        # error (trial 27). Then every port: a taken Prometheus port found after Kafka
        # started left Kafka running behind an exit 3.
        load_grid(s.grid_file)
        # A service of this run directory on another port first: that, not a port of
        # this shell's taken by another stack, is what to fix (t76).
        for component in (kafka, prom, mqtt):
            if component.elsewhere():
                raise StackError(component.elsewhere())
        for component in (kafka, prom, mqtt):
            component.check_ports()
        # Its directories before anything is said or started (after the ports, which
        # create none): a read-only or full run directory or home was found after
        # "kafka starting" was printed (t111).
        require_writable(s, home=not kafka.running() and kafka.download_notice() is not None)
        # One start or stop at a time per run directory (t111: two at once orphaned a
        # Prometheus); the ports again once it is ours, a start before it took them.
        with stack_lock(s.run_dir, "citybrain stack up"):
            for component in (kafka, prom, mqtt):
                component.check_ports()
            # Each says whether this command started it: a second `stack up` said "ready"
            # as the first did, and a newcomer could not tell it had been up all along.
            was = {name: comp.running() for name, comp in (("k", kafka), ("p", prom), ("m", mqtt))}

            def ready(key: str) -> str:
                return "ready (already running)" if was[key] else "ready"

            try:
                if not was["k"]:
                    # t104: the first `stack up` said "about 30 s" and then downloaded the
                    # jars, minutes more, without a word (the demo said it; stack up did not).
                    notice = kafka.download_notice()
                    if notice is not None:
                        print(notice, flush=True)
                    # t60: 40 s of silence on 2 cores before "kafka ready", as if it hung.
                    print(kafka.starting_line(), flush=True)
                kafka.start()
                print(f"kafka       {ready('k')} on {s.kafka_bootstrap}")
                from citybrain.stack.topics import task_topics

                try:
                    created = create_topics(s)
                except PartitionCountError as exc:
                    raise CliError(
                        f"{exc}; Kafka stays up (`{command_line('stack', 'down')}` stops it)"
                    ) from None
                except TopicsRefusedError as exc:  # the others are made: said, not fatal
                    print(f"citybrain: warning: {exc}; {REFUSED_TOPICS_HINT}", file=sys.stderr)
                    created = exc.created
                # The playbooks' task topics are created too: count them in the total.
                every = len(s.topics) + len(task_topics(s))
                print(f"topics      {len(created)} created, {every} in all ({prefix_said(s)})")
                prom.start()
                print(f"prometheus  {ready('p')} on {prom.url}")
                mqtt.start()
                print(f"mosquitto   {ready('m')} on {mqtt.url}")
            except KeyboardInterrupt:
                from citybrain.demo import interrupted_message

                raise CliError(interrupted_message(s, stack_up=True), EXIT_INTERRUPTED) from None
    elif args.action == "down":
        from citybrain.demo import stop_demo_worker, stop_running_demo

        # A demo still running is stopped first, and told so: it said "a service did
        # not answer ... start the local stack" as its worker and Kafka went (t36).
        demo = stop_running_demo(s, "citybrain stack down" + (" --wipe" if args.wipe else ""))
        if demo is not None and demo.pid is None:
            # It ended before it had written its pid: nothing was sent to it (t112).
            print(f"{'demo':11} ended while starting (before its pid was written)")
        elif demo is not None:
            print(f"{'demo':11} stopped (pid {demo.pid}, topic prefix {demo.prefix})")
        # After the demo (it may wait for this lock while starting its stack): a start
        # under way finishes first, rather than losing its services part-way.
        held = contextlib.ExitStack()
        held.enter_context(stack_lock(s.run_dir, "citybrain stack down", create=False))
        # A pid file that is no file (a directory, a socket, unreadable: t194) stops that
        # service's stop only: the others are stopped, then it is said, exit 2.
        unusable: list[str] = []
        try:
            worker = "stopped" if stop_demo_worker(s) else "was not running"
        except StateFileError as exc:
            unusable.append(str(exc))
            worker = "not stopped: its pid file is no file (below)"
        if demo is not None and worker == "was not running":
            worker = "stopped with the demo"  # the demo stops its own worker (t48)
        # A service of another run directory on this shell's port is left running, and
        # said so (t164: "was not running", exit 0, as the other stack ran on).
        others: list[Path] = []
        other_worker = foreign_worker(s) if worker == "was not running" else None
        if other_worker is not None:
            others.append(other_worker)
            worker += " here; left running: " + other_run_dir(
                "demo worker", s.worker_port, other_worker, s.run_dir
            )
        print(f"{'demo worker':11} {worker}")
        for name, comp in (("mosquitto", mqtt), ("prometheus", prom), ("kafka", kafka)):
            try:
                said = "stopped" if comp.stop() else "was not running"
            except StateFileError as exc:
                unusable.append(str(exc))
                print(f"{name:11} not stopped: its pid file is no file (below)")
                continue
            other = None if said == "stopped" else comp.foreign_dir()
            if other is not None:
                others.append(other)
                said += f" here; left running: {comp.foreign()}"
            print(f"{name:11} {said}")
        ingests = ingests_line(s, stopped=True)
        if ingests:
            print(ingests)
        if args.wipe:
            from citybrain.demo import DemoFiles

            wiped = kafka.wipe()
            # The last demo's topics and runs went with the data: its record would still
            # offer `restart-worker` and lend printed commands its settings (t46).
            record = DemoFiles.of(s).state
            forgot = record.exists()
            record.unlink(missing_ok=True)
            # Each says what happened (t112: "data wiped" with no data there).
            if wiped is None:
                print(f"kafka       no data to wipe (nothing in {kafka.dir})")
            else:
                print(f"kafka       data wiped ({size_said(wiped)} in {kafka.dir})")
            if forgot:
                print(f"{'demo':11} record removed ({record}): its topics went with the data")
        held.close()
        if unusable:
            sys.stdout.flush()
            for line in unusable:
                print(f"citybrain: {shown_lines(line)}", file=sys.stderr)
            return EXIT_USAGE
        if others:
            # Not done: what answers on this shell's ports still runs (a script's
            # `stack down && stack up` would meet it), so exit 1 with the one fix.
            sys.stdout.flush()
            print(
                f"citybrain: the stack on this shell's ports is not this run directory's "
                f"({s.run_dir}) and was left running: it is {others[0]}'s; "
                f"`{stop_other_stack(others[0])}` stops it",
                file=sys.stderr,
            )
            return EXIT_FAILED
    elif args.action == "restart-worker":
        require_writable(s)
        with stack_lock(s.run_dir, "citybrain stack restart-worker"):
            return restart_demo_worker(s)
    elif args.action == "reload":
        from playbooks.loader import load_grid

        load_grid(s.grid_file)  # a grid with an error changes nothing (exit 2, file:line)
        with stack_lock(s.run_dir, "citybrain stack reload", create=False):
            return reload_stack(s, prom)
    else:
        ok = True
        moved: list[str] = []  # a needed service of this run directory on another port
        stuck: list[str] = []  # a needed service running long past start-up, not answering
        # Mosquitto serves only `citybrain ingest mqtt` (the demo does not start it): its
        # state is shown but does not count against the stack being ready.
        unusable = []  # a pid file that is no file (t194): said, exit 2
        for name, comp, where, needed in (
            ("kafka", kafka, s.kafka_bootstrap, True),
            ("prometheus", prom, prom.url, True),
            ("mosquitto", mqtt, mqtt.url, False),
        ):
            try:
                state = "ready" if comp.ready() else ("starting" if comp.running() else "down")
            except StateFileError as exc:
                unusable.append(str(exc))
                print(f"{name:11} {'unknown':8} {where} (its pid file is no file: below)")
                continue
            elsewhere = comp.elsewhere() if state == "starting" else ""
            up_for = running_seconds(comp.pid_file) if state == "starting" else None
            pid = read_pid(comp.pid_file) if state == "starting" else None
            if not elsewhere and frozen(pid):
                # t104: a service held by `kill -STOP` was "starting" for its first 3 min,
                # then "not answering" with a restart as the only fix.
                print(
                    f"{name:11} {'frozen':8} {where} (pid {pid} is stopped by a signal: "
                    f"`kill -CONT {pid}` resumes it; its log: {comp.shown_log})"
                )
                ok = ok and not needed
                if needed:
                    stuck.append(
                        f"{name} (pid {pid}) is frozen (stopped by `kill -STOP` or a "
                        f"debugger): `kill -CONT {pid}` resumes it"
                    )
                continue
            if not elsewhere and up_for is not None and up_for > STARTUP_GRACE:
                # t85: a frozen or wedged service (taking connections, answering nothing)
                # was "starting" for ever, and the hint said to start the stack.
                minutes = int(up_for // 60)
                print(
                    f"{name:11} {'not answering':8} {where} (running for {minutes} min, "
                    f"pid {read_pid(comp.pid_file)}; its log: {comp.shown_log})"
                )
                ok = ok and not needed
                if needed:
                    stuck.append(
                        # Running for that long, not silent for it (t98: a broker frozen a
                        # minute ago was said to be silent "for 17 min", its whole run).
                        f"{name} runs (for {minutes} min) but does not answer now: see its log "
                        f"{comp.shown_log}; `{command_line('stack', 'down')}` then "
                        f"`{command_line('stack', 'up')}` restarts it"
                    )
                continue
            if elsewhere:
                # Not "starting": it serves, on the port this shell does not name.
                print(f"{name:11} {'running':8} {where}: {elsewhere}")
                ok = ok and not needed
                if needed:
                    moved.append(elsewhere)
                continue
            ok = ok and (state == "ready" or not needed)
            # Down, with another program on its port: `stack up` refuses it, saying which
            # (t209: status said "down" and advised the `stack up` that then failed).
            taken = port_taken(comp) if state == "down" else ""
            if taken and needed:
                moved.append(taken)
            # The commands named are typed as they work in this shell (t60: a bare
            # `citybrain ingest mqtt` where citybrain is not on the PATH, and no word of
            # how to start it).
            start = f"; `{command_line('stack', 'up')}` starts it" if state == "down" else ""
            if taken:
                start = f"; {taken}" if not needed else ""
                where += "" if not needed else " (its port is taken: below)"
            note = "" if needed else f" (optional, for `{command_line('ingest', 'mqtt')}`{start})"
            # Ready, but another run directory's: `stack down` here would not stop it.
            foreign = comp.foreign() if state == "ready" else ""
            note += f" ({foreign})" if foreign else ""
            print(f"{name:11} {state:8} {where}{note}")
        try:
            for line in demo_worker_lines(s):
                print(line)
            crashed = stopped_demo_worker_failure(s)
        except StateFileError as exc:
            unusable.append(str(exc))
            print(f"{'demo worker':11} {'unknown':8} (its pid file is no file: below)")
            crashed = ""
        ingests = ingests_line(s, stopped=False)
        if ingests:
            print(ingests)
        # A service on another port is not fixed by `stack up`, which refuses it (t83:
        # the one line advised it all the same): its own words say what to set.
        failures = (
            []
            if ok
            else [
                "the stack is not ready: "
                + (moved[0] if moved else stuck[0] if stuck else start_stack_hint())
            ]
        )
        if crashed:
            # t83: a crashed demo worker was shown as `stopped` with exit 0, so a
            # monitoring script reading the status saw a healthy stack.
            failures.append(crashed)
        if unusable:
            # What to fix first: the state of a service with such a file is unknown.
            sys.stdout.flush()
            for line in unusable:
                print(f"citybrain: {shown_lines(line)}", file=sys.stderr)
            return EXIT_USAGE
        if failures:
            # After the table, also when both go to one pipe (`2>&1 | less`): piped,
            # stdout is block-buffered and the line came first.
            sys.stdout.flush()
            print(f"citybrain: {shown_lines('; and '.join(failures))}", file=sys.stderr)
        return EXIT_FAILED if failures else EXIT_OK
    return 0


def port_taken(component: Any) -> str:
    """What ``stack up`` would say of ``component`` (a stack service that is down) when
    another program holds one of its ports (``check_ports``: the setting, the port, the
    pid and command line holding it, and a free port to give instead); "" when its ports
    are free."""
    from citybrain.errors import InputError
    from citybrain.stack.process import StackError

    try:
        component.check_ports()
    except (ListenError, InputError, StackError) as exc:
        return str(exc)
    return ""


def ingests_line(settings: Settings, stopped: bool) -> str:
    """The line on the user's ingests that feed this stack (``running_ingests``), "" when
    none runs: `stack status` lists them, `stack down` (``stopped``) says they were left
    running and how to stop them (t174: not a word, and they retried for good)."""
    from citybrain.stack.process import running_ingests
    from streams.settings import Settings

    names = ("CITYBRAIN_KAFKA_PORT", "CITYBRAIN_MQTT_PORT")
    defaults = {name: Settings.model_fields[name[10:].lower()].default for name in names}
    ports = {"CITYBRAIN_KAFKA_PORT": settings.kafka_port, "CITYBRAIN_MQTT_PORT": settings.mqtt_port}
    found = running_ingests(ports, defaults)
    if not found:
        return ""
    listed = ", ".join(f"pid {pid} (citybrain ingest {action})" for pid, action in found)
    if not stopped:
        return f"{'ingests':11} {'running':8} {listed}: not the stack's (`kill PID` stops one)"
    pids = " ".join(str(pid) for pid, _ in found)
    return (
        f"{'ingests':11} left running, not the stack's: {listed}; each waits for Kafka "
        f"to come back (`{command_line('stack', 'up')}` resumes it); `kill {pids}` stops "
        f"{'it' if len(found) == 1 else 'them'}"
    )


# A log record's first line: "[2026-12-05 02:34:36,256] [19210] [ERROR] …".
_RECORD_START = re.compile(r"\[\d{4}-\d\d-\d\d ")


def last_record(text: str) -> str:
    """The line of a log's ``text`` (its last lines) that says how it ended: its last
    line when that starts a record or ends a traceback (the exception), else the first
    line of the last record, else its last line ("" for none). t91: faust's multi-line
    messages left `stack status` showing "(last line: 3) The agent processing the stream
    is hanging …)", a fragment of a list, for a worker that was killed."""
    lines = [line for line in text_lines(text) if line.strip()]
    starts = [i for i, line in enumerate(lines) if _RECORD_START.match(line)]
    if not starts or any(line.startswith("Traceback") for line in lines[starts[-1] :]):
        return lines[-1] if lines else ""
    return lines[starts[-1]]


def foreign_worker(settings: Settings) -> Path | None:
    """The other run directory whose demo worker serves this shell's worker port while
    this run directory's does not run (``serving_run_dir``), else None."""
    from citybrain.demo import DemoFiles
    from citybrain.stack.process import read_pid, serving_run_dir

    files = DemoFiles.of(settings)
    if read_pid(files.pid) is not None:
        return None
    return serving_run_dir(settings.worker_port, files.log, settings.run_dir)


def demo_worker_lines(settings: Settings) -> list[str]:
    """`stack status`'s lines on the demo: a demo running now (pid, topic prefix); the
    last demo's worker running or down (optional), or stopped without `stack down` (it
    crashed or was killed), with its log, the log's last line and the command that starts
    it again tracked by the stack (``restart_advice``); and, when the demo's worker is
    not running, a server that answers on its port all the same (not the stack's: `stack
    down` leaves it, and the next demo's worker cannot listen there)."""
    from citybrain.demo import DemoFiles, demo_worker, restart_advice, running_demo
    from citybrain.stack.process import (
        code_changed_said,
        code_changed_since,
        frozen,
        read_pid,
        tail,
    )

    lines = []
    demo = running_demo(settings)
    if demo is not None:
        lines.append(f"{'demo':11} {'running':8} pid {demo.pid}, topic prefix {demo.prefix or '?'}")
    state, doc = demo_worker(settings)
    url = str((doc or {}).get("worker_url") or f"http://127.0.0.1:{settings.worker_port}")
    if state == "running":
        pid = read_pid(DemoFiles.of(settings).pid)
        if frozen(pid):
            # t104: shown "running" while `runs list` waited 10 s on it and sent the user
            # here to see why.
            log = (doc or {}).get("worker_log") or DemoFiles.of(settings).log
            return [
                *lines,
                f"{'demo worker':11} {'frozen':8} {url} (pid {pid} is stopped by a signal: its "
                f"runs get no deadlines or operator API; `kill -CONT {pid}` resumes it; its "
                f"log: {log})",
            ]
        running = f"{'demo worker':11} {'running':8} {url} (pid {pid})"
        lag = consumer_lag_said(url)
        lines += [running, *([f"{'':11} {lag}"] if lag else [])]
        changed = (
            code_changed_since(pid, record=DemoFiles.of(settings).code) if pid is not None else []
        )
        if changed:
            return [
                *lines,
                f"{'':11} {code_changed_said(changed)}; "
                f"`{command_line('stack', 'restart-worker')}` starts it again on the new code",
            ]
        return lines
    if state == "stopped":
        log = (doc or {}).get("worker_log") or DemoFiles.of(settings).log
        last = " ".join(last_record(tail(Path(log), 60)).split())
        last = last if len(last) <= 200 else last[:199] + "…"
        lines += [
            f"{'demo worker':11} {'stopped':8} {url}: it exited without a `stack down` "
            f"(crashed or killed); its log: {log}" + (f" (last line: {last})" if last else ""),
            f"{'':11} start it again, as the demo ran it: {restart_advice(settings)}",
        ]
    else:
        lines.append(f"{'demo worker':11} {'down':8} {url} (optional)")
        prefix = (doc or {}).get("topic_prefix")
        if prefix:
            # Its demo was interrupted, or `stack down` stopped it: its runs come back
            # with it (t46: nothing pointed to restart-worker).
            lines.append(
                f"{'':11} the last demo's (prefix {prefix}); start it again, as the demo ran "
                f"it: {restart_advice(settings)}"
            )
    port = _port_of(url)
    other = foreign_worker(settings) if port == settings.worker_port else None
    if other is not None:
        from citybrain.stack.process import other_run_dir, stop_other_stack

        whose = other_run_dir("demo worker", settings.worker_port, other, settings.run_dir)
        lines.append(f"{'':11} but {whose}: `{stop_other_stack(other)}` stops it")
    elif port is not None and _answers("127.0.0.1", port):
        lines.append(
            f"{'':11} but something answers on port {port}: a server the stack did not start "
            "(a worker started by hand?); `stack down` leaves it running and the next demo's "
            "worker cannot listen there: stop it where it was started"
        )
    return lines


def consumer_lag_said(url: str) -> str | None:
    """The demo's worker's consumer lag, read from its ``/metrics`` (the gauge
    ``citybrain_consumer_lag``, messages per topic it consumes, summed over partitions):
    ``consumer lag 0 messages: caught up on the 6 topics it reads``, or the total and each
    topic behind, most first. None when the worker does not answer within 2 s or has not
    measured it yet (starting). t189: an operator checking the lag had only the Java
    ConsumerGroupCommand of docs/operations.md, whose ``--group citybrain`` is not a
    demo's group (its app id is its topic prefix): "Group citybrain not found", with a
    Java stack trace."""
    from citybrain.demo import scrape

    try:
        metrics = scrape(f"{url}/metrics")
    except (OSError, ValueError):
        return None
    mark = 'citybrain_consumer_lag{topic="'
    lags = {k[len(mark) : -2]: v for k, v in metrics.items() if k.startswith(mark)}
    if not lags:
        return None
    behind = sorted(((v, t) for t, v in lags.items() if v > 0), key=lambda p: (-p[0], p[1]))
    if not behind:
        return f"consumer lag 0 messages: caught up on the {len(lags)} topics it reads"
    total = sum(v for v, _ in behind)
    each = ", ".join(f"{t} {v:,.0f}" for v, t in behind)
    return f"consumer lag {total:,.0f} messages behind ({each})"


def stopped_demo_worker_failure(settings: Settings) -> str:
    """Why `stack status` fails for the demo's worker, "" when it does not: the last
    demo's worker exited without a `stack down` (crashed or killed; its pid file is
    left), or is frozen (``kill -STOP``), which stops its runs' deadlines and operator
    API. A worker that is down because a demo was interrupted or `stack down` stopped it
    is no failure."""
    from citybrain.demo import DemoFiles, demo_worker, restart_advice
    from citybrain.stack.process import frozen, read_pid

    state = demo_worker(settings)[0]
    pid = read_pid(DemoFiles.of(settings).pid) if state == "running" else None
    if frozen(pid):
        return (
            f"the demo's worker (pid {pid}) is frozen (stopped by `kill -STOP` or a debugger), "
            f"so its runs get no deadlines or operator API: `kill -CONT {pid}` resumes it"
        )
    if state != "stopped":
        return ""
    return (
        "the demo's worker exited without a `stack down` (crashed or killed), so its runs "
        f"get no deadlines or operator API; start it again: {restart_advice(settings)}"
    )


def _port_of(url: str) -> int | None:
    """The port of an ``http://127.0.0.1:PORT`` URL on this machine, else None."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    return port if parts.hostname in ("127.0.0.1", "localhost") else None


def restart_demo_worker(settings: Settings) -> int:
    """`stack restart-worker`: start the last demo's worker again with every setting it
    ran with (demo.json), tracked by the stack as the demo's own was (its pid file and
    log: `stack status` shows it, `stack down` stops it), and wait until it serves; one
    that runs is stopped first (SIGTERM), once every check has passed.
    CliError (1) while a demo runs or when no demo ran here; (3) when its Kafka does not
    answer or its port is taken; (1) when the demo's worker is frozen (``kill -STOP``).
    ``StackError`` (3) when it exits while starting."""
    from citybrain.demo import (
        DemoFiles,
        demo_worker,
        restart_env,
        running_demo,
        wait_for_worker,
        worker_starting_line,
    )
    from citybrain.ports import can_bind
    from citybrain.stack.process import (
        code_changed_said,
        code_changed_since,
        frozen,
        read_pid,
        record_code,
        spawn,
        stop,
        worker_argv,
    )

    files = DemoFiles.of(settings)
    demo = running_demo(settings)
    if demo is not None:
        raise CliError(
            f"a demo is running (pid {demo.pid}, topic prefix {demo.prefix}) and runs its own "
            "worker; restart-worker starts a demo's worker again after the demo ended",
            EXIT_FAILED,
        )
    state, doc = demo_worker(settings)
    if doc is None and (files.state.exists() or files.state.is_symlink()):
        # t168: a demo.json cut short (a full disk, an edit) was said as "no demo ran
        # under … (no …/demo.json)", the file there for the user to see.
        raise CliError(
            f"{files.state} is not a demo's record ({_unreadable_record(files.state)}): "
            "the demo's worker cannot be started as it ran; "
            f"`{make_command('demo')}` in the checkout runs a new demo (and writes it again)",
            EXIT_FAILED,
        )
    if doc is None:
        raise CliError(
            f"no demo ran under {settings.run_dir} (no {files.state}): there is no demo "
            f"worker to start again; `{make_command('demo')}` in the checkout runs a demo",
            EXIT_FAILED,
        )
    url = str(doc.get("worker_url") or f"http://127.0.0.1:{settings.worker_port}")
    prefix = doc.get("topic_prefix")
    if state == "running" and frozen(pid := read_pid(files.pid)):
        # t168: "demo worker already running", exit 0, while it was stopped by a signal
        # and served nothing (`stack status` says frozen, exit 1): starting another is no
        # cure either, its port and group are this one's. A running worker is restarted
        # (t189), a frozen one not: a debugger may hold it on purpose.
        raise CliError(
            f"the demo's worker (pid {pid}) on {url} is frozen, not stopped (stopped by "
            f"`kill -STOP` or a debugger: its runs get no deadlines or operator API): "
            f"`kill -CONT {pid}` resumes it (restart-worker leaves a frozen worker to you: "
            "it may be held on purpose, by a debugger)",
            EXIT_FAILED,
        )
    running = read_pid(files.pid) if state == "running" else None
    changed = code_changed_since(running, record=files.code) if running is not None else []
    env = restart_env(settings, doc)
    spawn_env = _restart_environment(env, recorded=isinstance(doc.get("worker_settings"), dict))
    host = env.get("CITYBRAIN_KAFKA_HOST", settings.kafka_host)
    kafka_port = env.get("CITYBRAIN_KAFKA_PORT", str(settings.kafka_port))
    if not (kafka_port.isascii() and kafka_port.isdigit() and _answers(host, int(kafka_port))):
        raise CliError(
            f"no Kafka broker answers at {host}:{kafka_port}, the demo's worker's: "
            f"{start_stack_hint(_stack_settings(env))}, then run this again",
            EXIT_SERVICE,
        )
    if running is not None:
        # A running worker is restarted, as the command says: after a pull or an edit it
        # is the way onto the new code (t174), and an operator restarts a worker that
        # misbehaves (t189: it answered "already running; `stack down` stops it", and
        # `stack down` stops Kafka and Prometheus too, so only a kill restarted it).
        # Stopped once every check has passed, so a refusal leaves it serving.
        why = (
            f"{code_changed_said(changed)}; stopping it to start it again on the new code"
            if changed
            else "stopping it (SIGTERM: it leaves its group at once) to start it again"
        )
        print(f"the demo's worker (pid {running}) on {url}: {why}", flush=True)
        stop(files.pid)
    port = _port_of(url)
    if port is not None and not can_bind(env.get("CITYBRAIN_WORKER_BIND", "127.0.0.1"), port):
        # Not "give it another port": the demo's settings, recorded, would override it.
        raise CliError(
            f"port {port}, the demo's worker's ({url}), is taken by another process (a "
            f"worker started by hand?): stop it, then run this again; `"
            f"{command_line('stack', 'status')}` says what answers there",
            EXIT_SERVICE,
        )
    log = Path(str(doc.get("worker_log") or files.log))
    print(worker_starting_line(log, "the demo's"), flush=True)
    record_code(files.code)
    pid = spawn(
        worker_argv(),
        log,
        files.pid,
        spawn_env,
    )
    wait_for_worker(files, f"{url}/metrics", pid)
    print(
        f"demo worker started (pid {pid}) on {url}, topic prefix {prefix}; log: "
        f"{doc.get('worker_log') or files.log}; `{command_line('stack', 'status')}` shows it, "
        f"`{command_line('stack', 'down')}` stops it"
    )
    return EXIT_OK


def _unreadable_record(path: Path) -> str:
    """Why ``path``, a demo.json ``demo_worker`` could not take, is not a record: its
    read error, its JSON error, or that it holds no JSON object."""
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    except ValueError as exc:
        return f"not JSON: {exc}"
    return f"a JSON {type(doc).__name__}, not an object" if not isinstance(doc, dict) else "?"


def _stack_settings(env: dict[str, str]) -> dict[str, str]:
    """Of the demo's worker's settings (``restart_env``), those that say where its stack
    runs (the Kafka and Prometheus ports and host, the run directory and the cache): a
    printed `stack up` carries them over this shell's, so that it starts the stack the
    worker will look for."""
    wanted = ("CITYBRAIN_KAFKA_", "CITYBRAIN_PROMETHEUS_", "CITYBRAIN_RUN_DIR", "CITYBRAIN_HOME")
    secret = ("TOKEN", "SECRET", "PASSWORD")  # never printed (none is recorded either)
    return {k: v for k, v in env.items() if k.startswith(wanted) and not k.endswith(secret)}


# How long `stack reload` waits for the demo's worker to say how its reload went: it
# reads four files, and a city's grid takes about a second.
RELOAD_WAIT = 60.0


def reload_stack(settings: Settings, prom: Any) -> int:
    """`stack reload`, after editing the grid, playbooks, routing or tokens: the stack's
    Prometheus map rules written again from CITYBRAIN_GRID_FILE and put in force
    (``POST /-/reload``: the map's cells follow the grid), and the demo's worker, when it
    runs, sent SIGHUP and waited for (its log's ``configuration reloaded`` or ``reload
    failed`` line, at most ``RELOAD_WAIT`` s). Exit 0 when every part running took the
    new files; 1 when the worker kept its configuration (its ERROR line is shown),
    Prometheus refused, or nothing of the stack runs (nothing took the files: a script's
    ``stack reload && …`` must not read that as done); ingests are the user's processes:
    a line says to signal them."""
    import signal
    import urllib.error
    import urllib.request

    from citybrain.demo import DemoFiles, demo_worker
    from citybrain.stack.process import (
        code_changed_said,
        code_changed_since,
        frozen,
        other_run_dir,
        read_pid,
    )

    failed = False
    running = 0  # the parts that were asked to reload
    # This shell's port served by another run directory's Prometheus: the rules written
    # here are not the ones it reads (t164: "map rules reloaded", exit 0, nothing changed).
    foreign = prom.foreign_dir() if prom.ready() else None
    if foreign is not None:
        running += 1
        failed = True
        again = command_line("stack", "reload", env={"CITYBRAIN_RUN_DIR": str(foreign)})
        print(
            f"{'prometheus':11} not reloaded: "
            f"{other_run_dir('Prometheus', settings.prometheus_port, foreign, settings.run_dir)}"
            f"; `{again}` reloads it"
        )
    elif prom.ready():
        running += 1
        prom.write_locations()
        request = urllib.request.Request(f"{prom.url}/-/reload", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30):
                pass
            placed = prom.locations.read_text().count("record:")
            print(
                f"{'prometheus':11} map rules reloaded from {settings.grid_file} "
                f"({counted(placed, 'placed community cell')})"
            )
        except urllib.error.HTTPError as exc:
            failed = True
            why = " ".join(exc.read().decode("utf-8", "replace").split())[:300]
            print(f"{'prometheus':11} refused the reload ({exc.code}): {why}")
        except OSError as exc:
            failed = True
            print(f"{'prometheus':11} did not answer the reload: {exc}")
    else:
        print(f"{'prometheus':11} not running: nothing to reload (`{command_line('stack', 'up')}`)")
    state, doc = demo_worker(settings)
    pid = read_pid(DemoFiles.of(settings).pid) if state == "running" else None
    other_worker = foreign_worker(settings) if pid is None else None
    if other_worker is not None:
        running += 1
        failed = True
        whose = other_run_dir("demo worker", settings.worker_port, other_worker, settings.run_dir)
        again = command_line("stack", "reload", env={"CITYBRAIN_RUN_DIR": str(other_worker)})
        print(f"{'demo worker':11} not reloaded: {whose}; `{again}` reloads it")
    elif pid is None:
        print(f"{'demo worker':11} not running: nothing to reload")
    elif frozen(pid):
        # t168's sibling of restart-worker's: a stopped worker holds the SIGHUP until it
        # resumes, so this waited RELOAD_WAIT (60 s) and said it "said nothing of a reload".
        running += 1
        failed = True
        print(
            f"{'demo worker':11} not reloaded: it is frozen (pid {pid}, stopped by `kill -STOP` "
            f"or a debugger); `kill -CONT {pid}` resumes it, then run this again"
        )
    else:
        running += 1
        log = Path(str((doc or {}).get("worker_log") or DemoFiles.of(settings).log))
        start = log.stat().st_size if log.exists() else 0
        os.kill(pid, signal.SIGHUP)
        said = _reload_said(log, start, pid)
        if said is None:
            failed = True
            print(
                f"{'demo worker':11} sent SIGHUP (pid {pid}) but said nothing of a reload in "
                f"{RELOAD_WAIT:g} s; its log: {log}"
            )
        elif "reload failed" in said:
            failed = True
            print(f"{'demo worker':11} kept its configuration: {said}")
        else:
            print(f"{'demo worker':11} reloaded (pid {pid}): {said}")
        changed = code_changed_since(pid, record=DemoFiles.of(settings).code)
        if changed:
            # A reload reads files, not code: after a pull it looked like the upgrade (t174).
            print(
                f"{'':11} not its code: {code_changed_said(changed)}; "
                f"`{command_line('stack', 'restart-worker')}` starts it again on the new code"
            )
    print(
        f"{'ingests':11} not the stack's: send each one you started SIGHUP (`kill -HUP <pid>`) "
        "to read the grid again (docs/ingest.md)"
    )
    if not running:
        print(
            "citybrain: nothing reloaded: the stack is not running "
            f"(`{command_line('stack', 'up')}` reads the files as they are now)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


def _reload_said(log: Path, start: int, pid: int) -> str | None:
    """The first reload line the worker wrote to ``log`` after byte ``start`` (without its
    timestamp and level), or None after ``RELOAD_WAIT`` s or when ``pid`` ended."""
    from citybrain.stack.process import alive

    deadline = time.monotonic() + RELOAD_WAIT
    while time.monotonic() < deadline:
        try:
            with log.open("rb") as f:
                f.seek(start)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            text = ""
        for line in text_lines(text):
            if "configuration reloaded:" in line or "configuration reload failed" in line:
                return line[line.index("citybrain: ") + len("citybrain: ") :].strip()
        if not alive(pid):
            return None
        time.sleep(0.2)
    return None


def _restart_environment(env: dict[str, str], recorded: bool) -> dict[str, str]:
    """The environment the demo's worker starts again with, its settings checked first.

    The demo's recorded settings (``env``) win: the README promises the worker restarts
    with every setting the demo gave it, and a setting the demo did not record had its
    default there. So, when the demo recorded them (``recorded``), this shell's other
    ``CITYBRAIN_*`` settings are left out, but for secrets (never recorded) and
    CITYBRAIN_DEBUG; each of this shell's that differs or is left out is named in one
    line, so none is dropped without a word. A demo.json from before settings were
    recorded keeps this shell's under the demo's. Then the settings, the grid, the
    playbooks and the routing file the worker will read are checked here, as `stack up`
    checks the grid (t134: `CITYBRAIN_GRID_FILE=/tmp/bad.yaml stack restart-worker`
    started a worker that died, blamed on "crashed, or was killed"): ``SettingsError``
    or the loader's error, one line, exit 2, and no worker started."""
    from streams.settings import load_settings, setting_names

    # This shell's settings first, as every command checks them, used or not: a bad
    # one is refused, not passed over for the demo's (t134).
    shell_settings = load_settings()
    check_worker_files(shell_settings)
    names = set(setting_names())

    def own(name: str) -> bool:  # this shell's, whatever the demo recorded
        return name == "CITYBRAIN_DEBUG" or name.endswith(("TOKEN", "SECRET", "PASSWORD"))

    shell = {k: v for k, v in os.environ.items() if k in names and not own(k)}
    differing = [
        f"{k} ({'not set in the demo' if k not in env else repr(env[k]) + ' in the demo'}, "
        f"{v!r} here)"
        for k, v in sorted(shell.items())
        if absolute_setting(k, v) != env.get(k)
    ]
    if recorded:
        base = {k: v for k, v in os.environ.items() if k not in shell}
        if differing:
            print(
                "citybrain: the demo's recorded settings are used, not this shell's: "
                f"{', '.join(differing)}; a new demo takes this shell's",
                file=sys.stderr,
            )
    else:
        base = dict(os.environ)
    merged = {**base, **env}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(merged)
    try:
        check_worker_files(load_settings())
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return merged


def _answers(host: str, port: int) -> bool:
    """Whether ``host:port`` accepts a TCP connection within 3 seconds."""
    import socket

    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return False
    return True


# A live broker answers ApiVersions within milliseconds: after this long without an
# answer a command says, on stderr, that it waits for Kafka (t101: replay and
# deadletters said nothing for ~30 s on a frozen broker before their exit-3 line).
KAFKA_QUIET_SECONDS = 3.0
# How long in all a command waits for a Kafka that takes connections but does not
# answer before it gives up, exit 3 (README, docs/operations.md).
KAFKA_WAIT_SECONDS = 20.0


def _require_kafka(settings: Settings) -> None:
    """Raise CliError (status 3) unless some bootstrap server accepts a TCP connection
    (faust and kafka-python would otherwise retry, silently, for minutes) and Kafka
    answers an ApiVersions request (``_await_kafka``): every command that talks to
    Kafka asks this first."""
    for server in settings.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        if port.isascii() and port.isdigit() and _answers(host, int(port)):
            _await_kafka(settings)
            return
    raise CliError(
        f"no Kafka broker answers at {settings.kafka_bootstrap}: {start_stack_hint()}, "
        "or point CITYBRAIN_KAFKA_HOST/CITYBRAIN_KAFKA_PORT at a running one",
        EXIT_SERVICE,
    )


def _await_kafka(settings: Settings) -> None:
    """Return once Kafka answers an ApiVersions request (asked below authentication: a
    broker refusing the credentials answers, and the command then says why). One that
    takes connections and answers nothing (frozen, SIGSTOP; overloaded) is said on stderr
    after ``KAFKA_QUIET_SECONDS`` (``citybrain: waiting for Kafka at HOST:PORT …``),
    asked again until ``KAFKA_WAIT_SECONDS`` in all, and then CliError (status 3) naming
    the broker, the wait and `citybrain stack status` (helper t85: a worker waited
    silently as long as it stayed frozen; t101: replay and deadletters, ~30 s)."""
    from citybrain.kafka_read import PROBE_SECONDS, broker_answers

    start = time.monotonic()
    if broker_answers(settings, KAFKA_QUIET_SECONDS):
        return
    print(
        f"citybrain: waiting for Kafka at {settings.kafka_bootstrap}: it takes connections "
        f"but has not answered for {KAFKA_QUIET_SECONDS:g} s (frozen or overloaded?); "
        f"giving up after {KAFKA_WAIT_SECONDS:g} s (Ctrl-C stops now)",
        file=sys.stderr,
        flush=True,
    )
    while (left := KAFKA_WAIT_SECONDS - (time.monotonic() - start)) > 0:
        if broker_answers(settings, min(left, PROBE_SECONDS)):
            print(f"citybrain: Kafka at {settings.kafka_bootstrap} answers", file=sys.stderr)
            return
        # A probe refused at once (a restarting broker) is not asked again in a spin.
        time.sleep(min(0.5, max(0.0, KAFKA_WAIT_SECONDS - (time.monotonic() - start))))
    raise CliError(
        f"Kafka at {settings.kafka_bootstrap} takes connections but did not answer "
        f"within {KAFKA_WAIT_SECONDS:g} s (frozen or overloaded; "
        f"`{command_line('stack', 'status')}` says whether it runs): run the command "
        "again once it answers",
        EXIT_SERVICE,
    )


def _require_partition_counts(settings: Settings, roles: tuple[str, ...]) -> None:
    """Raise CliError (status 2) when an existing topic of ``roles`` has another
    partition count than CITYBRAIN_PARTITIONS: a process that places packs on partitions
    it computes would send them where the worker refuses them (``wrong_partition``) or
    to partitions that do not exist. A broker that cannot be asked is left to the
    command's own sends to report."""
    from kafka.errors import KafkaError

    from citybrain.errors import KafkaStoppedError
    from citybrain.stack.topics import PartitionCountError, require_partition_counts

    try:
        require_partition_counts(settings, roles)
    except PartitionCountError as exc:
        raise CliError(str(exc)) from None
    except (KafkaError, KafkaStoppedError):  # its metadata question is bounded (t90)
        pass


def _require_message_limits(settings: Settings, roles: tuple[str, ...], writer: str) -> None:
    """Raise CliError (status 2) when a topic of ``roles`` takes smaller messages than
    citybrain writes (one not made yet: the broker's message.max.bytes, which it makes it
    with) (``citybrain.stack.topics.check_message_limits``): the
    broker would refuse a pack or dead letter within citybrain's bound, and stop
    ``writer``. A broker that cannot be asked is left to the command's own sends to
    report."""
    from kafka.errors import KafkaError

    from citybrain.errors import KafkaStoppedError
    from citybrain.stack.topics import MessageLimitError, require_message_limits

    try:
        require_message_limits(settings, [settings.topic(r) for r in roles], writer)
    except MessageLimitError as exc:
        raise CliError(str(exc)) from None
    except (KafkaError, KafkaStoppedError):  # its question is bounded (t90)
        pass


def _require_mqtt(settings: Settings) -> None:
    """Raise CliError (status 3) unless the MQTT broker accepts a TCP connection: paho
    would otherwise retry in the background, silently, for ever."""
    if not _answers(settings.mqtt_host, settings.mqtt_port):
        raise CliError(
            f"no MQTT broker answers at {settings.mqtt_host}:{settings.mqtt_port}: "
            f"`{command_line('stack', 'up')}` starts Mosquitto there (the demo does not), or "
            "point "
            "CITYBRAIN_MQTT_HOST/CITYBRAIN_MQTT_PORT at a running one",
            EXIT_SERVICE,
        )


def quiet_kafka_loggers() -> None:
    """Keep kafka-python's own log lines (a retry narrated at ERROR and WARNING every
    few seconds) off a command's output: the command says what failed, in one line."""
    logging.getLogger("kafka").setLevel(logging.CRITICAL + 1)


def cmd_worker(args: argparse.Namespace) -> int:
    """The worker command: ``_worker`` with the garbage collector off until the app is
    built. The start builds about half a million objects that live as long as the worker
    (modules, the grid, playbooks, the classifier); the collector's passes over them,
    each finding almost nothing to free, took about half of the start: 4.5-6.5 s of
    imports and 1.0-1.1 s of ``create_app`` with them, 2.6-2.8 s and 0.3-0.6 s without
    (t103). ``settle_garbage_collector`` collects once and freezes them, then turns it
    on; it is on again here whatever happens."""
    gc.disable()
    try:
        return _worker(args)
    finally:
        gc.enable()


def _worker(args: argparse.Namespace) -> int:
    import faust

    from streams.app import config_reload, create_app, settle_garbage_collector
    from streams.logs import CrashFilter, LifecycleFilter, LostLines, RepeatFilter
    from streams.loop_dns import install as install_loop_dns

    class QuietWorker(faust.Worker):
        crashes: CrashFilter | None = None

        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            # mode leaves the root logger at DEBUG and filters in the handler, so every
            # aiokafka and faust debug call built a log record (8 % of a catch-up run).
            super().on_setup_root_logger(logger, level)
            logger.setLevel(level)
            logging.getLogger("aiokafka.consumer.group_coordinator").addFilter(
                retriable_coordinator_error_is_a_warning
            )
            OffsetOutOfRangeSaid.install(level)
            repeats = RepeatFilter()  # one per worker: its counts span every handler
            lifecycle = LifecycleFilter()  # faust's "Starting..."/"Stopping..." at INFO
            crashes = CrashFilter(_crash_file, _debug())
            self.crashes = crashes
            for handler in logger.handlers:
                handler.addFilter(repeats)
                handler.addFilter(lifecycle)
                handler.addFilter(crashes)
                # A log on a full disk: what could not be written is said once it can be.
                LostLines.install(handler)

        # mode-streaming 0.7.1's Worker._on_sigint/_on_sigterm (installed with
        # loop.add_signal_handler) schedule a shutdown and ignore every later signal;
        # with Kafka down that shutdown waited on commits and flushes for over a minute.
        def _install_signal_handlers_unix(self) -> None:
            super()._install_signal_handlers_unix()
            # SIGHUP's default ended the worker at once (t122): operators send it to
            # Alertmanager and Prometheus to reload. Here it reloads the playbooks and
            # routing, keeping the running ones if the new ones have an error.
            reload = config_reload(self.app)
            if reload is not None:
                self.loop.add_signal_handler(signal.SIGHUP, reload.on_signal)
                # One that came while the start read the files, or after, was only noted
                # (t125: it was ignored, and an edit made then stayed out unsaid).
                if start_hangups.take():
                    self.loop.call_soon(reload.on_signal)

        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            if not self._shutdown_immediately:
                # t134: ~165 lines of faust's before it, and none said where the worker
                # serves or which topics it reads.
                logging.getLogger("citybrain.worker").info(worker_ready_line(settings))

        def _on_sigint(self) -> None:
            self._first_signal(signal.SIGINT)

        def _on_sigterm(self) -> None:
            self._first_signal(signal.SIGTERM)

        def _first_signal(self, signum: signal.Signals) -> None:
            print(
                f"citybrain: stopping: committing offsets and flushing to Kafka (up to "
                f"{WORKER_STOP_GRACE:g} s; SIGTERM or Ctrl-C again stops at once)",
                file=sys.stderr,
                flush=True,
            )
            for sig in (signal.SIGINT, signal.SIGTERM):
                # A plain handler, not the loop's: it runs even while the loop is stuck.
                self.loop.remove_signal_handler(sig)
                signal.signal(sig, lambda *_: _stop_worker_now("a second signal"))
            # While stopping with Kafka down, aiokafka's fetcher, cancelled mid-retry,
            # ends faust's consumer thread with a CancelledError: one line, not a
            # traceback (its partitions' offsets stay uncommitted, as said above).
            threading.excepthook = _thread_ended_while_stopping
            timer = threading.Timer(
                WORKER_STOP_GRACE,
                _stop_worker_now,
                [f"Kafka did not answer within {WORKER_STOP_GRACE:g} s"],
            )
            timer.daemon = True
            timer.start()
            self._schedule_shutdown(signum)

    from citybrain.ports import check_listen

    # The configuration first (a bad routing file is bad input, exit 2), then the web
    # port (faust's own bind failure is a traceback), then the broker.
    settings = _settings()
    # Until the loop's handler is in (QuietWorker), a SIGHUP must not end the start; one
    # that comes once create_app has begun reading the files is noted and reloads after.
    start_hangups = StartHangups()
    with _worker_log_format():
        start_hangups.take()  # before the read: the read sees those files anyway
        app = create_app(settings)
        try:
            check_listen(
                settings.worker_bind, settings.worker_port, "CITYBRAIN_WORKER_PORT", "worker"
            )
        except ListenError as exc:
            raise ListenError(f"{exc}{demo_worker_holds(settings)}") from None
        _require_kafka(settings)
        _create_topics_for_worker(settings, app)
    settle_garbage_collector()
    worker = QuietWorker(app, loglevel=args.loglevel)

    def _crash_file() -> str:
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        return str(settings.run_dir / f"worker-{os.getpid()}-crash.txt")

    # The loop's name lookups (aiokafka's producer, aiohttp) bounded, one per name at a
    # time, on threads of their own: a hung resolver cannot starve it (t92).
    install_loop_dns(worker.loop)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        # mode ends a crashed worker with exit 1 after re-raising the crash: the table
        # says 3 for a Kafka that did not answer, 70 for a bug (helper t85). A stop that
        # ends otherwise (0, 130) keeps its status, a supervised service's crash before
        # it too.
        if exc.code != 1:
            raise
        reason = worker.crash_reason or (worker.crashes.error if worker.crashes else None)
        if reason is None:
            raise
        raise _crashed(reason, settings) from None
    return 0


def worker_ready_line(settings: Settings) -> str:
    """The one INFO line a worker logs once it is ready: ``worker ready: serving
    http://127.0.0.1:16066 (operator API, /metrics), reading topics prefixed 'citybrain.',
    app id citybrain``."""
    from streams.app import worker_url

    return (
        f"worker ready: serving {worker_url(settings)} (operator API, /metrics), reading "
        f"topics prefixed {settings.topic_prefix + '.'!r}, app id {settings.app_id}"
    )


def _debug() -> bool:
    """CITYBRAIN_DEBUG asks for tracebacks (main has checked its value)."""
    return os.environ.get("CITYBRAIN_DEBUG", "").strip().lower() in ("1", "true", "yes")


def _crashed(reason: BaseException, settings: Settings) -> CliError:
    """The one line and status for a worker that crashed on ``reason``: 3 when Kafka
    did not answer (aiokafka's connection and timeout errors), else 70, a bug."""
    import aiokafka.errors

    down = (
        aiokafka.errors.KafkaConnectionError,
        aiokafka.errors.KafkaTimeoutError,
        aiokafka.errors.NoBrokersAvailable,
        aiokafka.errors.RequestTimedOutError,
    )
    if isinstance(reason, down):
        return CliError(
            f"the worker stopped: Kafka at {settings.kafka_bootstrap} did not answer "
            f"({type(reason).__name__}: {reason}): {start_stack_hint()} and start the "
            "worker again",
            EXIT_SERVICE,
        )
    return CliError(
        f"the worker crashed: unexpected {type(reason).__name__}: {reason}. This is a bug: "
        "please report it with its log (the line above names the traceback's file); "
        "its runs have no deadlines and no operator API until a worker runs again",
        EXIT_BUG,
    )


def demo_worker_holds(settings: Settings) -> str:
    """``; the demo's worker (pid N) holds it: …`` when the last demo's worker still runs
    on ``settings``' worker port, else "" (t51's walk: a worker refused for the port did
    not say that the demo's own worker, left serving its runs, was the one there)."""
    from citybrain.demo import DemoFiles, read_demo_state
    from citybrain.stack.process import read_pid

    demo = read_demo_state(settings)
    pid = read_pid(DemoFiles.of(settings).pid)
    if demo is None or pid is None:
        return ""
    if demo.get("worker_url") != f"http://127.0.0.1:{settings.worker_port}":
        return ""
    return (
        f"; the demo's worker holds it (pid {pid}, topic prefix {demo.get('topic_prefix')}): "
        f"`kill {pid}` stops it, `{command_line('stack', 'restart-worker')}` starts it again"
    )


# The worker's log format (faust's, which mode sets up once the worker starts): the
# level before the message, which starts `citybrain: ` (streams/ never says "warning:").
WORKER_LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"


@contextlib.contextmanager
def _worker_log_format() -> Iterator[None]:
    """Within it, what the worker's code logs at WARNING or above before faust sets up
    its logging (building the app) is held, then printed to stderr in the worker's log
    format, its level shown, once the block ends well (t51: the unset
    CITYBRAIN_WEBHOOK_SECRET, a warning, printed bare by Python's last-resort handler
    above the port error, read as the error that stopped the worker). A block that
    raises (the worker cannot start) prints none of it: its one line is the reason."""
    held: list[logging.LogRecord] = []

    class Hold(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.append(record)

    handler = Hold(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
    form = logging.Formatter(WORKER_LOG_FORMAT)
    for record in held:
        print(form.format(record), file=sys.stderr)


def _create_topics_for_worker(settings: Settings, app: faust.App) -> None:
    """Create the topics a worker reads and writes, faust's own changelogs included,
    and wait until the broker's metadata shows them, before faust subscribes: on a topic
    prefix the broker has never seen, the consumer otherwise logged an ERROR "Topic …
    not found in cluster metadata" per topic until the broker auto-created them, or
    until a topic just created reached the broker's metadata. A broker that refuses (no
    create permission) gets one warning line; the worker still starts, waiting for the
    topics as before."""
    from kafka.errors import KafkaError

    from citybrain.errors import KafkaStoppedError
    from citybrain.stack.topics import (
        REFUSED_TOPICS_HINT,
        MessageLimitError,
        PartitionCountError,
        TopicsRefusedError,
        align_topic_configs,
        committed_partitions,
        create_topics,
        emptied_tables_warning,
        faust_topics,
        require_message_limits,
        task_topics,
    )
    from streams.events import WRITTEN_MESSAGE_BYTES

    specs = faust_topics(app, settings.partitions)
    try:
        created = create_topics(settings, specs)
    except PartitionCountError as exc:
        # Before joining the group: a worker counting other partitions than its topics
        # lost readings (dead-lettered wrong_partition) and crashed writing its tables.
        raise CliError(str(exc)) from None
    except TopicsRefusedError as exc:
        # The others are made (t172: the first refusal ended the creation, and every
        # topic after it was left to the broker's auto-creation, unsaid which).
        print(f"citybrain: warning: {exc}; {REFUSED_TOPICS_HINT}", file=sys.stderr)
        created = exc.created
    except (KafkaError, KafkaStoppedError) as exc:  # listing topics is bounded (t90)
        print(
            f"citybrain: warning: could not create the topics (prefix {settings.topic_prefix!r}): "
            f"{_kafka_reason(exc)}; the worker waits for them (create them, or let the broker "
            "auto-create them)",
            file=sys.stderr,
        )
        return
    # Every topic the worker writes (all its own but the readings and incidents it only
    # reads, its changelogs, the playbooks' task topics) must take the largest message it
    # writes: one made to take less lost the worker's dead letters unsaid (t176).
    written = [
        *(name for role, name in settings.topics.items() if role not in ("readings", "incidents")),
        *(spec.name for spec in specs),
        *sorted(task_topics(settings)),
    ]
    try:
        require_message_limits(settings, written, "the worker")
    except MessageLimitError as exc:
        raise CliError(str(exc)) from None
    except (KafkaError, KafkaStoppedError) as exc:
        print(
            f"citybrain: warning: could not ask Kafka what the topics take (prefix "
            f"{settings.topic_prefix!r}): {_kafka_reason(exc)}; a topic taking less than "
            f"{WRITTEN_MESSAGE_BYTES:,} bytes a message would refuse what the worker writes "
            "(docs/operations.md, message sizes)",
            file=sys.stderr,
        )
    # A changelog created here on a group that has committed (an operator deleted it):
    # its table starts empty and the events behind it are not read again. Said, not
    # refused: deleting the sensor-state changelog is how sensors are made to warm up
    # again (docs/operations.md); before, nothing was said, and open runs, silences and
    # firing alerts were gone unsaid.
    changelogs = {spec.name for spec in specs if spec.name.endswith("-changelog")}
    if changelogs & set(created):
        try:
            committed = committed_partitions(
                settings, settings.app_id, list(settings.topics.values())
            )
        except (KafkaError, KafkaStoppedError):
            committed = 0  # the start goes on; Kafka's trouble is said by what follows
        if warning := emptied_tables_warning(settings, app, created, committed):
            print(f"citybrain: {shown_lines(warning)}", file=sys.stderr, flush=True)
    # Changelogs made before their segment and tombstone configs were set (t155): a
    # restart read every superseded record of them, their segments compacted only after
    # 1 GiB or 7 days.
    try:
        changed = align_topic_configs(settings, specs)
    except (KafkaError, KafkaStoppedError) as exc:
        print(
            f"citybrain: warning: could not set the changelog topics' configs (prefix "
            f"{settings.topic_prefix!r}): {_kafka_reason(exc)}; they keep theirs, and a "
            "restart reads their superseded records until Kafka compacts them "
            "(docs/operations.md, restart time and changelog length)",
            file=sys.stderr,
        )
        return
    for line in changed:
        print(f"citybrain: {shown_lines(line)} (docs/operations.md, restart time)", file=sys.stderr)


def retriable_coordinator_error_is_a_warning(record: logging.LogRecord) -> bool:
    """A logging filter: aiokafka logs every failed group-coordinator lookup as ERROR,
    also the retriable ones a worker meets on a broker or topic prefix it has never used
    (``[Error 15] CoordinatorNotAvailableError`` while Kafka creates its offsets topic);
    those become one WARNING saying it retries. Every other record passes unchanged."""
    args = record.args if isinstance(record.args, tuple) else ()
    failed = record.msg == "Group Coordinator Request failed: %s"
    if failed and args and getattr(args[0], "retriable", False):
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = (
            "group coordinator not available (%s); retrying (normal while a new broker "
            "creates its offsets topic, or while Kafka is unreachable)"
        )
    return True


class OffsetOutOfRangeSaid(logging.Filter):
    """A filter on aiokafka's fetcher logger: its INFO "Fetch offset N is out of range
    for partition TP, resetting offset" becomes one WARNING in citybrain's words, naming
    the topic, the partition, the offset and what the reset does (``RESET_POLICY``: the
    log start), whatever ``--loglevel`` is; the fetcher's other records pass only at or
    above ``floor`` (the worker's level), as before. t173: a topic deleted and created
    again under a worker, or cut by retention past where the worker had read, was read
    from elsewhere with no word (at ``--loglevel warning``) or aiokafka's one INFO line,
    which named neither why nor where reading went on.

    ``install`` puts it on the logger and lets the logger create INFO records (the
    filter then drops those below ``floor``)."""

    LOGGER = "aiokafka.consumer.fetcher"
    TEMPLATE = "Fetch offset %s is out of range for partition %s, resetting offset"

    def __init__(self, floor: int) -> None:
        super().__init__()
        self.floor = floor

    @classmethod
    def install(cls, floor: int) -> OffsetOutOfRangeSaid:
        logger = logging.getLogger(cls.LOGGER)
        for old in [f for f in logger.filters if isinstance(f, cls)]:
            logger.removeFilter(old)  # one per worker (a test builds several)
        said = cls(floor)
        logger.addFilter(said)
        logger.setLevel(min(floor, logging.INFO))
        return said

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg != self.TEMPLATE or len(args) != 2:
            return record.levelno >= self.floor
        offset, tp = args
        topic, partition = getattr(tp, "topic", tp), getattr(tp, "partition", "?")
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = (
            "citybrain: topic %s partition %s: offset %s is not in the partition (past "
            "its end: the topic was deleted and created again, or its log was cut; or "
            "before its log start: retention deleted messages before they were read): "
            "reading on from %s, the worker's reset policy (consumer_auto_offset_reset="
            "%s, as Kafka's consumers name it); any messages between were deleted unread "
            "(docs/operations.md, Topics deleted or cut)"
        )
        record.args = (topic, partition, offset, RESET_WHERE, RESET_POLICY)
        return True


# Where a worker reads a partition whose offset is out of range, or that has no committed
# offset: faust's consumer_auto_offset_reset (streams/app.py), as Kafka's consumers name it.
RESET_POLICY = "earliest"
RESET_WHERE = "the partition's log start (its oldest message kept)"


# How long a stopping worker may take to commit and flush before it exits anyway.
class StartHangups:
    """The SIGHUPs a starting worker gets before its event loop's handler is in: noted
    (a plain signal handler, installed by the constructor), not acted on, and not
    ignored: ``take`` says whether any came since the last ``take``, and the worker
    reloads once after its start when one came after the start's read began. Before
    t125 they were ignored, so a routing file edited and signalled while the worker
    started (a restart by systemd, a rebalance's new worker) stayed out, unsaid."""

    def __init__(self) -> None:
        self._count = 0
        signal.signal(signal.SIGHUP, self._note)

    def _note(self, _signum: int, _frame: object) -> None:
        self._count += 1

    def take(self) -> bool:
        """True when a SIGHUP came since the last call (and forget it)."""
        came, self._count = self._count > 0, 0
        return came


WORKER_STOP_GRACE = 10.0


def _thread_ended_while_stopping(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else "a thread"
    text = str(args.exc_value or "")
    logging.getLogger("citybrain.worker").warning(
        "while stopping: %s ended with %s%s", name, args.exc_type.__name__, f": {text}" * bool(text)
    )


def _stop_worker_now(why: str) -> None:
    """End a stopping worker at once, as a crash would: what it processed since its last
    commit is read again on the next start, and its effects are idempotent
    (docs/operations.md), so nothing is lost."""
    try:
        print(
            f"citybrain: stopped before the shutdown finished ({why}): readings processed "
            "since the last offset commit are read again on the next start, as after a "
            "crash (nothing is lost: docs/operations.md)",
            file=sys.stderr,
            flush=True,
        )
    finally:
        os._exit(EXIT_INTERRUPTED)  # no atexit flush waiting on Kafka again


def size_said(held: int) -> str:
    """``held`` bytes in words: ``0 bytes``, ``512 bytes``, ``1.5 MB`` (decimal units)."""
    if held < 1000:
        return f"{held} byte{'' if held == 1 else 's'}"
    scaled, units = held / 1000.0, ["kB", "MB", "GB"]
    while scaled >= 1000 and len(units) > 1:
        scaled, units = scaled / 1000.0, units[1:]
    return f"{scaled:.1f} {units[0]}"
